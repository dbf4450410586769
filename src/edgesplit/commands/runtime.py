"""Runtime commands: ``serve`` (the cloud tier) and ``run`` (the edge agent loop)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from edgesplit.commands.common import (
    ExampleOpt,
    InputOpt,
    InputsFileOpt,
    InputShapeOpt,
    JsonOpt,
    ModelArg,
    ModelConfigOpt,
    ModelsOpt,
    TrustOpt,
    WeightsOpt,
    console,
    err_console,
    model_request,
    print_json,
    refused_setup,
)
from edgesplit.errors import InputError

TlsCaOpt = typer.Option(
    None,
    "--tls-ca",
    help="PEM CA bundle that https:// tiers' certificates are verified against "
    "(default: the system's trust store; verification is never turned off)",
)


def serve(
    model: list[str] = ModelsOpt,
    inputs: list[str] | None = InputOpt,
    input_shape: str | None = InputShapeOpt,
    example: str | None = ExampleOpt,
    weights: str | None = WeightsOpt,
    model_config: list[str] | None = ModelConfigOpt,
    trust_model_code: bool = TrustOpt,
    host: str = typer.Option("127.0.0.1", help="bind address; non-loopback needs --token"),
    port: int = typer.Option(8000, help="TCP port"),
    device: str = typer.Option("cpu", help="cpu or cuda (the cloud tier on a GPU)"),
    part_cache: str = typer.Option(
        "1GiB", help="bound of the built parts kept (LRU, by parameter+buffer bytes), e.g. 512MiB"
    ),
    token: str | None = typer.Option(None, envvar="EDGESPLIT_TOKEN", help="bearer token"),
    insecure: bool = typer.Option(False, help="allow a non-loopback bind without a token"),
    max_concurrency: int = typer.Option(2, help="inferences running at once"),
    max_queue: int = typer.Option(16, help="admitted requests waiting; beyond: 503"),
    max_body: int = typer.Option(256 * 1024 * 1024, help="largest request body, bytes"),
    max_pending: int | None = typer.Option(
        None, help="bytes of all bodies held at once, arriving or served (default: 512 MiB)"
    ),
    body_timeout: float = typer.Option(60.0, help="seconds a request body may take; else 408"),
    threads: int | None = typer.Option(None, help="torch intra-op threads (per replica)"),
    ray_replicas: int | None = typer.Option(
        None, help="run N replicas of the same app on Ray Serve instead of one uvicorn"
    ),
    ray_address: str | None = typer.Option(
        None, help="join this Ray cluster ('auto', 'ray://h:10001'); default: a private one"
    ),
    ray_cpus: int = typer.Option(2, help="logical CPUs of the private local Ray"),
    wire_port: int = typer.Option(
        0, help="port of the engine's WebSocket transport (0: a free one, named at /v1/wire)"
    ),
    topology: Path | None = typer.Option(
        None, help="topology file: this server's next hops for the engine's relay (with --as)"
    ),
    as_device: str | None = typer.Option(
        None, "--as", help="the topology device this server is (with --topology)"
    ),
    decode_sessions: int = typer.Option(16, help="decode sessions open at once (generate)"),
    decode_kv: str = typer.Option("1GiB", help="KV-cache bytes all decode sessions may reserve"),
    decode_ttl: float = typer.Option(120.0, help="seconds an idle decode session is kept"),
    tls_cert: Path | None = typer.Option(
        None, help="PEM certificate chain: serve HTTPS and WSS (with --tls-key)"
    ),
    tls_key: Path | None = typer.Option(None, help="PEM private key of --tls-cert"),
    tls_ca: Path | None = TlsCaOpt,
) -> None:
    """Run the cloud tier: finishes split inferences sent by `edgesplit run` (Ctrl-C stops)."""
    from edgesplit.runtime.decode_sessions import SessionLimits
    from edgesplit.runtime.server import ServerConfig, check_bind
    from edgesplit.runtime.server import serve as run_server

    check_bind(host, token, insecure)  # refuse before any model is loaded
    if ray_address is not None:
        if ray_replicas is None:
            raise InputError(
                "--ray-address joins a Ray cluster for --ray-replicas N; add --ray-replicas "
                "or drop --ray-address"
            )
        from edgesplit.runtime.serve_ray import check_ray_address

        check_ray_address(ray_address)
    from edgesplit.runtime import security

    tls = security.ServerTLS.of(tls_cert, tls_key)
    security.use_ca(tls_ca)  # this server's relays verify their next hops with it
    if tls is not None and ray_replicas is not None:
        raise InputError("--tls-cert is not supported with --ray-replicas; serve TLS without Ray")
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise InputError(f"--device must be cpu or cuda, not {device!r}")
    if threads:
        torch.set_num_threads(threads)
    topo = _serve_topology(topology, as_device)
    requests = tuple(
        model_request(m, inputs, input_shape, example, weights, model_config) for m in model
    )
    config = ServerConfig(
        topology=topo,
        name=as_device,
        models=requests,
        device=device,
        max_body_bytes=max_body,
        max_pending_bytes=max_pending,
        body_timeout_s=body_timeout,
        max_concurrency=max_concurrency,
        max_queue=max_queue,
        token=token,
        part_cache_bytes=_cache_bytes(part_cache),
        decode=SessionLimits.of(decode_sessions, decode_kv, decode_ttl),
        tls=tls,
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
        serve_replicated(
            config,
            options,
            ready=lambda: err_console.print(
                f"serving {', '.join(model)} on http://{host}:{port} "
                f"({ray_replicas} Ray Serve replicas, {device})"
            ),
        )
        return
    scheme = "https" if tls else "http"

    def ready() -> None:  # once the models are loaded
        err_console.print(f"serving {', '.join(model)} on {scheme}://{host}:{port} ({device})")

    run_server(config, host=host, port=port, insecure=insecure, wire_port=wire_port, ready=ready)


def _cache_bytes(text: str) -> int:
    """``--part-cache`` in bytes (``1GiB``, ``512MiB``, a plain number)."""
    from edgesplit.units import parse_bytes

    try:
        return int(parse_bytes(text))
    except InputError as err:
        raise InputError(f"--part-cache: {err}") from None


def _serve_topology(path: Path | None, name: str | None) -> Any:
    """The server's own topology and name, both or neither; InputError naming the flag."""
    if path is None and name is None:
        return None
    if path is None or name is None:
        raise InputError("give --topology FILE and --as DEVICE together (the relay needs both)")
    from edgesplit.system.topology import load_topology

    topo = load_topology(path)
    try:
        topo.device(name)
    except InputError as err:
        raise InputError(f"--as {name!r}: {err}") from None
    if topo.device(name).local:
        raise InputError(
            f"--as {name!r} is the topology's local device (url 'local'); "
            "a server is one of the devices with a URL"
        )
    return topo


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
    edge_model: Path | None = typer.Option(
        None,
        "--edge-model",
        help="Luger eq. 4.1-4.2 clock model (luger_edge JSON, e.g. from reproduce luger2023) "
        "for the edge seconds instead of profile x clock ratio",
    ),
    shape: bool = typer.Option(True, help="shape the link in-process (token bucket + RTT)"),
    objective: str = typer.Option("weighted", help="latency, cost, energy or weighted"),
    weight: float = typer.Option(0.5, help="Luger w: 0 latency only .. 1 cost only"),
    strategy: str = typer.Option("rent", help="own or rent the edge server (eq. 4.4)"),
    interval: float | None = typer.Option(None, help="also re-plan every this many seconds"),
    threshold: float = typer.Option(0.2, help="re-plan on this relative change"),
    retries: int = typer.Option(2, help="retries per request before the local fallback"),
    no_failover: bool = typer.Option(
        False, "--no-failover", help="stop the run when the cloud fails (default: finish locally)"
    ),
    timeout: float = typer.Option(10.0, help="seconds per request"),
    check: bool = typer.Option(False, help="compare every result with local inference"),
    calibrate: bool = typer.Option(
        True, help="feed measured edge/cloud compute times back into the predictions"
    ),
    layers: bool = typer.Option(False, help="per-stage compute times as extra CSV rows"),
    csv_path: Path = typer.Option(
        Path("results/run/requests.csv"), "--csv", help="CSV out, one row per request as it ends"
    ),
    jsonl_path: Path | None = typer.Option(
        None, "--jsonl", help="JSON lines out, one per request as it ends"
    ),
    as_json: bool = JsonOpt,
    tls_ca: Path | None = TlsCaOpt,
) -> None:
    """Run a two-tier split on the engine: head here, tail on the cloud, one CSV row per request.

    The split is re-planned (Luger Algorithm 1) when bandwidth, RTT, clock or measured
    compute move by --threshold, or every --interval seconds.
    """
    from edgesplit.runtime import security
    from edgesplit.runtime.conditions import ConditionSchedule
    from edgesplit.runtime.loop import RunOptions, run_split
    from edgesplit.units import parse_bandwidth, parse_duration, parse_frequency

    security.use_ca(tls_ca)  # an https:// --url is verified against it (else system trust)

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
        edge_model=str(edge_model) if edge_model else None,
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
        failover=not no_failover,
    )
    import sys

    from edgesplit.commands.progress import Progress, keeping, rows_kept
    from edgesplit.errors import TransportError
    from edgesplit.runtime.measure import RowLog

    # Before the first request: the model is traced and profiled, the cloud tier started.
    preparing = f"tracing and profiling {model}, then requests to {server or 'a local server'}"
    # Rows are written as each request finishes (flushed), so Ctrl-C keeps them all.
    with (
        RowLog(csv_path, jsonl_path, layer_rows=layers) as log,
        keeping(lambda: rows_kept(log.count, requests, [csv_path, jsonl_path])),
        Progress(f"run {model}", total=requests, unit="requests", info=preparing) as bar,
    ):

        def on_step(step: Any) -> None:
            log.add(step.measurement)
            m = step.measurement
            bar.advance(info=f"last {m.overall_lat * 1e3:.1f} ms, split {m.SP}")

        try:
            result = run_split(opts, requests=requests, duration_s=duration, on_step=on_step)
        except TransportError as err:
            # The cloud failing with --no-failover is not bad input: one line, exit 1.
            refused_setup(err)
            print("error: " + " ".join(str(err).split()), file=sys.stderr)
            raise typer.Exit(1) from None
    summary = result.summary()
    if as_json:
        print_json(summary)
        return
    from edgesplit.commands.tables import make_table

    columns = ["id", "SP", "BW", "CS", "edge", "comm", "cloud", "overall", "pred", "note"]
    rows = [_row(m) for m in result.recorder.rows]
    console.print(make_table(f"edgesplit run {model}", columns, rows, text={"note"}))
    replans = f"{summary['replans']} re-plans"
    if "fixed_cut" in summary:
        replans += (
            f" (fixed --cut {summary['fixed_cut']}: predictions refreshed "
            f"{summary['prediction_updates']} times as measured conditions changed)"
        )
    console.print(
        f"{summary['requests']} requests, {summary['fallbacks']} local fallbacks "
        f"(failover), {summary['retries']} retries, "
        f"{replans}, clock method {summary['clock_method']}; CSV {csv_path}"
    )
    if check:
        checked, bad = summary["checked"], summary["mismatches"]
        verdict = "all match" if not bad else f"{bad} MISMATCH (see the note column)"
        console.print(f"--check: {checked} requests compared with local inference: {verdict}")


