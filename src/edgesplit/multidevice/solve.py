"""Front door: ``solve(problem, solver=...)`` dispatches to one module per algorithm."""

from __future__ import annotations

from edgesplit.errors import InputError
from edgesplit.multidevice.problem import MecProblem, Schedule

SOLVERS = ("milp", "cpsat", "heuristic", "local", "server", "bruteforce")


def solve(problem: MecProblem, solver: str = "cpsat", *, time_limit: float = 60.0) -> Schedule:
    """Solve ``problem`` with ``solver`` (one of :data:`SOLVERS`)."""
    if time_limit <= 0:
        raise InputError(f"--time-limit must be positive, not {time_limit}")
    if solver == "milp":
        from edgesplit.multidevice.milp import solve_milp

        return solve_milp(problem, time_limit=time_limit)
    if solver == "cpsat":
        from edgesplit.multidevice.cpsat import solve_cpsat
        from edgesplit.multidevice.heuristic import solve_heuristic

        return solve_cpsat(problem, time_limit=time_limit, hint=solve_heuristic(problem))
    if solver == "heuristic":
        from edgesplit.multidevice.heuristic import solve_heuristic

        return solve_heuristic(problem, time_budget=min(time_limit, 0.8))
    if solver == "local":
        from edgesplit.multidevice.baselines import solve_local

        return solve_local(problem)
    if solver == "server":
        from edgesplit.multidevice.baselines import solve_server

        return solve_server(problem, time_limit=time_limit)
    if solver == "bruteforce":
        from edgesplit.multidevice.bruteforce import solve_bruteforce

        return solve_bruteforce(problem)
    raise InputError(f"--solver must be one of {', '.join(SOLVERS)}, not {solver!r}")
