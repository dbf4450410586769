"""Mobility of edge hosts: random waypoint on a Manhattan city grid (stands in for SUMO).

Tuli 2021 §4 moves hosts with SUMO traces and shapes their links with NetLimiter. Those
traces are not available offline, so a mobile host here walks a random-waypoint model
constrained to streets: it picks a uniformly random street intersection of a square city
(``grid_km`` side, ``block_km`` blocks), travels there along the grid (first x, then y) at
a speed drawn from ``speed_kmh``, pauses ``pause_s`` and repeats. Its link to the broker
degrades with Euclidean distance ``d``:

    bandwidth(d) = bandwidth_mbps / (1 + (d / range_km)^2)
    latency(d)   = latency_s + d * latency_per_km_s

Positions are sampled at the start of each scheduling interval (links are constant within
an interval, as with the paper's per-interval NetLimiter settings). O(1) per host step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgesplit.cluster.config import HostSpec, MobilitySpec
from edgesplit.system.link import Link


@dataclass
class Walker:
    """Random-waypoint state of one mobile host (mutable, owned by the simulator)."""

    x: float
    y: float
    target: tuple[float, float]
    speed_kms: float
    pause_left: float = 0.0


class Mobility:
    """Positions and link qualities of all hosts over time."""

    def __init__(self, hosts: list[HostSpec], spec: MobilitySpec, rng: np.random.Generator):
        self.spec = spec
        self.hosts = hosts
        self.rng = rng
        self.walkers: dict[int, Walker] = {}
        for i, h in enumerate(hosts):
            if h.mobile:
                x, y = self._snap(*h.position_km)
                self.walkers[i] = Walker(x, y, self._waypoint(), self._speed())
        self.positions = [
            (w.x, w.y) if (w := self.walkers.get(i)) else h.position_km for i, h in enumerate(hosts)
        ]

    def _snap(self, x: float, y: float) -> tuple[float, float]:
        b = self.spec.block_km
        return (round(x / b) * b, round(y / b) * b)

    def _waypoint(self) -> tuple[float, float]:
        n = int(self.spec.grid_km / self.spec.block_km)
        i, j = self.rng.integers(0, n + 1, size=2)
        return (float(i) * self.spec.block_km, float(j) * self.spec.block_km)

    def _speed(self) -> float:
        lo, hi = self.spec.speed_kmh
        return float(self.rng.uniform(lo, hi)) / 3600.0

    def advance(self, seconds: float) -> None:
        """Move every mobile host ``seconds`` forward along the streets."""
        for i, w in self.walkers.items():
            left = seconds
            while left > 1e-9:
                if w.pause_left > 0:
                    used = min(left, w.pause_left)
                    w.pause_left -= used
                    left -= used
                    continue
                tx, ty = w.target
                # along x first, then y: movement stays on streets
                dist = abs(tx - w.x) + abs(ty - w.y)
                if dist < 1e-12:
                    w.target, w.speed_kms, w.pause_left = (
                        self._waypoint(),
                        self._speed(),
                        self.spec.pause_s,
                    )
                    continue
                step = min(dist, w.speed_kms * left)
                left -= step / w.speed_kms
                dx = min(step, abs(tx - w.x))
                w.x += math.copysign(dx, tx - w.x)
                w.y += math.copysign(min(step - dx, abs(ty - w.y)), ty - w.y)
            self.positions[i] = (w.x, w.y)

    def distance(self, i: int) -> float:
        bx, by = self.spec.broker_km
        x, y = self.positions[i]
        return math.hypot(x - bx, y - by)

    def link(self, i: int) -> Link:
        """The link of host ``i`` to the broker now (one-way latency = rtt/2)."""
        h, d = self.hosts[i], self.distance(i)
        if not h.mobile:
            return h.link
        bw = h.bandwidth_mbps / (1.0 + (d / self.spec.range_km) ** 2)
        latency = h.latency_s + d * self.spec.latency_per_km_s
        return Link.of(bw * 1e6, rtt_s=2.0 * latency)
