"""The device loop: measure conditions -> maybe re-plan -> execute -> record (Luger Fig. 3.2).

:class:`Session` owns no policy and no mechanism. Per request:

1. the schedule sets the emulated world (the link's token buckets, one per direction,
   and its RTT; the emulated clock);
2. :class:`~edgesplit.runtime.conditions.LinkMonitor` (one per link) turns the engine's
   measured hops and a ``/healthz`` probe into an observation, and
   :class:`~edgesplit.runtime.conditions.ComputeMonitor` turns measured compute per device
   into speed factors (measurements feed back into the cost model);
3. the :class:`~edgesplit.runtime.rescheduler.Rescheduler` asks the front end's planner
   for a new plan when a trigger fires; a new plan becomes new stages, switched into the
   :class:`~edgesplit.runtime.engine.Engine` *between* requests;
4. the engine runs the request (relay, codecs, failover);
5. :func:`~edgesplit.runtime.measure.from_record` makes its Table 6.1 row.

One request at a time, as in the thesis: ids are consecutive, each request runs wholly
on one plan and is recorded exactly once.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from edgesplit.errors import InputError
from edgesplit.graph.partition import assemble_output
from edgesplit.plan.types import Plan
from edgesplit.runtime.clock import ClockEmulator
from edgesplit.runtime.conditions import ComputeMonitor, Conditions, ConditionSchedule, LinkMonitor
from edgesplit.runtime.engine import Engine, link_key
from edgesplit.runtime.measure import Measurement, Recorder, RowContext, from_record
from edgesplit.runtime.rescheduler import Observation, Rescheduler
from edgesplit.runtime.shaping import TokenBucketShaper
from edgesplit.runtime.stages import Stages


@dataclass(frozen=True)
class SessionStep:
    """What one loop iteration saw and did."""

    conditions: Conditions
    observation: Observation
    bandwidth_source: str
    measurement: Measurement
    output: Any
    plan: Plan
    record: dict[str, Any]


class Session:
    """Drives requests through the engine and the rescheduler under a condition schedule.

    ``stages_for(plan)`` turns a plan into the engine's stages (the front end's wiring:
    emulated clock on the device's parts); ``link`` is the device's first link (the one
    the schedule shapes), ``sensors`` the other links' nominal Mbit/s (the sensor value
    until a hop measures them) and ``rtts`` their known RTTs (s); ``probe`` returns the
    first hop's RTT in seconds.
    """

    def __init__(
        self,
        engine: Engine,
        rescheduler: Rescheduler,
        schedule: ConditionSchedule,
        stages_for: Callable[[Plan], Stages],
        *,
        link: str,
        clock: ClockEmulator,
        shapers: Sequence[TokenBucketShaper] = (),
        probe: Callable[[], float] | None = None,
        sensors: Mapping[str, float] | None = None,
        rtts: Mapping[str, float] | None = None,
        recorder: Recorder | None = None,
        inputs: Callable[[int], torch.Tensor] | None = None,
        compute: ComputeMonitor | None = None,
        check: bool = False,
    ) -> None:
        self.engine = engine
        self.rescheduler = rescheduler
        self.schedule = schedule
        self.stages_for = stages_for
        self.link = link
        self.clock = clock
        self.shapers = list(shapers)
        self.probe = probe
        self.sensors = dict(sensors or {})
        self.rtts = dict(rtts or {})
        self.monitors = {key: LinkMonitor() for key in {link, *self.sensors}}
        self.recorder = recorder or Recorder()
        self.compute = compute
        self.check = check
        self.inputs = inputs or self._example_input
        self.plan: Plan | None = None
        self._t0 = time.monotonic()
        self._next_id = 0

    @property
    def graph(self) -> Any:
        return self.engine.stages.graph

    @property
    def monitor(self) -> LinkMonitor:
        """The first link's monitor (the one the thesis' agent had)."""
        return self.monitors[self.link]

    def _example_input(self, i: int) -> torch.Tensor:
        shape = self.graph.tensor(self.graph.input_names[0]).shape
        return torch.randn(shape, generator=torch.Generator().manual_seed(i))

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def observe(self, cond: Conditions) -> tuple[Observation, str]:
        """The observation to plan with now, and where the first link's bandwidth came from."""
        if self.probe is not None and self.engine.down is None:
            self.monitor.maybe_probe(self.probe)
        bw, source = self.monitor.bandwidth(cond.bandwidth_mbit)
        links = {self.link: bw}
        for key, nominal in self.sensors.items():
            links[key] = self.monitors[key].bandwidth(nominal)[0]
        rtt = self.monitor.rtt_s if self.monitor.rtt_s is not None else cond.rtt_ms / 1000
        factors = dict(self.compute.factors) if self.compute else {}
        return Observation(bw, rtt, self.clock.clock_ghz, factors, links), source

    def switch_to(self, plan: Plan) -> None:
        """Put ``plan`` into the engine (between requests); a no-op for the current plan."""
        if plan is self.plan:
            return
        codecs = plan.meta.get("codecs")
        if codecs is not None and not isinstance(codecs, dict):
            raise InputError(f"plan by {plan.algorithm!r}: meta.codecs must map links to codecs")
        self.engine.switch(self.stages_for(plan), codecs)
        self.plan = plan

    def before(self, i: int) -> tuple[Conditions, Observation, str, Plan]:
        """Set the emulated world for request ``i``, observe, maybe re-plan and switch."""
        cond = self.schedule.at(i if self.schedule.unit == "requests" else self.elapsed())
        for shaper in self.shapers:
            shaper.set(cond.link)
        self.clock.set(cond.clock_ghz)
        obs, source = self.observe(cond)
        plan = self.rescheduler.plan_for_request(obs, i)
        self.switch_to(plan)
        return cond, obs, source, plan

    def step(self) -> SessionStep:
        i = self._next_id
        self._next_id += 1
        cond, obs, source, plan = self.before(i)
        x = self.inputs(i)
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        start = time.time()
        outs, record = self.engine.infer([x])
        output = assemble_output(self.graph, outs)
        if self.check:
            record["check"] = _compare(output, self.graph.module, x)
        ctx = RowContext(
            id=i,
            datetime=stamp,
            start=start,
            cut=-1 if plan.cut is None else plan.cut,
            bandwidth_mbit=cond.bandwidth_mbit,
            rtt_s=obs.rtt_s,
            clock_ghz=self.clock.clock_ghz,
            model=self.engine.model,
            clock_method=self.clock.method,
            predicted_lat=plan.predicted.get("latency_s"),
            cost=plan.predicted.get("cost"),
            plan=plan.algorithm,
        )
        m = from_record(record, self.engine.local, ctx)
        self.learn(record, plan, obs.rtt_s)
        self.recorder.add(m)
        return SessionStep(cond, obs, source, m, output, plan, record)

    def learn(self, record: dict[str, Any], plan: Plan, rtt_s: float) -> None:
        """Feed a request's measured hops and compute back (per link, per device).

        A failed-over request measured the failover, not the plan: it teaches nothing.
        """
        if record.get("failover"):
            return
        for hop in record["hops"]:
            key = link_key(hop["src"], hop["dst"])
            monitor = self.monitors.setdefault(key, LinkMonitor())
            monitor.observe_hop(hop, rtt_s if key == self.link else self.rtts.get(key, 0.0))
        if self.compute is None:
            return
        busy: dict[str, float] = {}
        for st in record["stages"]:
            busy[st["device"]] = busy.get(st["device"], 0.0) + float(st["compute_s"])
        for device, seconds in busy.items():
            self.compute.observe(device, seconds, plan.predicted.get(f"compute_s:{device}"))

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


def _compare(output: Any, module: Any, x: torch.Tensor) -> dict[str, bool]:
    """``equal``: torch.equal with local inference; ``close``: within float tolerance."""
    with torch.inference_mode():
        ref = module(x)
    equal = bool(torch.equal(output, ref))
    # A GPU tier or another thread count may differ in the last bits.
    close = equal or bool(torch.allclose(output, ref, rtol=1e-4, atol=1e-5))
    return {"equal": equal, "close": close}
