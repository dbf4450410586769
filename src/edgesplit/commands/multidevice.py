"""``edgesplit multidevice``: N devices sharing one MEC server (Gao et al. 2019)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from edgesplit.commands.common import JsonOpt, TrustOpt, console, err_console, print_json
from edgesplit.commands.progress import Progress, keeping, rows_kept, stage
from edgesplit.commands.tables import eng, make_table

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
    rows = [
        [
            d.name,
            d.model,
            _split_label(d),
            eng(d.local_finish_s, "s"),
            "-" if d.arrival_s is None else eng(d.arrival_s, "s"),
            eng(d.completion_s, "s"),
            eng(d.transmitted_bytes, "B"),
        ]
        for d in schedule.devices
    ]
    columns = ["device", "model", "split after", "local done", "arrives", "done", "sent"]
    return make_table(title, columns, rows, text={"device", "model", "split after"})


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
    plan_out: str | None = typer.Option(
        None, "--plan", help="write the schedule as a plan that `edgesplit run-plan` runs"
    ),
    delay_model: str | None = typer.Option(
        None,
        "--delay-model",
        help="for 'gao' delay sources: 'paper' (eq. 1-2, conv only) or a `fit-delay -o` file "
        "[default: fit on this host]",
    ),
    trust_model_code: bool = TrustOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Choose every device's split and the server order; print delays and bytes sent."""
    from edgesplit.io import write_json
    from edgesplit.multidevice.instance import load_problem
    from edgesplit.multidevice.solve import solve
    from edgesplit.predict.gao import delay_models

    models = delay_models(delay_model) if delay_model is not None else None
    problem = load_problem(instance, trust_model_code, models)
    with Progress(f"multidevice solve ({solver})", count=False, info=f"{problem.n} devices"):
        schedule = solve(problem, solver, time_limit=time_limit)
    doc = {**schedule.to_dict(), "instance": instance, "problem": _problem_meta(problem)}
    plan = _plan(problem, schedule) if plan_out else None
    if output:
        write_json(output, doc)
    if plan_out and plan is not None:
        write_json(plan_out, plan.to_dict())
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