def _row(m: Any) -> list[str]:
    note = "fallback" if m.fallback else ""
    if m.correct is False:
        note += " MISMATCH"
    from edgesplit.commands.tables import eng

    secs = [m.edge_lat, m.comm_lat, m.cloud_lat, m.overall_lat, m.predicted_lat]
    return [
        str(m.id),
        str(m.SP),
        eng(m.BW * 1e6, "b/s"),
        eng(m.CS * 1e9, "Hz"),
        *("" if s is None else eng(s, "s") for s in secs),
        note.strip(),
    ]


def run_plan(
    plan_file: Path = typer.Argument(..., help="plan JSON written by `edgesplit plan -o`"),
    topology: Path | None = typer.Option(
        None, help="topology file (devices, URLs, links); plan devices must be its devices"
    ),
    remote: list[str] = typer.Option(
        [], "--remote", help="DEVICE=URL of a server running `edgesplit serve --model M`"
    ),
    requests_given: int | None = typer.Option(
        None, "--requests", "-n", min=1, help="number of requests (default 1, or all --inputs)"
    ),
    inputs_file: Path | None = InputsFileOpt,
    concurrency: int = typer.Option(
        1, "--concurrency", min=1, help="requests in flight across the tiers (pipelining)"
    ),
    check: bool = typer.Option(False, help="compare every output with local inference"),
    codec: list[str] = typer.Option(
        [], "--codec", help="wire codec C for every link, or A-B=C for one link (default none)"
    ),
    threads: int | None = typer.Option(None, help="torch threads here (match the servers')"),
    csv_path: Path | None = typer.Option(None, "--csv", help="append one CSV row per request"),
    jsonl_path: Path | None = typer.Option(
        None, "--jsonl", help="append one JSON line per request"
    ),
    token: str | None = typer.Option(None, envvar="EDGESPLIT_TOKEN", help="bearer token"),
    no_failover: bool = typer.Option(
        False,
        "--no-failover",
        help="stop the run when a tier fails (by default the request finishes locally and "
        "offloading resumes once the tier answers /healthz)",
    ),
    transport: str = typer.Option(
        "ws", help="tier-to-tier transport: ws (persistent WebSockets) or http (POST /v1/stage)"
    ),
    replan: str | None = typer.Option(
        None, help="re-plan live with this solver (exhaustive, mincut, ilp, relax, heuristic)"
    ),
    replan_every: float | None = typer.Option(
        None, help="with --replan: also re-plan every this many seconds"
    ),
    conditions: Path | None = typer.Option(
        None, help="with --replan: condition schedule for the local device's first link"
    ),
    inputs: list[str] | None = InputOpt,
    input_shape: str | None = InputShapeOpt,
    example: str | None = ExampleOpt,
    weights: str | None = WeightsOpt,
    model_config: list[str] | None = ModelConfigOpt,
    trust_model_code: bool = TrustOpt,
    as_json: bool = JsonOpt,
    tls_ca: Path | None = TlsCaOpt,
) -> None:
    """Run a saved plan on the engine: its stages relay device to device along the topology."""
    import sys

    from edgesplit.runtime import security

    security.use_ca(tls_ca)  # https:// devices are verified against it (else system trust)

    import torch

    from edgesplit.commands.common import file_inputs, file_model_request
    from edgesplit.errors import TransportError
    from edgesplit.graph.trace import flat_inputs
    from edgesplit.models import ModelRequest
    from edgesplit.plan.types import load_plan
    from edgesplit.runtime.engine import TRANSPORTS, engine_for
    from edgesplit.runtime.stages import build_stages

    failover = not no_failover
    if replan is None and (replan_every is not None or conditions is not None):
        raise InputError("--replan-every and --conditions need --replan ALGORITHM")
    if replan is not None and concurrency > 1:
        raise InputError("--replan switches plans between requests; use --concurrency 1")
    requests = requests_given or 1
    if transport not in TRANSPORTS:
        raise InputError(f"--transport is {transport!r}; use one of {', '.join(TRANSPORTS)}")
    plan = load_plan(plan_file)
    source = f"plan file {str(plan_file)!r}"
    if topology is not None and remote:
        raise InputError("give --topology FILE or --remote DEVICE=URL, not both")
    if threads is not None:
        if threads < 1:
            raise InputError(f"--threads must be >= 1, not {threads}")
        torch.set_num_threads(threads)
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
    topo, here = _run_topology(plan, source, topology, remote)
    recorded_codecs = plan.meta.get("codecs") or {}
    if not isinstance(recorded_codecs, dict):
        raise InputError(f"{source}: meta.codecs must map links to codecs; re-run plan -o")
    # The plan's codec per link (plan --codec) unless --codec names another.
    links = {**{str(k): str(v) for k, v in recorded_codecs.items()}, **_codecs(codec, topo)}
    if plan.schedule is not None:  # Gao: N requesting devices, the server's planned order
        from edgesplit.commands.multidevice import run_schedule_plan

        return run_schedule_plan(plan, topo, requests, token=token, failover=failover,
                                 trust_model_code=trust_model_code, as_json=as_json,
                                 csv_path=csv_path, jsonl_path=jsonl_path)  # fmt: skip
    if plan.exits is not None:  # Pre-DNNOff: nothing computed or sent past the exit taken
        from edgesplit.commands.earlyexit import run_exit_plan

        return run_exit_plan(plan, request, topo, here, links, requests, token=token,
                             failover=failover, check=check, as_json=as_json,
                             csv_path=csv_path, jsonl_path=jsonl_path)  # fmt: skip
    from edgesplit.runtime.api import traced_for

    graph, module, ex, mine = traced_for(plan, source, request)
    stages = build_stages(graph, plan.devices, plan.assignment)
    try:
        engine = engine_for(stages, plan.model, mine, topo, token, links, here, failover, transport)
    except InputError as err:
        where = f"topology file {str(topology)!r}" if topology else "--remote"
        raise InputError(f"{source} on {where}: {err}") from None
    unreachable = engine.start()
    if unreachable and not failover:
        raise InputError(
            f"{unreachable[0]}; start it with `edgesplit serve --model {plan.model}`, "
            "or drop --no-failover to run locally until it answers"
        )
    if unreachable:
        print(
            f"warning: {unreachable[0]}; running locally until it answers /healthz",
            file=sys.stderr,
        )
    example_inputs = flat_inputs(module, graph, ex.args, ex.kwargs)
    runner: Any = engine
    if replan is not None:
        from edgesplit.runtime.conditions import ConditionSchedule
        from edgesplit.runtime.replan import replanning

        sched = ConditionSchedule.load(conditions) if conditions else None
        runner = replanning(engine, plan, topo, replan, example_inputs, schedule=sched,
                            interval_s=replan_every)  # fmt: skip
    given = file_inputs(inputs_file, graph, module, example_inputs) if inputs_file else None
    n = requests_given or (len(given) if given else 1)
    try:
        doc = _run_requests(runner, module, ex, example_inputs, n, check, csv_path,
                            jsonl_path, concurrency, given)  # fmt: skip
    except TransportError as err:
        # A tier failing mid-run is not bad input: one line, exit 1.
        refused_setup(err)
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        raise typer.Exit(1) from None
    finally:
        engine.close()
    doc = {
        "model": plan.model,
        "devices": list(plan.devices),
        "topology": str(topology) if topology else None,
        "codecs": links,
        "stages": stages.describe(),
        **({"replans": runner.events} if replan is not None else {}),
        **doc,
    }
    if as_json:
        print_json(doc)
    else:
        _print_run(doc)
    if doc["bitwise_expected"] and not doc["equal_to_local"]:
        raise typer.Exit(1)


