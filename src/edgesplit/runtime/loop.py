"""Assemble a whole edge run from options: tier, link, clock, planner, rescheduler, session.

This is the wiring behind ``edgesplit run``, ``make demo`` and ``reproduce luger2023``:
choose the remote tier (a URL, or the same FastAPI app in-process), put the token-bucket
shaper on the link, profile the model on this host for the planner, and run a
:class:`~edgesplit.runtime.session.Session`. Nothing here decides or executes by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from edgesplit.errors import InputError
from edgesplit.graph import Graph
from edgesplit.models import ModelRequest
from edgesplit.plan.types import Plan
from edgesplit.runtime.agent import AgentConfig, EdgeAgent
from edgesplit.runtime.clock import ClockEmulator
from edgesplit.runtime.conditions import ComputeMonitor, Conditions, ConditionSchedule, LinkMonitor
from edgesplit.runtime.measure import Recorder
from edgesplit.runtime.planning import PlannerSettings, TwoTierPlanner
from edgesplit.runtime.rescheduler import Observation, Planner, Rescheduler
from edgesplit.runtime.session import Session, SessionStep
from edgesplit.runtime.shaping import TokenBucketShaper
from edgesplit.runtime.transport import HTTPTransport, Transport, in_process


@dataclass(frozen=True)
class RunOptions:
    """Everything ``edgesplit run`` takes (see its ``--help``)."""

    model: str
    schedule: ConditionSchedule
    server: str | None = None
    token: str | None = None
    fixed_cut: int | None = None
    ref_ghz: float = 2.6
    shape: bool = True
    objective: str = "weighted"
    weight: float = 0.5
    strategy: str = "rent"
    interval_s: float | None = None
    threshold: float = 0.2
    retries: int = 2
    timeout_s: float = 10.0
    check: bool = False
    node_times: bool = False
    profile_repeats: int = 10
    cloud_scale: float = 1.0
    calibrate: bool = True
    request: ModelRequest | None = None  # the model options; None: the model's defaults


@dataclass
class RunResult:
    """The run's rows, re-planning events and the pieces used (for plots)."""

    recorder: Recorder
    rescheduler: Rescheduler
    graph: Graph
    seconds: np.ndarray
    planner: TwoTierPlanner
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        rows = self.recorder.rows
        return {
            "requests": len(rows),
            "fallbacks": sum(m.fallback for m in rows),
            "mismatches": sum(m.correct is False for m in rows),
            "replans": len(self.rescheduler.events),
            "splits": sorted({m.SP for m in rows}),
            "median_overall_s": float(np.median([m.overall_lat for m in rows])) if rows else None,
            "clock_method": rows[0].clock_method if rows else "",
            "events": [
                {"at_request": e.at_request, "reason": e.reason, "cut": e.cut}
                for e in self.rescheduler.events
            ],
        }


def fixed_planner(graph: Graph, cut: int, inner: TwoTierPlanner) -> Planner:
    """Always ``cut``, with the planner's predictions for it (so rows still show them)."""
    n = len(graph.nodes)
    if not 0 <= cut <= n:
        raise InputError(f"--cut {cut} is out of range for {graph.name!r}; use 0..{n}")

    def plan(obs: Observation) -> Plan:
        from edgesplit.plan.planner import plan_from_table

        table = inner.table(obs)
        objective = inner.settings.objective
        return plan_from_table(table, cut, algorithm="fixed", objective=objective, meta={})

    return plan


def build_transport(opts: RunOptions, shaper: TokenBucketShaper | None) -> Transport:
    if opts.server:
        return HTTPTransport(opts.server, token=opts.token, timeout_s=opts.timeout_s, shaper=shaper)
    from edgesplit.runtime.server import ServerConfig, create_app

    served = opts.request or opts.model
    return in_process(create_app(ServerConfig(models=(served,))), shaper=shaper)


@dataclass
class RunParts:
    """One wired run: the session and the pieces it drives."""

    session: Session
    agent: EdgeAgent
    shaper: TokenBucketShaper | None
    planner: TwoTierPlanner
    rescheduler: Rescheduler
    transport: Transport
    seconds: np.ndarray


