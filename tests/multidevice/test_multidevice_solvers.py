"""Every registered multi-device solver on the same fixtures (issue 11, point 4).

Each result is checked against two oracles written here, not in the package:

* :func:`completion_times`, an evaluator of Gao et al. (2019) eq. 4-9 from the
  definitions: a device computes its head locally, uploads the cut tensor over its own
  uplink (eq. 3, plus half the link's RTT when something is sent), and the server runs one
  subtask at a time in the solver's order, each as early as its predecessor and the server
  allow;
* :func:`brute_force`, the minimum of that evaluator over every split of every device and
  every interleaving of the server tails.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterator, Sequence

import pytest
from scipy.optimize import OptimizeResult

from edgesplit.errors import InputError, SolverError
from edgesplit.multidevice import DeviceCosts, MecProblem, evaluate, solve
from edgesplit.multidevice.problem import job_sequence
from edgesplit.multidevice.solve import EXACT, SOLVERS
from edgesplit.system.link import Link

Make = Callable[[int, int, tuple[int, int]], MecProblem]
Subtask = tuple[int, int]

# (seed, devices, layers per device, uplink RTT in seconds): small enough for brute force.
FIXTURES = (
    [(seed, 2, (1, 5), 0.0) for seed in range(6)]
    + [(seed, 3, (1, 3), 0.0) for seed in range(6, 12)]
    + [(seed, 2, (2, 4), 2.0) for seed in range(12, 14)]
)


def completion_times(
    problem: MecProblem, splits: Sequence[int], sequence: Sequence[Subtask]
) -> list[float]:
    """Each device's completion time (eq. 4-9) for a split per device and a server order."""
    devices = problem.devices
    ready, finish, next_layer = [], [], list(splits)
    for d, k in zip(devices, splits):
        head = sum(d.local_s[:k])
        sent = d.cut_bytes[k] if k < d.m else 0
        upload = sent * 8 / d.uplink.bandwidth + d.uplink.rtt / 2 if sent else 0.0
        ready.append(head + upload)
        finish.append(head if k == d.m else math.nan)
    server_free = 0.0
    for i, j in sequence:
        assert j == next_layer[i], f"layer {j} of device {i} runs out of order"
        start = max(server_free, ready[i])
        server_free = ready[i] = start + devices[i].server_s[j]
        next_layer[i] += 1
        if j == devices[i].m - 1:
            finish[i] = server_free
    assert next_layer == [d.m for d in devices], "a server subtask was never run"
    return finish


def _interleavings(tails: list[list[Subtask]]) -> Iterator[list[Subtask]]:
    if not any(tails):
        yield []
        return
    for i, tail in enumerate(tails):
        if tail:
            rest = [t[1:] if p == i else t for p, t in enumerate(tails)]
            for seq in _interleavings(rest):
                yield [tail[0], *seq]


def brute_force(problem: MecProblem, splits: Sequence[int] | None = None) -> float:
    """Least average completion over every split (or the given ones) and every order."""
    devices = problem.devices
    choices = [range(d.m + 1) for d in devices] if splits is None else [[k] for k in splits]
    best = math.inf
    for ks in itertools.product(*choices):
        tails = [[(i, j) for j in range(k, d.m)] for i, (d, k) in enumerate(zip(devices, ks))]
        for seq in _interleavings(tails):
            best = min(best, sum(completion_times(problem, ks, seq)) / problem.n)
    return best


_OPTIMA: dict[tuple[object, ...], float] = {}


def _problem(make_problem: Make, seed: int, n: int, m_range: tuple[int, int], rtt: float):  # type: ignore[no-untyped-def]
    problem = make_problem(seed, n, m_range)
    if rtt:
        uplink = Link.of(8.0, rtt_s=rtt)
        problem = MecProblem(tuple(dataclasses.replace(d, uplink=uplink) for d in problem.devices))
    key = (seed, n, m_range, rtt)
    if key not in _OPTIMA:  # shared by every solver's test on this fixture
        _OPTIMA[key] = brute_force(problem)
    return problem, _OPTIMA[key]


