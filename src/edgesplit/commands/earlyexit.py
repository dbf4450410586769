"""``edgesplit earlyexit``: Pre-DNNOff early-exit offloading (solve, train, run)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import typer

from edgesplit.commands.common import JsonOpt, console, err_console, print_json
from edgesplit.commands.progress import Progress, keeping, rows_kept, stage
from edgesplit.commands.tables import eng, make_table
from edgesplit.errors import InputError

earlyexit_app = typer.Typer(
    help="Early-exit (BranchyNet) offloading across mobile, edge and cloud (Pre-DNNOff).",
    no_args_is_help=True,
)

InstanceArg = typer.Argument(..., help="instance YAML/JSON (`edgesplit schema earlyexit`)")


def solve_instance(
    problem: Any,
    solver: str,
    *,
    generations: int = 50,
    population: int = 60,
    seed: int = 0,
    requirement: float | None = None,
    deadline_ms: float | None = None,
) -> Any:
    """The command line's options for ``solver``, through the front door."""
    from edgesplit.earlyexit.solve import solve

    if solver == "ga":
        return solve(problem, "ga", generations=generations, population=population, seed=seed)
    if solver == "edgent":
        deadline_s = deadline_ms / 1000.0 if deadline_ms is not None else None
        req = None if deadline_s is not None else requirement
        return solve(problem, "edgent", requirement=req, deadline_s=deadline_s)
    return solve(problem, solver)


def _load(instance: str) -> tuple[Any, Any, Any, Any, Any]:
    from edgesplit.earlyexit.instance import EarlyExitInstance, load_instance_problem

    inst = EarlyExitInstance.load(instance)
    problem, graph, net, x = load_instance_problem(inst)
    problem.meta["mean_requirement"] = inst.requirement.build().mean()
    return inst, problem, graph, net, x


def plan_document(problem: Any, plan: Any) -> dict[str, Any]:
    """The plan with its per-exit figures (eq. 4.6) and the tier of every layer."""
    tiers = ("mobile", "edge", "cloud")
    doc = plan.to_dict()
    doc["exit_table"] = [
        {
            "exit": k,
            "accuracy": problem.accuracies[k - 1],
            "probability": problem.probabilities[k - 1],
            "latency_ms": {
                key: v * 1000 for key, v in problem.latency(k, plan.meta["genes"]).items()
            },
        }
        for k in range(1, problem.n_exits + 1)
    ]
    doc["layers"] = [
        {"name": layer.name, "kind": layer.kind, "tier": tiers[t]}
        for layer, t in zip(problem.layers, plan.meta["genes"])
    ]
    doc["expected_latency_ms"] = plan.predicted["expected_latency_s"] * 1000
    return doc


