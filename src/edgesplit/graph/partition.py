"""Exact split execution: one mechanism that turns any assignment into executable parts.

This is the mechanism side of "policy versus mechanism" (torch.fx ``split_module``):
planners only produce an assignment ``node -> part``; :func:`partition` builds one
``torch.fx.GraphModule`` per part whose placeholders are the tensors crossing into it and
whose outputs are the tensors it must hand on. Running the parts in order on the same
input gives an output ``torch.equal`` to the unsplit model, because every part executes
exactly the original ops on exactly the original values.

Assignments need not be contiguous: any assignment whose part-to-part data flow is
acyclic is executable (a DADS min-cut, for example). A cyclic one raises
:class:`~edgesplit.errors.PartitionError` naming a tensor on the cycle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
import torch.fx as fx
import torch.utils._pytree as pytree

from edgesplit.errors import PartitionError
from edgesplit.graph.types import Graph


@dataclass(frozen=True)
class Part:
    """One executable part: reads ``input_names`` and returns ``output_names``."""

    index: int
    node_names: tuple[str, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    module: fx.GraphModule

    def __call__(self, values: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        try:
            args = [values[n] for n in self.input_names]
        except KeyError as err:
            raise PartitionError(
                f"part {self.index} needs tensor {err.args[0]!r}, which was not supplied"
            ) from None
        outs = self.module(*args)
        return dict(zip(self.output_names, outs))


@dataclass(frozen=True)
class SplitModel:
    """The parts of one assignment, in an executable order."""

    graph: Graph
    parts: tuple[Part, ...]
    assignment: tuple[int, ...]

    @cached_property
    def release_after(self) -> tuple[tuple[str, ...], ...]:
        """Per part, the values no later part reads (model outputs are kept).

        Dropping them as soon as possible mirrors fx's generated code, which frees each
        intermediate after its last use; holding every intermediate instead defeats the
        allocator's reuse of warm memory and slows split execution measurably.
        """
        keep = set(self.graph.output_names)
        last: dict[str, int] = {}
        for i, part in enumerate(self.parts):
            for name in (*part.input_names, *part.output_names):
                last[name] = i
        return tuple(
            tuple(n for n, j in last.items() if j == i and n not in keep)
            for i in range(len(self.parts))
        )

    def run_values(self, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run every part in order; returns the model outputs by name."""
        values: dict[str, Any] = dict(zip(self.graph.input_names, inputs))
        for part, done in zip(self.parts, self.release_after):
            values.update(part(values))
            for name in done:
                values.pop(name, None)
        return values

    def __call__(self, *inputs: torch.Tensor) -> Any:
        return self.assemble_output(self.run_values(*inputs))

    def assemble_output(self, values: Mapping[str, Any]) -> Any:
        """Rebuild the model's output structure from named values."""
        return assemble_output(self.graph, values)


def assemble_output(graph: Graph, values: Mapping[str, Any]) -> Any:
    """The model's output structure, rebuilt from named values.

    fx graphs return their structure (a dict, nested tuples) from the output node;
    exported graphs return a flat tuple and unflatten it with their ``_out_spec`` into
    the model's own type (a Hugging Face ``ModelOutput``, for example). Either way the
    result has the structure of the model's own return value.
    """
    gm = graph.module
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    flat = _plain(fx.node.map_arg(out_node.args[0], lambda n: values[n.name]))
    out_spec = getattr(gm, "_out_spec", None)
    if out_spec is not None:
        leaves = list(flat) if isinstance(flat, tuple | list) else [flat]
        return pytree.tree_unflatten(leaves, out_spec)
    return flat


