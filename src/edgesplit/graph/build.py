"""Turn a shape-propagated ``torch.fx.GraphModule`` into a :class:`Graph` of nodes.

Granularity:

* ``op``: every traced compute node (``call_module``, ``call_function``, ``call_method``).
* ``layer``:

  - fx graphs: leaf modules plus the functional ops between them, with shape-only ops
    (flatten, view, reshape, getitem, size) fused into the node that produces their input.
    AlexNet thus has the 21 layers the papers count, dropouts included and flatten not.
  - exported graphs follow the module hierarchy recorded in each aten op's
    ``nn_module_stack``: a layer is the outermost submodule on that stack that is not a
    container (``Sequential``, ``ModuleList``, ``ModuleDict``) and whose children are all
    leaves. A transformer block's attention and its MLP are one layer each (their
    projections are leaves), as are its norms. Ops written in a non-layer module's own
    forward (a block's residual ``add``, a model's attention-mask arithmetic) form one
    node per consecutive run, shape-only ops still fused into their producer. Ops of one
    module call are contiguous in an exported graph, so each layer is a contiguous run
    and the layer graph stays acyclic.

``get_attr`` nodes (parameters read directly) belong to no node; the partitioner copies
them into every part that reads them.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import TensorMetadata

from edgesplit.errors import TraceError
from edgesplit.graph import kinds
from edgesplit.graph.flops import composite_flops, count_flops, matmul_flops
from edgesplit.graph.types import Granularity, Graph, Node, Tensor

_COMPUTE_OPS = ("call_module", "call_function", "call_method")
_KIND_PRIORITY = ("conv", "linear", "lrn", "norm", "pool", "softmax", "concat", "add")
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_RUN = "ops of "


def build_graph(
    gm: fx.GraphModule,
    granularity: Granularity,
    tracer: str,
    name: str,
    *,
    input_args: tuple[str, ...] = (),
    modules: dict[str, nn.Module] | None = None,
) -> Graph:
    """The :class:`Graph` of ``gm`` (already shape-propagated); ``modules`` maps the
    original model's qualified names to submodules, for exported graphs' layers."""
    return _Builder(gm, granularity, tracer, modules or {}).build(name, input_args)


@dataclass
class _Group:
    head: fx.Node
    members: list[fx.Node] = field(default_factory=list)
    unit: str | None = None


class _Builder:
    def __init__(
        self,
        gm: fx.GraphModule,
        granularity: Granularity,
        tracer: str,
        model_modules: dict[str, nn.Module],
    ) -> None:
        self.gm = gm
        self.granularity = granularity
        self.tracer = tracer
        self.modules = dict(gm.named_modules())
        self.model_modules = model_modules
        self.order = {n: i for i, n in enumerate(gm.graph.nodes)}
        self._units: dict[str, bool] = {}

    # -- grouping -------------------------------------------------------------------
    def _groups(self) -> list[_Group]:
        group_of: dict[fx.Node, _Group] = {}
        groups: list[_Group] = []
        current: _Group | None = None
        for n in self.gm.graph.nodes:
            if n.op not in _COMPUTE_OPS or _is_guard(n):
                continue
            target: _Group | None = None
            key: str | None = None
            if self.granularity == "layer":
                key = self._layer_key(n)
                if key is not None and key.startswith(_RUN) and self._is_shape_only(n):
                    target = self._producer_group(n, group_of)
                if target is None and key is not None and current is not None:
                    target = current if current.unit == key else None
                if target is None and key is None and self._is_shape_only(n):
                    target = self._producer_group(n, group_of)
            elif _unpacks(n) and n.args[0] in group_of:
                # A tuple (unbind, chunk) never crosses a cut; its items do.
                target = group_of[n.args[0]]
            if target is None:
                target = _Group(n, unit=key)
                groups.append(target)
            target.members.append(n)
            group_of[n] = target
            current = target
        return groups

    def _producer_group(self, n: fx.Node, group_of: dict[fx.Node, _Group]) -> _Group | None:
        """The group a shape-only op joins: its producer's, if that keeps edges forward."""
        inputs = [group_of[a] for a in n.all_input_nodes if a in group_of]
        if not inputs:
            return None
        target = inputs[0]
        head = self.order[target.head]
        # Joining a group that starts before another of its inputs' groups would make
        # that group feed backwards into an earlier node.
        if any(self.order[g.head] > head for g in inputs):
            return None
        return target

    def _layer_key(self, n: fx.Node) -> str | None:
        """Exported graphs: the layer an aten op belongs to (module doc); consecutive ops
        with one key form one node. Outside any layer module the key is the innermost
        module's run of ops (``_RUN`` prefix). fx graphs: ``None``."""
        if self.tracer == "fx":
            return None
        stack = n.meta.get("nn_module_stack")
        if not stack:
            return None
        paths = [_normalise_path(str(path)) for path, _type in stack.values()]
        for qual in paths:
            if qual and self._is_unit(qual):
                return qual
        return _RUN + paths[-1]

    def _is_unit(self, qual: str) -> bool:
        if qual not in self._units:
            mod = self.model_modules.get(qual)
            self._units[qual] = (
                mod is not None
                and not isinstance(mod, _CONTAINERS)
                and all(next(c.children(), None) is None for c in mod.children())
            )
        return self._units[qual]

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

    def _flops(self, m: fx.Node, kind: str) -> int:
        in_shapes = tuple(self._meta(a)[0] for a in m.all_input_nodes if a.op != "get_attr")
        mod = self.modules.get(str(m.target)) if m.op == "call_module" else None
        if m.op == "call_function":
            product = matmul_flops(m.target, in_shapes, self._meta(m)[0])
            if product is not None:
                return product
            shaped = tuple(self._meta(a)[0] if isinstance(a, fx.Node) else a for a in m.args)
            fused = composite_flops(m.target, shaped)
            if fused is not None:
                return fused
        ws = self._weight_shape(m) if kind in ("conv", "linear") else None
        return count_flops(kind, in_shapes, self._meta(m)[0], module=mod, weight_shape=ws)

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
    def build(self, name: str, input_args: tuple[str, ...]) -> Graph:
        groups = self._groups()
        groups.sort(key=lambda g: self.order[g.head])
        names = self._names(groups)
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
        _check_forward(tensors, names)
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
            input_args=input_args or tuple(p.name for p in placeholders),
        )

    def _names(self, groups: list[_Group]) -> list[str]:
        """fx node names, except that a module layer is named after its module path
        (``layers_0_self_attn``; a second call of one module gets ``_1``)."""
        taken = {n.name for n in self.gm.graph.nodes}
        names = []
        for g in groups:
            if g.unit is None or g.unit.startswith(_RUN):
                names.append(g.head.name)
                continue
            base = name = g.unit.replace(".", "_")
            i = 0
            while name in taken:
                i += 1
                name = f"{base}_{i}"
            taken.add(name)
            names.append(name)
        return names

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
        flops = sum(self._flops(m, k) for m, k in zip(g.members, member_kinds))
        params, param_bytes = self._param_stats(g.members)
        target = self._target(head)
        attrs = self._attrs(head, kind)
        if g.unit is not None and not g.unit.startswith(_RUN):
            unit = self.model_modules[g.unit]
            target = type(unit).__name__
            kind = kinds.module_kind(unit, default=kind)
            attrs = {"module": g.unit}
        return Node(
            name=gname,
            index=index,
            kind=kind,
            target=target,
            inputs=inputs,
            outputs=outputs,
            input_shapes=tuple(by_name[i].shape for i in inputs),
            output_shape=shape,
            dtype=dtype,
            output_bytes=nbytes,
            flops=flops,
            params=params,
            param_bytes=param_bytes,
            attrs=attrs,
            members=tuple(m.name for m in g.members),
        )


