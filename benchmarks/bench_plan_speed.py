"""Planning speed for vgg16 (issue 3 figure): the whole candidate table + OL, OC, CL and the
Pareto front in well under 1 ms, so re-planning on every request is affordable.

Node seconds come from fitted predictors: a per-layer-type regression fitted in this run on
quick profiles of mnist_cnn, lenet and alexnet predicts vgg16's edge seconds; the cloud is
those divided by 8. Timed (median of interleaved runs):

* ``replan``: ``candidate_table`` for a new bandwidth/RTT/clock, then OL, OC, optimal
  energy, Luger Algorithm 1 (CL), the normalised weighted sum and the exact Pareto front,
  from precomputed :class:`TwoTierInputs` (what the rescheduler calls);
* ``plan_two_tier``: the single-objective fast path;
* baseline ``exhaustive``: the registry's exhaustive solver on the same Problem, which
  evaluates every cut with the independent evaluator (one objective only).

Also reported: one-off costs (building TwoTierInputs, predicting vgg16's nodes).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _common import interleaved, save

from edgesplit.graph import trace
from edgesplit.models import build
from edgesplit.plan import Problem, solve
from edgesplit.plan.planner import plan_two_tier
from edgesplit.plan.tradeoff import (
    luger_choice,
    optimal_cost,
    optimal_energy,
    optimal_latency,
    pareto_cuts,
    weighted_sum,
)
from edgesplit.plan.two_tier import TwoTierInputs, candidate_table
from edgesplit.predict.layer_regression import LayerTypeRegressor
from edgesplit.predict.profile import profile_graph
from edgesplit.system.prices import Prices


def once(fn: object, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    nodes, secs = [], []
    for name in ("mnist_cnn", "lenet", "alexnet"):
        module, x = build(name)
        g = trace(module, x, name=name)
        prof = profile_graph(g, x, threads=1, repeats=2, warmup=1)
        nodes += list(g.nodes)
        secs += [prof.node_seconds()[n.name] for n in g.nodes]
    est = LayerTypeRegressor().fit(nodes, secs)
    module, x = build("vgg16")
    graph = trace(module, x, name="vgg16")
    edge = est.predict_graph(graph)
    cloud = edge / 8.0
    inputs = TwoTierInputs.from_graph(graph, edge, cloud)
    problem = Problem.two_tier(
        graph, edge, cloud, bandwidth_bps=7.2e6, rtt_s=0.04,
        edge_price_per_hour=Prices().edge_per_hour, cloud_price_per_hour=Prices().cloud_per_hour,
    )  # fmt: skip

    def replan() -> None:
        c = candidate_table(
            inputs, bandwidth_bps=7.2e6, rtt_s=0.04, edge_price_per_s=0.224 / 3600,
            cloud_price_per_s=0.1664 / 3600, edge_busy_w=5.0, edge_idle_w=2.0, edge_scale=2.0,
        )  # fmt: skip
        optimal_latency(c), optimal_cost(c), optimal_energy(c)
        luger_choice(c, 0.55), weighted_sum(c, 0.55), pareto_cuts(c)

    def fast_path() -> None:
        plan_two_tier(inputs, bandwidth_bps=7.2e6, rtt_s=0.04, objective="weighted", weight=0.55)

    def baseline() -> None:
        solve(problem, "exhaustive")

    repeats = 50 if args.quick else 300
    replan_s, base_s = interleaved(replan, baseline, repeats)
    fast_s = once(fast_path, repeats * 4)
    build_s = once(lambda: TwoTierInputs.from_graph(graph, edge, cloud), 20)
    predict_s = once(lambda: est.predict_graph(graph), 20)
    print(
        f"vgg16 ({len(graph.nodes)} nodes): replan (table + OL/OC/OE/CL/weighted/Pareto) "
        f"{replan_s * 1e3:.3f} ms median; plan_two_tier {fast_s * 1e3:.3f} ms; baseline "
        f"exhaustive {base_s * 1e3:.3f} ms -> {base_s / replan_s:.1f}x faster; goal < 1 ms: "
        f"{replan_s < 1e-3}"
    )
    save(
        "plan_speed",
        {
            "quick": args.quick,
            "model": "vgg16",
            "nodes": len(graph.nodes),
            "repeats": repeats,
            "replan_median_s": replan_s,
            "plan_two_tier_median_s": fast_s,
            "baseline_exhaustive_median_s": base_s,
            "speedup_vs_exhaustive": base_s / replan_s,
            "one_off_build_inputs_s": build_s,
            "one_off_predict_nodes_s": predict_s,
            "goal_under_1ms": replan_s < 1e-3,
        },
    )


if __name__ == "__main__":
    main()
