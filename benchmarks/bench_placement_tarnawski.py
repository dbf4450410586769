"""Placement on the 8 published Tarnawski et al. latency inputs (shared/benchmarks/dnn-partitioning).

For every file, under its own limits: the all-CPU latency (baseline), the heuristic, the
MILP (HiGHS through cvxpy, 1 thread, time limit) and the LP relaxation with rounding. For
the 4 layer graphs also under the limits the human-expert splits were made for (6
accelerators of 17,185,374,208 bytes), where the expert split's latency is the baseline.
Every latency is recomputed by the independent evaluator. Writes
results/bench/placement_tarnawski.json.

    .venv/bin/python benchmarks/bench_placement_tarnawski.py [--quick] [--time-limit S]
"""

from __future__ import annotations

import argparse
import glob
import warnings
from pathlib import Path

from _common import save

from edgesplit.placement import HOST, evaluate
from edgesplit.placement.tarnawski import load_instance, published_workloads_dir, read_placement
from edgesplit.plan import heuristic, milp, relax

ROOT = published_workloads_dir()
EXPERT_FPGAS, EXPERT_MEMORY = 6, 17185374208.0


def run(inst, time_limit: float, with_relax: bool) -> dict:
    row: dict = {"nodes": inst.n, "edges": len(inst.edges), "accelerators": inst.accelerators}
    row["all_cpu"] = evaluate(inst, [HOST] * inst.n).latency
    h = heuristic.place(inst, "critical")
    row["heuristic"] = {"latency": h.latency, "solve_s": h.solve_s}
    m = milp.place(inst, "critical", time_limit=time_limit, threads=1, warm=h)
    check = evaluate(inst, m.assignment).latency
    row["milp"] = {
        "latency": m.latency,
        "evaluator_latency": check,
        "bound": m.bound,
        "gap": m.gap,
        "status": m.status,
        "solve_s": m.solve_s + h.solve_s,  # the MILP is started from the heuristic
        "incumbent_from": m.meta.get("incumbent_from", "milp"),
    }
    if with_relax:
        r = relax.place(inst, "critical", time_limit=time_limit, threads=1)
        row["relax"] = {"latency": r.latency, "lp_bound": r.bound, "solve_s": r.solve_s}
    print(
        f"  all-cpu {row['all_cpu']:.5g}  heuristic {h.latency:.5g} ({h.solve_s:.2f}s)  "
        f"milp {m.latency:.5g} gap {m.gap if m.gap is not None else float('nan'):.1%} "
        f"({row['milp']['solve_s']:.1f}s, {m.status})"
        + (f"  relax {row['relax']['latency']:.5g}" if with_relax else ""),
        flush=True,
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 s MILP limit, no relaxation")
    ap.add_argument("--time-limit", type=float, default=None)
    args = ap.parse_args()
    limit = args.time_limit or (10.0 if args.quick else 55.0)
    warnings.filterwarnings("ignore")
    files = sorted(glob.glob(str(ROOT / "latency-inputs" / "*" / "*.json")))
    rows = []
    for path in files:
        kind = Path(path).parent.name
        inst = load_instance(path)
        print(f"{kind}/{inst.name} (own limits: {inst.accelerators} accelerators)", flush=True)
        row = {"file": f"{kind}/{Path(path).name}", "setting": "own limits"}
        row.update(run(inst, limit, with_relax=not args.quick))
        rows.append(row)
        expert = ROOT / "human-experts" / f"{inst.name}_expert.json"
        if kind == "LayerGraphs" and expert.exists():
            wide = inst.with_limits(EXPERT_FPGAS, EXPERT_MEMORY)
            print(f"{kind}/{inst.name} (expert limits: 6 x 17.2 GB)", flush=True)
            row = {"file": f"{kind}/{Path(path).name}", "setting": "expert limits"}
            ev = evaluate(wide, read_placement(expert, wide))
            row["expert"] = ev.latency
            row.update(run(wide, limit, with_relax=False))
            row["milp_vs_expert"] = row["milp"]["latency"] / ev.latency
            row["heuristic_vs_expert"] = row["heuristic"]["latency"] / ev.latency
            print(f"  expert {ev.latency:.5g}: milp/expert {row['milp_vs_expert']:.3f}", flush=True)
            rows.append(row)
    save(
        "placement_tarnawski",
        {
            "time_limit_s": limit,
            "threads": 1,
            "semantics": "critical (Tarnawski latency model)",
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
