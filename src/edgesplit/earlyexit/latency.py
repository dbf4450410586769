"""Per-layer latency models of Pre-DNNOff (Zuo 2024, §4.2, Tables 4.1 and 4.2, eq. 4.3).

``T_Stype(l) = f(Stype, Var(l))``: each layer type has a linear regression over the Table
4.1 variables, one coefficient set per tier. Sizes are bytes, the table's unit; this module
returns seconds. Table 4.1's variables, as read here from a traced
:class:`~edgesplit.graph.types.Node`:

=============  ===========================================================================
conv           x1 = input bytes ("amount of input feature maps"),
               x2 = (K_size / Stride)^2 * K_number * Channel
activation     x = input bytes (ReLU)
pool, linear   x1 = input bytes, x2 = output bytes
lrn, dropout   x = input bytes
loading        x = bytes of the parameters the tier holds (model size)
parsing        x = bytes of the parameters of the chain that produced the result (mobile)
=============  ===========================================================================

Two regressions have negative coefficients or intercepts (mobile conv, edge FC), so a small
layer can predict below zero; predictions are clipped at zero. The cloud tier is the edge
model divided by a stated speed factor (the paper gives no cloud regression).

:class:`FittedLayerModel` fits the same per-type linear forms (scikit-learn
``LinearRegression``) to this machine's measured profile, so both kinds of predictor plug
into the same problem. Predicting one layer is O(1); fitting is O(layers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edgesplit.errors import InputError, NotFittedError
from edgesplit.graph.types import Node

#: Table 4.2, milliseconds over bytes: kind -> (coefficients..., intercept).
TABLE_4_2: dict[str, dict[str, tuple[float, ...]]] = {
    "edge": {
        "conv": (6.03e-5, 1.24e-4, 1.89e-1),
        "activation": (5.6e-6, 5.69e-2),
        "pool": (1.63e-5, 4.07e-6, 2.11e-1),
        "lrn": (6.59e-5, 7.80e-2),
        "dropout": (5.23e-6, 4.64e-3),
        "linear": (1.07e-4, -1.83e-4, 1.64e-1),
        "loading": (1.33e-6, 2.182),
    },
    "mobile": {
        "conv": (6.13e-3, 2.67e-2, -9.909),
        "activation": (1.5e-5, 4.88e-1),
        "pool": (1.33e-4, 3.31e-5, 1.657),
        "lrn": (5.19e-4, 5.89e-1),
        "dropout": (6.59e-5, 5.25e-2),
        "linear": (9.18e-4, 3.99e-3, 1.169),
        "loading": (4.49e-6, 82.136),
        "parsing": (3.48e-6, 4.253),
    },
}

#: Layer types Table 4.2 covers (Zuo eq. 4.1's Ltype 0..5).
TABLE_KINDS = ("conv", "activation", "pool", "lrn", "dropout", "linear")


def features(node: Node) -> tuple[float, ...]:
    """Table 4.1's variables for ``node`` (bytes; see the module docstring)."""
    itemsize = max(1, node.output_bytes // max(1, int(np.prod(node.output_shape))))
    in_bytes = float(sum(int(np.prod(s)) for s in node.input_shapes) * itemsize)
    if node.kind == "conv":
        k = _pair(node.attrs.get("kernel_size", 1))
        s = _pair(node.attrs.get("stride", 1))
        ratio = (k[0] * k[1]) / (s[0] * s[1])
        cin = float(node.attrs.get("in_channels", 1)) / float(node.attrs.get("groups", 1))
        return (in_bytes, ratio * float(node.attrs.get("out_channels", 1)) * cin)
    if node.kind in ("pool", "linear"):
        return (in_bytes, float(node.output_bytes))
    return (in_bytes,)


def _pair(v: object) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        return int(v[0]), int(v[-1])
    return int(v), int(v)  # type: ignore[call-overload]


class LayerLatencyModel(Protocol):
    """What the problem builder needs from one tier's predictor (seconds)."""

    def layer_seconds(self, node: Node) -> float: ...

    def loading_seconds(self, model_bytes: float) -> float: ...

    def parsing_seconds(self, model_bytes: float) -> float: ...


def _linear(coefs: Sequence[float], xs: Sequence[float]) -> float:
    return float(sum(c * x for c, x in zip(coefs[:-1], xs)) + coefs[-1])


@dataclass(frozen=True)
class Table42Model:
    """The paper's built-in regression for ``tier`` in {"mobile", "edge"}, divided by ``speedup``.

    ``speedup`` > 1 makes a faster machine: the cloud is ``Table42Model("edge", factor)``.
    """

    tier: str = "edge"
    speedup: float = 1.0

    def __post_init__(self) -> None:
        if self.tier not in TABLE_4_2:
            raise InputError(f"Table 4.2 has tiers mobile and edge, not {self.tier!r}")
        if self.speedup <= 0:
            raise InputError(f"speed factor must be positive, got {self.speedup}")

    def layer_seconds(self, node: Node) -> float:
        coefs = TABLE_4_2[self.tier].get(node.kind)
        if coefs is None:
            raise InputError(
                f"layer {node.name!r} is of kind {node.kind!r}, which Table 4.2 does not model "
                f"({', '.join(TABLE_KINDS)}); use fitted predictors (predictors: fitted)"
            )
        return max(0.0, _linear(coefs, features(node))) / 1000.0 / self.speedup

    def loading_seconds(self, model_bytes: float) -> float:
        return (
            max(0.0, _linear(TABLE_4_2[self.tier]["loading"], [model_bytes])) / 1e3 / self.speedup
        )

    def parsing_seconds(self, model_bytes: float) -> float:
        coefs = TABLE_4_2[self.tier].get("parsing")
        if coefs is None:
            return 0.0
        return max(0.0, _linear(coefs, [model_bytes])) / 1000.0 / self.speedup


class FittedLayerModel:
    """Per-layer-type linear regressions on Table 4.1's variables, fitted to measured times.

    scikit-learn contract: ``__init__`` only stores; ``fit(nodes, seconds)`` returns self;
    learned state ``models_`` (kind -> fitted estimator) and ``fallback_`` (median seconds
    per kind when a kind has too few samples for its variables); use before ``fit`` raises
    :class:`~edgesplit.errors.NotFittedError`. ``speedup`` divides every prediction.
    Loading and parsing are not in a layer profile, so they predict 0 unless
    ``loading_ms``/``parsing_ms`` give fixed costs.
    """

    def __init__(
        self, speedup: float = 1.0, loading_ms: float = 0.0, parsing_ms: float = 0.0
    ) -> None:
        self.speedup = speedup
        self.loading_ms = loading_ms
        self.parsing_ms = parsing_ms

    def fit(self, nodes: Sequence[Node], seconds: Sequence[float]) -> FittedLayerModel:
        from sklearn.linear_model import LinearRegression

        if len(nodes) != len(seconds) or not nodes:
            raise InputError(f"fit needs one time per node: {len(nodes)} nodes, {len(seconds)}")
        by_kind: dict[str, list[tuple[tuple[float, ...], float]]] = {}
        for n, s in zip(nodes, seconds):
            by_kind.setdefault(n.kind, []).append((features(n), float(s)))
        self.models_: dict[str, LinearRegression] = {}
        self.fallback_: dict[str, float] = {}
        for kind, rows in by_kind.items():
            x = np.array([r[0] for r in rows])
            y = np.array([r[1] for r in rows])
            self.fallback_[kind] = float(np.median(y))
            # A regression needs more distinct samples than coefficients to mean anything.
            if len({tuple(r) for r in x}) > x.shape[1] + 1:
                self.models_[kind] = LinearRegression().fit(x, y)
        self.overall_ = float(np.median([float(s) for s in seconds]))
        return self

    def _check(self) -> None:
        if not hasattr(self, "models_"):
            raise NotFittedError("FittedLayerModel is not fitted; call fit(nodes, seconds) first")

    def layer_seconds(self, node: Node) -> float:
        self._check()
        model = self.models_.get(node.kind)
        if model is not None:
            value = float(model.predict(np.array([features(node)]))[0])
        else:
            value = self.fallback_.get(node.kind, self.overall_)
        return max(0.0, value) / self.speedup

    def loading_seconds(self, model_bytes: float) -> float:
        return self.loading_ms / 1000.0 / self.speedup

    def parsing_seconds(self, model_bytes: float) -> float:
        return self.parsing_ms / 1000.0 / self.speedup


def fitted_from_profile(
    nodes: Sequence[Node], node_seconds: Mapping[str, float], speedup: float = 1.0
) -> FittedLayerModel:
    """Fit on the nodes a profile measured (names missing from the profile are skipped)."""
    measured = [n for n in nodes if n.name in node_seconds]
    if not measured:
        raise InputError("the profile measured none of the graph's layers; profile this model")
    return FittedLayerModel(speedup=speedup).fit(measured, [node_seconds[n.name] for n in measured])
