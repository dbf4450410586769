"""``edgesplit placement``: k-processor placement on Tarnawski-format workloads.

``solve`` reads a Tarnawski et al. latency input unchanged and writes a placement in their
output format (``totalLatency``, ``fpgas``, ``cpus``); ``evaluate`` recomputes the latency
of any placement file (the human-expert splits included) with the independent evaluator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from edgesplit.commands.common import JsonOpt, console, print_json
from edgesplit.errors import InputError
from edgesplit.io import write_json

placement_app = typer.Typer(
    help="k-processor placement (Samadi & Mohammadi after Tarnawski et al.) on workload files.",
    no_args_is_help=True,
)

ALGORITHMS = ("milp", "heuristic", "relax")
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


def load(path: Path, processors: int | None, memory: float | None) -> Any:
    from edgesplit.placement.tarnawski import load_instance

    inst = load_instance(path)
    if processors is not None or memory is not None:
        inst = inst.with_limits(processors, memory)
    return inst


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
    from edgesplit.placement.tarnawski import placement_document
    from edgesplit.plan import heuristic, milp, relax

    if algorithm not in ALGORITHMS:
        raise InputError(f"--algorithm must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}")
    if time_limit <= 0:
        raise InputError(f"--time-limit must be positive, not {time_limit}")
    if semantics not in ("critical", "sequential"):
        raise InputError(f"--semantics must be critical or sequential, not {semantics!r}")
    inst = load(file, processors, memory)
    contiguous = not non_contiguous
    if algorithm == "milp":
        result = milp.place(inst, semantics, contiguous, time_limit=time_limit, threads=threads)
    elif algorithm == "relax":
        result = relax.place(inst, semantics, contiguous, time_limit=time_limit, threads=threads)
    else:
        result = heuristic.place(inst, semantics, contiguous)
    doc = placement_document(inst, result.assignment, result.latency)
    doc["edgesplit"] = {k: v for k, v in result.to_dict().items() if k != "assignment"}
    if out is not None:
        write_json(out, doc)
    if as_json:
        print_json(doc)
        return
    table = Table(title=f"{inst.name}: {algorithm} ({semantics})")
    for col in ("latency", "bound", "gap", "status", "solve s", "accelerators used"):
        table.add_column(col)
    gap = result.gap
    table.add_row(
        f"{result.latency:.6g}",
        "-" if result.bound is None else f"{result.bound:.6g}",
        "-" if gap is None else f"{gap:.2%}",
        result.status,
        f"{result.solve_s:.2f}",
        str(len(doc["fpgas"])),
    )
    console.print(table)
    if out is not None:
        console.print(f"wrote {out}")


def evaluate_cmd(
    file: Path = typer.Argument(..., help="Tarnawski-format latency input (JSON)"),
    placement: Path = typer.Argument(..., help="placement in their output format"),
    processors: int | None = ProcessorsOpt,
    memory: float | None = MemoryOpt,
    semantics: str = SemanticsOpt,
    non_contiguous: bool = NonContiguousOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Recompute PLACEMENT's latency on FILE with the independent evaluator."""
    from edgesplit.placement import evaluate
    from edgesplit.placement.tarnawski import read_placement

    if semantics not in ("critical", "sequential"):
        raise InputError(f"--semantics must be critical or sequential, not {semantics!r}")
    inst = load(file, processors, memory)
    assignment = read_placement(placement, inst)
    ev = evaluate(inst, assignment, semantics, contiguous=not non_contiguous)
    doc = {
        "latency": ev.latency if ev.feasible else None,
        "feasible": ev.feasible,
        "problems": list(ev.problems),
        "calls": list(ev.calls),
        "cpu_busy": ev.host_busy,
        "accelerators": inst.accelerators,
        "memory_per_accelerator": inst.acc_memory[0] if inst.accelerators else None,
    }
    if as_json:
        print_json(doc)
        return
    if ev.feasible:
        console.print(f"{inst.name}: latency {ev.latency:.6g} ({semantics})")
    else:
        console.print(f"{inst.name}: infeasible under these limits:")
        for line in ev.problems:
            console.print(f"  - {line}")


placement_app.command("solve")(solve)
placement_app.command("evaluate")(evaluate_cmd)


def register(app: typer.Typer) -> None:
    app.add_typer(placement_app, name="placement")
    from edgesplit.experiments.samadi import register_reproduction

    register_reproduction()
