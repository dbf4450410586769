"""The edge loop: measure conditions -> maybe re-plan -> execute -> record (Luger Fig. 3.2).

:class:`Session` owns no policy and no mechanism: the schedule sets the emulated world
(shaper rate and RTT, emulated clock), :class:`~edgesplit.runtime.conditions.LinkMonitor`
turns transfers and probes into an observation (and, when given, a
:class:`~edgesplit.runtime.conditions.ComputeMonitor` turns measured compute times into
speed factors: measurements feed back into the predictions), the
:class:`~edgesplit.runtime.rescheduler.Rescheduler` picks the plan, the
:class:`~edgesplit.runtime.agent.EdgeAgent` executes, the
:class:`~edgesplit.runtime.measure.Recorder` keeps the row. One request at a time, as in
the thesis; request ids are consecutive and each is recorded exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from edgesplit.errors import InputError
from edgesplit.runtime.agent import EdgeAgent, RequestContext
from edgesplit.runtime.conditions import ComputeMonitor, Conditions, ConditionSchedule, LinkMonitor
from edgesplit.runtime.measure import Measurement, Recorder
from edgesplit.runtime.rescheduler import Observation, Rescheduler
from edgesplit.runtime.shaping import TokenBucketShaper


@dataclass(frozen=True)
class SessionStep:
    """What one loop iteration saw and did."""

    conditions: Conditions
    observation: Observation
    bandwidth_source: str
    measurement: Measurement
    output: Any


class Session:
    """Drives requests through agent and rescheduler under a condition schedule."""

    def __init__(
        self,
        agent: EdgeAgent,
        rescheduler: Rescheduler,
        schedule: ConditionSchedule,
        *,
        shaper: TokenBucketShaper | None = None,
        monitor: LinkMonitor | None = None,
        recorder: Recorder | None = None,
        inputs: Callable[[int], torch.Tensor] | None = None,
        compute: ComputeMonitor | None = None,
    ) -> None:
        self.agent = agent
        self.rescheduler = rescheduler
        self.schedule = schedule
        self.shaper = shaper
        self.monitor = monitor or LinkMonitor()
        self.recorder = recorder or Recorder()
        self.compute = compute
        self.inputs = inputs or self._example_input
        self._t0 = time.monotonic()
        self._next_id = 0

    def _example_input(self, i: int) -> torch.Tensor:
        shape = self.agent.graph.tensor(self.agent.graph.input_names[0]).shape
        return torch.randn(shape, generator=torch.Generator().manual_seed(i))

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def step(self) -> SessionStep:
        i = self._next_id
        self._next_id += 1
        cond = self.schedule.at(i if self.schedule.unit == "requests" else self.elapsed())
        if self.shaper is not None:
            self.shaper.set(cond.link)
        self.agent.clock.set(cond.clock_ghz)
        if self.agent.cloud_up:
            self.monitor.maybe_probe(self.agent.transport.probe)
        bw, source = self.monitor.bandwidth(cond.bandwidth_mbit)
        rtt = self.monitor.rtt_s if self.monitor.rtt_s is not None else cond.rtt_ms / 1000
        obs = Observation(
            bandwidth_mbit=bw,
            rtt_s=rtt,
            clock_ghz=self.agent.clock.clock_ghz,
            edge_factor=self.compute.edge_factor if self.compute else 1.0,
            cloud_factor=self.compute.cloud_factor if self.compute else 1.0,
        )
        plan = self.rescheduler.plan_for_request(obs, i)
        if plan.cut is None:
            raise InputError(
                f"plan by {plan.algorithm!r} is not a two-tier cut; the agent needs one"
            )
        ctx = RequestContext(
            bandwidth_mbit=cond.bandwidth_mbit,
            rtt_s=rtt,
            predicted_lat=plan.predicted.get("latency_s"),
            cost=plan.predicted.get("cost"),
            plan=plan.algorithm,
        )
        output, m = self.agent.infer(self.inputs(i), plan.cut, i, ctx)
        if not m.fallback and m.size:
            self.monitor.observe_transfer(m.size, m.comm_lat, m.rtt)
            if self.compute is not None and len(plan.devices) == 2:
                edge, cloud = plan.devices
                self.compute.observe(
                    m.edge_lat,
                    m.cloud_lat,
                    plan.predicted.get(f"compute_s:{edge}"),
                    plan.predicted.get(f"compute_s:{cloud}"),
                )
        self.recorder.add(m)
        return SessionStep(cond, obs, source, m, output)

    def run(
        self,
        requests: int | None = None,
        duration_s: float | None = None,
        on_step: Callable[[SessionStep], None] | None = None,
    ) -> list[Measurement]:
        """Run until ``requests`` are done or ``duration_s`` has passed (whichever is given)."""
        if requests is None and duration_s is None:
            raise InputError("give --requests N or --duration SECONDS")
        self._t0 = time.monotonic()
        done = 0
        while (requests is None or done < requests) and (
            duration_s is None or self.elapsed() < duration_s
        ):
            step = self.step()
            done += 1
            if on_step is not None:
                on_step(step)
        return self.recorder.rows
