"""Reader and writer for the Tarnawski et al. (NeurIPS 2020) device-placement files.

Input files (``latency-inputs/``) are read unchanged: a CPU plus ``maxFPGAs`` identical
accelerators of ``maxSizePerFPGA`` bytes, per-node ``cpuLatency``/``fpgaLatency``/``size``,
optional ``colorClass``, and per-edge ``cost`` (the time to move the source's output
between an accelerator and CPU memory; all out-edges of a node carry the same cost, so we
take the largest to be safe). ``maxCPUs`` is ignored, as in their reference IP: CPU
parallelism is unbounded. Placements use their output format::

    {"totalLatency": 839.5, "fpgas": [{"nodes": [1, 2]}], "cpus": [{"nodes": [0, 3]}]}

which is also the format of the human-expert splits. Reading is O(n + m).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edgesplit.errors import InputError
from edgesplit.io import read_document
from edgesplit.placement.instance import HOST, Instance


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


def read_input(path: str | Path) -> TarnawskiInput:
    """A Tarnawski workload file; one-line InputError naming file and field if bad."""
    return read_document(path, TarnawskiInput, what="workload file", schema="tarnawski")


def to_instance(doc: TarnawskiInput, name: str = "tarnawski") -> Instance:
    """The file as an :class:`Instance` with ``maxFPGAs`` identical accelerators."""
    ids = [nd.id for nd in doc.nodes]
    cost: dict[int, float] = {}
    for e in doc.edges:
        cost[e.sourceId] = max(cost.get(e.sourceId, 0.0), e.cost)
    fpga = [nd.fpgaLatency if nd.supportedOnFpga else math.inf for nd in doc.nodes]
    costs = [cost.get(i, 0.0) for i in ids]
    # Nodes without a colour class get a class of their own, away from every real class.
    top = max((nd.colorClass for nd in doc.nodes if nd.colorClass is not None), default=0) + 1
    colour = [
        nd.colorClass if nd.colorClass is not None else top + i for i, nd in enumerate(doc.nodes)
    ]
    k = doc.maxFPGAs
    return Instance.create(
        name=name,
        ids=ids,
        edges=[(e.sourceId, e.destId) for e in doc.edges],
        host_time=[nd.cpuLatency for nd in doc.nodes],
        acc_time=[fpga] * k,
        acc_cost=[costs] * k,
        size=[nd.size for nd in doc.nodes],
        acc_memory=[doc.maxSizePerFPGA] * k,
        colour=colour,
        identical=True,
        device_names=("cpu", *tuple(f"fpga{a}" for a in range(k))),
    )


def load_instance(path: str | Path) -> Instance:
    return to_instance(read_input(path), name=Path(path).stem)


def read_placement(path: str | Path, inst: Instance) -> tuple[int, ...]:
    """An assignment for ``inst`` from a placement file; every node must be listed once."""
    doc = read_document(
        path, TarnawskiPlacement, what="placement file", schema="tarnawski-placement"
    )
    return placement_assignment(doc, inst, str(path))


def placement_assignment(
    doc: TarnawskiPlacement, inst: Instance, where: str = "placement"
) -> tuple[int, ...]:
    if len(doc.fpgas) > inst.accelerators:
        raise InputError(
            f"{where}: uses {len(doc.fpgas)} accelerators, the instance has {inst.accelerators}; "
            "solve with a larger accelerator count (--fpgas)"
        )
    pos = {nid: v for v, nid in enumerate(inst.ids)}
    assignment: list[int | None] = [None] * inst.n
    groups = [(HOST, g) for g in doc.cpus] + [(a + 1, g) for a, g in enumerate(doc.fpgas)]
    for device, group in groups:
        for nid in group.nodes:
            if nid not in pos:
                raise InputError(f"{where}: node id {nid} is not in the instance")
            if assignment[pos[nid]] is not None:
                raise InputError(f"{where}: node id {nid} is placed twice")
            assignment[pos[nid]] = device
    missing = [inst.ids[v] for v, d in enumerate(assignment) if d is None]
    if missing:
        raise InputError(f"{where}: nodes {missing[:5]} are not placed; list every node once")
    return tuple(d for d in assignment if d is not None)


def placement_document(inst: Instance, assignment: Sequence[int], latency: float) -> dict[str, Any]:
    """The Tarnawski output format; unused accelerators are left out, as in their files."""
    fpgas = []
    for a in range(inst.accelerators):
        nodes = sorted(inst.ids[v] for v, d in enumerate(assignment) if d == a + 1)
        if nodes:
            fpgas.append({"nodes": nodes})
    cpus = [{"nodes": sorted(inst.ids[v] for v, d in enumerate(assignment) if d == HOST)}]
    return {"totalLatency": latency, "fpgas": fpgas, "cpus": cpus}
