"""Trace a ``torch.nn.Module`` into an immutable :class:`~edgesplit.graph.types.Graph`.

Front end, first success wins:

1. ``torch.fx`` symbolic tracing (Python-level graph: module calls stay ``call_module``);
2. ``torch.export`` non-strict (runs the Python forward on fake tensors);
3. ``torch.export`` strict (TorchDynamo), for the rare model only it can capture.

A tracer "succeeds" when its graph runs on the example inputs and returns an output
``torch.equal`` to the model's own, leaf by leaf; fx graphs that silently specialise on
Python control flow are thus caught and handed to export. ``Graph.tracer`` records which
one won (``fx``, ``export-nonstrict`` or ``export-strict``).

Inputs: the example call ``model(*args, **kwargs)`` is bound to ``forward``'s signature
(a ``use_cache`` argument left out is passed as ``False``: parts exchange tensors, not a
Hugging Face cache object; decoders split with their KV cache live in
:mod:`edgesplit.graph.decoder`).
Every tensor it contains (nested tuples, lists and dicts included) becomes one graph input,
named after its argument (``input_ids``, ``past[0][1]``: ``Graph.input_args``). Optional
arguments the call leaves out, and non-tensor values such as ``use_cache=False``, become
constants of the graph, never inputs of a part. The normalised ``GraphModule`` takes the
tensor inputs positionally and returns the model's own output structure (tuple, dict,
Hugging Face ``ModelOutput``).

Granularity (``layer`` vs ``op``) is the business of :mod:`edgesplit.graph.build`.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.fx as fx
import torch.utils._pytree as pytree
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from edgesplit.errors import InputError, ShapeError, TraceError
from edgesplit.graph.build import build_graph
from edgesplit.graph.types import Granularity, Graph
from edgesplit.graph.verify import outputs_equal

TRACERS = ("fx", "export-nonstrict", "export-strict")

# GraphModule sets these on itself; a submodule of the same name must be renamed.
_RESERVED = frozenset(dir(fx.GraphModule)) | {"meta", "_graph", "_tracer_cls", "_tracer_extras"}
_FX_GUARDS = ("_assert_is_none", "_assert", "eq")


def trace(
    model: nn.Module,
    args: torch.Tensor | Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    granularity: Granularity = "layer",
) -> Graph:
    """Trace ``model(*args, **kwargs)`` into a :class:`Graph` of the given granularity.

    ``args`` may be one tensor (the one-input case) or a tuple; ``kwargs`` a dict of
    keyword arguments. Raises :class:`ShapeError` when the model rejects the example
    inputs and :class:`TraceError`, naming the module and each tracer's reason, when no
    tracer can capture it.
    """
    if granularity not in ("layer", "op"):
        raise ShapeError(f"granularity must be 'layer' or 'op', not {granularity!r}")
    call_args, call_kwargs = traced_call(model, args, kwargs)
    model.eval()
    bound = _bind(model, call_args, call_kwargs)
    reference = _run_eagerly(model, bound)
    _check_output_leaves(model, reference)
    gm, tracer, input_args = to_graph_module(model, call_args, call_kwargs, bound, reference)
    return build_graph(
        gm,
        granularity,
        tracer,
        name or type(model).__name__,
        input_args=input_args,
        modules=dict(model.named_modules()),
    )


def to_graph_module(
    model: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    bound: inspect.BoundArguments,
    reference: Any,
) -> tuple[fx.GraphModule, str, tuple[str, ...]]:
    """``(graph_module, tracer, input argument names)``; see the module doc."""
    reasons: list[str] = []
    attempts: list[tuple[str, Callable[[], tuple[fx.GraphModule, list[tuple[str, Any]]]]]] = [
        ("fx", lambda: _fx(model, bound)),
        ("export-nonstrict", lambda: _export(model, args, kwargs, bound, strict=False)),
        ("export-strict", lambda: _export(model, args, kwargs, bound, strict=True)),
    ]
    for tracer, attempt in attempts:
        try:
            with _quiet_torch_logs():
                gm, leaves = attempt()
                gm, input_args, inputs = _tensor_inputs(gm, leaves)
                _check_against(gm, inputs, reference)
            return gm, tracer, input_args
        except Exception as err:
            reasons.append(f"{tracer.replace('-', ' ')} said {_one_line(err)!r}")
    raise TraceError(
        f"cannot trace {type(model).__name__}: {'; '.join(reasons)}; make forward's control "
        "flow depend on shapes only (use torch.where or torch.cond for data-dependent branches)"
    )


def traced_call(
    model: nn.Module,
    args: torch.Tensor | Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call :func:`trace` traces for ``model(*args, **kwargs)``: ``args`` as a tuple,
    and ``use_cache=False`` added when forward takes ``use_cache`` and it was not given
    (a plain split exchanges tensors, not a Hugging Face cache object). Run the model on
    this call to get the output a split must reproduce."""
    call_args = (args,) if isinstance(args, torch.Tensor) else tuple(args)
    call_kwargs = dict(kwargs or {})
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return call_args, call_kwargs
    if "use_cache" in params and "use_cache" not in call_kwargs:
        names = [
            p
            for p in params
            if params[p].kind
            in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        ]
        if "use_cache" not in names[: len(call_args)]:
            call_kwargs["use_cache"] = False
    return call_args, call_kwargs


