"""Every solver on the same fixtures: exact = brute force, GA >= exact, Edgent's own optimum."""

from __future__ import annotations

import pytest

from edgesplit.earlyexit.edgent import best_partition, solve_edgent
from edgesplit.earlyexit.exact import solve_exact
from edgesplit.earlyexit.ga import chromosome_bits, linear_scaling, solve_ga
from edgesplit.earlyexit.problem import EarlyExitProblem


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("loading", [True, False])
def test_exact_equals_brute_force_random(seed: int, loading: bool, brute, make_random) -> None:
    problem = make_random(seed, loading)
    plan = solve_exact(problem)
    best = brute(problem)
    assert plan.predicted["expected_latency_s"] == pytest.approx(best, rel=1e-12)
    # The DP's own objective agrees with the independent evaluator.
    assert plan.meta["dp_objective_s"] == pytest.approx(best, rel=1e-9)


def test_exact_equals_brute_force_on_tiny_branchy(tiny_problem, brute) -> None:
    problem, _ = tiny_problem
    assert problem.n_layers == 8
    plan = solve_exact(problem)
    assert plan.predicted["expected_latency_s"] == pytest.approx(brute(problem), rel=1e-12)


def test_exact_two_tiers(tiny_problem, brute) -> None:
    problem, _ = tiny_problem
    two = EarlyExitProblem(**{**problem.__dict__, "tiers": (0, 1)})
    plan = solve_exact(two)
    assert set(plan.meta["genes"]) <= {0, 1}
    assert plan.predicted["expected_latency_s"] == pytest.approx(brute(two), rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_ga_never_beats_exact(seed: int, tiny_problem, make_random) -> None:
    for problem in (make_random(seed), tiny_problem[0]):
        exact = solve_exact(problem).predicted["expected_latency_s"]
        ga = solve_ga(problem, generations=20, population=20, seed=seed)
        assert ga.predicted["expected_latency_s"] >= exact - 1e-12
        hist = ga.meta["history"]
        assert len(hist) == 21
        assert all(h["best_s"] <= h["mean_s"] + 1e-12 for h in hist)
        assert all(a["best_s"] >= b["best_s"] for a, b in zip(hist, hist[1:]))


def test_ga_reaches_optimum_on_small_problem(make_random) -> None:
    problem = make_random(1)
    exact = solve_exact(problem).predicted["expected_latency_s"]
    ga = solve_ga(problem, generations=50, population=60, seed=0)
    assert ga.predicted["expected_latency_s"] == pytest.approx(exact, rel=1e-12)


def test_linear_scaling_keeps_mean_and_order() -> None:
    raw = [1.0, 2.0, 3.0, 10.0]
    scaled = linear_scaling(raw, 2.0)
    assert sum(scaled) / 4 == pytest.approx(sum(raw) / 4)
    assert scaled == sorted(scaled) and min(scaled) >= 0
    assert max(scaled) == pytest.approx(2.0 * sum(raw) / 4) or min(scaled) == 0.0


def test_chromosome_bits_one_hot() -> None:
    assert chromosome_bits([0, 2, 1]) == "100001010"


def test_edgent_picks_shallowest_exit_and_best_point(tiny_problem) -> None:
    problem, _ = tiny_problem
    plan = solve_edgent(problem, requirement=0.6)
    assert plan.meta["exit"] == 2  # accuracies 0.5, 0.62, 0.7
    k = 2
    chain = problem.chain(k)
    brute = min(
        problem.latency(k, [0 if i in chain[:pt] else 1 for i in range(problem.n_layers)])[
            "total_s"
        ]
        for pt in range(len(chain) + 1)
    )
    assert best_partition(problem, k)[1] == pytest.approx(brute)
    assert plan.predicted["latency_exit_2_s"] == pytest.approx(brute)
    assert (
        plan.predicted["expected_latency_s"]
        >= solve_exact(problem).predicted["expected_latency_s"] - 1e-12
    )


def test_edgent_deadline_picks_deepest_feasible(tiny_problem) -> None:
    problem, _ = tiny_problem
    lat = [best_partition(problem, k)[1] for k in (1, 2, 3)]
    plan = solve_edgent(problem, deadline_s=max(lat) + 1.0)
    assert plan.meta["exit"] == 3


def test_exit_without_probability_still_placed_well(make_random, brute) -> None:
    import itertools

    base = make_random(2)
    problem = EarlyExitProblem(**{**base.__dict__, "probabilities": (0.0, 0.5, 0.5)})
    plan = solve_exact(problem)
    assert plan.predicted["expected_latency_s"] == pytest.approx(brute(problem), rel=1e-12)
    genes = list(plan.meta["genes"])
    best_exit1 = min(
        problem.latency(1, genes[:5] + list(b) + genes[7:])["total_s"]
        for b in itertools.product(problem.tiers, repeat=2)
    )
    assert plan.predicted["latency_exit_1_s"] == pytest.approx(best_exit1)
