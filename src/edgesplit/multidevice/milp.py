"""Gao et al. (2019) eq. 10-16 as a mixed-integer linear program, solved with HiGHS.

Variables, for device ``i`` and layer (subtask) ``j``:

* ``x_ij ∈ {0,1}``: 1 when the subtask runs on the server (§II-A). The *single switch*
  ``x_ij ≤ x_i,j+1`` makes every row of X of the form 0…0 1…1, i.e. one split per device.
* ``s_ij, f_ij ∈ [0, H]``: start and finish times (eq. 11-14).
* ``y_ab ∈ {0,1}`` for every pair of subtasks ``a = (i,j)``, ``b = (p,q)`` of different
  devices: 1 when ``a`` precedes ``b`` on the server (the disjunction of eq. 16).

Constraints:

* eq. 13: ``s_ij ≥ f_i,j-1``; eq. 11 ``s_i1 ≥ 0`` is a bound. The strict ``<`` of eq. 11-12
  is relaxed to ``≤`` (layers such as flatten take ~0 s).
* eq. 14: ``f_ij ≥ s_ij + (1 - x_ij) T^l_ij + x_ij T^s_ij``.
* eq. 15 (transmission only at the split): the switch indicator ``z_ij = x_ij - x_i,j-1``
  is *linear* thanks to the single switch, so ``s_ij ≥ f_i,j-1 + T^t_ij · z_ij`` is exact
  without a big-M (``s ≥ f`` holds anyway by eq. 13). For ``j = 0`` it reads
  ``s_i0 ≥ T^t_i0 · x_i0``: server-only sends the raw input.
* eq. 16 (server exclusivity), with big-M ``H``::

      f_a ≤ s_b + H (1 - y_ab) + H (2 - x_a - x_b)
      f_b ≤ s_a + H y_ab       + H (2 - x_a - x_b)

  ``H`` is :meth:`MecProblem.horizon`: the latest release plus all server work. The earliest
  schedule of any server order ends by then, so ``[0, H]`` bounds keep an optimum and
  ``H`` relaxes each disjunction fully when it is switched off.

Objective eq. 10 with eq. 4: ``min 1/N Σ_i f_i,M``.

Size: ``Σ M_i`` binaries X, ``Σ_{i<p} M_i M_p`` binaries Y and twice as many big-M rows;
N = 4 AlexNets (M = 21) give 84 + 2,646 binaries. Branch and bound is exponential in the
worst case; ``time_limit`` returns the incumbent and HiGHS's proven bound. No incumbent by
then is an :class:`~edgesplit.errors.InputError` (raise the limit); a HiGHS failure is a
:class:`~edgesplit.errors.SolverError`. Neither falls back to another solver's answer.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from edgesplit.errors import InputError, SolverError
from edgesplit.multidevice.problem import (
    MecProblem,
    Schedule,
    Subtask,
    evaluate,
    sequence_from_starts,
)


class _Rows:
    """Sparse rows ``lb <= a·v <= ub`` built incrementally."""

    def __init__(self) -> None:
        self.r: list[int] = []
        self.c: list[int] = []
        self.v: list[float] = []
        self.lb: list[float] = []
        self.ub: list[float] = []

    def add(self, terms: list[tuple[int, float]], lb: float, ub: float) -> None:
        row = len(self.lb)
        for col, val in terms:
            self.r.append(row)
            self.c.append(col)
            self.v.append(val)
        self.lb.append(lb)
        self.ub.append(ub)

    def constraint(self, n_vars: int) -> LinearConstraint:
        a = coo_matrix((self.v, (self.r, self.c)), shape=(len(self.lb), n_vars)).tocsr()
        return LinearConstraint(a, np.array(self.lb), np.array(self.ub))


def solve_milp(
    problem: MecProblem, *, time_limit: float = 60.0, fixed_splits: list[int] | None = None
) -> Schedule:
    """Solve eq. 10-16 with HiGHS (scipy.optimize.milp); ``fixed_splits`` pins X."""
    t0 = time.perf_counter()
    h = problem.horizon()
    subtasks: list[Subtask] = [(i, j) for i, d in enumerate(problem.devices) for j in range(d.m)]
    n_sub = len(subtasks)
    idx = {st: k for k, st in enumerate(subtasks)}
    x0, s0, f0 = 0, n_sub, 2 * n_sub
    pairs = [
        (a, b)
        for a in range(n_sub)
        for b in range(a + 1, n_sub)
        if subtasks[a][0] != subtasks[b][0]
    ]
    y0 = 3 * n_sub
    n_vars = y0 + len(pairs)
    rows = _Rows()
    for (i, j), k in idx.items():
        d = problem.devices[i]
        tl, ts, tt = d.local_s[j], d.server_s[j], d.transfer_s[j]
        if j + 1 < d.m:
            rows.add([(x0 + k, 1.0), (x0 + k + 1, -1.0)], -np.inf, 0.0)  # single switch
        # eq. 14
        rows.add([(f0 + k, 1.0), (s0 + k, -1.0), (x0 + k, tl - ts)], tl, np.inf)
        if j == 0:
            rows.add([(s0 + k, 1.0), (x0 + k, -tt)], 0.0, np.inf)  # eq. 15 at split 0
        else:
            # eq. 13 and eq. 15 in one row: s_ij - f_i,j-1 - tt (x_ij - x_i,j-1) >= 0
            rows.add(
                [(s0 + k, 1.0), (f0 + k - 1, -1.0), (x0 + k, -tt), (x0 + k - 1, tt)], 0.0, np.inf
            )
    for p, (a, b) in enumerate(pairs):
        y = y0 + p
        rows.add([(f0 + a, 1.0), (s0 + b, -1.0), (y, h), (x0 + a, h), (x0 + b, h)], -np.inf, 3 * h)
        rows.add([(f0 + b, 1.0), (s0 + a, -1.0), (y, -h), (x0 + a, h), (x0 + b, h)], -np.inf, 2 * h)
    lb = np.zeros(n_vars)
    ub = np.concatenate([np.ones(n_sub), np.full(2 * n_sub, h), np.ones(len(pairs))])
    if fixed_splits is not None:
        for (i, j), k in idx.items():
            lb[x0 + k] = ub[x0 + k] = 1.0 if j >= fixed_splits[i] else 0.0
    integrality = np.concatenate([np.ones(n_sub), np.zeros(2 * n_sub), np.ones(len(pairs))])
    c = np.zeros(n_vars)
    for i, d in enumerate(problem.devices):
        c[f0 + idx[(i, d.m - 1)]] = 1.0 / problem.n
    res = milp(
        c,
        integrality=integrality,
        bounds=Bounds(lb, ub),
        constraints=rows.constraint(n_vars),
        options={"time_limit": time_limit, "mip_rel_gap": 1e-9, "disp": False},
    )
    elapsed = time.perf_counter() - t0
    if res.x is None and res.status == 1:
        raise InputError(
            f"the MILP found no schedule within {time_limit} s ({n_sub + len(pairs)} binaries); "
            "raise --time-limit or use --solver cpsat"
        )
    if res.x is None or res.status not in (0, 1):
        raise SolverError(f"HiGHS failed on the multi-device MILP: {res.message}")
    xv = res.x
    splits = []
    for i, d in enumerate(problem.devices):
        on_server = [xv[x0 + idx[(i, j)]] > 0.5 for j in range(d.m)]
        splits.append(on_server.index(True) if any(on_server) else d.m)
    starts = {
        (i, j): (float(xv[s0 + idx[(i, j)]]), float(xv[f0 + idx[(i, j)]]))
        for i, d in enumerate(problem.devices)
        for j in range(splits[i], d.m)
    }
    bound = getattr(res, "mip_dual_bound", None)
    return evaluate(
        problem,
        splits,
        sequence_from_starts(starts),
        algorithm="milp",
        status="optimal" if res.status == 0 else "time_limit",
        solve_s=elapsed,
        bound_s=float(bound) if bound is not None and np.isfinite(bound) else None,
        meta={
            "binaries": n_sub + len(pairs),
            "big_m_s": h,
            "solver": "HiGHS via scipy.optimize.milp",
        },
    )