def _check_output_leaves(model: nn.Module, output: Any) -> None:
    """Every output leaf must be a tensor or a plain constant, or no cut could send it."""
    for path, leaf in pytree.tree_flatten_with_path(output)[0]:
        if not isinstance(leaf, torch.Tensor | int | float | bool | str | None):
            where = pytree.keystr(path) or "its output"
            raise TraceError(
                f"{type(model).__name__} returns a {type(leaf).__name__} at {where}, which is "
                "not a tensor and cannot cross a cut; make forward return tensors (a Hugging "
                "Face decoder: use_cache=False)"
            )


def flat_inputs(
    model: nn.Module, graph: Graph, args: Any = (), kwargs: Mapping[str, Any] | None = None
) -> tuple[torch.Tensor, ...]:
    """The tensors of the call ``model(*args, **kwargs)`` in ``graph.input_names`` order."""
    call_args = (args,) if isinstance(args, torch.Tensor) else tuple(args)
    bound = _bind(model, call_args, dict(kwargs or {}))
    by_name = dict(_named_leaves(bound))
    missing = [a for a in graph.input_args if a not in by_name]
    if missing:
        raise InputError(
            f"{graph.name!r} was traced with inputs {list(graph.input_args)}; "
            f"{missing} not given; give the same inputs as when tracing"
        )
    return tuple(by_name[a] for a in graph.input_args)


