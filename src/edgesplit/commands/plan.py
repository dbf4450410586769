"""Commands on split planning: plan, fit-predictor, predictor-report."""

from __future__ import annotations

import math
from typing import Any

import typer

from edgesplit.commands.common import (
    ExampleOpt,
    GranularityOpt,
    InputOpt,
    InputShapeOpt,
    JsonOpt,
    ModelArg,
    ModelConfigOpt,
    TrustOpt,
    WeightsOpt,
    console,
    load_graph,
    model_request,
    print_json,
)
from edgesplit.errors import InputError


def _edge_cloud_problem(
    graph: Any,
    edge_profile: str | None,
    cloud_profile: str | None,
    cloud_speedup: float,
    bandwidth: str | None,
    rtt: str,
    clock: str | None,
    profile_clock: str | None,
    strategy: str,
    edge_power_w: float | None,
    objective: str,
    weight: float,
    calibrate: bool = False,
    edge_model: str | None = None,
) -> Any:
    from edgesplit.plan.problem import Problem
    from edgesplit.predict.profile import load_profile, saved_seconds
    from edgesplit.system import PowerModel
    from edgesplit.units import parse_bandwidth, parse_duration, parse_frequency

    if edge_profile is None or bandwidth is None:
        raise InputError(
            "give --system FILE, or --edge-profile P and --bandwidth (e.g. 7.2mbit) "
            "[--cloud-profile P] [--rtt 40ms] [--clock 1.2GHz]"
        )
    if cloud_speedup <= 0:
        raise InputError(f"--cloud-speedup must be positive, not {cloud_speedup}")
    edge = saved_seconds(edge_profile, graph, calibrate=calibrate)
    scale = 1.0
    if clock is not None:
        ref_hz = parse_frequency(profile_clock) if profile_clock else None
        if ref_hz is None:
            mhz = load_profile(edge_profile).host.os_clock_mhz
            if not mhz:
                raise InputError("--clock needs --profile-clock (the clock the profile ran at)")
            ref_hz = mhz * 1e6
        scale = ref_hz / parse_frequency(clock)
    edge = [s * scale for s in edge]
    if edge_model is not None:  # Luger eq. 4.1-4.2 at --clock instead of the clock ratio
        from edgesplit.predict.clock import load_edge_model

        if clock is None:
            raise InputError("--edge-model needs --clock (the edge clock to predict at)")
        em = load_edge_model(edge_model)
        if em.n_layers != len(edge):
            raise InputError(
                f"--edge-model {edge_model!r} was fitted on {em.n_layers} layers; "
                f"{graph.name!r} has {len(edge)}: fit it on this model"
            )
        edge = [float(v) for v in em.node_seconds(parse_frequency(clock))]
    base = (
        saved_seconds(cloud_profile, graph) if cloud_profile else saved_seconds(edge_profile, graph)
    )
    cloud = [s / cloud_speedup for s in base]
    if strategy not in ("own", "rent"):
        raise InputError(f"--strategy must be own or rent, not {strategy!r}")
    from edgesplit.system.prices import Prices

    prices = Prices()
    problem = Problem.two_tier(
        graph,
        edge,
        cloud,
        bandwidth_bps=parse_bandwidth(bandwidth),
        rtt_s=parse_duration(rtt),
        edge_price_per_hour=prices.per_hour("edge", strategy),
        cloud_price_per_hour=prices.per_hour("cloud", strategy),
        edge_power=PowerModel(constant_w=edge_power_w) if edge_power_w is not None else None,
        objective=objective,  # type: ignore[arg-type]
        weight=weight,
    )
    from edgesplit.commands.flags import check_fidelity

    # Flagged once the problem stands, so a bad option is still the only stderr line.
    for path in {None if calibrate else edge_profile, cloud_profile} - {None}:
        check_fidelity(load_profile(str(path)), str(path))  # --calibrate rescales the edge's
    return problem


