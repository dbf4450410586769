"""Reader and writer for the Tarnawski et al. (NeurIPS 2020) device-placement files.

Input files (``latency-inputs/``) are read unchanged into a :class:`Problem` with
``comm="tensor"`` (critical-path semantics by default): a CPU (the source, the host)
plus ``maxFPGAs`` identical accelerators of ``maxSizePerFPGA`` bytes, per-node
``cpuLatency``/``fpgaLatency``/``size``, optional ``colorClass``, and per-edge ``cost``
(the time to move the source's output between an accelerator and CPU memory; all
out-edges of a node carry the same cost, so we take the largest to be safe) as the
``tensor_seconds`` of the node's one output tensor. Times stay in the file's units.
``maxCPUs`` is ignored, as in their reference IP: CPU parallelism is unbounded. Nodes are
ordered topologically with every predecessor-free node (a weight, a constant) right
before its first consumer, so colour classes that tie a weight to its operator stay close
together in the order; the interval heuristic depends on that. Placements use their
output format::

    {"totalLatency": 839.5, "fpgas": [{"nodes": [1, 2]}], "cpus": [{"nodes": [0, 3]}]}

which is also the format of the human-expert splits. Reading is O(n + m).
"""

from __future__ import annotations

import heapq
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgesplit.errors import InputError
from edgesplit.graph.types import Graph, Node, Tensor
from edgesplit.io import read_document
from edgesplit.plan.problem import Problem, Semantics
from edgesplit.plan.types import Plan


class TarnawskiNode(BaseModel):
    """One operator or layer of a Tarnawski input file."""

    model_config = ConfigDict(extra="allow")

    id: int
    name: str = ""
    supportedOnFpga: bool = True
    cpuLatency: float = Field(ge=0)
    fpgaLatency: float = Field(ge=0)
    isBackwardNode: bool = False
    colorClass: int | None = None
    size: float = Field(default=0.0, ge=0)


class TarnawskiEdge(BaseModel):
    """A data dependency; ``cost`` is the accelerator <-> CPU transfer time of the source."""

    model_config = ConfigDict(extra="allow")

    sourceId: int
    destId: int
    cost: float = Field(default=0.0, ge=0)


class TarnawskiInput(BaseModel):
    """A latency-minimisation input of Tarnawski et al. (msr-fiddle/dnn-partitioning)."""

    model_config = ConfigDict(extra="allow")

    maxFPGAs: int = Field(ge=0)
    maxSizePerFPGA: float = Field(gt=0)
    maxCPUs: int = 1
    nodes: list[TarnawskiNode]
    edges: list[TarnawskiEdge]


class DevicePlacement(BaseModel):
    model_config = ConfigDict(extra="allow")

    nodes: list[int]


class TarnawskiPlacement(BaseModel):
    """A placement in the Tarnawski output format (also the human-expert files)."""

    model_config = ConfigDict(extra="allow")

    totalLatency: float | None = None
    fpgas: list[DevicePlacement] = Field(default_factory=list)
    cpus: list[DevicePlacement] = Field(default_factory=list)


def published_workloads_dir() -> Path:
    """Where the Tarnawski et al. workloads are: ``$EDGESPLIT_SHARED`` or ``shared/`` beside the repo.

    The workloads ship read-only in ``../shared/benchmarks/dnn-partitioning`` next to a
    checkout (as in CI); ``EDGESPLIT_SHARED`` points elsewhere.
    """
    env = os.environ.get("EDGESPLIT_SHARED")
    repo = Path(__file__).resolve().parents[3]
    for root in ([Path(env)] if env else []) + [repo.parent / "shared", repo / "shared"]:
        candidate = root / "benchmarks" / "dnn-partitioning"
        if candidate.is_dir():
            return candidate
    return (Path(env) if env else repo.parent / "shared") / "benchmarks" / "dnn-partitioning"


def load_input(path: str | Path) -> TarnawskiInput:
    """A Tarnawski workload file; one-line InputError naming file and field if bad."""
    return read_document(path, TarnawskiInput, what="workload file", schema="tarnawski")