def _run_topology(plan: Any, source: str, path: Path | None, remote: list[str]) -> Any:
    """The topology and the plan devices run in this process.

    ``--remote DEVICE=URL`` (or nothing) builds a star: the plan devices without a URL run
    here, each URL device is linked to the first of them.
    """
    from edgesplit.system.link import CODECS
    from edgesplit.system.topology import Topology, load_topology

    if path is not None:
        return load_topology(path), None
    urls: dict[str, str] = {}
    for item in remote:
        name, sep, url = item.partition("=")
        if not sep or name not in plan.devices:
            raise InputError(
                f"--remote {item!r}: write DEVICE=URL with DEVICE one of {', '.join(plan.devices)}"
            )
        urls[name] = url
    here = [d for d in plan.devices if d not in urls]
    local = here[0] if here else "local"
    devices = [{"name": local, "url": "local"}] + [{"name": n, "url": u} for n, u in urls.items()]
    # Flags name no link: any codec may be asked for with --codec.
    links = [{"a": local, "b": n, "bandwidth": "1gbit", "codecs": list(CODECS)} for n in urls]
    try:
        topo = Topology.model_validate({"devices": devices, "links": links})
    except ValueError as err:
        msg = str(err).splitlines()
        raise InputError(f"--remote: {msg[2].strip() if len(msg) > 2 else msg[0]}") from None
    return topo, frozenset(here or [local])