@pytest.mark.parametrize(("seed", "n", "m_range", "rtt"), FIXTURES)
@pytest.mark.parametrize("name", list(SOLVERS))
def test_every_solver_against_brute_force_and_the_independent_evaluator(
    name: str, seed: int, n: int, m_range: tuple[int, int], rtt: float, make_problem: Make
) -> None:
    problem, optimum = _problem(make_problem, seed, n, m_range, rtt)
    result = solve(problem, name, time_limit=30)
    finish = completion_times(problem, result.splits, result.server_sequence)
    assert result.average_s == pytest.approx(sum(finish) / problem.n, abs=1e-9)
    assert [r.completion_s for r in result.devices] == pytest.approx(finish, abs=1e-9)
    busy = sorted((s.start_s, s.finish_s) for s in result.segments)
    assert all(b[0] >= a[1] - 1e-9 for a, b in zip(busy, busy[1:])), "server overlap"
    sent = sum(d.cut_bytes[k] for d, k in zip(problem.devices, result.splits) if k < d.m)
    assert result.transmitted_bytes == sent
    if name in EXACT:
        assert result.status == "optimal"
        assert result.average_s == pytest.approx(optimum, abs=1e-6)
    else:
        assert result.average_s >= optimum - 1e-9
    if name == "local":
        assert result.splits == tuple(d.m for d in problem.devices) and sent == 0
    if name == "server":  # the best order with everything offloaded
        assert result.splits == (0,) * problem.n
        assert result.average_s == pytest.approx(brute_force(problem, result.splits), abs=1e-6)


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
    assert brute_force(problem) == pytest.approx(13 / 2)
    for name in EXACT:
        assert solve(problem, name).average_s == pytest.approx(13 / 2), name
    whole_tails = job_sequence(problem, [0, 0], [1, 0])
    assert sum(completion_times(problem, [0, 0], whole_tails)) / 2 == pytest.approx(14 / 2)
    # The heuristic's final layer-level SRPT pass finds the interleaving too.
    heuristic = solve(problem, "heuristic")
    assert heuristic.average_s == pytest.approx(13 / 2) and heuristic.meta["interleaved"]


def test_heuristic_is_feasible_and_beats_local_for_many_devices(make_problem: Make) -> None:
    problem = make_problem(1, 100, (5, 20))
    result = solve(problem, "heuristic")
    finish = completion_times(problem, result.splits, result.server_sequence)
    assert result.average_s == pytest.approx(sum(finish) / problem.n)
    assert result.average_s <= solve(problem, "local").average_s + 1e-9


def test_evaluator_rejects_bad_sequences(make_problem: Make) -> None:
    problem = make_problem(2, 2, (2, 2))
    splits = [0, 2]
    with pytest.raises(InputError, match="once"):
        evaluate(problem, splits, [(0, 0)])
    with pytest.raises(InputError, match="out of order"):
        evaluate(problem, splits, [(0, 1), (0, 0)])
    ok = evaluate(problem, splits, job_sequence(problem, splits, [0]))
    assert ok.devices[1].completion_s == sum(problem.devices[1].local_s)


def test_cpsat_time_limit_keeps_a_valid_bound(make_problem: Make) -> None:
    problem = make_problem(49, 3, (3, 5))
    result = solve(problem, "cpsat", time_limit=5)
    assert result.bound_s is not None and result.bound_s <= brute_force(problem) + 1e-9


def test_the_front_door_refuses_unknown_solvers_and_limits(make_problem: Make) -> None:
    problem = make_problem(0, 2, (1, 3))
    with pytest.raises(InputError, match=r"--solver must be one of milp, cpsat.*'gurobi'"):
        solve(problem, "gurobi")
    with pytest.raises(InputError, match="--time-limit must be positive"):
        solve(problem, "milp", time_limit=0)


@pytest.mark.parametrize(
    ("status", "error", "match"),
    [(1, InputError, "no schedule within .* raise --time-limit"), (4, SolverError, "HiGHS")],
)
def test_milp_failure_raises_instead_of_answering_with_another_solver(
    make_problem: Make, monkeypatch: pytest.MonkeyPatch, status: int, error: type, match: str
) -> None:
    import edgesplit.multidevice.milp as milp_module

    failed = OptimizeResult(x=None, status=status, message="stopped", success=False)
    monkeypatch.setattr(milp_module, "milp", lambda *args, **kwargs: failed)
    with pytest.raises(error, match=match):
        solve(make_problem(0, 2, (1, 3)), "milp")
