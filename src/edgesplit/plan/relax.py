"""Samadi and Mohammadi's "conversion": the convex (LP) relaxation of the placement MILP,
then rounding.

Their section III.B.4 ("conversion and discussion") is empty; what we implement is the
standard reading: relax ``x[v, a] in {0, 1}`` of :mod:`edgesplit.plan.milp` to ``[0, 1]``,
which makes the problem a linear program (convex, solved by HiGHS through cvxpy in
polynomial time), take its value as a lower bound on the optimum, and round:

* for each threshold ``tau`` in ``THRESHOLDS``, the one rounding
  (:func:`~edgesplit.plan.feasible.round_shares`): node ``v`` goes to its largest
  non-source share if that exceeds ``tau``, else to the source;
* each rounded placement is made feasible by the one repair
  (:func:`~edgesplit.plan.feasible.repair`);
* the best repaired placement under the evaluator (all-on-source among the candidates)
  is returned.

The big-M rows of the latency model make this LP weak under the critical-path semantics
(the bound can sit far below the optimum); the tests and the benchmark compare it with the
exact MILP. The big-M is the trivial bound (everything summed), so the method stands on
its own. Cost: one LP with O(nA) columns and O(mA) rows, plus O(|THRESHOLDS| n (n + m))
for rounding and repair.
"""

from __future__ import annotations

import time
from typing import Any

import cvxpy as cp
import numpy as np

from edgesplit.plan.evaluate import score
from edgesplit.plan.feasible import plan_from_assignment, repair, round_shares
from edgesplit.plan.milp import build, run_solver
from edgesplit.plan.problem import Problem
from edgesplit.plan.types import Plan

THRESHOLDS = (0.5, 0.3, 0.1, 0.7, 0.9)


def solve(problem: Problem, *, time_limit: float = 60.0, threads: int = 1) -> Plan:
    """Registry entry ``relax``: LP relaxation, threshold rounding, repair."""
    t0 = time.perf_counter()
    model = build(problem, relaxed=True)
    solver = run_solver(model.problem, time_limit, threads)
    n, k, src = problem.n_nodes, problem.n_devices, problem.source
    shares = model.shares(k, src)
    if shares is None:
        shares = np.eye(k)[[src] * n]
    candidates = {repair(problem, round_shares(problem, shares, tau)) for tau in THRESHOLDS}
    candidates.add(repair(problem, [src] * n))
    scored = sorted((score(problem, c), c) for c in candidates)
    value, best = scored[0]
    lp = model.problem.value if model.problem.status == cp.OPTIMAL else None
    bound = None if lp is None else min(max(0.0, float(lp)), value)  # type: ignore[arg-type]
    meta: dict[str, Any] = {
        "status": "rounded",
        "solver": solver,
        "lp_status": model.problem.status,
        "bound": bound,
        "gap": None if bound is None or value <= 0 else (value - bound) / value,
        "fractional_nodes": int(np.sum((shares > 1e-6) & (shares < 1 - 1e-6))),
        "solve_s": time.perf_counter() - t0,
    }
    return plan_from_assignment(problem, "relax", best, meta)
