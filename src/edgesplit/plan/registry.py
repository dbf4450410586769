"""The planner front door: algorithm name -> ``"module:function"``.

Every entry is a ``solve(problem: Problem, **opts) -> Plan``. ``edgesplit plan
--algorithm``, ``edgesplit placement solve`` (Tarnawski files read into a Problem) and
``edgesplit reproduce samadi`` all dispatch through :func:`solve`, like networkx's
``maximum_flow(flow_func=...)``; a solver refuses a problem outside its model (two-tier
and mincut: two devices; mincut: sequential semantics) with one :class:`InputError` line.
Entries are import paths so listing them imports nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from edgesplit.errors import InputError
from edgesplit.plan.problem import Problem
from edgesplit.plan.types import Plan

ALGORITHMS: dict[str, str] = {
    "exhaustive": "edgesplit.plan.exhaustive:solve",
    "two-tier": "edgesplit.plan.planner:solve",
    "mincut": "edgesplit.plan.mincut:solve",
    "ilp": "edgesplit.plan.milp:solve",
    "relax": "edgesplit.plan.relax:solve",
    "heuristic": "edgesplit.plan.heuristic:solve",
}

DEFAULT_ALGORITHM = "exhaustive"


def get_solver(name: str) -> Callable[..., Any]:
    """The ``solve`` function registered under ``name``."""
    if name not in ALGORITHMS:
        raise InputError(
            f"unknown --algorithm {name!r}; choose one of {', '.join(sorted(ALGORITHMS))}"
        )
    module_name, _, func = ALGORITHMS[name].partition(":")
    solver: Callable[..., Any] = getattr(importlib.import_module(module_name), func)
    return solver


def solve(problem: Problem, algorithm: str = DEFAULT_ALGORITHM, **opts: Any) -> Plan:
    """Solve ``problem`` with the named algorithm."""
    result: Plan = get_solver(algorithm)(problem, **opts)
    return result
