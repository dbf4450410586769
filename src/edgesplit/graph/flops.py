"""FLOP counting convention, stated once.

* conv: ``2 · C_out · prod(out_spatial) · (C_in / groups) · prod(kernel)`` per sample,
  i.e. two FLOPs per multiply-accumulate; bias additions are not counted.
* linear: ``2 · in_features · out_features`` per output row.
* matrix products (``mm``, ``bmm``, ``matmul``): ``2 · K`` per output element, ``K`` the
  reduced dimension; scaled dot-product attention: ``2 · L · S · (E + E_v)`` per batch
  and head (``QKᵀ`` then ``·V``; the softmax is not counted).
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


_MATMULS = ("mm", "bmm", "matmul", "scaled_dot_product_attention")


def matmul_flops(
    target: Any, input_shapes: tuple[tuple[int, ...], ...], output_shape: tuple[int, ...]
) -> int | None:
    """FLOPs of a matrix product or attention call (see module doc); ``None`` for others."""
    name = str(getattr(target, "__name__", target)).split(".")[0]
    if name not in _MATMULS or len(input_shapes) < 2 or not input_shapes[0]:
        return None
    if name == "scaled_dot_product_attention":
        if len(input_shapes) < 3 or len(input_shapes[0]) < 2 or len(input_shapes[1]) < 2:
            return None
        q, k, v = input_shapes[:3]
        batch_heads = _numel(q[:-2])
        return 2 * batch_heads * q[-2] * k[-2] * (q[-1] + v[-1])
    return 2 * _numel(output_shape) * int(input_shapes[0][-1])


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
