"""``make demo``: a 3-tier split run on the engine, placement and codec re-planned live.

What it does, with no arguments, in about two minutes on two cores:

1. writes a topology (device → edge → cloud) to a temporary file and starts the edge and
   the cloud as two real ``edgesplit serve --topology FILE --as NAME`` processes on free
   loopback ports; the edge runs at half this host's speed (``speed_factor: 0.5``), and
   the edge → cloud link is shaped by the servers to 50 Mbit/s with a 20 ms RTT;
2. profiles AlexNet on this host and times the wire codecs on its tensors (the cost model);
3. runs requests for 60 s from this process, the device, under a condition schedule
   (``examples/conditions-demo.yaml``: device → edge bandwidth 2 → 20 → 5 Mbit/s, RTT
   20 ms, device clock 0.4 → 0.6 GHz, emulated by time dilation). The rescheduler re-plans
   when the bandwidth it measures on any link, the clock, or a device's measured compute
   moves by more than 20 %: the planner is the solver registry's ``exhaustive`` placement
   over the three devices, searched jointly with the lossless codec of each link
   (``none`` or ``zstd``, :mod:`edgesplit.plan.codec_choice`), for the lowest predicted
   latency. A switch happens between requests; every output is checked against local
   inference (bitwise: one torch thread on every tier, lossless codecs);
4. writes ``results/demo/``: ``requests.csv`` (Table 6.1 columns, eq. 3.1–3.4 with the
   device as Luger's edge) and ``requests.jsonl``, ``records.jsonl`` (the engine's
   per-request records: stages, hops, bytes before and after the codec), ``plans.csv``,
   ``summary.json``, ``latency_parts.png`` (measured time per device and link for each
   plan used) and ``split_over_time.png`` (nodes per tier, codec and bandwidth over time);
5. stops both servers and prints a summary: requests, failovers, mismatches, re-plans.

Options: ``python -m edgesplit.demo [--seconds S] [--model M] [--out DIR]``. Ctrl-C stops
the servers and exits with status 130, without a traceback; ``requests.csv`` and
``requests.jsonl`` are written as each request finishes, so they keep every completed one.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

try:  # Ctrl-C while torch loads (seconds) exits 130 without a traceback, like later on
    import numpy as np
    import torch
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    from edgesplit.io import write_atomic, write_json
    from edgesplit.runtime.conditions import ConditionSchedule, ConditionStep
    from edgesplit.runtime.measure import RowLog
    from edgesplit.runtime.session import SessionStep
except KeyboardInterrupt:
    print("interrupted: stopped while starting; nothing written", file=sys.stderr)
    raise SystemExit(130) from None

#: The demo's schedule; ``examples/conditions-demo.yaml`` holds the same steps.
DEMO_SCHEDULE = ConditionSchedule(
    unit="seconds",
    steps=[
        ConditionStep(at=0, bandwidth_mbit=2.0, rtt_ms=20.0, clock_ghz=0.4),
        ConditionStep(at=20, bandwidth_mbit=20.0),
        ConditionStep(at=40, bandwidth_mbit=5.0, clock_ghz=0.6),
    ],
)
DEVICES = ("device", "edge", "cloud")
EDGE_SPEED = 0.5
EDGE_CLOUD_MBIT, EDGE_CLOUD_RTT_S = 50.0, 0.02
CODECS = ("none", "zstd")
REF_GHZ = 2.6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def topology_doc(ports: dict[str, int], first: Any) -> dict[str, Any]:
    """The run's topology: the device link is shaped here (live), edge → cloud by the servers."""
    return {
        "format": "edgesplit.topology",
        "devices": [
            {"name": "device", "url": "local"},
            {
                "name": "edge",
                "url": f"http://127.0.0.1:{ports['edge']}",
                "speed_factor": EDGE_SPEED,
            },
            {"name": "cloud", "url": f"http://127.0.0.1:{ports['cloud']}"},
        ],
        "links": [
            {
                "a": "device",
                "b": "edge",
                "bandwidth": f"{first.bandwidth_mbit}mbit",
                "rtt": f"{first.rtt_ms}ms",
                "codecs": list(CODECS),
                "shaping": False,
            },
            {
                "a": "edge",
                "b": "cloud",
                "bandwidth": f"{EDGE_CLOUD_MBIT}mbit",
                "rtt": f"{EDGE_CLOUD_RTT_S * 1e3}ms",
                "codecs": list(CODECS),
                "shaping": True,
            },
        ],
    }


