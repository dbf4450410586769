"""The one model representation of edgesplit: an immutable ``Graph`` of ``Node`` s.

A ``Graph`` is produced once per model by :func:`edgesplit.graph.trace.trace`; costs,
planners and the runtime only read it. Nodes are kept in a topological order, and a
*cut* ``k`` of that order puts nodes ``[0, k)`` on the first side (the device) and the
rest on the second. Cut 0 sends the raw input; cut ``n`` sends only the output.

Values that flow between nodes are :class:`Tensor` records. One tensor consumed by
several nodes is one record, so a cut that separates its producer from all its consumers
sends it once (DADS' "send once" rule).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from edgesplit.errors import InputError

Granularity = Literal["layer", "op"]

KINDS: tuple[str, ...] = (
    "conv",
    "linear",
    "activation",
    "pool",
    "lrn",
    "dropout",
    "norm",
    "add",
    "concat",
    "flatten",
    "softmax",
    "other",
)


@dataclass(frozen=True)
class Tensor:
    """A value crossing node boundaries.

    ``producer`` is the producing node's name, or ``None`` for a model input.
    ``consumers`` are the nodes that read it; ``is_output`` marks a model output.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    producer: str | None
    consumers: tuple[str, ...]
    is_output: bool = False


@dataclass(frozen=True)
class Node:
    """One layer (``granularity="layer"``) or one traced op (``granularity="op"``).

    FLOPs follow :mod:`edgesplit.graph.flops`: 2 per multiply-accumulate for conv and
    linear, one per output element for element-wise ops, window size per output element
    for pooling, zero for pure data movement.
    """

    name: str
    index: int
    kind: str
    target: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...]
    dtype: str
    output_bytes: int
    flops: int
    params: int
    param_bytes: int
    attrs: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cut:
    """Cut ``index`` of the topological order: nodes ``[0, index)`` on the first side."""

    index: int
    tensors: tuple[Tensor, ...]

    @property
    def bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    @property
    def tensor_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tensors)


@dataclass(frozen=True)
class Graph:
    """An immutable, topologically ordered model graph.

    ``module`` is the executable ``torch.fx.GraphModule`` the graph was traced from (or
    ``None`` for graphs built from cost tables only); nodes name their fx ``members`` so
    that :mod:`edgesplit.graph.partition` can turn any assignment into parts. It takes
    the tensors named ``input_names`` positionally; ``input_args[i]`` is the forward
    argument that ``input_names[i]`` fills (``input_ids``, ``past[0][1]``). ``tracer`` is
    ``fx``, ``export-nonstrict`` or ``export-strict`` (:mod:`edgesplit.graph.trace`).
    """

    name: str
    granularity: Granularity
    nodes: tuple[Node, ...]
    tensors: tuple[Tensor, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    module: Any = field(default=None, compare=False, repr=False)
    tracer: str = "fx"
    input_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for i, node in enumerate(self.nodes):
            if node.index != i:
                raise InputError(f"node {node.name!r} has index {node.index}, expected {i}")

    # -- lookup -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    @cached_property
    def _by_name(self) -> dict[str, Node]:
        return {n.name: n for n in self.nodes}

    @cached_property
    def _tensor_by_name(self) -> dict[str, Tensor]:
        return {t.name: t for t in self.tensors}

    def node(self, name: str) -> Node:
        try:
            return self._by_name[name]
        except KeyError:
            raise InputError(
                f"graph {self.name!r} has no node {name!r}; see `edgesplit inspect` for names"
            ) from None

    def tensor(self, name: str) -> Tensor:
        try:
            return self._tensor_by_name[name]
        except KeyError:
            raise InputError(f"graph {self.name!r} has no tensor {name!r}") from None

    def index(self, name: str) -> int:
        return self.node(name).index

    @property
    def input_bytes(self) -> int:
        return sum(self.tensor(n).nbytes for n in self.input_names)

    @property
    def output_bytes(self) -> int:
        return sum(self.tensor(n).nbytes for n in self.output_names)

    # -- structure ----------------------------------------------------------------
    @cached_property
    def predecessors(self) -> dict[str, tuple[str, ...]]:
        """Node name -> names of the nodes whose tensors it reads (graph inputs excluded)."""
        preds: dict[str, list[str]] = {n.name: [] for n in self.nodes}
        for t in self.tensors:
            if t.producer is None:
                continue
            for c in t.consumers:
                if t.producer not in preds[c]:
                    preds[c].append(t.producer)
        return {k: tuple(v) for k, v in preds.items()}

    @cached_property
    def successors(self) -> dict[str, tuple[str, ...]]:
        succ: dict[str, list[str]] = {n.name: [] for n in self.nodes}
        for node, preds in self.predecessors.items():
            for p in preds:
                succ[p].append(node)
        return {k: tuple(v) for k, v in succ.items()}

    @cached_property
    def is_chain(self) -> bool:
        """True when every cut of the topological order crosses exactly one tensor."""
        return all(len(c.tensors) == 1 for c in self.cuts())

    # -- cuts ---------------------------------------------------------------------
    def _position(self, producer: str | None) -> int:
        return -1 if producer is None else self._by_name[producer].index

    def crossing(self, first_side: Sequence[bool]) -> tuple[Tensor, ...]:
        """Tensors produced on the first side and read on the second (or output).

        ``first_side[i]`` says whether node ``i`` runs on the first side; graph inputs
        are on the first side. A tensor read by several second-side nodes is sent once.
        """
        if len(first_side) != len(self.nodes):
            raise InputError(
                f"assignment has {len(first_side)} entries; graph {self.name!r} has "
                f"{len(self.nodes)} nodes"
            )
        out = []
        for t in self.tensors:
            pos = self._position(t.producer)
            if pos >= 0 and not first_side[pos]:
                continue
            if t.is_output or any(not first_side[self._by_name[c].index] for c in t.consumers):
                out.append(t)
        return tuple(out)

    def cut(self, k: int) -> Cut:
        n = len(self.nodes)
        if not 0 <= k <= n:
            raise InputError(f"cut {k} is out of range for {self.name!r}; use 0..{n}")
        if k == 0:
            return Cut(0, tuple(self.tensor(i) for i in self.input_names))
        return Cut(k, self.crossing([i < k for i in range(n)]))

    def cuts(self) -> tuple[Cut, ...]:
        return tuple(self.cut(k) for k in range(len(self.nodes) + 1))

    # -- totals -------------------------------------------------------------------
    @property
    def flops(self) -> int:
        return sum(n.flops for n in self.nodes)

    @property
    def params(self) -> int:
        return sum(n.params for n in self.nodes)

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "granularity": self.granularity,
            "tracer": self.tracer,
            "nodes": len(self.nodes),
            "is_chain": self.is_chain,
            "flops": self.flops,
            "params": self.params,
            "input_bytes": self.input_bytes,
            "output_bytes": self.output_bytes,
        }
