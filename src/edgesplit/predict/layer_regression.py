"""Per-layer-type latency regression (Neurosurgeon; Pre-DNNOff §4.2, Tables 4.1–4.2).

One regression per node kind, fitted on profiled (node, seconds) pairs:

* ``form="linear"``: t = c₀ + Σ cⱼ·xⱼ on the kind's features (Pre-DNNOff Table 4.2 form);
* ``form="loglog"``: log t = c₀ + Σ cⱼ·log(1 + xⱼ), a power law, which keeps small layers'
  relative error bounded where a linear fit through large layers goes negative or far off;
* ``form="auto"``: per kind, the form with the lower mean absolute log error under
  leave-one-out cross-validation (in-sample when a kind has < 4 samples);
* ``form="forest"`` (default): per kind, randomised trees in log space
  (:mod:`.forest`, DNNOff's random-forest idea), which on this host's profiles agrees with
  held-out measurements far more often than either parametric form (see
  ``benchmarks/bench_plan_predictor_accuracy.py``).

Kinds with fewer than ``min_samples`` samples, and kinds unseen in training, use one
log-log fallback over (input bytes, output bytes, FLOPs, parameter bytes) fitted on all
samples. Predictions are clipped below at ``floor_s``. Fitting is O(m·f²) per kind for m
samples and f features (LOO adds a factor m). Follows the scikit-learn contract:
``__init__`` only stores, ``fit`` returns self, learned state ends in ``_``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from edgesplit.errors import InputError, NotFittedError
from edgesplit.graph.types import Graph, Node
from edgesplit.predict.features import FEATURE_SETS, feature_matrix, feature_names
from edgesplit.predict.forest import LogForest

FORMS = ("auto", "linear", "loglog", "forest")
FALLBACK_FEATURES = ("input_bytes", "output_bytes", "flops", "param_bytes")


@dataclass(frozen=True)
class KindModel:
    """One fitted regression: ``form``, feature ``names``, ``intercept`` and ``coef``."""

    form: str
    names: tuple[str, ...]
    intercept: float
    coef: tuple[float, ...]
    samples: int
    forest: LogForest | None = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.forest is not None:
            return self.forest.predict(x)
        c = np.asarray(self.coef)
        if self.form == "linear":
            return np.asarray(self.intercept + x @ c)
        return np.asarray(np.exp(self.intercept + np.log1p(np.maximum(x, 0.0)) @ c))

    def to_dict(self) -> dict[str, Any]:
        return {
            "form": self.form,
            "names": list(self.names),
            "intercept": self.intercept,
            "coef": list(self.coef),
            "samples": self.samples,
            **({"forest": self.forest.to_dict()} if self.forest is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KindModel:
        forest = LogForest.from_dict(d["forest"]) if "forest" in d else None
        names, coef = tuple(d["names"]), tuple(d["coef"])
        return cls(d["form"], names, float(d["intercept"]), coef, d["samples"], forest)


def _lstsq(x: np.ndarray, y: np.ndarray) -> tuple[float, tuple[float, ...]]:
    a = np.hstack([np.ones((len(x), 1)), x])
    sol, *_ = np.linalg.lstsq(a, y, rcond=None)
    return float(sol[0]), tuple(float(v) for v in sol[1:])


def fit_form(form: str, names: tuple[str, ...], x: np.ndarray, y: np.ndarray) -> KindModel:
    """Least-squares fit of one form (log-space for ``loglog``), or a log-space forest."""
    if form == "forest":
        return KindModel(form, names, 0.0, (), len(y), LogForest.fit(x, y))
    if form == "linear":
        b, c = _lstsq(x, y)
    else:
        b, c = _lstsq(np.log1p(np.maximum(x, 0.0)), np.log(np.maximum(y, 1e-9)))
    return KindModel(form, names, b, c, len(y))


def _log_error(pred: np.ndarray, y: np.ndarray, floor: float) -> float:
    return float(np.mean(np.abs(np.log(np.maximum(pred, floor) / np.maximum(y, floor)))))


def _loo_error(
    form: str, names: tuple[str, ...], x: np.ndarray, y: np.ndarray, floor: float
) -> float:
    if len(y) < 4:
        return _log_error(fit_form(form, names, x, y).predict(x), y, floor)
    preds = np.empty_like(y)
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        preds[i] = fit_form(form, names, x[keep], y[keep]).predict(x[i : i + 1])[0]
    return _log_error(preds, y, floor)


class LayerTypeRegressor(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """Per-kind latency regression over graph nodes; ``X`` is a sequence of :class:`Node`."""

    def __init__(
        self,
        form: str = "forest",
        features: str = "geometry",
        min_samples: int = 3,
        floor_s: float = 1e-7,
    ) -> None:
        self.form = form
        self.features = features
        self.min_samples = min_samples
        self.floor_s = floor_s

    def fit(self, X: Sequence[Node], y: Sequence[float] | np.ndarray) -> LayerTypeRegressor:
        if self.form not in FORMS:
            raise InputError(f"form must be one of {', '.join(FORMS)}, not {self.form!r}")
        if self.features not in FEATURE_SETS:
            raise InputError(f"features must be one of {', '.join(FEATURE_SETS)}")
        yv = np.asarray(y, dtype=float)
        if len(X) != len(yv) or len(yv) == 0:
            raise InputError(f"fit needs one time per node; got {len(X)} nodes, {len(yv)} times")
        by_kind: dict[str, list[int]] = defaultdict(list)
        for i, node in enumerate(X):
            by_kind[node.kind].append(i)
        models: dict[str, KindModel] = {}
        for kind, idx in sorted(by_kind.items()):
            if len(idx) < self.min_samples:
                continue
            names = feature_names(kind, self.features)
            x = feature_matrix([X[i] for i in idx], names)
            models[kind] = self._fit_kind(names, x, yv[idx])
        self.models_ = models
        self.fallback_ = fit_form(
            "loglog", FALLBACK_FEATURES, feature_matrix(list(X), FALLBACK_FEATURES), yv
        )
        self.n_samples_ = len(yv)
        return self

    def _fit_kind(self, names: tuple[str, ...], x: np.ndarray, y: np.ndarray) -> KindModel:
        if self.form != "auto":
            return fit_form(self.form, names, x, y)
        errors = {f: _loo_error(f, names, x, y, self.floor_s) for f in ("linear", "loglog")}
        return fit_form(min(errors, key=lambda f: (errors[f], f)), names, x, y)

    def _check(self) -> None:
        if not hasattr(self, "models_"):
            raise NotFittedError(
                "LayerTypeRegressor is not fitted; call fit() or load a fitted predictor file"
            )

    def predict(self, X: Sequence[Node]) -> np.ndarray:
        self._check()
        out = np.empty(len(X))
        by_kind: dict[str, list[int]] = defaultdict(list)
        for i, node in enumerate(X):
            by_kind[node.kind].append(i)
        for kind, idx in by_kind.items():
            model = self.models_.get(kind, self.fallback_)
            out[idx] = model.predict(feature_matrix([X[i] for i in idx], model.names))
        return np.maximum(out, self.floor_s)

    def predict_graph(self, graph: Graph) -> np.ndarray:
        """Predicted seconds of every node of ``graph``, in order."""
        return self.predict(list(graph.nodes))

    def to_dict(self) -> dict[str, Any]:
        self._check()
        return {
            "type": "layer_regression",
            "params": self.get_params(),
            "models": {k: m.to_dict() for k, m in self.models_.items()},
            "fallback": self.fallback_.to_dict(),
            "n_samples": self.n_samples_,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> LayerTypeRegressor:
        est = cls(**doc.get("params", {}))
        est.models_ = {k: KindModel.from_dict(m) for k, m in doc["models"].items()}
        est.fallback_ = KindModel.from_dict(doc["fallback"])
        est.n_samples_ = int(doc.get("n_samples", 0))
        return est
