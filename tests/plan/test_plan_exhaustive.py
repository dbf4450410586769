"""k-device exhaustive search against nested-loop brute force; the registry front door."""

from __future__ import annotations

import numpy as np
import pytest

from edgesplit.errors import InputError
from edgesplit.graph import Graph
from edgesplit.plan import ALGORITHMS, Problem, check_plan, solve

from .conftest import independent, link


def three_tier(graph: Graph, seed: int, objective: str = "latency") -> Problem:
    rng = np.random.default_rng(seed)
    n = len(graph.nodes)
    base = rng.uniform(1e-4, 1e-2, n)
    return Problem(
        graph=graph,
        devices=("phone", "edge", "cloud"),
        seconds=np.stack([base * 4, base, base / 8]),
        links={
            frozenset((0, 1)): link(float(rng.uniform(1e6, 5e7)), 0.005),
            frozenset((1, 2)): link(float(rng.uniform(1e6, 5e7)), 0.03),
        },
        price_per_second=(0.0, 0.224 / 3600, 0.1664 / 3600),
        objective=objective,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("objective", ["latency", "cost"])
def test_three_devices_contiguous_is_brute_force(mnist_graph: Graph, objective: str) -> None:
    n = len(mnist_graph.nodes)
    for seed in range(3):
        problem = three_tier(mnist_graph, seed, objective)
        plan = solve(problem, "exhaustive")
        check_plan(problem, plan)
        best = min(
            independent(problem, [0] * a + [1] * (b - a) + [2] * (n - b))[2]
            for a in range(n + 1)
            for b in range(a, n + 1)
        )
        assert plan.predicted["objective_value"] == pytest.approx(best, rel=1e-12)


def test_all_assignments_never_worse_than_contiguous(dag_graph: Graph) -> None:
    problem = three_tier(dag_graph, 0)
    contiguous = solve(problem, "exhaustive")
    everything = solve(problem, "exhaustive", space="all")
    assert everything.meta["candidates"] >= contiguous.meta["candidates"]
    assert everything.predicted["latency_s"] <= contiguous.predicted["latency_s"] + 1e-15
    check_plan(problem, everything)


def test_missing_link_is_infinite(mnist_graph: Graph) -> None:
    p = three_tier(mnist_graph, 0)
    assert p.transfer_seconds(0, 2, 100) == float("inf")
    assert p.transfer_seconds(1, 1, 100) == 0.0


def test_registry_front_door(mnist_graph: Graph) -> None:
    assert {"exhaustive", "two-tier"} <= set(ALGORITHMS)
    with pytest.raises(InputError, match="unknown --algorithm"):
        solve(three_tier(mnist_graph, 0), "no-such")
    with pytest.raises(InputError, match="max_candidates"):
        solve(three_tier(mnist_graph, 0), "exhaustive", space="all", max_candidates=10)
