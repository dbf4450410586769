"""A fast heuristic for eq. 10-16 with many devices: split choice, list scheduling, local search.

With the split ``k_i`` fixed, device ``i`` becomes one server job with release date
``r_i = Σ_{j<k} T^l_ij + T^t_ik`` and processing time ``p_i = Σ_{j≥k} T^s_ij`` (or no job
when ``k_i = M_i``), and the server problem is 1|r_j|ΣC_j (NP-hard). The heuristic

1. keeps, per device, only the *Pareto* splits (no other split has both an earlier
   release and less server work; local-only is always kept) — AlexNet has a handful;
2. starts from each device's best split as if it were alone on the server;
3. orders the jobs by *SPT among released jobs* (when the server frees, run the shortest
   released job; if none is released, jump to the next release), O(N log N);
4. improves by local search until no move helps or ``time_budget`` runs out: change one
   device's split (the others keep their order, the device goes in by release), re-order
   everything by rule 3, then swap adjacent jobs in the order, each evaluated in O(N).

5. finally compares the whole-tail order with a layer-level shortest-remaining-work-first
   sequence (:func:`srpt_sequence`), which uses the interleaving eq. 16 allows, and keeps
   the better.

Every answer is feasible for the MILP. One sweep costs O(N² · C) for C Pareto splits per device.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Sequence
from functools import partial

from edgesplit.multidevice.problem import MecProblem, Schedule, evaluate, job_sequence

_EPS = 1e-12
#: Up to this many devices, each split move also re-orders all jobs by the list rule.
_FULL_REORDER_MAX_N = 30


def pareto_splits(problem: MecProblem) -> list[list[int]]:
    """Per device, the splits not dominated in (release, server work); local-only kept.

    Exact: some optimum of eq. 10-16 uses only these (see :mod:`.cpsat`). O(M log M).
    """
    out = []
    for d in problem.devices:
        pts = sorted(
            ((d.release(k), d.server_suffix(k), k) for k in range(d.m)), key=lambda p: (p[0], p[1])
        )
        keep, best_work = [], float("inf")
        for _r, w, k in pts:
            if w < best_work - _EPS:
                keep.append(k)
                best_work = w
        out.append(sorted([*keep, d.m]))
    return out


class _Jobs:
    """Release and processing time of every (device, split), precomputed."""

    def __init__(self, problem: MecProblem) -> None:
        self.release = [[d.release(k) for k in range(d.m + 1)] for d in problem.devices]
        self.work = [[d.server_suffix(k) for k in range(d.m + 1)] for d in problem.devices]
        self.local = [d.local_prefix(d.m) for d in problem.devices]
        self.m = [d.m for d in problem.devices]

    def alone(self, i: int, k: int) -> float:
        """Completion of device ``i`` at split ``k`` with the server to itself."""
        return self.local[i] if k == self.m[i] else self.release[i][k] + self.work[i][k]

    def value(self, splits: Sequence[int], order: Sequence[int]) -> float:
        """Sum of completion times for an order of the offloaded devices, O(N)."""
        total = sum(self.local[i] for i, k in enumerate(splits) if k == self.m[i])
        t = 0.0
        for i in order:
            k = splits[i]
            t = max(t, self.release[i][k]) + self.work[i][k]
            total += t
        return total

    def list_order(self, splits: Sequence[int]) -> list[int]:
        """SPT among released jobs, O(N log N)."""
        pending = sorted((self.release[i][k], i) for i, k in enumerate(splits) if k < self.m[i])
        order: list[int] = []
        ready: list[tuple[float, float, int]] = []
        t, p = 0.0, 0
        while p < len(pending) or ready:
            if not ready and pending[p][0] > t:
                t = pending[p][0]
            while p < len(pending) and pending[p][0] <= t + _EPS:
                r, i = pending[p]
                heapq.heappush(ready, (self.work[i][splits[i]], r, i))
                p += 1
            work, _, i = heapq.heappop(ready)
            order.append(i)
            t += work
        return order


def solve_heuristic(problem: MecProblem, *, time_budget: float = 0.8) -> Schedule:
    """Split choice + list scheduling + local search; see the module docstring."""
    t0 = time.perf_counter()
    jobs = _Jobs(problem)
    cands = pareto_splits(problem)
    splits = [min(ks, key=partial(jobs.alone, i)) for i, ks in enumerate(cands)]
    order = jobs.list_order(splits)
    best = jobs.value(splits, order)
    sweeps = 0
    improved = True
    while improved and time.perf_counter() - t0 < time_budget:
        improved = False
        sweeps += 1
        for i, ks in enumerate(cands):
            for k in ks:
                if k == splits[i] or time.perf_counter() - t0 > time_budget:
                    continue
                trial = list(splits)
                trial[i] = k
                orders = [_insert(jobs, trial, order, i)]
                if problem.n <= _FULL_REORDER_MAX_N:
                    orders.append(jobs.list_order(trial))
                for trial_order in orders:
                    v = jobs.value(trial, trial_order)
                    if v < best - _EPS:
                        splits, order, best, improved = trial, trial_order, v, True
                        break
        relisted = jobs.list_order(splits)
        v = jobs.value(splits, relisted)
        if v < best - _EPS:
            order, best, improved = relisted, v, True
        for pos in range(len(order) - 1):
            trial_order = list(order)
            trial_order[pos], trial_order[pos + 1] = trial_order[pos + 1], trial_order[pos]
            v = jobs.value(splits, trial_order)
            if v < best - _EPS:
                order, best, improved = trial_order, v, True
    whole = evaluate(problem, splits, job_sequence(problem, splits, order))
    layered = evaluate(problem, splits, srpt_sequence(problem, splits))
    chosen = layered if layered.average_s < whole.average_s - _EPS else whole
    return evaluate(
        problem,
        splits,
        chosen.server_sequence,
        algorithm="heuristic",
        status="heuristic",
        solve_s=time.perf_counter() - t0,
        meta={
            "sweeps": sweeps,
            "pareto_splits": [len(c) for c in cands],
            "interleaved": chosen is layered,
        },
    )


def srpt_sequence(problem: MecProblem, splits: Sequence[int]) -> list[tuple[int, int]]:
    """Layer-level shortest-remaining-work-first on the server (uses eq. 16's interleaving).

    At every layer boundary run the next layer of the ready device with the least server
    work left; when none is ready, wait for the next arrival. O(L log N) for L server layers.
    """
    devs = problem.devices
    ready_at = [d.release(k) for d, k in zip(devs, splits)]
    nxt = list(splits)
    left = [d.server_suffix(k) for d, k in zip(devs, splits)]
    active = {i for i, d in enumerate(devs) if nxt[i] < d.m}
    seq: list[tuple[int, int]] = []
    t = 0.0
    while active:
        ready = [i for i in active if ready_at[i] <= t + _EPS]
        if not ready:
            t = min(ready_at[i] for i in active)
            continue
        i = min(ready, key=lambda j: (left[j], ready_at[j], j))
        j = nxt[i]
        seq.append((i, j))
        t = max(t, ready_at[i]) + devs[i].server_s[j]
        ready_at[i] = t
        left[i] -= devs[i].server_s[j]
        nxt[i] += 1
        if nxt[i] == devs[i].m:
            active.discard(i)
    return seq


def _insert(jobs: _Jobs, splits: list[int], order: list[int], i: int) -> list[int]:
    """The order after device ``i`` changed split: others kept, ``i`` placed by release."""
    kept = [j for j in order if j != i]
    if splits[i] < jobs.m[i]:
        r = jobs.release[i][splits[i]]
        pos = next((p for p, j in enumerate(kept) if jobs.release[j][splits[j]] > r), len(kept))
        kept = [*kept[:pos], i, *kept[pos:]]
    return kept
