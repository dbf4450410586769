"""Dynamic rescheduling of the split point (Luger 2023 §3.3, Fig. 3.2, Fig. 4.5).

The thesis triggers a new prediction "time triggered, e.g. every two minutes ... or based
on a threshold ... when the bandwidth or clock speed changed drastically". This module is
the decision only (nano-vllm's scheduler role): given the live observation it says
whether to re-plan and keeps the current :class:`~edgesplit.plan.types.Plan`. The planner
is any callable ``Observation -> Plan`` handed in by the front end (a two-tier Luger
planner, or any solver of :mod:`edgesplit.plan.registry` over a multi-device problem,
see :mod:`edgesplit.runtime.planning`); the engine executes.

Re-plan when (a) no plan exists, (b) ``interval_s`` has passed since the last plan, or
(c) the bandwidth of any link, the RTT, the clock or the measured compute speed of any
device moved by more than ``threshold`` (relative) from the values the current plan was
made for. RTT changes below ``rtt_floor_s`` are ignored, so jitter
on a near-zero RTT does not cause churn.

A switch is atomic: :meth:`Rescheduler.plan_for_request` returns one plan object per
request, read under a lock, so a request runs entirely on the old or entirely on the new
split, takes effect at the next request, and no request is lost or run twice.
Complexity: O(1) per request plus the planner's cost when it re-plans.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from edgesplit.errors import InputError
from edgesplit.plan.types import Plan


@dataclass(frozen=True)
class Observation:
    """What the device believes now.

    ``bandwidth_mbit`` and ``rtt_s``: its first link (Mbit/s, s); ``clock_ghz``: its clock;
    ``factors``: per device, how much slower than profiled its parts ran lately
    (measured/predicted, :class:`~edgesplit.runtime.conditions.ComputeMonitor`);
    ``links``: per link key (``edgesplit.runtime.engine.link_key``), the measured or
    sensed bandwidth in Mbit/s, for planners of more than two devices.
    """

    bandwidth_mbit: float
    rtt_s: float
    clock_ghz: float
    factors: Mapping[str, float] = field(default_factory=dict)
    links: Mapping[str, float] = field(default_factory=dict)

    def factor(self, device: str) -> float:
        return float(self.factors.get(device, 1.0))


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
        for key in sorted(set(obs.links) | set(b.links)):
            new, old = obs.links.get(key, 0.0), b.links.get(key, 0.0)
            if _moved(new, old, self.threshold):
                return f"bandwidth {key} {old:.2f}->{new:.2f} Mbit/s"
        for dev in sorted(set(obs.factors) | set(b.factors)):
            if _moved(obs.factor(dev), b.factor(dev), self.threshold):
                return f"{dev} speed x{b.factor(dev):.2f}->x{obs.factor(dev):.2f}"
        if abs(obs.rtt_s - b.rtt_s) > self.rtt_floor_s and _moved(
            obs.rtt_s, b.rtt_s, self.threshold
        ):
            return f"rtt {b.rtt_s * 1e3:.1f}->{obs.rtt_s * 1e3:.1f} ms"
        return ""

    def adopt(self, plan: Plan, obs: Observation) -> None:
        """Start from a given plan (a saved one), made for ``obs``; logged as ``given``."""
        with self._lock:
            self._plan, self._basis, self._planned_at = plan, obs, time.monotonic()
            self.events.append(Replan(0, "given", obs, plan.cut, plan))

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
