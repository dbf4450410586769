"""Runtime commands: ``serve`` (the cloud tier) and ``run`` (the edge agent loop)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from edgesplit.commands.common import (
    ExampleOpt,
    InputOpt,
    InputShapeOpt,
    JsonOpt,
    ModelArg,
    ModelConfigOpt,
    TrustOpt,
    WeightsOpt,
    console,
    err_console,
    model_request,
    print_json,
)
from edgesplit.errors import InputError


def serve(
    model: list[str] = typer.Option(
        ["alexnet"],
        "--model",
        "-m",
        help="model to serve (repeat for several); the model options below apply to each",
    ),
    inputs: list[str] | None = InputOpt,
    input_shape: str | None = InputShapeOpt,
    example: str | None = ExampleOpt,
    weights: str | None = WeightsOpt,
    model_config: list[str] | None = ModelConfigOpt,
    trust_model_code: bool = TrustOpt,
    host: str = typer.Option("127.0.0.1", help="bind address; non-loopback needs --token"),
    port: int = typer.Option(8000, help="TCP port"),
    device: str = typer.Option("cpu", help="cpu or cuda (the cloud tier on a GPU)"),
    token: str | None = typer.Option(None, envvar="EDGESPLIT_TOKEN", help="bearer token"),
    insecure: bool = typer.Option(False, help="allow a non-loopback bind without a token"),
    max_concurrency: int = typer.Option(2, help="inferences running at once"),
    max_queue: int = typer.Option(16, help="admitted requests waiting; beyond: 503"),
    max_body: int = typer.Option(256 * 1024 * 1024, help="largest request body, bytes"),
    threads: int | None = typer.Option(None, help="torch intra-op threads (per replica)"),
    ray_replicas: int | None = typer.Option(
        None, help="run N replicas of the same app on Ray Serve instead of one uvicorn"
    ),
    ray_address: str | None = typer.Option(
        None, help="join this Ray cluster ('auto', 'ray://h:10001'); default: a private one"
    ),
    ray_cpus: int = typer.Option(2, help="logical CPUs of the private local Ray"),
) -> None:
    """Run the cloud tier: finishes split inferences sent by `edgesplit run` (Ctrl-C stops)."""
    from edgesplit.runtime.server import ServerConfig, check_bind
    from edgesplit.runtime.server import serve as run_server

    check_bind(host, token, insecure)  # refuse before any model is loaded
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise InputError(f"--device must be cpu or cuda, not {device!r}")
    if threads:
        torch.set_num_threads(threads)
    requests = tuple(
        model_request(m, inputs, input_shape, example, weights, model_config) for m in model
    )
    config = ServerConfig(
        models=requests,
        device=device,
        max_body_bytes=max_body,
        max_concurrency=max_concurrency,
        max_queue=max_queue,
        token=token,
    )
    if ray_replicas is not None:
        from edgesplit.runtime.serve_ray import RayOptions, serve_replicated

        options = RayOptions(
            replicas=ray_replicas,
            host=host,
            port=port,
            address=ray_address,
            num_cpus=ray_cpus,
            # A replica may ask for no more CPU than the private Ray has per replica.
            replica_cpus=1.0 if ray_address else min(1.0, ray_cpus / max(1, ray_replicas)),
            threads=threads or 1,
            insecure=insecure,
        )
        err_console.print(
            f"serving {', '.join(model)} on http://{host}:{port} "
            f"({ray_replicas} Ray Serve replicas, {device})"
        )
        serve_replicated(config, options)
        return
    err_console.print(f"serving {', '.join(model)} on http://{host}:{port} ({device})")
    run_server(config, host=host, port=port, insecure=insecure)


def run(
    model: str = ModelArg,
    inputs: list[str] | None = InputOpt,
    input_shape: str | None = InputShapeOpt,
    example: str | None = ExampleOpt,
    weights: str | None = WeightsOpt,
    model_config: list[str] | None = ModelConfigOpt,
    trust_model_code: bool = TrustOpt,
    server: str | None = typer.Option(
        None, help="cloud URL, e.g. http://127.0.0.1:8000; default: an in-process server"
    ),
    token: str | None = typer.Option(None, envvar="EDGESPLIT_TOKEN", help="bearer token"),
    cut: int | None = typer.Option(None, help="fixed split point; default: plan and re-plan"),
    requests: int | None = typer.Option(None, "--requests", "-n", help="number of requests"),
    duration: float | None = typer.Option(None, help="run this many seconds instead"),
    schedule: Path | None = typer.Option(None, help="condition schedule YAML"),
    bandwidth: str = typer.Option("10mbit", help="link bandwidth when no --schedule, e.g. 7.2mbit"),
    rtt: str = typer.Option("20ms", help="round-trip time when no --schedule, e.g. 40ms"),
    clock: str = typer.Option("2.6GHz", help="emulated edge clock when no --schedule"),
    ref_clock: str = typer.Option(
        "2.6GHz", help="this host's real clock (time-dilation reference)"
    ),
    shape: bool = typer.Option(True, help="shape the link in-process (token bucket + RTT)"),
    objective: str = typer.Option("weighted", help="latency, cost, energy or weighted"),
    weight: float = typer.Option(0.5, help="Luger w: 0 latency only .. 1 cost only"),
    strategy: str = typer.Option("rent", help="own or rent the edge server (eq. 4.4)"),
    interval: float | None = typer.Option(None, help="also re-plan every this many seconds"),
    threshold: float = typer.Option(0.2, help="re-plan on this relative change"),
    retries: int = typer.Option(2, help="retries per request before the local fallback"),
    timeout: float = typer.Option(10.0, help="seconds per request"),
    check: bool = typer.Option(False, help="compare every result with local inference"),
    calibrate: bool = typer.Option(
        True, help="feed measured edge/cloud compute times back into the predictions"
    ),
    layers: bool = typer.Option(False, help="per-layer edge and cloud times as CSV rows"),
    csv_path: Path = typer.Option(Path("results/run/requests.csv"), "--csv", help="CSV out"),
    jsonl_path: Path | None = typer.Option(None, "--jsonl", help="JSON lines out"),
    as_json: bool = JsonOpt,
) -> None:
    """Run the edge agent: head here, tail on the cloud, one CSV row per request."""
    from edgesplit.runtime.conditions import ConditionSchedule
    from edgesplit.runtime.loop import RunOptions, run_agent
    from edgesplit.units import parse_bandwidth, parse_duration, parse_frequency

    if requests is None and duration is None:
        requests = 20
    sched = (
        ConditionSchedule.load(schedule)
        if schedule
        else ConditionSchedule.constant(
            bandwidth_mbit=parse_bandwidth(bandwidth) / 1e6,
            rtt_ms=parse_duration(rtt) * 1e3,
            clock_ghz=parse_frequency(clock) / 1e9,
        )
    )
    ref_ghz = parse_frequency(ref_clock) / 1e9
    opts = RunOptions(
        model=model,
        request=model_request(model, inputs, input_shape, example, weights, model_config),
        server=server,
        token=token,
        fixed_cut=cut,
        schedule=sched,
        ref_ghz=ref_ghz,
        shape=shape,
        objective=objective,
        weight=weight,
        strategy=strategy,
        interval_s=interval,
        threshold=threshold,
        retries=retries,
        timeout_s=timeout,
        check=check,
        node_times=layers,
        calibrate=calibrate,
    )
    table = Table(title=f"edgesplit run {model}")
    for col in (
        "id",
        "SP",
        "BW",
        "CS",
        "edge s",
        "comm s",
        "cloud s",
        "overall s",
        "pred s",
        "note",
    ):
        table.add_column(col, justify="right")
    result = run_agent(opts, requests=requests, duration_s=duration)
    result.recorder.layer_rows = layers
    result.recorder.save(csv_path, jsonl_path)
    summary = result.summary()
    if as_json:
        print_json(summary)
        return
    for m in result.recorder.rows:
        table.add_row(*_row(m))
    console.print(table)
    console.print(
        f"{summary['requests']} requests, {summary['fallbacks']} local fallbacks, "
        f"{summary['replans']} re-plans, clock method {summary['clock_method']}; "
        f"CSV {csv_path}"
    )


def _row(m: Any) -> list[str]:
    note = "fallback" if m.fallback else ""
    if m.correct is False:
        note += " MISMATCH"
    pred = "" if m.predicted_lat is None else f"{m.predicted_lat:.4f}"
    return [
        str(m.id),
        str(m.SP),
        f"{m.BW:g}",
        f"{m.CS:g}",
        f"{m.edge_lat:.4f}",
        f"{m.comm_lat:.4f}",
        f"{m.cloud_lat:.4f}",
        f"{m.overall_lat:.4f}",
        pred,
        note,
    ]


def run_plan(
    plan_file: Path = typer.Argument(..., help="plan JSON written by `edgesplit plan -o`"),
    remote: list[str] = typer.Option(
        [], "--remote", help="DEVICE=URL of a server running `edgesplit serve --model M`"
    ),
    token: str | None = typer.Option(None, envvar="EDGESPLIT_TOKEN", help="bearer token"),
    inputs: list[str] | None = InputOpt,
    input_shape: str | None = InputShapeOpt,
    example: str | None = ExampleOpt,
    weights: str | None = WeightsOpt,
    model_config: list[str] | None = ModelConfigOpt,
    trust_model_code: bool = TrustOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Execute a multi-device plan for real: local parts here, the others on their servers."""
    import torch

    from edgesplit.commands.common import file_model_request, load_graph
    from edgesplit.graph.trace import flat_inputs
    from edgesplit.graph.verify import outputs_equal
    from edgesplit.models import ModelRequest
    from edgesplit.plan.types import load_plan
    from edgesplit.runtime.multihop import execute_plan
    from edgesplit.runtime.transport import HTTPTransport

    plan = load_plan(plan_file)
    source = f"plan file {str(plan_file)!r}"
    if inputs or input_shape or example or weights or model_config:
        request = file_model_request(
            plan.model, source, trust_model_code, inputs, input_shape, example, weights,
            model_config,
        )  # fmt: skip
    else:
        recorded = plan.meta.get("model_options") or {}
        if not isinstance(recorded, dict):
            raise InputError(f"{source}: meta.model_options must be a mapping; re-run plan -o")
        request = ModelRequest.from_record(plan.model, recorded, source, trust_model_code)
    urls = {}
    for item in remote:
        name, sep, url = item.partition("=")
        if not sep or name not in plan.devices:
            raise InputError(
                f"--remote {item!r}: write DEVICE=URL with DEVICE one of {', '.join(plan.devices)}"
            )
        urls[name] = url
    graph, module, ex = load_graph(request)
    x = flat_inputs(module, graph, ex.args, ex.kwargs)
    if len(plan.assignment) != len(graph.nodes):
        raise InputError(
            f"{source} assigns {len(plan.assignment)} nodes but {plan.model!r} has "
            f"{len(graph.nodes)}; re-plan with the same model and granularity"
        )
    remotes = {name: HTTPTransport(url, token=token) for name, url in urls.items()}
    try:
        out, hops = execute_plan(graph, plan.assignment, plan.devices, remotes, x)
    finally:
        for t in remotes.values():
            t.close()
    with torch.inference_mode():
        equal = outputs_equal(out, ex.run(module))
    doc = {
        "model": plan.model,
        "devices": list(plan.devices),
        "equal_to_local": equal,
        "hops": [
            {
                "part": h.part,
                "device": h.device,
                "tensors": list(h.sent),
                "sent_bytes": h.sent_bytes,
                "received_bytes": h.received_bytes,
                "remote_s": h.remote_s,
            }
            for h in hops
        ],
    }
    if as_json:
        print_json(doc)
    else:
        for h in hops:
            console.print(
                f"part {h.part} on {h.device}: sent {len(h.sent)} tensors ({h.sent_bytes:,} B), "
                f"remote {h.remote_s * 1e3:.1f} ms"
            )
        console.print(f"output equal to local inference: {equal}")
    if not equal:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("run")(run)
    app.command("run-plan")(run_plan)
