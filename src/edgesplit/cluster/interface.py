"""The seam between the simulator (mechanism) and split/placement policies (Tuli 2021 §3.2).

A :class:`Policy` is a splitter (decides L/S/C per new task, eq. 6-7) plus a placer (maps
pending containers to hosts, eq. 10). Both see read-only snapshots (:class:`ClusterView`,
:class:`PendingContainer`) and return plain decisions; the simulator checks feasibility.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edgesplit.cluster.metrics import IntervalMetrics, TaskRecord


@dataclass(frozen=True)
class NewTask:
    """What a splitter knows about a task when it arrives."""

    tid: int
    app: str
    batch: int
    sla_s: float  # deadline minus arrival
    estimate_s: float  # R^a of eq. 2 at arrival
    interval: int
    view: ClusterView | None = None  # hosts at the start of the interval (Gillis reads it)

    @property
    def context(self) -> str:
        return "h" if self.sla_s >= self.estimate_s else "l"


@dataclass(frozen=True)
class PendingContainer:
    """A container waiting for a host: one fragment of one task."""

    cid: int
    tid: int
    app: str
    decision: str
    index: int  # position in the task's fragment list (chain order for layer splits)
    work: float  # instructions for the whole batch
    ram_mb: float
    in_bytes: float  # whole batch
    prev_host: int | None  # host of the predecessor fragment, if already placed
    deadline_s: float  # time left until the SLA deadline


@dataclass(frozen=True)
class ClusterView:
    """Host state at the start of an interval (arrays of length H)."""

    interval: int
    interval_s: float
    mips: np.ndarray
    cores: np.ndarray
    ram_mb: np.ndarray
    ram_used_mb: np.ndarray
    jobs: np.ndarray  # running fragments per host
    queued_work: np.ndarray  # instructions placed on each host and not yet done
    bandwidth_mbps: np.ndarray
    latency_s: np.ndarray
    power_max_w: np.ndarray
    fragment_cores: float = 1.0  # cores one fragment can use

    def fragment_mips(self, jobs: np.ndarray | None = None) -> np.ndarray:
        """MIPS one more fragment would get on each host next to ``jobs`` running ones."""
        n = (self.jobs if jobs is None else jobs) + 1.0
        return self.mips * np.minimum(self.fragment_cores, self.cores / n) / self.cores

    @property
    def hosts(self) -> int:
        return len(self.mips)

    @property
    def ram_free_mb(self) -> np.ndarray:
        return self.ram_mb - self.ram_used_mb


class Splitter(Protocol):
    @property
    def name(self) -> str: ...

    def decide(self, task: NewTask) -> str: ...

    def observe(self, interval: int, left: Sequence[TaskRecord]) -> None: ...


class Placer(Protocol):
    @property
    def name(self) -> str: ...

    def place(self, view: ClusterView, pending: Sequence[PendingContainer]) -> list[int | None]: ...

    def observe(self, metrics: IntervalMetrics) -> None: ...


@dataclass
class Policy:
    """A named splitter + placer pair (Table 1 row)."""

    name: str
    splitter: Splitter
    placer: Placer


def greedy_feasible(
    view: ClusterView, pending: Sequence[PendingContainer], scores: np.ndarray
) -> list[int | None]:
    """Project per-container host scores to a feasible assignment; O(C H log H).

    Containers are taken in order of their best score; each goes to its highest-scoring
    host with enough free RAM (tracking what earlier containers used), else waits (None).
    """
    free = view.ram_free_mb.astype(float).copy()
    out: list[int | None] = [None] * len(pending)
    if not pending:
        return out
    for ci in np.argsort(-scores.max(axis=1), kind="stable"):
        c = pending[int(ci)]
        for h in np.argsort(-scores[ci], kind="stable"):
            if free[h] >= c.ram_mb:
                out[int(ci)] = int(h)
                free[h] -= c.ram_mb
                break
    return out
