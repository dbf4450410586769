"""The five paper reproductions: one registry and the output contract they share.

Registry. :data:`REPRODUCTIONS` lists every reproduction once: its ``edgesplit reproduce``
name, the paper it reproduces (citation), a one-line description, the module whose
``reproduce(...)`` runs it (imported only when it runs, so ``edgesplit reproduce --list``
stays fast) and the wall-clock budget of its ``--quick`` run (issue 15: 3 minutes on 2 cores).

Output contract. Every run writes, under its ``--out`` folder (default
``results/<name>``):

* ``results.json``: one JSON document holding at least ``reproduction`` (the registry
  name), ``citation`` (the paper), ``quick`` (bool), ``load_average``
  (``{"start": [1, 5, 15 min], "end": [...]}``, :class:`LoadAverage`) and ``figures``
  (the PNG paths written), beside each reproduction's own named fields (see each
  module's docstring);
* ``comparison.md``: paper against ours, one row per published figure or table entry,
  with the reason for each difference;
* its PNG figures.

:func:`finish` writes the first two the same way for all five. A ratio that is undefined
(a zero denominator), or any non-finite float, is ``null`` in JSON (:func:`json_safe`;
``NaN``/``Infinity`` are not JSON) and ``n/a`` in markdown (:func:`fmt_ratio`).
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgesplit.io import json_safe, write_atomic, write_json


@dataclass(frozen=True)
class Reproduction:
    """One registered reproduction (``edgesplit reproduce NAME``)."""

    name: str
    citation: str
    reproduces: str
    module: str
    quick_budget_s: float

    def function(self) -> Callable[..., dict[str, Any]]:
        """The module's ``reproduce(...)``, imported on first use."""
        fn: Callable[..., dict[str, Any]] = importlib.import_module(self.module).reproduce
        return fn


REPRODUCTIONS: dict[str, Reproduction] = {
    r.name: r
    for r in (
        Reproduction(
            "luger2023",
            "Luger, D. (2023). Cost-Aware Neural Network Splitting and Dynamic Rescheduling "
            "for Edge Intelligence (diploma thesis, TU Wien), ch. 7",
            "Table 7.1 (OC/OL/CL cost and latency), §7.1 split ranking, Figs. 4.1-7.9, "
            "run for real on a Pi-class edge",
            "edgesplit.experiments.luger2023",
            180.0,
        ),
        Reproduction(
            "gao2019",
            "Gao, M. et al. (2019). Deep Neural Network Task Partitioning and Offloading for "
            "Mobile Edge Computing",
            "Figs. 1-5 (MILP eq. 10-16 vs server-only and local-only), eq. 1-2 delay fit R²",
            "edgesplit.experiments.gao2019",
            180.0,
        ),
        Reproduction(
            "zuo2024",
            "Zuo, L. (2024). Pre-DNNOff: On-Demand DNN Model Offloading Method for Mobile "
            "Edge Computing, §5",
            "§5.2 Pre-DNNOff (exact, GA) vs Edgent, Fig. 5.2 GA curve, like-for-like setups",
            "edgesplit.experiments.zuo2024",
            180.0,
        ),
        Reproduction(
            "tuli2021",
            "Tuli, S. (2021). SplitPlace: Efficient Splitting and Placement of Deep Neural "
            "Networks on Mobile Edge Environments",
            "Table 1 (every policy), Fig. 4 single-application workloads, MAB curves",
            "edgesplit.experiments.tuli2021",
            180.0,
        ),
        Reproduction(
            "samadi",
            "Samadi, N. & Mohammadi, M. J. DNN Model Placement for Edge Intelligence (after "
            "Tarnawski et al. 2020)",
            "latency vs processors and bandwidth: chain, mincut, MILP, relax, heuristic; "
            "layer and op graphs",
            "edgesplit.experiments.samadi",
            180.0,
        ),
    )
}


def get(name: str) -> Reproduction:
    """The reproduction called ``name``; an input error naming the valid ones otherwise."""
    from edgesplit.errors import InputError

    if name not in REPRODUCTIONS:
        raise InputError(
            f"unknown reproduction {name!r}; choose one of: {', '.join(REPRODUCTIONS)} "
            "(`edgesplit reproduce --list`)"
        )
    return REPRODUCTIONS[name]


def listing() -> list[dict[str, Any]]:
    """The registry as plain rows (``edgesplit reproduce --list --json``)."""
    return [
        {
            "name": r.name,
            "citation": r.citation,
            "reproduces": r.reproduces,
            "quick_budget_s": r.quick_budget_s,
            "default_out": f"results/{r.name}",
        }
        for r in REPRODUCTIONS.values()
    ]


class LoadAverage:
    """The 1/5/15-minute load average at the start of a run and, on :meth:`doc`, its end."""

    def __init__(self) -> None:
        self.start = list(os.getloadavg())

    def doc(self) -> dict[str, list[float]]:
        return {"start": self.start, "end": list(os.getloadavg())}


def fmt_ratio(value: float | None, spec: str = ".2f") -> str:
    """A ratio for markdown: ``n/a`` where it is undefined (None or not finite)."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return format(value, spec)


def finish(
    name: str,
    out: Path,
    doc: dict[str, Any],
    *,
    quick: bool,
    load: LoadAverage,
    figures: list[Path],
    comparison: str,
) -> dict[str, Any]:
    """Complete ``doc`` with the shared fields, write ``comparison.md`` and
    ``results.json`` (whole or not at all) and return exactly what was written."""
    shared = {
        "reproduction": name,
        "citation": REPRODUCTIONS[name].citation,
        "quick": quick,
        "load_average": load.doc(),
        "figures": [str(p) for p in figures],
    }
    safe = json_safe({**shared, **{k: v for k, v in doc.items() if k not in shared}})
    write_atomic(out / "comparison.md", comparison)
    write_json(out / "results.json", safe)
    return safe  # type: ignore[no-any-return]