def solve(
    instance: str = InstanceArg,
    solver: str = typer.Option("exact", "--solver", help="exact, ga or edgent"),
    generations: int = typer.Option(50, "--generations", help="GA generations"),
    population: int = typer.Option(60, "--population", help="GA population size"),
    seed: int = typer.Option(0, "--seed", help="GA random seed"),
    requirement: float | None = typer.Option(
        None, "--requirement", help="Edgent: known accuracy requirement (default: the mean)"
    ),
    deadline_ms: float | None = typer.Option(None, "--deadline-ms", help="Edgent: deadline"),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="write the plan here (it runs with `edgesplit run-plan`)"
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Place every BranchyNet layer on mobile, edge or cloud minimising eq. 4.8."""
    from edgesplit.earlyexit.run import runnable_plan
    from edgesplit.earlyexit.solve import get_solver
    from edgesplit.io import write_json

    get_solver(solver)  # an unknown name fails before the instance is built
    inst, problem, graph, _n, _x = _load(instance)
    plan = solve_instance(
        problem, solver, generations=generations, population=population, seed=seed,
        requirement=requirement, deadline_ms=deadline_ms,
    )  # fmt: skip
    plan = runnable_plan(plan, problem, graph, inst.weights, problem.meta["mean_requirement"])
    doc = plan_document(problem, plan)
    if output is not None:
        write_json(output, plan.to_dict())
    if as_json:
        print_json(doc)
        return
    rows = []
    for e in doc["exit_table"]:
        k = e["exit"]
        tiers = "".join("MEC"[plan.meta["genes"][i]] for i in problem.chain(k))
        rows.append(
            [str(k), f"{e['accuracy']:.3f}", f"{e['probability']:.4f}",
             eng(e["latency_ms"]["total_s"] / 1e3, "s"), tiers]
        )  # fmt: skip
    title = f"{plan.algorithm}: expected latency {eng(doc['expected_latency_ms'] / 1e3, 's')}"
    columns = ["exit", "accuracy", "P(exit)", "latency", "tiers on chain"]
    console.print(make_table(title, columns, rows, text={"tiers on chain"}))
    console.print("tiers: M mobile, E edge, C cloud (chain order, input to exit)")


def train_cmd(
    epochs: int = typer.Option(6, "--epochs", help="training epochs on the digits set"),
    out: Path = typer.Option(Path("results/earlyexit/zuo_alexnet-digits.safetensors"), "--out"),
    as_json: bool = JsonOpt,
) -> None:
    """Train the paper's BranchyNet on offline digits (joint loss); save weights, accuracies."""
    from safetensors.torch import save

    from edgesplit.io import write_atomic, write_json
    from edgesplit.models.branchy import digits_split, exit_accuracies, train, zuo_alexnet

    if epochs < 1:
        raise InputError(f"--epochs must be at least 1, not {epochs}")
    net = zuo_alexnet()
    split = digits_split()
    history = train(net, split, epochs=epochs)
    acc = exit_accuracies(net, split.x_test, split.y_test)
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    write_atomic(out, save(state))
    doc = {"weights": str(out), "epochs": epochs, "loss": history, "accuracies": acc,
           "test_samples": len(split.y_test), "data": "sklearn load_digits, 32x32x3"}  # fmt: skip
    write_json(out.with_suffix(".json"), doc)
    if as_json:
        print_json(doc)
        return
    console.print(f"weights: {out}; loss per epoch {[round(v, 3) for v in history]}")
    for k, a in enumerate(acc, start=1):
        console.print(f"exit {k}: test accuracy {a:.4f}")


def run_exit_plan(
    plan: Any,
    request: Any,
    topo: Any,
    here: Any,
    links: dict[str, str],
    requests: int,
    *,
    token: str | None = None,
    failover: bool = True,
    check: bool = False,
    as_json: bool = False,
    csv_path: Path | None = None,
    jsonl_path: Path | None = None,
) -> None:
    """``run-plan`` of an early-exit plan: each request takes the exit its rule picks.

    Exit 1 when a bitwise-comparable output differs from local inference.
    """
    doc = exit_run(
        plan, request, topo, here, links, requests, token=token, failover=failover, check=check,
        csv_path=csv_path, jsonl_path=jsonl_path,
    )  # fmt: skip
    if as_json:
        print_json(doc)
    else:
        _print_exit_run(doc)
    if doc["bitwise_expected"] and not doc["equal_to_local"]:
        raise typer.Exit(1)


def exit_run(
    plan: Any,
    request: Any,
    topo: Any,
    here: Any,
    links: dict[str, str],
    requests: int,
    *,
    token: str | None = None,
    failover: bool = True,
    check: bool = False,
    spec: dict[str, Any] | None = None,
    csv_path: Path | None = None,
    jsonl_path: Path | None = None,
) -> dict[str, Any]:
    """Run ``requests`` requests of an early-exit plan (``spec``: another exit rule); the doc.

    Each request's record goes to ``csv_path``/``jsonl_path`` as it completes.
    """
    import torch

    from edgesplit.commands.common import load_graph
    from edgesplit.graph.trace import flat_inputs
    from edgesplit.runtime.exits import open_exits
    from edgesplit.runtime.records import RecordWriter
    from edgesplit.runtime.stages import fingerprint, fingerprint_mismatch

    graph, module, ex = load_graph(request)
    mine = fingerprint(graph)
    recorded = plan.meta.get("fingerprint")
    if isinstance(recorded, dict) and (mismatch := fingerprint_mismatch(mine, recorded)):
        raise InputError(f"plan: {mismatch}")
    runner = open_exits(
        plan, graph, mine, topo, token=token, codecs_by_link=links, here=here,
        failover=failover, spec=spec,
    )  # fmt: skip
    for line in runner.start():
        err_console.print(f"warning: {line}; running locally until it answers /healthz")
    xs = flat_inputs(module, graph, ex.args, ex.kwargs)
    with torch.inference_mode():
        reference = dict(zip(graph.output_names, _leaves(module(*xs))))
    records: list[dict[str, Any]] = []
    try:
        with (
            RecordWriter(csv_path, jsonl_path) as writer,
            keeping(lambda: rows_kept(len(records), requests, [csv_path, jsonl_path])),
            Progress(
                f"early-exit {plan.model.rsplit(':', 1)[-1]}", total=requests, unit="requests"
            ) as bar,
        ):
            for i in range(requests):
                outs, record = runner.infer(xs)
                name = runner.spec["outputs"][record["exit"] - 1]
                if check or i == 0:
                    record["equal"] = bool(torch.equal(outs[name], reference[name]))
                records.append({"id": i, **record})
                writer.write(records[-1])
                bar.advance(info=f"exit {record['exit']}, {record['total_s'] * 1e3:.1f} ms")
    finally:
        runner.close()
    return _exit_summary(plan, runner.spec, records)


def _leaves(out: Any) -> list[Any]:
    import torch.utils._pytree as pytree

    return list(pytree.tree_leaves(out))


def _exit_summary(plan: Any, spec: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per exit taken: requests, median total, wire bytes per link; the check's verdict."""
    import torch

    from edgesplit.runtime.exits import link_bytes

    taken: dict[int, list[dict[str, Any]]] = {}
    for r in records:
        taken.setdefault(r["exit"], []).append(r)
    threads = {torch.get_num_threads()} | {
        t["threads"] for r in records for t in r["tiers"].values()
    }
    checked = [r["equal"] for r in records if "equal" in r]
    return {
        "model": plan.model,
        "devices": list(plan.devices),
        "rule": {k: v for k, v in spec.items() if k != "outputs"},
        "requests": len(records),
        "exits": [
            {
                "exit": k,
                "requests": len(rs),
                "median_total_ms": statistics.median(r["total_s"] for r in rs) * 1e3,
                "predicted_ms": plan.predicted.get(f"latency_exit_{k}_s", float("nan")) * 1e3,
                "link_bytes": link_bytes(rs[-1]),
            }
            for k, rs in sorted(taken.items())
        ],
        "threads": sorted(threads),
        "bitwise_expected": len(threads) == 1,
        "checked": len(checked),
        "equal_to_local": all(checked),
        "records": records,
    }


def _print_exit_run(doc: dict[str, Any]) -> None:
    rows = []
    for e in doc["exits"]:
        links = ", ".join(f"{k} {eng(v, 'B')}" for k, v in e["link_bytes"].items())
        rows.append(
            [str(e["exit"]), str(e["requests"]), eng(e["median_total_ms"] / 1e3, "s"),
             eng(e["predicted_ms"] / 1e3, "s"), links or "(none sent)"]
        )  # fmt: skip
    title = f"early exits on the engine ({doc['requests']} requests, {doc['rule']['rule']} rule)"
    columns = ["exit", "requests", "median", "predicted", "bytes per link"]
    console.print(make_table(title, columns, rows, text={"bytes per link"}))
    verdict = "bitwise equal" if doc["equal_to_local"] else "NOT equal"
    same = "same torch threads everywhere" if doc["bitwise_expected"] else "threads differ"
    console.print(
        f"{doc['checked']} checked against local inference: {verdict} ({same}: {doc['threads']})"
    )


def run(
    instance: str = InstanceArg,
    solver: str = typer.Option("exact", "--solver", help="exact, ga or edgent"),
    requests: int = typer.Option(10, "--requests", "-n", help="requests per exit (or in all)"),
    exit_index: int | None = typer.Option(None, "--exit", help="take this exit (1-based)"),
    requirement: float | None = typer.Option(
        None, "--requirement", help="take the shallowest exit meeting this accuracy"
    ),
    entropy: str | None = typer.Option(
        None, "--entropy", help="BranchyNet thresholds T1,T2,... (one per side exit)"
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Solve, then run on the engine: this process is the mobile tier, edge and cloud are
    `edgesplit serve` processes on loopback. Without a rule, every exit in turn."""
    import tempfile

    import torch

    from edgesplit.earlyexit.run import launch, runnable_plan
    from edgesplit.models import ModelRequest
    from edgesplit.runtime.exits import with_rule
    from edgesplit.system.topology import Topology

    if requests < 1:
        raise InputError(f"--requests must be at least 1, not {requests}")
    thresholds = None
    if entropy is not None:
        try:
            thresholds = [float(t) for t in entropy.split(",")]
        except ValueError:
            raise InputError(f"--entropy {entropy!r}: write numbers like 0.5,0.5,0.4,0.3") from None
    inst, problem, graph, _net, _x = _load(instance)
    plan = solve_instance(problem, solver)
    plan = runnable_plan(plan, problem, graph, inst.weights, problem.meta["mean_requirement"])
    n = problem.n_exits
    assert plan.exits is not None  # runnable_plan sets them
    rules = (
        [with_rule(plan.exits, index=exit_index, requirement=requirement, thresholds=thresholds)]
        if (exit_index, requirement, thresholds) != (None, None, None)
        else [with_rule(plan.exits, index=k) for k in range(1, n + 1)]
    )
    torch.set_num_threads(1)  # as the tier processes: compare like with like (bitwise)
    request = ModelRequest.from_record(plan.model, plan.meta["model_options"], "plan", True)
    docs = []
    stage("earlyexit run", f"{len(rules)} exit rule(s); starting edge and cloud (edgesplit serve)")
    with (
        tempfile.TemporaryDirectory() as tmp,
        launch(plan, Path(tmp), problem.wireless_bps, problem.wired_bps) as topo_doc,
    ):
        topo = Topology.model_validate(topo_doc)
        for spec in rules:
            docs.append(
                exit_run(plan, request, topo, None, {}, requests, check=True, spec=spec,
                         failover=False)
            )  # fmt: skip
    doc = {
        "plan": plan.to_dict(),
        "exits": [e for d in docs for e in d["exits"]],
        "threads": sorted({t for d in docs for t in d["threads"]}),
        "checked": sum(d["checked"] for d in docs),
        "equal_to_local": all(d["equal_to_local"] for d in docs),
        "bitwise_expected": all(d["bitwise_expected"] for d in docs),
    }
    if as_json:
        print_json(doc)
    else:
        _print_exit_run({**doc, "requests": requests * len(rules),
                         "rule": rules[0] if len(rules) == 1 else {"rule": "each exit"}})  # fmt: skip
        err_console.print("links are loopback; predictions use the instance's links and predictors")
    if doc["bitwise_expected"] and not doc["equal_to_local"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    earlyexit_app.command("solve")(solve)
    earlyexit_app.command("train")(train_cmd)
    earlyexit_app.command("run")(run)
    app.add_typer(earlyexit_app, name="earlyexit")
