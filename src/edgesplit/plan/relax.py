"""Samadi and Mohammadi's "conversion": the convex (LP) relaxation of the placement MILP,
then rounding.

Their section III.B.4 ("conversion and discussion") is empty; what we implement is the
standard reading: relax ``x[v, a] in {0, 1}`` of :mod:`edgesplit.plan.milp` to ``[0, 1]``,
which makes the problem a linear program (convex, solved by HiGHS through cvxpy in
polynomial time), take its value as a lower bound on the optimum, and round:

* for each threshold ``tau`` in ``THRESHOLDS``, node ``v`` goes to its largest accelerator
  share if that exceeds ``tau``, else to the host;
* each rounded placement is *repaired* into a feasible one (unsupported nodes, nodes
  reached again after leaving their accelerator, split colour classes and memory overflow
  go to the host, repeated until nothing changes; each pass only shrinks accelerator sets,
  so it ends within ``n`` passes);
* the best repaired placement under the independent evaluator is returned.

The big-M rows of the latency model make this LP weak under the critical-path semantics
(the bound can sit far below the optimum); the tests and the benchmark compare it with the
exact MILP. Cost: one LP with O(nA) columns and O(mA) rows, plus O(|THRESHOLDS| n (n + m))
for rounding and repair.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import cvxpy as cp
import numpy as np

from edgesplit.placement.evaluate import evaluate, reached_after_leaving
from edgesplit.placement.instance import HOST, Instance
from edgesplit.placement.result import PlacementResult
from edgesplit.plan.evaluate import evaluate as problem_evaluate
from edgesplit.plan.milp import build, round_shares, run_solver
from edgesplit.plan.placement_ilp import build_problem_model
from edgesplit.plan.placement_problem import make_executable, plan_from_assignment
from edgesplit.plan.problem import Problem
from edgesplit.plan.types import Plan

THRESHOLDS = (0.5, 0.3, 0.1, 0.7, 0.9)


def repair(inst: Instance, assignment: Sequence[int], contiguous: bool = True) -> tuple[int, ...]:
    """Move nodes to the host until the placement satisfies every rule."""
    a = list(assignment)
    for v, d in enumerate(a):
        if d != HOST and not inst.supported(d - 1, v):
            a[v] = HOST
    changed = True
    while changed:
        changed = False
        for acc in range(inst.accelerators):
            members = {v for v, d in enumerate(a) if d == acc + 1}
            if contiguous:
                for v in reached_after_leaving(inst, members) & members:
                    a[v], changed = HOST, True
                    members.discard(v)
            used = sum(inst.size[v] for v in members)
            # Drop the latest node with no successor inside: that keeps the set contiguous.
            for v in sorted(members, reverse=True):
                if used <= inst.acc_memory[acc] * (1 + 1e-9):
                    break
                if not any(a[w] == acc + 1 for w in inst.succ[v]):
                    a[v], changed = HOST, True
                    used -= inst.size[v]
        for cls in inst.colour_classes():
            if len({a[v] for v in cls}) > 1:
                for v in cls:
                    a[v] = HOST
                changed = True
    return tuple(a)


def place(
    inst: Instance,
    semantics: str = "critical",
    contiguous: bool = True,
    time_limit: float = 60.0,
    threads: int = 1,
    upper_bound: float | None = None,
) -> PlacementResult:
    """LP relaxation plus threshold rounding and repair.

    ``upper_bound`` (for example a heuristic's latency) sets the big-M of the critical-path
    rows; by default the trivial bound (everything summed) is used, so the method stands on
    its own.
    """
    t0 = time.perf_counter()
    ub = math.inf if upper_bound is None else upper_bound
    model = build(inst, semantics, contiguous, upper_bound=ub, relaxed=True)
    solver = run_solver(model.problem, time_limit, threads)
    x = model.x.value if model.x.value is not None else np.zeros((inst.n, inst.accelerators))
    x = np.asarray(x).reshape(inst.n, inst.accelerators)
    candidates = {repair(inst, round_shares(x, tau), contiguous) for tau in THRESHOLDS}
    candidates.add(tuple([HOST] * inst.n))
    scored = sorted((evaluate(inst, c, semantics, contiguous).latency, c) for c in candidates)
    latency, best = scored[0]
    bound = model.problem.value if model.problem.status == cp.OPTIMAL else None
    meta: dict[str, Any] = {"solver": solver, "lp_status": model.problem.status}
    meta["fractional_nodes"] = int(np.sum((x > 1e-6) & (x < 1 - 1e-6)))
    return PlacementResult(
        algorithm="relax",
        assignment=best,
        latency=latency,
        solve_s=time.perf_counter() - t0,
        status="rounded",
        bound=None if bound is None else min(max(0.0, float(bound)), latency),
        semantics=semantics,
        contiguous=contiguous,
        meta=meta,
    )


def solve(
    problem: Problem, *, time_limit: float = 60.0, contiguous: bool = True, threads: int = 1
) -> Plan:
    """Registry entry ``relax``: the LP of :mod:`edgesplit.plan.placement_ilp`, rounded.

    Each node goes to its largest share, or to the source when no share exceeds
    ``tau``; the result is made executable and scored by the Problem evaluator.
    """
    t0 = time.perf_counter()
    model, x = build_problem_model(problem, contiguous, relaxed=True)
    solver = run_solver(model, time_limit, threads)
    k, n = problem.n_devices, problem.n_nodes
    shares = np.asarray(x.value) if x.value is not None else np.eye(k)[[problem.source] * n]
    candidates = set()
    for tau in THRESHOLDS:
        raw = tuple(int(np.argmax(row)) if row.max() > tau else problem.source for row in shares)
        candidates.add(make_executable(problem, raw) if contiguous else raw)

    def score(a: tuple[int, ...]) -> float:
        ev = problem_evaluate(problem, a)
        return ev.objective_value if ev.memory_ok else math.inf

    best = min(sorted(candidates), key=score)
    meta: dict[str, Any] = {
        "solver": solver,
        "lp_status": model.status,
        "lp_bound": None if model.value is None else float(model.value),  # type: ignore[arg-type]
        "solve_s": time.perf_counter() - t0,
    }
    return plan_from_assignment(problem, "relax", best, meta)
