"""A randomised-tree ensemble in log space, stored as plain arrays (JSON, never pickle).

DNNOff (Chen et al., cited by Pre-DNNOff §2) predicts layer latency with a random forest.
Here one ``ExtraTreesRegressor`` (Geurts et al. 2006) is fitted per layer kind on
log(1 + features) against log(seconds), so errors are relative and small layers count as
much as large ones; its trees are then copied into arrays so that a fitted predictor saves
as JSON and predicts without sklearn objects. Fitting O(T·m log m) for T trees and m
samples; prediction O(T·depth) per node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import ExtraTreesRegressor


@dataclass(frozen=True, eq=False)
class TreeArrays:
    """One regression tree: children (−1 at leaves), split feature/threshold, leaf value."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray

    def predict(self, x: np.ndarray) -> np.ndarray:
        node = np.zeros(len(x), dtype=np.int64)
        rows = np.arange(len(x))
        while True:
            inner = self.left[node] >= 0
            if not inner.any():
                return np.asarray(self.value[node])
            go_left = x[rows, self.feature[node]] <= self.threshold[node]
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)


@dataclass(frozen=True, eq=False)
class LogForest:
    """Mean of trees in log space; ``predict`` takes raw features, returns seconds."""

    trees: tuple[TreeArrays, ...]

    @classmethod
    def fit(
        cls, x: np.ndarray, seconds: np.ndarray, *, n_trees: int = 40, seed: int = 0
    ) -> LogForest:
        est = ExtraTreesRegressor(
            n_estimators=n_trees, min_samples_leaf=2, random_state=seed, n_jobs=1
        ).fit(np.log1p(np.maximum(x, 0.0)), np.log(np.maximum(seconds, 1e-9)))
        trees = []
        for t in est.estimators_:
            tr = t.tree_
            trees.append(
                TreeArrays(
                    left=tr.children_left.astype(np.int64),
                    right=tr.children_right.astype(np.int64),
                    feature=np.maximum(tr.feature, 0).astype(np.int64),
                    threshold=tr.threshold.astype(float),
                    value=tr.value.reshape(-1).astype(float),
                )
            )
        return cls(tuple(trees))

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = np.log1p(np.maximum(np.asarray(x, dtype=float), 0.0))
        return np.asarray(np.exp(np.mean([t.predict(z) for t in self.trees], axis=0)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "trees": [
                {
                    "left": t.left.tolist(),
                    "right": t.right.tolist(),
                    "feature": t.feature.tolist(),
                    "threshold": t.threshold.tolist(),
                    "value": t.value.tolist(),
                }
                for t in self.trees
            ]
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> LogForest:
        return cls(
            tuple(
                TreeArrays(
                    left=np.asarray(t["left"], dtype=np.int64),
                    right=np.asarray(t["right"], dtype=np.int64),
                    feature=np.asarray(t["feature"], dtype=np.int64),
                    threshold=np.asarray(t["threshold"], dtype=float),
                    value=np.asarray(t["value"], dtype=float),
                )
                for t in doc["trees"]
            )
        )
