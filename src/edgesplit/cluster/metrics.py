"""QoS metrics of Tuli 2021 (Table 1, eq. 3-4 and 8), per interval and per application.

Normalisations (the paper states none; ours, used by eq. 8 and by the DASO surrogate):

- AEC_t = mean host energy in interval t / (max host power x interval length), in [0, 1];
- ART_t = mean response time of the tasks leaving in t, in intervals, / ``sla_max``
  (the longest deadline), clipped to [0, 1];
- O^MAB_t = mean of the defined O^{c,d} of eq. 3-4 over the tasks leaving in t;
- O^P_t = O^MAB_t - alpha AEC_t - beta ART_t (eq. 8, alpha = beta = 0.5); intervals where
  no task leaves have no O^P and are skipped in averages.

:func:`summarize` reports both ``reward_eq8`` = 100 x mean O^P and ``reward_omab`` =
100 x mean O^MAB (the paper's "Avg. Reward" column cannot be eq. 8 taken literally: see
docs/cluster.md), and ``layer_fraction``, the share of tasks given any layer split.

Jain's index is taken over the hosts' busy fractions (load balance). All functions are
O(number of tasks + hosts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgesplit.cluster.config import kind


@dataclass(frozen=True)
class TaskRecord:
    """One task that left the system (all times in seconds of simulated time)."""

    tid: int
    app: str
    decision: str
    context: str  # "h": sla >= R^a at arrival, "l" otherwise (eq. 3-4)
    arrival: float
    start: float
    finish: float
    deadline: float
    accuracy: float

    @property
    def response(self) -> float:
        return self.finish - self.arrival

    @property
    def wait(self) -> float:
        return self.start - self.arrival

    @property
    def met(self) -> bool:
        return self.finish <= self.deadline


@dataclass(frozen=True)
class IntervalMetrics:
    """Everything measured in one scheduling interval."""

    interval: int
    energy_j: float
    aec: float
    sched_s: float
    jain: float
    busy: tuple[float, ...]
    left: tuple[TaskRecord, ...]
    o_mab: float | None
    art: float | None
    reward: float | None
    new_tasks: int = 0
    waiting: int = 0
    extra: dict[str, float] = field(default_factory=dict)


def jain(values: Sequence[float]) -> float:
    """Jain's fairness index (sum x)^2 / (n sum x^2); 1 when all equal (or all zero)."""
    x = np.asarray(values, dtype=float)
    denom = len(x) * float((x**2).sum())
    return 1.0 if denom == 0 else float(x.sum() ** 2 / denom)


def context_rewards(tasks: Sequence[TaskRecord]) -> dict[tuple[str, str], float]:
    """O^{c,d} of eq. 3-4 for every (context, decision) with at least one leaving task."""
    sums: dict[tuple[str, str], list[float]] = {}
    for t in tasks:
        sums.setdefault((t.context, t.decision), []).append((float(t.met) + t.accuracy) / 2)
    return {k: float(np.mean(v)) for k, v in sums.items()}


def o_mab(tasks: Sequence[TaskRecord]) -> float | None:
    """O^MAB = mean of the defined O^{c,d} (the paper averages all four)."""
    rewards = context_rewards(tasks)
    return float(np.mean(list(rewards.values()))) if rewards else None


def reward(
    tasks: Sequence[TaskRecord],
    aec: float,
    interval_s: float,
    sla_max: float,
    alpha: float = 0.5,
    beta: float = 0.5,
) -> tuple[float | None, float | None, float | None]:
    """(O^MAB, ART, O^P) of eq. 8 for one interval; Nones when no task left."""
    om = o_mab(tasks)
    if om is None:
        return None, None, None
    art = float(np.mean([t.response for t in tasks])) / interval_s / sla_max
    art = min(1.0, art)
    return om, art, om - alpha * aec - beta * art


def summarize(intervals: Sequence[IntervalMetrics], interval_s: float) -> dict[str, Any]:
    """Table 1 row: totals and means over a run, plus per-application breakdowns (Fig. 4)."""
    tasks = [t for m in intervals for t in m.left]
    rewards = [m.reward for m in intervals if m.reward is not None]
    omabs = [m.o_mab for m in intervals if m.o_mab is not None]

    def task_means(ts: Sequence[TaskRecord]) -> dict[str, float]:
        if not ts:
            return {"tasks": 0}
        return {
            "tasks": len(ts),
            "wait_intervals": float(np.mean([t.wait for t in ts])) / interval_s,
            "response_intervals": float(np.mean([t.response for t in ts])) / interval_s,
            "sla_violation": float(np.mean([not t.met for t in ts])),
            "accuracy": 100.0 * float(np.mean([t.accuracy for t in ts])),
            "layer_fraction": float(np.mean([kind(t.decision) == "layer" for t in ts])),
        }

    apps = sorted({t.app for t in tasks})
    return {
        "intervals": len(intervals),
        "energy_kwh": sum(m.energy_j for m in intervals) / 3.6e6,
        "sched_s": float(np.mean([m.sched_s for m in intervals])) if intervals else 0.0,
        "jain": float(np.mean([m.jain for m in intervals])) if intervals else 1.0,
        **task_means(tasks),
        "reward_eq8": 100.0 * float(np.mean(rewards)) if rewards else None,
        "reward_omab": 100.0 * float(np.mean(omabs)) if omabs else None,
        "waiting_at_end": intervals[-1].waiting if intervals else 0,
        "per_app": {a: task_means([t for t in tasks if t.app == a]) for a in apps},
    }


def interval_rows(intervals: Sequence[IntervalMetrics]) -> list[dict[str, Any]]:
    """Per-interval records for JSON output (tasks summarised, not listed)."""
    rows = []
    for m in intervals:
        d = asdict(m)
        d.pop("left")
        d["left"] = len(m.left)
        rows.append(d)
    return rows
