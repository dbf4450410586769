"""``edgesplit reproduce NAME``: the command line of the five paper reproductions.

One interface for all five (issue 15 point 22)::

    edgesplit reproduce --list                      # name, paper, what, quick budget
    edgesplit reproduce NAME [--quick] [--out DIR] [--json] [paper-specific options]

``--quick`` is the reduced protocol of each (< 3 minutes on 2 cores), ``--out`` the output
folder (default ``results/NAME``), ``--json`` prints the ``results.json`` document, and
nothing else, on stdout. Progress lines go to stderr. ``edgesplit reproduce`` alone prints
the list; an unknown name is one ``error:`` line naming the valid ones (exit 2).

Each command here parses its options, calls the reproduction's function in
:mod:`edgesplit.experiments` through the one registry
(:mod:`edgesplit.experiments.registry`), which runs the protocol, writes
``results.json``, ``comparison.md`` and the figures and returns the document, and prints a
summary. The layering runs one way: commands import experiments, experiments never import
commands. Experiments are imported inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from edgesplit.commands.common import JsonOpt, console, print_json
from edgesplit.commands.progress import keeping, stage
from edgesplit.experiments.registry import REPRODUCTIONS, get, listing


class _Reproductions(TyperGroup):
    """A name that is no reproduction: one line naming the valid ones (exit 2)."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            get(args[0])  # raises the InputError naming the valid names
        return super().resolve_command(ctx, args)


reproduce_app = typer.Typer(
    cls=_Reproductions,
    help="Reproduce a paper's evaluation with one command: `edgesplit reproduce --list`, "
    "then `edgesplit reproduce NAME [--quick] [--out DIR] [--json]`.",
    invoke_without_command=True,
)


def _out_opt(name: str) -> Any:
    return typer.Option(
        Path(f"results/{name}"), "--out", help="output folder (results.json, comparison.md, PNGs)"
    )


def _quick_opt(name: str) -> Any:
    budget = REPRODUCTIONS[name].quick_budget_s / 60
    return typer.Option(False, "--quick", help=f"the reduced protocol (< {budget:g} minutes)")


def _log(name: str) -> Callable[[str], None]:
    """Progress: one line per stage on stderr, so stdout stays pure JSON with --json."""

    def say(line: str) -> None:
        stage(f"reproduce {name}", line)  # the one progress helper (commands/progress.py)

    return say


def _run(name: str, out: Path, **options: Any) -> dict[str, Any]:
    """Run reproduction ``name`` into ``out`` with its stage lines on stderr; on Ctrl-C,
    the files it had written stay there (``results.json`` is written whole, at the end)."""
    kept = f"the files written so far stay in {out}/ (results.json is written whole, last)"
    with keeping(lambda: kept):
        doc: dict[str, Any] = get(name).function()(out, log=_log(name), **options)
    return doc


def _done(name: str, doc: dict[str, Any], out: Path, as_json: bool) -> bool:
    """Print the document (``--json``: True, the caller prints nothing else) or the files."""
    if as_json:
        print_json(doc)
        return True
    figures = ", ".join(Path(p).name for p in doc["figures"])
    console.print(
        f"{name}: wrote {out / 'results.json'}, {out / 'comparison.md'} and {figures}; "
        f"load average {doc['load_average']['start'][0]:.1f} at the start",
        highlight=False,
    )
    return False


