"""The paper's baselines (Gao et al. 2019, §IV): Case 2 server-only and Case 3 local-only.

Case 3 runs every layer on its device (split ``M_i``): no server, no upload, completion
``Σ_j T^l_ij``; O(Σ M_i). Case 2 offloads everything (split 0): every device uploads its
raw input and the server runs whole models. The paper does not say in which order the
server takes them; we give the baseline its best order (an exact solve of eq. 10-16 with X
fixed to all ones, CP-SAT), so that the reductions reported against it are not inflated
by a poor order.
"""

from __future__ import annotations

from edgesplit.multidevice.problem import MecProblem, Schedule, evaluate


def solve_local(problem: MecProblem) -> Schedule:
    """Case 3: everything local."""
    splits = [d.m for d in problem.devices]
    return evaluate(problem, splits, [], algorithm="local", status="optimal")


def solve_server(problem: MecProblem, *, time_limit: float = 30.0) -> Schedule:
    """Case 2: everything on the server, in the best server order."""
    from edgesplit.multidevice.cpsat import solve_cpsat

    result = solve_cpsat(problem, time_limit=time_limit, fixed_splits=[0] * problem.n)
    return evaluate(
        problem,
        result.splits,
        result.server_sequence,
        algorithm="server",
        status=result.status,
        solve_s=result.solve_s,
        bound_s=result.bound_s,
    )
