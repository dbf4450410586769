"""Simple split deciders and placers: fixed, random, MC, best-fit, Gillis.

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
- :class:`GillisSplitter` + :class:`EFTPlacer` - the Gillis baseline [30] (Yu et al.,
  ICDCS 2021), from its published description: Gillis partitions each model into
  fragments (layer groups and parallel partitions) so that every fragment fits its
  function's memory, choosing the partitioning by estimated latency against the SLO, and
  minimising cost among those that meet it. Our reading, per task and against the cluster
  at the task's arrival: the candidates are the layer split into m = 1..k FLOP-balanced
  parts (``"layer:m"``, ``"layer"`` for m = k) and the k-way parallel (semantic)
  partition; each candidate's finish time is estimated by placing its fragments greedily
  at their earliest finish (:func:`estimate_option_s`: queued work, own work at the MIPS a
  fragment would get, input transfer; a chain waits for its predecessor). Among the
  candidates whose every fragment fits some host's free RAM and whose estimate meets the
  deadline, Gillis takes the most accurate, then the cheapest (least CPU-seconds, then
  fewest fragments); if none meets the deadline, the earliest estimate. Then
  :class:`EFTPlacer` places the fragments: each at the feasible host with the earliest
  estimated finish; O(C H). Gillis's serverless billing and its RL-based SLO mode are not
  modelled (no functions here, only containers on hosts).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgesplit.cluster.apps import AppProfile
from edgesplit.cluster.config import kind
from edgesplit.cluster.interface import ClusterView, NewTask, PendingContainer, greedy_feasible
from edgesplit.cluster.metrics import IntervalMetrics, TaskRecord
from edgesplit.errors import InputError


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
    compute = queued / speed + c.work / (view.fragment_mips() * 1e6)
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


def estimate_option_s(view: ClusterView, profile: AppProfile, decision: str, batch: int) -> float:
    """Estimated seconds until ``decision``'s fragments are done (greedy earliest finish).

    A chain's fragment ``j + 1`` starts after fragment ``j``; parallel fragments all start
    now. Hosts without the free RAM for a fragment are skipped (inf if none has it).
    """
    queued = view.queued_work.astype(float).copy()
    free_ram = view.ram_free_mb.astype(float).copy()
    jobs = view.jobs.astype(float).copy()
    bw = view.bandwidth_mbps * 1e6 / 8.0
    chain = kind(decision) == "layer"
    ready, prev, finish = 0.0, None, 0.0
    for f in profile.fragments[decision]:
        transfer = view.latency_s + f.in_bytes * batch / bw
        if prev is not None:
            transfer[prev] = 0.0
        est = (
            (ready if chain else 0.0)
            + transfer
            + queued / (view.mips * 1e6)
            + f.instructions * batch / (view.fragment_mips(jobs) * 1e6)
        )
        est[free_ram < f.ram_mb] = np.inf
        h = int(np.argmin(est))
        if not np.isfinite(est[h]):
            return float("inf")
        queued[h] += f.instructions * batch
        free_ram[h] -= f.ram_mb
        jobs[h] += 1
        finish = max(finish, float(est[h]))
        if chain:
            ready, prev = float(est[h]), h
    return finish


class GillisSplitter:
    """Gillis's per-task partitioning (module docstring); needs the apps' profiles."""

    name = "gillis"

    def __init__(self, profiles: dict[str, AppProfile]) -> None:
        self.profiles = profiles

    def decide(self, task: NewTask) -> str:
        p = self.profiles[task.app]
        options = [d for d in p.fragments if kind(d) in ("layer", "semantic")]
        if task.view is None:
            raise InputError("the Gillis splitter needs the cluster view (NewTask.view)")
        est = {d: estimate_option_s(task.view, p, d, task.batch) for d in options}
        meets = [d for d in options if est[d] <= task.sla_s]
        if meets:
            best = max(
                meets,
                key=lambda d: (
                    p.accuracy_of(d),
                    -p.total_instructions(d),
                    -len(p.fragments[d]),
                ),
            )
        else:
            best = min(options, key=lambda d: est[d])
        return best

    def observe(self, interval: int, left: Sequence[TaskRecord]) -> None:
        return None
