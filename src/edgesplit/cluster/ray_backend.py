"""Real execution of SplitPlace decisions on Ray (Tuli 2021 §4 runs containers on Pis).

The simulator decides (split per task, host per fragment); this module replays exactly
those decisions with real networks on real inputs and measures what happens:

- **Hosts** are Ray custom resources ``host0 .. host{H-1}`` (one unit each: one fragment at
  a time per host). Locally ``ray.init(resources=...)`` creates them on one node; on a real
  cluster start each worker with ``ray start --address HEAD --resources '{"host3": 1}'``
  and pass ``address``.
- **Application**: the MNIST-like app trained on sklearn digits
  (:func:`edgesplit.cluster.variant_accuracy.train_digits`) at 8x8 input. Layer fragments are
  the engine's stages (:func:`edgesplit.runtime.stages.build_stages`, parts of the one
  partition mechanism) of the contiguous assignment that
  :func:`edgesplit.cluster.apps.balanced_cuts` gives; semantic fragments are the k
  class-subset networks; compressed is the half-width network.
- **Tasks** are Ray tasks pinned to their host's resource; a layer split chains them. Every
  tensor crossing between tasks (inputs, intermediate tensors, scores, predictions) is one
  safetensors body made by the runtime's wire codecs (:mod:`edgesplit.runtime.codecs`,
  ``codec``: ``none`` exact by default), as on the engine's links: a stage receives what
  it and later stages read and hands on only that plus the outputs. A semantic split fans
  out and a broker-side task combines class scores. Inputs are batches of held-out digit
  images; accuracy is measured against their labels.
- **Time**: intervals last ``interval_s`` real seconds; each task is submitted when the
  simulator created it, and its response time is measured on the driver from submission
  to the arrival of its result.

The simulated twin uses the same hosts with MIPS calibrated by timing the full network on
this machine (one thread), so simulated and measured response times can be compared.
Cost: one Ray task per fragment, plus a calibration forward pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from edgesplit.cluster.apps import AppProfile, balanced_cuts, build_profile
from edgesplit.cluster.config import AppSpec, ClusterConfig, HostSpec, WorkloadSpec, kind
from edgesplit.cluster.interface import ClusterView, PendingContainer, Placer
from edgesplit.cluster.metrics import IntervalMetrics, TaskRecord
from edgesplit.cluster.policies import make_policy, prepare
from edgesplit.cluster.simulator import Simulator
from edgesplit.cluster.variant_accuracy import SemanticEnsemble, train_digits
from edgesplit.errors import InputError
from edgesplit.graph import Graph, trace
from edgesplit.runtime import codecs, wire
from edgesplit.runtime.stages import Stages, build_stages
from edgesplit.system.power import RASPBERRY_PI_4B_4GB


@dataclass(frozen=True)
class RealTask:
    """One task replayed on Ray: decisions from the simulator, times measured."""

    tid: int
    decision: str
    hosts: tuple[int, ...]
    simulated_s: float
    measured_s: float
    correct: int
    batch: int
    matches_local: bool  # predictions equal to the unsplit network's, run in-process
    answer_bytes: int  # bytes of the codec body carrying the task's answer


def layer_stages(graph: Graph, k: int) -> Stages:
    """The ``k`` layer fragments of ``graph`` as engine stages (one per fragment, in order)."""
    bounds = [0, *balanced_cuts(graph, k), len(graph.nodes)]
    assignment = [f for f in range(k) for _ in range(bounds[f], bounds[f + 1])]
    return build_stages(graph, tuple(f"fragment{f}" for f in range(k)), assignment)


def handed_on(stages: Stages) -> list[tuple[str, ...]]:
    """Per stage, the values its task passes on: read by a later stage, or model outputs."""
    have = set(stages.graph.input_names)
    out = []
    for st in stages.stages:
        have |= set(st.outputs)
        out.append(tuple(stages.needed_from(st.index + 1, sorted(have))))
    return out


class _Recording:
    """Wraps a placer and remembers the host chosen for every container id."""

    def __init__(self, inner: Placer) -> None:
        self.inner = inner
        self.name = inner.name
        self.hosts: dict[int, int] = {}
        self.tasks: dict[int, list[int]] = {}

    def place(self, view: ClusterView, pending: Sequence[PendingContainer]) -> list[int | None]:
        out = self.inner.place(view, pending)
        for c, h in zip(pending, out):
            self.tasks.setdefault(c.tid, [])
            if h is not None:
                self.hosts[c.cid] = h
                self.tasks[c.tid].append(c.cid)
        return out

    def observe(self, metrics: IntervalMetrics) -> None:
        self.inner.observe(metrics)


def small_cluster(
    hosts: int,
    mips: float,
    interval_s: float,
    intervals: int,
    seed: int,
    arrival_rate: float,
    app: AppSpec,
) -> ClusterConfig:
    specs = [
        HostSpec(
            name=f"host{i}",
            mips=mips,
            cores=1,
            ram_mb=4096.0,
            latency_s=0.0,
            power=RASPBERRY_PI_4B_4GB,
        )
        for i in range(hosts)
    ]
    workload = WorkloadSpec(arrival_rate=arrival_rate, apps=[app], sla_min=1.0, sla_max=4.0)
    return ClusterConfig(
        interval_s=interval_s, intervals=intervals, seed=seed, hosts=specs, workload=workload
    )


def _calibrate_mips(model: torch.nn.Module, flops_per_input: float, batch: int = 256) -> float:
    """Measured million instructions per second of one thread (1 instruction per FLOP)."""
    x = torch.randn(batch, 1, 8, 8)
    with torch.no_grad():
        model(x)
        t0 = time.perf_counter()
        for _ in range(3):
            model(x)
        dt = (time.perf_counter() - t0) / 3
    return flops_per_input * batch / dt / 1e6


def run_on_ray(
    policy: str = "bestfit",
    hosts: int = 4,
    intervals: int = 10,
    interval_s: float = 2.0,
    arrival_rate: float = 2.0,
    seed: int = 0,
    address: str | None = None,
    epochs: int = 8,
    num_cpus: int | None = None,
    codec: str = "none",
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Simulate, replay on Ray, and compare simulated with measured response times.

    ``codec``: the wire codec of every tensor crossing between tasks (lossless ``none`` or
    ``zstd`` keep the split predictions equal to the unsplit network's). ``log`` receives
    one line per stage (training, simulating, replaying).
    """
    say = log or (lambda text: None)
    from edgesplit.system.link import CODECS

    if codec not in CODECS:
        raise InputError(f"codec {codec!r} is unknown; use one of {', '.join(CODECS)}")
    import ray

    torch.set_num_threads(1)
    app = AppSpec(
        name="digits",
        input_shape=(1, 8, 8),
        num_classes=10,
        width=32,
        depth=4,
        batch_min=512,
        batch_max=2048,
    )
    k = 4
    say(f"training the digits networks ({epochs} epochs)")
    trained = train_digits(app, k, epochs=epochs, seed=seed)
    app = app.model_copy(update={"accuracy": trained.accuracy})
    layer_model = trained.modules["layer"]
    graph = trace(layer_model, torch.zeros(1, 1, 8, 8), name="digits")
    mips = _calibrate_mips(layer_model, float(graph.flops))
    cfg = small_cluster(hosts, mips, interval_s, intervals, seed, arrival_rate, app)
    profile: AppProfile = build_profile(app, cfg.workload.model_copy(update={"fragments": k}))
    profiles = {app.name: profile}
    say(f"simulating {intervals} intervals of {policy}")
    learned = prepare(cfg, profiles, [policy])
    pol = make_policy(policy, seed, learned, profiles)
    rec = _Recording(pol.placer)
    pol.placer = rec
    sim = Simulator(cfg, pol, profiles)
    metrics = sim.run()
    arrivals = sim.arrivals
    simulated = {t.tid: t for m in metrics for t in m.left}

    # Every layer decision the policy may take ("layer" = k parts, Gillis' "layer:m" = m).
    chains = {
        d: layer_stages(graph, len(frags))
        for d, frags in profile.fragments.items()
        if kind(d) == "layer"
    }
    semantic = trained.modules["semantic"]
    assert isinstance(semantic, SemanticEnsemble)
    nets: dict[str, list[Any]] = {
        **{d: [st.part for st in chain.stages] for d, chain in chains.items()},
        "semantic": list(semantic.nets),
        "compressed": [trained.modules["compressed"]],
    }

    resources = {f"host{i}": 1.0 for i in range(hosts)}
    # Logical CPUs, not cores: Ray keeps about num_cpus idle workers alive, and every
    # emulated host plus the broker's combine step needs a warm one.
    slots = num_cpus or 2 * hosts + 2
    say(f"replaying {len(sim.arrivals)} tasks on Ray (about {intervals * interval_s:g} s)")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=slots, resources=resources, include_dashboard=False, log_to_driver=False)
    try:
        real = _replay(
            ray,
            nets,
            chains,
            codec,
            semantic.inverse,
            trained,
            arrivals,
            rec,
            simulated,
            interval_s,
            seed,
            slots,
        )
    finally:
        ray.shutdown()
    return {**_report(policy, cfg, real, trained.accuracy, mips), "codec": codec}


