"""The one profiler: per-node latency on this host, saved as versioned JSON.

Every latency profile in edgesplit comes from :func:`profile_graph`: the ``edgesplit
profile`` command, the runtime's planner (``edgesplit run``, ``make demo``), the
``profile`` and ``gao`` delay sources of ``multidevice solve/run/freeze``, ``multidevice
fit-delay``, the early-exit instance and every reproduction. They all time the same way:

* **wall clock** (``time.perf_counter``) around each node's part, never thread CPU time;
* on a **stated number of torch intra-op threads**: ``threads`` is a required argument,
  set with ``torch.set_num_threads`` for the run and restored afterwards, recorded in the
  profile (``host.threads``) and printed by ``edgesplit profile``. Each caller states the
  count its executor runs at: one thread for the multi-device and early-exit processes,
  the process's own count for the two-tier runtime, ``--threads`` for the CLI.

Thread CPU time misleads as soon as torch runs more than one thread: the calling thread
spin-waits at the end of each parallel region, and that wait is charged to the layer
(alexnet's per-layer sum was 104 ms at 2 threads against 31 ms at 1; Gao's delay fit lost
its held-out R², 0.39 against 0.95). Wall clock charges a layer what a caller waits for.
On a shared host it also includes time spent waiting for a core, so the profile records
the 1-minute load average (``host.load_average``) beside the thread count.

Each node is run as its own part (the same :func:`edgesplit.graph.partition.partition`
mechanism the runtime uses), so a node's time is the time of exactly the code that would
run on a tier holding it. Every repeat runs the parts in order after ``warmup`` untimed
passes; we report the median and the 90th percentile per node, and separately the
end-to-end forward time of the unsplit model. Their ratio (sum of node medians over the
end-to-end median) is the profile's *fidelity*: 1.0 means node times add up to the whole.
:meth:`Profile.seconds` divides by it when asked (``calibrate``), so that all-on-one-tier
predictions match a whole forward pass. Cost: O((warmup + repeats) · forward).

On CUDA each part is bracketed by ``torch.cuda.synchronize()`` so that asynchronous kernel
launches are charged to the node that issued them.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from edgesplit.errors import InputError, ProfileError
from edgesplit.graph.partition import partition
from edgesplit.graph.types import Graph
from edgesplit.io import read_mapping, validate, write_json
from edgesplit.predict.codec_costs import CodecRecord, measure_graph_codecs

PROFILE_VERSION = 1


class HostInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    cpu_model: str
    os_clock_mhz: float | None = Field(description="clock the OS reports (not settable here)")
    threads: int = Field(ge=1, description="torch intra-op threads the profile ran on")
    load_average: float | None = Field(None, description="1-minute load average at the end")
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
    # The model options it was recorded with (ModelRequest.describe: inputs, model_config).
    model_options: dict[str, Any] = Field(default_factory=dict)
    # Wire codecs on this host (profile_graph(codecs=True)): predict.codec_costs.CodecRecord.
    codecs: CodecRecord | None = None

    @property
    def sum_of_medians_s(self) -> float:
        return sum(n.median_s for n in self.nodes)

    @property
    def fidelity(self) -> float:
        """Sum of per-node medians over the measured end-to-end median."""
        return self.sum_of_medians_s / self.end_to_end.median_s

    def node_seconds(self) -> dict[str, float]:
        return {n.name: n.median_s for n in self.nodes}

    def seconds(
        self, graph: Graph, *, calibrate: bool = False, source: str = "the profile"
    ) -> list[float]:
        """Per-node medians in ``graph``'s order; the profile must hold exactly its nodes.

        ``calibrate`` divides by the fidelity so that the seconds add up to the measured
        end-to-end median (nodes timed one by one pay a per-part overhead that a whole
        forward does not). ``source`` names the profile in the error message.
        """
        names = [n.name for n in graph.nodes]
        mine = [n.name for n in self.nodes]
        if mine != names:
            missing = [n for n in names if n not in set(mine)]
            detail = (
                f"has no node {missing[0]!r}"
                if missing
                else f"has {len(mine)} nodes where the graph has {len(names)}"
            )
            raise InputError(
                f"{source} (model {self.model!r}, {self.granularity}) {detail} of graph "
                f"{graph.name!r}; profile the same model and granularity with `edgesplit profile`"
            )
        scale = 1.0 / self.fidelity if calibrate and self.sum_of_medians_s > 0 else 1.0
        return [n.median_s * scale for n in self.nodes]

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


def saved_seconds(path: str | Path, graph: Graph, *, calibrate: bool = False) -> list[float]:
    """:func:`load_profile` then :meth:`Profile.seconds`, naming the file on a mismatch."""
    prof = load_profile(path, model=graph.name)
    return prof.seconds(graph, calibrate=calibrate, source=f"profile {str(path)!r}")


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
        load_average=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
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
    example_input: torch.Tensor | Sequence[torch.Tensor],
    *,
    threads: int,
    repeats: int = 20,
    warmup: int = 3,
    device: str = "cpu",
    codecs: bool = False,
    on_pass: Callable[[int, int], None] | None = None,
) -> Profile:
    """Wall-clock time of every node of ``graph`` and of the whole forward, on ``threads``.

    Torch runs on ``threads`` intra-op threads while measuring (restored afterwards); see
    the module docstring for why wall clock and why the count is stated. ``codecs`` also
    records every wire codec's seconds per byte and each tensor's zstd ratio on this host
    (:func:`edgesplit.predict.codec_costs.measure_graph_codecs`), for ``plan --codec``.
    ``on_pass(done, total)`` is called after each of the ``warmup + repeats`` passes.
    """
    if repeats < 1:
        raise InputError(f"--repeats must be at least 1, not {repeats}")
    if warmup < 0:
        raise InputError(f"--warmup must be at least 0, not {warmup}")
    if threads < 1:
        raise InputError(f"--threads must be at least 1, not {threads}")
    if device not in ("cpu", "cuda"):
        raise InputError(f"--device must be cpu or cuda, not {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        # Several inputs (token ids and a mask) come in graph.input_names order.
        inputs = (example_input,) if isinstance(example_input, torch.Tensor) else example_input
        samples, e2e = _measure(graph, tuple(inputs), repeats, warmup, device, on_pass)
        record = None
        if codecs:
            node_sum = sum(statistics.median(s) for s in samples)
            graph.module.to("cpu")  # the codecs run on CPU tensors, as on the wire
            cpu_inputs = [x.detach().cpu() for x in inputs]
            record = measure_graph_codecs(graph, cpu_inputs, compute_s=node_sum)
        host = host_info(device)
    finally:
        torch.set_num_threads(before)
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
        input_shape=list(inputs[0].shape),
        repeats=repeats,
        warmup=warmup,
        host=host,
        nodes=nodes,
        end_to_end=Timing(median_s=med, p90_s=p90),
        codecs=record,
    )


def _measure(
    graph: Graph,
    inputs: tuple[torch.Tensor, ...],
    repeats: int,
    warmup: int,
    device: str,
    on_pass: Callable[[int, int], None] | None = None,
) -> tuple[list[list[float]], list[float]]:
    """Wall-clock samples per node part and of the unsplit forward (after ``warmup``)."""
    module = graph.module.to(device)
    xs = tuple(x.to(device) for x in inputs)
    sync: Callable[[], None] = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    split = partition(graph, list(range(len(graph.nodes))))
    samples: list[list[float]] = [[] for _ in split.parts]
    e2e: list[float] = []
    with torch.inference_mode():
        for rep in range(warmup + repeats):
            values: dict[str, torch.Tensor] = dict(zip(graph.input_names, xs, strict=True))
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
            module(*xs)
            sync()
            if rep >= warmup:
                e2e.append(time.perf_counter() - t0)
            if on_pass is not None:
                on_pass(rep + 1, warmup + repeats)
    return samples, e2e
