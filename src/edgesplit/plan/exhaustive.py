"""Exhaustive search: evaluate every candidate assignment and keep the best.

``space="contiguous"`` (default) enumerates every split of the topological order into
consecutive runs on devices ``0, 1, ..., k-1`` in problem order (runs may be empty):
C(n+k−1, k−1) candidates, i.e. the n+1 cuts of Neurosurgeon/Luger for two tiers.
``space="all"`` enumerates all kⁿ assignments (only for small graphs; ``max_candidates``
guards it). Each candidate is scored by the evaluator, which rejects the ones that break
a rule of the problem (memory, colour classes, contiguity, a cycle between device calls),
so ``space="all"`` is a brute force over every semantics of :class:`Problem`. Ties go to the first candidate in enumeration order (fewer nodes off the first
device). Complexity: O(candidates · (n + |tensors|·k)).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from edgesplit.errors import InfeasiblePlanError, InputError
from edgesplit.plan.evaluate import evaluate
from edgesplit.plan.problem import Problem
from edgesplit.plan.types import Plan


def _contiguous(n: int, k: int) -> Iterator[tuple[int, ...]]:
    for cuts in itertools.combinations_with_replacement(range(n + 1), k - 1):
        bounds = (0, *cuts, n)
        yield tuple(d for d in range(k) for _ in range(bounds[d], bounds[d + 1]))


def solve(problem: Problem, *, space: str = "contiguous", max_candidates: int = 2_000_000) -> Plan:
    """The best assignment of ``problem`` over ``space`` for ``problem.objective``."""
    n, k = problem.n_nodes, problem.n_devices
    if space == "contiguous":
        candidates: Iterator[tuple[int, ...]] = _contiguous(n, k)
    elif space == "all":
        if k**n > max_candidates:
            raise InputError(
                f"space='all' needs {k}^{n} candidates (> max_candidates={max_candidates}); "
                f"use space='contiguous' or another --algorithm"
            )
        candidates = itertools.product(range(k), repeat=n)
    else:
        raise InputError(f"space must be 'contiguous' or 'all', not {space!r}")
    best, best_value, count = None, float("inf"), 0
    for assignment in candidates:
        count += 1
        ev = evaluate(problem, assignment)
        if ev.score < best_value:
            best, best_value = (assignment, ev), ev.objective_value
    if best is None:
        raise InfeasiblePlanError(
            f"no {space} assignment of {problem.graph.name!r} satisfies the problem's rules "
            f"with finite {problem.objective}; raise a device's memory or add a link"
        )
    assignment, ev = best
    cut = None
    if k == 2 and space == "contiguous":
        cut = sum(1 for a in assignment if a == 0)
    return Plan(
        model=problem.graph.name,
        algorithm="exhaustive",
        devices=problem.devices,
        assignment=assignment,
        predicted=ev.as_predicted(problem.devices),
        objective=problem.objective,
        cut=cut,
        meta={"space": space, "candidates": count, "weight": problem.weight},
    )