def _replay(
    ray: Any,
    nets: dict[str, list[Any]],
    chains: dict[str, Stages],
    codec: str,
    inverse: torch.Tensor,
    trained: Any,
    arrivals: list[tuple[int, int, str, int]],
    rec: _Recording,
    simulated: dict[int, TaskRecord],
    interval_s: float,
    seed: int,
    warm_workers: int,
) -> list[RealTask]:
    limit = wire.DEFAULT_MAX_BYTES

    @ray.remote(num_cpus=0)
    def run_part(part: Any, keep: tuple[str, ...], body: bytes) -> bytes:
        torch.set_num_threads(1)
        values = codecs.decode(body, limit)
        with torch.inference_mode():
            values.update(part({n: values[n] for n in part.input_names}))
        return codecs.encode({n: values[n] for n in keep}, codec)[0]

    @ray.remote(num_cpus=0)
    def run_net(net: Any, body: bytes) -> bytes:
        torch.set_num_threads(1)
        with torch.inference_mode():
            scores = net(codecs.decode(body, limit)["x"])
        return codecs.encode({"scores": scores}, codec)[0]

    @ray.remote(num_cpus=0)
    def combine(*bodies: bytes) -> bytes:
        scores = [codecs.decode(b, limit)["scores"] for b in bodies]
        return codecs.encode({"pred": torch.cat(scores, dim=1)[:, inverse].argmax(1)}, codec)[0]

    refs = {d: [ray.put(n) for n in ns] for d, ns in nets.items()}
    keeps = {d: handed_on(chain) for d, chain in chains.items()}
    graph = chains["layer"].graph

    # Start the worker pool before timing: overlapping sleeps force one process per slot,
    # each importing torch, so later tasks find warm workers instead of spawning them.
    @ray.remote(num_cpus=0)
    def warm(seconds: float) -> int:
        time.sleep(seconds)
        return torch.get_num_threads()

    ray.get([warm.remote(1.0) for _ in range(warm_workers)])
    ray.get(
        [
            run_net.options(resources={f"host{h}": 1.0}).remote(
                refs["compressed"][0], codecs.encode({"x": trained.x_test[:2]}, codec)[0]
            )
            for h in sorted({h for h in rec.hosts.values()})
        ]
    )
    rng = np.random.default_rng(seed)
    x_all, y_all = trained.x_test, trained.y_test
    pending: dict[Any, tuple[int, str, float, torch.Tensor, torch.Tensor, tuple[int, ...]]] = {}
    done: list[RealTask] = []
    start = time.perf_counter()
    by_interval: dict[int, list[tuple[int, str, int]]] = {}
    for interval, tid, decision, batch in arrivals:
        by_interval.setdefault(interval, []).append((tid, decision, batch))
    last = max(by_interval, default=-1)
    for interval in range(last + 1):
        while time.perf_counter() < start + interval * interval_s:
            _collect(
                ray,
                pending,
                done,
                simulated,
                start + interval * interval_s - time.perf_counter(),
                trained.modules,
                graph.output_names[0],
            )
        for tid, decision, batch in by_interval.get(interval, []):
            cids = rec.tasks.get(tid, [])
            if tid not in simulated or len(cids) != len(refs[decision]):
                continue  # never finished (or never fully placed) in the simulation
            hosts = tuple(rec.hosts[c] for c in cids)
            idx = torch.tensor(rng.integers(0, len(x_all), batch))
            x, y = x_all[idx], y_all[idx]
            t0 = time.perf_counter()
            opts = [{"resources": {f"host{h}": 1.0}} for h in hosts]
            if kind(decision) == "layer":
                ref: Any = codecs.encode({graph.input_names[0]: x}, codec)[0]
                for part, keep, o in zip(refs[decision], keeps[decision], opts):
                    ref = run_part.options(**o).remote(part, keep, ref)
            else:
                body = codecs.encode({"x": x}, codec)[0]
                outs = [run_net.options(**o).remote(n, body) for n, o in zip(refs[decision], opts)]
                ref = combine.remote(*outs) if decision == "semantic" else outs[0]
            pending[ref] = (tid, decision, t0, x, y, hosts)
    while pending:
        _collect(ray, pending, done, simulated, 60.0, trained.modules, graph.output_names[0])
    return done


