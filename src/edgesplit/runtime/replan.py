"""Re-planning a saved plan's run (``run-plan --replan ALGORITHM``; issue 13 point 6).

A saved plan (from ``plan``, ``placement solve``, ...) starts the run. With ``--replan``,
the front end builds a :class:`~edgesplit.plan.problem.Problem` over the plan's devices
from the topology and this host's profile, and the rescheduler re-solves it with the
registry's ``ALGORITHM`` (:class:`~edgesplit.runtime.planning.RegistryPlanner`) when a
trigger fires (Luger §3.3): every ``--replan-every`` seconds, or when a link's measured
bandwidth, the RTT, the device's clock or a device's measured compute speed moves by more
than 20 % from what the current plan was made for. A switch happens between requests
(:meth:`~edgesplit.runtime.engine.Engine.switch`); servers build the new parts from the
assignment the next request carries.

The problem (choices written down here):

* seconds: this host's profile (wall clock, at this process's thread count), stretched per
  device by its topology ``speed_factor`` (1/s) or ``clock`` (``REF_GHZ``/f); the local
  device's row stays at host speed and the planner stretches it by the clock it observes,
  so a condition schedule's clock steps reach the plan;
* links: the topology's (rate, RTT, allowed codecs). Two devices the topology does not
  link talk through the relay: their link is the path's links in series (rates add as
  1/r, RTTs add; codec ``none``, as the codecs are per hop);
* objective latency, no prices (a topology has none), the input on the local device;
* a plan made with ``plan --codec auto`` or ``auto-lossless`` (``meta.codec_choice``) is
  re-planned with its codecs, jointly (:func:`edgesplit.plan.codec_choice.codec_solver`,
  codec costs timed on this host's tensors when the run starts); other plans keep the
  codecs the run was started with.

``--conditions FILE`` steps the local device's first link (the token buckets this process
holds for it: the direction it receives, and the one it sends when the server does not
shape) and its clock, as ``edgesplit run``'s schedule does; a link the topology does not
shape still feeds the schedule's bandwidth to the planner as its sensor value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from edgesplit.errors import InputError
from edgesplit.graph import Graph
from edgesplit.plan.problem import Problem
from edgesplit.plan.types import Plan
from edgesplit.runtime.clock import ClockEmulator
from edgesplit.runtime.conditions import ComputeMonitor, ConditionSchedule
from edgesplit.runtime.emulation import REF_GHZ
from edgesplit.runtime.engine import Engine, link_key
from edgesplit.runtime.planning import RegistryPlanner
from edgesplit.runtime.rescheduler import Rescheduler
from edgesplit.runtime.session import Session
from edgesplit.runtime.stages import Stages, build_stages
from edgesplit.system.link import Link


def _speed(device: Any) -> float:
    """How many times slower than this host a topology device computes."""
    if device.speed_factor is not None:
        return 1.0 / float(device.speed_factor)
    if device.clock is not None:
        return max(1.0, REF_GHZ / (float(device.clock) / 1e9))
    return 1.0


def _path(topology: Any, a: str, b: str) -> list[str] | None:
    """A shortest chain of topology links from ``a`` to ``b`` (breadth first)."""
    prev: dict[str, str] = {a: a}
    frontier = [a]
    while frontier and b not in prev:
        nxt = []
        for u in frontier:
            for v in topology.names:
                if v not in prev and topology.link(u, v) is not None:
                    prev[v] = u
                    nxt.append(v)
        frontier = nxt
    if b not in prev:
        return None
    path = [b]
    while path[-1] != a:
        path.append(prev[path[-1]])
    return path[::-1]


def problem_from_topology(
    graph: Graph, topology: Any, devices: Sequence[str], host_seconds: Sequence[float]
) -> Problem:
    """The planning problem of a run on ``topology`` (see the module docstring)."""
    host = np.asarray(host_seconds, dtype=float)
    local = topology.local
    if local not in devices:
        raise InputError(f"the plan's devices {list(devices)} lack the topology's local {local!r}")
    rows = [host * (1.0 if d == local else _speed(topology.device(d))) for d in devices]
    links: dict[frozenset[int], Link] = {}
    for i, a in enumerate(devices):
        for j in range(i + 1, len(devices)):
            path = _path(topology, a, devices[j])
            if path is None:
                continue
            hops = [topology.link(u, v) for u, v in zip(path, path[1:])]
            if len(hops) == 1:
                links[frozenset((i, j))] = Link.of(hops[0].rate_bps, hops[0].rtt, hops[0].codecs)
            else:
                rate = 1.0 / sum(1.0 / h.rate_bps for h in hops)
                links[frozenset((i, j))] = Link.of(rate, sum(h.rtt for h in hops))
    return Problem(
        graph,
        tuple(devices),
        np.array(rows),
        links,
        tuple(0.0 for _ in devices),
        source=list(devices).index(local),
    )


class ReplanningEngine:
    """An engine whose plan the rescheduler may replace before each request.

    Reads like the engine (``stages``, ``codecs``, ``failover``... come from it);
    ``infer`` runs one request after the session's observe → maybe re-plan → switch, and
    adds ``plan`` (algorithm, nodes per device, codecs) to its record. One request at a
    time: a switch must fall between requests.
    """

    def __init__(self, engine: Engine, session: Session) -> None:
        self.engine, self.session = engine, session
        self._next = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    @property
    def stages(self) -> Stages:
        return self.engine.stages

    @property
    def events(self) -> list[dict[str, Any]]:
        return [
            {"at_request": e.at_request, "reason": e.reason, "nodes": _nodes(e.plan)}
            for e in self.session.rescheduler.events
        ]

    def infer(
        self, inputs: Sequence[torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        i, self._next = self._next, self._next + 1
        _, obs, _, plan = self.session.before(i)
        outs, record = self.engine.infer(inputs)
        self.session.learn(record, plan, obs.rtt_s)
        codecs = plan.meta.get("codecs") or {}
        record["plan"] = {"algorithm": plan.algorithm, "nodes": _nodes(plan), "codecs": codecs}
        return outs, record


def _nodes(plan: Plan) -> dict[str, int]:
    return {d: plan.assignment.count(k) for k, d in enumerate(plan.devices)}


def replanning(
    engine: Engine,
    plan: Plan,
    topology: Any,
    algorithm: str,
    example: Sequence[torch.Tensor],
    *,
    schedule: ConditionSchedule | None = None,
    interval_s: float | None = None,
    threshold: float = 0.2,
    profile_repeats: int = 5,
) -> ReplanningEngine:
    """Wrap ``engine`` (running ``plan``) so that ``algorithm`` re-plans it live."""
    from edgesplit.predict.profile import profile_graph

    graph = engine.stages.graph
    local = engine.local
    peers = [d for d in topology.names if d != local and topology.link(local, d) is not None]
    if not peers:
        raise InputError(f"--replan: the topology links the local device {local!r} to nothing")
    peer = peers[0]
    first = topology.link(local, peer)
    prof = profile_graph(
        graph, list(example), threads=torch.get_num_threads(), repeats=profile_repeats, warmup=1
    )
    problem = problem_from_topology(graph, topology, plan.devices, prof.seconds(graph))
    clock = engine.emulation.clocks.get(local)
    if clock is None:
        clock = engine.emulation.clocks[local] = ClockEmulator(REF_GHZ, REF_GHZ)
    choice = plan.meta.get("codec_choice")
    solver = None
    if choice in ("auto", "auto-lossless"):
        # The plan chose its codecs (plan --codec auto): re-plan them with the placement.
        from edgesplit.plan.codec_choice import codec_solver
        from edgesplit.predict.codec_costs import measure_graph_codecs

        host = float(sum(prof.seconds(graph)))
        record = measure_graph_codecs(graph, list(example), repeats=3, compute_s=host)
        solver = codec_solver(record, str(choice), algorithm)
    planner = RegistryPlanner(problem, algorithm, ref_ghz=clock.ref_ghz, solver=solver)
    schedule = schedule or ConditionSchedule.constant(
        first.rate_bps / 1e6, first.rtt * 1e3, clock.clock_ghz
    )
    shapers = [
        s
        for s in (engine.emulation.inbound.get(peer), engine.emulation.outbound.get(peer))
        if s is not None
    ]
    others = {
        link_key(link.a, link.b): link
        for link in topology.links
        if link_key(link.a, link.b) != link_key(local, peer)
    }
    cache: dict[tuple[int, ...], Stages] = {plan.assignment: engine.stages}

    def stages_for(new: Plan) -> Stages:
        if new.assignment not in cache:
            cache[new.assignment] = build_stages(graph, new.devices, new.assignment)
        return cache[new.assignment]

    session = Session(
        engine,
        Rescheduler(planner, interval_s=interval_s, threshold=threshold),
        schedule,
        stages_for,
        link=link_key(local, peer),
        clock=clock,
        shapers=shapers,
        sensors={k: link.rate_bps / 1e6 for k, link in others.items()},
        rtts={k: link.rtt for k, link in others.items()},
        compute=ComputeMonitor(),
    )
    obs, _ = session.observe(schedule.at(0))
    session.rescheduler.adopt(plan, obs)
    session.plan = plan
    return ReplanningEngine(engine, session)