def _unpacks(n: fx.Node) -> bool:
    """``getitem`` on a value that is not a tensor (the tuple an ``unbind`` returns)."""
    source = n.args[0] if n.args else None
    return (
        n.op == "call_function"
        and n.target is operator.getitem
        and isinstance(source, fx.Node)
        and not isinstance(source.meta.get("tensor_meta"), TensorMetadata)
    )


def _check_forward(tensors: list[Tensor], names: list[str]) -> None:
    """Every tensor must flow forward in node order (the Graph's topological order)."""
    position = {n: i for i, n in enumerate(names)}
    for t in tensors:
        if t.producer is None:
            continue
        for c in t.consumers:
            if position[c] <= position[t.producer]:
                raise TraceError(
                    f"layer grouping put {t.producer!r} after its consumer {c!r} (tensor "
                    f"{t.name!r}); trace with granularity 'op'"
                )


def _normalise_path(path: str) -> str:
    """``L['self'].blocks[0].attn`` (strict export) and ``blocks.0.attn`` -> the latter."""
    for prefix in ("L['self'].", "L['self']", "L__self__"):
        if path.startswith(prefix):
            path = path[len(prefix) :].lstrip(".")
    return path.replace("[", ".").replace("]", "").replace("'", "")


def _is_guard(n: fx.Node) -> bool:
    """torch.export's input guards and runtime asserts: checks, not layers."""
    name = str(n.target if n.op != "call_function" else getattr(n.target, "__name__", n.target))
    return name == "_guards_fn" or name.startswith("_assert")


def _fetch_attr(gm: fx.GraphModule, target: str) -> Any:
    obj: Any = gm
    for atom in target.split("."):
        obj = getattr(obj, atom)
    return obj
