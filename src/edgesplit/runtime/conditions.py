"""Condition schedules (what the emulated world does) and live estimates (what the agent sees).

A schedule file makes a run reproducible: bandwidth, RTT and clock as step functions of
either elapsed seconds or the request counter (``unit: requests`` makes a run fully
deterministic; ``unit: seconds`` follows the wall clock, as the demo does)::

    unit: seconds            # or: requests
    steps:
      - {at: 0,  bandwidth_mbit: 2,  rtt_ms: 20, clock_ghz: 1.5}
      - {at: 20, bandwidth_mbit: 20}                      # unspecified fields carry over
      - {at: 40, bandwidth_mbit: 5,  clock_ghz: 1.0}

``edgesplit schema conditions`` prints the schema. The schedule drives the emulators
(shaper, clock); the agent plans on :class:`LinkMonitor`'s live estimates: bandwidth from
its own transfers (Luger eq. 3.3's ``comm_lat`` gives size·8/(comm − rtt/2)) and RTT from a
``/healthz`` probe. A transfer too small to measure (under ``min_bytes``; the shaper's burst
hides it) leaves the estimate unchanged. Before any measurement, and once the last one is
older than ``max_age_s`` (a split with a tiny or no transfer measures nothing, and a stale
estimate would pin the plan forever), the link sensor's value is used: the shaper's
setting, as the thesis' "IoT sensors" reported the Wondershaper setting. On the engine
each hop of a request's record (both bodies in ``transfer_s``, the round trip minus the
receiver's processing) feeds the monitor of its link, so every link is measured.
"""

from __future__ import annotations

import bisect
import contextlib
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgesplit.errors import TransportError
from edgesplit.io import read_document
from edgesplit.system.link import Link


class ConditionStep(BaseModel):
    """From ``at`` on: these conditions (``None`` keeps the previous step's value)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: float = Field(ge=0, description="seconds or request index where this step begins")
    bandwidth_mbit: float | None = Field(default=None, gt=0, description="Mbit/s (10^6 bit/s)")
    rtt_ms: float | None = Field(default=None, ge=0, description="round-trip time, ms")
    clock_ghz: float | None = Field(default=None, gt=0, description="emulated edge clock, GHz")


class Conditions(BaseModel):
    """One fully specified setting."""

    model_config = ConfigDict(frozen=True)

    bandwidth_mbit: float
    rtt_ms: float
    clock_ghz: float

    @property
    def link(self) -> Link:
        """The link these conditions describe (what the shaper emulates)."""
        return Link.of(self.bandwidth_mbit * 1e6, rtt_s=self.rtt_ms / 1000)


class ConditionSchedule(BaseModel):
    """Bandwidth, RTT and clock over time (seconds) or over requests."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    unit: Literal["seconds", "requests"] = "seconds"
    steps: list[ConditionStep] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> ConditionSchedule:
        ats = [s.at for s in self.steps]
        if ats != sorted(ats) or ats[0] != 0:
            raise ValueError("steps must start at 0 and be sorted by 'at'")
        first = self.steps[0]
        if first.bandwidth_mbit is None or first.clock_ghz is None:
            raise ValueError("the first step must give bandwidth_mbit and clock_ghz")
        return self

    def resolved(self) -> list[Conditions]:
        out: list[Conditions] = []
        cur = {"bandwidth_mbit": 0.0, "rtt_ms": 0.0, "clock_ghz": 0.0}
        for s in self.steps:
            for k in cur:
                v = getattr(s, k)
                if v is not None:
                    cur[k] = v
            out.append(Conditions(**cur))
        return out

    def at(self, t: float) -> Conditions:
        """Conditions in force at ``t`` (seconds or request index)."""
        i = bisect.bisect_right([s.at for s in self.steps], t) - 1
        return self.resolved()[max(i, 0)]

    @property
    def span(self) -> float:
        return self.steps[-1].at

    @classmethod
    def load(cls, path: str | Path) -> ConditionSchedule:
        """Read a condition schedule file (YAML or JSON); one-line InputError if bad."""
        return read_document(path, cls, what="condition schedule", schema="conditions")

    @classmethod
    def constant(cls, bandwidth_mbit: float, rtt_ms: float, clock_ghz: float) -> ConditionSchedule:
        return cls(
            steps=[
                ConditionStep(
                    at=0, bandwidth_mbit=bandwidth_mbit, rtt_ms=rtt_ms, clock_ghz=clock_ghz
                )
            ]
        )


