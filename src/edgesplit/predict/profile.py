"""Per-node latency profiling on this host, saved as versioned JSON.

Each node is run as its own part (the same :func:`edgesplit.graph.partition.partition`
mechanism the runtime uses), so a node's time is the time of exactly the code that would
run on a tier holding it. Every repeat runs the parts in order after ``warmup`` untimed
passes; we report the median and the 90th percentile per node, and separately the
end-to-end forward time of the unsplit model. Their ratio (sum of node medians over the
end-to-end median) is the profile's *fidelity*: 1.0 means node times add up to the whole.

On CUDA each part is bracketed by ``torch.cuda.synchronize()`` so that asynchronous kernel
launches are charged to the node that issued them.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from edgesplit.errors import InputError, ProfileError
from edgesplit.graph.partition import partition
from edgesplit.graph.types import Graph
from edgesplit.io import read_mapping, validate, write_json

PROFILE_VERSION = 1


class HostInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    cpu_model: str
    os_clock_mhz: float | None = Field(description="clock the OS reports (not settable here)")
    threads: int
    torch_version: str
    device: str
    device_name: str
    hostname: str


class NodeTiming(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    kind: str
    flops: int
    output_bytes: int
    median_s: float = Field(ge=0)
    p90_s: float = Field(ge=0)


class Timing(BaseModel):
    model_config = ConfigDict(frozen=True)

    median_s: float = Field(ge=0)
    p90_s: float = Field(ge=0)


class Profile(BaseModel):
    """A measured profile: one timing per node plus the unsplit end-to-end time."""

    model_config = ConfigDict(frozen=True)

    format: Literal["edgesplit.profile"] = "edgesplit.profile"
    version: int = PROFILE_VERSION
    model: str
    granularity: str
    input_shape: list[int]
    repeats: int = Field(ge=1)
    warmup: int = Field(ge=0)
    host: HostInfo
    nodes: list[NodeTiming]
    end_to_end: Timing

    @property
    def sum_of_medians_s(self) -> float:
        return sum(n.median_s for n in self.nodes)

    @property
    def fidelity(self) -> float:
        """Sum of per-node medians over the measured end-to-end median."""
        return self.sum_of_medians_s / self.end_to_end.median_s

    def node_seconds(self) -> dict[str, float]:
        return {n.name: n.median_s for n in self.nodes}

    def save(self, path: str | Path) -> Path:
        doc = self.model_dump(mode="json")
        doc["sum_of_medians_s"] = self.sum_of_medians_s
        doc["fidelity"] = self.fidelity
        return write_json(path, doc)


def load_profile(path: str | Path, model: str | None = None) -> Profile:
    """Read a saved profile; given ``model``, refuse a profile recorded for another model."""
    where = f"profile {str(path)!r}"
    try:
        doc = read_mapping(path, what="profile", schema="profile", make="edgesplit profile")
        if doc.get("format") != "edgesplit.profile":
            raise ProfileError(f"{where} is not an edgesplit profile (field 'format')")
        if doc.get("version") != PROFILE_VERSION:
            raise ProfileError(
                f"{where} has version {doc.get('version')!r}; this edgesplit reads "
                f"version {PROFILE_VERSION}, re-create it with `edgesplit profile`"
            )
        doc.pop("sum_of_medians_s", None)
        doc.pop("fidelity", None)
        prof = validate(doc, Profile, path, what="profile", schema="profile")
    except ProfileError:
        raise
    except InputError as err:
        raise ProfileError(str(err)) from None
    if model is not None and prof.model != model:
        raise ProfileError(
            f"{where} was recorded for model {prof.model!r}, not {model!r}; record one with "
            f"`edgesplit profile {model} -o PROFILE.json`"
        )
    return prof


def host_info(device: str) -> HostInfo:
    cpu_model, mhz = platform.processor() or "unknown", None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu_model in ("unknown", "", platform.processor()):
                cpu_model = line.split(":", 1)[1].strip()
            if line.startswith("cpu MHz") and mhz is None:
                mhz = float(line.split(":", 1)[1])
    except OSError:
        pass
    name = torch.cuda.get_device_name(0) if device == "cuda" else cpu_model
    return HostInfo(
        cpu_model=cpu_model,
        os_clock_mhz=mhz,
        threads=torch.get_num_threads(),
        torch_version=torch.__version__,
        device=device,
        device_name=name,
        hostname=os.uname().nodename,
    )


def _quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return statistics.median(ordered), p90


def profile_graph(
    graph: Graph,
    example_input: torch.Tensor,
    *,
    repeats: int = 20,
    warmup: int = 3,
    device: str = "cpu",
) -> Profile:
    """Measure every node of ``graph`` and the end-to-end forward on ``device``."""
    if repeats < 1:
        raise InputError(f"--repeats must be at least 1, not {repeats}")
    if device not in ("cpu", "cuda"):
        raise InputError(f"--device must be cpu or cuda, not {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu")
    module = graph.module.to(device)
    x = example_input.to(device)
    sync: Callable[[], None] = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    split = partition(graph, list(range(len(graph.nodes))))
    samples: list[list[float]] = [[] for _ in split.parts]
    e2e: list[float] = []
    with torch.inference_mode():
        for rep in range(warmup + repeats):
            values: dict[str, torch.Tensor] = {graph.input_names[0]: x}
            for i, (part, done) in enumerate(zip(split.parts, split.release_after)):
                sync()
                t0 = time.perf_counter()
                values.update(part(values))
                sync()
                if rep >= warmup:
                    samples[i].append(time.perf_counter() - t0)
                for name in done:
                    values.pop(name, None)
            sync()
            t0 = time.perf_counter()
            module(x)
            sync()
            if rep >= warmup:
                e2e.append(time.perf_counter() - t0)
    nodes = []
    for node, s in zip(graph.nodes, samples):
        med, p90 = _quantiles(s)
        nodes.append(
            NodeTiming(
                name=node.name,
                kind=node.kind,
                flops=node.flops,
                output_bytes=node.output_bytes,
                median_s=med,
                p90_s=p90,
            )
        )
    med, p90 = _quantiles(e2e)
    return Profile(
        model=graph.name,
        granularity=graph.granularity,
        input_shape=list(example_input.shape),
        repeats=repeats,
        warmup=warmup,
        host=host_info(device),
        nodes=nodes,
        end_to_end=Timing(median_s=med, p90_s=p90),
    )
