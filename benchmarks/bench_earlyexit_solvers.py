"""Pre-DNNOff solvers on the paper's five-exit BranchyNet (issue 7 figures).

* Exact tree DP time (goal: under 100 ms) against the GA's time (same problem, same run).
* GA against the exact optimum over 20 seeds at 50 generations with the paper's operators
  (roulette + linear scaling, single-point crossover at layer groups, group mutation);
  and, where those miss, the variants that reach it: tournament, elitism 2, per-gene
  mutation 1/L, 300 generations; or the paper's operators at 50 generations with the
  one-tier chromosomes seeded into the first population and elitism 2.
* Pre-DNNOff (exact) against Edgent at the expected requirement, by eq. 4.8 (paper:
  188.93 ms against 207.11 ms).

Setups as in :mod:`edgesplit.experiments.zuo2024` (paper: mobile+edge, Table 4.2, 74 Mbit/s,
N(0.625, 0.053); three-tier: plus a 4x cloud over 1 Gbit/s). ``--quick``: 5 seeds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _common import save

from edgesplit.earlyexit.exact import solve_exact
from edgesplit.earlyexit.ga import solve_ga
from edgesplit.experiments.zuo2024 import run_setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = 5 if args.quick else 20
    setups = {}
    for name in ("paper", "three-tier"):
        summary, _curve = run_setup(name, runs)
        setups[name] = summary
    # Solver times on the paper setup, interleaved so machine noise hits both.
    from edgesplit.earlyexit.instance import EarlyExitInstance, load_instance_problem
    from edgesplit.experiments.zuo2024 import ASSUMED_ACCURACIES, SETUPS

    inst = EarlyExitInstance.model_validate(
        {**SETUPS["three-tier"], "accuracies": ASSUMED_ACCURACIES}
    )
    problem, *_ = load_instance_problem(inst)
    exact_t, ga_t = [], []
    for seed in range(runs):
        t0 = time.perf_counter()
        solve_exact(problem)
        t1 = time.perf_counter()
        solve_ga(problem, seed=seed)
        t2 = time.perf_counter()
        exact_t.append(t1 - t0)
        ga_t.append(t2 - t1)
    timing = {
        "problem": "three-tier, 52 layers",
        "exact_median_ms": statistics.median(exact_t) * 1000,
        "ga_50gen_median_ms": statistics.median(ga_t) * 1000,
        "ga_over_exact": statistics.median(ga_t) / statistics.median(exact_t),
        "goal_exact_under_100ms": statistics.median(exact_t) < 0.1,
    }
    for s in setups.values():
        s.pop("instance")
    save(
        "earlyexit_solvers",
        {
            "runs": runs,
            "timing": timing,
            "setups": setups,
            "paper": {"pre_dnnoff_ms": 188.93, "edgent_ms": 207.11},
        },
    )
    print(
        f"exact {timing['exact_median_ms']:.2f} ms, GA {timing['ga_50gen_median_ms']:.0f} ms "
        f"({timing['ga_over_exact']:.0f}x the exact solver)"
    )
    for name, s in setups.items():
        print(
            f"{name}: Pre-DNNOff {s['exact']['expected_latency_ms']:.2f} ms vs Edgent "
            f"{s['edgent']['expected_latency_ms']:.2f} ms "
            f"(Edgent/Pre-DNNOff = {s['edgent']['expected_latency_ms'] / s['exact']['expected_latency_ms']:.3f}); "
            f"GA paper operators optimal {s['ga_paper']['optimal_runs']}/{runs} "
            f"(worst {s['ga_paper']['worst_over_optimum']:.2f}x), improved GA "
            f"{s['ga_improved']['optimal_runs']}/{runs}, seeded GA "
            f"{s['ga_seeded']['optimal_runs']}/{runs}"
        )


if __name__ == "__main__":
    main()