def _codecs(items: list[str], topo: Any) -> dict[str, str]:
    """``--codec C`` (every link) and ``--codec A-B=C`` (one link) as link key -> codec."""
    from edgesplit.runtime.engine import link_key

    out: dict[str, str] = {}
    for item in items:
        left, sep, name = item.rpartition("=")
        if not sep:
            for link in topo.links:
                out[link_key(link.a, link.b)] = item
            continue
        ends = [
            (left[:i], left[i + 1 :])
            for i, ch in enumerate(left)
            if ch == "-" and left[:i] in topo.names and left[i + 1 :] in topo.names
        ]
        if not ends:
            raise InputError(
                f"--codec {item!r}: write A-B=CODEC with A and B topology devices "
                f"({', '.join(topo.names)}), or CODEC alone for every link"
            )
        out[link_key(*ends[0])] = name
    return out


def _run_requests(
    engine: Any,
    module: Any,
    ex: Any,
    example_inputs: tuple[Any, ...],
    n: int,
    check: bool,
    csv_path: Path | None,
    jsonl_path: Path | None,
    concurrency: int = 1,
    given: list[tuple[Any, ...]] | None = None,
) -> dict[str, Any]:
    """Run ``n`` requests (request 0 on the example inputs, the rest on seeded random floats).

    ``given`` (``--inputs``) replaces them: request ``i`` runs on ``given[i % len(given)]``.

    Up to ``concurrency`` requests are in flight (:mod:`edgesplit.runtime.pipeline`); records
    are written in request order, each checked against local inference as it comes.
    """
    import time

    import torch

    from edgesplit.graph.partition import assemble_output
    from edgesplit.runtime.pipeline import pipelined
    from edgesplit.runtime.records import RecordWriter, summarise

    def inputs(i: int) -> tuple[Any, ...]:
        if given:
            return given[i % len(given)]
        return example_inputs if i == 0 else _request_inputs(example_inputs, i)

    graph = engine.stages.graph
    records: list[dict[str, Any]] = []
    equal_all = True

    def timed(i: int) -> tuple[float, Any, float]:
        start = time.perf_counter() - t0
        result = engine.infer(inputs(i))
        return start, result, time.perf_counter() - t0

    from edgesplit.commands.progress import Progress, keeping, rows_kept

    t0 = time.perf_counter()
    with (
        RecordWriter(csv_path, jsonl_path) as writer,
        keeping(lambda: rows_kept(len(records), n, [csv_path, jsonl_path])),
        Progress(f"run-plan {engine.model}", total=n, unit="requests") as bar,
    ):
        for i, (start, (outs, record), end) in pipelined(timed, n, concurrency):
            xs = inputs(i)
            record = {"id": i, "start_s": start, "end_s": end, **record}
            if check or i == 0:
                with torch.inference_mode():
                    ref = module(*xs) if i or given else ex.run(module)
                record["check"] = _compare(assemble_output(graph, outs), ref)
                equal_all = equal_all and record["check"]["equal"]
            writer.write(record)
            records.append(record)
            bar.advance(info=f"last {(end - start) * 1e3:.1f} ms")
    tiers: dict[str, Any] = {}
    for r in records:
        tiers.update(r["tiers"])
    lossless = all(c in ("none", "zstd") for c in engine.codecs.values())
    same = len({(t["threads"], t["device"], t["torch"]) for t in tiers.values()}) == 1
    checks = [r["check"] for r in records if "check" in r]
    wall = time.perf_counter() - t0
    return {
        "requests": n,
        "concurrency": concurrency,
        "wall_s": wall,
        "throughput_rps": n / wall,
        "tiers": tiers,
        "bitwise_expected": lossless and same,
        "equal_to_local": equal_all,
        "check": {
            "checked": len(checks),
            "equal": sum(c["equal"] for c in checks),
            "max_abs": max(c["max_abs"] for c in checks),
            "top1_agree": sum(c["top1_agree"] for c in checks) / len(checks),
        },
        "failover": {
            "enabled": engine.failover,
            "requests": engine.failovers,
            "devices": sorted({r["failed_device"] for r in records if r["failover"]}),
        },
        "summary": summarise(records),
        "hops": [{"device": h["dst"], **h} for h in records[0]["hops"]],
        "records": records,
    }


