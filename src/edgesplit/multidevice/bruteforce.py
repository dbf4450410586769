"""Exhaustive oracle: every split of every device and every server order of the subtasks.

Enumerates the product of splits (``Π_i (M_i + 1)``) and, for each, every interleaving of
the devices' server tails that keeps each tail in layer order (a multinomial count). Each
interleaving's earliest schedule is optimal for that order (the objective, eq. 4, is
regular), so the minimum over all is the optimum of eq. 10-16. Exponential; the tests use
it on N <= 3, M <= 6 as the ground truth for the MILP and CP-SAT.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

from edgesplit.errors import InputError
from edgesplit.multidevice.problem import MecProblem, Schedule, Subtask, evaluate

MAX_ORDERS = 2_000_000


def solve_bruteforce(problem: MecProblem) -> Schedule:
    """The exact optimum by enumeration; refuses instances with too many orders."""
    t0 = time.perf_counter()
    best: tuple[float, tuple[int, ...], list[Subtask]] | None = None
    ranges = [range(d.m + 1) for d in problem.devices]
    budget = MAX_ORDERS
    for splits in itertools.product(*ranges):
        ready = [d.release(k) for d, k in zip(problem.devices, splits)]
        done = [
            float(d.local_prefix(d.m)) if k == d.m else 0.0 for d, k in zip(problem.devices, splits)
        ]
        remaining = [d.m - k for d, k in zip(problem.devices, splits)]
        seq: list[Subtask] = []
        for value, order in _orders(problem, list(splits), ready, remaining, done, 0.0, seq):
            budget -= 1
            if budget < 0:
                raise InputError("instance too large for brute force; use N <= 3 and M <= 6")
            if best is None or value < best[0] - 1e-12:
                best = (value, splits, order)
    assert best is not None
    return evaluate(
        problem,
        best[1],
        best[2],
        algorithm="bruteforce",
        status="optimal",
        solve_s=time.perf_counter() - t0,
        bound_s=best[0] / problem.n,
    )


def _orders(
    problem: MecProblem,
    splits: list[int],
    ready: list[float],
    remaining: list[int],
    done: list[float],
    t: float,
    seq: list[Subtask],
) -> Iterator[tuple[float, list[Subtask]]]:
    """Depth-first over interleavings; yields (sum of completions, sequence)."""
    if not any(remaining):
        yield sum(done), list(seq)
        return
    for i, left in enumerate(remaining):
        if not left:
            continue
        d = problem.devices[i]
        j = d.m - left
        start = max(t, ready[i])
        finish = start + d.server_s[j]
        saved = (ready[i], done[i])
        ready[i] = finish
        remaining[i] -= 1
        if remaining[i] == 0:
            done[i] = finish
        seq.append((i, j))
        yield from _orders(problem, splits, ready, remaining, done, finish, seq)
        seq.pop()
        remaining[i] += 1
        ready[i], done[i] = saved