def to_problem(
    doc: TarnawskiInput,
    name: str = "tarnawski",
    *,
    processors: int | None = None,
    memory: float | None = None,
    semantics: Semantics = "critical",
    contiguous: bool = True,
) -> Problem:
    """The file as a :class:`Problem`: device 0 ``cpu`` (the host), then ``maxFPGAs``
    (or ``processors``) identical ``fpga{a}`` of ``maxSizePerFPGA`` (or ``memory``) bytes.

    ``processors`` and ``memory`` are the limits the human-expert splits were made for.
    """
    k = doc.maxFPGAs if processors is None else processors
    if k < 0:
        raise InputError(f"accelerator count must be >= 0, not {k}")
    cap = doc.maxSizePerFPGA if memory is None else memory
    if not cap > 0:
        raise InputError(f"--memory must be positive, not {cap}")
    ids = [nd.id for nd in doc.nodes]
    pos = {nid: i for i, nid in enumerate(ids)}
    if len(pos) != len(ids):
        raise InputError(f"workload {name!r}: node ids are not unique")
    succ: list[list[int]] = [[] for _ in ids]
    preds: list[list[int]] = [[] for _ in ids]
    indeg = [0] * len(ids)
    seen: set[tuple[int, int]] = set()
    cost: dict[int, float] = {}
    for e in doc.edges:
        if e.sourceId not in pos or e.destId not in pos:
            bad = e.sourceId if e.sourceId not in pos else e.destId
            raise InputError(f"workload {name!r}: an edge names unknown node id {bad}")
        cost[e.sourceId] = max(cost.get(e.sourceId, 0.0), e.cost)
        if (e.sourceId, e.destId) in seen:
            continue
        seen.add((e.sourceId, e.destId))
        succ[pos[e.sourceId]].append(pos[e.destId])
        preds[pos[e.destId]].append(pos[e.sourceId])
        indeg[pos[e.destId]] += 1
    order = _topological(len(ids), succ, indeg, name)
    rank = {old: new for new, old in enumerate(order)}
    nodes, tensors = [], []
    for new, old in enumerate(order):
        nd = doc.nodes[old]
        size = math.ceil(nd.size)
        readers = tuple(str(ids[c]) for c in sorted(succ[old], key=rank.__getitem__))
        nodes.append(
            Node(
                name=str(nd.id),
                index=new,
                kind="other",
                target=nd.name,
                inputs=tuple(f"t{ids[p]}" for p in preds[old]),
                outputs=(f"t{nd.id}",),
                input_shapes=(),
                output_shape=(),
                dtype="float32",
                output_bytes=0,
                flops=0,
                params=0,
                param_bytes=size,
            )
        )
        tensors.append(Tensor(f"t{nd.id}", (), "float32", 0, str(nd.id), readers))
    graph = Graph(name, "op", tuple(nodes), tuple(tensors), (), (), tracer="tarnawski")
    cpu = [doc.nodes[o].cpuLatency for o in order]
    fpga = [doc.nodes[o].fpgaLatency if doc.nodes[o].supportedOnFpga else math.inf for o in order]
    node_cost = [cost.get(ids[o], 0.0) for o in order]
    # Nodes without a colour class get a class of their own, away from every real class.
    top = max((nd.colorClass for nd in doc.nodes if nd.colorClass is not None), default=0) + 1
    colour: list[int] = []
    for o in order:
        cc = doc.nodes[o].colorClass
        colour.append(top + o if cc is None else cc)
    return Problem(
        graph=graph,
        devices=("cpu", *(f"fpga{a}" for a in range(k))),
        seconds=np.array([cpu] + [fpga] * k, dtype=float),
        links={},
        price_per_second=(0.0,) * (k + 1),
        memory_bytes=(None, *([float(cap)] * k)),
        source=0,
        semantics=semantics,
        comm="tensor",
        contiguous=contiguous,
        colour=tuple(colour),
        tensor_seconds=np.array([[0.0] * len(order)] + [node_cost] * k, dtype=float),
        meta={"workload": name, "units": "the file's time units"},
    )


def load_problem(
    path: str | Path,
    *,
    processors: int | None = None,
    memory: float | None = None,
    semantics: Semantics = "critical",
    contiguous: bool = True,
) -> Problem:
    """Read a Tarnawski workload file into a :class:`Problem` (see :func:`to_problem`)."""
    return to_problem(
        load_input(path),
        name=Path(path).stem,
        processors=processors,
        memory=memory,
        semantics=semantics,
        contiguous=contiguous,
    )


