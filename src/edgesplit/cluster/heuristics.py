"""Simple split deciders and placers: fixed, random, MC, best-fit, Gillis-style EFT.

These are the non-learning halves of Tuli 2021's Table 1 rows:

- :class:`FixedSplitter` - "S" and "L" of the S+G and L+G ablations;
- :class:`RandomSplitter` - "R" of R+D (uniform L/S);
- :class:`MCSplitter` - the MC baseline (BottleNet++ [18]): one compressed fragment when the
  layer-split estimate R^a would miss the task's deadline, the layer split otherwise. The
  paper says MC "seldom takes the decision to use compressed models" under light load,
  which this rule reproduces without stating MC's exact rule (our choice);
- :class:`RandomPlacer` - a uniformly random feasible host;
- :class:`BestFitPlacer` - the feasible host with the most free compute
  (MIPS x idle cores), ties broken by free RAM; O(C H);
- :class:`EFTPlacer` - Gillis [30] style latency-optimal placement: each fragment goes to the
  feasible host with the earliest estimated finish time (queued work / MIPS + own work on
  one core + input transfer); O(C H). Gillis also picks the partition; we keep the k-part
  FLOP-balanced layer split for every policy so that rows differ only by policy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgesplit.cluster.interface import ClusterView, NewTask, PendingContainer, greedy_feasible
from edgesplit.cluster.metrics import IntervalMetrics, TaskRecord


class FixedSplitter:
    def __init__(self, decision: str) -> None:
        self.decision = decision
        self.name = decision

    def decide(self, task: NewTask) -> str:
        return self.decision

    def observe(self, interval: int, left: Sequence[TaskRecord]) -> None:
        return None


class RandomSplitter:
    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def decide(self, task: NewTask) -> str:
        return "layer" if self.rng.random() < 0.5 else "semantic"

    def observe(self, interval: int, left: Sequence[TaskRecord]) -> None:
        return None


class MCSplitter:
    name = "mc"

    def decide(self, task: NewTask) -> str:
        return "layer" if task.context == "h" else "compressed"

    def observe(self, interval: int, left: Sequence[TaskRecord]) -> None:
        return None


class RandomPlacer:
    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def place(self, view: ClusterView, pending: Sequence[PendingContainer]) -> list[int | None]:
        return greedy_feasible(view, pending, self.rng.random((len(pending), view.hosts)))

    def observe(self, metrics: IntervalMetrics) -> None:
        return None


class BestFitPlacer:
    name = "bestfit"

    def place(self, view: ClusterView, pending: Sequence[PendingContainer]) -> list[int | None]:
        free_ram = view.ram_free_mb.astype(float).copy()
        jobs = view.jobs.astype(float).copy()
        out: list[int | None] = []
        for c in pending:
            free_cpu = view.mips * np.maximum(view.cores - jobs, 0.0) / view.cores
            score = free_cpu + free_ram * 1e-9  # lexicographic: compute, then RAM
            score[free_ram < c.ram_mb] = -np.inf
            h = int(np.argmax(score))
            if not np.isfinite(score[h]):
                out.append(None)
                continue
            out.append(h)
            free_ram[h] -= c.ram_mb
            jobs[h] += 1
        return out

    def observe(self, metrics: IntervalMetrics) -> None:
        return None


def estimated_finish_s(view: ClusterView, c: PendingContainer, queued: np.ndarray) -> np.ndarray:
    """Per-host finish estimate of container ``c`` given work ``queued`` there (seconds)."""
    speed = view.mips * 1e6
    compute = queued / speed + c.work / (speed / view.cores)
    bw = view.bandwidth_mbps * 1e6 / 8.0
    transfer = view.latency_s + c.in_bytes / bw
    if c.prev_host is not None:
        transfer = transfer.copy()
        transfer[c.prev_host] = 0.0
    return np.asarray(compute + transfer)


class EFTPlacer:
    name = "eft"

    def place(self, view: ClusterView, pending: Sequence[PendingContainer]) -> list[int | None]:
        free_ram = view.ram_free_mb.astype(float).copy()
        queued = view.queued_work.astype(float).copy()
        out: list[int | None] = []
        for c in pending:
            est = estimated_finish_s(view, c, queued)
            est[free_ram < c.ram_mb] = np.inf
            h = int(np.argmin(est))
            if not np.isfinite(est[h]):
                out.append(None)
                continue
            out.append(h)
            free_ram[h] -= c.ram_mb
            queued[h] += c.work
        return out

    def observe(self, metrics: IntervalMetrics) -> None:
        return None
