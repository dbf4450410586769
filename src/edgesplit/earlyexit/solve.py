"""The early-exit front door: ``solve(problem, solver=..., **options)`` through one registry.

Like networkx's ``maximum_flow(flow_func=...)``: :data:`SOLVERS` maps a name to one solver
function per module, each ``(problem, **options) -> Plan`` whose ``predicted`` figures are
eq. 4.6 per exit and eq. 4.8 (Zuo 2024) for the whole deployment, computed by
:meth:`~edgesplit.earlyexit.problem.EarlyExitProblem.expected_latency`. Entries are import
paths, so listing them imports no solver library (DEAP).

======  ===========================================================  ===========
name    algorithm                                                    result
======  ===========================================================  ===========
exact   dynamic programme over the BranchyNet tree, O(L·T²·2^T)      optimal
ga      Pre-DNNOff §4.4 genetic algorithm (DEAP)                     upper bound
edgent  Edgent (Li et al. 2018): one exit, one device/edge partition  baseline
======  ===========================================================  ===========

Options are checked against the solver's signature: an option it does not take is an
:class:`~edgesplit.errors.InputError` naming the solver and the options it does take, never
silently ignored. Edgent, given neither ``requirement`` nor ``deadline_s``, takes the
requirement distribution's mean from ``problem.meta["mean_requirement"]``, as the paper's
comparison does (§5.2). Solver failures raise (Edgent's unmet deadline is an
:class:`~edgesplit.errors.InfeasiblePlanError`).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from edgesplit.earlyexit.problem import EarlyExitProblem
from edgesplit.errors import InputError
from edgesplit.plan.types import Plan

#: Every registered solver, by the name ``--solver`` takes.
SOLVERS: dict[str, str] = {
    "exact": "edgesplit.earlyexit.exact:solve_exact",
    "ga": "edgesplit.earlyexit.ga:solve_ga",
    "edgent": "edgesplit.earlyexit.edgent:solve_edgent",
}
#: Solvers whose result is a proven optimum of eq. 4.8.
EXACT = ("exact",)
DEFAULT_SOLVER = "exact"


def get_solver(name: str) -> Callable[..., Plan]:
    """The solver function registered under ``name``."""
    if name not in SOLVERS:
        raise InputError(f"--solver must be one of {', '.join(SOLVERS)}, not {name!r}")
    module_name, _, func = SOLVERS[name].partition(":")
    solver: Callable[..., Plan] = getattr(importlib.import_module(module_name), func)
    return solver


def solve(problem: EarlyExitProblem, solver: str = DEFAULT_SOLVER, **options: Any) -> Plan:
    """Solve ``problem`` with the solver registered as ``solver`` (see :data:`SOLVERS`)."""
    func = get_solver(solver)
    accepted = [p for p in inspect.signature(func).parameters if p != "problem"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InputError(
            f"solver {solver!r} takes no option {unknown[0]!r}; it takes "
            f"{', '.join(accepted) or 'no options'}"
        )
    if solver == "edgent" and options.get("requirement") is options.get("deadline_s") is None:
        options["requirement"] = problem.meta.get("mean_requirement")
    return func(problem, **options)
