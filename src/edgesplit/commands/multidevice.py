"""``edgesplit multidevice``: N devices sharing one MEC server (Gao et al. 2019)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from edgesplit.commands.common import JsonOpt, TrustOpt, console, err_console, print_json

multidevice_app = typer.Typer(
    help="Split N devices' DNNs and schedule one shared MEC server (Gao et al. 2019, eq. 10-16).",
    no_args_is_help=True,
)

InstanceArg = typer.Argument(
    ..., help="instance file (YAML or JSON; `edgesplit schema multidevice`)"
)
SolverOpt = typer.Option("cpsat", "--solver", help="milp | cpsat | heuristic | local | server")
TimeLimitOpt = typer.Option(60.0, "--time-limit", help="solver time limit in seconds")


def _table(schedule: Any, title: str) -> Table:
    table = Table(title=title)
    for col in (
        "device",
        "model",
        "split after",
        "local done (s)",
        "arrives (s)",
        "done (s)",
        "sent (B)",
    ):
        table.add_column(
            col, justify="left" if col in ("device", "model", "split after") else "right"
        )
    for d in schedule.devices:
        table.add_row(
            d.name,
            d.model,
            _split_label(d),
            f"{d.local_finish_s:.4f}",
            "-" if d.arrival_s is None else f"{d.arrival_s:.4f}",
            f"{d.completion_s:.4f}",
            f"{d.transmitted_bytes:,}",
        )
    return table


def _split_label(d: Any) -> str:
    if d.arrival_s is None:
        return "(local only)"
    return d.split_after or "(input: server only)"


def solve_cmd(
    instance: str = InstanceArg,
    solver: str = SolverOpt,
    time_limit: float = TimeLimitOpt,
    gantt: str | None = typer.Option(None, "--gantt", help="write the schedule as a PNG"),
    output: str | None = typer.Option(None, "-o", "--output", help="write the schedule JSON"),
    trust_model_code: bool = TrustOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Choose every device's split and the server order; print delays and bytes sent."""
    from edgesplit.io import write_json
    from edgesplit.multidevice.instance import load_problem
    from edgesplit.multidevice.solve import solve

    problem = load_problem(instance, trust_model_code)
    schedule = solve(problem, solver, time_limit=time_limit)
    doc = {**schedule.to_dict(), "instance": instance, "problem": _problem_meta(problem)}
    if output:
        write_json(output, doc)
    if gantt:
        from edgesplit.multidevice.gantt import draw_gantt

        draw_gantt(problem, schedule, gantt)
    if as_json:
        print_json(doc)
        return
    console.print(_table(schedule, f"{solver}: {problem.n} devices, status {schedule.status}"))
    order = " → ".join(
        f"{schedule.devices[s.device].name}[{s.first}:{s.stop}]" for s in schedule.segments
    )
    console.print(f"server order: {order or '(idle)'}")
    gap = "" if schedule.gap is None else f", proven gap {schedule.gap:.2%}"
    console.print(
        f"average delay [bold]{schedule.average_s * 1e3:.2f} ms[/], transmitted "
        f"{schedule.transmitted_bytes:,} B, solved in {schedule.solve_s:.2f} s{gap}"
    )


def _problem_meta(problem: Any) -> dict[str, Any]:
    return {"devices": problem.n, "server_load": problem.server_load, **problem.meta}


def freeze(
    instance: str = InstanceArg,
    output: str = typer.Option(..., "-o", "--output", help="explicit instance JSON to write"),
    trust_model_code: bool = TrustOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Measure/predict the delays once and write them as an explicit instance file."""
    from edgesplit.io import write_json
    from edgesplit.multidevice.instance import explicit_instance, load_problem

    problem = load_problem(instance, trust_model_code)
    write_json(output, explicit_instance(problem))
    summary = {"output": output, "devices": problem.n, **problem.meta}
    if as_json:
        print_json(summary)
    else:
        console.print(f"wrote {problem.n} devices' delays to {output}")


def fit_delay(
    models: list[str] = typer.Argument(..., help="zoo models whose layers are measured"),
    samples: int = typer.Option(40, "--samples", help="random single-layer blocks to measure"),
    repeats: int = typer.Option(5, "--repeats", help="timed repeats per layer"),
    as_json: bool = JsonOpt,
) -> None:
    """Fit Gao's polynomial delay model (eq. 1-2) on this host; report held-out R² and MAE."""
    from edgesplit.commands.common import load_graph
    from edgesplit.multidevice.instance import PROFILE_THREADS
    from edgesplit.predict.gao import fit_with_holdout, sample_layers
    from edgesplit.predict.profile import profile_graph

    nodes, secs = sample_layers(samples, repeats=repeats, threads=PROFILE_THREADS)
    for model in models:
        graph, _, example = load_graph(model)
        nodes.extend(graph.nodes)
        prof = profile_graph(
            graph, example.single("fit-delay"), threads=PROFILE_THREADS, repeats=repeats, warmup=2
        )
        secs.extend(prof.seconds(graph))
    report = fit_with_holdout(nodes, secs)
    doc = {
        "models": models,
        "samples": len(nodes),
        "timer": "wall clock (time.perf_counter)",
        "threads": PROFILE_THREADS,
        **report.to_dict(),
    }
    if as_json:
        print_json(doc)
    else:
        console.print(
            f"Gao eq. 1-2 fit on {len(nodes)} layers (wall clock, {PROFILE_THREADS} torch "
            f"thread): held-out R² {report.r2:.4f}, MAE "
            f"{report.mae_s * 1e3:.3f} ms (conv R² {report.r2_conv})"
        )


def run_cmd(
    instance: str = InstanceArg,
    solver: str = SolverOpt,
    time_limit: float = TimeLimitOpt,
    output: str | None = typer.Option(None, "-o", "--output", help="write the run JSON"),
    trust_model_code: bool = TrustOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Plan, then run: one server process and N shaped agents on loopback; compare times."""
    from edgesplit.io import write_json
    from edgesplit.multidevice.execute import run_schedule
    from edgesplit.multidevice.instance import load_problem
    from edgesplit.multidevice.solve import solve

    problem = load_problem(instance, trust_model_code)
    schedule = solve(problem, solver, time_limit=time_limit)
    if not as_json:
        err_console.print(f"planned {solver}: average {schedule.average_s * 1e3:.2f} ms; running…")
    result = run_schedule(problem, schedule)
    doc = {"instance": instance, "solver": solver, "plan": schedule.to_dict(), **result.to_dict()}
    if output:
        write_json(output, doc)
    if as_json:
        print_json(doc)
        return
    table = Table(title="plan vs reality")
    for col in ("device", "split", "predicted (s)", "measured (s)"):
        table.add_column(col, justify="right")
    for d in result.devices:
        table.add_row(
            d["name"], str(d["split"]), f"{d['predicted_s']:.4f}", f"{d['completion_s']:.4f}"
        )
    console.print(table)
    console.print(
        f"average: predicted {result.predicted_average_s * 1e3:.2f} ms, measured "
        f"{result.measured_average_s * 1e3:.2f} ms (ratio {result.ratio:.3f}); outputs equal: "
        f"{result.outputs_equal}"
    )


def register(app: typer.Typer) -> None:
    multidevice_app.command("solve")(solve_cmd)
    multidevice_app.command("run")(run_cmd)
    multidevice_app.command("freeze")(freeze)
    multidevice_app.command("fit-delay")(fit_delay)
    app.add_typer(multidevice_app, name="multidevice")
