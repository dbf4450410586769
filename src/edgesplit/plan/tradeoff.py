"""Choices over a two-tier candidate table: OL, OC, optimal energy, Luger's Algorithm 1
(CL), a normalised weighted sum, and the exact latency–cost Pareto front.

Ties: every ``argmin`` here returns the lowest cut index among equal values (offload as
early as possible), and infeasible rows (memory) are never chosen. See
:func:`luger_tradeoff` for the rules of Algorithm 1 at its ends and in ties.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgesplit.errors import InfeasiblePlanError, InputError
from edgesplit.plan.two_tier import Candidates


def _rows(c: Candidates) -> np.ndarray:
    rows = np.flatnonzero(c.feasible)
    if rows.size == 0:
        raise InfeasiblePlanError(
            f"no cut of {c.model!r} fits the memory of {c.devices[0]!r} and {c.devices[1]!r}; "
            "raise a device's memory"
        )
    return rows


def argmin(values: np.ndarray, c: Candidates) -> int:
    """The feasible cut with the smallest value (lowest cut on ties). O(n)."""
    rows = _rows(c)
    return int(rows[np.argmin(values[rows])])


def optimal_latency(c: Candidates) -> int:
    """OL (Luger §4.3, Neurosurgeon): the cut with the lowest predicted total latency."""
    return argmin(c.latency_s, c)


def optimal_cost(c: Candidates) -> int:
    """OC (Luger eq. 4.4): the cut with the lowest predicted cost."""
    return argmin(c.cost, c)


def optimal_energy(c: Candidates) -> int:
    """The cut with the lowest predicted energy."""
    return argmin(c.energy_j, c)


def luger_tradeoff(latency: Sequence[float], cost: Sequence[float], weight: float) -> int:
    """Luger Algorithm 1 (§4.5): the weighted cost–latency match, as written. O(n log n).

    Both arrays of cut indices are sorted best first (``L`` fastest first, ``C`` cheapest
    first). The favoured objective gets an *advantage* of
    ``adv = floor(|entries|·|w − 0.5|·2)`` entries (§4.5: w = 0.55 with 20 entries gives 2):
    at step ``i`` (0-based) the first ``i+1`` entries of the favoured array are compared
    with the first ``i+1+adv`` entries of the other one, "along with the ones already
    compared", and the first common cut is returned. Following the thesis' w = 0.6
    example ("one entry of cost is compared with |entries|·((0.6−0.5)·2)+1 latency
    entries") cost is favoured for w > 0.5 and latency for w < 0.5.

    Behaviour written down:

    * ends: w = 0 gives adv = n, so the fastest cut meets the whole cost array at step 0
      and OL is returned; w = 1 returns OC the same way. For w in [0, 1] the result is
      always found by step ``n − 1 − adv`` (both heads then hold every cut).
    * w = 0.5: adv = 0, and cost is treated as the favoured array (only matters in ties).
    * ties in a sort: equal latencies are ordered by cost, then cut index (and equal
      costs by latency, then cut index), so dominated cuts sort behind dominating ones.
    * several matches in one step: the one ranked best in the favoured array wins
      (then best in the other array).
    * ``adv`` rounds down; a small epsilon absorbs binary error ((0.55−0.5)·2·20 is
      2.0000000000000018, and e.g. 0.15·2·20 would otherwise floor to 5 instead of 6).

    >>> luger_tradeoff([3.0, 1.0, 2.0], [1.0, 3.0, 2.0], 0.0)
    1
    >>> luger_tradeoff([3.0, 1.0, 2.0], [1.0, 3.0, 2.0], 1.0)
    0
    >>> luger_tradeoff([3.0, 1.0, 2.0], [1.0, 3.0, 2.0], 0.5)
    2
    """
    n = len(latency)
    if n == 0 or len(cost) != n:
        raise InputError("latency and cost need the same, non-zero number of entries")
    if not 0.0 <= weight <= 1.0:
        raise InputError(f"--weight must lie in [0, 1], not {weight}")
    by_lat = sorted(range(n), key=lambda i: (latency[i], cost[i], i))
    by_cost = sorted(range(n), key=lambda i: (cost[i], latency[i], i))
    favour_cost = weight >= 0.5
    fav, other = (by_cost, by_lat) if favour_cost else (by_lat, by_cost)
    adv = min(n, int(n * abs(weight - 0.5) * 2.0 + 1e-9))
    rank_fav = {c: r for r, c in enumerate(fav)}
    rank_other = {c: r for r, c in enumerate(other)}
    seen_fav: set[int] = set()
    seen_other: set[int] = set()
    taken_other = 0
    for i in range(n):
        matches = []
        seen_fav.add(fav[i])
        if fav[i] in seen_other:
            matches.append(fav[i])
        while taken_other < min(n, i + 1 + adv):
            cut = other[taken_other]
            seen_other.add(cut)
            taken_other += 1
            if cut in seen_fav:
                matches.append(cut)
        if matches:
            return min(matches, key=lambda c: (rank_fav[c], rank_other[c]))
    raise AssertionError("unreachable: both arrays hold every cut after n steps")


def luger_choice(c: Candidates, weight: float) -> int:
    """Algorithm 1 over the feasible rows of ``c``; returns a cut index."""
    rows = _rows(c)
    pick = luger_tradeoff(list(c.latency_s[rows]), list(c.cost[rows]), weight)
    return int(rows[pick])


def weighted_sum(c: Candidates, weight: float) -> int:
    """Normalised weighted sum: argmin (1−w)·L̂ + w·Ĉ with min–max normalised L and C.

    An alternative to Algorithm 1 that is monotone in w and always returns a Pareto-optimal
    cut for 0 < w < 1. A constant column normalises to 0. O(n).
    """
    if not 0.0 <= weight <= 1.0:
        raise InputError(f"--weight must lie in [0, 1], not {weight}")
    rows = _rows(c)

    def norm(x: np.ndarray) -> np.ndarray:
        span = float(x[rows].max() - x[rows].min())
        return (x - x[rows].min()) / span if span > 0 else np.zeros_like(x)

    score = (1.0 - weight) * norm(c.latency_s) + weight * norm(c.cost)
    # Equal scores: prefer the faster, then the cheaper cut, so ties never pick a dominated one.
    order = np.lexsort((rows, c.cost[rows], c.latency_s[rows], np.round(score[rows], 15)))
    return int(rows[order[0]])


def pareto_front(latency: Sequence[float], cost: Sequence[float]) -> list[int]:
    """Indices of every non-dominated (latency, cost) point, by increasing latency.

    A point is dominated when another is no worse in both and better in one; points with
    identical (latency, cost) do not dominate each other and are all kept. O(n log n).

    >>> pareto_front([1.0, 2.0, 3.0, 2.0], [3.0, 2.0, 1.0, 2.5])
    [0, 1, 2]
    """
    order = sorted(range(len(latency)), key=lambda i: (latency[i], cost[i], i))
    front: list[int] = []
    best_cost = float("inf")
    last: tuple[float, float] | None = None
    for i in order:
        point = (latency[i], cost[i])
        if cost[i] < best_cost or point == last:
            front.append(i)
            best_cost = min(best_cost, cost[i])
            last = point
    return front


def pareto_cuts(c: Candidates) -> list[int]:
    """The Pareto front of the feasible rows, as cut indices."""
    rows = _rows(c)
    return [int(rows[i]) for i in pareto_front(list(c.latency_s[rows]), list(c.cost[rows]))]
