"""Execution stages of a plan, and the model fingerprint a stage is checked against.

A plan assigns each node to a named device; a device may be visited more than once
along the data flow (device → edge → device), and its nodes need not be contiguous. The
engine runs *stages*: maximal groups of one device's nodes whose stage-to-stage data
flow is acyclic, each one part of :func:`edgesplit.graph.partition.partition` (the one
partition mechanism), so a staged run is ``torch.equal`` to the unsplit model.

Stages (the choice made here). When the devices' data flow is acyclic (no device is
reached again after another), each device's nodes are one stage, as
:func:`edgesplit.plan.feasible.execution_parts` counts them for the evaluator. Otherwise
stages go by device changes: for each node ``v`` in topological order,
``k(v) = max over producers u of k(u) + [device(u) != device(v)]`` (0 for a node that
reads only model inputs): the most device changes on any path into ``v``. A stage
is the set of nodes with one ``(k, device)``. Every edge between two stages strictly
increases ``k`` (a same-device edge with equal ``k`` stays inside a stage), so stages in
``(k, device index)`` order are a valid execution order and never form a cycle. A
contiguous chain gets one stage per maximal run; a device reached again after another
device gets a new stage. (``execution_parts`` cuts a cyclic flow into runs of the node
order instead; on a chain both agree, on an interleaved DAG the levels keep parallel
branches of one device together.) Complexity O(|nodes| + |tensors| · consumers).

The fingerprint (``tracer``, ``granularity``, ``inputs``: the input tensors' names,
dtypes and shapes, ``weights``: sha256 of the state dict's names, dtypes, shapes and
bytes) identifies the model a plan was made for; a server refuses a stage whose
fingerprint differs from its own model's (HTTP 409).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch

from edgesplit.errors import InputError, PartitionError
from edgesplit.graph import Graph
from edgesplit.graph.partition import Part, SplitModel, part_order, partition

#: The device name of model inputs and final outputs: the one the run starts on.
ORIGIN = -1
#: The device of nodes a plan does not compute (past an early exit): their stages are
#: dropped, and the model outputs they would make are not among the plan's outputs.
SKIP = "~skip"


@dataclass(frozen=True)
class Stage:
    """One executable stage: a part of the partition, run on ``device``.

    ``readers[name]`` are the stage ids reading output ``name`` (``ORIGIN`` where it is
    a model output, which comes back to the device the run started on).
    """

    index: int
    device: str
    part: Part
    readers: dict[str, tuple[int, ...]]

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.part.input_names

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.part.output_names


@dataclass(frozen=True)
class Stages:
    """The stages of one plan's assignment, in execution order (``stages[i].index == i``)."""

    graph: Graph
    devices: tuple[str, ...]
    assignment: tuple[int, ...]
    stages: tuple[Stage, ...]
    split: SplitModel
    #: The model outputs made when nodes are skipped (empty: all of the graph's).
    kept_outputs: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.stages)

    @property
    def output_names(self) -> tuple[str, ...]:
        """The model outputs this plan makes (all of the graph's unless nodes are skipped)."""
        return self.kept_outputs or self.graph.output_names

    def __getitem__(self, i: int) -> Stage:
        return self.stages[i]

    @cached_property
    def readers(self) -> dict[str, frozenset[int]]:
        """Every value (model inputs included) -> the stage ids reading it (ORIGIN: a model output)."""
        out: dict[str, set[int]] = {}
        for st in self.stages:
            for name in st.inputs:
                out.setdefault(name, set()).add(st.index)
        for name in self.graph.output_names:
            out.setdefault(name, set()).add(ORIGIN)
        return {k: frozenset(v) for k, v in out.items()}

    def needed_from(self, cursor: int, names: Any) -> list[str]:
        """Of ``names``, those read by a stage at or after ``cursor`` or that are model outputs."""
        return [
            n
            for n in names
            if any(r == ORIGIN or r >= cursor for r in self.readers.get(n, frozenset()))
        ]

    def describe(self) -> list[dict[str, Any]]:
        """Plain data per stage: device, nodes, inputs, outputs and who reads each output."""
        return [
            {
                "stage": st.index,
                "device": st.device,
                "nodes": len(st.part.node_names),
                "inputs": list(st.inputs),
                "outputs": {
                    n: ["local" if r == ORIGIN else r for r in rs] for n, rs in st.readers.items()
                },
            }
            for st in self.stages
        ]


def stage_assignment(graph: Graph, assignment: Sequence[int]) -> tuple[list[int], list[int]]:
    """Node -> stage id, and stage id -> device index (see the module docstring)."""
    if len(assignment) != len(graph.nodes):
        raise InputError(
            f"assignment has {len(assignment)} entries but {graph.name!r} has "
            f"{len(graph.nodes)} nodes; re-plan with the same model and granularity"
        )
    try:
        order = part_order(graph, list(assignment))
    except PartitionError:
        return _level_stages(graph, assignment)
    used = [d for d in order if d in set(assignment)]
    ids = {d: i for i, d in enumerate(used)}
    return [ids[a] for a in assignment], used


