"""k-processor placement: the instance type, the Tarnawski et al. file format, the evaluator.

The solvers live in :mod:`edgesplit.plan` (``milp``, ``relax``, ``heuristic``, ``mincut``);
this package holds what they share and what checks them independently.
"""

from __future__ import annotations

from edgesplit.placement.evaluate import Evaluation, evaluate, violations
from edgesplit.placement.instance import HOST, Instance

__all__ = ["HOST", "Evaluation", "Instance", "evaluate", "violations"]
