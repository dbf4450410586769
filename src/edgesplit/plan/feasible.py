"""What every placement solver shares: linear weights, the one rounding, the one repair,
run-segmented parts, and the Plan a solver returns.

The Problem's objective is linear in each device's busy seconds and in the
communication seconds under the sequential semantics, for every objective:
``objective = sum_d a_d busy_d + b comm`` (:func:`linear_weights`; the MILP and the
interval DP use it, and it is a proxy under the critical-path semantics).
Executability: a device-level assignment runs with one part per device exactly when its
part data flow is acyclic, the same as every device's node set being contiguous;
:func:`execution_parts` splits any assignment into runs along the topological order,
which is always acyclic, for non-contiguous plans. O(n + m) each.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edgesplit.errors import InfeasiblePlanError
from edgesplit.graph.types import Graph
from edgesplit.plan.evaluate import evaluate, over_memory, violations
from edgesplit.plan.problem import Problem, Structure
from edgesplit.plan.types import Plan


def linear_weights(problem: Problem) -> tuple[list[float], float]:
    """``(a, b)`` with ``objective = sum_d a[d] * busy[d] + b * comm`` (sequential semantics)."""
    k, src = problem.n_devices, problem.source
    if problem.objective == "latency":
        return [1.0] * k, 1.0
    if problem.objective == "cost":
        return list(problem.price_per_second), 0.0
    if problem.objective == "energy":
        busy = [
            0.0 if pm is None else pm.watts(problem.busy_utilisation[d])
            for d, pm in enumerate(problem.power)
        ]
        pm_src = problem.power[src]
        idle = 0.0 if pm_src is None else pm_src.watts(problem.idle_utilisation[src])
        return [busy[d] + (idle if d != src else 0.0) for d in range(k)], idle
    lw = (1.0 - problem.weight) / problem.latency_scale
    cw = problem.weight / problem.cost_scale
    return [lw + cw * p for p in problem.price_per_second], lw


def reentered(succ: Sequence[Sequence[int]], members: set[int]) -> set[int]:
    """Nodes reachable from ``members`` by a path that has left ``members``."""
    after: set[int] = set()
    for u in range(len(succ)):  # topological order
        if u in after or u in members:
            for v in succ[u]:
                if v not in members or u in after:
                    after.add(v)
    return after


def execution_parts(graph: Graph, assignment: Sequence[int]) -> tuple[int, ...]:
    """Part ids for :func:`~edgesplit.graph.partition.partition`.

    One part per device when the devices' data flow is acyclic (contiguous sets can still
    wait on each other: ``a -> b``, ``b' -> a'``); otherwise one part per maximal run of a
    device along the topological order (always acyclic).
    """
    if _parts_acyclic(Structure.of(graph), assignment):
        return tuple(assignment)
    parts, run = [], -1
    for i, d in enumerate(assignment):
        if i == 0 or d != assignment[i - 1]:
            run += 1
        parts.append(run)
    return tuple(parts)


def _parts_acyclic(st: Structure, assignment: Sequence[int]) -> bool:
    import networkx as nx

    flow = nx.DiGraph()
    flow.add_nodes_from(set(assignment))
    flow.add_edges_from(
        (assignment[u], assignment[v]) for u, v in st.edges if assignment[u] != assignment[v]
    )
    return bool(nx.is_directed_acyclic_graph(flow))


def round_shares(problem: Problem, shares: np.ndarray, tau: float) -> tuple[int, ...]:
    """The one rounding of fractional shares ``(n, k)``: each node to the non-source device
    with its largest share if that share exceeds ``tau``, else to the source."""
    src = problem.source
    x = np.array(shares, dtype=float)
    x[:, src] = -np.inf
    out = []
    for row in x:
        d = int(np.argmax(row))
        out.append(d if d != src and row[d] > tau else src)
    return tuple(out)


def repair(problem: Problem, assignment: Sequence[int]) -> tuple[int, ...]:
    """The one repair: make ``assignment`` satisfy the problem's rules.

    Nodes a device cannot run, nodes reached again after leaving their (non-source)
    device, the latest nodes of a device over its memory (a node with no successor on
    that device, which keeps the set contiguous) and split colour classes go to the
    source, until nothing changes (each pass only shrinks non-source sets, so at most
    ``n`` passes). Where the source must itself be contiguous (``comm="message"``), the
    topological greedy :func:`_one_part_each` follows. Under the critical-path semantics
    contiguous calls can still wait on each other in a cycle (``a -> b`` and ``b' -> a'``
    with ``a, a'`` on one device and ``b, b'`` on another); the smallest device set on such
    a cycle then moves to the source, until none is left (at most ``k`` times).
    O(n (n + m)).
    """
    src, st = problem.source, problem.structure
    a = list(assignment)
    for v, d in enumerate(a):
        if not math.isfinite(problem.seconds[d, v]):
            a[v] = src
    for _ in range(problem.n_nodes + 1):
        changed = _to_source(problem, a, st)
        if problem.contiguous and problem.hub is None and violations(problem, a):
            fixed = _one_part_each(problem, a)
            changed = changed or fixed != tuple(a)
            a = list(fixed)
        if not changed:
            break
    if problem.semantics == "critical":
        _break_call_cycles(problem, a)
    return tuple(a)


def _break_call_cycles(problem: Problem, a: list[int]) -> None:
    import networkx as nx

    src, n = problem.source, problem.n_nodes
    while True:
        units = nx.DiGraph()
        for u, v in problem.structure.edges:
            x = u if a[u] == src else n + a[u]
            y = v if a[v] == src else n + a[v]
            if x != y:
                units.add_edge(x, y)
        try:
            cycle = nx.find_cycle(units)
        except nx.NetworkXNoCycle:
            return
        devices = {x - n for edge in cycle for x in edge if x >= n}
        smallest = min(devices, key=lambda d: (sum(1 for x in a if x == d), d))
        for v in range(n):
            if a[v] == smallest:
                a[v] = src


def _to_source(problem: Problem, a: list[int], st: Structure) -> bool:
    src = problem.source
    changed = False
    for d in range(problem.n_devices):
        if d == src:
            continue
        members = {v for v, x in enumerate(a) if x == d}
        if problem.contiguous:
            for v in reentered(st.succ, members) & members:
                a[v], changed = src, True
                members.discard(v)
        cap = problem.memory_bytes[d]
        if cap is None:
            continue
        used = sum(float(problem.node_memory_bytes[v]) for v in members)
        for v in sorted(members, reverse=True):
            if used <= cap * (1 + 1e-9):
                break
            if not any(a[w] == d for w in st.succ[v]):
                a[v], changed = src, True
                used -= float(problem.node_memory_bytes[v])
    for cls in problem.colour_classes():
        if len({a[v] for v in cls}) > 1:
            for v in cls:
                a[v] = src
            changed = True
    return changed


def _one_part_each(problem: Problem, assignment: Sequence[int]) -> tuple[int, ...]:
    """Every device contiguous: node ``v`` keeps its device unless a path already left
    that device and reached ``v``; then it joins the device of a predecessor opened
    latest (never left on a path to ``v``), or a device not used yet. O(k (n + m))."""
    pred = problem.structure.pred
    n, k = problem.n_nodes, problem.n_devices
    after = [[False] * k for _ in range(n)]  # after[v][d]: reached v after leaving d
    out = list(assignment)
    opened: list[int] = []
    for v in range(n):
        base = [any(after[u][d] for u in pred[v]) for d in range(k)]
        usable = [d for d in range(k) if not base[d] and math.isfinite(problem.seconds[d, v])]
        if not usable:
            raise InfeasiblePlanError(
                f"node {problem.graph.nodes[v].name!r} fits no device without a cycle between "
                "parts; allow non-contiguous placement"
            )
        if out[v] not in usable:
            near = [out[u] for u in pred[v] if out[u] in usable]
            near.sort(key=lambda d: opened.index(d) if d in opened else -1)
            fresh = [d for d in usable if d not in opened]
            out[v] = near[-1] if near else (fresh[0] if fresh else usable[0])
        on_pred = {out[u] for u in pred[v]}
        after[v] = [base[d] or (d in on_pred and d != out[v]) for d in range(k)]
        if out[v] not in opened:
            opened.append(out[v])
    return tuple(out)


def plan_from_assignment(
    problem: Problem, algorithm: str, assignment: Sequence[int], meta: Mapping[str, Any]
) -> Plan:
    """A Plan whose predicted figures are the evaluator's (so check_plan holds)."""
    ev = evaluate(problem, assignment)
    if not ev.feasible:
        what = "memory" if over_memory(problem, assignment) else "its rules"
        broken = ev.problems[0]
        # A missing link's line names its own fix (evaluate.unlinked).
        fix = (
            ""
            if broken.startswith("no link")
            else "; raise a device's memory or allow more devices"
        )
        raise InfeasiblePlanError(
            f"{algorithm} found no assignment of {problem.graph.name!r} within {what}: "
            f"{broken}{fix}"
        )
    cut = None
    if problem.n_devices == 2 and problem.source == 0:
        first = sum(1 for d in assignment if d == 0)
        if all((d == 0) == (i < first) for i, d in enumerate(assignment)):
            cut = first
    return Plan(
        model=problem.graph.name,
        algorithm=algorithm,
        devices=problem.devices,
        assignment=tuple(int(d) for d in assignment),
        predicted=ev.as_predicted(problem.devices),
        objective=problem.objective,
        cut=cut,
        meta=dict(meta),
    )