def build_run(
    opts: RunOptions, graph: Graph | None = None, seconds: np.ndarray | None = None
) -> RunParts:
    """Trace, profile (unless ``seconds`` is given) and wire everything for ``opts``."""
    from edgesplit.graph import trace
    from edgesplit.predict.profile import profile_graph

    if graph is None:
        module, example = (opts.request or ModelRequest(opts.model)).load()
        graph = trace(module, example.single("edgesplit run"), name=opts.model)
    if seconds is None:
        if graph.module is None:
            raise InputError(f"graph {graph.name!r} has no module to profile")
        x = torch.randn(graph.tensor(graph.input_names[0]).shape)
        # The agent runs the edge parts in this process: profile at its thread count.
        prof = profile_graph(
            graph, x, threads=torch.get_num_threads(), repeats=opts.profile_repeats, warmup=2
        )
        seconds = np.array(prof.seconds(graph, calibrate=True))
    settings = PlannerSettings(
        objective=opts.objective, weight=opts.weight, strategy=opts.strategy, ref_ghz=opts.ref_ghz
    )
    planner = TwoTierPlanner.from_seconds(graph, seconds, settings, cloud_scale=opts.cloud_scale)
    policy: Planner = (
        planner if opts.fixed_cut is None else fixed_planner(graph, opts.fixed_cut, planner)
    )
    first = opts.schedule.at(0)
    shaper = TokenBucketShaper(first.link) if opts.shape else None
    transport = build_transport(opts, shaper)
    agent = EdgeAgent(
        graph,
        transport,
        model=opts.model,
        clock=ClockEmulator(ref_ghz=opts.ref_ghz, clock_ghz=first.clock_ghz),
        config=AgentConfig(retries=opts.retries, check=opts.check, node_times=opts.node_times),
    )
    resched = Rescheduler(policy, interval_s=opts.interval_s, threshold=opts.threshold)
    session = Session(
        agent,
        resched,
        opts.schedule,
        shaper=shaper,
        monitor=LinkMonitor(),
        recorder=Recorder(layer_rows=opts.node_times),
        compute=ComputeMonitor() if opts.calibrate else None,
    )
    return RunParts(session, agent, shaper, planner, resched, transport, seconds)


def run_agent(
    opts: RunOptions,
    *,
    requests: int | None = None,
    duration_s: float | None = None,
    on_step: Callable[[SessionStep], None] | None = None,
) -> RunResult:
    """Build everything for ``opts`` and run it; the remote tier is closed afterwards."""
    parts = build_run(opts)
    try:
        parts.session.run(requests=requests, duration_s=duration_s, on_step=on_step)
    finally:
        parts.transport.close()
    return RunResult(
        parts.session.recorder, parts.rescheduler, parts.agent.graph, parts.seconds, parts.planner
    )


def measure_cuts(
    parts: RunParts,
    conditions: Conditions,
    cuts: Sequence[int],
    repeats: int = 3,
    seed: int = 0,
) -> dict[int, dict[str, float]]:
    """Run every cut ``repeats`` times under fixed conditions; medians of eq. 3.1-3.4.

    This is the measured ground truth behind OL and the split-choice regret: it goes
    through the same agent, wire and shaper as the dynamic run.
    """
    from edgesplit.runtime.agent import RequestContext

    if parts.shaper is not None:
        parts.shaper.set(conditions.link)
    parts.agent.clock.set(conditions.clock_ghz)
    ctx = RequestContext(bandwidth_mbit=conditions.bandwidth_mbit, rtt_s=conditions.rtt_ms / 1000)
    shape = parts.agent.graph.tensor(parts.agent.graph.input_names[0]).shape
    out: dict[int, dict[str, float]] = {}
    for cut in cuts:
        rows = []
        for r in range(repeats):
            x = torch.randn(shape, generator=torch.Generator().manual_seed(seed + r))
            rows.append(parts.agent.infer(x, cut, r, ctx)[1])
        out[cut] = {
            key: float(np.median([getattr(m, key) for m in rows]))
            for key in ("edge_lat", "comm_lat", "cloud_lat", "overall_lat")
        }
        out[cut]["fallbacks"] = float(sum(m.fallback for m in rows))
    return out
