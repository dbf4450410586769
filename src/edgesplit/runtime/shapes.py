"""Shapes at run time: a model traced at one batch size or sequence length runs at another.

A served model is traced once, at its example inputs (``--input NAME=SHAPE:DTYPE`` or the
model's defaults). A request whose *model inputs* have other shapes runs on a graph traced
at exactly those shapes:

* **Which shapes.** The key is the tuple of model-input shapes in ``graph.input_names``
  order. The server reads it from the request's tensors when the part holds the model
  inputs (part 0, a stage at the origin); an interior part cannot see them, so the caller
  names them in the safetensors metadata field ``input_shapes``, a JSON object
  ``{"x": [3, 3, 32, 32]}`` keyed by graph input name (:func:`encode_input_shapes`).
  Without either, the part runs at the traced shapes and any other shape is the usual
  :class:`~edgesplit.errors.ShapeError`.
* **Re-trace, per shape, cached.** Every tracer re-traces, fx included: the front end folds
  size arithmetic (``x.view(x.size(0), -1)``) into constants of the traced shape, and
  ``torch.export`` specialises shapes, so neither graph is shape-generic in general and
  reusing one at another shape could be silently wrong. The re-trace runs on the served
  module itself (weights shared, not copied), with seeded example values of the new shapes
  and the traced dtypes (:func:`~edgesplit.models.build_example`; token ids valid for the
  model), so the same key always yields the same graph, whichever request came first; the
  tracer checks it against the eager model as it does for every trace. The node order, so
  a plan's assignment and cut indices, is the same at every shape.
* **Bounded.** Each model keeps its :data:`MAX_SHAPES` most recently used shape variants
  (least recently used goes first); the traced shape is always kept.

A split at any shape is thus ``torch.equal`` to the unsplit model at that shape, as at the
traced one (the project's exactness oracle).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from edgesplit.errors import InputError, ShapeError
from edgesplit.models import InputSpec, ModelRequest, build_example

if TYPE_CHECKING:
    from torch import nn

    from edgesplit.graph import Graph

#: Shape variants one model keeps traced besides its own shape (least recently used goes).
MAX_SHAPES = 8

#: The safetensors metadata field naming the model-input shapes of a request.
INPUT_SHAPES = "input_shapes"

ShapeKey = tuple[tuple[int, ...], ...]


def traced_key(graph: Graph) -> ShapeKey:
    """The model-input shapes ``graph`` was traced at."""
    return tuple(tuple(graph.tensor(n).shape) for n in graph.input_names)


def encode_input_shapes(inputs: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """The metadata to send beside an interior part's tensors: the model inputs' shapes."""
    return {INPUT_SHAPES: json.dumps({n: list(t.shape) for n, t in inputs.items()})}


def request_key(
    graph: Graph, tensors: Mapping[str, torch.Tensor], declared: str | None
) -> ShapeKey | None:
    """The model-input shapes of a request, or ``None`` when it does not tell them.

    ``declared`` is the ``input_shapes`` metadata text; else the request's own tensors
    give the key when they include every model input.
    """
    names = graph.input_names
    if declared is not None:
        try:
            doc = json.loads(declared)
            shapes = {str(k): tuple(int(d) for d in v) for k, v in doc.items()}
        except (ValueError, TypeError, AttributeError):
            raise InputError(
                f"metadata {INPUT_SHAPES!r} must be a JSON object of input name -> list of "
                f'ints, e.g. {{"{names[0]}": [1, 3, 32, 32]}}; got {declared[:80]!r}'
            ) from None
        if set(shapes) != set(names):
            raise InputError(
                f"metadata {INPUT_SHAPES!r} names inputs {sorted(shapes)} but "
                f"{graph.name!r} takes {list(names)}; give each model input's shape"
            )
        return tuple(shapes[n] for n in names)
    if all(n in tensors for n in names):
        return tuple(tuple(tensors[n].shape) for n in names)
    return None


def retrace(
    module: nn.Module, request: ModelRequest, graph: Graph, key: ShapeKey
) -> tuple[Graph, tuple[torch.Tensor, ...]]:
    """``module`` traced at the model-input shapes ``key``: ``(graph, example inputs)``.

    Same tracer front end, granularity and dtypes as ``graph``; weights are shared.
    """
    from edgesplit.graph import trace
    from edgesplit.graph.trace import flat_inputs

    if request.example:
        raise ShapeError(
            f"{graph.name!r} was traced from --example {request.example}, which fixes its "
            "inputs; serve it with --input NAME=SHAPE:DTYPE to run it at other shapes"
        )
    want = traced_key(graph)
    if len(key) != len(want) or any(len(a) != len(b) for a, b in zip(key, want, strict=True)):
        raise ShapeError(
            f"{graph.name!r} takes inputs {list(graph.input_names)} of ranks "
            f"{[len(s) for s in want]}; got shapes {[list(s) for s in key]}"
        )
    try:
        specs = tuple(
            InputSpec(arg, shape, graph.tensor(n).dtype)
            for arg, n, shape in zip(
                graph.input_args or graph.input_names, graph.input_names, key, strict=True
            )
        )
    except (InputError, ShapeError) as err:
        raise ShapeError(f"{graph.name!r} cannot be re-traced at shapes {key}: {err}") from None
    example = build_example(specs, module)
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    args = _to(example.args, device)
    kwargs = _to(example.kwargs, device)
    new = trace(module, args, kwargs, name=graph.name, granularity=graph.granularity)
    if len(new.nodes) != len(graph.nodes):
        raise ShapeError(
            f"{graph.name!r} traced at shapes {[list(s) for s in key]} has {len(new.nodes)} "
            f"nodes, not {len(graph.nodes)}; a plan made at the traced shape does not apply"
        )
    return new, flat_inputs(module, new, args, kwargs)


def _to(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_to(v, device) for v in value)
    return value
