"""Fast k-device placement: interval DP over a topological order, then local search.

For graphs too large for the MILP of :mod:`edgesplit.plan.milp` within its time limit
(Samadi and Mohammadi's operation-granularity graphs, after Tarnawski et al. 2020).

1. **Interval DP.** Any interval ``[i, j)`` of a topological order is a contiguous
   subgraph (a path leaving and re-entering it would pass a node between ``i`` and ``j``),
   so placing whole intervals on non-source devices always satisfies Tarnawski's
   contiguity. ``f[j][S] = min(f[j-1][S] + host(j-1), min_{d in S, i<j} f[i][S - d] +
   C_d[i, j])`` where ``host`` is the source's weighted time and ``C_d[i, j]`` the weighted
   call of ``[i, j)`` on device ``d`` (compute plus every per-tensor transfer across its
   boundary, both directions), ``inf`` when the interval exceeds memory, holds a node
   ``d`` cannot run or splits a colour class. Weights are :func:`linear_weights`; under
   ``comm="message"`` the transfers are priced per tensor through the source (without
   RTT) as a proxy. This is exact for the sequential, per-tensor semantics over interval
   placements and an upper-bounding proxy otherwise. ``S`` is a used-device count for
   identical devices, a bit mask otherwise. Cost: O(n^2) numpy memory and O(n^2 K) work,
   with ``K`` the number of states times devices.
2. **Local search.** From the DP placement and from all-on-source (each made feasible by
   :func:`~edgesplit.plan.feasible.repair`), first-improvement moves of one node (with
   its colour class) to another device, neighbours' devices first, scored by the
   evaluator (O(n + m) each), up to ``max_evals`` evaluations in all; this adds
   overlap-aware and non-interval placements and scores the problem's own semantics.

The ``C_d`` matrices come from two 2-D difference arrays: tensor ``t`` of node ``u``
leaves ``[i, j)`` iff ``i <= u < j <= maxreader(t)`` (every ``j`` for a model output), and
enters it iff ``u < i <= s < j`` for some reader ``s``; each is a union of rectangles.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from edgesplit.errors import InputError
from edgesplit.plan.evaluate import score
from edgesplit.plan.feasible import linear_weights, plan_from_assignment, repair
from edgesplit.plan.problem import Problem
from edgesplit.plan.types import Plan

MAX_MASK_DEVICES = 10


def _rect_add(diff: np.ndarray, i0: int, i1: int, j0: int, j1: int, value: float) -> None:
    diff[i0, j0] += value
    diff[i0, j1 + 1] -= value
    diff[i1 + 1, j0] -= value
    diff[i1 + 1, j1 + 1] += value


def tensor_costs(problem: Problem) -> np.ndarray:
    """``(k, tensors)``: the per-tensor transfer each device pays when ``t`` crosses it."""
    if problem.tensor_seconds is not None:
        return np.asarray(problem.tensor_seconds)
    out = np.zeros((problem.n_devices, len(problem.graph.tensors)))
    nbytes = np.array([float(t.nbytes) for t in problem.graph.tensors])
    for d in range(problem.n_devices):
        if d != problem.source:
            link = problem.link(problem.source, d)
            out[d] = np.inf if link is None else nbytes * 8.0 / link.rate_bps
            out[d, nbytes == 0] = 0.0
    return out


def transfer_matrix(problem: Problem, cost: Sequence[float] | np.ndarray) -> np.ndarray:
    """``X[i, j]``: total transfer cost across the boundary of interval ``[i, j)``."""
    n, st = problem.n_nodes, problem.structure
    diff = np.zeros((n + 2, n + 2))
    for t, u in enumerate(st.producer):
        c = float(cost[t])
        readers = sorted(set(st.consumers[t]))
        if c == 0.0 or not (readers or st.is_output[t]):
            continue
        if u >= 0:  # u inside, a reader at or after j (the source, for an output)
            _rect_add(diff, 0, u, u + 1, n if st.is_output[t] else readers[-1], c)
        lo = u + 1
        for s in readers:  # u before i, first reader at or after i is s, and s < j
            if lo <= s:
                _rect_add(diff, lo, s, s + 1, n, c)
            lo = s + 1
    return np.cumsum(np.cumsum(diff, axis=0), axis=1)[: n + 1, : n + 1]


def _colour_ok(problem: Problem) -> np.ndarray:
    n = problem.n_nodes
    lo = np.arange(n)
    hi = np.arange(n)
    for cls in problem.colour_classes():
        lo[cls] = cls[0]
        hi[cls] = cls[-1]
    ok = np.zeros((n + 1, n + 1), dtype=bool)
    for i in range(n):
        mins = np.minimum.accumulate(lo[i:])
        maxs = np.maximum.accumulate(hi[i:])
        j = np.arange(i + 1, n + 1)
        ok[i, i + 1 :] = (mins >= i) & (maxs < j)
    return ok


def call_matrix(problem: Problem, d: int, colour_ok: np.ndarray) -> np.ndarray:
    """``C_d[i, j]``: weighted call of device ``d`` on ``[i, j)``; ``inf`` if invalid."""
    n = problem.n_nodes
    a, b = linear_weights(problem)
    t = np.asarray(problem.seconds[d], dtype=float)
    unsupported = np.concatenate([[0], np.cumsum(~np.isfinite(t))])
    tp = np.concatenate([[0.0], np.cumsum(np.where(np.isfinite(t), t, 0.0))])
    sp = np.concatenate([[0.0], np.cumsum(problem.node_memory_bytes)])
    cost = tensor_costs(problem)[d]
    finite = np.isfinite(cost)
    crossing = transfer_matrix(problem, np.where(finite, cost, 0.0))
    blocked = transfer_matrix(problem, (~finite).astype(float)) > 0
    calls = a[d] * (tp[None, :] - tp[:, None]) + b * crossing
    cap = problem.memory_bytes[d]
    valid = colour_ok & (unsupported[None, :] - unsupported[:, None] == 0) & ~blocked
    if cap is not None:
        valid &= sp[None, :] - sp[:, None] <= cap * (1 + 1e-9)
    valid &= np.triu(np.ones((n + 1, n + 1), dtype=bool), k=1)
    return np.where(valid, calls, np.inf)


def interval_dp(problem: Problem) -> tuple[tuple[int, ...], float]:
    """Best interval placement of the weighted sequential proxy; (assignment, value)."""
    n, src = problem.n_nodes, problem.source
    others = [d for d in range(problem.n_devices) if d != src]
    k = len(others)
    identical = problem.identical_servers
    if not identical and k > MAX_MASK_DEVICES:
        raise InputError(
            f"the interval DP handles at most {MAX_MASK_DEVICES} distinct non-source devices,"
            f" not {k}; use --algorithm ilp or make the servers identical"
        )
    ok = _colour_ok(problem)
    if identical:
        mats = [call_matrix(problem, others[0], ok)] * k
        states = k + 1
        moves = [[(s - 1, s - 1)] if s else [] for s in range(states)]
    else:
        mats = [call_matrix(problem, d, ok) for d in others]
        states = 1 << k
        moves = [[(a, s & ~(1 << a)) for a in range(k) if s >> a & 1] for s in range(states)]
    a_w, _ = linear_weights(problem)
    host = a_w[src] * np.asarray(problem.seconds[src], dtype=float)
    f = np.full((n + 1, states), np.inf)
    f[0, 0] = 0.0
    back: dict[tuple[int, int], tuple[int, int, int]] = {}  # (j, s) -> (i, prev state, device)
    for j in range(1, n + 1):
        f[j] = f[j - 1] + host[j - 1]
        for s in range(states):
            back[(j, s)] = (j - 1, s, src)
            for a, prev in moves[s]:
                cand = f[:j, prev] + mats[a][:j, j]
                i = int(np.argmin(cand))
                if cand[i] < f[j, s]:
                    f[j, s] = cand[i]
                    back[(j, s)] = (i, prev, others[a])
    s = int(np.argmin(f[n]))
    value = float(f[n, s])
    assignment = [src] * n
    j = n
    while j > 0:
        i, prev, device = back[(j, s)]
        for v in range(i, j):
            assignment[v] = device
        j, s = i, prev
    return tuple(assignment), value


def local_search(
    problem: Problem, assignment: Sequence[int], max_evals: int
) -> tuple[tuple[int, ...], float, int]:
    """First-improvement moves scored by the evaluator; returns (assignment, score, evals)."""
    st, src, k = problem.structure, problem.source, problem.n_devices
    groups: dict[int, list[int]] = {}
    for v, c in enumerate(problem.colour):
        groups.setdefault(c, []).append(v)
    identical = problem.identical_servers
    best = list(assignment)
    value = score(problem, best)
    evals = 1
    improved = True
    while improved and evals < max_evals:
        improved = False
        for v in range(problem.n_nodes):
            # Neighbours' devices first (they keep device sets contiguous), then the rest.
            near = {best[w] for w in st.succ[v] + st.pred[v]} | {src}
            rest = set(range(k)) - near
            if identical:  # empty identical devices are interchangeable: try one
                empty = sorted(d for d in rest if d not in best)
                rest -= set(empty[1:])
            targets = [d for d in sorted(near) + sorted(rest) if d != best[v]]
            for d in targets:
                if problem.seconds_rows[d][v] == math.inf:
                    continue
                group = groups[problem.colour[v]]  # a colour class moves as one
                saved = [best[w] for w in group]
                for w in group:
                    best[w] = d
                trial = score(problem, best)
                evals += 1
                if trial < value * (1 - 1e-12) or (math.isinf(value) and trial < value):
                    value, improved = trial, True
                    break
                for w, o in zip(group, saved):
                    best[w] = o
                if evals >= max_evals:
                    break
            if evals >= max_evals:
                break
    return tuple(best), value, evals


def solve(problem: Problem, *, max_evals: int = 300) -> Plan:
    """Registry entry ``heuristic``: interval DP plus local search, half the budget each
    from the DP placement and from all-on-source (both repaired first)."""
    t0 = time.perf_counter()
    start, dp_value = interval_dp(problem)
    starts = [repair(problem, start), repair(problem, [problem.source] * problem.n_nodes)]
    runs = [local_search(problem, s, max_evals // 2) for s in starts]
    best, _, _ = min(runs, key=lambda r: r[1])
    meta = {
        "status": "heuristic",
        "dp_sequential_value": dp_value,
        "local_search_evals": sum(r[2] for r in runs),
        "solve_s": time.perf_counter() - t0,
    }
    return plan_from_assignment(problem, "heuristic", best, meta)