def _print_table(result: Any) -> None:
    from edgesplit.commands.tables import eng, make_table

    c = result.candidates
    has_energy = bool(c.energy_j.any())
    marks: dict[int, list[str]] = {}
    chosen = [("OL", result.ol), ("OC", result.oc), ("CL", result.cl)]
    for label, cut in chosen + ([("OE", result.oe)] if has_energy else []):
        marks.setdefault(cut, []).append(label)
    pareto = set(result.pareto)
    columns = ["cut", "bytes", "edge", "comm", "cloud", "total", "cost"]
    columns += ["energy"] if has_energy else []
    rows, styles = [], []
    for k in range(len(c)):
        r = c.row(k)
        tag = " ".join(marks.get(k, [])) + (" P" if k in pareto else "")
        if not r["feasible"]:
            tag += " (no memory)"
        styles.append("bold green" if k == result.chosen.cut else None)
        rows.append(
            [
                str(k),
                eng(r["bytes"], "B"),
                *(eng(r[key], "s") for key in ("edge_s", "comm_s", "cloud_s", "latency_s")),
                eng(r["cost"], "$"),
                *([eng(r["energy_j"], "J")] if has_energy else []),
                tag.strip(),
            ]
        )
    title = f"{c.model}: split candidates ({c.devices[0]} -> {c.devices[1]})"
    console.print(make_table(title, [*columns, "marks"], rows, text={"marks"}, styles=styles))
    what = "OL optimal latency, OC optimal cost, " + ("OE optimal energy, " if has_energy else "")
    console.print(
        f"{what}CL Luger Algorithm 1 at w={result.weight}, P Pareto front; chosen cut "
        f"{result.chosen.cut} ({result.chosen.objective}); cost in $ per inference"
    )


