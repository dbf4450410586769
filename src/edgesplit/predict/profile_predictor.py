"""The profile predictor: measured per-node medians, scaled to another device.

A node's predicted seconds are its profiled median divided by ``speed_factor`` and, when
both clocks are known, multiplied by ``reference_clock / clock`` (the clock the profile was
measured at over the target clock; compute-bound layers scale about this way on one
micro-architecture). With ``calibrate=True`` the medians are first rescaled by the
profile's end-to-end median over their sum (1 / fidelity): nodes run one by one do not add
up exactly to the whole model run (call overhead, caches), and the rescaling removes that
bias, much as Luger de-normalises with an all-in-edge measurement. A two-tier prediction
is then a sum of (scaled) medians over each side.
Follows the scikit-learn contract; O(n).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from edgesplit.errors import InputError, NotFittedError
from edgesplit.graph.types import Graph, Node
from edgesplit.predict.profile import Profile


class ProfilePredictor(BaseEstimator):  # type: ignore[misc]
    """``fit(profile)`` stores medians by node name; ``predict(nodes)`` scales them."""

    def __init__(
        self,
        speed_factor: float = 1.0,
        reference_clock: float | None = None,
        clock: float | None = None,
        calibrate: bool = False,
    ) -> None:
        self.speed_factor = speed_factor
        self.reference_clock = reference_clock
        self.clock = clock
        self.calibrate = calibrate

    @property
    def scale(self) -> float:
        if self.speed_factor <= 0:
            raise InputError(f"speed_factor must be positive, not {self.speed_factor}")
        s = 1.0 / self.speed_factor
        if self.reference_clock and self.clock:
            s *= self.reference_clock / self.clock
        return s

    def fit(self, X: Profile, y: Any = None) -> ProfilePredictor:
        factor = 1.0 / X.fidelity if self.calibrate and X.sum_of_medians_s > 0 else 1.0
        self.seconds_ = {k: v * factor for k, v in X.node_seconds().items()}
        self.model_ = X.model
        return self

    def predict(self, X: Sequence[Node]) -> np.ndarray:
        if not hasattr(self, "seconds_"):
            raise NotFittedError("ProfilePredictor is not fitted; call fit(profile)")
        missing = [n.name for n in X if n.name not in self.seconds_]
        if missing:
            raise InputError(
                f"profile of {self.model_!r} has no node {missing[0]!r}; profile this model"
            )
        return np.array([self.seconds_[n.name] for n in X]) * self.scale

    def predict_graph(self, graph: Graph) -> np.ndarray:
        return self.predict(list(graph.nodes))

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "profile",
            "params": self.get_params(),
            "model": self.model_,
            "seconds": self.seconds_,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ProfilePredictor:
        est = cls(**doc.get("params", {}))
        est.seconds_ = {k: float(v) for k, v in doc["seconds"].items()}
        est.model_ = doc.get("model", "?")
        return est
