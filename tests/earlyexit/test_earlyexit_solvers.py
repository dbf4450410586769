"""Every registered early-exit solver on the same fixtures (issue 11, point 4).

Each plan is checked against two oracles written here, not in the package:

* :func:`exit_latency` / :func:`expected_latency`, Pre-DNNOff (Zuo 2024) eq. 4.4-4.8 from
  the paper's ``Sel`` indicators: execution on the selected tier (eq. 4.4), transmission
  ``(|ΔSel_0| / v_wireless + |ΔSel_2| / v_wired) · Output`` between consecutive layers,
  from the input on the mobile device and back to it after the exit (eq. 4.5), plus each
  used tier's loading intercept and the exit's parsing time, weighted by the exit
  probabilities (eq. 4.8);
* :func:`brute_force`, the minimum of that objective over every assignment of layers to
  the allowed tiers.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from edgesplit.earlyexit.edgent import best_partition
from edgesplit.earlyexit.ga import chromosome_bits, linear_scaling
from edgesplit.earlyexit.problem import EarlyExitProblem
from edgesplit.earlyexit.solve import EXACT, SOLVERS, solve
from edgesplit.errors import InfeasiblePlanError, InputError

MOBILE, EDGE, CLOUD = 0, 1, 2
# Options per solver: the GA small enough for the test, Edgent at a stated requirement.
OPTIONS = {"ga": {"generations": 20, "population": 20, "seed": 0}, "edgent": {"requirement": 0.6}}
FIXTURES = [f"random{seed}-{'load' if load else 'noload'}" for seed in range(4) for load in (1, 0)]
FIXTURES += ["tiny", "tiny-two-tiers", "random2-first-exit-unused"]


def chain(problem: EarlyExitProblem, k: int) -> list[int]:
    """Layers of exit ``k`` (1-based): trunk segments 1..k, then side branch k."""
    layers = [i for segment in problem.trunk[:k] for i in segment]
    return layers + (list(problem.branches[k - 1]) if k < len(problem.trunk) else [])


def exit_latency(problem: EarlyExitProblem, genes: Sequence[int], k: int) -> float:
    """Eq. 4.6 (with loading and parsing) of exit ``k``."""
    sel0 = [1 if t == MOBILE else 0 for t in genes]
    sel2 = [1 if t == CLOUD else 0 for t in genes]
    path = chain(problem, k)
    execution = sum(problem.layers[i].seconds[genes[i]] for i in path)
    prev0, prev2, out = 1, 0, problem.input_bytes  # the input is on the mobile device
    transmission = 0.0
    for i in [*path, None]:  # None: the result returns to the mobile device
        cur0, cur2 = (1, 0) if i is None else (sel0[i], sel2[i])
        rate = abs(cur0 - prev0) / problem.wireless_bps + abs(cur2 - prev2) / problem.wired_bps
        transmission += rate * out * 8
        if i is not None:
            prev0, prev2, out = cur0, cur2, problem.layers[i].output_bytes
    loading = sum(problem.loading[t] for t in {genes[i] for i in path})
    return execution + transmission + loading + problem.parsing[k - 1]


def expected_latency(problem: EarlyExitProblem, genes: Sequence[int]) -> float:
    """Eq. 4.8: exit latencies weighted by the probability that each exit serves."""
    return sum(
        p * exit_latency(problem, genes, k) for k, p in enumerate(problem.probabilities, 1) if p
    )


def brute_force(problem: EarlyExitProblem) -> float:
    return min(
        expected_latency(problem, genes)
        for genes in itertools.product(problem.tiers, repeat=len(problem.layers))
    )


_CACHE: dict[str, tuple[EarlyExitProblem, float]] = {}


@pytest.fixture
def case(request: pytest.FixtureRequest, make_random, tiny_problem):  # type: ignore[no-untyped-def]
    """A fixture problem by name and its brute-force optimum (computed once per name)."""
    name = request.param
    if name not in _CACHE:
        if name.startswith("tiny"):
            problem = tiny_problem[0]
            if name == "tiny-two-tiers":
                problem = EarlyExitProblem(**{**problem.__dict__, "tiers": (MOBILE, EDGE)})
        elif name == "random2-first-exit-unused":
            base = make_random(2)
            problem = EarlyExitProblem(**{**base.__dict__, "probabilities": (0.0, 0.5, 0.5)})
        else:
            seed, load = name.removeprefix("random").split("-")
            problem = make_random(int(seed), load == "load")
        _CACHE[name] = (problem, brute_force(problem))
    return _CACHE[name]


@pytest.mark.parametrize("case", FIXTURES, indirect=True)
@pytest.mark.parametrize("name", list(SOLVERS))
def test_every_solver_against_brute_force_and_the_independent_evaluator(name, case) -> None:  # type: ignore[no-untyped-def]
    problem, optimum = case
    plan = solve(problem, name, **OPTIONS.get(name, {}))
    genes = plan.meta["genes"]
    assert len(genes) == len(problem.layers) and set(genes) <= set(problem.tiers)
    for layer, tier in zip(problem.layers, genes):  # the plan runs each layer where it says
        assert plan.devices[plan.assignment[layer.node_index]] == ("mobile", "edge", "cloud")[tier]
    assert plan.predicted["expected_latency_s"] == pytest.approx(
        expected_latency(problem, genes), rel=1e-12
    )
    for k in range(1, len(problem.trunk) + 1):
        assert plan.predicted[f"latency_exit_{k}_s"] == pytest.approx(
            exit_latency(problem, genes, k), rel=1e-12
        )
    if name in EXACT:
        assert plan.predicted["expected_latency_s"] == pytest.approx(optimum, rel=1e-12)
    else:
        assert plan.predicted["expected_latency_s"] >= optimum * (1 - 1e-12)
    if name == "edgent":  # one exit's chain: a mobile prefix, then the edge, and the edge
        path = chain(problem, plan.meta["exit"])  # hosts every other layer
        point = plan.meta["partition_point"]
        assert [genes[i] for i in path] == [MOBILE] * point + [EDGE] * (len(path) - point)
        assert all(genes[i] == EDGE for i in range(len(genes)) if i not in path)


def test_ga_history_is_monotone_and_reaches_the_optimum_on_a_small_problem(make_random) -> None:
    problem = make_random(1)
    plan = solve(problem, "ga", generations=50, population=60, seed=0)
    assert plan.predicted["expected_latency_s"] == pytest.approx(brute_force(problem), rel=1e-12)
    hist = plan.meta["history"]
    assert len(hist) == 51
    assert all(h["best_s"] <= h["mean_s"] + 1e-12 for h in hist)
    assert all(a["best_s"] >= b["best_s"] for a, b in zip(hist, hist[1:]))


def test_linear_scaling_keeps_mean_and_order() -> None:
    raw = [1.0, 2.0, 3.0, 10.0]
    scaled = linear_scaling(raw, 2.0)
    assert sum(scaled) / 4 == pytest.approx(sum(raw) / 4)
    assert scaled == sorted(scaled) and min(scaled) >= 0
    assert max(scaled) == pytest.approx(2.0 * sum(raw) / 4) or min(scaled) == 0.0


def test_chromosome_bits_one_hot() -> None:
    assert chromosome_bits([0, 2, 1]) == "100001010"


def test_edgent_picks_the_shallowest_sufficient_exit_and_its_best_point(tiny_problem) -> None:
    problem, _ = tiny_problem
    plan = solve(problem, "edgent", requirement=0.6)
    assert plan.meta["exit"] == 2  # accuracies 0.5, 0.62, 0.7
    path = chain(problem, 2)
    best = min(
        exit_latency(problem, [MOBILE if i in path[:pt] else EDGE for i in range(8)], 2)
        for pt in range(len(path) + 1)
    )
    assert best_partition(problem, 2)[1] == pytest.approx(best)
    assert plan.predicted["latency_exit_2_s"] == pytest.approx(best)


def test_edgent_deadline_picks_the_deepest_feasible_exit(tiny_problem) -> None:
    problem, _ = tiny_problem
    latencies = [best_partition(problem, k)[1] for k in (1, 2, 3)]
    assert solve(problem, "edgent", deadline_s=max(latencies) + 1.0).meta["exit"] == 3
    with pytest.raises(InfeasiblePlanError, match="deadline"):
        solve(problem, "edgent", deadline_s=min(latencies) / 2)


def test_edgent_takes_the_mean_requirement_when_given_none(tiny_problem) -> None:
    problem, _ = tiny_problem
    with_mean = EarlyExitProblem(**{**problem.__dict__, "meta": {"mean_requirement": 0.6}})
    assert solve(with_mean, "edgent").meta["requirement"] == 0.6


def test_the_front_door_refuses_unknown_solvers_and_options(make_random) -> None:
    problem = make_random(0)
    with pytest.raises(InputError, match=r"--solver must be one of exact, ga, edgent.*'milp'"):
        solve(problem, "milp")
    with pytest.raises(InputError, match=r"solver 'exact' takes no option 'generations'"):
        solve(problem, "exact", generations=5)
    with pytest.raises(InputError, match="GA needs generations >= 1"):
        solve(problem, "ga", generations=0)