def _level_stages(graph: Graph, assignment: Sequence[int]) -> tuple[list[int], list[int]]:
    """Stages by device-change level, for assignments whose device data flow has a cycle."""
    producer = {t.name: t.producer for t in graph.tensors}
    level: dict[str, int] = {}
    for node, dev in zip(graph.nodes, assignment):
        k = 0
        for t in node.inputs:
            src = producer.get(t)
            if src is not None:
                k = max(k, level[src] + (assignment[graph.index(src)] != dev))
        level[node.name] = k
    keys = sorted({(level[n.name], a) for n, a in zip(graph.nodes, assignment)})
    ids = {key: i for i, key in enumerate(keys)}
    return [ids[(level[n.name], a)] for n, a in zip(graph.nodes, assignment)], [a for _, a in keys]


def build_stages(graph: Graph, devices: Sequence[str], assignment: Sequence[int]) -> Stages:
    """The stages of ``assignment`` (node -> index into ``devices``), parts built once."""
    for i, a in enumerate(assignment):
        if not 0 <= a < len(devices):
            raise InputError(f"assignment gives node {i} device {a}; use 0..{len(devices) - 1}")
    node_stage, stage_device = stage_assignment(graph, assignment)
    split = partition(graph, node_stage, num_parts=len(stage_device))
    if [p.index for p in split.parts] != list(range(len(stage_device))):
        raise InputError("stage order disagrees with the partition's data flow")  # pragma: no cover
    readers: dict[str, list[int]] = {}
    for part in split.parts:
        for name in part.input_names:
            readers.setdefault(name, []).append(part.index)
    finals = set(graph.output_names)
    stages = tuple(
        Stage(
            index=part.index,
            device=devices[stage_device[part.index]],
            part=part,
            readers={
                n: tuple(readers.get(n, [])) + ((ORIGIN,) if n in finals else ())
                for n in part.output_names
            },
        )
        for part in split.parts
    )
    if SKIP in devices:
        return _without_skipped(graph, tuple(devices), tuple(assignment), stages, split)
    return Stages(graph, tuple(devices), tuple(assignment), stages, split)


def _without_skipped(
    graph: Graph,
    devices: tuple[str, ...],
    assignment: tuple[int, ...],
    stages: tuple[Stage, ...],
    split: SplitModel,
) -> Stages:
    """The stages not on :data:`SKIP`, renumbered in order (an early exit's chain).

    Kept stages never read a skipped one's outputs (:mod:`edgesplit.runtime.exits` skips
    only nodes no kept node depends on), so dropping them keeps a valid order.
    """
    kept = [st for st in stages if st.device != SKIP]
    new = {st.index: j for j, st in enumerate(kept)}
    made = {n for st in kept for n in st.outputs}
    for st in kept:
        missing = [n for n in st.inputs if n not in made and n not in graph.input_names]
        if missing:
            raise InputError(
                f"stage on {st.device!r} reads {missing[0]!r}, made by a skipped node; "
                f"skip ({SKIP!r}) only nodes that no computed node depends on"
            )
    renumbered = tuple(
        Stage(
            index=new[st.index],
            device=st.device,
            part=st.part,
            readers={
                n: tuple(new.get(r, r) for r in rs if r in new or r == ORIGIN)
                for n, rs in st.readers.items()
            },
        )
        for st in kept
    )
    outputs = tuple(n for n in graph.output_names if n in made)
    return Stages(graph, devices, assignment, renumbered, split, outputs)


def input_spec(graph: Graph) -> str:
    """The graph's inputs as text, ``name:dtype[shape]`` joined by ``,`` (fingerprint field)."""
    parts = []
    for name in graph.input_names:
        t = graph.tensor(name)
        parts.append(f"{name}:{t.dtype}{list(t.shape)}")
    return ",".join(parts)


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 over the state dict's names, dtypes, shapes and bytes, in state-dict order."""
    h = hashlib.sha256()
    with torch.no_grad():
        for name, value in module.state_dict().items():
            t = value.detach().to("cpu").contiguous()
            h.update(f"{name}:{t.dtype}{list(t.shape)};".encode())
            if t.numel():
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def fingerprint(graph: Graph) -> dict[str, str]:
    """The model's identity as a plan records it in ``meta['fingerprint']``."""
    if graph.module is None:
        raise InputError(f"graph {graph.name!r} has no traced module to fingerprint")
    return {
        "tracer": graph.tracer,
        "granularity": str(graph.granularity),
        "inputs": input_spec(graph),
        "weights": weights_digest(graph.module),
    }


def fingerprint_mismatch(mine: dict[str, str], theirs: dict[str, Any]) -> str | None:
    """The first differing field as one sentence, or None when they agree."""
    for key in ("tracer", "granularity", "inputs", "weights"):
        if str(theirs.get(key)) != mine[key]:
            return (
                f"plan's model fingerprint field {key!r} is {theirs.get(key)!r} but the served "
                f"model has {mine[key]!r}; serve the same model, inputs and weights, or re-plan"
            )
    return None


def assignment_key(devices: Sequence[str], assignment: Sequence[int]) -> str:
    """A short hash naming one (devices, assignment) pair, for records and caches."""
    text = ",".join(devices) + "|" + ",".join(str(a) for a in assignment)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
