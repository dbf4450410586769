"""Training data from saved profiles, and held-out accuracy of latency predictors.

:func:`dataset_from_profiles` re-traces each profile's model (same name, input shape and
granularity) to get the nodes' features and pairs them with the measured medians.
:func:`holdout_report` fits on a random 80 % of the samples (stratified by kind) and
reports, on the other 20 %, R², mean absolute error and the share of predictions within
±10 % of the measurement, overall and per kind. O(fit + m).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgesplit.errors import InputError
from edgesplit.graph.types import Node


@dataclass(frozen=True)
class Dataset:
    nodes: tuple[Node, ...]
    seconds: np.ndarray
    model_of: tuple[str, ...]


def dataset_from_profiles(paths: Sequence[str | Path], trust_model_code: bool = False) -> Dataset:
    """(node, median seconds) pairs from every profile in ``paths``.

    A profile of a ``package.module:callable`` model is refused unless ``trust_model_code``.
    """
    from edgesplit.graph import trace
    from edgesplit.models import ModelRequest, build, check_trusted
    from edgesplit.models.loader import trace_request

    if not paths:
        raise InputError("give at least one profile (create one with `edgesplit profile`)")
    nodes: list[Node] = []
    secs: list[float] = []
    owner: list[str] = []
    from edgesplit.predict.profile import load_profile

    for path in paths:
        prof = load_profile(path)
        where = f"profile {str(path)!r}"
        if prof.model_options:
            request = ModelRequest.from_record(
                prof.model, prof.model_options, where, trust_model_code
            )
            graph, _, _ = trace_request(request, prof.granularity)
        else:
            check_trusted(prof.model, where, trust_model_code)
            module, x = build(prof.model, tuple(prof.input_shape))
            graph = trace(module, x, name=prof.model, granularity=prof.granularity)  # type: ignore[arg-type]
        secs.extend(prof.seconds(graph, source=f"profile {str(path)!r}"))
        nodes.extend(graph.nodes)
        owner.extend([prof.model] * len(graph.nodes))
    return Dataset(tuple(nodes), np.array(secs), tuple(owner))


def metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """R², MAE (s) and share within ±10 % of ``y``."""
    resid = pred - y
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else float("nan")
    within = float(np.mean(np.abs(resid) <= 0.1 * np.abs(y))) if len(y) else float("nan")
    mape = float(np.median(np.abs(resid) / np.maximum(np.abs(y), 1e-12))) if len(y) else 0.0
    return {
        "n": float(len(y)),
        "r2": r2,
        "mae_s": float(np.mean(np.abs(resid))) if len(y) else float("nan"),
        "within_10pct": within,
        "median_rel_error": mape,
    }


def split_indices(
    kinds: Sequence[str], test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A stratified (by kind) random split; a kind with one sample stays in training."""
    rng = np.random.default_rng(seed)
    by_kind: dict[str, list[int]] = defaultdict(list)
    for i, k in enumerate(kinds):
        by_kind[k].append(i)
    test: list[int] = []
    for idx in by_kind.values():
        n_test = round(len(idx) * test_size) if len(idx) > 1 else 0
        test.extend(rng.permutation(idx)[:n_test].tolist())
    mask = np.zeros(len(kinds), dtype=bool)
    mask[test] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def holdout_report(
    make: Callable[[], Any], data: Dataset, *, test_size: float = 0.2, seed: int = 0
) -> dict[str, Any]:
    """Fit ``make()`` on 80 % of ``data`` and score it on the held-out 20 %."""
    kinds = [n.kind for n in data.nodes]
    train, test = split_indices(kinds, test_size, seed)
    est = make().fit([data.nodes[i] for i in train], data.seconds[train])
    pred = est.predict([data.nodes[i] for i in test])
    y = data.seconds[test]
    per_kind = {}
    for kind in sorted({kinds[i] for i in test}):
        sel = np.array([kinds[i] == kind for i in test])
        per_kind[kind] = metrics(pred[sel], y[sel])
    return {
        "train_samples": len(train),
        "test_samples": len(test),
        "overall": metrics(pred, y),
        "per_kind": per_kind,
    }
