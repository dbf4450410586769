"""FLOP counting convention, stated once.

* conv: ``2 · C_out · prod(out_spatial) · (C_in / groups) · prod(kernel)`` per sample,
  i.e. two FLOPs per multiply-accumulate; bias additions are not counted.
* linear: ``2 · in_features · out_features`` per output row.
* matrix products (``mm``, ``bmm``, ``matmul``): ``2 · K`` per output element, ``K`` the
  reduced dimension; scaled dot-product attention: ``2 · L · S · (E + E_v)`` per batch
  and head (``QKᵀ`` then ``·V``; the softmax is not counted). These agree with
  ``torch.utils.flop_counter.FlopCounterMode``.
* pool: output elements times the window size (adaptive pools: input elements).
* lrn: output elements times the window size ``size``.
* activation (GELU included), add, dropout, softmax, norm (LayerNorm, BatchNorm, ...),
  other: one per output element.
* flatten, concat and embedding lookups (``nn.Embedding``, ``aten.embedding``): zero (data
  movement only).
* composite attention kernels, from their argument shapes (``N = B · L`` tokens of width
  ``E``, ``S`` keys, feed-forward width ``F``; Vaswani et al. 2017, §3.2-3.3), each the
  sum of its parts under the rules above:

  - ``_native_multi_head_attention`` (``nn.MultiheadAttention``'s fused path):
    ``2·N·E·E`` (Q projection) ``+ 2·B·S·E·2E`` (K and V) ``+ 2·N·S·E`` (``QKᵀ``)
    ``+ 2·N·S·E`` (``·V``) ``+ 2·N·E·E`` (output projection);
  - ``_transformer_encoder_layer_fwd`` (``nn.TransformerEncoderLayer``'s fused path, what
    a float ``nn.TransformerEncoder`` traces to in eval mode): the attention above with
    ``S = L`` and a packed ``2·N·E·3E`` projection, ``+ 2·N·E·F + 2·N·F·E`` (the two
    feed-forward linears) ``+ N·F`` (activation) ``+ 4·N·E`` (two residual adds, two
    norms).
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
    if kind in ("flatten", "concat") or isinstance(module, nn.Embedding):
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


def composite_flops(target: Any, args: tuple[Any, ...]) -> int | None:
    """FLOPs of a fused attention kernel or an embedding lookup (see module doc); ``args``
    are the call's positional arguments with every tensor replaced by its shape.
    ``None`` for other targets."""
    name = str(getattr(target, "__name__", target)).split(".")[0]
    if name == "embedding":
        return 0
    if name == "_native_multi_head_attention" and len(args) >= 3:
        q, k = args[0], args[1]
        if not (isinstance(q, tuple) and isinstance(k, tuple) and len(q) >= 2 and len(k) >= 2):
            return None
        e, tokens, keys = int(q[-1]), _numel(q[:-1]), _numel(k[:-1])
        seq_k = int(k[-2])
        return (
            2 * tokens * e * e + 2 * keys * e * 2 * e + 4 * tokens * seq_k * e + 2 * tokens * e * e
        )
    if name == "_transformer_encoder_layer_fwd" and len(args) >= 15:
        src, ffn = args[0], args[14]
        if not (isinstance(src, tuple) and isinstance(ffn, tuple) and len(src) >= 2):
            return None
        e, f, tokens, seq = int(src[-1]), int(ffn[0]), _numel(src[:-1]), int(src[-2])
        attention = 2 * tokens * e * 3 * e + 4 * tokens * seq * e + 2 * tokens * e * e
        return attention + 4 * tokens * e * f + tokens * f + 4 * tokens * e
    return None


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