@contextmanager
def tiers(model: str, topology: Path, ports: dict[str, int]) -> Iterator[None]:
    """The edge and the cloud as ``edgesplit serve`` processes; stopped on the way out."""
    import httpx

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = []
    for name, port in ports.items():
        serve = ["serve", "--model", model, "--port", str(port), "--threads", "1"]
        relay = ["--topology", str(topology), "--as", name]
        cmd = [sys.executable, "-m", "edgesplit.cli", *serve, *relay]
        quiet = subprocess.DEVNULL
        procs.append(subprocess.Popen(cmd, stdout=quiet, stderr=quiet, env=env))
    try:
        deadline = time.monotonic() + 180
        for proc, port in zip(procs, ports.values()):
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"edgesplit serve on port {port} did not start")
                time.sleep(0.2)
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def placement(plan: Any) -> str:
    """Nodes per tier, ``device/edge/cloud``."""
    return "/".join(str(plan.assignment.count(i)) for i in range(len(plan.devices)))


def codec_text(plan: Any) -> str:
    codecs = plan.meta.get("codecs") or {}
    return ",".join(f"{k.replace('|', '-')}={v}" for k, v in sorted(codecs.items())) or "none"


def live_table(rows: deque[SessionStep], elapsed: float, seconds: float, model: str) -> Table:
    table = Table(title=f"{model} on device → edge → cloud, t = {elapsed:4.0f} / {seconds:.0f} s")
    for col in ("id", "BW", "seen", "GHz", "nodes d/e/c", "codecs", "pred s", "meas s", "note"):
        table.add_column(col, justify="right", no_wrap=True)
    for s in rows:
        m = s.measurement
        table.add_row(
            str(m.id),
            f"{s.conditions.bandwidth_mbit:g}",
            f"{s.observation.bandwidth_mbit:.1f}{s.bandwidth_source[0]}",
            f"{m.CS:g}",
            placement(s.plan),
            codec_text(s.plan),
            "" if m.predicted_lat is None else f"{m.predicted_lat:.3f}",
            f"{m.overall_lat:.3f}",
            "failover" if m.fallback else ("" if m.correct in (None, True) else "MISMATCH"),
        )
    table.caption = "BW: scheduled device→edge Mbit/s; seen: m = measured, s = sensor"
    return table


