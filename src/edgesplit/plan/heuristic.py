"""Fast k-processor placement: interval DP over a topological order, then local search.

For graphs too large for the MILP of :mod:`edgesplit.plan.milp` within its time limit
(Samadi and Mohammadi's operation-granularity graphs, after Tarnawski et al. 2020).

1. **Interval DP.** Any interval ``[i, j)`` of a topological order is a contiguous
   subgraph (a path leaving and re-entering it would pass a node between ``i`` and ``j``),
   so placing whole intervals on accelerators always satisfies Tarnawski's contiguity.
   ``f[j][S] = min(f[j-1][S] + host(j-1), min_{a in S, i<j} f[i][S - a] + C_a[i, j])`` where
   ``C_a[i, j]`` is the call time of ``[i, j)`` on accelerator ``a`` (compute plus every
   crossing transfer, both directions) and ``inf`` when the interval exceeds memory, holds
   an unsupported node or splits a colour class. This is exact for the *sequential*
   semantics over interval placements, and an upper-bounding proxy for the critical-path
   semantics (overlap can only shorten it). ``S`` is a used-accelerator count for identical
   accelerators, a bit mask otherwise. Cost: O(n^2) numpy memory and O(n^2 K) work, with
   ``K`` the number of states times accelerators.
2. **Local search.** From the DP placement and from all-host, first-improvement moves of
   one node (with its colour class) to another device, neighbours' devices first, scored by
   the independent evaluator (O(n + m) each), up to ``max_evals`` evaluations in all; this
   adds overlap-aware and non-interval placements.

The ``C_a`` matrices come from two 2-D difference arrays: node ``u``'s output leaves
``[i, j)`` iff ``i <= u < j <= maxsucc(u)``, and enters it iff ``u < i <= s < j`` for some
successor ``s``; each is a union of rectangles in ``(i, j)``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgesplit.errors import InputError
from edgesplit.placement.evaluate import SEMANTICS, evaluate
from edgesplit.placement.instance import HOST, Instance
from edgesplit.placement.result import PlacementResult
from edgesplit.plan.evaluate import evaluate as problem_evaluate
from edgesplit.plan.placement_problem import (
    contiguous_violations,
    from_instance_assignment,
    make_executable,
    plan_from_assignment,
    problem_to_instance,
)
from edgesplit.plan.problem import Problem
from edgesplit.plan.types import Plan

MAX_MASK_ACCELERATORS = 10


def _rect_add(diff: np.ndarray, i0: int, i1: int, j0: int, j1: int, value: float) -> None:
    diff[i0, j0] += value
    diff[i0, j1 + 1] -= value
    diff[i1 + 1, j0] -= value
    diff[i1 + 1, j1 + 1] += value


def transfer_matrix(inst: Instance, cost: Sequence[float]) -> np.ndarray:
    """``X[i, j]``: total transfer cost across the boundary of interval ``[i, j)``."""
    n = inst.n
    diff = np.zeros((n + 2, n + 2))
    for u in range(n):
        succ = sorted(inst.succ[u])
        c = float(cost[u])
        if not succ or c == 0.0:
            continue
        _rect_add(diff, 0, u, u + 1, succ[-1], c)  # u inside, a successor at or after j
        lo = u + 1
        for s in succ:  # u before i, first successor at or after i is s, and s < j
            if lo <= s:
                _rect_add(diff, lo, s, s + 1, n, c)
            lo = s + 1
    return np.cumsum(np.cumsum(diff, axis=0), axis=1)[: n + 1, : n + 1]


def _colour_ok(inst: Instance) -> np.ndarray:
    n = inst.n
    lo = np.arange(n)
    hi = np.arange(n)
    for cls in inst.colour_classes():
        lo[cls] = cls[0]
        hi[cls] = cls[-1]
    ok = np.zeros((n + 1, n + 1), dtype=bool)
    for i in range(n):
        mins = np.minimum.accumulate(lo[i:])
        maxs = np.maximum.accumulate(hi[i:])
        j = np.arange(i + 1, n + 1)
        ok[i, i + 1 :] = (mins >= i) & (maxs < j)
    return ok


def call_matrix(inst: Instance, a: int, colour_ok: np.ndarray) -> np.ndarray:
    """``C_a[i, j]``: duration of accelerator ``a``'s call on ``[i, j)``; ``inf`` if invalid."""
    n = inst.n
    t = np.array(inst.acc_time[a])
    unsupported = np.concatenate([[0], np.cumsum(~np.isfinite(t))])
    tp = np.concatenate([[0.0], np.cumsum(np.where(np.isfinite(t), t, 0.0))])
    sp = np.concatenate([[0.0], np.cumsum(inst.size)])
    calls = tp[None, :] - tp[:, None] + transfer_matrix(inst, inst.acc_cost[a])
    valid = colour_ok & (unsupported[None, :] - unsupported[:, None] == 0)
    valid &= sp[None, :] - sp[:, None] <= inst.acc_memory[a] * (1 + 1e-9)
    valid &= np.triu(np.ones((n + 1, n + 1), dtype=bool), k=1)
    return np.where(valid, calls, np.inf)


