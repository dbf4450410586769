"""Placement on the 8 published Tarnawski et al. latency inputs (shared/benchmarks/dnn-partitioning).

For every file, under its own limits: the all-CPU latency (baseline), the heuristic, the
MILP (HiGHS through cvxpy, 1 thread, time limit, started from the heuristic) and the LP
relaxation with rounding, all through the planner registry on the Problem the reader
builds. For the 4 layer graphs also under the limits the human-expert splits were made
for (6 accelerators of 17,185,374,208 bytes), where the expert split's latency is the
baseline. Every latency is recomputed by the evaluator. Writes
results/bench/placement_tarnawski.json and prints, for the 12 runs, the best latency
beside the one in ``--before`` (default results/bench/placement_tarnawski_pre_merge.json,
the figures of the release before the placement stack was merged into plan/).

    .venv/bin/python benchmarks/bench_placement_tarnawski.py [--quick] [--time-limit S]
"""

from __future__ import annotations

import argparse
import glob
import json
import warnings
from pathlib import Path
from typing import Any

from _common import RESULTS, save

from edgesplit.plan import evaluate, solve
from edgesplit.plan.problem import Problem
from edgesplit.plan.tarnawski import load_problem, published_workloads_dir, read_placement

ROOT = published_workloads_dir()
EXPERT_FPGAS, EXPERT_MEMORY = 6, 17185374208.0
BEFORE = RESULTS / "placement_tarnawski_pre_merge.json"


def run(problem: Problem, time_limit: float, with_relax: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "nodes": problem.n_nodes,
        "edges": len(problem.structure.edges),
        "accelerators": problem.n_devices - 1,
    }
    row["all_cpu"] = evaluate(problem, [0] * problem.n_nodes).latency_s
    h = solve(problem, "heuristic")
    row["heuristic"] = {"latency": h.predicted["latency_s"], "solve_s": h.meta["solve_s"]}
    m = solve(problem, "ilp", time_limit=time_limit, threads=1, warm=h)
    row["milp"] = {
        "latency": m.predicted["latency_s"],
        "evaluator_latency": evaluate(problem, m.assignment).latency_s,
        "bound": m.meta["bound"],
        "gap": m.meta["gap"],
        "status": m.meta["status"],
        "solve_s": m.meta["solve_s"] + h.meta["solve_s"],  # started from the heuristic
        "incumbent_from": m.meta.get("incumbent_from", "milp"),
        "warm_start_only": m.meta.get("warm_start_only"),
        "stop_reason": m.meta.get("stop_reason"),
    }
    if with_relax:
        r = solve(problem, "relax", time_limit=time_limit, threads=1)
        row["relax"] = {
            "latency": r.predicted["latency_s"],
            "lp_bound": r.meta["bound"],
            "solve_s": r.meta["solve_s"],
        }
    gap = m.meta["gap"]
    print(
        f"  all-cpu {row['all_cpu']:.5g}  heuristic {row['heuristic']['latency']:.5g} "
        f"({h.meta['solve_s']:.2f}s)  milp {row['milp']['latency']:.5g} gap "
        f"{gap if gap is not None else float('nan'):.1%} ({row['milp']['solve_s']:.1f}s, "
        f"{m.meta['status']})" + (f"  relax {row['relax']['latency']:.5g}" if with_relax else ""),
        flush=True,
    )
    return row


def best(row: dict[str, Any]) -> float:
    return min(row["heuristic"]["latency"], row["milp"]["latency"])


def compare(rows: list[dict[str, Any]], before_path: Path) -> list[dict[str, Any]]:
    """The 12 runs' best latency now beside the one in ``before_path``."""
    if not before_path.exists():
        print(f"no {before_path}: nothing to compare with")
        return []
    before = {(r["file"], r["setting"]): r for r in json.loads(before_path.read_text())["rows"]}
    out = []
    print(f"\n{'run':48s} {'before':>10s} {'after':>10s}  at or below")
    for row in rows:
        old = before.get((row["file"], row["setting"]))
        if old is None:
            continue
        entry = {
            "file": row["file"],
            "setting": row["setting"],
            "before": best(old),
            "after": best(row),
            "at_or_below": best(row) <= best(old) * (1 + 1e-9),
        }
        out.append(entry)
        print(
            f"{row['file'] + ' (' + row['setting'] + ')':48s} {entry['before']:10.5g} "
            f"{entry['after']:10.5g}  {'yes' if entry['at_or_below'] else 'NO'}"
        )
    print(f"{sum(e['at_or_below'] for e in out)}/{len(out)} runs at or below before")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 s MILP limit, no relaxation")
    ap.add_argument("--time-limit", type=float, default=None)
    ap.add_argument("--before", type=Path, default=BEFORE, help="figures to compare with")
    args = ap.parse_args()
    limit = args.time_limit or (10.0 if args.quick else 55.0)
    warnings.filterwarnings("ignore")
    files = sorted(glob.glob(str(ROOT / "latency-inputs" / "*" / "*.json")))
    rows = []
    for path in files:
        kind = Path(path).parent.name
        problem = load_problem(path)
        name = problem.graph.name
        print(f"{kind}/{name} (own limits: {problem.n_devices - 1} accelerators)", flush=True)
        row: dict[str, Any] = {"file": f"{kind}/{Path(path).name}", "setting": "own limits"}
        row.update(run(problem, limit, with_relax=not args.quick))
        rows.append(row)
        expert = ROOT / "human-experts" / f"{name}_expert.json"
        if kind == "LayerGraphs" and expert.exists():
            wide = load_problem(path, processors=EXPERT_FPGAS, memory=EXPERT_MEMORY)
            print(f"{kind}/{name} (expert limits: 6 x 17.2 GB)", flush=True)
            row = {"file": f"{kind}/{Path(path).name}", "setting": "expert limits"}
            latency = evaluate(wide, read_placement(expert, wide)).latency_s
            row["expert"] = latency
            row.update(run(wide, limit, with_relax=False))
            row["milp_vs_expert"] = row["milp"]["latency"] / latency
            row["heuristic_vs_expert"] = row["heuristic"]["latency"] / latency
            print(f"  expert {latency:.5g}: milp/expert {row['milp_vs_expert']:.3f}", flush=True)
            rows.append(row)
    comparison = compare(rows, args.before)
    save(
        "placement_tarnawski",
        {
            "time_limit_s": limit,
            "threads": 1,
            "semantics": "critical (Tarnawski latency model)",
            "rows": rows,
            "before": str(args.before),
            "comparison": comparison,
        },
    )


if __name__ == "__main__":
    main()