def build(model: str, topology: Any, schedule: ConditionSchedule, console: Console) -> Any:
    """Profile, time the codecs, and wire the engine, the planner and the session."""
    from edgesplit.graph import trace
    from edgesplit.models import ModelRequest
    from edgesplit.plan.codec_choice import codec_solver
    from edgesplit.plan.problem import Problem
    from edgesplit.predict.codec_costs import measure_graph_codecs
    from edgesplit.predict.profile import profile_graph
    from edgesplit.runtime.clock import ClockEmulator
    from edgesplit.runtime.conditions import ComputeMonitor
    from edgesplit.runtime.emulation import Emulation
    from edgesplit.runtime.engine import Engine, link_key, make_hops
    from edgesplit.runtime.planning import RegistryPlanner
    from edgesplit.runtime.rescheduler import Rescheduler
    from edgesplit.runtime.session import Session
    from edgesplit.runtime.shaping import TokenBucketShaper
    from edgesplit.runtime.stages import Stages, build_stages, fingerprint
    from edgesplit.system.link import Link

    module, example = ModelRequest(model).load()
    graph = trace(module, example.single("the demo"), name=model)
    x = torch.randn(graph.tensor(graph.input_names[0]).shape)
    prof = profile_graph(graph, x, threads=1, repeats=5, warmup=2)
    host = np.array(prof.seconds(graph, calibrate=True))
    record = measure_graph_codecs(graph, [x], repeats=3, compute_s=float(host.sum()))
    console.print(
        f"profiled {len(host)} nodes ({host.sum() * 1e3:.1f} ms per unsplit inference on this "
        f"host, 1 thread); zstd on its tensors, median ratio "
        f"{float(np.median(list(record.zstd_ratio.values()))):.2f}"
    )
    first = schedule.at(0)
    problem = Problem(
        graph,
        DEVICES,
        np.array([host, host / EDGE_SPEED, host]),
        {
            frozenset((0, 1)): Link.of(first.bandwidth_mbit * 1e6, first.rtt_ms / 1e3, CODECS),
            frozenset((1, 2)): Link.of(EDGE_CLOUD_MBIT * 1e6, EDGE_CLOUD_RTT_S, CODECS),
        },
        (0.0, 0.0, 0.0),
    )

    joint_codecs = codec_solver(record, "auto-lossless", "exhaustive")

    def joint(p: Problem) -> Any:
        # The device reaches the cloud only through the edge's relay: for the cost model
        # that is the two links in series (codec none; the codecs are chosen per hop).
        a, b = p.link(0, 1), p.link(1, 2)
        assert a is not None and b is not None
        relay = Link.of(1 / (1 / a.rate_bps + 1 / b.rate_bps), a.rtt + b.rtt)
        links = {**p.links, frozenset((0, 2)): relay}
        return joint_codecs(replace(p, links=links, tensor_seconds=None))

    planner = RegistryPlanner(problem, "exhaustive", ref_ghz=REF_GHZ, solver=joint)
    links = [TokenBucketShaper(first.link), TokenBucketShaper(first.link)]
    clock = ClockEmulator(ref_ghz=REF_GHZ, clock_ghz=first.clock_ghz)
    emulation = Emulation({"edge": links[0]}, {"edge": links[1]}, {"device": clock})
    cache: dict[tuple[int, ...], Stages] = {}

    def stages_for(plan: Any) -> Stages:
        if plan.assignment not in cache:
            cache[plan.assignment] = build_stages(graph, DEVICES, plan.assignment)
        return cache[plan.assignment]

    here = build_stages(graph, DEVICES, [0] * len(graph.nodes))
    hops = make_hops(topology, "device", None)
    engine = Engine(
        here, model, fingerprint(graph), "device", frozenset({"device"}), hops,
        emulation=emulation,
    )  # fmt: skip
    edge_cloud = link_key("edge", "cloud")
    session = Session(
        engine,
        Rescheduler(planner, threshold=0.2),
        schedule,
        stages_for,
        link=link_key("device", "edge"),
        clock=clock,
        shapers=links,
        sensors={edge_cloud: EDGE_CLOUD_MBIT},
        rtts={edge_cloud: EDGE_CLOUD_RTT_S},
        compute=ComputeMonitor(),
        check=True,
    )
    return session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgesplit.demo", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the dynamic run")
    parser.add_argument("--model", default="alexnet")
    parser.add_argument("--out", type=Path, default=Path("results/demo"))
    args = parser.parse_args(argv)
    console = Console()
    # The request rows are written as each request finishes: Ctrl-C keeps them.
    log = RowLog(args.out / "requests.csv", args.out / "requests.jsonl")
    try:
        with log:
            return run_demo(args, console, log)
    except KeyboardInterrupt:
        n = log.count
        kept = (
            f"{n} request{'s' * (n != 1)} kept in {log.csv_path} and {log.jsonl_path}"
            if n
            else "no outputs written"
        )
        print(f"interrupted: {kept}; the edge and cloud servers were stopped", file=sys.stderr)
        return 130


def run_demo(args: argparse.Namespace, console: Console, log: RowLog) -> int:
    from edgesplit.system.topology import load_topology

    torch.set_num_threads(1)
    span = DEMO_SCHEDULE.span
    scale = args.seconds / 60.0 if span else 1.0
    schedule = ConditionSchedule(
        unit="seconds",
        steps=[s.model_copy(update={"at": s.at * scale}) for s in DEMO_SCHEDULE.steps],
    )
    ports = {"edge": free_port(), "cloud": free_port()}
    with tempfile.TemporaryDirectory(prefix="edgesplit-demo-") as tmp:
        topo_path = Path(tmp) / "topology.json"
        topo_path.write_text(json.dumps(topology_doc(ports, schedule.at(0)), indent=2))
        topology = load_topology(topo_path)
        console.print(
            f"[bold]edgesplit demo[/]: starting edge (:{ports['edge']}, {EDGE_SPEED}x speed) and "
            f"cloud (:{ports['cloud']}) as `edgesplit serve` processes with {args.model} ..."
        )
        with tiers(args.model, topo_path, ports):
            session = build(args.model, topology, schedule, console)
            recent: deque[SessionStep] = deque(maxlen=14)
            steps: list[SessionStep] = []
            t0 = time.time()
            try:
                with Live(console=console, refresh_per_second=4) as live:

                    def on_step(step: SessionStep) -> None:
                        log.add(step.measurement)
                        recent.append(step)
                        steps.append(step)
                        elapsed = time.time() - t0
                        live.update(live_table(recent, elapsed, args.seconds, args.model))

                    session.run(duration_s=args.seconds, on_step=on_step)
            finally:
                session.engine.close()
    write_outputs(args.out, session, steps, t0, console)
    return 0


