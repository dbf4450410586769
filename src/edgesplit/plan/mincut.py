"""Two-tier DAG partitioning by minimum s-t cut (DADS; Hu et al., INFOCOM 2019).

The source side ``S`` is the first device (the one holding the input), the sink side the
second. For every node ``v``: an arc ``s -> v`` of capacity ``w2(v)`` (paid when ``v``
runs on the second device) and ``v -> t`` of capacity ``w1(v)`` (paid on the first).
Transfers: each tensor gets an auxiliary node ``x``; ``producer -> x`` has capacity
``up(x)`` and ``x -> consumer`` is uncapacitated, so a tensor read by several
second-side nodes is paid **once**, not once per edge (the case plain DADS overcounts).
Model inputs hang off ``s``. A model output produced on the second side is sent back
(``s -> producer`` gains ``down(x)``). Uncapacitated reverse arcs ``consumer -> producer``
forbid data flowing from the second device back to the first, so the first side is
closed under predecessors and the two parts always execute in order (the cut is
executable by :func:`edgesplit.graph.partition.partition`).

The Problem's per-message round trip (``rtt/2`` for the upload, another for the response)
is a fixed charge, not a cut capacity. We solve one cut per case — outputs forced to the
first device, outputs forced to the second; and both orientations, the source device
upstream (DADS) or downstream (it sends the input and finishes the model) — and keep the
best of those and the two single-device placements under the Problem evaluator. For a
single-output model under per-message pricing that is exact (the tests check it against
brute force). Under ``comm="tensor"`` each tensor's capacity is its per-tensor transfer;
the host may then also hold nodes on both sides of the other device's set, which a closed
cut cannot express, so there the cut is an upper bound. Colour classes are kept on one
side by uncapacitated arcs both ways. Sequential semantics only. Min cut by networkx
preflow-push, O(V^2 sqrt(E)) with V = nodes + tensors.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx

from edgesplit.errors import InputError
from edgesplit.plan.evaluate import score
from edgesplit.plan.feasible import linear_weights, plan_from_assignment
from edgesplit.plan.heuristic import tensor_costs
from edgesplit.plan.problem import Problem
from edgesplit.plan.types import Plan


@dataclass(frozen=True)
class Flow:
    """One tensor: ``producer`` index (None: a model input, on the first side)."""

    producer: int | None
    consumers: tuple[int, ...]
    up: float
    down: float = 0.0
    is_output: bool = False


def min_cut(
    first: Sequence[float],
    second: Sequence[float],
    flows: Sequence[Flow],
    forced_first: Sequence[int] = (),
    forced_second: Sequence[int] = (),
    inputs_on_first: bool = True,
    together: Sequence[Sequence[int]] = (),
) -> tuple[tuple[bool, ...], float]:
    """``(on_first, cut value)`` of the closed partition minimising the capacities above.

    ``inf`` in ``first``/``second`` means "cannot run there". ``inputs_on_first=False``
    puts the model inputs, and the destination of the outputs, on the second side (the
    source device runs the *downstream* part). Nodes of one ``together`` class stay on one
    side (uncapacitated arcs both ways). Raises InputError when the forcing leaves no
    finite cut.
    """
    n = len(first)
    g = nx.DiGraph()
    g.add_nodes_from(["s", "t"])

    def cap(u: object, v: object, c: float) -> None:
        if math.isinf(c):
            g.add_edge(u, v)  # no capacity attribute: networkx treats it as infinite
        elif c > 0:
            prev = g.get_edge_data(u, v)
            if prev is not None and "capacity" not in prev:
                return
            g.add_edge(u, v, capacity=c + (prev["capacity"] if prev else 0.0))

    for v in range(n):
        cap("s", v, second[v])
        cap(v, "t", first[v])
    for v in forced_first:
        cap("s", v, math.inf)
    for v in forced_second:
        cap(v, "t", math.inf)
    for cls in together:
        for u, v in zip(cls, cls[1:]):
            cap(u, v, math.inf)
            cap(v, u, math.inf)
    for j, f in enumerate(flows):
        aux = ("x", j)
        g.add_node(aux)
        if f.producer is None and not inputs_on_first:
            cap(aux, "t", f.up)  # paid once if any reader sits on the first side
            for c in f.consumers:
                cap(c, aux, math.inf)
            continue
        cap("s" if f.producer is None else f.producer, aux, f.up)
        for c in f.consumers:
            cap(aux, c, math.inf)
            if f.producer is not None:
                cap(c, f.producer, math.inf)
        if f.is_output and f.producer is not None:
            if inputs_on_first:
                cap("s", f.producer, f.down)
            else:
                cap(f.producer, "t", f.down)
    try:
        value, (reach, _) = nx.minimum_cut(g, "s", "t")
    except nx.NetworkXUnbounded:
        raise InputError(
            "no finite two-tier cut: a node can run on neither device, or forcing conflicts"
        ) from None
    return tuple(v in reach for v in range(n)), float(value)


def problem_flows(problem: Problem) -> list[Flow]:
    """One flow per tensor, priced by its per-tensor transfer (RTT is handled by cases)."""
    st = problem.structure
    cost = tensor_costs(problem)[1 - problem.source]
    flows = []
    for j, p in enumerate(st.producer):
        c = float(cost[j])
        flows.append(Flow(None if p < 0 else p, st.consumers[j], c, c, st.is_output[j]))
    return flows


def solve(problem: Problem) -> Plan:
    """The best two-tier closed partition of ``problem`` for its (linear) objective."""
    if problem.n_devices != 2:
        raise InputError(
            f"mincut splits between two devices; the problem has {problem.n_devices}. "
            "Use --algorithm ilp or heuristic"
        )
    if problem.semantics != "sequential":
        raise InputError(
            "mincut optimises the sequential semantics; use --algorithm ilp or heuristic"
        )
    t0 = time.perf_counter()
    a, b = linear_weights(problem)
    src, other = problem.source, 1 - problem.source
    secs = problem.seconds
    flows = [
        Flow(f.producer, f.consumers, b * f.up, b * f.down, f.is_output)
        for f in problem_flows(problem)
    ]
    outputs = sorted({f.producer for f in flows if f.is_output and f.producer is not None})
    n = problem.n_nodes
    candidates = [tuple([src] * n), tuple([other] * n)]
    # Orientation 1: the source runs the upstream part (DADS); orientation 2: the other
    # device does (it receives the input and the source finishes the model).
    for upstream, downstream, on_first in ((src, other, True), (other, src, False)):
        w1 = [a[upstream] * float(s) for s in secs[upstream]]
        w2 = [a[downstream] * float(s) for s in secs[downstream]]
        for forced in ("first", "second"):
            try:
                side, _ = min_cut(
                    w1,
                    w2,
                    flows,
                    forced_first=outputs if forced == "first" else (),
                    forced_second=outputs if forced == "second" else (),
                    inputs_on_first=on_first,
                    together=problem.colour_classes(),
                )
            except InputError:
                continue
            candidates.append(tuple(upstream if f else downstream for f in side))

    best = min(candidates, key=lambda c: score(problem, c))
    meta = {"candidates": len(candidates), "solve_s": time.perf_counter() - t0}
    return plan_from_assignment(problem, "mincut", best, meta)
