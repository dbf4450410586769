"""The Edgent baseline (Li, Zhou and Chen 2018) as Pre-DNNOff compares against it (§5.2).

Edgent co-infers on a device and one edge server: it picks an exit of the BranchyNet and a
single partition point of that exit's chain; layers before the point run on the device,
the rest on the edge, and the result returns to the device.

* With a known accuracy requirement ``ac``: the shallowest exit with ``Acc(k) >= ac``
  (the deepest when none meets it), then the partition point that minimises that exit's
  latency (eq. 4.6).
* With a latency ``deadline`` instead (Edgent's own setting): the deepest exit whose best
  partition meets the deadline (:class:`~edgesplit.errors.InfeasiblePlanError` if none).

How the baseline is applied is *our reading*: Zuo 2024 §5.2 reports Edgent's expected
latency (207.11 ms) but does not say which requirement Edgent was given, nor how its one
deployment is priced over a distribution of requirements. We give Edgent the expected
requirement ``E[ac]`` (one known requirement, as Edgent needs) and price the resulting
deployment by eq. 4.8 over the whole requirement distribution, the objective Pre-DNNOff
minimises. Edgent places only its chosen chain's prefix on the device; every other layer
(deeper trunk, other side branches) lives on the edge server, which hosts the full model
(also our reading: Edgent plans one exit, and a request that needs another exit must still
be served somewhere).

That deployment is one assignment over {mobile, edge}, so Pre-DNNOff's search space
(every assignment over its tiers, which include both) contains it: the exact optimum is
never above Edgent's eq. 4.8 figure.
Complexity O(P * N^2) for exits P and chain length N (each point priced by eq. 4.6).
"""

from __future__ import annotations

from edgesplit.earlyexit.problem import EDGE, MOBILE, EarlyExitProblem, to_plan
from edgesplit.errors import InfeasiblePlanError, InputError
from edgesplit.plan.types import Plan


def _chain_assignment(problem: EarlyExitProblem, k: int, point: int) -> list[int]:
    chain = problem.chain(k)
    genes = [EDGE] * problem.n_layers
    for i in chain[:point]:
        genes[i] = MOBILE
    return genes


def best_partition(problem: EarlyExitProblem, k: int) -> tuple[int, float]:
    """Edgent's partition point for exit ``k``: (layers on the device, latency seconds)."""
    n = len(problem.chain(k))
    return min(
        ((pt, problem.latency(k, _chain_assignment(problem, k, pt))["total_s"])
         for pt in range(n + 1)),
        key=lambda x: x[1],
    )  # fmt: skip


def solve_edgent(
    problem: EarlyExitProblem,
    requirement: float | None = None,
    deadline_s: float | None = None,
) -> Plan:
    """Edgent's exit and partition for ``requirement`` (or ``deadline_s``); see module doc.

    Pre-DNNOff's comparison (§5.2) passes ``requirement=E[ac]``: our reading, not stated by
    the paper.
    """
    if not {MOBILE, EDGE} <= set(problem.tiers):
        raise InputError("Edgent needs the mobile and edge tiers; add both to 'tiers'")
    if (requirement is None) == (deadline_s is None):
        raise InputError("Edgent needs exactly one of an accuracy requirement or a deadline")
    if requirement is not None:
        k = next(
            (i for i, a in enumerate(problem.accuracies, start=1) if a >= requirement),
            problem.n_exits,
        )
        point, latency = best_partition(problem, k)
    else:
        feasible = [
            (k, *best_partition(problem, k))
            for k in range(1, problem.n_exits + 1)
            if best_partition(problem, k)[1] <= float(deadline_s or 0.0)
        ]
        if not feasible:
            raise InfeasiblePlanError(
                f"no exit meets the {deadline_s} s deadline under Edgent; relax the deadline"
            )
        k, point, latency = feasible[-1]
    return to_plan(
        problem,
        _chain_assignment(problem, k, point),
        "edgent",
        {
            "exit": k,
            "partition_point": point,
            "exit_latency_s": latency,
            "requirement": requirement,
            "deadline_s": deadline_s,
        },
    )
