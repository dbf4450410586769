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
from dataclasses import replace

import torch
from _common import save

from edgesplit.commands.common import load_graph
from edgesplit.experiments.samadi import make_problem
from edgesplit.placement import evaluate
from edgesplit.placement.tarnawski import load_instance, published_workloads_dir
from edgesplit.plan import heuristic, milp
from edgesplit.plan.placement_problem import problem_to_instance

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
            inst = load_instance(TARNAWSKI_RESNET50).with_limits(2, None)
            extra = 0
        else:
            graph, _, _ = load_graph(model, None, gran)
            inst, _ = problem_to_instance(make_problem(graph, 3, 100.0))
            inst = replace(inst, identical=True)
            extra = 2  # the pinned input and output nodes
        dp_times, h_times = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            chain, _ = heuristic.interval_dp(inst)
            dp_times.append(time.perf_counter() - t0)
            h = heuristic.place(inst)
            h_times.append(h.solve_s)
        m = milp.place(inst, time_limit=limit, warm=h)
        row = {
            "model": model,
            "granularity": gran,
            "nodes": inst.n - extra,
            "edges": len(inst.edges),
            "dp_median_s": statistics.median(dp_times),
            "heuristic_median_s": statistics.median(h_times),
            "milp_s": m.solve_s,
            "milp_status": m.status,
            "milp_gap": m.gap,
            "chain_latency_s": evaluate(inst, chain).latency,
            "heuristic_latency_s": h.latency,
            "milp_latency_s": m.latency,
        }
        rows.append(row)
        print(
            f"{model:18s} {gran:5s} n={row['nodes']:4d}  dp {row['dp_median_s']:.3f}s  "
            f"heuristic {row['heuristic_median_s']:.3f}s  milp {m.solve_s:.1f}s ({m.status}, "
            f"gap {m.gap if m.gap is not None else float('nan'):.1%})  latency chain "
            f"{row['chain_latency_s'] * 1e3:.2f} / heur {h.latency * 1e3:.2f} / "
            f"milp {m.latency * 1e3:.2f} ms",
            flush=True,
        )
    save("placement_scaling", {"processors": 3, "time_limit_s": limit, "rows": rows})


if __name__ == "__main__":
    main()