def _request_inputs(example: tuple[Any, ...], seed: int) -> tuple[Any, ...]:
    """Seeded standard-normal floats of each float input's shape; other inputs as given."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    return tuple(
        torch.randn(x.shape, generator=gen, dtype=x.dtype) if x.is_floating_point() else x
        for x in example
    )


def _compare(out: Any, ref: Any) -> dict[str, Any]:
    """torch.equal on every output leaf, their max abs difference and top-1 agreement."""
    import torch
    import torch.utils._pytree as pytree

    a, b = pytree.tree_leaves(out), pytree.tree_leaves(ref)
    equal = len(a) == len(b) and all(
        isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and torch.equal(x, y)
        for x, y in zip(a, b)
    )
    diff, agree = 0.0, True
    for x, y in zip(a, b):
        if isinstance(x, torch.Tensor) and x.is_floating_point() and x.shape == y.shape:
            diff = max(diff, float((x - y).abs().max()) if x.numel() else 0.0)
            if x.dim() >= 1 and x.numel():
                agree = agree and bool(torch.equal(x.argmax(-1), y.argmax(-1)))
    return {"equal": equal, "max_abs": diff, "top1_agree": agree}


def _print_run(doc: dict[str, Any]) -> None:
    for st in doc["stages"]:
        console.print(
            f"stage {st['stage']} on {st['device']}: {st['nodes']} nodes, "
            f"{len(st['inputs'])} tensors in"
        )
    summ = doc["summary"]
    console.print(f"{doc['requests']} requests, median total {summ['total_s_median'] * 1e3:.1f} ms")
    for link, d in summ["links_median"].items():
        console.print(
            f"  {link}: transfer {d['transfer_s'] * 1e3:.1f} ms, "
            f"{int(d['sent_wire_bytes']):,} B out, {int(d['reply_wire_bytes']):,} B back"
        )
    fo = doc["failover"]
    if fo["requests"]:
        console.print(
            f"failover: {fo['requests']} requests finished locally "
            f"(failed: {', '.join(fo['devices'])})"
        )
    threads = ", ".join(f"{k} {v['threads']} ({v['device']})" for k, v in doc["tiers"].items())
    c = doc["check"]
    console.print(f"torch threads: {threads}")
    if doc["bitwise_expected"]:
        console.print(
            f"bitwise equal to local inference: {c['equal']}/{c['checked']} checked requests "
            "(same kernels and thread count on every tier, lossless codecs)"
        )
    else:
        console.print(
            f"not bitwise comparable (threads, device or a lossy codec differ): "
            f"{c['equal']}/{c['checked']} equal, max abs diff {c['max_abs']:.3g}, "
            f"top-1 agreement {c['top1_agree']:.0%}"
        )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("run")(run)
    app.command("run-plan")(run_plan)