def plan(
    model: str = ModelArg,
    system: str | None = typer.Option(None, "--system", help="system YAML/JSON file"),
    devices: str | None = typer.Option(None, "--devices", help="comma list of system devices"),
    edge_profile: str | None = typer.Option(None, "--edge-profile", help="edge profile JSON"),
    cloud_profile: str | None = typer.Option(None, "--cloud-profile", help="cloud profile JSON"),
    cloud_speedup: float = typer.Option(
        1.0, "--cloud-speedup", help="cloud seconds = its profile's / this factor"
    ),
    bandwidth: str | None = typer.Option(None, "--bandwidth", help="e.g. 7.2mbit, 900kbit/s"),
    rtt: str = typer.Option("0ms", "--rtt", help="round-trip time, e.g. 40ms"),
    clock: str | None = typer.Option(None, "--clock", help="edge clock now, e.g. 1.2GHz"),
    profile_clock: str | None = typer.Option(
        None, "--profile-clock", help="clock the edge profile ran at (default: its host's)"
    ),
    edge_power: float | None = typer.Option(None, "--edge-power", help="edge draw in watts"),
    edge_model: str | None = typer.Option(
        None,
        "--edge-model",
        help="Luger eq. 4.1-4.2 clock model (luger_edge JSON) for the edge seconds at --clock",
    ),
    calibrate: bool = typer.Option(
        False, "--calibrate", help="rescale profile medians to sum to the end-to-end median"
    ),
    strategy: str = typer.Option("rent", "--strategy", help="own or rent the edge server"),
    objective: str = typer.Option("latency", "--objective", help="latency|cost|energy|weighted"),
    weight: float = typer.Option(0.5, "--weight", help="0 = latency only, 1 = cost only"),
    tradeoff: str = typer.Option("luger", "--tradeoff", help="luger (Algorithm 1) or normalised"),
    algorithm: str = typer.Option(
        "", "--algorithm", help="solver for more than 2 devices (see registry); 2: two-tier"
    ),
    output: str | None = typer.Option(None, "-o", "--output", help="write the chosen plan JSON"),
    codec: str = typer.Option(
        "none",
        "--codec",
        help="wire codec on every link (none|zstd|fp16|bf16|int8), or chosen with the split: "
        "auto (any the link allows, lossy too) or auto-lossless (none or zstd)",
    ),
    inputs: list[str] | None = InputOpt,
    input_shape: str | None = InputShapeOpt,
    example: str | None = ExampleOpt,
    weights: str | None = WeightsOpt,
    model_config: list[str] | None = ModelConfigOpt,
    trust_model_code: bool = TrustOpt,
    granularity: str = GranularityOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Plan where to split MODEL: candidate table, OL, OC, CL and the Pareto set."""
    from edgesplit.io import write_json
    from edgesplit.plan.planner import analyse
    from edgesplit.plan.problem import OBJECTIVES, Problem
    from edgesplit.plan.registry import solve

    if objective not in OBJECTIVES:
        raise InputError(f"--objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    if not 0.0 <= weight <= 1.0:
        raise InputError(f"--weight must lie in [0, 1], not {weight}")
    from edgesplit.plan.codec_choice import check_choice

    check_choice(codec)
    request = model_request(model, inputs, input_shape, example, weights, model_config)
    graph, module, example_inputs = load_graph(request, granularity)
    ex = example_inputs
    doc: dict[str, Any]
    if system is not None:
        from edgesplit.system import load_system

        sysdesc = load_system(system)
        names = [d.strip() for d in devices.split(",")] if devices else None
        problem = Problem.from_system(
            sysdesc,
            graph,
            devices=names,
            strategy=strategy,
            objective=objective,  # type: ignore[arg-type]
            weight=weight,
        )
        _check_system_profiles(sysdesc, names)
    else:
        problem = _edge_cloud_problem(
            graph, edge_profile, cloud_profile, cloud_speedup, bandwidth, rtt, clock,
            profile_clock, strategy, edge_power, objective, weight, calibrate, edge_model,
        )  # fmt: skip
        problem = _all_codecs_allowed(problem)
    two_tier = problem.n_devices == 2 and problem.source == 0 and algorithm in ("", "two-tier")
    if codec != "none":
        record = _codec_record(edge_profile if system is None else None, graph, module, ex)
        result, chosen, doc = _plan_with_codecs(
            problem, record, codec, two_tier, algorithm, tradeoff
        )
        doc.update(strategy=strategy, objective=objective)
    elif two_tier:
        result = analyse(problem, tradeoff)
        chosen = result.chosen
        doc = {**result.to_dict(), "strategy": strategy, "objective": objective}
    else:
        chosen = solve(problem, algorithm or "exhaustive")
        doc = {"model": graph.name, "devices": list(problem.devices), "chosen": chosen.to_dict()}
    if output:
        # The model options and fingerprint travel with the plan, so run-plan rebuilds the
        # same model and a server with other weights refuses it (409).
        from edgesplit.runtime.stages import fingerprint

        options = {
            "model_options": request.describe(example_inputs),
            "fingerprint": fingerprint(graph),
        }
        write_json(output, {**chosen.to_dict(), "meta": {**chosen.meta, **options}})
    if as_json:
        print_json(doc)
    elif two_tier:
        _print_table(result)
        if codec != "none":
            console.print(_codec_line(chosen))
    else:
        from edgesplit.commands.tables import eng

        p = chosen.predicted
        console.print(
            f"{graph.name} on {', '.join(problem.devices)} ({chosen.algorithm}): latency "
            f"{eng(p.get('latency_s'), 's')}, cost {eng(p.get('cost', 0.0), '$')} per inference"
        )
        for d in problem.devices:
            console.print(f"  {d}: {len(chosen.nodes_on(d))} nodes")
        if codec != "none":
            console.print(_codec_line(chosen))


def _check_system_profiles(sysdesc: Any, names: list[str] | None) -> None:
    """The fidelity flag for every measured profile the planned devices use uncalibrated."""
    from edgesplit.commands.flags import check_fidelity
    from edgesplit.predict.profile import load_profile

    paths = {
        d.compute.profile
        for d in sysdesc.devices
        if d.compute.profile and not d.compute.calibrate and (names is None or d.name in names)
    }
    for path in sorted(paths):
        check_fidelity(load_profile(path), path, "set calibrate: true in its device's compute")


def _all_codecs_allowed(problem: Any) -> Any:
    """Flags name no link file: every codec is allowed on the link they describe."""
    from dataclasses import replace

    from edgesplit.system.link import CODECS

    links = {k: v.model_copy(update={"codecs": CODECS}) for k, v in problem.links.items()}
    return replace(problem, links=links)


def _codec_record(profile: str | None, graph: Any, module: Any, ex: Any) -> Any:
    """The codec costs the edge profile recorded (``profile --codecs``), else measured now."""
    from edgesplit.graph.trace import flat_inputs
    from edgesplit.predict.codec_costs import measure_graph_codecs
    from edgesplit.predict.profile import load_profile

    if profile is not None:
        recorded = load_profile(profile, model=graph.name).codecs
        if recorded is not None:
            return recorded
    return measure_graph_codecs(graph, flat_inputs(module, graph, ex.args, ex.kwargs))


def _plan_with_codecs(
    problem: Any, record: Any, choice: str, two_tier: bool, algorithm: str, tradeoff: str
) -> tuple[Any, Any, dict[str, Any]]:
    """The plan and its codecs chosen together (:mod:`edgesplit.plan.codec_choice`)."""
    from dataclasses import replace

    from edgesplit.plan import codec_choice as cc
    from edgesplit.plan.planner import analyse

    if not two_tier:
        chosen = cc.codec_solver(record, choice, algorithm or "exhaustive")(problem)
        doc = {"model": problem.graph.name, "devices": list(problem.devices)}
        return None, chosen, {**doc, "chosen": chosen.to_dict()}
    model = cc.CodecModel.from_record(record, problem)
    chosen, tables = cc.two_tier_plan(problem, model, choice, tradeoff)
    codec = next(iter(chosen.meta["codecs"].values()), "none")
    result = replace(analyse(problem, tradeoff, table=tables[codec]), chosen=chosen)
    best = {
        c: {"cut": (k := int(t.latency_s.argmin())), "latency_s": float(t.latency_s[k])}
        for c, t in tables.items()
    }
    return result, chosen, {**result.to_dict(), "codec": codec, "best_by_codec": best}


def _codec_line(plan: Any) -> str:
    chosen = plan.meta.get("codecs") or {}
    links = ", ".join(f"{k.replace('|', '–')}: {c}" for k, c in chosen.items()) or "none"
    secs = plan.predicted.get("codec_s", 0.0) * 1e3
    return f"codecs ({plan.meta.get('codec_choice')}): {links}; codec time {secs:.2f} ms"


def fit_predictor(
    profiles: list[str] = typer.Argument(..., help="profile JSON files (edgesplit profile)"),
    output: str = typer.Option(..., "-o", "--output", help="predictor JSON to write"),
    form: str = typer.Option("forest", "--form", help="forest, auto, linear or loglog"),
    features: str = typer.Option("geometry", "--features", help="geometry, extended or table4.1"),
    trust_model_code: bool = TrustOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Fit per-layer-type latency regressions on PROFILES and save them."""
    from edgesplit.predict.accuracy import dataset_from_profiles, holdout_report
    from edgesplit.predict.layer_regression import LayerTypeRegressor
    from edgesplit.predict.store import save_predictor

    data = dataset_from_profiles(profiles, trust_model_code)
    report = holdout_report(lambda: LayerTypeRegressor(form=form, features=features), data)
    est = LayerTypeRegressor(form=form, features=features).fit(list(data.nodes), data.seconds)
    save_predictor(est, output, holdout=report, profiles=list(profiles))
    summary = {
        "output": output,
        "samples": len(data.seconds),
        "kinds": {k: m.form for k, m in est.models_.items()},
        "holdout": report["overall"],
    }
    from edgesplit.commands.flags import check_fit

    if as_json:
        print_json(summary)
    else:
        o = report["overall"]
        console.print(
            f"fitted {len(est.models_)} kinds on {len(data.seconds)} nodes; held-out 20 %: "
            f"R² {o['r2']:.3f}, within ±10 % {o['within_10pct']:.0%}; wrote {output}"
        )
    check_fit([("fit-predictor held-out 20 %", kind, m) for kind, m in report["per_kind"].items()])


def predictor_report(
    profiles: list[str] = typer.Argument(..., help="profile JSON files"),
    predictor: str | None = typer.Option(
        None, "--predictor", help="score this fitted predictor on all PROFILES instead"
    ),
    trust_model_code: bool = TrustOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Accuracy (R², MAE, share within ±10 %) per layer kind, against plain linear."""
    from edgesplit.predict.accuracy import dataset_from_profiles, holdout_report, metrics
    from edgesplit.predict.layer_regression import LayerTypeRegressor
    from edgesplit.predict.store import load_predictor

    data = dataset_from_profiles(profiles, trust_model_code)
    reports: dict[str, Any] = {}
    if predictor:
        est: Any = load_predictor(predictor)
        pred = est.predict(list(data.nodes))
        kinds = [n.kind for n in data.nodes]
        per_kind = {
            k: metrics(pred[[x == k for x in kinds]], data.seconds[[x == k for x in kinds]])
            for k in sorted(set(kinds))
        }
        reports[predictor] = {"overall": metrics(pred, data.seconds), "per_kind": per_kind}
    else:
        reports["layer_regression"] = holdout_report(LayerTypeRegressor, data)
        reports["plain_linear"] = holdout_report(
            lambda: LayerTypeRegressor(form="linear", features="table4.1"), data
        )
    from edgesplit.commands.flags import check_fit
    from edgesplit.commands.tables import count, eng, make_table, percent

    rows = [
        (name, kind, m)
        for name, rep in reports.items()
        for kind, m in [("all", rep["overall"]), *rep["per_kind"].items()]
    ]
    if as_json:
        print_json({"samples": len(data.seconds), "reports": reports})
    else:
        cells = [
            [name, kind, count(m["n"]), _r2(m["r2"]), eng(m["mae_s"], "s"), percent(m["within_10pct"])]
            for name, kind, m in rows
        ]  # fmt: skip
        title = predictor if predictor else "latency predictor accuracy (held-out 20 %)"
        columns = ["predictor", "kind", "n", "R²", "MAE", "within ±10 %"]
        console.print(make_table(title, columns, cells, text={"predictor", "kind"}))
    check_fit(rows)


def _r2(value: float) -> str:
    """R² to three decimals (it is a ratio near 1, not a quantity); ``n/a`` if undefined."""
    return f"{value:.3f}" if value is not None and math.isfinite(value) else "n/a"


def register(app: typer.Typer) -> None:
    app.command()(plan)
    app.command("fit-predictor")(fit_predictor)
    app.command("predictor-report")(predictor_report)
