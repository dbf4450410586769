"""``edgesplit simulate``: run a SplitPlace policy on a simulated mobile edge cluster."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from edgesplit.commands.common import JsonOpt, console, print_json
from edgesplit.commands.flags import check_sim_vs_measured
from edgesplit.commands.progress import Progress
from edgesplit.commands.tables import eng, make_table

PER_APP_KEYS = ("response_intervals", "sla_violation", "accuracy", "layer_fraction")


def summary_table(title: str, rows: dict[str, dict[str, Any]]) -> Table:
    """Table 1 layout: one row per policy (energy in Wh with an SI prefix, scheduling time
    in seconds; the rest are interval counts, ratios and percentages)."""
    cols = [
        ("energy_kwh", "Energy", lambda v: eng(v * 1e3, "Wh")),
        ("sched_s", "Sched.", lambda v: eng(v, "s")),
        ("jain", "Jain", "{:.2f}".format),
        ("wait_intervals", "Wait", "{:.2f}".format),
        ("response_intervals", "Resp.", "{:.2f}".format),
        ("sla_violation", "SLA viol.", "{:.2f}".format),
        ("accuracy", "Acc. %", "{:.2f}".format),
        ("reward_eq8", "Reward (eq. 8)", "{:.2f}".format),
    ]
    cells = [
        [name, *("-" if s.get(key) is None else fmt(s[key]) for key, _, fmt in cols)]
        for name, s in rows.items()
    ]
    return make_table(title, ["Policy", *(label for _, label, _ in cols)], cells, text={"Policy"})


def simulate(
    cluster: Path | None = typer.Option(
        None, "--cluster", help="cluster YAML/JSON (`edgesplit schema cluster`); default: paper"
    ),
    policy: str = typer.Option(
        "splitplace", "--policy", help="splitplace, m+g, r+d, l+g, s+g, gillis, mc, random, bestfit"
    ),
    intervals: int | None = typer.Option(None, "--intervals", min=1, help="override intervals"),
    seed: int | None = typer.Option(None, "--seed", help="override the config's seed"),
    mab_state: Path | None = typer.Option(
        None, "--mab-state", help="trained MAB JSON: loaded if present, else trained and saved"
    ),
    out: Path | None = typer.Option(None, "--out", help="also write the JSON result here"),
    as_json: bool = JsonOpt,
) -> None:
    """Simulate one policy (Tuli 2021) and print Table 1's metrics for it."""
    from edgesplit.cluster.apps import build_profiles
    from edgesplit.cluster.config import ClusterConfig, load_cluster
    from edgesplit.cluster.mab import MABSplitter
    from edgesplit.cluster.metrics import interval_rows, summarize
    from edgesplit.cluster.policies import POLICIES, prepare, run_policy
    from edgesplit.errors import InputError
    from edgesplit.io import write_json

    if policy not in POLICIES:
        raise InputError(f"--policy {policy!r} is unknown; choose one of {', '.join(POLICIES)}")
    import torch

    torch.set_num_threads(1)  # the surrogate is tiny; extra threads only synchronise
    cfg = load_cluster(cluster) if cluster else ClusterConfig()
    updates: dict[str, Any] = {}
    if intervals is not None:
        updates["intervals"] = intervals
    if seed is not None:
        updates["seed"] = seed
    cfg = cfg.model_copy(update=updates)
    profiles = build_profiles(cfg.workload)
    state = None
    if mab_state is not None and mab_state.is_file():
        state = MABSplitter.load(mab_state).state()
    with Progress(f"simulate {policy}", count=False, info="training the learned components"):
        trained = prepare(cfg, profiles, [policy], state)
    if mab_state is not None and state is None and trained.mab_state is not None:
        write_json(mab_state, trained.mab_state)
    with Progress(f"simulate {policy}", total=cfg.intervals, unit="intervals") as bar:
        metrics, _ = run_policy(cfg, policy, profiles, trained, on_interval=lambda m: bar.advance())
    summary = summarize(metrics, cfg.interval_s)
    doc = {
        "policy": policy,
        "seed": cfg.seed,
        "hosts": len(cfg.hosts),
        "intervals": cfg.intervals,
        "summary": summary,
        "per_interval": interval_rows(metrics),
    }
    if out is not None:
        write_json(out, doc)
    if as_json:
        print_json(doc)
        return
    console.print(
        summary_table(
            f"{policy}: {len(cfg.hosts)} hosts, {cfg.intervals} intervals, seed {cfg.seed}",
            {policy: summary},
        )
    )
    per_app = [
        [
            app,
            str(s["tasks"]),
            *(f"{s.get(key, 0):.2f}" for key in PER_APP_KEYS),
        ]
        for app, s in summary["per_app"].items()
    ]
    columns = ["app", "tasks", "resp.", "SLA viol.", "acc. %", "layer share"]
    console.print(make_table("per application", columns, per_app, text={"app"}))


def ray_run(
    policy: str = typer.Option("bestfit", "--policy", help="policy deciding splits/placement"),
    hosts: int = typer.Option(4, "--hosts", min=1, help="emulated hosts (Ray resources)"),
    intervals: int = typer.Option(10, "--intervals", min=1),
    interval_s: float = typer.Option(2.0, "--interval-s", min=0.1, help="real seconds"),
    arrival_rate: float = typer.Option(2.0, "--lambda", min=0.0, help="tasks per interval"),
    seed: int = typer.Option(0, "--seed"),
    epochs: int = typer.Option(8, "--epochs", min=1, help="digits training epochs"),
    address: str | None = typer.Option(
        None, "--address", help="existing Ray cluster (workers started with host resources)"
    ),
    out: Path | None = typer.Option(None, "--out", help="also write the JSON result here"),
    as_json: bool = JsonOpt,
) -> None:
    """Replay a policy's decisions with real fragment networks on Ray; compare with the sim."""
    from edgesplit.cluster.policies import POLICIES
    from edgesplit.cluster.ray_backend import run_on_ray
    from edgesplit.errors import InputError
    from edgesplit.io import write_json

    if policy not in POLICIES:
        raise InputError(f"--policy {policy!r} is unknown; choose one of {', '.join(POLICIES)}")
    with Progress(f"ray-run {policy}", count=False) as bar:
        doc = run_on_ray(
            policy, hosts, intervals, interval_s, arrival_rate, seed, address, epochs,
            log=bar.stage,
        )  # fmt: skip
    if out is not None:
        write_json(out, doc)
    sim, meas = doc["simulated_response_s"], doc["measured_response_s"]
    if as_json:
        print_json(doc)
    else:
        rows = [
            ["mean response", eng(sim["mean"], "s"), eng(meas["mean"], "s")],
            ["median response", eng(sim["median"], "s"), eng(meas["median"], "s")],
            ["tasks", str(doc["tasks"]), str(doc["tasks"])],
            ["accuracy %", "-", f"{doc['measured_accuracy']:.2f}"],
        ]
        title = f"Ray run: {policy}, {hosts} hosts, {intervals} intervals"
        columns = ["quantity", "simulated", "measured"]
        console.print(make_table(title, columns, rows, text={"quantity"}))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    check_sim_vs_measured(
        "ray-run median response",
        sim["median"],
        meas["median"],
        "the simulator prices compute alone, at host speeds calibrated by one forward "
        "pass here, while each measured task also pays Ray's submission, serialisation "
        f"and scheduling, and any load on this machine (load average {load}); compare "
        "on a quiet machine with --interval-s long enough for a task",
    )


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("ray-run")(ray_run)
