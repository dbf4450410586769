"""Shared glue between the placement solvers and the planner's :class:`Problem`.

The Problem's cost semantics (see :mod:`edgesplit.plan.problem`) are linear in each
device's busy seconds and in the communication seconds, for every objective:
``objective = sum_d a_d busy_d + b comm`` (:func:`linear_weights`). Executability: a
device-level assignment runs with one part per device exactly when its part data flow is
acyclic, which is the same as every device's node set being contiguous (a cycle between
parts is a path leaving a device and coming back). :func:`execution_parts` splits any
assignment into runs along the topological order, which is always acyclic, for the
non-contiguous option. O(n + m) each.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from edgesplit.errors import InfeasiblePlanError
from edgesplit.graph.types import Graph
from edgesplit.placement.instance import Instance
from edgesplit.plan.evaluate import evaluate as problem_evaluate
from edgesplit.plan.problem import Problem
from edgesplit.plan.types import Plan


def linear_weights(problem: Problem) -> tuple[list[float], float]:
    """``(a, b)`` with ``objective = sum_d a[d] * busy[d] + b * comm`` (exact, all objectives)."""
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


def node_edges(graph: Graph) -> list[tuple[int, int]]:
    """Producer -> consumer node index pairs (each once)."""
    out: set[tuple[int, int]] = set()
    for t in graph.tensors:
        if t.producer is None:
            continue
        p = graph.index(t.producer)
        for c in t.consumers:
            out.add((p, graph.index(c)))
    return sorted(out)


def contiguous_violations(graph: Graph, assignment: Sequence[int]) -> list[int]:
    """Devices whose node set is re-entered after a path left it (empty: executable)."""
    n = len(graph.nodes)
    succ: list[list[int]] = [[] for _ in range(n)]
    for u, v in node_edges(graph):
        succ[u].append(v)
    bad = []
    for d in sorted(set(assignment)):
        after = [False] * n
        for u in range(n):  # graph nodes are in topological order
            if assignment[u] == d and after[u]:
                bad.append(d)
                break
            for v in succ[u]:
                if after[u] or (assignment[u] == d and assignment[v] != d):
                    after[v] = True
    return bad


def execution_parts(graph: Graph, assignment: Sequence[int]) -> tuple[int, ...]:
    """Part ids for :func:`~edgesplit.graph.partition.partition`.

    One part per device when the assignment is contiguous; otherwise one part per maximal
    run of a device along the topological order (always acyclic).
    """
    if not contiguous_violations(graph, assignment):
        return tuple(assignment)
    parts, run = [], -1
    for i, d in enumerate(assignment):
        if i == 0 or d != assignment[i - 1]:
            run += 1
        parts.append(run)
    return tuple(parts)


def plan_from_assignment(
    problem: Problem, algorithm: str, assignment: Sequence[int], meta: Mapping[str, Any]
) -> Plan:
    """A Plan whose predicted figures are the Problem evaluator's (so check_plan holds)."""
    ev = problem_evaluate(problem, assignment)
    if not ev.memory_ok:
        raise InfeasiblePlanError(
            f"{algorithm} found no assignment of {problem.graph.name!r} within device memory; "
            "raise a device's memory"
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


def make_executable(problem: Problem, assignment: Sequence[int]) -> tuple[int, ...]:
    """Repair ``assignment`` so every device's node set is contiguous (one part each).

    Topological greedy: node ``v`` keeps its device unless a path already left that
    device and reached ``v``; then it joins the device of a predecessor that is latest in
    the order devices were opened (such a device can never have been left on a path to
    ``v``), or a device not used yet. O(k (n + m)).
    """
    g = problem.graph
    n, k = problem.n_nodes, problem.n_devices
    pred: list[list[int]] = [[] for _ in range(n)]
    for u, v in node_edges(g):
        pred[v].append(u)
    after = [[False] * k for _ in range(n)]  # after[v][d]: reached v after leaving d
    out = list(assignment)
    opened: list[int] = []
    for v in range(n):
        base = [any(after[u][d] for u in pred[v]) for d in range(k)]
        usable = [d for d in range(k) if not base[d] and math.isfinite(problem.seconds[d, v])]
        if not usable:
            raise InfeasiblePlanError(
                f"node {g.nodes[v].name!r} fits no device without a cycle between parts; "
                "allow non-contiguous placement"
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


def problem_to_instance(problem: Problem) -> tuple[Instance, tuple[int, ...]]:
    """The Problem as a placement Instance (host = source, accelerators = the others).

    Node weights are ``a_d * seconds`` and transfer costs ``b * bytes * 8 / bandwidth``
    (rtt left out: it is per message, not per tensor), so the Instance's *sequential*
    latency approximates the Problem objective; it routes accelerator-to-accelerator data
    through the source, as Tarnawski's model does. Two pinned host nodes carry the model
    input (id -1) and receive the outputs (id -2). Returns the Instance and the device
    index each Instance device stands for.
    """
    g, src = problem.graph, problem.source
    n = problem.n_nodes
    others = tuple(d for d in range(problem.n_devices) if d != src)
    a, b = linear_weights(problem)
    out_bytes = [float(nd.output_bytes) for nd in g.nodes]
    in_bytes = float(sum(g.tensor(name).nbytes for name in g.input_names))
    ids = [*range(n), -1, -2]
    edges = node_edges(g)
    for t in g.tensors:
        if t.producer is None:
            edges += [(-1, g.index(c)) for c in t.consumers]
        if t.is_output:
            edges.append((-2 if t.producer is None else g.index(t.producer), -2))
    edges = [(u, v) for u, v in edges if u != v]
    host = [a[src] * float(s) for s in problem.seconds[src]] + [0.0, 0.0]
    acc_time, acc_cost, memory = [], [], []
    for d in others:
        link = problem.link(src, d)
        per_byte = math.inf if link is None else b * 8.0 / link.bandwidth_bps
        acc_time.append([a[d] * float(s) for s in problem.seconds[d]] + [math.inf, math.inf])
        acc_cost.append([x * per_byte for x in out_bytes] + [in_bytes * per_byte, 0.0])
        cap = problem.memory_bytes[d]
        memory.append(math.inf if cap is None else float(cap))
    inst = Instance.create(
        name=g.name,
        ids=ids,
        edges=edges,
        host_time=host,
        acc_time=acc_time,
        acc_cost=[[0.0 if math.isnan(c) else c for c in row] for row in acc_cost],
        size=[*problem.node_memory_bytes.tolist(), 0.0, 0.0],
        acc_memory=memory,
        device_names=tuple(problem.devices[d] for d in (src, *others)),
    )
    return inst, (src, *others)


def from_instance_assignment(
    inst: Instance, devices: Sequence[int], assignment: Sequence[int]
) -> tuple[int, ...]:
    """Map an Instance assignment back to problem device indices per graph node."""
    out = {nid: devices[d] for nid, d in zip(inst.ids, assignment) if nid >= 0}
    return tuple(out[i] for i in range(len(out)))