def plan_rows(steps: list[SessionStep]) -> list[dict[str, Any]]:
    """One row per distinct plan, in order of first use: medians of what it measured."""
    groups: dict[tuple[Any, ...], list[SessionStep]] = {}
    for s in steps:
        key = (s.plan.assignment, codec_text(s.plan))
        groups.setdefault(key, []).append(s)
    rows = []
    for group in groups.values():
        ok = [s for s in group if not s.measurement.fallback] or group
        parts: dict[str, list[float]] = {}
        for s in ok:
            seen: dict[str, float] = {}
            for st in s.record["stages"]:
                part = f"{st['device']} compute"
                seen[part] = seen.get(part, 0.0) + float(st["compute_s"])
            for h in s.record["hops"]:
                seen[f"{h['src']}→{h['dst']} transfer"] = float(h["transfer_s"])
            for k, v in seen.items():
                parts.setdefault(k, []).append(v)
        rows.append(
            {
                "first_request": group[0].measurement.id,
                "nodes_device_edge_cloud": placement(group[0].plan),
                "codecs": codec_text(group[0].plan),
                "requests": len(group),
                "predicted_s": group[0].plan.predicted.get("latency_s"),
                "measured_s": float(np.median([s.measurement.overall_lat for s in ok])),
                "parts": {k: float(np.median(v)) for k, v in parts.items()},
            }
        )
    return rows


def plot_latency_parts(rows: list[dict[str, Any]], model: str, path: Path) -> None:
    """Stacked measured medians per plan used: compute per tier, transfer per link."""
    from edgesplit.plotting import COLOURS, engineering, legend_right, pyplot, save

    plt = pyplot()
    order = [
        "device compute", "device→edge transfer", "edge compute",
        "edge→cloud transfer", "cloud compute",
    ]  # fmt: skip
    extra = sorted({k for r in rows for k in r["parts"]} - set(order))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    xs = np.arange(len(rows))
    bottom = np.zeros(len(rows))
    for name in order + extra:
        vals = np.array([r["parts"].get(name, 0.0) for r in rows])
        key = name.rsplit(" ", 1)[0]
        hatch = "//" if name.endswith("transfer") else None
        ax.bar(xs, vals, bottom=bottom, label=name, color=COLOURS.get(key, "#cccccc"),
               hatch=hatch, edgecolor="white", linewidth=0.5)  # fmt: skip
        bottom += vals
    predicted = [r["predicted_s"] or np.nan for r in rows]
    ax.plot(xs, predicted, "k_", ms=18, mew=2, ls="none", label="predicted total")
    ax.set_ylim(0, 1.1 * float(np.nanmax([*bottom, *predicted, 1e-3])))
    ticks = [f"{r['nodes_device_edge_cloud']}\n" + r["codecs"].replace(",", "\n") for r in rows]
    ax.set_xticks(xs, ticks, fontsize=7)
    ax.set_xlabel("plan (nodes on device/edge/cloud, codec per link), in order of first use")
    ax.set_ylabel("latency per request (measured median)")
    engineering(ax, "s")
    ax.set_title(f"{model}: where each re-planned placement spends its time")
    legend_right(ax)
    save(fig, path)