def interval_dp(inst: Instance) -> tuple[tuple[int, ...], float]:
    """Best interval placement under the sequential semantics; returns (assignment, value)."""
    n, k = inst.n, inst.accelerators
    if not inst.identical and k > MAX_MASK_ACCELERATORS:
        raise InputError(
            f"the interval DP handles at most {MAX_MASK_ACCELERATORS} distinct accelerators,"
            f" not {k}; use the MILP or group identical devices"
        )
    ok = _colour_ok(inst)
    mats = (
        [call_matrix(inst, 0, ok)] * k
        if inst.identical and k
        else [call_matrix(inst, a, ok) for a in range(k)]
    )
    # transitions: state -> list of (accelerator, previous state)
    if inst.identical:
        states = k + 1
        moves = [[(s - 1, s - 1)] if s else [] for s in range(states)]
    else:
        states = 1 << k
        moves = [[(a, s & ~(1 << a)) for a in range(k) if s >> a & 1] for s in range(states)]
    f = np.full((n + 1, states), np.inf)
    f[0, 0] = 0.0
    back: dict[tuple[int, int], tuple[int, int, int]] = {}  # (j, s) -> (i, prev state, device)
    host = np.array(inst.host_time)
    for j in range(1, n + 1):
        f[j] = f[j - 1] + host[j - 1]
        for s in range(states):
            back[(j, s)] = (j - 1, s, HOST)
            for a, prev in moves[s]:
                cand = f[:j, prev] + mats[a][:j, j]
                i = int(np.argmin(cand))
                if cand[i] < f[j, s]:
                    f[j, s] = cand[i]
                    back[(j, s)] = (i, prev, a + 1)
    s = int(np.argmin(f[n]))
    value = float(f[n, s])
    assignment = [HOST] * n
    j = n
    while j > 0:
        i, prev, device = back[(j, s)]
        for v in range(i, j):
            assignment[v] = device
        j, s = i, prev
    return tuple(assignment), value


