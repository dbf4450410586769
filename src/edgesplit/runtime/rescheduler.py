"""Dynamic rescheduling of the split point (Luger 2023 §3.3, Fig. 3.2, Fig. 4.5).

The thesis triggers a new prediction "time triggered, e.g. every two minutes ... or based
on a threshold ... when the bandwidth or clock speed changed drastically". This module is
the decision only (nano-vllm's scheduler role): given the live observation it says
whether to re-plan and keeps the current :class:`~edgesplit.plan.types.Plan`. The planner
is any callable ``Observation -> Plan`` (the planning issue's predictors and weighted
trade-off, see :mod:`edgesplit.runtime.planning`); the agent executes.

Re-plan when (a) no plan exists, (b) ``interval_s`` has passed since the last plan, or
(c) bandwidth, RTT, clock or the measured compute speed of either side moved by more
than ``threshold`` (relative) from the values the current plan was made for. RTT changes below ``rtt_floor_s`` are ignored, so jitter
on a near-zero RTT does not cause churn.

A switch is atomic: :meth:`Rescheduler.plan_for_request` returns one plan object per
request, read under a lock, so a request runs entirely on the old or entirely on the new
split, takes effect at the next request, and no request is lost or run twice.
Complexity: O(1) per request plus the planner's cost when it re-plans.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgesplit.errors import InputError
from edgesplit.plan.types import Plan


@dataclass(frozen=True)
class Observation:
    """What the agent believes now: bandwidth (Mbit/s), RTT (s), edge clock (GHz), and
    how much slower than profiled the edge and cloud parts ran lately (measured/predicted,
    see :class:`~edgesplit.runtime.conditions.ComputeMonitor`)."""

    bandwidth_mbit: float
    rtt_s: float
    clock_ghz: float
    edge_factor: float = 1.0
    cloud_factor: float = 1.0


Planner = Callable[[Observation], Plan]


@dataclass(frozen=True)
class Replan:
    """One re-planning event, for the log and the demo's split-over-time plot."""

    at_request: int
    reason: str
    observation: Observation
    cut: int | None
    plan: Plan


class Rescheduler:
    """Keeps the current plan and decides when to ask the planner for a new one."""

    def __init__(
        self,
        planner: Planner,
        *,
        interval_s: float | None = None,
        threshold: float = 0.2,
        rtt_floor_s: float = 0.005,
    ) -> None:
        if threshold < 0 or (interval_s is not None and interval_s <= 0):
            raise InputError("--threshold must be >= 0 and --interval > 0")
        self.planner = planner
        self.interval_s = interval_s
        self.threshold = threshold
        self.rtt_floor_s = rtt_floor_s
        self.events: list[Replan] = []
        self._lock = threading.Lock()
        self._plan: Plan | None = None
        self._basis: Observation | None = None
        self._planned_at = 0.0

    @property
    def plan(self) -> Plan | None:
        return self._plan

    def _reason(self, obs: Observation, now: float) -> str:
        if self._plan is None or self._basis is None:
            return "initial"
        if self.interval_s is not None and now - self._planned_at >= self.interval_s:
            return "timer"
        b = self._basis
        if _moved(obs.bandwidth_mbit, b.bandwidth_mbit, self.threshold):
            return f"bandwidth {b.bandwidth_mbit:.2f}->{obs.bandwidth_mbit:.2f} Mbit/s"
        if _moved(obs.clock_ghz, b.clock_ghz, self.threshold):
            return f"clock {b.clock_ghz:.2f}->{obs.clock_ghz:.2f} GHz"
        if _moved(obs.edge_factor, b.edge_factor, self.threshold):
            return f"edge speed x{b.edge_factor:.2f}->x{obs.edge_factor:.2f}"
        if _moved(obs.cloud_factor, b.cloud_factor, self.threshold):
            return f"cloud speed x{b.cloud_factor:.2f}->x{obs.cloud_factor:.2f}"
        if abs(obs.rtt_s - b.rtt_s) > self.rtt_floor_s and _moved(
            obs.rtt_s, b.rtt_s, self.threshold
        ):
            return f"rtt {b.rtt_s * 1e3:.1f}->{obs.rtt_s * 1e3:.1f} ms"
        return ""

    def plan_for_request(self, obs: Observation, request: int) -> Plan:
        """The plan this request runs on, re-planning first when a trigger fires."""
        with self._lock:
            now = time.monotonic()
            reason = self._reason(obs, now)
            if reason:
                plan = self.planner(obs)
                self._plan, self._basis, self._planned_at = plan, obs, now
                self.events.append(Replan(request, reason, obs, plan.cut, plan))
            assert self._plan is not None
            return self._plan


def _moved(new: float, old: float, threshold: float) -> bool:
    if old == 0:
        return new != 0
    return abs(new - old) / abs(old) > threshold