def _collect(
    ray: Any,
    pending: dict[Any, Any],
    done: list[RealTask],
    simulated: dict[int, TaskRecord],
    timeout: float,
    local_models: dict[str, Any],
    output: str,
) -> None:
    if not pending:
        time.sleep(max(timeout, 0.0))
        return
    ready, _ = ray.wait(list(pending), num_returns=1, timeout=max(timeout, 0.0))
    for ref in ready:
        t1 = time.perf_counter()
        tid, decision, t0, x, y, hosts = pending.pop(ref)
        body = ray.get(ref)
        values = codecs.decode(body, wire.DEFAULT_MAX_BYTES)
        chain = kind(decision) == "layer"
        out = values[output] if chain else next(iter(values.values()))
        pred = out if out.dim() == 1 else out.argmax(1)
        with torch.no_grad():  # any layer split's reference is the unsplit layer network
            local = local_models["layer" if chain else decision](x).argmax(1)
        done.append(
            RealTask(
                tid,
                decision,
                hosts,
                simulated[tid].response,
                t1 - t0,
                int((pred == y).sum()),
                len(y),
                bool(torch.equal(pred, local)),
                len(body),
            )
        )


def _report(
    policy: str, cfg: ClusterConfig, real: list[RealTask], accuracy: dict[str, float], mips: float
) -> dict[str, Any]:
    if not real:
        raise InputError("no task completed on Ray; raise --intervals or the arrival rate")
    sim = np.array([t.simulated_s for t in real])
    meas = np.array([t.measured_s for t in real])
    corr = float(np.corrcoef(sim, meas)[0, 1]) if len(real) > 2 and sim.std() > 0 else None
    return {
        "policy": policy,
        "hosts": len(cfg.hosts),
        "intervals": cfg.intervals,
        "interval_s": cfg.interval_s,
        "calibrated_mips_per_host": mips,
        "tasks": len(real),
        "simulated_response_s": {"mean": float(sim.mean()), "median": float(np.median(sim))},
        "measured_response_s": {"mean": float(meas.mean()), "median": float(np.median(meas))},
        "measured_over_simulated_median": float(np.median(meas / sim)),
        "correlation": corr,
        "all_match_local": all(t.matches_local for t in real),
        "measured_accuracy": 100.0 * sum(t.correct for t in real) / sum(t.batch for t in real),
        "trained_accuracy": {k: 100.0 * v for k, v in accuracy.items()},
        "per_task": [t.__dict__ for t in real],
    }
