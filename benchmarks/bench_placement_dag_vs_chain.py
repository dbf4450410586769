"""DAG-aware two-tier cut (DADS min-cut) against the best topological-order cut.

For DAG zoo models at layer granularity and a sweep of bandwidths, both are solved on the
same planner Problem (edge device + cloud, Luger eq. 4.3 links, sequential latency) and
scored by the Problem's independent evaluator. Baseline: the exhaustive chain split
(Neurosurgeon: every one of the n+1 topological cuts). Per-node seconds are synthetic,
``flops / rate + 20 us`` with the edge at 20 GFLOP/s and the cloud at 200 GFLOP/s; RTT 10 ms.
Writes results/bench/placement_dag_vs_chain.json.

    .venv/bin/python benchmarks/bench_placement_dag_vs_chain.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from _common import save

from edgesplit.commands.common import load_graph
from edgesplit.plan import Problem
from edgesplit.plan.exhaustive import solve as chain_solve
from edgesplit.plan.mincut import solve as mincut_solve

EDGE_FLOPS, CLOUD_FLOPS, OVERHEAD_S, RTT_S = 20e9, 200e9, 20e-6, 0.01
MBPS = (1, 5, 10, 20, 50, 100, 500, 1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two models, four bandwidths")
    args = ap.parse_args()
    torch.set_num_threads(1)
    models = (
        ("resnet50", "googlenet")
        if args.quick
        else ("resnet50", "googlenet", "inception_v3", "mobilenet_v2")
    )
    sweep = MBPS[::2] if args.quick else MBPS
    rows = []
    for name in models:
        graph, _, _ = load_graph(name, "layer")
        flops = np.array([float(n.flops) for n in graph.nodes])
        for mbps in sweep:
            problem = Problem.two_tier(
                graph,
                flops / EDGE_FLOPS + OVERHEAD_S,
                flops / CLOUD_FLOPS + OVERHEAD_S,
                bandwidth_bps=mbps * 1e6,
                rtt_s=RTT_S,
            )
            t0 = time.perf_counter()
            chain = chain_solve(problem)
            t_chain = time.perf_counter() - t0
            t0 = time.perf_counter()
            dag = mincut_solve(problem)
            t_dag = time.perf_counter() - t0
            lc, ld = chain.predicted["latency_s"], dag.predicted["latency_s"]
            rows.append(
                {
                    "model": name,
                    "nodes": len(graph.nodes),
                    "mbps": mbps,
                    "chain_latency_s": lc,
                    "mincut_latency_s": ld,
                    "saving": 1 - ld / lc,
                    "chain_solve_s": t_chain,
                    "mincut_solve_s": t_dag,
                    "mincut_nodes_on_edge": sum(1 for d in dag.assignment if d == 0),
                    "mincut_is_topological_cut": dag.cut is not None,
                }
            )
            print(
                f"{name:13s} {mbps:5g} Mbit/s  chain {lc * 1e3:8.2f} ms  mincut {ld * 1e3:8.2f} ms"
                f"  saving {1 - ld / lc:6.2%}  (solve {t_chain:.2f}s vs {t_dag:.2f}s)",
                flush=True,
            )
    savings = [r["saving"] for r in rows]
    save(
        "placement_dag_vs_chain",
        {
            "edge_flops": EDGE_FLOPS,
            "cloud_flops": CLOUD_FLOPS,
            "rtt_s": RTT_S,
            "median_saving": statistics.median(savings),
            "max_saving": max(savings),
            "rows": rows,
        },
    )
    print(f"median saving {statistics.median(savings):.2%}, max {max(savings):.2%}")


if __name__ == "__main__":
    main()