class LinkMonitor:
    """Live bandwidth (EWMA of measured transfers) and RTT (probe every ``probe_every_s``)."""

    def __init__(
        self,
        alpha: float = 0.5,
        min_bytes: int = 64 * 1024,
        probe_every_s: float = 2.0,
        max_age_s: float = 5.0,
    ) -> None:
        self.alpha = alpha
        self.max_age_s = max_age_s
        self._measured_at = -1e18
        self.min_bytes = min_bytes
        self.probe_every_s = probe_every_s
        self.bandwidth_mbit: float | None = None
        self.rtt_s: float | None = None
        self._last_probe = -1e18

    def observe_hop(self, hop: dict[str, object], rtt_s: float) -> None:
        """A hop of the engine's record: both bodies crossed in ``transfer_s`` less one RTT."""
        nbytes = int(str(hop["sent_wire_bytes"])) + int(str(hop["reply_wire_bytes"]))
        self.observe_transfer(nbytes, float(str(hop["transfer_s"])) - rtt_s / 2, rtt_s)

    def observe_transfer(self, nbytes: int, comm_s: float, rtt_s: float) -> None:
        """``nbytes`` crossed in ``comm_s`` seconds, of which ``rtt_s/2`` is delay (eq. 4.3)."""
        payload_s = comm_s - rtt_s / 2
        if nbytes < self.min_bytes or payload_s <= 0:
            return
        sample = nbytes * 8 / payload_s / 1e6
        prev = self.bandwidth_mbit if self._fresh() else None
        self.bandwidth_mbit = (
            sample if prev is None else self.alpha * sample + (1 - self.alpha) * prev
        )
        self._measured_at = time.monotonic()

    def _fresh(self) -> bool:
        return time.monotonic() - self._measured_at <= self.max_age_s

    def bandwidth(self, sensor_mbit: float) -> tuple[float, str]:
        """The bandwidth to plan with and where it came from (``measured`` or ``sensor``)."""
        if self.bandwidth_mbit is not None and self._fresh():
            return self.bandwidth_mbit, "measured"
        return sensor_mbit, "sensor"

    def maybe_probe(self, probe: object) -> None:
        """Call ``probe()`` (returns RTT seconds) when the last probe is older than the period."""
        now = time.monotonic()
        if now - self._last_probe < self.probe_every_s or not callable(probe):
            return
        self._last_probe = now
        with contextlib.suppress(TransportError):
            self.rtt_s = float(probe())


class ComputeMonitor:
    """Measured over predicted compute time per device (EWMA): the feedback to the planner.

    Profiles age: a host gets busier or idler than when the model was profiled. After
    each request that ran as planned, every device's measured compute seconds over the
    plan's ``compute_s:<device>`` prediction (made with the factors then in force)
    updates that device's factor, which the next observation carries. Devices with a
    predicted time under ``min_s`` are skipped: their ratio is mostly timer noise.
    """

    def __init__(self, alpha: float = 0.3, min_s: float = 1e-3) -> None:
        self.alpha = alpha
        self.min_s = min_s
        self.factors: dict[str, float] = {}

    def observe(self, device: str, measured: float, predicted: float | None) -> None:
        factor = self.factors.get(device, 1.0)
        if predicted is None or predicted < self.min_s or measured <= 0:
            return
        self.factors[device] = (
            1 - self.alpha
        ) * factor + self.alpha * factor * measured / predicted
