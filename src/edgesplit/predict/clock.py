"""Luger's clock-speed edge model (eq. 4.1–4.2) and linear cloud model (§4.2).

Edge (Luger §4.1). Edge latency is linear in the split point SP (the number of layers run
on the edge), ``edge(SP) = slope·SP``, and the slope depends on the clock CS. For each
training DNN the all-in-edge latency is measured at several clocks; its slope
(latency / layers) is min–max normalised to [0, 1] over that DNN's clocks, and one power
law ``slope_norm = a·CS^b`` is fitted through the pooled points (Figure 4.1). For a new
DNN M two measurements de-normalise it (eq. 4.2): the all-in-edge latency at the highest
clock gives the lower bound ``l_b(M)`` and at the lowest clock the upper bound
``up_b(M)`` (as slopes)::

    f_edge(CS, SP, M) = (a·CS^b · (up_b − l_b) + l_b) · SP          (eq. 4.1, 4.2)

The power law is fitted by least squares in log space on the points with a positive
normalised slope (the highest clock of each DNN normalises to exactly 0, which log space
cannot hold); with clock in GHz. Fitting O(m), prediction O(1).

Cloud (Luger §4.2). One all-in-cloud measurement T and the fact that the all-in-edge
cloud time is 0 give ``cloud(SP) = T·(1 − SP/n)``.

Both follow the scikit-learn contract; ``node_seconds`` turns them into the uniform
per-layer seconds the two-tier candidate table takes. :func:`fit_edge_models` does the
whole §4.1 procedure from all-in-edge runs at several clocks (one pooled power law, one
de-normalised model per DNN); a fitted edge model saves as predictor type ``luger_edge``
(:mod:`edgesplit.predict.store`) and ``edgesplit plan/run --edge-model FILE`` plan with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from edgesplit.errors import InputError, NotFittedError
from edgesplit.graph.types import Graph

GHZ = 1e9


def normalised_slopes(
    clocks_hz: Sequence[float], all_in_edge_s: Sequence[float], n_layers: int
) -> np.ndarray:
    """Min–max normalised slopes (latency / layers) of one DNN over its clocks."""
    if len(clocks_hz) != len(all_in_edge_s) or len(clocks_hz) < 2:
        raise InputError("need the all-in-edge latency at two or more clocks per DNN")
    slopes = np.asarray(all_in_edge_s, dtype=float) / n_layers
    lo, hi = slopes.min(), slopes.max()
    if hi <= lo:
        raise InputError("all-in-edge latencies do not change with the clock; cannot normalise")
    return (slopes - lo) / (hi - lo)


class ClockPowerLaw(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """``slope_norm = a·CS^b`` with CS in GHz (Luger Figure 4.1); X = clocks in Hz."""

    def fit(self, X: Sequence[float], y: Sequence[float]) -> ClockPowerLaw:
        cs = np.asarray(X, dtype=float).reshape(-1) / GHZ
        yn = np.asarray(y, dtype=float).reshape(-1)
        keep = (yn > 0) & (cs > 0)
        if keep.sum() < 2:
            raise InputError("the power law needs two or more points with a positive slope")
        b, log_a = np.polyfit(np.log(cs[keep]), np.log(yn[keep]), 1)
        self.a_ = float(np.exp(log_a))
        self.b_ = float(b)
        return self

    def predict(self, X: Sequence[float]) -> np.ndarray:
        if not hasattr(self, "a_"):
            raise NotFittedError("ClockPowerLaw is not fitted; call fit(clocks, normalised slopes)")
        cs = np.asarray(X, dtype=float).reshape(-1) / GHZ
        return np.asarray(self.a_ * cs**self.b_)


class LugerEdgeModel(BaseEstimator):  # type: ignore[misc]
    """Eq. 4.1–4.2 for one DNN: a fitted power law de-normalised by two measurements.

    ``fit(X, y)`` takes X = the lowest and highest clock (Hz) and y = the all-in-edge
    latencies (s) measured there; ``n_layers`` is the DNN's layer count.
    """

    def __init__(
        self, power_law: ClockPowerLaw | None = None, n_layers: int = 1, model: str = ""
    ) -> None:
        self.power_law = power_law
        self.n_layers = n_layers
        self.model = model

    def fit(self, X: Sequence[float], y: Sequence[float]) -> LugerEdgeModel:
        if self.power_law is None or not hasattr(self.power_law, "a_"):
            raise NotFittedError("LugerEdgeModel needs a fitted ClockPowerLaw as power_law")
        clocks = np.asarray(X, dtype=float)
        lat = np.asarray(y, dtype=float)
        if len(clocks) != 2 or len(lat) != 2:
            raise InputError("de-normalisation needs exactly two all-in-edge measurements")
        order = np.argsort(clocks)
        self.upper_slope_ = float(lat[order[0]] / self.n_layers)  # lowest clock
        self.lower_slope_ = float(lat[order[1]] / self.n_layers)  # highest clock
        self.clocks_hz_ = (float(clocks[order[0]]), float(clocks[order[1]]))
        return self

    def slope(self, clock_hz: float) -> float:
        """Seconds per layer on the edge at ``clock_hz`` (eq. 4.2)."""
        if not hasattr(self, "upper_slope_"):
            raise NotFittedError("LugerEdgeModel is not fitted; call fit(two clocks, latencies)")
        assert self.power_law is not None
        norm = float(self.power_law.predict([clock_hz])[0])
        return norm * (self.upper_slope_ - self.lower_slope_) + self.lower_slope_

    def predict(self, X: Sequence[Sequence[float]]) -> np.ndarray:
        """Rows of (clock Hz, split point) -> edge seconds (eq. 4.1)."""
        return np.array([self.slope(cs) * sp for cs, sp in np.asarray(X, dtype=float)])

    def node_seconds(self, clock_hz: float) -> np.ndarray:
        return np.full(self.n_layers, self.slope(clock_hz))

    def predict_graph(self, graph: Graph) -> np.ndarray:
        """Per-node edge seconds at the highest fitted clock (the predictor-file contract;
        a planner asks :meth:`node_seconds` at the clock it observes instead)."""
        if len(graph.nodes) != self.n_layers:
            raise InputError(
                f"edge model {self.model!r} has {self.n_layers} layers; graph "
                f"{graph.name!r} has {len(graph.nodes)}: fit it on this model"
            )
        return self.node_seconds(self.clocks_hz_[1])

    def to_dict(self) -> dict[str, Any]:
        if self.power_law is None or not hasattr(self, "upper_slope_"):
            raise NotFittedError("LugerEdgeModel is not fitted; nothing to save")
        return {
            "type": "luger_edge",
            "model": self.model,
            "a": self.power_law.a_,
            "b": self.power_law.b_,
            "n_layers": self.n_layers,
            "upper_slope": self.upper_slope_,
            "lower_slope": self.lower_slope_,
            "clocks_hz": list(self.clocks_hz_),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> LugerEdgeModel:
        """Inverse of :meth:`to_dict` (KeyError/TypeError/ValueError on a bad document)."""
        law = ClockPowerLaw()
        law.a_, law.b_ = float(doc["a"]), float(doc["b"])
        n = int(doc["n_layers"])
        if n < 1:
            raise ValueError(f"n_layers is {n}")
        edge = cls(power_law=law, n_layers=n, model=str(doc.get("model") or ""))
        edge.upper_slope_ = float(doc["upper_slope"])
        edge.lower_slope_ = float(doc["lower_slope"])
        low, high = (float(v) for v in doc["clocks_hz"])
        edge.clocks_hz_ = (low, high)
        return edge


def fit_edge_models(
    runs: Mapping[str, tuple[Sequence[float], Sequence[float], int]],
) -> tuple[ClockPowerLaw, dict[str, LugerEdgeModel]]:
    """Luger §4.1 from all-in-edge runs: ``runs[dnn] = (clocks Hz, latencies s, layers)``.

    Every DNN's slopes are normalised over its own clocks and pooled into one power law
    (Figure 4.1); each DNN's model is then de-normalised with its lowest- and
    highest-clock latency (eq. 4.2). O(total runs).
    """
    xs: list[float] = []
    ys: list[float] = []
    for clocks, lat, n in runs.values():
        xs += [float(c) for c in clocks]
        ys += [float(v) for v in normalised_slopes(clocks, lat, n)]
    law = ClockPowerLaw().fit(xs, ys)
    models = {}
    for name, (clocks, lat, n) in runs.items():
        lo, hi = int(np.argmin(clocks)), int(np.argmax(clocks))
        models[name] = LugerEdgeModel(power_law=law, n_layers=n, model=name).fit(
            [clocks[lo], clocks[hi]], [lat[lo], lat[hi]]
        )
    return law, models


class LugerCloudModel(BaseEstimator):  # type: ignore[misc]
    """Linear cloud model: ``cloud(SP) = T·(1 − SP/n)`` from one all-in-cloud time T."""

    def __init__(self, n_layers: int = 1) -> None:
        self.n_layers = n_layers

    def fit(self, X: Any = None, y: Sequence[float] | float = 0.0) -> LugerCloudModel:
        t = float(np.asarray(y, dtype=float).reshape(-1)[0])
        if t < 0:
            raise InputError("the all-in-cloud latency must be non-negative")
        self.all_in_cloud_s_ = t
        return self

    def predict(self, X: Sequence[float]) -> np.ndarray:
        """Split points -> cloud seconds."""
        if not hasattr(self, "all_in_cloud_s_"):
            raise NotFittedError("LugerCloudModel is not fitted; call fit(None, [all-in-cloud s])")
        sp = np.asarray(X, dtype=float).reshape(-1)
        return np.asarray(self.all_in_cloud_s_ * (1.0 - sp / self.n_layers))

    def node_seconds(self) -> np.ndarray:
        return np.full(self.n_layers, self.all_in_cloud_s_ / self.n_layers)


def load_edge_model(path: str | Path) -> LugerEdgeModel:
    """Read a saved ``luger_edge`` predictor (``--edge-model FILE``); one-line InputError."""
    from edgesplit.predict.store import load_predictor

    model = load_predictor(path)
    if not isinstance(model, LugerEdgeModel):
        kind = model.to_dict().get("type")
        raise InputError(
            f"--edge-model {str(path)!r} is a {kind!r} predictor; give a luger_edge model "
            "(`edgesplit reproduce luger2023` writes clock_model_<model>.json)"
        )
    return model
