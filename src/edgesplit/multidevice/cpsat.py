"""Gao et al. (2019) eq. 10-16 as a constraint program on OR-Tools CP-SAT.

The same decision as :mod:`edgesplit.multidevice.milp`, written the way CP solvers like it:

* ``x_ij`` Booleans with the single switch ``x_ij ≤ x_i,j+1`` (one split per device);
* start/end integer variables per subtask, ``end = start + (1-x) T^l + x T^s`` (eq. 14);
* ``start_ij ≥ end_i,j-1 + T^t_ij (x_ij - x_i,j-1)`` (eq. 13 and 15; linear thanks to the
  single switch);
* one *optional interval* per subtask on the server, present iff ``x_ij``, and a single
  ``AddNoOverlap`` over them (eq. 16). No big-M and no pairwise order variables: the
  no-overlap propagators (edge finding, timetabling) replace the ``Σ M_i M_p`` binaries.

Times are integers in ``resolution`` seconds (default 1 µs), rounded down so that the
integer problem is a relaxation and its bound a valid lower bound; the returned schedule is
re-evaluated in floating point by :func:`~edgesplit.multidevice.problem.evaluate`, so the
rounding only affects which order is chosen, never the reported times. CP-SAT runs with
``num_workers`` ≤ 2 (the development machines have two cores). Complexity: NP-hard
(it contains 1|r_j|ΣC_j); ``time_limit`` returns the incumbent and the proven bound.
"""

from __future__ import annotations

import math
import time

from ortools.sat.python import cp_model

from edgesplit.errors import InputError
from edgesplit.multidevice.problem import Problem, Schedule, evaluate, sequence_from_starts


def solve_cpsat(
    problem: Problem,
    *,
    time_limit: float = 60.0,
    num_workers: int = 2,
    resolution: float = 1e-6,
    fixed_splits: list[int] | None = None,
    hint: Schedule | None = None,
) -> Schedule:
    """Solve eq. 10-16 with CP-SAT; ``fixed_splits`` pins X, ``hint`` seeds the search."""
    if not 1 <= num_workers <= 2:
        raise InputError(f"num_workers must be 1 or 2 on these machines, not {num_workers}")
    t0 = time.perf_counter()

    def q(seconds: float) -> int:
        # Rounding down makes the integer problem a relaxation, so its bound stays valid.
        return math.floor(seconds / resolution + 1e-6)

    horizon = q(problem.horizon()) + sum(d.m for d in problem.devices) + 1
    model = cp_model.CpModel()
    xs: list[list[cp_model.IntVar]] = []
    starts: list[list[cp_model.IntVar]] = []
    ends: list[list[cp_model.IntVar]] = []
    intervals = []
    for i, d in enumerate(problem.devices):
        x = [model.new_bool_var(f"x_{i}_{j}") for j in range(d.m)]
        s = [model.new_int_var(0, horizon, f"s_{i}_{j}") for j in range(d.m)]
        e = [model.new_int_var(0, horizon, f"f_{i}_{j}") for j in range(d.m)]
        tt = [q(v) for v in d.transfer_s]
        for j in range(d.m):
            tl, ts = q(d.local_s[j]), q(d.server_s[j])
            if j + 1 < d.m:
                model.add(x[j] <= x[j + 1])
            model.add(e[j] == s[j] + tl + (ts - tl) * x[j])
            if j == 0:
                model.add(s[0] >= tt[0] * x[0])
            else:
                model.add(s[j] >= e[j - 1] + tt[j] * x[j] - tt[j] * x[j - 1])
            intervals.append(model.new_optional_interval_var(s[j], ts, e[j], x[j], f"srv_{i}_{j}"))
            if fixed_splits is not None:
                model.add(x[j] == (1 if j >= fixed_splits[i] else 0))
        xs.append(x)
        starts.append(s)
        ends.append(e)
    model.add_no_overlap(intervals)
    model.minimize(sum(e[-1] for e in ends))
    if hint is not None:
        _add_hint(model, problem, hint, xs, starts, q)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit)
    solver.parameters.num_workers = num_workers
    status = solver.solve(model)
    elapsed = time.perf_counter() - t0
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise InputError(f"CP-SAT found no schedule within {time_limit} s; raise --time-limit")
    splits = []
    for i, d in enumerate(problem.devices):
        on_server = [bool(solver.value(v)) for v in xs[i]]
        splits.append(on_server.index(True) if any(on_server) else d.m)
    timing = {
        (i, j): (float(solver.value(starts[i][j])), float(solver.value(ends[i][j])))
        for i, d in enumerate(problem.devices)
        for j in range(splits[i], d.m)
    }
    bound = solver.best_objective_bound * resolution / problem.n
    return evaluate(
        problem,
        splits,
        sequence_from_starts(timing),
        algorithm="cpsat",
        status="optimal" if status == cp_model.OPTIMAL else "time_limit",
        solve_s=elapsed,
        bound_s=max(0.0, bound),
        meta={"resolution_s": resolution, "num_workers": num_workers},
    )


def _add_hint(model, problem, hint, xs, starts, q):  # type: ignore[no-untyped-def]
    seg_start = {}
    for seg in hint.segments:
        t = seg.start_s
        for j in range(seg.first, seg.stop):
            seg_start[(seg.device, j)] = t
            t += problem.devices[seg.device].server_s[j]
    for i, d in enumerate(problem.devices):
        k = hint.splits[i]
        for j in range(d.m):
            model.add_hint(xs[i][j], 1 if j >= k else 0)
            if (i, j) in seg_start:
                model.add_hint(starts[i][j], q(seg_start[(i, j)]))
