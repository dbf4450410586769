"""Gao et al. (2019) eq. 10-16 as a constraint program on OR-Tools CP-SAT.

The same decision as :mod:`edgesplit.multidevice.milp`, written the way CP solvers like it:

* one Boolean ``c_ik`` per split ``k`` of device ``i`` (exactly one), and
  ``x_ij = Σ_{k≤j} c_ik``: the single switch of X by construction;
* the local side is a dedicated machine, so its subtasks run back to back from time 0
  (the earliest times eq. 11-14 allow); the split's output then arrives at the release
  ``r_i = Σ_k c_ik (Σ_{j<k} T^l_ij + T^t_ik)`` (eq. 15);
* one *optional interval* per subtask on the server, present iff ``x_ij``, starting after
  ``r_i`` and after the previous server subtask of the device (eq. 13), and one
  ``AddNoOverlap`` over all of them (eq. 16). No big-M and no pairwise order variables:
  the no-overlap propagators (edge finding, timetabling) replace the ``Σ M_i M_p`` binaries;
* splits that are *dominated* (another split has both an earlier-or-equal release and
  less-or-equal server work) are excluded: replacing a dominated split by its dominator
  in any schedule keeps every remaining server subtask's slot feasible (a later split
  only removes subtasks; an earlier one only adds zero-time subtasks), so an optimum
  survives. A device whose local-only time beats every ``r_ik + Σ_{j≥k} T^s_ij`` stays local;
* completion ``C_i`` = end of the last server subtask, or ``Σ_j T^l_ij`` when local-only,
  plus the redundant ``C_i ≥ r_i + Σ_{j≥k} T^s_ij`` and, for identical devices, the
  symmetry breaking ``C_i ≤ C_i'``.

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
from edgesplit.multidevice.heuristic import pareto_splits
from edgesplit.multidevice.problem import MecProblem, Schedule, evaluate, sequence_from_starts


def solve_cpsat(
    problem: MecProblem,
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
    allowed = [set(ks) for ks in pareto_splits(problem)]
    model = cp_model.CpModel()
    xs: list[list[cp_model.IntVar]] = []
    starts: list[list[cp_model.IntVar]] = []
    completions: list[cp_model.IntVar] = []
    intervals = []
    for i, d in enumerate(problem.devices):
        # c[k]: the split is k (layers [0, k) local); x[j] = Σ_{k<=j} c[k] (single switch).
        c = [model.new_bool_var(f"c_{i}_{k}") for k in range(d.m + 1)]
        model.add_exactly_one(c)
        if fixed_splits is None:
            for k in range(d.m + 1):
                if k not in allowed[i]:
                    model.add(c[k] == 0)
        if fixed_splits is not None:
            model.add(c[fixed_splits[i]] == 1)
        x = []
        for j in range(d.m):
            xj = model.new_bool_var(f"x_{i}_{j}")
            model.add(xj == sum(c[: j + 1]))
            x.append(xj)
        release = model.new_int_var(0, horizon, f"r_{i}")
        model.add(release == sum(q(d.release(k)) * c[k] for k in range(d.m)))
        s = [model.new_int_var(0, horizon, f"s_{i}_{j}") for j in range(d.m)]
        e = [model.new_int_var(0, horizon, f"f_{i}_{j}") for j in range(d.m)]
        for j in range(d.m):
            ts = q(d.server_s[j])
            intervals.append(model.new_optional_interval_var(s[j], ts, e[j], x[j], f"srv_{i}_{j}"))
            # eq. 15: nothing of the tail starts before the split output has arrived.
            model.add(s[j] >= release).only_enforce_if(x[j])
            if j > 0:
                model.add(s[j] >= e[j - 1]).only_enforce_if(x[j - 1])  # eq. 13 on the server
        done = model.new_int_var(0, horizon, f"C_{i}")
        model.add(done == q(d.local_prefix(d.m))).only_enforce_if(c[d.m])
        model.add(done == e[-1]).only_enforce_if(x[-1])
        # Redundant: a tail cannot end before its release plus its total work.
        model.add(
            done
            >= sum((q(d.release(k)) + sum(q(v) for v in d.server_s[k:])) * c[k] for k in range(d.m))
        )
        xs.append(x)
        starts.append(s)
        completions.append(done)
    model.add_no_overlap(intervals)
    # Identical devices are interchangeable: label them in completion order (valid
    # symmetry breaking, it removes the k! relabellings of k identical devices).
    for a, b in _identical_pairs(problem):
        model.add(completions[a] <= completions[b])
    model.minimize(sum(completions))
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
        (i, j): (
            float(solver.value(starts[i][j])),
            float(solver.value(starts[i][j])) + q(problem.devices[i].server_s[j]),
        )
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


def _identical_pairs(problem: MecProblem) -> list[tuple[int, int]]:
    pairs = []
    last: dict[tuple[object, ...], int] = {}
    for i, d in enumerate(problem.devices):
        key = (d.local_s, d.server_s, d.cut_bytes, d.uplink)
        if key in last:
            pairs.append((last[key], i))
        last[key] = i
    return pairs


def _add_hint(model, problem, hint, xs, starts, q):  # type: ignore[no-untyped-def]
    """Seed CP-SAT with a schedule, relabelled to respect the symmetry breaking."""
    groups: dict[tuple[object, ...], list[int]] = {}
    for i, d in enumerate(problem.devices):
        groups.setdefault((d.local_s, d.server_s, d.cut_bytes, d.uplink), []).append(i)
    source = list(range(problem.n))
    for members in groups.values():
        by_completion = sorted(members, key=lambda i: hint.devices[i].completion_s)
        for target, src in zip(members, by_completion):
            source[target] = src
    seg_start = {}
    for seg in hint.segments:
        t = seg.start_s
        for j in range(seg.first, seg.stop):
            seg_start[(seg.device, j)] = t
            t += problem.devices[seg.device].server_s[j]
    for i, d in enumerate(problem.devices):
        src = source[i]
        k = hint.splits[src]
        for j in range(d.m):
            model.add_hint(xs[i][j], 1 if j >= k else 0)
            if (src, j) in seg_start:
                model.add_hint(starts[i][j], q(seg_start[(src, j)]))
