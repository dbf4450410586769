"""The two-tier table and its choices against brute force and the independent evaluator."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from edgesplit.errors import InfeasiblePlanError
from edgesplit.graph import Graph
from edgesplit.plan import check_plan, evaluate, solve
from edgesplit.plan.planner import analyse, plan_two_tier
from edgesplit.plan.problem import Problem
from edgesplit.plan.tradeoff import pareto_front, weighted_sum
from edgesplit.plan.two_tier import TwoTierInputs, problem_table

from .conftest import independent

Make = Callable[..., Problem]

GRAPHS = ("mnist_graph", "alexnet_graph", "dag_graph")


@pytest.mark.parametrize("graph_name", GRAPHS)
def test_every_row_matches_the_evaluator(
    graph_name: str, request: pytest.FixtureRequest, make_problem: Make
) -> None:
    graph: Graph = request.getfixturevalue(graph_name)
    problem = make_problem(graph, seed=1)
    table = problem_table(problem)
    n = len(graph.nodes)
    for k in range(n + 1):
        assignment = [0 if i < k else 1 for i in range(n)]
        ev = evaluate(problem, assignment)
        row = table.row(k)
        _, latency, _ = independent(problem, assignment)
        assert row["latency_s"] == pytest.approx(latency, rel=1e-12)
        assert row["latency_s"] == pytest.approx(ev.latency_s, rel=1e-12)
        assert row["comm_s"] == pytest.approx(ev.comm_s, rel=1e-12, abs=1e-15)
        assert row["cost"] == pytest.approx(ev.cost, rel=1e-12, abs=1e-18)
        assert row["energy_j"] == pytest.approx(ev.energy_j, rel=1e-12, abs=1e-15)
    # a DAG cut sends every crossing tensor: cut bytes equal the graph's crossing set
    for k in range(1, n):
        assert table.bytes[k] == graph.cut(k).bytes


def test_dag_cuts_send_skip_tensors(dag_graph: Graph, make_problem: Make) -> None:
    table = problem_table(make_problem(dag_graph, seed=0))
    multi = [k for k in range(1, len(dag_graph.nodes)) if len(dag_graph.cut(k).tensors) > 1]
    assert multi, "the fixture must have a cut crossing two tensors"
    for k in multi:
        assert table.bytes[k] == sum(t.nbytes for t in dag_graph.cut(k).tensors)


@pytest.mark.parametrize("graph_name", GRAPHS)
@pytest.mark.parametrize("objective", ["latency", "cost", "energy"])
def test_optima_match_exhaustive(
    graph_name: str, objective: str, request: pytest.FixtureRequest, make_problem: Make
) -> None:
    graph: Graph = request.getfixturevalue(graph_name)
    for seed in range(5):
        problem = make_problem(graph, seed=seed, objective=objective)
        fast = solve(problem, "two-tier")
        brute = solve(problem, "exhaustive")
        check_plan(problem, fast)
        assert fast.cut == brute.cut
        assert fast.predicted[
            f"{objective}_s"
            if objective == "latency"
            else ("cost" if objective == "cost" else "energy_j")
        ] == pytest.approx(brute.predicted["objective_value"], rel=1e-12)


def _dominated(i: int, lat: list[float], cost: list[float]) -> bool:
    return any(
        lat[j] <= lat[i] and cost[j] <= cost[i] and (lat[j] < lat[i] or cost[j] < cost[i])
        for j in range(len(lat))
    )


def test_pareto_front_is_exact_on_random_and_tied_points() -> None:
    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(1, 25))
        # small integer grids produce many ties and duplicates
        lat = [float(v) for v in rng.integers(0, 6, n)]
        cost = [float(v) for v in rng.integers(0, 6, n)] if trial % 2 else list(rng.random(n))
        front = set(pareto_front(lat, cost))
        expected = {i for i in range(n) if not _dominated(i, lat, cost)}
        assert front == expected


def test_pareto_of_a_table(alexnet_graph: Graph, make_problem: Make) -> None:
    result = analyse(make_problem(alexnet_graph, seed=3))
    c = result.candidates
    lat, cost = list(c.latency_s), list(c.cost)
    assert set(result.pareto) == {i for i in range(len(c)) if not _dominated(i, lat, cost)}
    assert result.ol in result.pareto and result.oc in result.pareto
    for name, plan in result.plans.items():
        ev = check_plan(make_problem(alexnet_graph, seed=3), plan)
        assert plan.cut == result.to_dict()["optimal"][name]
        assert ev.latency_s == pytest.approx(c.latency_s[plan.cut])


def test_normalised_weighted_sum_is_brute_force(alexnet_graph: Graph, make_problem: Make) -> None:
    for seed in range(5):
        c = problem_table(make_problem(alexnet_graph, seed=seed))
        lat, cost = c.latency_s, c.cost
        for w in (0.0, 0.2, 0.5, 0.8, 1.0):
            ln = (lat - lat.min()) / (lat.max() - lat.min())
            cn = (cost - cost.min()) / (cost.max() - cost.min())
            score = (1 - w) * ln + w * cn
            best = min(range(len(c)), key=lambda k: (round(score[k], 15), lat[k], cost[k], k))
            assert weighted_sum(c, w) == best


def test_memory_limits_exclude_cuts(mnist_graph: Graph, make_problem: Make) -> None:
    base = make_problem(mnist_graph, seed=0)
    mem = base.node_memory_bytes
    # the edge can hold only the first two nodes
    cap = float(mem[:2].sum())
    problem = replace(base, memory_bytes=(cap, None))
    table = problem_table(problem)
    assert list(np.flatnonzero(table.feasible)) == [0, 1, 2]
    plan = solve(problem.with_objective("latency"), "two-tier")
    assert plan.cut is not None and plan.cut <= 2
    assert plan.cut == solve(problem, "exhaustive").cut
    tiny = replace(base, memory_bytes=(cap, 1.0))
    with pytest.raises(InfeasiblePlanError):
        solve(tiny, "two-tier")


@pytest.mark.parametrize("strategy", ["own", "rent"])
def test_fast_replan_matches_problem_path(
    alexnet_graph: Graph, strategy: str, make_problem: Make
) -> None:
    problem = make_problem(alexnet_graph, seed=7)
    inputs = TwoTierInputs.from_problem(problem)
    link = problem.link(0, 1)
    assert link is not None
    for objective, w in itertools.product(("latency", "cost", "weighted"), (0.0, 0.55, 1.0)):
        fast = plan_two_tier(
            inputs,
            bandwidth_bps=link.rate_bps,
            rtt_s=link.rtt,
            objective=objective,
            weight=w,
            strategy=strategy,
        )
        owned = replace(
            problem,
            price_per_second=(0.0 if strategy == "own" else 0.224 / 3600, 0.1664 / 3600),
            power=(None, None),
            objective=objective,
            weight=w,
        )
        assert fast.cut == solve(owned, "two-tier").cut
        ev = check_plan(owned, fast)
        assert math.isclose(ev.latency_s, fast.predicted["latency_s"], rel_tol=1e-12)
    own_cost = plan_two_tier(inputs, bandwidth_bps=1e6, rtt_s=0.0, objective="cost", strategy="own")
    assert own_cost.cut == len(alexnet_graph.nodes)  # owned edge: all-in-edge is free