def _plan(problem: Any, schedule: Any) -> Any:
    """The schedule as a plan, with each model's fingerprint (built and traced here)."""
    from edgesplit.models import ModelRequest
    from edgesplit.models.loader import trace_request
    from edgesplit.multidevice.plan import model_options, to_plan
    from edgesplit.runtime.stages import fingerprint

    fingerprints = {}
    for model in sorted({d.model for d in problem.devices if d.model != "explicit"}):
        request = ModelRequest.from_record(model, model_options(problem, model), "instance", True)
        fingerprints[model] = fingerprint(trace_request(request, "layer")[0])
    return to_plan(problem, schedule, fingerprints)


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
    output: str | None = typer.Option(
        None, "-o", "--output", help="save the fit as a predictor (`solve --delay-model FILE`)"
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Fit Gao's polynomial delay model (eq. 1-2) on this host; report held-out R² and MAE.

    Every layer is timed by the one profiler: wall clock, median of ``--repeats`` after
    warm-up, on 1 torch thread (see edgesplit.predict.gao).
    """
    import os

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
        "load_average": os.getloadavg()[0],
        **report.to_dict(),
    }
    if output:
        from edgesplit.predict.store import save_predictor

        held = {k: v for k, v in report.to_dict().items() if k != "coefficients"}
        save_predictor(report.model, output, holdout={**held, "models": models})
        doc["output"] = output
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
    rounds: int = typer.Option(3, "--requests", "-n", min=1, help="rounds: requests per device"),
    output: str | None = typer.Option(None, "-o", "--output", help="write the run JSON"),
    trust_model_code: bool = TrustOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Plan, then run on the engine: one `edgesplit serve` honouring the planned order, N devices."""
    from edgesplit.io import write_json
    from edgesplit.multidevice.instance import load_problem
    from edgesplit.multidevice.run import run_processes, summarise
    from edgesplit.multidevice.solve import solve
    from edgesplit.runtime.scheduled import new_run_id
    from edgesplit.runtime.server import ServerProcess

    problem = load_problem(instance, trust_model_code)
    with Progress(f"multidevice run ({solver})", count=False, info="solving"):
        schedule = solve(problem, solver, time_limit=time_limit)
    plan = _plan(problem, schedule)
    stage(
        "multidevice run",
        f"planned {solver}: average {schedule.average_s * 1e3:.2f} ms; starting the server "
        f"and {problem.n} device processes for {rounds} round(s)",
    )
    models = tuple(sorted({d.model for d in problem.devices}))
    args = ("--threads", "1", "--max-concurrency", str(problem.n + 1))
    server = ServerProcess(models, args=args).start()
    try:
        records = run_processes(plan, server.url, rounds, new_run_id())
    finally:
        server.stop()
    result = summarise(plan, records, rounds)
    factors = set(problem.meta.get("server_factor", [1.0]))
    result["server_emulated"] = factors == {1.0} and problem.server_load == 0
    doc = {"instance": instance, "solver": solver, "plan": plan.to_dict(), **result}
    if output:
        write_json(output, doc)
    if as_json:
        print_json(doc)
    else:
        _print_schedule_run(result)
    if not result["outputs_equal"]:
        raise typer.Exit(1)


def _print_schedule_run(result: dict[str, Any]) -> None:
    rows = [
        [
            d["name"],
            str(d["split"]),
            "-" if d["predicted_s"] is None else eng(d["predicted_s"], "s"),
            eng(d["measured_s"], "s"),
            str(d["equal"]),
        ]
        for d in result["devices"]
    ]
    title = f"plan vs reality ({result['rounds']} rounds)"
    columns = ["device", "split", "predicted", "measured", "equal"]
    console.print(make_table(title, columns, rows, text={"device", "split"}))
    pred = result["predicted_average_s"]
    console.print(
        f"average: predicted {pred * 1e3:.2f} ms, measured "
        f"{result['measured_average_s'] * 1e3:.2f} ms; server order honoured in "
        f"{result['rounds_in_order']}/{result['rounds']} rounds"
        + (f" ({result['timed_out_turns']} turns timed out)" if result["timed_out_turns"] else "")
    )
    if result.get("server_emulated") is False:
        err_console.print(
            "the server runs at host speed: its delay factor and load are not emulated"
        )


def run_schedule_plan(
    plan: Any,
    topology: Any,
    rounds: int,
    *,
    token: str | None = None,
    failover: bool = True,
    trust_model_code: bool = False,
    as_json: bool = False,
    csv_path: Path | None = None,
    jsonl_path: Path | None = None,
) -> None:
    """``run-plan`` of a scheduled plan: every requesting device in a thread of this process.

    One record per device and round goes to ``--csv``/``--jsonl`` as it completes.
    """
    import threading

    import torch

    from edgesplit.multidevice.run import outputs_equal, summarise
    from edgesplit.runtime.records import RecordWriter
    from edgesplit.runtime.scheduled import new_run_id, open_device, run_threads

    run_id = new_run_id()
    devices, refs, inputs = [], {}, {}
    try:
        for req in plan.schedule["requests"]:
            dev, module, xs = open_device(
                plan, req["name"], topology, run_id, token=token, failover=failover,
                trust_model_code=trust_model_code,
            )  # fmt: skip
            devices.append(dev)
            with torch.inference_mode():
                refs[dev.name] = module(*xs)
            inputs[dev.name] = xs
        for line in {line for d in devices for line in d.engine.start()}:
            err_console.print(f"warning: {line}; running locally until it answers /healthz")
        records: list[dict[str, Any]] = []
        lock = threading.Lock()

        def done(dev: Any, r: int, outs: Any, record: dict[str, Any]) -> None:
            record = {**record, "equal": outputs_equal(dev, outs, refs[dev.name])}
            with lock:
                records.append(record)
                writer.write(record)
                bar.advance(info=f"last {dev.name} round {r}")

        total = rounds * len(devices)
        with (
            RecordWriter(csv_path, jsonl_path) as writer,
            keeping(lambda: rows_kept(len(records), total, [csv_path, jsonl_path])),
            Progress(f"run-plan {plan.model}", total=total, unit="requests") as bar,
        ):
            run_threads(devices, rounds, lambda d, r: inputs[d.name], done)
    finally:
        for d in devices:
            d.close()
    result = summarise(plan, records, rounds)
    threads = {torch.get_num_threads()} | {
        t["threads"] for r in records for t in r["tiers"].values()
    }
    result["bitwise_expected"] = len(threads) == 1
    if as_json:
        print_json({"model": plan.model, "devices": list(plan.devices), **result})
    else:
        _print_schedule_run(result)
    if result["bitwise_expected"] and not result["outputs_equal"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    multidevice_app.command("solve")(solve_cmd)
    multidevice_app.command("run")(run_cmd)
    multidevice_app.command("freeze")(freeze)
    multidevice_app.command("fit-delay")(fit_delay)
    app.add_typer(multidevice_app, name="multidevice")
