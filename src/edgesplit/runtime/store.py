"""Models loaded once and their split parts cached per ``(model, start, end)``.

The cloud (or a middle tier) runs the nodes ``[start, end)`` of a model's topological
order. It takes exactly the tensors crossing cut ``start`` and answers exactly the
tensors crossing cut ``end`` (the model's outputs when ``end`` is the node count), so
tiers chain: agent ``[0, a)`` -> edge server ``[a, b)`` -> cloud ``[b, n)``. A tensor
that skips the middle tier (a long residual edge of a DAG) is handed on unchanged.

Parts come from :func:`edgesplit.graph.partition.split_at`, the project's only
splitter, so a split run is ``torch.equal`` to the unsplit model.
Building a part costs O(|fx nodes|) once; a cached lookup is O(1).

A request at other model-input shapes (batch size, sequence length) runs on the model
re-traced at those shapes, cached per shape: :mod:`edgesplit.runtime.shapes`.

The part cache (issue 13 point 10: one server app for edge and cloud). Built parts are
kept per ``(model, assignment, part)`` (``/v1/part``), per ``(model, start, end)``
(``/v1/infer``) and per plan ``(model, devices, assignment)`` (the engine's stages) in one
least-recently-used cache bounded in bytes: an entry weighs the parameter and buffer bytes
its parts reference (each tensor once), and the cache drops least recently used entries
until the sum is within ``cache_bytes`` (:data:`DEFAULT_CACHE_BYTES`; ``serve
--part-cache``). The entry just built is always kept, even alone over the bound. Parts
share the served model's weights, so the bound limits how many plans and cuts a server
keeps built (rebuilding one costs O(|fx nodes|)), not the weights themselves.

On ``--device cuda`` inputs go to the GPU from pinned host memory with non-blocking
copies, and outputs come back into pinned host buffers, non-blocking, with one
synchronisation before they are returned.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.fx as fx

from edgesplit.errors import InputError, ShapeError, UnknownModelError
from edgesplit.graph import Graph
from edgesplit.graph.partition import Part, partition, split_at
from edgesplit.graph.trace import flat_inputs
from edgesplit.models import ModelRequest
from edgesplit.models.loader import trace_request
from edgesplit.runtime.shapes import MAX_SHAPES, ShapeKey, request_key, retrace, traced_key
from edgesplit.runtime.stages import Stages, build_stages, fingerprint

#: Default byte bound of a store's part cache (``serve --part-cache``): 1 GiB.
DEFAULT_CACHE_BYTES = 1 << 30

T = TypeVar("T")


def weight_bytes(modules: Iterable[torch.nn.Module]) -> int:
    """Bytes of the parameters and buffers ``modules`` reference, each tensor counted once."""
    seen: dict[tuple[int, int], int] = {}
    for module in modules:
        for t in (*module.parameters(), *module.buffers()):
            seen[(t.data_ptr(), t.numel())] = t.numel() * t.element_size()
    return sum(seen.values())


class PartCache:
    """A thread-safe LRU of built parts bounded by the bytes they weigh (module docstring)."""

    def __init__(self, limit_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if limit_bytes < 0:
            raise InputError(f"--part-cache must be >= 0 bytes, not {limit_bytes}")
        self.limit = limit_bytes
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = self.hits = self.misses = self.evictions = 0

    def get(self, key: Hashable, build: Callable[[], T], weigh: Callable[[T], int]) -> T:
        """The entry ``key``, built (and weighed) on a miss; evicts down to the bound."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return found[0]
        value = build()  # outside the lock: building a part can take a while
        size = weigh(value)
        with self._lock:
            if key in self._items:  # another thread built it meanwhile: keep theirs
                self._items.move_to_end(key)
                return self._items[key][0]
            self.misses += 1
            self._items[key] = (value, size)
            self.bytes += size
            while self.bytes > self.limit and len(self._items) > 1:
                _, (_, dropped) = self._items.popitem(last=False)
                self.bytes -= dropped
                self.evictions += 1
        return value

    def lru_order(self) -> list[Hashable]:
        """Cached keys, least recently used first."""
        with self._lock:
            return list(self._items)

    def info(self) -> dict[str, int]:
        with self._lock:
            return {
                "entries": len(self._items),
                "bytes": self.bytes,
                "limit_bytes": self.limit,
                "hits": self.hits,
                "misses": self.misses,
                "evictions": self.evictions,
            }