def plot_split_over_time(steps: list[SessionStep], t0: float, model: str, path: Path) -> None:
    """Nodes per tier, the emulated conditions (bandwidth and clock, each on its own axis)
    and measured vs predicted latency over the run."""
    from edgesplit.plotting import COLOURS, count_axis, engineering, legend_right, pyplot, save

    plt = pyplot()
    t = np.array([s.measurement.start - t0 for s in steps])
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    counts = np.array([[s.plan.assignment.count(d) for d in range(3)] for s in steps])
    low = np.zeros(len(steps))
    for d, tier in enumerate(DEVICES):
        ax1.fill_between(t, low, low + counts[:, d], step="post", color=COLOURS[tier],
                         alpha=0.8, label=f"nodes on the {tier}")  # fmt: skip
        low = low + counts[:, d]
    total = int(counts.sum(axis=1).max()) if len(steps) else 0
    zstd = [i for i, s in enumerate(steps) if "zstd" in codec_text(s.plan)]
    if zstd:
        ax1.plot(t[zstd], np.full(len(zstd), total + 1.5), "x", color="k", ms=4, clip_on=False,
                 label="× above the bands: zstd on a link")  # fmt: skip
    ax1.set_ylim(0, total + 2.5)
    ax1.set_ylabel("graph nodes")
    count_axis(ax1, "y")
    ax1.set_title(f"{model}: placement over device → edge → cloud re-planned live (lowest latency)")
    legend_right(ax1, x=1.1)
    ax2.step(t, [s.conditions.bandwidth_mbit for s in steps], where="post",
             color=COLOURS["device→edge"], label="device→edge bandwidth")  # fmt: skip
    ax2.set_ylabel("bandwidth (Mbit/s)")
    ax2.set_ylim(bottom=0)
    clock = ax2.twinx()
    clock.step(t, [s.conditions.clock_ghz for s in steps], where="post", ls="--",
               color=COLOURS["device"], label="device clock (emulated)")  # fmt: skip
    clock.set_ylabel("device clock (GHz)")
    clock.set_ylim(bottom=0)
    ax2.set_title("emulated conditions (condition schedule)")
    legend_right(clock, [ax2, clock], x=1.1)
    ax3.plot(t, [s.measurement.overall_lat for s in steps], ".", color="black",
             label="measured (eq. 3.4)")  # fmt: skip
    ax3.plot(t, [s.measurement.predicted_lat or np.nan for s in steps], "-",
             color="grey", label="predicted for the plan in use")  # fmt: skip
    ax3.set_ylabel("latency per request")
    engineering(ax3, "s")
    ax3.set_ylim(bottom=0)
    ax3.set_xlabel("time since start (s)")
    ax3.set_title("end-to-end latency")
    legend_right(ax3, x=1.1)
    save(fig, path)


def plans_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["first_request", "nodes_device_edge_cloud", "codecs", "requests",
                "predicted_s", "measured_s"])  # fmt: skip
    for r in rows:
        w.writerow([r["first_request"], r["nodes_device_edge_cloud"], r["codecs"],
                    r["requests"], r["predicted_s"], r["measured_s"]])  # fmt: skip
    return buf.getvalue()


def write_outputs(
    out: Path, session: Any, steps: list[SessionStep], t0: float, console: Console
) -> None:
    model = session.engine.model
    rows = session.recorder.rows
    write_atomic(
        out / "records.jsonl",
        "".join(json.dumps({"id": s.measurement.id, **s.record}) + "\n" for s in steps),
    )
    plans = plan_rows(steps)
    write_atomic(out / "plans.csv", plans_csv(plans))
    plot_latency_parts(plans, model, out / "latency_parts.png")
    plot_split_over_time(steps, t0, model, out / "split_over_time.png")
    events = session.rescheduler.events
    summary = {
        "model": model,
        "tiers": {"device": "this process", "edge": "edgesplit serve", "cloud": "edgesplit serve"},
        "requests": len(rows),
        "failovers": sum(m.fallback for m in rows),
        "mismatches": sum(m.correct is False for m in rows),
        "clock_method": session.clock.method,
        "shaper": "token bucket per direction (device link: this process; edge-cloud: servers)",
        "replans": [
            {
                "at_request": e.at_request,
                "reason": e.reason,
                "nodes_device_edge_cloud": placement(e.plan),
                "codecs": codec_text(e.plan),
            }
            for e in events
        ],
        "compute_factors": dict(session.compute.factors),
        "plans": plans,
    }
    write_json(out / "summary.json", summary)
    switches = sum(
        1 for a, b in zip(steps, steps[1:]) if (a.plan.assignment, codec_text(a.plan))
        != (b.plan.assignment, codec_text(b.plan))
    )  # fmt: skip
    console.print(
        f"[bold green]done[/]: {len(rows)} requests, {summary['failovers']} failovers, "
        f"{summary['mismatches']} mismatches, {len(events)} re-plans "
        f"({switches} switches of placement or codec, {len(plans)} plans used); "
        f"outputs in {out}/"
    )


if __name__ == "__main__":
    raise SystemExit(main())