def load_placement(path: str | Path) -> TarnawskiPlacement:
    """A placement file (their output format, the human-expert splits)."""
    return read_document(
        path, TarnawskiPlacement, what="placement file", schema="tarnawski-placement"
    )


def read_placement(path: str | Path, problem: Problem) -> tuple[int, ...]:
    """An assignment for ``problem`` from a placement file; every node listed once."""
    return placement_assignment(load_placement(path), problem, str(path))


def placement_assignment(
    doc: TarnawskiPlacement, problem: Problem, where: str = "placement"
) -> tuple[int, ...]:
    k = problem.n_devices - 1
    if len(doc.fpgas) > k:
        raise InputError(
            f"{where}: uses {len(doc.fpgas)} accelerators, the workload has {k}; "
            "solve with a larger accelerator count (--fpgas)"
        )
    pos = {int(nd.name): nd.index for nd in problem.graph.nodes}
    assignment: list[int | None] = [None] * problem.n_nodes
    groups = [(0, g) for g in doc.cpus] + [(a + 1, g) for a, g in enumerate(doc.fpgas)]
    for device, group in groups:
        for nid in group.nodes:
            if nid not in pos:
                raise InputError(f"{where}: node id {nid} is not in the workload")
            if assignment[pos[nid]] is not None:
                raise InputError(f"{where}: node id {nid} is placed twice")
            assignment[pos[nid]] = device
    missing = [problem.graph.nodes[v].name for v, d in enumerate(assignment) if d is None]
    if missing:
        raise InputError(f"{where}: nodes {missing[:5]} are not placed; list every node once")
    return tuple(d for d in assignment if d is not None)


def placement_document(problem: Problem, plan: Plan | Sequence[int]) -> dict[str, Any]:
    """The Tarnawski output format; unused accelerators are left out, as in their files.

    ``totalLatency`` is the plan's predicted latency (an assignment alone is evaluated).
    """
    from edgesplit.plan.evaluate import evaluate

    if isinstance(plan, Plan):
        assignment, latency = plan.assignment, plan.predicted["latency_s"]
    else:
        assignment = tuple(plan)
        ev = evaluate(problem, assignment)
        latency = ev.latency_s if ev.feasible else math.inf
    ids = [int(nd.name) for nd in problem.graph.nodes]
    fpgas = []
    for a in range(1, problem.n_devices):
        nodes = sorted(ids[v] for v, d in enumerate(assignment) if d == a)
        if nodes:
            fpgas.append({"nodes": nodes})
    cpus = [{"nodes": sorted(ids[v] for v, d in enumerate(assignment) if d == 0)}]
    return {"totalLatency": latency, "fpgas": fpgas, "cpus": cpus}


def _topological(n: int, succ: list[list[int]], indeg: list[int], name: str) -> list[int]:
    """Kahn's algorithm by smallest id, with predecessor-free nodes placed late."""
    indeg = indeg[:]
    sources = [v for v in range(n) if indeg[v] == 0]
    free = {v for v in sources if succ[v]}
    heap = [v for v in sources if v not in free]
    heapq.heapify(heap)
    # A predecessor-free node is emitted only when one of its consumers would otherwise be
    # ready: we release it when its first consumer's other inputs are done.
    waiting: dict[int, list[int]] = {}
    for f in free:
        for d in succ[f]:
            waiting.setdefault(d, []).append(f)
    pending = {d: len(waiting.get(d, [])) for d in range(n)}
    order: list[int] = []
    emitted: set[int] = set()

    def emit(v: int) -> None:
        order.append(v)
        emitted.add(v)
        for d in succ[v]:
            indeg[d] -= 1
            if v in free:
                pending[d] -= 1
            if indeg[d] == 0:
                heapq.heappush(heap, d)
            elif indeg[d] == pending[d]:
                for f in sorted(waiting.get(d, [])):
                    if f not in emitted:
                        emit(f)

    for d in range(n):
        if indeg[d] > 0 and indeg[d] == pending[d]:
            for f in sorted(waiting.get(d, [])):
                if f not in emitted:
                    emit(f)
    while heap:
        emit(heapq.heappop(heap))
    if len(order) != n:
        raise InputError(f"instance {name!r}: the graph has a cycle; placement needs a DAG")
    return order
