"""Built-in coefficient sets: Pre-DNNOff Table 4.2 (edge server and mobile device).

Zuo et al. (Pre-DNNOff, §4.2, Table 4.2; after Li et al.) give one linear model per layer
type, with sizes in bytes and times in milliseconds, measured on a desktop (edge) and a
Raspberry Pi (mobile), plus model loading (both) and parsing (mobile only) times as linear
functions of the model size. They are transcribed verbatim below; features follow
:mod:`edgesplit.predict.features` (Table 4.1). Kinds the table has no model for (norm,
add, concat, flatten, softmax, other) predict 0 and are listed by :meth:`uncovered`.
Gao et al.'s polynomial conv model (eq. 1–2) is in :mod:`edgesplit.predict.gao`.

>>> PreDNNOffModel("edge").loading_seconds(1_000_000)
0.003512
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgesplit.errors import InputError
from edgesplit.graph.types import Graph, Node
from edgesplit.predict.features import TABLE_41, feature_matrix

# kind -> (intercept ms, coefficients ms per feature unit), Table 4.2.
PREDNNOFF_TABLE_42: dict[str, dict[str, tuple[float, tuple[float, ...]]]] = {
    "edge": {
        "conv": (1.89e-1, (6.03e-5, 1.24e-4)),
        "activation": (5.69e-2, (5.6e-6,)),
        "pool": (2.11e-1, (1.63e-5, 4.07e-6)),
        "lrn": (7.80e-2, (6.59e-5,)),
        "dropout": (4.64e-3, (5.23e-6,)),
        "linear": (1.64e-1, (1.07e-4, -1.83e-4)),
    },
    "mobile": {
        "conv": (-9.909, (6.13e-3, 2.67e-2)),
        "activation": (4.88e-1, (1.5e-5,)),
        "pool": (1.657, (1.33e-4, 3.31e-5)),
        "lrn": (5.89e-1, (5.19e-4,)),
        "dropout": (5.25e-2, (6.59e-5,)),
        "linear": (1.169, (9.18e-4, 3.99e-3)),
    },
}
# (intercept ms, ms per byte of model) for model loading and parsing.
PREDNNOFF_LOADING = {"edge": (2.182, 1.33e-6), "mobile": (82.136, 4.49e-6)}
PREDNNOFF_PARSING = {"mobile": (4.253, 3.48e-6)}


class PreDNNOffModel:
    """Fixed Table 4.2 predictor for ``device`` "edge" or "mobile" (seconds out).

    Nothing is learned, so ``fit`` only checks its arguments and returns self; predictions
    are clipped at 0 (the mobile conv model has a negative intercept).
    """

    def __init__(self, device: str = "edge") -> None:
        self.device = device

    def _table(self) -> dict[str, tuple[float, tuple[float, ...]]]:
        if self.device not in PREDNNOFF_TABLE_42:
            raise InputError(f"Pre-DNNOff device must be edge or mobile, not {self.device!r}")
        return PREDNNOFF_TABLE_42[self.device]

    def fit(self, X: Sequence[Node] | None = None, y: Any = None) -> PreDNNOffModel:
        self._table()
        return self

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"device": self.device}

    def predict(self, X: Sequence[Node]) -> np.ndarray:
        table = self._table()
        out = np.zeros(len(X))
        for i, node in enumerate(X):
            if node.kind in table:
                b, c = table[node.kind]
                x = feature_matrix([node], TABLE_41[node.kind])[0]
                out[i] = max(0.0, b + float(np.dot(c, x))) / 1000.0
        return out

    def predict_graph(self, graph: Graph) -> np.ndarray:
        return self.predict(list(graph.nodes))

    def uncovered(self, graph: Graph) -> list[str]:
        """Names of nodes whose kind Table 4.2 has no model for (predicted as 0)."""
        table = self._table()
        return [n.name for n in graph.nodes if n.kind not in table]

    def loading_seconds(self, model_bytes: float) -> float:
        """Model loading time (Table 4.2, "Model Loading") for a model of this size."""
        b, c = PREDNNOFF_LOADING[self.device]
        return (b + c * model_bytes) / 1000.0

    def parsing_seconds(self, model_bytes: float) -> float:
        """Parsing time of the final data (Table 4.2 gives it for the mobile device only)."""
        if self.device not in PREDNNOFF_PARSING:
            raise InputError("Pre-DNNOff Table 4.2 gives parsing time only for device 'mobile'")
        b, c = PREDNNOFF_PARSING[self.device]
        return (b + c * model_bytes) / 1000.0

    def to_dict(self) -> dict[str, Any]:
        return {"type": "prednnoff", "params": {"device": self.device}}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> PreDNNOffModel:
        return cls(**doc.get("params", {}))
