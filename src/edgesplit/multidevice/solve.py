"""The multi-device front door: ``solve(problem, solver=...)`` through one registry.

Like networkx's ``maximum_flow(flow_func=...)``: :data:`SOLVERS` maps a name to one
function per algorithm module, each ``(problem, time_limit) -> Schedule``, and every
result is an earliest schedule re-evaluated by :func:`~edgesplit.multidevice.problem.evaluate`
(Gao et al. 2019, eq. 4-9). Entries import their module only when called, so listing
them (``--solver`` help, errors) imports no solver library.

==========  ==============================================================  =============
name        algorithm                                                       result
==========  ==============================================================  =============
milp        eq. 10-16 with HiGHS (:mod:`~edgesplit.multidevice.milp`)         optimal
cpsat       eq. 10-16 with OR-Tools CP-SAT, warm-started by the heuristic   optimal
heuristic   Pareto splits, SPT list order, local search (O(N² C) a sweep)   upper bound
local       Gao §IV Case 3: every layer on its device                       baseline
server      Gao §IV Case 2: everything offloaded, best server order         baseline
bruteforce  every split and every server order (N <= 3, M <= 6)             optimal
==========  ==============================================================  =============

A solver that fails raises: :class:`~edgesplit.errors.SolverError` when the solver
library fails, :class:`~edgesplit.errors.InputError` when the time limit passes before
any schedule is found (the fix: a larger ``--time-limit``). A result is never silently
another solver's.
"""

from __future__ import annotations

from collections.abc import Callable

from edgesplit.errors import InputError
from edgesplit.multidevice.problem import MecProblem, Schedule


def _milp(problem: MecProblem, time_limit: float) -> Schedule:
    from edgesplit.multidevice.milp import solve_milp

    return solve_milp(problem, time_limit=time_limit)


def _cpsat(problem: MecProblem, time_limit: float) -> Schedule:
    from edgesplit.multidevice.cpsat import solve_cpsat
    from edgesplit.multidevice.heuristic import solve_heuristic

    return solve_cpsat(problem, time_limit=time_limit, hint=solve_heuristic(problem))


def _heuristic(problem: MecProblem, time_limit: float) -> Schedule:
    from edgesplit.multidevice.heuristic import solve_heuristic

    return solve_heuristic(problem, time_budget=min(time_limit, 0.8))


def _local(problem: MecProblem, time_limit: float) -> Schedule:
    from edgesplit.multidevice.baselines import solve_local

    return solve_local(problem)


def _server(problem: MecProblem, time_limit: float) -> Schedule:
    from edgesplit.multidevice.baselines import solve_server

    return solve_server(problem, time_limit=time_limit)


def _bruteforce(problem: MecProblem, time_limit: float) -> Schedule:
    from edgesplit.multidevice.bruteforce import solve_bruteforce

    return solve_bruteforce(problem)


#: Every registered solver, by the name ``--solver`` takes.
SOLVERS: dict[str, Callable[[MecProblem, float], Schedule]] = {
    "milp": _milp,
    "cpsat": _cpsat,
    "heuristic": _heuristic,
    "local": _local,
    "server": _server,
    "bruteforce": _bruteforce,
}
#: Solvers whose ``status == "optimal"`` result is a proven optimum of eq. 10-16.
EXACT = ("milp", "cpsat", "bruteforce")
DEFAULT_SOLVER = "cpsat"


def solve(
    problem: MecProblem, solver: str = DEFAULT_SOLVER, *, time_limit: float = 60.0
) -> Schedule:
    """Solve ``problem`` with the solver registered as ``solver`` (see :data:`SOLVERS`)."""
    if solver not in SOLVERS:
        raise InputError(f"--solver must be one of {', '.join(SOLVERS)}, not {solver!r}")
    if not time_limit > 0:
        raise InputError(f"--time-limit must be positive, not {time_limit}")
    return SOLVERS[solver](problem, time_limit)
