"""Saving and loading fitted predictors as versioned JSON (never pickle).

A predictor file is ``{"format": "edgesplit.predictor", "version": 1, "type": ...}`` plus
the estimator's own ``to_dict()``; ``load_predictor`` dispatches on ``type``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgesplit.errors import InputError
from edgesplit.graph.types import Graph
from edgesplit.io import read_mapping, validate, write_json

PREDICTOR_VERSION = 1


class GraphPredictor(Protocol):
    def predict_graph(self, graph: Graph) -> np.ndarray: ...

    def to_dict(self) -> dict[str, Any]: ...


def _classes() -> dict[str, Any]:
    from edgesplit.predict.clock import LugerEdgeModel
    from edgesplit.predict.coefficients import PreDNNOffModel
    from edgesplit.predict.gao import GaoDelayModel
    from edgesplit.predict.layer_regression import LayerTypeRegressor
    from edgesplit.predict.profile_predictor import ProfilePredictor

    return {
        "gao": GaoDelayModel,
        "layer_regression": LayerTypeRegressor,
        "luger_edge": LugerEdgeModel,
        "prednnoff": PreDNNOffModel,
        "profile": ProfilePredictor,
    }


def save_predictor(predictor: GraphPredictor, path: str | Path, **extra: Any) -> Path:
    doc = {"format": "edgesplit.predictor", "version": PREDICTOR_VERSION, **predictor.to_dict()}
    doc.update(extra)
    return write_json(path, doc)


class PredictorFile(BaseModel):
    """The envelope of a predictor file; the estimator's ``from_dict`` reads the rest."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["edgesplit.predictor"]
    version: Literal[1] = Field(description="re-fit with `edgesplit fit-predictor` if older")
    type: Literal["gao", "layer_regression", "luger_edge", "prednnoff", "profile"]
    params: dict[str, Any] = Field(default_factory=dict)
    models: dict[str, dict[str, Any]] | None = None
    fallback: dict[str, Any] | None = None
    n_samples: int | None = None
    model: str | None = None
    seconds: dict[str, float] | None = None
    holdout: Any = None
    profiles: list[str] | None = None
    coefficients: dict[str, list[float]] | None = None  # gao: terms per layer family
    # luger_edge (Luger eq. 4.1-4.2): power law a·CS^b, layers, slopes at the two clocks
    a: float | None = None
    b: float | None = None
    n_layers: int | None = None
    upper_slope: float | None = None
    lower_slope: float | None = None
    clocks_hz: list[float] | None = None


def load_predictor(path: str | Path) -> GraphPredictor:
    """Read a predictor file; one-line InputError naming the file and the field if bad."""
    where = f"predictor file {str(path)!r}"
    doc = read_mapping(
        path, what="predictor file", schema="predictor", make="edgesplit fit-predictor"
    )
    if doc.get("format") != "edgesplit.predictor":
        raise InputError(f"{where} is not an edgesplit predictor (field 'format')")
    if doc.get("version") != PREDICTOR_VERSION:
        raise InputError(f"{where} has version {doc.get('version')!r}; re-fit it")
    validate(doc, PredictorFile, path, what="predictor file", schema="predictor")
    try:
        predictor: GraphPredictor = _classes()[doc["type"]].from_dict(doc)
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{where} is malformed ({err}); re-fit it") from None
    return predictor
