"""``edgesplit placement``: k-processor placement on Tarnawski-format workloads.

``solve`` reads a Tarnawski et al. latency input unchanged into a planning Problem, solves
it through the planner registry and writes a placement in their output format
(``totalLatency``, ``fpgas``, ``cpus``); ``evaluate`` recomputes the latency of any
placement file (the human-expert splits included) with the plan evaluator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from edgesplit.commands.common import JsonOpt, console, print_json
from edgesplit.commands.progress import Progress, keeping
from edgesplit.errors import InputError
from edgesplit.io import write_json

placement_app = typer.Typer(
    help="k-processor placement (Samadi & Mohammadi after Tarnawski et al.) on workload files.",
    no_args_is_help=True,
)

ALGORITHMS = {"milp": "ilp", "heuristic": "heuristic", "relax": "relax"}
"""``--algorithm`` name -> registry name (:mod:`edgesplit.plan.registry`)."""
ProcessorsOpt = typer.Option(
    None, "--processors", "--fpgas", help="accelerator count (default: the file's maxFPGAs)"
)
MemoryOpt = typer.Option(
    None, "--memory", help="bytes per accelerator (default: the file's maxSizePerFPGA)"
)
SemanticsOpt = typer.Option(
    "critical", "--semantics", help="critical (Tarnawski: overlap) or sequential"
)
NonContiguousOpt = typer.Option(
    False, "--non-contiguous", help="drop the contiguity rule (an accelerator may be re-entered)"
)


def load(
    path: Path, processors: int | None, memory: float | None, semantics: str, contiguous: bool
) -> Any:
    from edgesplit.plan.problem import SEMANTICS
    from edgesplit.plan.tarnawski import load_problem

    if semantics not in SEMANTICS:
        raise InputError(f"--semantics must be critical or sequential, not {semantics!r}")
    return load_problem(
        path,
        processors=processors,
        memory=memory,
        semantics=semantics,  # type: ignore[arg-type]
        contiguous=contiguous,
    )


def solve(
    file: Path = typer.Argument(..., help="Tarnawski-format latency input (JSON)"),
    algorithm: str = typer.Option("milp", "--algorithm", help="milp, heuristic or relax"),
    processors: int | None = ProcessorsOpt,
    memory: float | None = MemoryOpt,
    semantics: str = SemanticsOpt,
    non_contiguous: bool = NonContiguousOpt,
    time_limit: float = typer.Option(60.0, "--time-limit", help="solver limit in seconds"),
    threads: int = typer.Option(1, "--threads", help="solver threads"),
    out: Path | None = typer.Option(None, "--out", help="write the placement JSON here"),
    as_json: bool = JsonOpt,
) -> None:
    """Place FILE's graph on the CPU and the accelerators; print/write the placement."""
    from edgesplit.plan.registry import solve as registry_solve
    from edgesplit.plan.tarnawski import placement_document

    if algorithm not in ALGORITHMS:
        raise InputError(f"--algorithm must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}")
    if time_limit <= 0:
        raise InputError(f"--time-limit must be positive, not {time_limit}")
    problem = load(file, processors, memory, semantics, not non_contiguous)
    opts: dict[str, Any] = {}
    if algorithm != "heuristic":
        opts = {"time_limit": time_limit, "threads": threads}
    with Progress(
        f"placement solve {problem.graph.name} ({algorithm})", count=False, interval_s=2.0
    ) as bar:
        if algorithm == "milp":
            from edgesplit.plan.milp import Watch

            # The incumbent and the bound as HiGHS improves them; Ctrl-C stops the search
            # and the solver returns its incumbent (status "interrupted").
            opts["watch"] = Watch(
                progress=lambda t, inc, bound: bar.update(info=_watch(inc, bound))
            )
        plan = registry_solve(problem, ALGORITHMS[algorithm], **opts)
    doc = placement_document(problem, plan)
    meta = plan.meta
    latency = plan.predicted["latency_s"]
    exit_code, note = 0, ""
    doc["edgesplit"] = {
        "algorithm": algorithm,
        "latency": latency,
        "solve_s": meta.get("solve_s"),
        "status": meta.get("status"),
        "bound": meta.get("bound"),
        "gap": meta.get("gap"),
        "semantics": semantics,
        "contiguous": not non_contiguous,
        "meta": {k: v for k, v in meta.items() if k not in ("solve_s", "status", "bound", "gap")},
    }
    if out is not None:
        write_json(out, doc)
    if meta.get("status") == "interrupted":
        # Ctrl-C stopped the search: the incumbent is printed (and written) as a result,
        # then edgesplit.cli says so and exits 130.
        where = f"written to {out}" if out is not None else "printed"
        note = f"the solver's incumbent (latency {latency:.6g}) was kept and {where}"
        exit_code = 130
    if as_json:
        print_json(doc)
        if exit_code:
            with keeping(lambda: note):
                raise typer.Exit(exit_code)
        return
    from edgesplit.commands.tables import eng, make_table

    bound, gap = meta.get("bound"), meta.get("gap")
    row = [
        eng(latency),
        "-" if bound is None else eng(bound),
        "-" if gap is None else f"{gap:.2%}",
        str(meta.get("status")),
        eng(meta.get("solve_s", 0.0), "s"),
        str(len(doc["fpgas"])),
    ]
    columns = ["latency", "bound", "gap", "status", "solve", "accelerators used"]
    title = f"{problem.graph.name}: {algorithm} ({semantics})"
    console.print(make_table(title, columns, [row], text={"status"}))
    if meta.get("stop_reason"):
        console.print(f"stopped: {meta['stop_reason']}", highlight=False)
    if out is not None:
        console.print(f"wrote {out}")
    if exit_code:
        with keeping(lambda: note):
            raise typer.Exit(exit_code)


