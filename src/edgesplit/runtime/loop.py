"""Assemble a two-tier run on the engine from options: tier, link, clock, planner, session.

This is the wiring behind ``edgesplit run``, ``reproduce luger2023`` and the runtime
benchmarks: a two-tier cut is a 2-device plan (``edge`` here, ``cloud`` remote) that the
:class:`~edgesplit.runtime.engine.Engine` runs with one hop. The remote tier is a URL
(``--server``) or, by default, the same server app on a loopback port in this process.
The link is the engine's
:class:`~edgesplit.runtime.emulation.Emulation`: one token bucket per direction (the
schedule re-sets both), the device's stages run under the emulated clock, and the
``/healthz`` ping is charged the emulated RTT. The model is profiled on this host for the
planner, and a :class:`~edgesplit.runtime.session.Session` drives it all. Nothing here
decides or executes by itself.

Faults: a failed hop is retried ``retries`` times with exponential backoff
(:class:`RetryingHop`); then the engine's failover finishes the request here, marks the
row, and offloading resumes once ``/healthz`` answers (see :mod:`edgesplit.runtime.engine`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from edgesplit.errors import InputError
from edgesplit.graph import Graph
from edgesplit.models import ModelRequest
from edgesplit.plan.types import Plan
from edgesplit.runtime.clock import ClockEmulator
from edgesplit.runtime.conditions import ComputeMonitor, Conditions, ConditionSchedule
from edgesplit.runtime.emulation import Emulation
from edgesplit.runtime.engine import (
    Engine,
    HopFailed,
    HTTPStageTransport,
    StageReply,
    StageRequest,
    StageTransport,
    link_key,
)
from edgesplit.runtime.measure import Measurement, Recorder, RowContext, from_record
from edgesplit.runtime.planning import PlannerSettings, TwoTierPlanner
from edgesplit.runtime.rescheduler import Observation, Planner, Rescheduler
from edgesplit.runtime.session import Session, SessionStep
from edgesplit.runtime.shaping import TokenBucketShaper
from edgesplit.runtime.stages import Stages, build_stages, fingerprint
from edgesplit.runtime.transport import http_client, probe_rtt

#: The two-tier plan's device names: the one running here, and the remote tier.
EDGE, CLOUD = "edge", "cloud"


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
    failover: bool = True
    request: ModelRequest | None = None  # the model options; None: the model's defaults
    edge_model: str | None = None  # a luger_edge file: eq. 4.1-4.2 edge seconds (Luger §4.1)


class RetryingHop:
    """A stage transport that retries a failed hop with exponential backoff.

    Only then does the failure reach the engine (its failover). The reply's hop record
    carries ``retries``; a hop whose retries all failed carries them on its
    :class:`~edgesplit.runtime.engine.HopFailed` (the record's ``failover_retries``).
    A 4xx is the request's own fault and is never retried.
    """

    def __init__(
        self, hop: StageTransport, retries: int, backoff_s: float = 0.05, backoff_max_s: float = 1.0
    ) -> None:
        if retries < 0:
            raise InputError(f"--retries must be >= 0, not {retries}")
        self.hop, self.dst = hop, hop.dst
        self.retries, self.backoff_s, self.backoff_max_s = retries, backoff_s, backoff_max_s

    def send(self, stage: StageRequest, tensors: Mapping[str, torch.Tensor]) -> StageReply:
        for attempt in range(self.retries + 1):
            try:
                reply = self.hop.send(stage, tensors)
            except HopFailed as err:
                if attempt == self.retries:
                    err.retries = attempt  # the row records the retries a failover made
                    raise
                time.sleep(min(self.backoff_max_s, self.backoff_s * 2**attempt))
                continue
            reply.hop["retries"] = attempt
            return reply
        raise AssertionError("unreachable")  # pragma: no cover

    def unreachable(self) -> str | None:
        return self.hop.unreachable()

    def close(self) -> None:
        self.hop.close()


def cut_stages(graph: Graph, cut: int) -> Stages:
    """The stages of a two-tier cut: nodes ``[0, cut)`` on ``edge``, the rest on ``cloud``."""
    n = len(graph.nodes)
    if not 0 <= cut <= n:
        raise InputError(f"--cut {cut} is out of range for {graph.name!r}; use 0..{n}")
    return build_stages(graph, (EDGE, CLOUD), [0] * cut + [1] * (n - cut))


def two_tier_engine(
    graph: Graph,
    url: str,
    *,
    model: str | None = None,
    client: Any = None,
    token: str | None = None,
    failover: bool = True,
    emulation: Emulation | None = None,
) -> Engine:
    """An engine for two-tier cuts of ``graph`` against the server at ``url`` (one hop).

    It starts on the all-local cut; :meth:`Engine.switch` with :func:`cut_stages` moves
    the cut. ``client``: an httpx-style client to post with (a Starlette ``TestClient``
    runs the server app in-process). Used by the benchmarks and tests of the two-tier path.
    """
    hop = HTTPStageTransport(EDGE, CLOUD, url, token=token, client=client)
    return Engine(
        cut_stages(graph, len(graph.nodes)),
        model or graph.name,
        fingerprint(graph),
        EDGE,
        frozenset({EDGE}),
        {CLOUD: hop},
        failover=failover,
        emulation=emulation,
    )


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


@dataclass
class RunParts:
    """One wired run: the session and the pieces it drives."""

    session: Session
    engine: Engine
    shapers: list[TokenBucketShaper]
    planner: TwoTierPlanner
    rescheduler: Rescheduler
    seconds: np.ndarray
    clock: ClockEmulator
    closers: list[Callable[[], object]] = field(default_factory=list)

    @property
    def graph(self) -> Graph:
        graph: Graph = self.engine.stages.graph
        return graph

    def close(self) -> None:
        """Close the hop, then stop an in-process tier (requests in flight finish first)."""
        self.engine.close()
        for close in self.closers:
            close()


def cloud_url(opts: RunOptions, closers: list[Callable[[], object]]) -> str:
    """``--server``, or the server app started on a loopback port in this process."""
    if opts.server:
        return opts.server
    from edgesplit.runtime.server import BackgroundServer, ServerConfig, create_app

    served = opts.request or opts.model
    server = BackgroundServer(create_app(ServerConfig(models=(served,), token=opts.token))).start()
    closers.append(server.stop)
    return server.url


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
        # The device runs its stages in this process: profile at its thread count.
        prof = profile_graph(
            graph, x, threads=torch.get_num_threads(), repeats=opts.profile_repeats, warmup=2
        )
        seconds = np.array(prof.seconds(graph, calibrate=True))
    settings = PlannerSettings(
        objective=opts.objective, weight=opts.weight, strategy=opts.strategy, ref_ghz=opts.ref_ghz
    )
    edge_model = None
    if opts.edge_model:
        from edgesplit.predict.clock import load_edge_model

        edge_model = load_edge_model(opts.edge_model)
    planner = TwoTierPlanner.from_seconds(
        graph, seconds, settings, cloud_scale=opts.cloud_scale, edge_model=edge_model
    )
    policy: Planner = (
        planner if opts.fixed_cut is None else fixed_planner(graph, opts.fixed_cut, planner)
    )
    first = opts.schedule.at(0)
    links = [TokenBucketShaper(first.link), TokenBucketShaper(first.link)] if opts.shape else []
    clock = ClockEmulator(ref_ghz=opts.ref_ghz, clock_ghz=first.clock_ghz)
    emulation = Emulation(
        inbound={CLOUD: links[0]} if links else {},
        outbound={CLOUD: links[1]} if links else {},
        clocks={EDGE: clock},
    )
    closers: list[Callable[[], object]] = []
    url = cloud_url(opts, closers)
    client = http_client(opts.token, opts.timeout_s)
    hop = RetryingHop(HTTPStageTransport(EDGE, CLOUD, url, client=client), opts.retries)

    def probe() -> float:
        # The ping crosses the emulated link too: its RTT is added to loopback's.
        return probe_rtt(client, url) + (links[0].link.rtt if links else 0.0)

    devices = (EDGE, CLOUD)
    cache: dict[tuple[int, ...], Stages] = {}

    def stages_for(plan: Plan) -> Stages:
        if tuple(plan.devices) != devices:
            raise InputError(
                f"plan by {plan.algorithm!r} is for devices {plan.devices}; "
                f"edgesplit run runs {EDGE} and {CLOUD}"
            )
        if plan.assignment not in cache:
            cache[plan.assignment] = build_stages(graph, devices, plan.assignment)
        return cache[plan.assignment]

    local_only = Plan.two_tier(graph.name, "local", len(graph.nodes), len(graph.nodes))
    engine = Engine(
        stages_for(local_only),
        opts.model,
        fingerprint(graph),
        EDGE,
        frozenset({EDGE}),
        {CLOUD: hop},
        failover=opts.failover,
        emulation=emulation,
    )
    resched = Rescheduler(policy, interval_s=opts.interval_s, threshold=opts.threshold)
    session = Session(
        engine,
        resched,
        opts.schedule,
        stages_for,
        link=link_key(EDGE, CLOUD),
        clock=clock,
        shapers=links,
        probe=probe,
        recorder=Recorder(layer_rows=opts.node_times),
        compute=ComputeMonitor() if opts.calibrate else None,
        check=opts.check,
    )
    return RunParts(session, engine, links, planner, resched, seconds, clock, closers)


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
        events = self.rescheduler.events
        # A fixed cut (--cut) never re-plans: its planner only refreshes the predictions
        # for the conditions, so those are counted apart and re-plans are 0.
        fixed = [e.cut for e in events if e.plan.algorithm == "fixed"]
        return {
            "requests": len(rows),
            "fallbacks": sum(m.fallback for m in rows),
            "retries": sum(m.retries for m in rows),
            "checked": sum(m.correct is not None for m in rows),
            "mismatches": sum(m.correct is False for m in rows),
            "replans": 0 if fixed else len(events),
            **({"fixed_cut": fixed[0], "prediction_updates": len(fixed)} if fixed else {}),
            "splits": sorted({m.SP for m in rows}),
            "median_overall_s": float(np.median([m.overall_lat for m in rows])) if rows else None,
            "clock_method": rows[0].clock_method if rows else "",
            "events": [
                {"at_request": e.at_request, "reason": e.reason, "cut": e.cut}
                for e in self.rescheduler.events
            ],
        }


def run_split(
    opts: RunOptions,
    *,
    requests: int | None = None,
    duration_s: float | None = None,
    on_step: Callable[[SessionStep], None] | None = None,
) -> RunResult:
    """Build everything for ``opts`` and run it; the remote tier is closed afterwards."""
    parts = build_run(opts)
    try:
        unreachable = parts.engine.start()
        if unreachable and not opts.failover:
            raise InputError(
                f"{unreachable[0]}; start it with `edgesplit serve --model {opts.model}`, "
                "or drop --no-failover to run locally until it answers"
            )
        if unreachable:
            print(f"warning: {unreachable[0]}; running locally until it answers", file=sys.stderr)
        parts.session.run(requests=requests, duration_s=duration_s, on_step=on_step)
    finally:
        parts.close()
    return RunResult(
        parts.session.recorder, parts.rescheduler, parts.graph, parts.seconds, parts.planner,
        {"unreachable": unreachable},
    )  # fmt: skip


def measure_cuts(
    parts: RunParts,
    conditions: Conditions,
    cuts: Sequence[int],
    repeats: int = 3,
    seed: int = 0,
) -> dict[int, dict[str, float]]:
    """Run every cut ``repeats`` times under fixed conditions; medians of eq. 3.1-3.4.

    This is the measured ground truth behind OL and the split-choice regret: it goes
    through the same engine, wire and shaper as the dynamic run.
    """
    for shaper in parts.shapers:
        shaper.set(conditions.link)
    parts.clock.set(conditions.clock_ghz)
    graph = parts.graph
    shape = graph.tensor(graph.input_names[0]).shape
    out: dict[int, dict[str, float]] = {}
    for cut in cuts:
        plan = Plan.two_tier(graph.name, "sweep", len(graph.nodes), cut, devices=(EDGE, CLOUD))
        parts.session.switch_to(plan)
        rows: list[Measurement] = []
        for r in range(repeats):
            x = torch.randn(shape, generator=torch.Generator().manual_seed(seed + r))
            start = time.time()
            _, record = parts.engine.infer([x])
            ctx = RowContext(
                id=r,
                datetime="",
                start=start,
                cut=cut,
                bandwidth_mbit=conditions.bandwidth_mbit,
                rtt_s=conditions.rtt_ms / 1000,
                clock_ghz=conditions.clock_ghz,
                model=graph.name,
            )
            rows.append(from_record(record, EDGE, ctx))
        out[cut] = {
            key: float(np.median([getattr(m, key) for m in rows]))
            for key in ("edge_lat", "comm_lat", "cloud_lat", "overall_lat")
        }
        out[cut]["fallbacks"] = float(sum(m.fallback for m in rows))
    return out
