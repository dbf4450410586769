"""Saving and loading fitted predictors as versioned JSON (never pickle).

A predictor file is ``{"format": "edgesplit.predictor", "version": 1, "type": ...}`` plus
the estimator's own ``to_dict()``; ``load_predictor`` dispatches on ``type``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgesplit.errors import InputError
from edgesplit.graph.types import Graph
from edgesplit.io import write_json

PREDICTOR_VERSION = 1


class GraphPredictor(Protocol):
    def predict_graph(self, graph: Graph) -> np.ndarray: ...

    def to_dict(self) -> dict[str, Any]: ...


def _classes() -> dict[str, Any]:
    from edgesplit.predict.coefficients import PreDNNOffModel
    from edgesplit.predict.layer_regression import LayerTypeRegressor
    from edgesplit.predict.profile_predictor import ProfilePredictor

    return {
        "layer_regression": LayerTypeRegressor,
        "prednnoff": PreDNNOffModel,
        "profile": ProfilePredictor,
    }


def save_predictor(predictor: GraphPredictor, path: str | Path, **extra: Any) -> Path:
    doc = {"format": "edgesplit.predictor", "version": PREDICTOR_VERSION, **predictor.to_dict()}
    doc.update(extra)
    return write_json(path, doc)


def load_predictor(path: str | Path) -> GraphPredictor:
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"predictor file {str(path)!r} does not exist; create it with `edgesplit fit-predictor`"
        )
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"predictor file {str(path)!r} is not valid JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != "edgesplit.predictor":
        raise InputError(f"{str(path)!r} is not an edgesplit predictor (field 'format')")
    if doc.get("version") != PREDICTOR_VERSION:
        raise InputError(f"predictor {str(path)!r} has version {doc.get('version')!r}; re-fit it")
    classes = _classes()
    kind = doc.get("type")
    if kind not in classes:
        raise InputError(
            f"predictor {str(path)!r} has unknown type {kind!r}; one of {', '.join(classes)}"
        )
    try:
        predictor: GraphPredictor = classes[kind].from_dict(doc)
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"predictor {str(path)!r} is malformed ({err}); re-fit it") from None
    return predictor