def _watch(incumbent: float | None, bound: float | None) -> str:
    """``incumbent 1.23, bound 1.20 (gap 2.4%)`` for the MILP's progress line."""
    if incumbent is None:
        return "searching (no incumbent yet)"
    text = f"incumbent {incumbent:.6g}"
    if bound is not None:
        gap = 0.0 if incumbent <= 0 else max(0.0, (incumbent - bound) / incumbent)
        text += f", bound {bound:.6g} (gap {gap:.2%})"
    return text


def evaluate_cmd(
    file: Path = typer.Argument(..., help="Tarnawski-format latency input (JSON)"),
    placement: Path = typer.Argument(..., help="placement in their output format"),
    processors: int | None = ProcessorsOpt,
    memory: float | None = MemoryOpt,
    semantics: str = SemanticsOpt,
    non_contiguous: bool = NonContiguousOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Recompute PLACEMENT's latency on FILE with the evaluator."""
    from edgesplit.plan.evaluate import evaluate
    from edgesplit.plan.tarnawski import read_placement

    problem = load(file, processors, memory, semantics, not non_contiguous)
    assignment = read_placement(placement, problem)
    ev = evaluate(problem, assignment)
    k = problem.n_devices - 1
    doc = {
        "latency": ev.latency_s if ev.feasible else None,
        "feasible": ev.feasible,
        "problems": list(ev.problems),
        "calls": list(ev.calls[1:]),
        "cpu_busy": ev.compute_s[0],
        "accelerators": k,
        "memory_per_accelerator": problem.memory_bytes[1] if k else None,
    }
    if as_json:
        print_json(doc)
        return
    name = problem.graph.name
    if ev.feasible:
        console.print(f"{name}: latency {ev.latency_s:.6g} ({semantics})")
    else:
        console.print(f"{name}: infeasible under these limits:")
        for line in ev.problems:
            console.print(f"  - {line}")


placement_app.command("solve")(solve)
placement_app.command("evaluate")(evaluate_cmd)


def register(app: typer.Typer) -> None:
    app.add_typer(placement_app, name="placement")