def local_search(
    inst: Instance,
    assignment: Sequence[int],
    semantics: str,
    contiguous: bool,
    max_evals: int,
) -> tuple[tuple[int, ...], float, int]:
    """First-improvement boundary moves scored by the evaluator; returns (a, value, evals)."""
    best = list(assignment)
    value = evaluate(inst, best, semantics, contiguous).latency
    evals = 1
    improved = True
    while improved and evals < max_evals:
        improved = False
        for v in range(inst.n):
            # Neighbours' devices first (they keep subgraphs contiguous), then the rest.
            near = {best[w] for w in inst.succ[v] + inst.pred[v]} | {HOST}
            rest = set(range(inst.accelerators + 1)) - near
            if inst.identical:  # empty identical accelerators are interchangeable: try one
                empty = sorted(d for d in rest if d not in best)
                rest -= set(empty[1:])
            targets = [d for d in sorted(near) + sorted(rest) if d != best[v]]
            for d in targets:
                if d != HOST and not inst.supported(d - 1, v):
                    continue
                old = best[v]
                # A colour class moves as one; otherwise the move is infeasible by rule.
                group = inst.groups[inst.colour[v]]
                saved = [best[w] for w in group]
                for w in group:
                    best[w] = d
                trial = evaluate(inst, best, semantics, contiguous).latency
                evals += 1
                if trial < value - 1e-12:
                    value, improved = trial, True
                    break
                for w, o in zip(group, saved):
                    best[w] = o
                best[v] = old
                if evals >= max_evals:
                    break
            if evals >= max_evals:
                break
    return tuple(best), value, evals


def place(
    inst: Instance,
    semantics: str = "critical",
    contiguous: bool = True,
    max_evals: int = 300,
) -> PlacementResult:
    """Interval DP plus local search; the all-host placement is the fallback candidate."""
    if semantics not in SEMANTICS:
        raise InputError(f"semantics must be one of {SEMANTICS}, not {semantics!r}")
    t0 = time.perf_counter()
    start, dp_value = interval_dp(inst)
    # Two starts: the DP's interval placement and all-host; each gets half the budget.
    runs = [
        local_search(inst, c, semantics, contiguous, max_evals // 2)
        for c in (start, tuple([HOST] * inst.n))
    ]
    best, value, _ = min(runs, key=lambda r: r[1])
    evals = sum(r[2] for r in runs)
    meta: dict[str, Any] = {"dp_sequential_value": dp_value, "local_search_evals": evals}
    return PlacementResult(
        algorithm="heuristic",
        assignment=best,
        latency=value if math.isfinite(value) else math.inf,
        solve_s=time.perf_counter() - t0,
        status="heuristic",
        semantics=semantics,
        contiguous=contiguous,
        meta=meta,
    )


def solve(problem: Problem, *, contiguous: bool = True, max_evals: int = 200) -> Plan:
    """Registry entry ``heuristic`` on a planner Problem.

    Interval DP on :func:`~edgesplit.plan.placement_problem.problem_to_instance`, made
    executable (every device contiguous), then first-improvement single-node moves scored
    by the Problem's own evaluator, from that start and from all-on-source.
    """
    t0 = time.perf_counter()
    inst, devices = problem_to_instance(problem)
    dp, _ = interval_dp(inst)
    starts = [
        tuple([problem.source] * problem.n_nodes),
        from_instance_assignment(inst, devices, dp),
    ]
    if contiguous:
        starts = [make_executable(problem, s) for s in starts]
    runs = [_problem_search(problem, s, contiguous, max_evals // 2) for s in starts]
    best, _ = min(runs, key=lambda r: r[1])
    meta = {"solve_s": time.perf_counter() - t0, "max_evals": max_evals}
    return plan_from_assignment(problem, "heuristic", best, meta)


def _problem_search(
    problem: Problem, start: Sequence[int], contiguous: bool, max_evals: int
) -> tuple[tuple[int, ...], float]:
    def score(a: Sequence[int]) -> float:
        ev = problem_evaluate(problem, a)
        if not ev.memory_ok or (contiguous and contiguous_violations(problem.graph, a)):
            return math.inf
        return ev.objective_value

    best = list(start)
    value, evals, improved = score(best), 1, True
    while improved and evals < max_evals:
        improved = False
        for v in range(problem.n_nodes):
            for d in range(problem.n_devices):
                if d == best[v] or not math.isfinite(problem.seconds[d, v]):
                    continue
                old, best[v] = best[v], d
                trial = score(best)
                evals += 1
                if trial < value - 1e-15:
                    value, improved = trial, True
                    break
                best[v] = old
                if evals >= max_evals:
                    return tuple(best), value
    return tuple(best), value