@dataclass(frozen=True)
class Segment:
    """Nodes ``[start, end)`` of one model, ready to run."""

    model: str
    start: int
    end: int
    part: Part
    needs: tuple[str, ...]
    gives: tuple[str, ...]
    label: str = ""
    assignment: tuple[int, ...] = ()
    index: int = -1

    @property
    def where(self) -> str:
        return self.label or f"cut {self.start}"


@dataclass(frozen=True)
class LoadedModel:
    """A served model; ``inputs`` are its example graph inputs (``graph.input_names`` order)."""

    name: str
    graph: Graph
    inputs: tuple[torch.Tensor, ...]

    @property
    def example(self) -> torch.Tensor:
        """The first example input (the only one of a one-input model)."""
        return self.inputs[0]


class ModelStore:
    """Thread-safe cache: each model is built and traced once, each segment split once."""

    def __init__(
        self,
        models: tuple[str | ModelRequest, ...],
        device: str = "cpu",
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.device = torch.device(device)
        self._lock = threading.Lock()
        self._models: dict[str, LoadedModel] = {}
        #: Built parts: segments, plan parts and plans' stages (module docstring).
        self.parts = PartCache(cache_bytes)
        self._fingerprints: dict[str, dict[str, str]] = {}
        self._sources: dict[str, tuple[Any, ModelRequest]] = {}
        self._shaped: dict[str, OrderedDict[ShapeKey, ModelStore]] = {}
        self._shape_lock = threading.Lock()
        for name in models:
            self._load(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._models)

    def _load(self, model: str | ModelRequest) -> LoadedModel:
        # A request carries the model options of `serve` (inputs, weights, config).
        request = model if isinstance(model, ModelRequest) else ModelRequest(model)
        name = request.name
        graph, module, ex = trace_request(request)
        inputs = flat_inputs(module, graph, ex.args, ex.kwargs)
        if graph.module is not None:
            # Parts share the traced module's parameters, so one move serves every part.
            graph.module.to(self.device)
        loaded = LoadedModel(name, graph, inputs)
        self._models[name] = loaded
        self._sources[name] = (module, request)
        return loaded

    def at_shapes(self, name: str, key: ShapeKey | None) -> ModelStore:
        """The store serving ``name`` at model-input shapes ``key`` (this one at the traced
        shapes or ``None``); other shapes are re-traced once and the ``MAX_SHAPES`` most
        recently used kept (:mod:`edgesplit.runtime.shapes`)."""
        graph = self.model(name).graph
        if key is None or key == traced_key(graph):
            return self
        check_shapes(name, traced_key(graph), key)
        with self._shape_lock:
            cache = self._shaped.setdefault(name, OrderedDict())
            store = cache.get(key)
            if store is None:
                module, request = self._sources[name]
                new, inputs = retrace(module, request, graph, key)
                store = ModelStore((), str(self.device), self.parts.limit)
                store._models[name] = LoadedModel(name, new, inputs)
                cache[key] = store
                while len(cache) > MAX_SHAPES:
                    cache.popitem(last=False)
            cache.move_to_end(key)
        return store

    def shapes_cached(self, name: str) -> tuple[ShapeKey, ...]:
        """The shape variants of ``name`` now kept, least recently used first."""
        with self._shape_lock:
            return tuple(self._shaped.get(name, ()))

    def model(self, name: str) -> LoadedModel:
        if name not in self._models:
            raise UnknownModelError(
                f"model {name!r} is not served here; serve it with --model {name} "
                f"(serving: {', '.join(self._models) or 'none'})"
            )
        return self._models[name]

    def segment(self, name: str, start: int, end: int | None = None) -> Segment:
        graph = self.model(name).graph
        n = len(graph.nodes)
        stop = n if end is None else end
        if not 0 <= start <= n:
            raise InputError(f"cut {start} is out of range for {name!r}; use 0..{n}")
        if not start <= stop <= n:
            raise InputError(f"end {stop} must lie in {start}..{n} for {name!r} at cut {start}")

        def build() -> Segment:
            split = split_at(graph, [start, stop])
            return Segment(
                model=name,
                start=start,
                end=stop,
                part=split.parts[1],
                needs=tuple(t.name for t in graph.cut(start).tensors),
                gives=tuple(t.name for t in graph.cut(stop).tensors),
            )

        return self.parts.get(("segment", name, start, stop), build, _segment_bytes)

    def plan_part(self, name: str, assignment: tuple[int, ...], index: int) -> Segment:
        """Part ``index`` of an arbitrary acyclic assignment (a DAG plan), built by ``partition``.

        The part takes exactly the tensors crossing into it and answers the tensors it hands
        on, so an agent can walk a min-cut or MILP plan part by part across servers.

        The assignment is checked against the model before anything is built (issue 14
        point 2): one part id per node, each in ``0..nodes-1`` (a plan has at most one part
        per node, which bounds the partition's work by the model), and ``index`` among them.
        A rejected request builds and caches nothing.
        """
        graph = self.model(name).graph
        check_assignment(name, len(graph.nodes), assignment, len(graph.nodes), "part id")
        if index not in assignment:
            raise InputError(
                f"part {index} is not in the assignment; it has parts {sorted(set(assignment))}"
            )

        def build() -> Segment:
            split = partition(graph, list(assignment))
            part = next((p for p in split.parts if p.index == index), None)
            if part is None:
                raise InputError(
                    f"part {index} is not in the assignment; it has parts "
                    f"{sorted(p.index for p in split.parts)}"
                )
            return Segment(
                model=name,
                start=-1,
                end=-1,
                part=part,
                needs=part.input_names,
                gives=part.output_names,
                label=f"part {index}",
                assignment=assignment,
                index=index,
            )

        return self.parts.get(("part", name, assignment, index), build, _segment_bytes)

    def module(self, name: str) -> Any:
        """The served model's own ``nn.Module`` (decode sessions run its blocks directly)."""
        return self._sources[self.model(name).name][0]

    def fingerprint(self, name: str) -> dict[str, str]:
        """The served model's fingerprint (:func:`~edgesplit.runtime.stages.fingerprint`), once."""
        graph = self.model(name).graph
        with self._lock:
            if name not in self._fingerprints:
                self._fingerprints[name] = fingerprint(graph)
            return self._fingerprints[name]

    def plan_stages(
        self, name: str, devices: tuple[str, ...], assignment: tuple[int, ...]
    ) -> Stages:
        """The engine's stages of a plan, built once and kept in the part cache.

        The assignment is checked against the model (one device index per node) before
        anything is built, so a rejected plan caches nothing.
        """
        graph = self.model(name).graph
        check_assignment(name, len(graph.nodes), assignment, len(devices), "device index")
        return self.parts.get(
            ("stages", name, devices, assignment),
            lambda: build_stages(graph, devices, assignment),
            lambda st: weight_bytes(s.part.module for s in st.stages),
        )

    def run_stage(
        self, stages: Stages, index: int, values: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Run stage ``index`` on this store's device; its outputs come back on the CPU.

        Values holding the model inputs at other shapes run on the stages re-traced there.
        """
        name = stages.graph.name
        if name in self._models and stages.graph is self._models[name].graph:
            store = self.at_shapes(name, request_key(stages.graph, values, None))
            if store is not self:
                shaped = store.plan_stages(name, stages.devices, stages.assignment)
                return store.run_stage(shaped, index, values)
        part = stages[index].part
        for name in part.input_names:
            want, got = stages.graph.tensor(name), values[name]
            if (
                tuple(got.shape) != tuple(want.shape)
                or str(got.dtype).removeprefix("torch.") != want.dtype
            ):
                raise ShapeError(
                    f"tensor {name!r} is {got.dtype}{list(got.shape)} but stage {index} needs "
                    f"{want.dtype}{list(want.shape)}"
                )
        with torch.inference_mode():
            outs = part(to_device({n: values[n] for n in part.input_names}, self.device))
        return to_host(outs, self.device)

    def check_inputs(self, seg: Segment, tensors: Mapping[str, torch.Tensor]) -> None:
        """Exactly the tensors of cut ``start``, with the graph's shapes and dtypes."""
        graph = self.model(seg.model).graph
        missing = [n for n in seg.needs if n not in tensors]
        extra = [n for n in tensors if n not in seg.needs]
        if missing or extra:
            raise ShapeError(
                f"{seg.where} of {seg.model!r} takes tensors {list(seg.needs)}; "
                f"missing {missing}, unexpected {extra}"
            )
        for name in seg.needs:
            want = graph.tensor(name)
            got = tensors[name]
            got_dtype = str(got.dtype).removeprefix("torch.")
            if tuple(got.shape) != tuple(want.shape) or got_dtype != want.dtype:
                raise ShapeError(
                    f"tensor {name!r} is {got_dtype}{list(got.shape)} but {seg.where} of "
                    f"{seg.model!r} needs {want.dtype}{list(want.shape)}"
                )

    def run(
        self,
        seg: Segment,
        tensors: Mapping[str, torch.Tensor],
        node_times: bool = False,
        input_shapes: str | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Run the segment; returns the tensors of cut ``end`` and, if asked, seconds per node.

        ``input_shapes`` (the request's metadata field) or the model inputs among ``tensors``
        name the model-input shapes; at other shapes than the traced ones the same segment
        of the re-traced model runs (:mod:`edgesplit.runtime.shapes`).
        """
        graph = self.model(seg.model).graph
        store = self.at_shapes(seg.model, request_key(graph, tensors, input_shapes))
        if store is not self:
            same = (
                store.plan_part(seg.model, seg.assignment, seg.index)
                if seg.index >= 0
                else store.segment(seg.model, seg.start, seg.end)
            )
            return store.run(same, tensors, node_times)
        self.check_inputs(seg, tensors)
        values: dict[str, Any] = to_device(tensors, self.device)
        times: dict[str, float] = {}
        with torch.inference_mode():
            if node_times:
                graph = self.model(seg.model).graph
                values.update(run_timed(seg.part, graph, values, times, self.device))
            else:
                values.update(seg.part(values))
        return to_host({name: values[name] for name in seg.gives}, self.device), times


#: A request's model inputs may hold at most this many times the traced elements (a batch
#: or a sequence 256 times the traced one); bounds the work of a re-trace before it starts.
MAX_SHAPE_GROWTH = 256


def check_shapes(model: str, traced: ShapeKey, key: ShapeKey) -> None:
    """Model-input shapes ``key``: non-negative, within :data:`MAX_SHAPE_GROWTH` of ``traced``."""
    for want, got in zip(traced, key, strict=False):
        if any(d < 0 for d in got) or _numel(got) > MAX_SHAPE_GROWTH * max(1, _numel(want)):
            raise ShapeError(
                f"{model!r} was traced at input shape {list(want)}; a request at {list(got)} "
                f"is negative or over {MAX_SHAPE_GROWTH} times its elements; send smaller inputs"
            )


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def check_assignment(
    model: str, nodes: int, assignment: tuple[int, ...], ids: int, what: str
) -> None:
    """One ``what`` per node of ``model``, each in ``0..ids-1``; else an InputError. O(nodes)."""
    if len(assignment) != nodes:
        raise InputError(
            f"assignment has {len(assignment)} entries but {model!r} has {nodes} nodes; "
            f"give one {what} per node"
        )
    bad = next((a for a in assignment if not 0 <= a < ids), None)
    if bad is not None:
        raise InputError(f"assignment has {what} {bad}; use 0..{ids - 1} for {model!r}")


def _segment_bytes(seg: Segment) -> int:
    return weight_bytes([seg.part.module])


def to_device(values: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, Any]:
    """Values on ``device``; to a GPU from pinned host memory with non-blocking copies."""
    if device.type != "cuda":
        return {k: v.to(device) for k, v in values.items()}
    return {
        k: (v.pin_memory() if v.device.type == "cpu" else v).to(device, non_blocking=True)
        for k, v in values.items()
    }


def to_host(values: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Values back on the CPU; from a GPU into pinned buffers, non-blocking, then one sync."""
    if device.type != "cuda":
        return {k: v.to("cpu") for k, v in values.items()}
    out = {}
    for k, v in values.items():
        host = torch.empty(v.shape, dtype=v.dtype, pin_memory=True)
        out[k] = host.copy_(v, non_blocking=True)
    torch.cuda.synchronize(device)
    return out


def run_timed(
    part: Part, graph: Graph, values: Mapping[str, Any], times: dict[str, float], device: Any
) -> dict[str, Any]:
    """Run ``part`` node by node, adding each Graph node's seconds to ``times``."""
    owner = {m: node.name for node in graph.nodes for m in node.members}
    args = [values[n] for n in part.input_names]
    outs = _TimingInterpreter(part.module, owner, times, device).run(*args)
    return dict(zip(part.output_names, outs))


class _TimingInterpreter(fx.Interpreter):
    """Runs a part node by node and adds each fx node's seconds to its Graph node."""

    def __init__(
        self, module: fx.GraphModule, owner: dict[str, str], times: dict[str, float], dev: Any
    ) -> None:
        super().__init__(module)
        self._owner = owner
        self._times = times
        self._cuda = torch.device(dev).type == "cuda"

    def run_node(self, n: fx.Node) -> Any:
        if n.op in ("placeholder", "output", "get_attr"):
            return super().run_node(n)
        t0 = time.perf_counter()
        out = super().run_node(n)
        if self._cuda:
            torch.cuda.synchronize()
        key = self._owner.get(n.name, n.name)
        self._times[key] = self._times.get(key, 0.0) + time.perf_counter() - t0
        return out
