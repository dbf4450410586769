"""Planning: Problem and Plan types, and one module per algorithm (``solve(...) -> Plan``)."""

from edgesplit.plan.evaluate import Evaluation, check_plan, evaluate
from edgesplit.plan.problem import COMMS, OBJECTIVES, SEMANTICS, Objective, Problem
from edgesplit.plan.registry import ALGORITHMS, get_solver, solve
from edgesplit.plan.types import Plan

__all__ = [
    "ALGORITHMS",
    "COMMS",
    "OBJECTIVES",
    "SEMANTICS",
    "Evaluation",
    "Objective",
    "Plan",
    "Problem",
    "check_plan",
    "evaluate",
    "get_solver",
    "solve",
]
