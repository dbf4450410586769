"""FLOP counting convention, stated once.

* conv: ``2 · C_out · prod(out_spatial) · (C_in / groups) · prod(kernel)`` per sample,
  i.e. two FLOPs per multiply-accumulate; bias additions are not counted.
* linear: ``2 · in_features · out_features`` per output row.
* pool: output elements times the window size (adaptive pools: input elements).
* lrn: output elements times the window size ``size``.
* activation, add, dropout, softmax, norm, other: one per output element.
* flatten and concat: zero (data movement only).
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn


def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape) if shape else 1


def count_flops(
    kind: str,
    input_shapes: tuple[tuple[int, ...], ...],
    output_shape: tuple[int, ...],
    module: nn.Module | None = None,
    weight_shape: tuple[int, ...] | None = None,
) -> int:
    """FLOPs of one node under the convention of this module's docstring."""
    out = _numel(output_shape)
    if kind == "conv":
        if weight_shape is None and module is not None:
            weight_shape = _weight_shape(module)
        if weight_shape is None:
            return out
        # weight: (C_out, C_in/groups, *kernel): each output element costs C_in/g·K MACs.
        return 2 * out * _numel(weight_shape[1:])
    if kind == "linear":
        if weight_shape is None and module is not None:
            weight_shape = _weight_shape(module)
        if weight_shape is None or len(weight_shape) != 2:
            return out
        return 2 * out * int(weight_shape[1])
    if kind == "pool":
        window = _pool_window(module)
        if window is None:
            return _numel(input_shapes[0]) if input_shapes else out
        return out * window
    if kind == "lrn":
        size = int(getattr(module, "size", 1)) if module is not None else 1
        return out * size
    if kind in ("flatten", "concat"):
        return 0
    return out


def _pool_window(module: Any) -> int | None:
    if module is None:
        return None
    k = getattr(module, "kernel_size", None)
    if k is None:
        return None
    if isinstance(k, int):
        dims = 2 if "2d" in type(module).__name__.lower() else 1
        return k**dims
    return _numel(tuple(k))


def _weight_shape(module: nn.Module) -> tuple[int, ...] | None:
    weight = getattr(module, "weight", None)
    return tuple(int(s) for s in weight.shape) if weight is not None else None
