"""``make demo``: a real split-inference run with dynamic rescheduling (Luger 2023, ch. 3-7).

What it does, with no arguments, in about a minute and a half:

1. starts the cloud tier (FastAPI on uvicorn) on a free loopback port;
2. runs the edge agent on AlexNet for 60 s under a condition schedule (bandwidth
   2 -> 20 -> 5 Mbit/s, RTT 20 ms, edge clock 0.4 -> 0.4 -> 0.6 GHz, emulated by time
   dilation), re-planning for the lowest predicted latency (OL) whenever the measured
   bandwidth or the clock moves by more than 20 %; a live table shows the split,
   predicted against measured latency, and cost (eq. 4.4, rented edge);
3. measures every split point under one fixed setting (latency parts per split point,
   OL/OC/CL marked);
4. writes ``results/demo/``: ``requests.csv`` (Table 6.1 columns) and ``requests.jsonl``,
   ``sweep.csv``, ``summary.json``, ``latency_parts.png``, ``split_over_time.png``;
5. stops the server gracefully.

Options: ``python -m edgesplit.demo [--seconds S] [--model M] [--out DIR]``.

Why these settings: the cloud tier runs on this same host, so offloading only pays when
the edge is clearly slower; a Raspberry-Pi-class edge (0.4-0.6 GHz of this host's cores)
is. Under this schedule Luger's Algorithm 1 at w = 0.5 keeps cut 6 at every step, which
shows no re-planning, so the run optimises latency; the plots still mark OL, OC and CL.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.live import Live
from rich.table import Table

from edgesplit.io import write_atomic, write_json
from edgesplit.runtime.conditions import Conditions, ConditionSchedule, ConditionStep
from edgesplit.runtime.loop import RunOptions, build_run, measure_cuts
from edgesplit.runtime.server import BackgroundServer, ServerConfig, create_app
from edgesplit.runtime.session import SessionStep
from edgesplit.system.prices import Prices

#: The demo's schedule; ``examples/conditions-demo.yaml`` holds the same steps.
DEMO_SCHEDULE = ConditionSchedule(
    unit="seconds",
    steps=[
        ConditionStep(at=0, bandwidth_mbit=2.0, rtt_ms=20.0, clock_ghz=0.4),
        ConditionStep(at=20, bandwidth_mbit=20.0),
        ConditionStep(at=40, bandwidth_mbit=5.0, clock_ghz=0.6),
    ],
)
SWEEP_SETTING = Conditions(bandwidth_mbit=20.0, rtt_ms=20.0, clock_ghz=0.4)


def measured_cost(m: Any) -> float:
    """Luger eq. 4.4 (rent) on measured times: edge seconds and cloud seconds, $/h Table 4.1."""
    return Prices().cost({"edge": m.edge_lat, "cloud": m.cloud_lat}, strategy="rent")


def live_table(rows: deque[SessionStep], elapsed: float, seconds: float) -> Table:
    table = Table(title=f"alexnet split inference, t = {elapsed:4.0f} / {seconds:.0f} s")
    for col in ("id", "BW", "seen", "GHz", "split", "pred s", "meas s", "cost $", "note"):
        table.add_column(col, justify="right", no_wrap=True)
    for s in rows:
        m = s.measurement
        table.add_row(
            str(m.id),
            f"{s.conditions.bandwidth_mbit:g}",
            f"{s.observation.bandwidth_mbit:.1f}{s.bandwidth_source[0]}",
            f"{m.CS:g}",
            str(m.SP),
            "" if m.predicted_lat is None else f"{m.predicted_lat:.3f}",
            f"{m.overall_lat:.3f}",
            "" if m.cost is None else f"{m.cost:.1e}",
            "fallback" if m.fallback else ("" if m.correct in (None, True) else "MISMATCH"),
        )
    table.caption = "BW: scheduled Mbit/s; seen: m = measured, s = sensor; cost: eq. 4.4, rent"
    return table


def plot_latency_parts(
    sweep: dict[int, dict[str, float]], marks: dict[str, int], pred: np.ndarray, path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cuts = sorted(sweep)
    edge = np.array([sweep[k]["edge_lat"] for k in cuts])
    comm = np.array([max(sweep[k]["comm_lat"], 0.0) for k in cuts])
    cloud = np.array([sweep[k]["cloud_lat"] for k in cuts])
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.bar(cuts, edge, label="edge (eq. 3.1)", color="#4c72b0")
    ax.bar(cuts, comm, bottom=edge, label="communication (eq. 3.3)", color="#dd8452")
    ax.bar(cuts, cloud, bottom=edge + comm, label="cloud (eq. 3.2)", color="#55a868")
    ax.plot(cuts, pred[cuts], "k.--", label="predicted total")
    top = float((edge + comm + cloud).max())
    for i, (name, k) in enumerate(marks.items()):
        ax.annotate(name, (k, top * (1.02 + 0.07 * i)), ha="center", fontsize=9, fontweight="bold")
        ax.axvline(k, color="grey", lw=0.8, ls=":")
    s = SWEEP_SETTING
    ax.set_title(
        f"alexnet latency parts per split point ({s.bandwidth_mbit:g} Mbit/s, "
        f"RTT {s.rtt_ms:g} ms, clock {s.clock_ghz:g} GHz; measured medians)"
    )
    ax.set_xlabel("split point (nodes on the edge)")
    ax.set_ylabel("seconds")
    ax.set_ylim(0, top * 1.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_atomic(path, buf.getvalue())


def plot_split_over_time(steps: list[SessionStep], t0: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array([s.measurement.start - t0 for s in steps])
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    ax1.step(t, [s.measurement.SP for s in steps], where="post", color="#c44e52", label="split")
    ax1.set_ylabel("split point")
    tw = ax1.twinx()
    tw.step(
        t,
        [s.conditions.bandwidth_mbit for s in steps],
        where="post",
        color="#4c72b0",
        alpha=0.6,
        label="bandwidth",
    )
    tw.step(
        t,
        [s.measurement.CS for s in steps],
        where="post",
        color="#8172b2",
        alpha=0.6,
        label="clock GHz",
    )
    tw.set_ylabel("Mbit/s, GHz")
    ax1.legend(loc="upper left", fontsize=8)
    tw.legend(loc="upper right", fontsize=8)
    ax2.plot(t, [s.measurement.overall_lat for s in steps], ".", label="measured (eq. 3.4)")
    ax2.plot(t, [s.measurement.predicted_lat or np.nan for s in steps], "-", label="predicted")
    ax2.set_ylabel("latency s")
    ax2.set_xlabel("seconds since start")
    ax2.legend(fontsize=8)
    ax1.set_title("alexnet: split point chosen over time (lowest predicted latency, OL)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_atomic(path, buf.getvalue())


def sweep_csv(sweep: dict[int, dict[str, float]], pred: np.ndarray) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["SP", "edge_lat", "comm_lat", "cloud_lat", "overall_lat", "predicted_lat"])
    for k in sorted(sweep):
        r = sweep[k]
        w.writerow([k, r["edge_lat"], r["comm_lat"], r["cloud_lat"], r["overall_lat"], pred[k]])
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgesplit.demo", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the dynamic run")
    parser.add_argument("--model", default="alexnet")
    parser.add_argument("--out", type=Path, default=Path("results/demo"))
    args = parser.parse_args(argv)
    console = Console()
    torch.set_num_threads(2)
    span = DEMO_SCHEDULE.span
    schedule = (
        ConditionSchedule(
            unit="seconds",
            steps=[
                s.model_copy(update={"at": s.at * args.seconds / 60.0}) for s in DEMO_SCHEDULE.steps
            ],
        )
        if span
        else DEMO_SCHEDULE
    )
    console.print(f"[bold]edgesplit demo[/]: starting the cloud tier with {args.model} ...")
    server = BackgroundServer(create_app(ServerConfig(models=(args.model,)))).start()
    try:
        opts = RunOptions(
            model=args.model,
            schedule=schedule,
            server=server.url,
            check=True,
            objective="latency",
        )
        parts = build_run(opts)
        console.print(
            f"cloud at {server.url}; profiled {len(parts.seconds)} nodes "
            f"({parts.seconds.sum() * 1e3:.1f} ms per unsplit inference on this host); "
            f"clock emulation: {parts.agent.clock.method}"
        )
        recent: deque[SessionStep] = deque(maxlen=14)
        steps: list[SessionStep] = []
        t0 = time.time()
        with Live(console=console, refresh_per_second=4) as live:

            def on_step(step: SessionStep) -> None:
                recent.append(step)
                steps.append(step)
                live.update(live_table(recent, time.time() - t0, args.seconds))

            parts.session.run(duration_s=args.seconds, on_step=on_step)
        console.print("measuring every split point at one setting for the latency-parts plot ...")
        n = len(parts.agent.graph.nodes)
        sweep = measure_cuts(parts, SWEEP_SETTING, range(n + 1), repeats=3)
        parts.transport.close()
    finally:
        server.stop()
    write_outputs(args.out, parts, steps, sweep, t0, console)
    return 0


def write_outputs(
    out: Path,
    parts: Any,
    steps: list[SessionStep],
    sweep: dict[int, dict[str, float]],
    t0: float,
    console: Console,
) -> None:
    from edgesplit.plan.tradeoff import luger_choice, optimal_cost, optimal_latency
    from edgesplit.runtime.rescheduler import Observation

    planner = parts.planner
    s = SWEEP_SETTING
    compute = parts.session.compute
    table = planner.table(
        Observation(
            bandwidth_mbit=s.bandwidth_mbit,
            rtt_s=s.rtt_ms / 1000,
            clock_ghz=s.clock_ghz,
            edge_factor=compute.edge_factor if compute else 1.0,
            cloud_factor=compute.cloud_factor if compute else 1.0,
        )
    )
    marks = {
        "OL": optimal_latency(table),
        "OC": optimal_cost(table),
        "CL": luger_choice(table, 0.5),
        "OL meas": min(sweep, key=lambda k: sweep[k]["overall_lat"]),
    }
    recorder = parts.session.recorder
    recorder.save(out / "requests.csv", out / "requests.jsonl")
    write_atomic(out / "sweep.csv", sweep_csv(sweep, table.latency_s))
    plot_latency_parts(sweep, marks, table.latency_s, out / "latency_parts.png")
    plot_split_over_time(steps, t0, out / "split_over_time.png")
    rows = recorder.rows
    summary = {
        "model": parts.agent.model,
        "requests": len(rows),
        "fallbacks": sum(m.fallback for m in rows),
        "mismatches": sum(m.correct is False for m in rows),
        "clock_method": parts.agent.clock.method,
        "shaper": "in-process token bucket + user-space RTT",
        "replans": [
            {"at_request": e.at_request, "reason": e.reason, "cut": e.cut}
            for e in parts.rescheduler.events
        ],
        "sweep_setting": s.model_dump(),
        "compute_factors": {
            "edge": compute.edge_factor if compute else 1.0,
            "cloud": compute.cloud_factor if compute else 1.0,
        },
        "marks": marks,
        "median_overall_s_by_split": {
            str(k): float(np.median([m.overall_lat for m in rows if k == m.SP]))
            for k in sorted({m.SP for m in rows})
        },
    }
    write_json(out / "summary.json", summary)
    console.print(
        f"[bold green]done[/]: {len(rows)} requests, {summary['fallbacks']} fallbacks, "
        f"{summary['mismatches']} mismatches, {len(summary['replans'])} re-plans; "
        f"marks at {s.bandwidth_mbit:g} Mbit/s: {json.dumps(marks)}; outputs in {out}/"
    )


if __name__ == "__main__":
    raise SystemExit(main())
