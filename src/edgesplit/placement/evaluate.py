"""Independent latency evaluator for k-processor placements.

Written from the semantics of the Tarnawski et al. reference solvers as stated in
``shared/benchmarks/dnn-partitioning/README.md`` ("Latency model of the reference solvers"),
not from any solver here, so the tests can use it as an oracle for the MILP, the
relaxation, the heuristic and the min-cut:

1. every node is on the host or on exactly one accelerator;
2. an accelerator holds one contiguous subgraph (no path leaves it and comes back), within
   its memory, with colour classes colocated;
3. host nodes run as soon as their inputs are ready, with unbounded parallelism:
   ``ready(v) = max(ready(u) for u -> v) + host_time(v)``;
4. an accelerator runs its subgraph as one call and communication does not overlap compute:
   ``start = max(ready(u))`` over outside nodes feeding it, ``finish = start +
   sum(acc_time) + sum(cost(u))`` over nodes whose output crosses its boundary either way,
   and each of its nodes is ready at ``finish``;
5. latency is the largest ready time.

``semantics="sequential"`` drops all overlap (one inference at a time on a chain of
devices): latency is the sum of every host time and every accelerator call. Evaluation is
O(n + m) per placement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from edgesplit.errors import InputError
from edgesplit.placement.instance import HOST, Instance

Semantics = Literal["critical", "sequential"]
SEMANTICS: tuple[str, ...] = ("critical", "sequential")


@dataclass(frozen=True)
class Evaluation:
    """Latency of one placement; ``latency`` is ``inf`` when ``problems`` is not empty."""

    latency: float
    problems: tuple[str, ...]
    calls: tuple[float, ...]  # duration of each accelerator's call (0 when unused)
    host_busy: float

    @property
    def feasible(self) -> bool:
        return not self.problems


def _check_shape(inst: Instance, assignment: Sequence[int]) -> None:
    if len(assignment) != inst.n:
        raise InputError(
            f"placement has {len(assignment)} entries; instance {inst.name!r} has {inst.n} nodes"
        )
    if assignment and not 0 <= min(assignment) <= max(assignment) <= inst.accelerators:
        v = next(v for v, d in enumerate(assignment) if not 0 <= d <= inst.accelerators)
        raise InputError(
            f"node {inst.ids[v]} is placed on device {assignment[v]}; "
            f"use 0 (host) .. {inst.accelerators}"
        )


def violations(inst: Instance, assignment: Sequence[int], contiguous: bool = True) -> list[str]:
    """Every broken rule of the placement, one line each, naming node ids and devices.

    Contiguity for all accelerators in one O(n + m) pass: ``left[v]`` is the bit set of
    accelerators that some path to ``v`` has left; ``v`` breaks the rule if its own
    accelerator is in it.
    """
    _check_shape(inst, assignment)
    out: list[str] = []
    used = [0.0] * inst.accelerators
    unsupported: dict[int, list[int]] = {}
    for v, d in enumerate(assignment):
        if d != HOST:
            used[d - 1] += inst.size[v]
            if not inst.supported(d - 1, v):
                unsupported.setdefault(d - 1, []).append(inst.ids[v])
    for a, bad in sorted(unsupported.items()):
        out.append(f"{inst.device_names[a + 1]}: nodes {bad[:5]} are not supported there")
    for a in range(inst.accelerators):
        if used[a] > inst.acc_memory[a] * (1 + 1e-9):
            out.append(
                f"{inst.device_names[a + 1]}: holds {used[a]:.6g} bytes, "
                f"capacity {inst.acc_memory[a]:.6g}"
            )
    if contiguous:
        left = [0] * inst.n
        reported: set[int] = set()
        for u in range(inst.n):  # positions are a topological order
            du = assignment[u]
            if du != HOST and left[u] >> du & 1 and du not in reported:
                reported.add(du)
                out.append(
                    f"{inst.device_names[du]}: subgraph is not contiguous (node "
                    f"{inst.ids[u]} is reached again after leaving it)"
                )
            for v in inst.succ[u]:
                bits = left[u]
                if du != HOST and assignment[v] != du:
                    bits |= 1 << du
                left[v] |= bits
    for cls in inst.colour_classes():
        devices = {assignment[v] for v in cls}
        if len(devices) > 1:
            out.append(
                f"colour class {inst.colour[cls[0]]} is split over devices "
                f"{sorted(inst.device_names[d] for d in devices)}"
            )
    return out


def reached_after_leaving(inst: Instance, members: set[int]) -> set[int]:
    """Nodes reachable from ``members`` by a path that has left ``members``."""
    after: set[int] = set()
    for u in range(inst.n):  # positions are a topological order
        if u in after or u in members:
            for v in inst.succ[u]:
                if v not in members or u in after:
                    after.add(v)
    return after


def _call_durations(inst: Instance, assignment: Sequence[int]) -> list[float]:
    calls = [0.0] * inst.accelerators
    for v, d in enumerate(assignment):
        if d != HOST:
            calls[d - 1] += inst.acc_time[d - 1][v]
    for u in range(inst.n):
        du = assignment[u]
        # The cost of u's output is paid once per accelerator whose boundary it crosses.
        touched = {assignment[w] for w in inst.succ[u]}
        for d in touched:
            if d != du and d != HOST:
                calls[d - 1] += inst.acc_cost[d - 1][u]
        if du != HOST and any(d != du for d in touched):
            calls[du - 1] += inst.acc_cost[du - 1][u]
    return calls


def evaluate(
    inst: Instance,
    assignment: Sequence[int],
    semantics: str = "critical",
    contiguous: bool = True,
) -> Evaluation:
    """Latency of ``assignment`` under ``semantics``; infeasible placements give ``inf``."""
    if semantics not in SEMANTICS:
        raise InputError(f"semantics must be one of {SEMANTICS}, not {semantics!r}")
    problems = violations(inst, assignment, contiguous)
    if problems:
        return Evaluation(math.inf, tuple(problems), (), 0.0)
    calls = _call_durations(inst, assignment)
    host_busy = sum(inst.host_time[v] for v, d in enumerate(assignment) if d == HOST)
    if semantics == "sequential":
        return Evaluation(host_busy + sum(calls), (), tuple(calls), host_busy)
    latency = _critical_path(inst, assignment, calls)
    if latency is None:
        return Evaluation(
            math.inf,
            ("accelerator subgraphs depend on each other in a cycle",),
            tuple(calls),
            host_busy,
        )
    return Evaluation(latency, (), tuple(calls), host_busy)


def _critical_path(inst: Instance, assignment: Sequence[int], calls: list[float]) -> float | None:
    """Ready times over the quotient graph (host nodes, one unit per accelerator call)."""
    n, k = inst.n, inst.accelerators

    def unit(v: int) -> int:
        return v if assignment[v] == HOST else n + assignment[v] - 1

    preds: list[set[int]] = [set() for _ in range(n + k)]
    for u, v in inst.edges:
        if unit(u) != unit(v):
            preds[unit(v)].add(unit(u))
    succs: list[list[int]] = [[] for _ in range(n + k)]
    indeg = [0] * (n + k)
    for x in range(n + k):
        for p in preds[x]:
            succs[p].append(x)
            indeg[x] += 1
    ready = [0.0] * (n + k)
    stack = [x for x in range(n + k) if indeg[x] == 0]
    done = 0
    while stack:
        x = stack.pop()
        done += 1
        start = max((ready[p] for p in preds[x]), default=0.0)
        ready[x] = start + (inst.host_time[x] if x < n else calls[x - n])
        for y in succs[x]:
            indeg[y] -= 1
            if indeg[y] == 0:
                stack.append(y)
    if done != n + k:
        return None
    used = {unit(v) for v in range(n)}
    return max((ready[x] for x in used), default=0.0)
