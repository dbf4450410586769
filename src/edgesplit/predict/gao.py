"""Gao et al. (2019) §II-B: layer-wise delay prediction by polynomial fitting (eq. 1-2).

The paper picks, per layer type, the factors that drive the delay and fits a polynomial in
them by least squares, then reports R² and the mean absolute error on a held-out 20 %. For
convolution it finds (eq. 1 for the mobile device, eq. 2 for the server, milliseconds)::

    T = a · G²K²OI + b · G²K²I + c · G²O

with ``K`` the kernel side, ``I`` input channels, ``O`` output channels and ``G`` the side of
the output feature map. :class:`GaoDelayModel` fits exactly these three terms for ``conv``
nodes (``/groups`` on the first term for grouped convolutions). The paper gives no formula
for the other layer types, so we use the same recipe with their natural factors, plus a
constant per-call overhead (measured layers on a CPU framework never take 0 s):

* ``linear``: ``in·out``, ``out``, ``in``, 1
* ``pool``: ``output elements · window``, ``input elements``, 1
* every other kind: ``input elements``, ``output elements``, 1

Coefficients are fitted by non-negative least squares (``scipy.optimize.nnls``, on columns
scaled to unit norm) so that no layer is ever predicted to take negative time; a kind seen
in ``predict`` but not in ``fit`` falls back to the ``other`` polynomial. Fitting is
O(n · p²) for n layers and p ≤ 4 terms. Follows the scikit-learn estimator contract:
``__init__`` only stores, ``fit`` returns ``self``, learned state ends in ``_``.

**How the delays are timed.** Every measured delay that a fit sees, on every path
(``multidevice fit-delay``, the ``profile`` and ``gao`` sources of ``multidevice
solve/run/freeze``, ``reproduce gao2019``), comes from the one profiler
:func:`edgesplit.predict.profile.profile_graph`: wall clock (``time.perf_counter``) around
each layer run as its own part, median of ``repeats`` after warm-up passes, on
``PROFILE_THREADS`` = 1 torch intra-op thread (the count each device process of
``multidevice run`` executes on). No path times with thread or process CPU time: with more
than one torch thread the caller's spin-wait was charged to the layer (alexnet 104 ms per
layer sum at 2 threads against 31 ms at 1; held-out R² 0.39 against 0.95).

**Saved and built-in models.** A fitted model saves as predictor type ``gao``
(:meth:`GaoDelayModel.to_dict`, read back by :func:`edgesplit.predict.store.load_predictor`;
``multidevice fit-delay -o``). :meth:`GaoDelayModel.paper` is the paper's own set: eq. 1
(Orange Pi, ``local``) or eq. 2 (i5 server, ``server``), converted from milliseconds to
seconds. The paper publishes coefficients for convolution only, so the built-in set
predicts 0 s for every other layer; ``multidevice solve --delay-model paper|FILE`` uses
either for the instance's ``gao`` sources (:func:`delay_models`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import nnls

from edgesplit.errors import InputError, NotFittedError
from edgesplit.graph.types import Graph, Node

#: Eq. 1 and eq. 2 of the paper (conv layers, result in milliseconds): coefficients of
#: G²K²OI, G²K²I and G²O for the Orange Pi (local) and the i5 server.
PAPER_CONV_LOCAL_MS = (0.3e-5, 2.6e-5, 4.8e-5)
PAPER_CONV_SERVER_MS = (3e-7, 7.4e-7, 25.8e-7)
#: The paper's held-out quality of the conv model (§II-B): R² 99.58 %, MAE 2.78 ms.
PAPER_FIT = {"r2": 0.9958, "mae_s": 2.78e-3}
#: Number of polynomial terms of each family (see the module docstring).
FAMILY_TERMS = {"conv": 3, "linear": 4, "pool": 3, "other": 3}


def _numel(shape: Sequence[int]) -> float:
    return float(math.prod(shape)) if shape else 1.0


def _pair(value: Any) -> float:
    if isinstance(value, list | tuple):
        return float(math.prod(value))
    return float(value) ** 2 if value is not None else 1.0


def features(node: Node) -> tuple[str, np.ndarray]:
    """The polynomial family and the factor vector of one layer (see module docstring)."""
    kind = node.kind
    out = _numel(node.output_shape)
    inp = sum(_numel(s) for s in node.input_shapes) or 1.0
    a = node.attrs
    if kind == "conv" and "out_channels" in a:
        g2 = _numel(node.output_shape[2:])  # G² = output height x width
        k2 = _pair(a.get("kernel_size", 1))
        i, o, groups = float(a["in_channels"]), float(a["out_channels"]), float(a.get("groups", 1))
        return "conv", np.array([g2 * k2 * o * i / groups, g2 * k2 * i, g2 * o])
    if kind == "linear" and "in_features" in a:
        fi, fo = float(a["in_features"]), float(a["out_features"])
        return "linear", np.array([fi * fo, fo, fi, 1.0])
    if kind == "pool":
        return "pool", np.array([out * _pair(a.get("kernel_size", 1)), inp, 1.0])
    return "other", np.array([inp, out, 1.0])


class GaoDelayModel:
    """Per-layer-type polynomial delay model of Gao et al. eq. 1-2, fitted by NNLS.

    >>> from edgesplit.models import build
    >>> from edgesplit.graph import trace
    >>> g = trace(*build("lenet"), name="lenet")
    >>> m = GaoDelayModel().fit(g.nodes, [n.flops * 1e-9 + 1e-5 for n in g.nodes])
    >>> bool(m.predict(g.nodes).min() >= 0)
    True
    """

    def __init__(self, *, nonnegative: bool = True) -> None:
        self.nonnegative = nonnegative

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"nonnegative": self.nonnegative}

    def set_params(self, **params: Any) -> GaoDelayModel:
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def fit(self, X: Sequence[Node], y: Sequence[float]) -> GaoDelayModel:
        """Fit one polynomial per layer family from nodes ``X`` and delays ``y`` (seconds)."""
        if len(X) != len(y):
            raise InputError(f"fit got {len(X)} layers but {len(y)} delays; give one per layer")
        if len(X) == 0:
            raise InputError("fit needs at least one measured layer")
        groups: dict[str, tuple[list[np.ndarray], list[float]]] = {}
        for node, t in zip(X, y):
            fam, f = features(node)
            groups.setdefault(fam, ([], []))
            groups[fam][0].append(f)
            groups[fam][1].append(float(t))
        self.coef_: dict[str, np.ndarray] = {}
        for fam, (rows, ts) in groups.items():
            a = np.vstack(rows)
            scale = np.linalg.norm(a, axis=0)
            scale[scale == 0] = 1.0
            b = np.asarray(ts)
            if self.nonnegative:
                coef, _ = nnls(a / scale, b)
            else:
                coef = np.linalg.lstsq(a / scale, b, rcond=None)[0]
            self.coef_[fam] = coef / scale
        if "other" not in self.coef_:
            # Unknown kinds at predict time: a constant equal to the mean measured delay.
            self.coef_["other"] = np.array([0.0, 0.0, float(np.mean(y))])
        self.n_samples_ = len(X)
        return self

    def predict(self, X: Sequence[Node]) -> np.ndarray:
        """Predicted delay of every node in ``X`` (seconds)."""
        if not hasattr(self, "coef_"):
            raise NotFittedError("GaoDelayModel is not fitted; call fit(nodes, seconds) first")
        out = []
        for node in X:
            fam, f = features(node)
            if fam not in self.coef_:
                fam, f = "other", features_other(node)
            out.append(float(self.coef_[fam] @ f))
        return np.maximum(np.asarray(out), 0.0)

    def score(self, X: Sequence[Node], y: Sequence[float]) -> float:
        """Coefficient of determination R² on ``(X, y)``."""
        return r2(np.asarray(y, dtype=float), self.predict(X))

    def predict_graph(self, graph: Graph) -> np.ndarray:
        """Per-node seconds of ``graph`` (the planner predictor protocol of predict/store.py)."""
        return self.predict(graph.nodes)

    def to_dict(self) -> dict[str, Any]:
        """The fitted state as predictor type ``gao`` (JSON; never pickle)."""
        if not hasattr(self, "coef_"):
            raise NotFittedError("GaoDelayModel is not fitted; call fit(nodes, seconds) first")
        return {
            "type": "gao",
            "params": self.get_params(),
            "coefficients": {k: [float(c) for c in v] for k, v in self.coef_.items()},
            "n_samples": self.n_samples_,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> GaoDelayModel:
        """Read back :meth:`to_dict`; ValueError naming the family whose terms are wrong."""
        model = cls(**doc.get("params", {}))
        coef = doc.get("coefficients")
        if not isinstance(coef, dict) or "other" not in coef:
            raise ValueError("field 'coefficients' must map families to terms, 'other' included")
        model.coef_ = {}
        for fam, terms in coef.items():
            if fam not in FAMILY_TERMS or len(terms) != FAMILY_TERMS[fam]:
                raise ValueError(
                    f"coefficients.{fam} must be one of {sorted(FAMILY_TERMS)} with "
                    f"{FAMILY_TERMS.get(fam, '?')} terms"
                )
            model.coef_[fam] = np.asarray(terms, dtype=float)
        model.n_samples_ = int(doc.get("n_samples") or 0)
        return model

    @classmethod
    def paper(cls, side: str) -> GaoDelayModel:
        """The paper's eq. 1 (``local``: Orange Pi) or eq. 2 (``server``: i5), in seconds.

        Convolution only, as published; every other family predicts 0 s.
        """
        if side not in ("local", "server"):
            raise InputError(f"side must be local or server, not {side!r}")
        conv = PAPER_CONV_LOCAL_MS if side == "local" else PAPER_CONV_SERVER_MS
        model = cls()
        model.coef_ = {fam: np.zeros(n) for fam, n in FAMILY_TERMS.items()}
        model.coef_["conv"] = np.asarray(conv) * 1e-3
        model.n_samples_ = 0
        return model


def features_other(node: Node) -> np.ndarray:
    inp = sum(_numel(s) for s in node.input_shapes) or 1.0
    return np.array([inp, _numel(node.output_shape), 1.0])


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")


@dataclass(frozen=True)
class FitReport:
    """Held-out quality of one fit, as the paper reports it (R², mean absolute error)."""

    model: GaoDelayModel
    r2: float
    mae_s: float
    n_train: int
    n_test: int
    r2_conv: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "r2": self.r2,
            "mae_s": self.mae_s,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "r2_conv": self.r2_conv,
            "coefficients": {k: v.tolist() for k, v in self.model.coef_.items()},
        }


def fit_with_holdout(
    nodes: Sequence[Node], seconds: Sequence[float], *, test_size: float = 0.2, seed: int = 0
) -> FitReport:
    """Fit on a random (1 - test_size) share and report R² and MAE on the rest (§II-B).

    The returned model is then refitted on all samples, as one would deploy it.
    """
    if not 0 < test_size < 1:
        raise InputError(f"test_size must be in (0, 1), not {test_size}")
    n = len(nodes)
    if n < 5:
        raise InputError(f"need at least 5 measured layers to hold out a test set, got {n}")
    idx = list(range(n))
    random.Random(seed).shuffle(idx)
    n_test = max(1, round(n * test_size))
    test, train = idx[:n_test], idx[n_test:]
    model = GaoDelayModel().fit([nodes[i] for i in train], [seconds[i] for i in train])
    y = np.asarray([seconds[i] for i in test], dtype=float)
    pred = model.predict([nodes[i] for i in test])
    conv = [k for k, i in enumerate(test) if features(nodes[i])[0] == "conv"]
    r2_conv = r2(y[conv], pred[conv]) if len(conv) >= 2 else None
    final = GaoDelayModel().fit(nodes, seconds)
    return FitReport(
        model=final,
        r2=r2(y, pred),
        mae_s=float(np.mean(np.abs(y - pred))),
        n_train=len(train),
        n_test=len(test),
        r2_conv=r2_conv,
    )


def sample_layers(
    n_blocks: int = 40, *, threads: int, seed: int = 0, repeats: int = 5
) -> tuple[list[Node], list[float]]:
    """Measure randomly sized conv/relu/pool/linear blocks on this host (variable control, §II-B).

    Each block is a small ``nn.Sequential`` traced and timed by the one profiler
    (:func:`edgesplit.predict.profile.profile_graph`: wall clock on ``threads`` torch
    threads); returns its nodes and median seconds. O(n_blocks · repeats · block forward).
    """
    import torch
    from torch import nn

    from edgesplit.graph import trace
    from edgesplit.predict.profile import profile_graph

    rng = random.Random(seed)
    nodes: list[Node] = []
    secs: list[float] = []
    for b in range(n_blocks):
        cin, cout = rng.choice([3, 16, 32, 64, 128]), rng.choice([16, 32, 64, 128, 192])
        side, k = rng.choice([13, 27, 32, 56]), rng.choice([1, 3, 5])
        feat = rng.choice([256, 1024, 2048])
        block = nn.Sequential(
            nn.Conv2d(cin, cout, k, padding=k // 2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(cout * 16, feat),
        ).eval()
        x = torch.randn(1, cin, side, side)
        g = trace(block, x, name=f"block{b}")
        nodes.extend(g.nodes)
        prof = profile_graph(g, x, threads=threads, repeats=repeats, warmup=1)
        secs.extend(prof.seconds(g))
    return nodes, secs


def delay_models(value: str) -> tuple[dict[str, GaoDelayModel], str]:
    """The ``--delay-model`` of ``multidevice solve``: models per side and a description.

    ``paper`` is the built-in eq. 1 (local) / eq. 2 (server) set; anything else is a
    predictor file of type ``gao`` (``multidevice fit-delay -o FILE``), used for both sides
    (each side's ``factor`` still applies, as for a fit made on the spot).
    """
    if value == "paper":
        sides = {side: GaoDelayModel.paper(side) for side in ("local", "server")}
        return sides, "paper eq. 1 (local) and eq. 2 (server), conv layers only"
    from edgesplit.predict.store import load_predictor

    model = load_predictor(value)
    if not isinstance(model, GaoDelayModel):
        raise InputError(
            f"--delay-model {value!r} is a {type(model).__name__} predictor, not a Gao one; "
            "give 'paper' or a file written by `edgesplit multidevice fit-delay -o FILE`"
        )
    return {"local": model, "server": model}, f"predictor file {value}"
