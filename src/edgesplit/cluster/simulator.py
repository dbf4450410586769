"""Discrete-event simulator of a mobile edge cluster running split DNN tasks (Tuli 2021 §3.1).

Built on SimPy: each host is a processor-sharing server process, each task a process.

- **Intervals.** A broker process wakes every ``interval_s``: it closes the previous
  interval's metrics, moves mobile hosts, creates Poisson(lambda) tasks, asks the policy's
  splitter for a decision per new task (eq. 6/7) and its placer for a host per pending
  container (eq. 10). Containers that do not fit (RAM, or the placer returned None) stay in
  the wait queue for the next interval. Placed containers are never migrated.
- **Compute.** A fragment of ``w`` instructions may use up to ``t`` cores
  (``workload.fragment_cores``, intra-op threads): with ``n`` fragments on a host of ``m``
  MIPS and ``c`` cores each runs on ``min(t, c / n)`` cores, i.e. at
  ``m min(t, c / n) / c`` MIPS (co-located fragments share the host; t = 1 is one core
  per fragment). CPU utilisation is ``min(n t, c) / c``; power is the host's 11-point
  curve interpolated linearly at that utilisation, integrated exactly between events.
- **Precedence.** A layer split's (any ``layer:m``) fragment ``j + 1`` starts only after fragment ``j`` is
  done and its output (cut tensors x batch) crossed the network; semantic and compressed
  fragments start independently from the broker's input. Results return to the broker.
- **Network.** host->host transfers go through the broker: latency_a + latency_b +
  bytes / min(bw_a, bw_b); links are evaluated when the transfer starts and are not shared.
- **Randomness.** One ``numpy`` Generator seeded from the config drives arrivals, apps,
  batches, deadlines and mobility, so a run is reproducible; policies get their own seed.

Event cost: each fragment start/finish re-plans one host, so a run costs
O(events x fragments per host) plus the policies' time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from edgesplit.cluster.apps import AppProfile, Fragment, build_profiles
from edgesplit.cluster.config import ClusterConfig, HostSpec, kind
from edgesplit.cluster.interface import ClusterView, NewTask, PendingContainer, Policy
from edgesplit.cluster.metrics import IntervalMetrics, TaskRecord, jain, reward
from edgesplit.cluster.mobility import Mobility
from edgesplit.errors import InputError

_EPS_S = 1e-9  # work finishing within a nanosecond of now counts as finished


class HostRuntime:
    """One host: processor sharing over its running fragments, energy integration."""

    def __init__(self, env: simpy.Environment, spec: HostSpec, threads: int = 1) -> None:
        self.env = env
        self.spec = spec
        self.threads = threads  # cores one fragment can use
        self.jobs: dict[int, list[Any]] = {}  # cid -> [remaining instructions, done event]
        self.last = 0.0
        self.energy_j = 0.0
        self.busy_s = 0.0  # integral of utilisation
        self.ram_used_mb = 0.0
        self.queued_work = 0.0
        self._wake = env.event()
        env.process(self._run())

    def rate(self) -> float:
        """Instructions per second of each running fragment."""
        c = self.spec.cores
        return self.spec.mips * 1e6 * min(self.threads, c / max(len(self.jobs), 1)) / c

    def utilisation(self) -> float:
        return min(len(self.jobs) * self.threads, self.spec.cores) / self.spec.cores

    def advance(self, now: float) -> None:
        dt = now - self.last
        if dt > 0:
            u = self.utilisation()
            self.energy_j += self.spec.power.joules(u, dt)
            self.busy_s += u * dt
            done = self.rate() * dt
            for job in self.jobs.values():
                job[0] -= done
            self.queued_work -= done * len(self.jobs)
            self.last = now

    def submit(self, cid: int, work: float) -> simpy.Event:
        self.advance(self.env.now)
        ev = self.env.event()
        self.jobs[cid] = [work, ev]
        if not self._wake.triggered:
            self._wake.succeed()
        return ev

    def _run(self) -> Generator[simpy.Event, Any, None]:
        while True:
            if not self.jobs:
                yield self._wake
            else:
                dt = min(j[0] for j in self.jobs.values()) / self.rate()
                yield self.env.any_of([self.env.timeout(max(dt, 0.0)), self._wake])
            if self._wake.triggered:
                self._wake = self.env.event()
            self.advance(self.env.now)
            tol = self.rate() * _EPS_S
            for cid, (left, ev) in list(self.jobs.items()):
                if left <= tol:
                    del self.jobs[cid]
                    ev.succeed()


@dataclass
class _Container:
    cid: int
    task: _Task
    fragment: Fragment
    work: float
    ram_mb: float
    host: int | None = None
    placed: simpy.Event | None = None


@dataclass
class _Task:
    tid: int
    app: AppProfile
    batch: int
    arrival: float
    deadline: float
    decision: str
    context: str
    containers: list[_Container] = field(default_factory=list)
    start: float | None = None


@dataclass(frozen=True)
class ScriptedTask:
    """A task given explicitly instead of drawn (tests, replaying a real run's workload)."""

    app: str
    batch: int
    sla_s: float


class Simulator:
    """Runs one policy on one cluster config; ``run()`` returns per-interval metrics.

    ``script`` maps interval -> tasks arriving then and replaces the random arrivals.
    ``estimates`` are initial R^a per app (eq. 2), e.g. carried from the bandit's training
    run; apps not given start from :meth:`_idle_estimate`. ``self.estimates`` holds R^a
    at the end of the run.
    """

    def __init__(
        self,
        config: ClusterConfig,
        policy: Policy,
        profiles: dict[str, AppProfile] | None = None,
        on_interval: Callable[[IntervalMetrics], None] | None = None,
        script: dict[int, list[ScriptedTask]] | None = None,
        estimates: dict[str, float] | None = None,
    ) -> None:
        self.cfg = config
        self.policy = policy
        self.profiles = profiles or build_profiles(config.workload)
        self.app_names = list(self.profiles)  # random arrivals draw uniformly from these
        self.on_interval = on_interval
        self.script = script
        self.rng = np.random.default_rng(config.seed)
        self.env = simpy.Environment()
        threads = config.workload.fragment_cores
        self.hosts = [HostRuntime(self.env, h, threads) for h in config.hosts]
        self.mobility = Mobility(config.hosts, config.mobility, self.rng)
        self.links = [self.mobility.link(i) for i in range(len(self.hosts))]
        self.pending: list[_Container] = []
        self.left: list[TaskRecord] = []
        self.metrics: list[IntervalMetrics] = []
        self.arrivals: list[tuple[int, int, str, int]] = []  # (interval, tid, decision, batch)
        self._next_id = 0
        self.estimates = {name: self._idle_estimate(p) for name, p in self.profiles.items()}
        self.estimates.update({a: r for a, r in (estimates or {}).items() if a in self.profiles})
        self.phi = 0.9

    def _idle_estimate(self, p: AppProfile) -> float:
        """Initial R^a: the layer chain at the mean batch on an idle mean host."""
        t = self.cfg.workload.fragment_cores
        speed = float(np.mean([h.mips * min(t, h.cores) / h.cores for h in self.cfg.hosts]))
        return p.total_instructions("layer") * float(np.mean(p.batch_range)) / (speed * 1e6)

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    # ---------------------------------------------------------------- network and tasks
    def transfer_s(self, src: int | None, dst: int | None, nbytes: float) -> float:
        """Seconds to move ``nbytes`` between hosts (None = broker) via the broker."""
        if src == dst:
            return 0.0
        ends = [self.links[h] for h in (src, dst) if h is not None]
        # Through the broker: both one-way delays, at the slower link's rate (eq. 4.3 per hop
        # without store-and-forward).
        return sum(e.rtt / 2.0 for e in ends) + nbytes * 8.0 / min(e.rate_bps for e in ends)

    def _compute(self, c: _Container) -> Generator[simpy.Event, Any, None]:
        assert c.host is not None
        if c.task.start is None:
            c.task.start = self.env.now
        yield self.hosts[c.host].submit(c.cid, c.work)
        host = self.hosts[c.host]
        host.ram_used_mb -= c.ram_mb

    def _layer_task(self, task: _Task) -> Generator[simpy.Event, Any, None]:
        prev: int | None = None
        for c in task.containers:
            assert c.placed is not None
            yield c.placed
            yield self.env.timeout(self.transfer_s(prev, c.host, c.fragment.in_bytes * task.batch))
            yield self.env.process(self._compute(c))
            prev = c.host
        out = task.containers[-1].fragment.out_bytes * task.batch
        yield self.env.timeout(self.transfer_s(prev, None, out))
        self._finish(task)

    def _fragment(self, c: _Container) -> Generator[simpy.Event, Any, None]:
        assert c.placed is not None
        yield c.placed
        yield self.env.timeout(self.transfer_s(None, c.host, c.fragment.in_bytes * c.task.batch))
        yield self.env.process(self._compute(c))
        yield self.env.timeout(self.transfer_s(c.host, None, c.fragment.out_bytes * c.task.batch))

    def _parallel_task(self, task: _Task) -> Generator[simpy.Event, Any, None]:
        yield self.env.all_of([self.env.process(self._fragment(c)) for c in task.containers])
        self._finish(task)

    def _finish(self, task: _Task) -> None:
        assert task.start is not None
        self.left.append(
            TaskRecord(
                tid=task.tid,
                app=task.app.name,
                decision=task.decision,
                context=task.context,
                arrival=task.arrival,
                start=task.start,
                finish=self.env.now,
                deadline=task.deadline,
                accuracy=task.app.accuracy_of(task.decision),
            )
        )

    # ---------------------------------------------------------------- broker
    def _draw(self, interval: int) -> list[ScriptedTask]:
        if self.script is not None:
            return list(self.script.get(interval, []))
        w = self.cfg.workload
        drawn = []
        for _ in range(int(self.rng.poisson(w.arrival_rate))):
            app = self.profiles[self.app_names[int(self.rng.integers(len(self.app_names)))]]
            batch = int(self.rng.integers(app.batch_range[0], app.batch_range[1] + 1))
            sla_s = float(self.rng.uniform(w.sla_min, w.sla_max)) * self.cfg.interval_s
            drawn.append(ScriptedTask(app.name, batch, sla_s))
        return drawn

    def _new_tasks(self, interval: int) -> list[_Task]:
        tasks = []
        view = self.view(interval)
        for spec in self._draw(interval):
            if spec.app not in self.profiles:
                raise InputError(f"scripted task names unknown app {spec.app!r}")
            app, batch, sla_s = self.profiles[spec.app], spec.batch, spec.sla_s
            tid = self._id()
            info = NewTask(tid, app.name, batch, sla_s, self.estimates[app.name], interval, view)
            decision = self.policy.splitter.decide(info)
            if decision not in app.fragments:
                raise InputError(f"splitter {self.policy.splitter.name!r} returned {decision!r}")
            now = self.env.now
            self.arrivals.append((interval, tid, decision, batch))
            task = _Task(tid, app, batch, now, now + sla_s, decision, info.context)
            for frag in app.fragments[decision]:
                c = _Container(self._id(), task, frag, frag.instructions * batch, frag.ram_mb)
                c.placed = self.env.event()
                task.containers.append(c)
            tasks.append(task)
        return tasks

    def view(self, interval: int) -> ClusterView:
        hs = self.cfg.hosts
        return ClusterView(
            interval=interval,
            interval_s=self.cfg.interval_s,
            mips=np.array([h.mips for h in hs]),
            cores=np.array([h.cores for h in hs], dtype=float),
            ram_mb=np.array([h.ram_mb for h in hs]),
            ram_used_mb=np.array([h.ram_used_mb for h in self.hosts]),
            jobs=np.array([len(h.jobs) for h in self.hosts], dtype=float),
            fragment_cores=float(self.cfg.workload.fragment_cores),
            queued_work=np.array([max(h.queued_work, 0.0) for h in self.hosts]),
            bandwidth_mbps=np.array([e.rate_bps / 1e6 for e in self.links]),
            latency_s=np.array([e.rtt / 2.0 for e in self.links]),
            power_max_w=np.array([h.power.peak_w for h in hs]),
        )

    def _pending_views(self) -> list[PendingContainer]:
        now = self.env.now
        out = []
        for c in self.pending:
            chain = c.task.containers
            i = chain.index(c)
            prev = chain[i - 1].host if kind(c.task.decision) == "layer" and i > 0 else None
            out.append(
                PendingContainer(
                    cid=c.cid,
                    tid=c.task.tid,
                    app=c.task.app.name,
                    decision=c.task.decision,
                    index=i,
                    work=c.work,
                    ram_mb=c.ram_mb,
                    in_bytes=c.fragment.in_bytes * c.task.batch,
                    prev_host=prev,
                    deadline_s=c.task.deadline - now,
                )
            )
        return out

    def _place(self, interval: int) -> None:
        if not self.pending:
            return
        view = self.view(interval)
        choice = self.policy.placer.place(view, self._pending_views())
        if len(choice) != len(self.pending):
            raise InputError(
                f"placer {self.policy.placer.name!r} returned {len(choice)} hosts "
                f"for {len(self.pending)} containers"
            )
        still = []
        for c, h in zip(self.pending, choice):
            host = self.hosts[h] if h is not None else None
            if host is None or host.spec.ram_mb - host.ram_used_mb < c.ram_mb:
                still.append(c)
                continue
            assert h is not None and c.placed is not None
            c.host = h
            host.ram_used_mb += c.ram_mb
            host.queued_work += c.work
            c.placed.succeed()
        self.pending = still

    def _close(
        self, interval: int, energy0: list[float], busy0: list[float], sched: float, new: int
    ) -> None:
        now = self.env.now
        for h in self.hosts:
            h.advance(now)
        energy = [h.energy_j - e for h, e in zip(self.hosts, energy0)]
        busy = tuple((h.busy_s - b) / self.cfg.interval_s for h, b in zip(self.hosts, busy0))
        max_j = max(h.power.peak_w for h in self.cfg.hosts) * self.cfg.interval_s
        aec = float(np.mean(energy)) / max_j
        left, self.left = tuple(self.left), []
        for t in left:  # eq. 2: EMA of the layer-split response time per app
            if t.decision == "layer":
                self.estimates[t.app] = (
                    self.phi * t.response + (1 - self.phi) * self.estimates[t.app]
                )
        om, art, rew = reward(list(left), aec, self.cfg.interval_s, self.cfg.workload.sla_max)
        m = IntervalMetrics(
            interval=interval,
            energy_j=float(sum(energy)),
            aec=aec,
            sched_s=sched,
            jain=jain(busy),
            busy=busy,
            left=left,
            o_mab=om,
            art=art,
            reward=rew,
            new_tasks=new,
            waiting=len(self.pending),
        )
        self.metrics.append(m)
        self.policy.splitter.observe(interval, left)
        self.policy.placer.observe(m)
        if self.on_interval is not None:
            self.on_interval(m)

    def _broker(self) -> Generator[simpy.Event, Any, None]:
        for t in range(self.cfg.intervals):
            if t > 0:
                self.mobility.advance(self.cfg.interval_s)
                self.links = [self.mobility.link(i) for i in range(len(self.hosts))]
            for h in self.hosts:
                h.advance(self.env.now)
            energy0 = [h.energy_j for h in self.hosts]
            busy0 = [h.busy_s for h in self.hosts]
            t0 = time.perf_counter()
            tasks = self._new_tasks(t)
            for task in tasks:
                self.pending.extend(task.containers)
                layer = kind(task.decision) == "layer"
                proc = self._layer_task if layer else self._parallel_task
                self.env.process(proc(task))
            self._place(t)
            sched = time.perf_counter() - t0
            yield self.env.timeout(self.cfg.interval_s)
            self._close(t, energy0, busy0, sched, len(tasks))

    def run(self) -> list[IntervalMetrics]:
        """Simulate ``config.intervals`` intervals; tasks still running at the end are dropped."""
        self.env.process(self._broker())
        self.env.run(until=self.cfg.intervals * self.cfg.interval_s + 1e-6)
        return self.metrics
