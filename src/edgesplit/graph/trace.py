"""Trace a ``torch.nn.Module`` into an immutable :class:`~edgesplit.graph.types.Graph`.

Front end: ``torch.fx.symbolic_trace`` first; ``torch.export`` when fx cannot trace the
module (data-dependent Python control flow on shapes, for example). Shapes and dtypes come
from running the example input once through ``torch.fx.passes.shape_prop.ShapeProp``.

Granularity:

* ``op``: every traced compute node (``call_module``, ``call_function``, ``call_method``).
* ``layer``: leaf modules plus the functional ops between them, with shape-only ops
  (flatten, view, reshape, getitem, size) fused into the node that produces their input.
  AlexNet thus has the 21 layers the papers count, dropouts included and flatten not.
  For exported graphs a layer is every aten op sharing one innermost leaf module.

``get_attr`` nodes (parameters read directly) belong to no node; the partitioner copies
them into every part that reads them.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from edgesplit.errors import ShapeError, TraceError
from edgesplit.graph import kinds
from edgesplit.graph.flops import count_flops
from edgesplit.graph.types import Granularity, Graph, Node, Tensor

_COMPUTE_OPS = ("call_module", "call_function", "call_method")
_KIND_PRIORITY = ("conv", "linear", "lrn", "norm", "pool", "softmax", "concat", "add")


def to_graph_module(
    model: nn.Module, example_inputs: tuple[torch.Tensor, ...]
) -> tuple[fx.GraphModule, str]:
    """Return ``(graph_module, tracer)`` with tracer ``"fx"`` or ``"export"``."""
    model.eval()
    try:
        return fx.symbolic_trace(model), "fx"
    except Exception as fx_err:
        fx_reason = _one_line(fx_err)
    try:
        with torch.no_grad(), _quiet_torch_logs():
            exported = torch.export.export(model, example_inputs)
        gm = exported.module()
        assert isinstance(gm, fx.GraphModule)
        return gm, "export"
    except Exception as ex_err:
        raise TraceError(
            f"cannot trace {type(model).__name__}: torch.fx said {fx_reason!r}; "
            f"torch.export said {_one_line(ex_err)!r}; remove data-dependent control flow "
            "or wrap it in a leaf module"
        ) from None


def trace(
    model: nn.Module,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    *,
    name: str | None = None,
    granularity: Granularity = "layer",
) -> Graph:
    """Trace ``model`` on ``example_inputs`` into a :class:`Graph` of the given granularity."""
    if granularity not in ("layer", "op"):
        raise ShapeError(f"granularity must be 'layer' or 'op', not {granularity!r}")
    inputs = (
        (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    )
    gm, tracer = to_graph_module(model, inputs)
    try:
        with torch.no_grad(), _quiet_torch_logs():
            ShapeProp(gm).propagate(*inputs)
    except Exception as err:
        shapes = ", ".join(str(tuple(t.shape)) for t in inputs)
        raise ShapeError(
            f"{type(model).__name__} does not accept input shape {shapes}: {_one_line(err)}; "
            "pass the shape the model expects with --input-shape"
        ) from None
    return _Builder(gm, granularity, tracer).build(name or type(model).__name__)


@contextlib.contextmanager
def _quiet_torch_logs() -> Iterator[None]:
    """torch.export logs whole graphs on failure; our error is one line, so mute them."""
    saved = {}
    for name in list(logging.root.manager.loggerDict):
        if name == "torch" or name.startswith("torch."):
            logger = logging.getLogger(name)
            saved[name] = logger.level
            logger.setLevel(logging.CRITICAL + 1)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:300]


@dataclass
class _Group:
    head: fx.Node
    members: list[fx.Node] = field(default_factory=list)


class _Builder:
    def __init__(self, gm: fx.GraphModule, granularity: Granularity, tracer: str) -> None:
        self.gm = gm
        self.granularity = granularity
        self.tracer = tracer
        self.modules = dict(gm.named_modules())
        self.order = {n: i for i, n in enumerate(gm.graph.nodes)}

    # -- grouping -------------------------------------------------------------------
    def _groups(self) -> list[_Group]:
        group_of: dict[fx.Node, _Group] = {}
        by_key: dict[str, _Group] = {}
        groups: list[_Group] = []
        for n in self.gm.graph.nodes:
            if n.op not in _COMPUTE_OPS or _is_guard(n):
                continue
            target: _Group | None = None
            if self.granularity == "layer":
                key = self._leaf_key(n)
                if key is not None and key in by_key:
                    target = by_key[key]
                elif self._is_shape_only(n):
                    producer = next((a for a in n.all_input_nodes if a in group_of), None)
                    target = group_of.get(producer) if producer is not None else None
                if target is None and key is not None:
                    target = by_key[key] = _Group(n)
                    groups.append(target)
            if target is None:
                target = _Group(n)
                groups.append(target)
            target.members.append(n)
            group_of[n] = target
        return groups

    def _leaf_key(self, n: fx.Node) -> str | None:
        """Exported graphs: the innermost leaf module an aten op came from."""
        if self.tracer != "export":
            return None
        stack = n.meta.get("nn_module_stack")
        if not stack:
            return None
        path, (_qual, mod_type) = list(stack.items())[-1]
        type_name = (
            getattr(mod_type, "__module__", "") if not isinstance(mod_type, str) else mod_type
        )
        return path if "torch.nn.modules" in str(type_name) else None

    @staticmethod
    def _is_shape_only(n: fx.Node) -> bool:
        """Ops that re-label memory or compute on sizes; fused into their producer.

        Scalar arithmetic on sizes (``channels // groups`` in ShuffleNet) must follow the
        ``size()`` it reads, or the layer graph would gain a cycle.
        """
        if n.op != "call_module" and not isinstance(
            n.meta.get("tensor_meta"), TensorMetadata | tuple
        ):
            return True
        if n.op == "call_method":
            return n.target in kinds.SHAPE_ONLY_METHODS
        if n.op == "call_function":
            if n.target in kinds.SHAPE_ONLY_FUNCTIONS:
                return True
            name = str(getattr(n.target, "__name__", n.target))
            return any(s in name for s in ("view", "reshape", "flatten", "sym_size", "getitem"))
        return False

    # -- node facts -----------------------------------------------------------------
    def _kind(self, n: fx.Node) -> str:
        if n.op == "call_module":
            return kinds.module_kind(self.modules[str(n.target)])
        if n.op == "call_method":
            return kinds.method_kind(str(n.target))
        return kinds.function_kind(n.target)

    def _target(self, n: fx.Node) -> str:
        if n.op == "call_module":
            return type(self.modules[str(n.target)]).__name__
        return kinds.target_name(n.target)

    @staticmethod
    def _meta(n: fx.Node) -> tuple[tuple[int, ...], str, int]:
        meta = n.meta.get("tensor_meta")
        if isinstance(meta, TensorMetadata):
            shape = tuple(int(s) for s in meta.shape)
            elem = torch.empty((), dtype=meta.dtype).element_size()
            numel = 1
            for s in shape:
                numel *= s
            return shape, str(meta.dtype).replace("torch.", ""), numel * elem
        return (), "object", 0

    def _param_stats(self, members: list[fx.Node]) -> tuple[int, int]:
        count = nbytes = 0
        seen: set[int] = set()
        tensors: list[torch.Tensor] = []
        for n in members:
            if n.op == "call_module":
                tensors.extend(self.modules[str(n.target)].parameters())
            for a in n.all_input_nodes:
                if a.op == "get_attr":
                    value = _fetch_attr(self.gm, str(a.target))
                    if isinstance(value, torch.Tensor):
                        tensors.append(value)
        for t in tensors:
            if id(t) in seen:
                continue
            seen.add(id(t))
            count += t.numel()
            nbytes += t.numel() * t.element_size()
        return count, nbytes

    def _weight_shape(self, n: fx.Node) -> tuple[int, ...] | None:
        if n.op == "call_module":
            w = getattr(self.modules[str(n.target)], "weight", None)
            return tuple(w.shape) if isinstance(w, torch.Tensor) else None
        for a in n.args[1:2]:
            if isinstance(a, fx.Node):
                if a.op == "get_attr":
                    value = _fetch_attr(self.gm, str(a.target))
                    if isinstance(value, torch.Tensor):
                        return tuple(value.shape)
                shape = self._meta(a)[0]
                if shape:
                    return shape
        return None

    def _attrs(self, n: fx.Node, kind: str) -> dict[str, Any]:
        mod = self.modules.get(str(n.target)) if n.op == "call_module" else None
        attrs: dict[str, Any] = {}
        if mod is None:
            return attrs
        for key in (
            "in_channels",
            "out_channels",
            "kernel_size",
            "stride",
            "padding",
            "groups",
            "in_features",
            "out_features",
            "size",
            "p",
            "output_size",
        ):
            value = getattr(mod, key, None)
            if isinstance(value, int | float | tuple) and not isinstance(value, bool):
                attrs[key] = list(value) if isinstance(value, tuple) else value
        return attrs

    # -- assembly -------------------------------------------------------------------
    def build(self, name: str) -> Graph:
        groups = self._groups()
        groups.sort(key=lambda g: self.order[g.head])
        names = [self._group_name(g) for g in groups]
        owner: dict[fx.Node, str] = {}
        for g, gname in zip(groups, names):
            for m in g.members:
                owner[m] = gname
        placeholders = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        output_node = next(n for n in self.gm.graph.nodes if n.op == "output")
        output_values = output_node.all_input_nodes

        consumers: dict[fx.Node, list[str]] = {}
        for g, gname in zip(groups, names):
            for m in g.members:
                for a in m.all_input_nodes:
                    if a.op == "get_attr" or owner.get(a) == gname:
                        continue
                    lst = consumers.setdefault(a, [])
                    if gname not in lst:
                        lst.append(gname)
        tensors: list[Tensor] = []
        for v in self.gm.graph.nodes:
            if v.op not in ("placeholder", *_COMPUTE_OPS):
                continue
            if v not in consumers and v not in output_values:
                continue
            shape, dtype, nbytes = self._meta(v)
            tensors.append(
                Tensor(
                    name=v.name,
                    shape=shape,
                    dtype=dtype,
                    nbytes=nbytes,
                    producer=owner.get(v),
                    consumers=tuple(consumers.get(v, ())),
                    is_output=v in output_values,
                )
            )
        nodes = [
            self._node(i, g, gname, tensors) for i, (g, gname) in enumerate(zip(groups, names))
        ]
        return Graph(
            name=name,
            granularity=self.granularity,
            nodes=tuple(nodes),
            tensors=tuple(tensors),
            input_names=tuple(p.name for p in placeholders),
            output_names=tuple(v.name for v in output_values),
            module=self.gm,
            tracer=self.tracer,
        )

    def _group_name(self, g: _Group) -> str:
        return g.head.name

    def _node(self, index: int, g: _Group, gname: str, tensors: list[Tensor]) -> Node:
        inputs = tuple(t.name for t in tensors if gname in t.consumers)
        outputs = tuple(t.name for t in tensors if t.producer == gname)
        by_name = {t.name: t for t in tensors}
        member_kinds = [self._kind(m) for m in g.members]
        kind = next((k for k in _KIND_PRIORITY if k in member_kinds), member_kinds[0])
        head = next((m for m, k in zip(g.members, member_kinds) if k == kind), g.head)
        main = by_name[outputs[-1]] if outputs else None
        shape, dtype, nbytes = (
            (main.shape, main.dtype, main.nbytes) if main else self._meta(g.members[-1])
        )
        flops = 0
        for m, k in zip(g.members, member_kinds):
            in_shapes = tuple(self._meta(a)[0] for a in m.all_input_nodes if a.op != "get_attr")
            mod = self.modules.get(str(m.target)) if m.op == "call_module" else None
            ws = self._weight_shape(m) if k in ("conv", "linear") else None
            flops += count_flops(k, in_shapes, self._meta(m)[0], module=mod, weight_shape=ws)
        params, param_bytes = self._param_stats(g.members)
        return Node(
            name=gname,
            index=index,
            kind=kind,
            target=self._target(head),
            inputs=inputs,
            outputs=outputs,
            input_shapes=tuple(by_name[i].shape for i in inputs),
            output_shape=shape,
            dtype=dtype,
            output_bytes=nbytes,
            flops=flops,
            params=params,
            param_bytes=param_bytes,
            attrs=self._attrs(head, kind),
            members=tuple(m.name for m in g.members),
        )


def _is_guard(n: fx.Node) -> bool:
    """torch.export's input guards and runtime asserts: checks, not layers."""
    name = str(n.target if n.op != "call_function" else getattr(n.target, "__name__", n.target))
    return name == "_guards_fn" or name.startswith("_assert")


def _fetch_attr(gm: fx.GraphModule, target: str) -> Any:
    obj: Any = gm
    for atom in target.split("."):
        obj = getattr(obj, atom)
    return obj