@reproduce_app.callback()
def reproductions(
    ctx: typer.Context,
    show_list: bool = typer.Option(
        False, "--list", help="list the reproductions (the default without a name)"
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Reproduce a paper's evaluation; without a NAME, list the reproductions."""
    if ctx.invoked_subcommand is not None and not show_list:
        return
    if as_json:
        print_json(listing())
    else:
        from edgesplit.commands.tables import make_table

        rows = [
            [r["name"], r["citation"], r["reproduces"], f"< {r['quick_budget_s'] / 60:g} min"]
            for r in listing()
        ]
        columns = ["name", "paper", "reproduces", "--quick"]
        text = {"name", "paper", "reproduces"}
        console.print(make_table("reproductions", columns, rows, text=text))
        console.print("run: edgesplit reproduce NAME [--quick] [--out DIR] [--json]")
    raise typer.Exit(0)


@reproduce_app.command("luger2023")
def luger2023(
    quick: bool = _quick_opt("luger2023"),
    out: Path = _out_opt("luger2023"),
    as_json: bool = JsonOpt,
    repeats: int | None = typer.Option(
        None, "--repeats", min=1, help="runs per split [default: 3; --quick: 1]"
    ),
) -> None:
    """Luger 2023 ch. 7 on a Pi-class edge (clock pool x 0.3): Table 7.1, §7.1, Figs. 4.1-7.9.

    --quick: 3 settings, 1 repeat, alexnet and mnist_cnn, 3 clocks.
    """
    doc = _run("luger2023", out, quick=quick, repeats=repeats)
    if _done("luger2023", doc, out, as_json):
        return
    console.print((out / "table_7_1.md").read_text())
    for model, s in doc["section_7_1"].items():
        ol = s["OL"]
        console.print(
            f"§7.1 {model}: interior {s['interior_share']:.0%}, gap vs worst "
            f"{ol['gap_vs_worst_pct']:.1f} % (thesis {s['thesis']['gap_vs_worst_pct']}), "
            f"top-5 {ol['top5_pct']:.0f} %, top-3 {ol['top3_pct']:.0f} %, median regret "
            f"{ol['median_regret_pct']:.1f} %",
            highlight=False,
        )


@reproduce_app.command("gao2019")
def gao2019(
    quick: bool = _quick_opt("gao2019"),
    out: Path = _out_opt("gao2019"),
    as_json: bool = JsonOpt,
    speed_factor: float = typer.Option(10.0, "--speed-factor", help="mobile slowdown vs this host"),
    time_limit: float = typer.Option(20.0, "--time-limit", help="CP-SAT limit per setting (s)"),
) -> None:
    """Gao et al. 2019 Figs. 1-5, a mobile speed-factor sweep and the eq. 1-2 fit's R²/MAE.

    --quick: alexnet and lenet, fewer settings, <= 5 s per solve.
    """
    from edgesplit.experiments.gao2019 import table

    doc = _run("gao2019", out, quick=quick, speed_factor=speed_factor, time_limit=time_limit)
    if not _done("gao2019", doc, out, as_json):
        console.print(table(doc), highlight=False)


@reproduce_app.command("zuo2024")
def zuo2024(
    quick: bool = _quick_opt("zuo2024"),
    out: Path = typer.Option(
        Path("results/zuo2024"),
        "--out",
        "--out-dir",  # the old name, kept working
        help="output folder (results.json, comparison.md, PNGs)",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Pre-DNNOff (exact, GA) vs Edgent: paper, three-tier, fitted and Pi-class setups.

    --quick: 1 GA run per variant instead of 20.
    """
    doc = _run("zuo2024", out, quick=quick)
    _done("zuo2024", doc, out, as_json)


@reproduce_app.command("tuli2021")
def tuli2021(
    quick: bool = _quick_opt("tuli2021"),
    out: Path = _out_opt("tuli2021"),
    as_json: bool = JsonOpt,
    seeds: int | None = typer.Option(None, "--seeds", min=1, help="evaluation seeds"),
) -> None:
    """SplitPlace (Tuli 2021): Table 1, Fig. 4 and the MAB curves.

    --quick: 30 intervals, 2 seeds (1 for Fig. 4).
    """
    import torch

    from edgesplit.commands.cluster import summary_table

    torch.set_num_threads(1)  # the surrogate is tiny; threads only add contention
    doc = _run("tuli2021", out, quick=quick, seeds=seeds)
    if _done("tuli2021", doc, out, as_json):
        return
    rows = {
        n: {k: (v[0] if v else None) for k, v in r.items() if k != "per_app"}
        for n, r in doc["ours"].items()
    }
    console.print(summary_table("Tuli 2021 Table 1 (ours, means over seeds)", rows))


@reproduce_app.command("samadi")
def samadi(
    quick: bool = _quick_opt("samadi"),
    out: Path = _out_opt("samadi"),
    as_json: bool = JsonOpt,
    time_limit: float = typer.Option(10.0, "--time-limit", help="MILP / LP limit per point (s)"),
    models: str | None = typer.Option(
        None, "--models", help="comma-separated zoo names [default: the paper's three]"
    ),
) -> None:
    """Latency vs processors (1-5) and vs bandwidth: chain, mincut, MILP, relax, heuristic.

    --quick: resnet50 only, 1-3 processors, two bandwidths, 2 s solver limits.
    """
    from edgesplit.experiments.samadi import MODELS, table

    doc = _run(
        "samadi",
        out,
        quick=quick,
        time_limit=time_limit,
        models=models.split(",") if models else MODELS,
    )
    if not _done("samadi", doc, out, as_json):
        console.print(table(doc), highlight=False)
