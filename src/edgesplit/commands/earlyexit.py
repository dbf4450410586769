"""``edgesplit earlyexit``: Pre-DNNOff early-exit offloading (solve, train, run)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from edgesplit.commands.common import JsonOpt, console, err_console, print_json
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
    tiers = ("mobile", "edge", "cloud")
    doc = plan.to_dict()
    doc["exits"] = [
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
    output: Path | None = typer.Option(None, "--output", help="write the plan JSON here"),
    as_json: bool = JsonOpt,
) -> None:
    """Place every BranchyNet layer on mobile, edge or cloud minimising eq. 4.8."""
    from edgesplit.earlyexit.solve import get_solver
    from edgesplit.io import write_json

    get_solver(solver)  # an unknown name fails before the instance is built
    _inst, problem, _g, _n, _x = _load(instance)
    plan = solve_instance(
        problem, solver, generations=generations, population=population, seed=seed,
        requirement=requirement, deadline_ms=deadline_ms,
    )  # fmt: skip
    doc = plan_document(problem, plan)
    if output is not None:
        write_json(output, doc)
    if as_json:
        print_json(doc)
        return
    table = Table(title=f"{plan.algorithm}: expected latency {doc['expected_latency_ms']:.3f} ms")
    for col in ("exit", "accuracy", "P(exit)", "latency ms", "tiers on chain"):
        table.add_column(col)
    for e in doc["exits"]:
        k = e["exit"]
        chain = problem.chain(k)
        tiers = "".join("MEC"[plan.meta["genes"][i]] for i in chain)
        table.add_row(
            str(k), f"{e['accuracy']:.3f}", f"{e['probability']:.4f}",
            f"{e['latency_ms']['total_s']:.3f}", tiers,
        )  # fmt: skip
    console.print(table)
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


def run_exits(
    instance: str, solver: str, requests: int, spec_dir: Path
) -> tuple[Any, Any, list[dict[str, Any]]]:
    """Launch edge and cloud processes and time ``requests`` inferences per exit."""
    import torch

    from edgesplit.earlyexit.runtime import EarlyExitAgent, EarlyExitExecutor
    from edgesplit.earlyexit.server import http_send, launch, write_spec

    inst, problem, graph, net, x = _load(instance)
    plan = solve_instance(problem, solver)
    genes = list(plan.meta["genes"])
    spec = {"instance": inst.model_dump(), "accuracies": list(problem.accuracies),
            "genes": genes, "weights": inst.weights}  # fmt: skip
    path = write_spec(spec_dir / "earlyexit-spec.json", spec)
    ex = EarlyExitExecutor(graph, problem, genes)
    rows = []
    with launch(path) as urls:
        agent = EarlyExitAgent(ex, http_send(urls))
        for k in range(1, problem.n_exits + 1):
            agent.infer(x, exit=k)  # warm-up: connections, allocator
            times = []
            for _ in range(requests):
                r = agent.infer(x, exit=k)
                if not torch.equal(r.logits, net.forward_exit(x, k)):
                    raise InputError(f"exit {k}: split result differs from the unsplit model")
                times.append(r.seconds)
            rows.append({
                "exit": k,
                "measured_median_ms": statistics.median(times) * 1000,
                "predicted_ms": problem.latency(k, genes)["total_s"] * 1000,
                "torch_equal": True,
                "requests": requests,
            })  # fmt: skip
    return plan, problem, rows


def run(
    instance: str = InstanceArg,
    solver: str = typer.Option("exact", "--solver", help="exact, ga or edgent"),
    requests: int = typer.Option(10, "--requests", help="timed inferences per exit"),
    as_json: bool = JsonOpt,
) -> None:
    """Run the plan for real: agent here, edge and cloud server processes on loopback."""
    import tempfile

    if requests < 1:
        raise InputError(f"--requests must be at least 1, not {requests}")
    with tempfile.TemporaryDirectory() as tmp:
        plan, _problem, rows = run_exits(instance, solver, requests, Path(tmp))
    if as_json:
        print_json({"plan": plan.to_dict(), "exits": rows})
        return
    table = Table(title=f"early-exit runs ({plan.algorithm} plan, {requests} requests/exit)")
    for col in ("exit", "measured median ms", "predicted ms", "torch.equal"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["exit"]), f"{r['measured_median_ms']:.2f}",
                      f"{r['predicted_ms']:.2f}", str(r["torch_equal"]))  # fmt: skip
    console.print(table)
    err_console.print("links are loopback; predictions use the instance's links and predictors")


def register(app: typer.Typer) -> None:
    earlyexit_app.command("solve")(solve)
    earlyexit_app.command("train")(train_cmd)
    earlyexit_app.command("run")(run)
    app.add_typer(earlyexit_app, name="earlyexit")
