"""Per-layer features for latency regression (Pre-DNNOff Table 4.1, Neurosurgeon).

Pre-DNNOff Table 4.1 names one feature set per layer type; its Table 4.2 coefficients
take sizes in bytes, so data sizes here are bytes too:

=================  =========================================================================
kind               Table 4.1 features
=================  =========================================================================
conv               x1 = input feature-map bytes, x2 = (K/stride)²·filters·channels
activation (ReLU)  x = input bytes
pool               x1 = input bytes, x2 = output bytes
lrn                x = input bytes
dropout            x = input bytes
linear (FC)        x1 = input bytes, x2 = output bytes
=================  =========================================================================

Kinds the table does not cover (norm, add, concat, flatten, softmax, other) use input and
output bytes, by analogy with pooling. ``K`` and ``stride`` of a non-square kernel are the
products of their dimensions' ratios; a grouped conv divides ``channels`` by ``groups``.

The *extended* set adds the node's FLOPs and parameter bytes (what dominates conv and FC
time on a CPU); the *geometry* set adds output bytes and the kernel size, stride and groups
(depthwise and 1×1 convolutions run at very different speeds per FLOP).
:class:`~edgesplit.predict.layer_regression.LayerTypeRegressor` uses *geometry* by default,
and the plain Table 4.1 set is the benchmark baseline. O(1) per node.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgesplit.graph.types import Node

TABLE_41: dict[str, tuple[str, ...]] = {
    "conv": ("input_bytes", "kernel_term"),
    "activation": ("input_bytes",),
    "pool": ("input_bytes", "output_bytes"),
    "lrn": ("input_bytes",),
    "dropout": ("input_bytes",),
    "linear": ("input_bytes", "output_bytes"),
}
DEFAULT_FEATURES: tuple[str, ...] = ("input_bytes", "output_bytes")
EXTENDED_EXTRA: tuple[str, ...] = ("flops", "param_bytes")
GEOMETRY_EXTRA: tuple[str, ...] = ("output_bytes", "kernel", "stride", "groups")
FEATURE_SETS = ("table4.1", "extended", "geometry")


def element_size(node: Node) -> float:
    elems = math.prod(node.output_shape) if node.output_shape else 0
    return node.output_bytes / elems if elems else 4.0


def input_bytes(node: Node) -> float:
    size = element_size(node)
    return float(sum(math.prod(s) for s in node.input_shapes) * size)


def kernel_term(node: Node) -> float:
    """(K/stride)²·filters·channels of Pre-DNNOff Table 4.1 (0 for a non-conv node)."""
    a = node.attrs
    if "out_channels" not in a:
        return 0.0
    ks, st = a.get("kernel_size", 1), a.get("stride", 1)
    ks = list(ks) if isinstance(ks, list | tuple) else [ks, ks]
    st = list(st) if isinstance(st, list | tuple) else [st] * len(ks)
    ratio = math.prod(k / max(s, 1) for k, s in zip(ks, st))
    channels = a.get("in_channels", 1) / max(a.get("groups", 1), 1)
    return float(ratio * a["out_channels"] * channels)


def feature_names(kind: str, feature_set: str = "extended") -> tuple[str, ...]:
    base = TABLE_41.get(kind, DEFAULT_FEATURES)
    if feature_set == "table4.1":
        return base
    names = base + EXTENDED_EXTRA
    if feature_set == "geometry":
        names += tuple(f for f in GEOMETRY_EXTRA if f not in names)
    return names


def _first(value: Any) -> float:
    if isinstance(value, list | tuple):
        return float(math.prod(value)) if value else 1.0
    return float(value) if value is not None else 1.0


def node_value(node: Node, name: str) -> float:
    if name == "input_bytes":
        return input_bytes(node)
    if name == "output_bytes":
        return float(node.output_bytes)
    if name == "kernel_term":
        return kernel_term(node)
    if name == "flops":
        return float(node.flops)
    if name == "param_bytes":
        return float(node.param_bytes)
    if name == "kernel":
        return _first(node.attrs.get("kernel_size", 0))
    if name == "stride":
        return _first(node.attrs.get("stride", 0))
    if name == "groups":
        return float(node.attrs.get("groups", 0))
    raise KeyError(name)


def feature_matrix(nodes: Sequence[Node], names: Sequence[str]) -> np.ndarray:
    """Rows = nodes, columns = the named features."""
    return np.array([[node_value(n, f) for f in names] for n in nodes], dtype=float).reshape(
        len(nodes), len(names)
    )
