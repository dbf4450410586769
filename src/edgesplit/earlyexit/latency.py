"""Per-layer latency models of Pre-DNNOff (Zuo 2024, §4.2, Tables 4.1 and 4.2, eq. 4.3).

``T_Stype(l) = f(Stype, Var(l))``: each layer type has a linear regression over Table
4.1's variables, one coefficient set per tier. The coefficients and features live in the
planning machinery (:mod:`edgesplit.predict.coefficients`,
:mod:`edgesplit.predict.features`); this module adapts them to the three tiers of the
early-exit problem and returns seconds:

* :class:`Table42Model`: the paper's built-in regressions for ``mobile`` or ``edge``
  (clipped at zero: mobile conv and edge FC have negative terms), with model loading and
  parsing. The cloud is the edge model divided by a stated speed factor (the paper gives
  no cloud regression). A layer kind the table does not model is an error here rather
  than a silent zero.
* :class:`FittedLayerModel`: :class:`~edgesplit.predict.layer_regression.LayerTypeRegressor`
  fitted to this machine's measured profile, so both kinds of predictor plug into the same
  problem.

:func:`features` gives Table 4.1's variables of a node (bytes), e.g. for documentation and
tests. Predicting one layer is O(1); fitting is O(layers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from edgesplit.errors import InputError, NotFittedError
from edgesplit.graph.types import Node
from edgesplit.predict.coefficients import PreDNNOffModel
from edgesplit.predict.features import TABLE_41, feature_matrix
from edgesplit.predict.layer_regression import LayerTypeRegressor

#: Layer types Table 4.2 covers (Zuo eq. 4.1's Ltype 0..5).
TABLE_KINDS = tuple(TABLE_41)


def features(node: Node) -> tuple[float, ...]:
    """Table 4.1's variables for ``node`` (bytes; conv: input bytes, (K/S)^2 * K_n * C)."""
    if node.kind not in TABLE_41:
        raise InputError(f"layer {node.name!r} of kind {node.kind!r} has no Table 4.1 variables")
    return tuple(float(v) for v in feature_matrix([node], TABLE_41[node.kind])[0])


class LayerLatencyModel(Protocol):
    """What the problem builder needs from one tier's predictor (seconds)."""

    def layer_seconds(self, node: Node) -> float: ...

    def loading_seconds(self, model_bytes: float) -> float: ...

    def parsing_seconds(self, model_bytes: float) -> float: ...


@dataclass(frozen=True)
class Table42Model:
    """The paper's built-in regression for ``tier`` in {"mobile", "edge"}, divided by ``speedup``.

    ``speedup`` > 1 makes a faster machine: the cloud is ``Table42Model("edge", factor)``.
    """

    tier: str = "edge"
    speedup: float = 1.0

    def __post_init__(self) -> None:
        if self.tier not in ("mobile", "edge"):
            raise InputError(f"Table 4.2 has tiers mobile and edge, not {self.tier!r}")
        if self.speedup <= 0:
            raise InputError(f"speed factor must be positive, got {self.speedup}")

    @property
    def _model(self) -> PreDNNOffModel:
        return PreDNNOffModel(self.tier)

    def layer_seconds(self, node: Node) -> float:
        if node.kind not in TABLE_KINDS:
            raise InputError(
                f"layer {node.name!r} is of kind {node.kind!r}, which Table 4.2 does not model "
                f"({', '.join(TABLE_KINDS)}); use fitted predictors (predictors: fitted)"
            )
        return float(self._model.predict([node])[0]) / self.speedup

    def loading_seconds(self, model_bytes: float) -> float:
        return max(0.0, self._model.loading_seconds(model_bytes)) / self.speedup

    def parsing_seconds(self, model_bytes: float) -> float:
        if self.tier != "mobile":
            return 0.0
        return max(0.0, self._model.parsing_seconds(model_bytes)) / self.speedup


class FittedLayerModel:
    """A fitted per-layer-type regression for one tier, divided by ``speedup``.

    scikit-learn contract: ``__init__`` only stores; ``fit(nodes, seconds)`` fits
    ``regressor_`` (a :class:`LayerTypeRegressor`) and returns self; use before ``fit``
    raises :class:`~edgesplit.errors.NotFittedError`. Loading and parsing are not in a layer
    profile, so they are the fixed ``loading_ms`` / ``parsing_ms`` (0 by default).
    """

    def __init__(
        self, speedup: float = 1.0, loading_ms: float = 0.0, parsing_ms: float = 0.0
    ) -> None:
        self.speedup = speedup
        self.loading_ms = loading_ms
        self.parsing_ms = parsing_ms

    def fit(self, nodes: Sequence[Node], seconds: Sequence[float]) -> FittedLayerModel:
        # Fewer samples per kind than LayerTypeRegressor's default: one BranchyNet has
        # only two or three LRN layers, and their Table 4.1 form has one variable.
        self.regressor_ = LayerTypeRegressor(min_samples=2).fit(list(nodes), list(seconds))
        return self

    def layer_seconds(self, node: Node) -> float:
        if not hasattr(self, "regressor_"):
            raise NotFittedError("FittedLayerModel is not fitted; call fit(nodes, seconds) first")
        return float(self.regressor_.predict([node])[0]) / self.speedup

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
