"""Registry solvers (mincut, ilp, relax, heuristic) on planner Problems over real DAG graphs:
brute force agreement, independent re-evaluation and exact execution."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from edgesplit.graph import trace
from edgesplit.graph.partition import partition
from edgesplit.plan import LinkModel, Problem, check_plan
from edgesplit.plan.exhaustive import solve as exhaustive
from edgesplit.plan.placement_problem import contiguous_violations, execution_parts
from edgesplit.plan.registry import solve


class TinyResidual(nn.Module):
    """A ResNet/GoogLeNet-like DAG small enough for exhaustive enumeration (11 nodes)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.left = nn.Conv2d(8, 8, 3, padding=1)
        self.right = nn.Conv2d(8, 8, 1)
        self.mix = nn.Conv2d(8, 4, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        h = self.act(self.stem(x))
        y = self.left(h) + self.right(h)
        z = torch.cat([self.mix(y), self.mix(h)], dim=1)
        return self.fc(torch.flatten(self.pool(z[:, :4]), 1))


@pytest.fixture(scope="module")
def tiny():
    model = TinyResidual().eval()
    x = torch.randn(1, 3, 8, 8)
    return model, x, trace(model, x, name="tiny")


def random_problem(graph, seed, k, rtt=1e-4, objective="latency"):
    """Per-node times drawn independently per device, links fast enough that splitting pays."""
    rng = np.random.default_rng(seed)
    n = len(graph.nodes)
    secs = rng.uniform(0.5e-3, 5e-3, (k, n))
    links = {
        frozenset((i, j)): LinkModel(float(rng.uniform(5e6, 5e7)), rtt)
        for i in range(k)
        for j in range(i + 1, k)
    }
    return Problem(
        graph=graph,
        devices=tuple(f"d{i}" for i in range(k)),
        seconds=secs,
        links=links,
        price_per_second=tuple(float(p) for p in rng.uniform(0, 1e-3, k)),
        objective=objective,
    )


def run_plan(model, x, graph, plan):
    split = partition(graph, execution_parts(graph, plan.assignment))
    with torch.no_grad():
        assert torch.equal(split(x), model(x))


SPLITS: set[int] = set()


@pytest.mark.parametrize("seed", range(4))
def test_two_tier_solvers_match_brute_force(tiny, seed):
    model, x, graph = tiny
    problem = random_problem(graph, seed, 2)
    best = exhaustive(problem, space="all")
    opt = best.predicted["objective_value"]
    if len(set(best.assignment)) > 1:
        SPLITS.add(seed)
    for name in ("mincut", "ilp"):
        plan = solve(problem, name)
        check_plan(problem, plan)
        assert plan.predicted["objective_value"] == pytest.approx(opt, rel=1e-7), name
        assert not contiguous_violations(graph, plan.assignment)
        run_plan(model, x, graph, plan)
    for name in ("heuristic", "relax"):
        plan = solve(problem, name)
        check_plan(problem, plan)
        assert plan.predicted["objective_value"] >= opt * (1 - 1e-9)
        run_plan(model, x, graph, plan)


def test_fixtures_produce_real_splits():
    """Guard on the fixture: the optima above are not all single-device placements."""
    assert len(SPLITS) >= 2


@pytest.mark.parametrize("seed", range(2))
def test_three_devices_ilp_matches_brute_force(tiny, seed):
    model, x, graph = tiny
    problem = random_problem(graph, 10 + seed, 3)
    opt = exhaustive(problem, space="all").predicted["objective_value"]
    plan = solve(problem, "ilp")
    check_plan(problem, plan)
    assert plan.predicted["objective_value"] == pytest.approx(opt, rel=1e-7)
    run_plan(model, x, graph, plan)
    heur = solve(problem, "heuristic")
    assert heur.predicted["objective_value"] >= opt * (1 - 1e-9)
    run_plan(model, x, graph, heur)


@pytest.mark.parametrize("objective", ["cost", "weighted"])
def test_ilp_and_mincut_other_objectives(tiny, objective):
    _, _, graph = tiny
    problem = random_problem(graph, 3, 2, objective=objective)
    opt = exhaustive(problem, space="all").predicted["objective_value"]
    for name in ("ilp", "mincut"):
        assert solve(problem, name).predicted["objective_value"] == pytest.approx(opt, rel=1e-7)


def test_mincut_sends_a_shared_tensor_once(tiny):
    """``h`` feeds left, right and mix: with all of them on the cloud it is sent once."""
    _, _, graph = tiny
    n = len(graph.nodes)
    edge = [1.0] * n
    cloud = [1e-6] * n
    # stem and act stay on the edge (cloud cannot run them)
    cloud[0] = cloud[1] = math.inf
    problem = Problem.two_tier(graph, edge, cloud, bandwidth_bps=1e9, rtt_s=0.0)
    plan = solve(problem, "mincut")
    check_plan(problem, plan)
    sent = graph.tensor(graph.nodes[1].outputs[0]).nbytes
    out = sum(graph.tensor(t).nbytes for t in graph.output_names)
    assert plan.predicted["comm_s"] == pytest.approx((sent + out) * 8 / 1e9)


def test_mincut_refuses_more_than_two_devices(tiny):
    from edgesplit.errors import InputError

    with pytest.raises(InputError, match="two devices"):
        solve(random_problem(tiny[2], 0, 3), "mincut")


@pytest.mark.slow
def test_mobilenet_layer_plans_execute_exactly():
    from edgesplit.models import build

    model, x = build("mobilenet_v2", (1, 3, 64, 64))
    model.eval()
    graph = trace(model, x, name="mobilenet_v2")
    problem = random_problem(graph, 5, 2, rtt=0.01)
    with torch.no_grad():
        want = model(x)
    for name in ("mincut", "heuristic"):
        plan = solve(problem, name)
        check_plan(problem, plan)
        split = partition(graph, execution_parts(graph, plan.assignment))
        with torch.no_grad():
            assert torch.equal(split(x), want)


@pytest.mark.parametrize("seed", range(2))
def test_critical_path_placements_on_a_dag_execute_exactly(tiny, seed):
    """Tarnawski-semantics solvers on our own DAG: map back to graph nodes and run."""
    from edgesplit.placement import evaluate
    from edgesplit.plan import heuristic, milp
    from edgesplit.plan.placement_problem import from_instance_assignment, problem_to_instance

    model, x, graph = tiny
    problem = random_problem(graph, 20 + seed, 3)
    inst, devices = problem_to_instance(problem)
    for result in (milp.place(inst, time_limit=30), heuristic.place(inst)):
        assert evaluate(inst, result.assignment).latency == pytest.approx(result.latency)
        assignment = from_instance_assignment(inst, devices, result.assignment)
        split = partition(graph, execution_parts(graph, assignment))
        with torch.no_grad():
            assert torch.equal(split(x), model(x))