# -- binding the example call ---------------------------------------------------------
def _bind(
    model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> inspect.BoundArguments:
    try:
        sig = inspect.signature(model.forward)
    except (TypeError, ValueError):
        raise TraceError(f"cannot read the signature of {type(model).__name__}.forward") from None
    try:
        return sig.bind(*args, **kwargs)
    except TypeError as err:
        params = ", ".join(p for p in sig.parameters if p != "self")
        raise InputError(
            f"{type(model).__name__}.forward({params}) cannot take the example inputs: {err}; "
            "give each input by its argument name (--input NAME=SHAPE[:DTYPE])"
        ) from None


def _named_leaves(bound: inspect.BoundArguments) -> list[tuple[str, Any]]:
    """Every leaf of the bound call, named ``arg`` or ``arg[0]['k']``, in signature order."""
    out: list[tuple[str, Any]] = []
    for arg, value in bound.arguments.items():
        for path, leaf in pytree.tree_flatten_with_path(value)[0]:
            out.append((arg + pytree.keystr(path), leaf))
    return out


def _describe(bound: inspect.BoundArguments) -> str:
    parts = []
    for arg, leaf in _named_leaves(bound):
        if isinstance(leaf, torch.Tensor):
            parts.append(f"{arg}: {str(leaf.dtype).removeprefix('torch.')}{list(leaf.shape)}")
    return ", ".join(parts) or "no tensors"


def _run_eagerly(model: nn.Module, bound: inspect.BoundArguments) -> Any:
    """The model's own output: the oracle every tracer must reproduce."""
    try:
        with torch.no_grad(), _quiet_torch_logs():
            return model(*bound.args, **bound.kwargs)
    except Exception as err:
        raise ShapeError(
            f"{type(model).__name__} rejects the example inputs ({_describe(bound)}): "
            f"{_one_line(err)}; give the shapes and dtypes its forward expects "
            "(--input NAME=SHAPE[:DTYPE], or --input-shape for one float input)"
        ) from None


# -- tracers --------------------------------------------------------------------------
def _fx(model: nn.Module, bound: inspect.BoundArguments) -> tuple[fx.GraphModule, list[Any]]:
    """Symbolic trace with every non-tensor argument (given or default) made concrete."""
    concrete: dict[str, Any] = {}
    leaves: list[tuple[str, Any]] = []
    for p in bound.signature.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            if bound.arguments.get(p.name):
                raise TraceError("fx cannot bind *args/**kwargs")
            continue
        value = bound.arguments.get(p.name, p.default)
        if value is inspect.Parameter.empty:
            raise TraceError(f"argument {p.name!r} has no value")
        if not isinstance(value, torch.Tensor):
            if pytree.tree_leaves(value) and any(
                isinstance(x, torch.Tensor) for x in pytree.tree_leaves(value)
            ):
                raise TraceError(f"fx cannot trace the nested tensors of {p.name!r}")
            concrete[p.name] = value
        leaves.append((p.name, value))
    graph = _LeafTracer().trace(model, concrete_args=concrete or None)
    _drop_fx_guards(graph)
    return _graph_module(model, graph), leaves


class _LeafTracer(fx.Tracer):
    """fx's tracer, but a torch.nn module with submodules (``TransformerEncoder``,
    ``MultiheadAttention``) is traced through, so its layers can be split."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return super().is_leaf_module(m, module_qualified_name) and next(m.children(), None) is None


def _drop_fx_guards(graph: fx.Graph) -> None:
    """Erase the checks fx adds for concrete arguments; their placeholders become unused."""
    for n in reversed(list(graph.nodes)):
        if n.op == "call_function" and not n.users:
            target = getattr(n.target, "__name__", "")
            if target in _FX_GUARDS and any(a.op == "placeholder" for a in _ancestors(n)):
                graph.erase_node(n)


def _ancestors(n: fx.Node) -> Iterator[fx.Node]:
    stack = list(n.all_input_nodes)
    while stack:
        a = stack.pop()
        yield a
        stack.extend(a.all_input_nodes)


def _graph_module(model: nn.Module, graph: fx.Graph) -> fx.GraphModule:
    """A GraphModule over ``model``'s attributes; attributes that clash with GraphModule's
    own (a submodule named ``meta``) are renamed ``meta_1``."""
    tops = {str(n.target).split(".")[0] for n in graph.nodes if n.op in ("get_attr", "call_module")}
    rename: dict[str, str] = {}
    for top in tops & _RESERVED:
        i = 1
        while f"{top}_{i}" in tops or hasattr(model, f"{top}_{i}"):
            i += 1
        rename[top] = f"{top}_{i}"
    root: dict[str, Any] = {}
    for n in graph.nodes:
        if n.op in ("get_attr", "call_module"):
            old = str(n.target)
            top, dot, rest = old.partition(".")
            n.target = rename.get(top, top) + dot + rest
            root[n.target] = _fetch_attr(model, old)
    return fx.GraphModule(root, graph, class_name=type(model).__name__)


def _export(
    model: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    bound: inspect.BoundArguments,
    *,
    strict: bool,
) -> tuple[fx.GraphModule, list[tuple[str, Any]]]:
    with torch.no_grad():
        exported = torch.export.export(model, args, kwargs, strict=strict)
    gm = exported.module()
    assert isinstance(gm, fx.GraphModule)
    # Export's placeholders follow the flattening of (args, kwargs) as given; name each
    # after the forward argument it fills.
    positional = [
        p.name
        for p in bound.signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    leaves: list[tuple[str, Any]] = []
    for path, leaf in pytree.tree_flatten_with_path((args, kwargs))[0]:
        head, rest = path[1], path[2:]
        if _key(path[0]) == 0:
            i = int(_key(head))
            arg = positional[i] if i < len(positional) else f"args[{i - len(positional)}]"
        else:
            arg = str(_key(head))
        leaves.append((arg + pytree.keystr(rest), leaf))
    for n in list(gm.graph.nodes):
        if n.op == "call_module" and str(n.target) == "_guards_fn":
            gm.graph.erase_node(n)
    return gm, leaves


# -- normalisation --------------------------------------------------------------------
def _tensor_inputs(
    gm: fx.GraphModule, leaves: list[tuple[str, Any]]
) -> tuple[fx.GraphModule, tuple[str, ...], tuple[torch.Tensor, ...]]:
    """Keep tensor placeholders only: every other one is replaced by its constant value.

    The returned module takes the tensors positionally (fx's default code generation)
    and returns the model's output structure.
    """
    graph = gm.graph
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != len(leaves):
        raise TraceError(f"{len(placeholders)} graph inputs for {len(leaves)} example values")
    names: list[str] = []
    tensors: list[torch.Tensor] = []
    for node, (arg, value) in zip(placeholders, leaves):
        if isinstance(value, torch.Tensor):
            names.append(arg)
            tensors.append(value)
            continue
        _inline_constant(node, value)
        graph.erase_node(node)
    out_spec = getattr(gm, "_out_spec", None)
    graph.set_codegen(fx.graph.CodeGen())
    root = {
        str(n.target): _fetch_attr(gm, str(n.target))
        for n in graph.nodes
        if n.op in ("get_attr", "call_module")
    }
    clean = fx.GraphModule(root, graph, class_name=type(gm).__name__)
    if out_spec is not None:
        # Positional tensors in, the model's own output structure (a ModelOutput...) out.
        in_spec = pytree.tree_flatten(list(tensors))[1]
        kept = [n.name for n in graph.nodes if n.op == "placeholder"]
        clean._in_spec = in_spec
        clean._out_spec = out_spec
        clean.graph.set_codegen(
            fx.graph._PyTreeCodeGen(fx.graph._PyTreeInfo(kept, in_spec, out_spec))
        )
        clean.recompile()
    return clean, tuple(names), tuple(tensors)


def _inline_constant(node: fx.Node, value: Any) -> None:
    """Replace every use of placeholder ``node`` by the Python constant ``value``."""

    def swap(a: fx.Node) -> Any:
        return value if a is node else a

    for user in list(node.users):
        user.args = fx.node.map_arg(user.args, swap)
        user.kwargs = fx.node.map_arg(user.kwargs, swap)


def _key(entry: Any) -> Any:
    """The index or key of one pytree path entry (``SequenceKey`` / ``MappingKey``)."""
    return entry.idx if hasattr(entry, "idx") else getattr(entry, "key", entry)


def _check_against(gm: fx.GraphModule, inputs: tuple[torch.Tensor, ...], reference: Any) -> None:
    """Shapes by ShapeProp and sizes folded; the graph's output must equal the model's."""
    prop = _ShapeProp(gm)
    with torch.no_grad():
        prop.propagate(*inputs)
        _fold_sizes(gm, prop.values)
        out = gm(*inputs)
    if not outputs_equal(out, reference):
        raise TraceError("the traced graph's output differs from the model's")


class _ShapeProp(ShapeProp):
    """ShapeProp that also keeps every value that is not a tensor (sizes, dtypes)."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.values: dict[fx.Node, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if not isinstance(result, torch.Tensor):
            self.values[n] = result
        return result


_SIZE_ATTRS = ("shape", "ndim", "dtype")
_SIZE_METHODS = ("size", "dim")


def _fold_sizes(gm: fx.GraphModule, values: dict[fx.Node, Any]) -> None:
    """Replace size arithmetic (``B, N, C = x.shape``; ``H // 7``) by its value.

    Graphs are traced at fixed shapes (export specialises them the same way), so these
    are constants; folded, no Python int ever crosses a cut, and every value a part
    sends is a tensor the wire can carry. Values computed from tensor *data* (``.item()``)
    are never folded.
    """
    sized: list[fx.Node] = []
    for n in gm.graph.nodes:
        source = (n.op == "call_method" and n.target in _SIZE_METHODS) or (
            n.op == "call_function" and n.target is getattr and n.args[1] in _SIZE_ATTRS
        )
        derived = (
            n.op == "call_function"
            and getattr(n.target, "__module__", None) in ("_operator", "operator", "builtins")
            and n.all_input_nodes
            and all(a in sized for a in n.all_input_nodes)
        )
        if (source or derived) and n in values:
            sized.append(n)
    for n in sized:
        _inline_constant(n, values[n])
    for n in reversed(sized):
        if not n.users:
            gm.graph.erase_node(n)
    gm.recompile()


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
    text = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return (text[0] if text else type(err).__name__)[:240]


def _fetch_attr(obj: Any, target: str) -> Any:
    for atom in target.split("."):
        obj = getattr(obj, atom)
    return obj
