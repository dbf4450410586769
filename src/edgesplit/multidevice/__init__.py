"""Multi-device partitioning and offloading with one shared MEC server (Gao et al. 2019)."""

from edgesplit.multidevice.problem import DeviceCosts, MecProblem, Schedule, evaluate
from edgesplit.multidevice.solve import SOLVERS, solve

__all__ = ["SOLVERS", "DeviceCosts", "MecProblem", "Schedule", "evaluate", "solve"]
