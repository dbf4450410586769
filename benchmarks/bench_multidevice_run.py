"""Plan against reality: `multidevice run` for N = 4 AlexNet devices at 2.5 Mbit/s.

The plan's delays are this host's per-layer CPU times (mobile = x10, server = x1); the run
starts one server process and four agents on loopback, each agent behind its own
token-bucket shaper at 2.5 Mbit/s, and measures every device's completion time. Two plans
are run, ``--repeats`` times each (median of the measured averages):

* the optimal plan (CP-SAT, eq. 10-16);
* a forced offloading plan, every device split after ``features_12`` (pool5) with the
  best server order, so that uploads and the server queue are exercised even when the
  optimum keeps everything local.

The baseline is the plan's own prediction; goal (issue #6): measured average within 15 %.

    .venv/bin/python benchmarks/bench_multidevice_run.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from _common import save

from edgesplit.multidevice.cpsat import solve_cpsat
from edgesplit.multidevice.execute import run_schedule
from edgesplit.multidevice.instance import MultiDeviceInstance, build_problem

INSTANCE = {
    "profile_repeats": 10,
    "devices": [
        {
            "name": "phone",
            "model": "alexnet",
            "uplink_mbps": 2.5,
            "count": 4,
            "local": {"source": "profile", "factor": 10},
            "server": {"source": "profile", "factor": 1},
        }
    ],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    repeats = 1 if args.quick else args.repeats
    problem = build_problem(MultiDeviceInstance.model_validate(INSTANCE))
    split = next(i for i, name in enumerate(problem.devices[0].layers) if name == "features_12") + 1
    plans = {
        "optimal": solve_cpsat(problem, time_limit=20),
        "forced_pool5": solve_cpsat(problem, time_limit=20, fixed_splits=[split] * problem.n),
    }
    out = {}
    for name, plan in plans.items():
        runs = [run_schedule(problem, plan) for _ in range(repeats)]
        measured = statistics.median(r.measured_average_s for r in runs)
        out[name] = {
            "splits": list(plan.splits),
            "plan_status": plan.status,
            "predicted_average_s": plan.average_s,
            "measured_average_s": measured,
            "measured_runs_s": [r.measured_average_s for r in runs],
            "measured_over_predicted": measured / plan.average_s,
            "error": abs(measured / plan.average_s - 1),
            "within_15pct": abs(measured / plan.average_s - 1) <= 0.15,
            "outputs_equal": all(r.outputs_equal for r in runs),
            "last_run": runs[-1].to_dict(),
        }
        print(
            f"{name}: splits {plan.splits}, predicted {plan.average_s * 1e3:.1f} ms, measured "
            f"{measured * 1e3:.1f} ms (ratio {measured / plan.average_s:.3f}), outputs equal "
            f"{out[name]['outputs_equal']}"
        )
    save("multidevice_run", {"quick": args.quick, "repeats": repeats, "plans": out})


if __name__ == "__main__":
    main()
