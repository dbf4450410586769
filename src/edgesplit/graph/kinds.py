"""Normalised node kinds: one table from torch modules and functions to edgesplit kinds."""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

_MODULE_KINDS: tuple[tuple[tuple[type, ...], str], ...] = (
    ((nn.modules.conv._ConvNd,), "conv"),
    ((nn.Linear, nn.Bilinear), "linear"),
    (
        (
            nn.ReLU,
            nn.ReLU6,
            nn.LeakyReLU,
            nn.ELU,
            nn.SELU,
            nn.GELU,
            nn.SiLU,
            nn.Sigmoid,
            nn.Tanh,
            nn.Hardswish,
            nn.Hardsigmoid,
            nn.Hardtanh,
            nn.Mish,
            nn.Softplus,
            nn.PReLU,
        ),
        "activation",
    ),
    (
        (
            nn.modules.pooling._MaxPoolNd,
            nn.modules.pooling._AvgPoolNd,
            nn.modules.pooling._AdaptiveAvgPoolNd,
            nn.modules.pooling._AdaptiveMaxPoolNd,
        ),
        "pool",
    ),
    ((nn.LocalResponseNorm,), "lrn"),
    ((nn.modules.dropout._DropoutNd,), "dropout"),
    (
        (
            nn.modules.batchnorm._NormBase,
            nn.LayerNorm,
            nn.GroupNorm,
        ),
        "norm",
    ),
    ((nn.Flatten, nn.Unflatten), "flatten"),
    ((nn.Softmax, nn.LogSoftmax, nn.Softmin), "softmax"),
)

_FUNCTION_KINDS: dict[Any, str] = {
    operator.add: "add",
    operator.iadd: "add",
    torch.add: "add",
    torch.cat: "concat",
    torch.concat: "concat",
    torch.flatten: "flatten",
    torch.reshape: "flatten",
    torch.relu: "activation",
    torch.sigmoid: "activation",
    torch.tanh: "activation",
    F.relu: "activation",
    F.relu6: "activation",
    F.gelu: "activation",
    F.silu: "activation",
    F.hardswish: "activation",
    F.adaptive_avg_pool2d: "pool",
    F.avg_pool2d: "pool",
    F.max_pool2d: "pool",
    F.dropout: "dropout",
    F.softmax: "softmax",
    F.log_softmax: "softmax",
    torch.softmax: "softmax",
    F.linear: "linear",
    F.conv2d: "conv",
    F.local_response_norm: "lrn",
    F.batch_norm: "norm",
    F.layer_norm: "norm",
}

_METHOD_KINDS: dict[str, str] = {
    "add": "add",
    "add_": "add",
    "relu": "activation",
    "relu_": "activation",
    "sigmoid": "activation",
    "view": "flatten",
    "reshape": "flatten",
    "flatten": "flatten",
    "softmax": "softmax",
}

# aten op name fragments, for graphs that came from torch.export.
_ATEN_KINDS: tuple[tuple[str, str], ...] = (
    ("scaled_dot_product_attention", "linear"),
    ("convolution", "conv"),
    ("conv", "conv"),
    ("linear", "linear"),
    ("addmm", "linear"),
    ("matmul", "linear"),
    ("mm", "linear"),
    ("relu", "activation"),
    ("hardtanh", "activation"),
    ("sigmoid", "activation"),
    ("gelu", "activation"),
    ("silu", "activation"),
    ("pool", "pool"),
    ("local_response", "lrn"),
    ("dropout", "dropout"),
    ("batch_norm", "norm"),
    ("layer_norm", "norm"),
    ("add", "add"),
    ("cat", "concat"),
    ("view", "flatten"),
    ("reshape", "flatten"),
    ("flatten", "flatten"),
    ("softmax", "softmax"),
)

# Ops that only re-label memory; at layer granularity they are fused into their producer
# so that AlexNet keeps its 21 layers (torch.flatten is not a layer in the papers).
SHAPE_ONLY_FUNCTIONS: frozenset[Any] = frozenset(
    {torch.flatten, torch.reshape, operator.getitem, getattr, torch.squeeze, torch.unsqueeze}
)
SHAPE_ONLY_METHODS: frozenset[str] = frozenset(
    {"view", "reshape", "flatten", "size", "contiguous", "squeeze", "unsqueeze", "dim"}
)


def module_kind(module: nn.Module, default: str = "other") -> str:
    """The kind of a module; modules outside torch.nn whose class name says ``Norm``
    (``LlamaRMSNorm``) are norms, any other is ``default``."""
    for types, kind in _MODULE_KINDS:
        if isinstance(module, types):
            return kind
    if "norm" in type(module).__name__.lower():
        return "norm"
    return default


def function_kind(target: Any) -> str:
    kind = _FUNCTION_KINDS.get(target)
    if kind is not None:
        return kind
    name = str(getattr(target, "__name__", target)).lower()
    for fragment, k in _ATEN_KINDS:
        if fragment in name:
            return k
    return "other"


def method_kind(name: str) -> str:
    return _METHOD_KINDS.get(name, "other")


def target_name(target: Any) -> str:
    """A readable, stable label for an fx target."""
    if isinstance(target, str):
        return target
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", None) or str(target)
    if module in ("_operator", "operator"):
        return f"operator.{name}"
    if module.startswith("torch"):
        return f"{module}.{name}"
    return str(target)
