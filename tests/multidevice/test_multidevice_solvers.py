"""Every solver on the same fixtures, checked against brute force and the evaluator."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from edgesplit.multidevice import DeviceCosts, MecProblem, evaluate, solve
from edgesplit.multidevice.bruteforce import solve_bruteforce
from edgesplit.multidevice.heuristic import solve_heuristic
from edgesplit.multidevice.problem import job_sequence
from edgesplit.system.link import Link

Make = Callable[[int, int, tuple[int, int]], MecProblem]

CASES = [(seed, 2, (1, 6)) for seed in range(6)] + [(seed, 3, (1, 4)) for seed in range(6, 14)]


def _independent_average(problem: MecProblem, schedule) -> float:  # type: ignore[no-untyped-def]
    """Recompute the average completion from the schedule's segments alone."""
    busy = sorted((s.start_s, s.finish_s) for s in schedule.segments)
    for (_, f), (s, _) in zip(busy, busy[1:]):
        assert s >= f - 1e-9, "server runs two subtasks at once"
    total = 0.0
    for i, (d, r) in enumerate(zip(problem.devices, schedule.devices)):
        k = r.split
        if k == d.m:
            total += sum(d.local_s)
            continue
        segs = sorted((s for s in schedule.segments if s.device == i), key=lambda s: s.first)
        assert segs[0].first == k and segs[-1].stop == d.m
        arrival = sum(d.local_s[:k]) + d.cut_bytes[k] * 8 / d.uplink.rate_bps
        assert segs[0].start_s >= arrival - 1e-9
        for seg in segs:
            assert seg.finish_s - seg.start_s == pytest.approx(
                sum(d.server_s[seg.first : seg.stop])
            )
        total += segs[-1].finish_s
    return total / problem.n


@pytest.mark.parametrize(("seed", "n", "m_range"), CASES)
def test_milp_cpsat_bruteforce_agree(
    seed: int, n: int, m_range: tuple[int, int], make_problem: Make
) -> None:
    problem = make_problem(seed, n, m_range)
    exact = solve_bruteforce(problem)
    for name in ("milp", "cpsat"):
        result = solve(problem, name, time_limit=30)
        assert result.status == "optimal"
        assert result.average_s == pytest.approx(exact.average_s, abs=1e-6), name
        assert _independent_average(problem, result) == pytest.approx(result.average_s)
    for name in ("heuristic", "local", "server"):
        result = solve(problem, name, time_limit=30)
        assert result.average_s >= exact.average_s - 1e-9, name
        assert _independent_average(problem, result) == pytest.approx(result.average_s)


def _device(name: str, local: list[float], server: list[float], cut: list[int]) -> DeviceCosts:
    return DeviceCosts(
        name=name,
        model="explicit",
        layers=tuple(f"l{j}" for j in range(len(local))),
        local_s=tuple(local),
        server_s=tuple(server),
        cut_bytes=tuple(cut),
        uplink=Link.of(8.0),
    )


def test_server_may_interleave_tails_between_layers() -> None:
    # A's long tail arrives at 0; B's short one at 1. Eq. 16 lets the server run A's first
    # layer, then B, then the rest of A: 2 + 11 = 13, against 14 for whole tails.
    problem = MecProblem(
        (
            _device("A", [100.0, 100.0], [1.0, 9.0], [0, 0, 0]),
            _device("B", [100.0], [1.0], [1, 0]),
        )
    )
    for name in ("bruteforce", "milp", "cpsat"):
        assert solve(problem, name).average_s == pytest.approx(13 / 2), name
    whole_tails = evaluate(problem, [0, 0], job_sequence(problem, [0, 0], [1, 0]))
    assert whole_tails.average_s == pytest.approx(14 / 2)
    # The heuristic's final layer-level SRPT pass finds the interleaving too.
    heuristic = solve(problem, "heuristic")
    assert heuristic.average_s == pytest.approx(13 / 2) and heuristic.meta["interleaved"]


def test_baselines_match_their_definitions(make_problem: Make) -> None:
    problem = make_problem(3, 3, (2, 5))
    local = solve(problem, "local")
    assert local.transmitted_bytes == 0
    assert local.average_s == pytest.approx(sum(sum(d.local_s) for d in problem.devices) / 3)
    server = solve(problem, "server")
    assert server.splits == (0, 0, 0)
    assert server.transmitted_bytes == sum(d.cut_bytes[0] for d in problem.devices)


def test_heuristic_is_fast_and_feasible_for_many_devices(make_problem: Make) -> None:
    problem = make_problem(1, 100, (5, 20))
    result = solve_heuristic(problem)
    again = evaluate(problem, result.splits, result.server_sequence)
    assert again.average_s == pytest.approx(result.average_s)
    assert result.average_s <= solve(problem, "local").average_s + 1e-9


def test_evaluator_rejects_bad_sequences(make_problem: Make) -> None:
    problem = make_problem(2, 2, (2, 2))
    splits = [0, 2]
    with pytest.raises(ValueError, match="once"):
        evaluate(problem, splits, [(0, 0)])
    with pytest.raises(ValueError, match="out of order"):
        evaluate(problem, splits, [(0, 1), (0, 0)])
    ok = evaluate(problem, splits, job_sequence(problem, splits, [0]))
    assert ok.devices[1].completion_s == sum(problem.devices[1].local_s)


def test_cpsat_fixed_splits_and_time_limit_keep_a_valid_bound(make_problem: Make) -> None:
    rng = random.Random(0)
    problem = make_problem(rng.randint(0, 99), 3, (3, 5))
    exact = solve_bruteforce(problem)
    result = solve(problem, "cpsat", time_limit=5)
    assert result.bound_s is not None and result.bound_s <= exact.average_s + 1e-9