def _plain(obj: Any) -> Any:
    """fx's immutable containers -> the plain list and dict the model itself returns."""
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_plain(x) for x in obj)
    if isinstance(obj, list):
        return [_plain(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


def part_order(graph: Graph, assignment: Sequence[int], num_parts: int | None = None) -> list[int]:
    """Validate ``assignment`` and return its parts in a data-flow order."""
    if len(assignment) != len(graph.nodes):
        raise PartitionError(
            f"assignment has {len(assignment)} entries but {graph.name!r} has "
            f"{len(graph.nodes)} nodes; give one part id per node"
        )
    for node, p in zip(graph.nodes, assignment):
        if not isinstance(p, int) or p < 0:
            raise PartitionError(f"node {node.name!r} has part id {p!r}; use integers >= 0")
    k = max(max(assignment, default=-1) + 1, num_parts or 0)
    edges: dict[int, set[int]] = {p: set() for p in range(k)}
    witness: dict[tuple[int, int], str] = {}
    for t in graph.tensors:
        if t.producer is None:
            continue
        src = assignment[graph.index(t.producer)]
        for c in t.consumers:
            dst = assignment[graph.index(c)]
            if dst != src:
                edges[src].add(dst)
                witness.setdefault((src, dst), f"{t.name} ({t.producer} -> {c})")
    indegree = {p: 0 for p in range(k)}
    for src in edges:
        for dst in edges[src]:
            indegree[dst] += 1
    ready = sorted(p for p, d in indegree.items() if d == 0)
    order: list[int] = []
    while ready:
        p = ready.pop(0)
        order.append(p)
        for q in sorted(edges[p]):
            indegree[q] -= 1
            if indegree[q] == 0:
                ready.append(q)
        ready.sort()
    if len(order) != k:
        stuck = [p for p in range(k) if p not in order]
        hint = next(w for (s, d), w in witness.items() if s in stuck and d in stuck)
        raise PartitionError(
            f"parts {stuck} depend on each other in a cycle, e.g. via tensor {hint}; "
            "assign whole dependency chains so data flows one way between parts"
        )
    return order


def partition(graph: Graph, assignment: Sequence[int], num_parts: int | None = None) -> SplitModel:
    """Build the executable parts of ``assignment`` (node index -> part id).

    Complexity O(|fx nodes| + |tensors| · consumers). Empty parts are allowed and pass
    nothing through (cut 0 leaves the first part empty).
    """
    if graph.module is None:
        raise PartitionError(f"graph {graph.name!r} has no traced module to execute")
    order = part_order(graph, assignment, num_parts)
    part_of_member: dict[str, int] = {}
    for node, p in zip(graph.nodes, assignment):
        for m in node.members:
            part_of_member[m] = p
    gm: fx.GraphModule = graph.module
    fx_nodes = list(gm.graph.nodes)
    outputs_needed = _outputs_needed(fx_nodes, part_of_member)
    parts = []
    for p in order:
        members = [n for n in fx_nodes if part_of_member.get(n.name) == p]
        parts.append(
            _build_part(
                gm,
                p,
                members,
                outputs_needed.get(p, []),
                tuple(n.name for n, a in zip(graph.nodes, assignment) if a == p),
            )
        )
    return SplitModel(graph, tuple(parts), tuple(assignment))


def split_at(graph: Graph, cuts: Sequence[int]) -> SplitModel:
    """Contiguous split: ``cuts`` are increasing cut indices; ``[k]`` gives two parts."""
    n = len(graph.nodes)
    bounds = [0, *cuts, n]
    if any(b < a for a, b in zip(bounds, bounds[1:])) or not all(0 <= c <= n for c in cuts):
        raise PartitionError(f"cuts {list(cuts)} must be increasing within 0..{n}")
    assignment = [0] * n
    for p, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        for i in range(lo, hi):
            assignment[i] = p
    # Trailing empty parts still count, so a two-tier split always has two parts.
    return partition(graph, assignment, num_parts=len(bounds) - 1)


def _outputs_needed(fx_nodes: list[fx.Node], part_of: dict[str, int]) -> dict[int, list[fx.Node]]:
    needed: dict[int, list[fx.Node]] = {}
    for n in fx_nodes:
        p = part_of.get(n.name)
        if p is None:
            continue
        external = any(u.op == "output" or part_of.get(u.name, p) != p for u in n.users)
        if external:
            needed.setdefault(p, []).append(n)
    return needed


def _build_part(
    gm: fx.GraphModule,
    index: int,
    members: list[fx.Node],
    outputs: list[fx.Node],
    node_names: tuple[str, ...],
) -> Part:
    member_set = set(members)
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    inputs: list[str] = []

    def lookup(a: fx.Node) -> fx.Node:
        if a in env:
            return env[a]
        if a.op == "get_attr":
            env[a] = graph.get_attr(str(a.target))
            return env[a]
        if a in member_set:
            raise PartitionError(f"node {a.name!r} used before it is defined in part {index}")
        # A value produced outside this part becomes a placeholder named after it.
        env[a] = graph.placeholder(a.name)
        env[a].meta = dict(a.meta)
        inputs.append(a.name)
        return env[a]

    for n in members:
        for a in n.all_input_nodes:
            lookup(a)
        env[n] = graph.node_copy(n, lookup)
    graph.output(tuple(env[o] for o in outputs))
    module = fx.GraphModule(gm, graph, class_name=f"Part{index}")
    return Part(
        index=index,
        node_names=node_names,
        input_names=tuple(inputs),
        output_names=tuple(o.name for o in outputs),
        module=module,
    )
