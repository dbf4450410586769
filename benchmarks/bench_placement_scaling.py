"""Solve time against graph size for 3 processors (user device + 2 edge servers).

Graphs: zoo models at layer and op granularity (our "op" tracing of resnet50 gives 175
nodes), plus Tarnawski et al.'s operator-level resnet50 (604 nodes, their timings) as the
~500-node case. For each: the interval DP alone (baseline: the chain-only placement), the
heuristic (DP + local search) and the MILP (HiGHS, 1 thread, 60 s limit including cvxpy
compilation, started from the heuristic), under Tarnawski's critical-path semantics.
Goals: heuristic under 1 s and MILP under 60 s on op-granularity resnet50. Writes
results/bench/placement_scaling.json.

    .venv/bin/python benchmarks/bench_placement_scaling.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
from _common import save

from edgesplit.commands.common import load_graph
from edgesplit.experiments.samadi import make_problem
from edgesplit.plan import evaluate, solve
from edgesplit.plan.heuristic import interval_dp
from edgesplit.plan.tarnawski import load_problem, published_workloads_dir

TARNAWSKI_RESNET50 = str(
    published_workloads_dir() / "latency-inputs" / "OperatorGraphs" / "resnet50_inference.json"
)
CASES = (
    ("alexnet", "layer"),
    ("resnet50", "layer"),
    ("googlenet", "layer"),
    ("mobilenet_v2", "op"),
    ("resnet50", "op"),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 s MILP limit, 2 heuristic repeats")
    ap.add_argument("--time-limit", type=float, default=60.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    limit = 10.0 if args.quick else args.time_limit
    repeats = 2 if args.quick else 5
    rows = []
    cases = [*CASES, ("tarnawski:resnet50", "op")]
    for model, gran in cases:
        if model.startswith("tarnawski:"):
            # Their operator-level resnet50 (604 nodes) with 2 accelerators: 3 processors.
            problem = load_problem(TARNAWSKI_RESNET50, processors=2)
        else:
            graph, _, _ = load_graph(model, gran)
            problem = make_problem(graph, 3, 100.0)
        dp_times, h_times = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            chain, _ = interval_dp(problem)
            dp_times.append(time.perf_counter() - t0)
            h = solve(problem, "heuristic")
            h_times.append(h.meta["solve_s"])
        m = solve(problem, "ilp", time_limit=limit, warm=h)
        m_s, status, gap = m.meta["solve_s"], m.meta["status"], m.meta["gap"]
        row = {
            "model": model,
            "granularity": gran,
            "nodes": problem.n_nodes,
            "edges": len(problem.structure.edges),
            "dp_median_s": statistics.median(dp_times),
            "heuristic_median_s": statistics.median(h_times),
            "milp_s": m_s,
            "milp_status": status,
            "milp_gap": gap,
            "chain_latency_s": evaluate(problem, chain).latency_s,
            "heuristic_latency_s": h.predicted["latency_s"],
            "milp_latency_s": m.predicted["latency_s"],
        }
        rows.append(row)
        print(
            f"{model:18s} {gran:5s} n={row['nodes']:4d}  dp {row['dp_median_s']:.3f}s  "
            f"heuristic {row['heuristic_median_s']:.3f}s  milp {m_s:.1f}s ({status}, "
            f"gap {gap if gap is not None else float('nan'):.1%})  latency chain "
            f"{row['chain_latency_s'] * 1e3:.2f} / heur {row['heuristic_latency_s'] * 1e3:.2f} / "
            f"milp {row['milp_latency_s'] * 1e3:.2f} ms",
            flush=True,
        )
    save("placement_scaling", {"processors": 3, "time_limit_s": limit, "rows": rows})


if __name__ == "__main__":
    main()
