"""``edgesplit reproduce NAME``: the command line of the five paper reproductions.

Each command here parses its options, calls the reproduction's function in
:mod:`edgesplit.experiments` (which runs the protocol, writes its files and returns one
document) and prints a summary, or that document with ``--json``. The layering runs one
way: commands import experiments, experiments never import commands, so an experiment is
callable from a test or a benchmark without the CLI. Experiments are imported inside the
commands so that ``edgesplit --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from edgesplit.commands.common import JsonOpt, console, print_json

reproduce_app = typer.Typer(
    help="Reproduce a paper's evaluation with one command (tables and plots under results/).",
    no_args_is_help=True,
)


@reproduce_app.command("luger2023")
def luger2023(
    quick: bool = typer.Option(
        False, help="3 settings, 1 repeat, alexnet and mnist_cnn, 3 clocks (< 3 minutes)"
    ),
    out: Path = typer.Option(Path("results/luger2023"), help="output folder"),
    repeats: int | None = typer.Option(
        None, "--repeats", min=1, help="runs per split [default: 3; --quick: 1]"
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Luger 2023 ch. 7 on a Pi-class edge (clock pool x 0.3): Table 7.1, §7.1, Figs. 4.1-7.9."""
    from edgesplit.experiments.luger2023 import reproduce

    doc = reproduce(quick=quick, out=out, repeats=repeats)
    if as_json:
        print_json(doc)
        return
    console.print((out / "table_7_1.md").read_text())
    sec = doc["section_7_1"]
    for model, s in sec.items():
        ol = s["OL"]
        console.print(
            f"§7.1 {model}: interior {s['interior_share']:.0%}, gap vs worst "
            f"{ol['gap_vs_worst_pct']:.1f} % (thesis {s['thesis']['gap_vs_worst_pct']}), "
            f"top-5 {ol['top5_pct']:.0f} %, top-3 {ol['top3_pct']:.0f} %, median regret "
            f"{ol['median_regret_pct']:.1f} %"
        )
    console.print(
        f"edge clocks x {doc['edge_clock_scale']} (Pi-class); load average "
        f"{doc['load_average']['start'][0]:.1f}; results.json, tables, CSV and figures in {out}/"
    )


@reproduce_app.command("samadi")
def samadi(
    out: Path = typer.Option(Path("results/samadi"), "--out", help="output directory"),
    quick: bool = typer.Option(False, "--quick", help="resnet50 only, 5 s solver limits"),
    time_limit: float = typer.Option(10.0, "--time-limit", help="MILP / LP limit per point (s)"),
    models: str | None = typer.Option(
        None, "--models", help="comma-separated zoo names [default: the paper's three]"
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Latency vs processors (1-5) and vs bandwidth: chain, mincut, MILP, relax, heuristic."""
    from edgesplit.experiments.samadi import MODELS, reproduce, table

    doc = reproduce(
        out,
        quick=quick,
        time_limit=time_limit,
        models=models.split(",") if models else MODELS,
        log=None if as_json else console.print,
    )
    if as_json:
        print_json(doc)
        return
    for path in doc["figures"]:
        console.print(f"wrote {path}")
    console.print(table(doc))
    console.print(f"wrote {out / 'samadi.json'} and {out / 'samadi_table.md'}")


@reproduce_app.command("gao2019")
def gao2019(
    out: Path = typer.Option(Path("results/gao2019"), "--out", help="output directory"),
    speed_factor: float = typer.Option(10.0, "--speed-factor", help="mobile slowdown vs this host"),
    time_limit: float = typer.Option(20.0, "--time-limit", help="CP-SAT limit per setting (s)"),
    quick: bool = typer.Option(False, "--quick", help="fewer settings, <= 5 s per solve (CI)"),
    as_json: bool = JsonOpt,
) -> None:
    """Gao et al. 2019 Figs. 1-5, a mobile speed-factor sweep and the eq. 1-2 fit's R²/MAE."""
    from edgesplit.experiments.gao2019 import reproduce, table

    doc = reproduce(out, speed_factor=speed_factor, time_limit=time_limit, quick=quick)
    if as_json:
        print_json(doc)
        return
    console.print(table(doc))
    console.print(f"figures: {', '.join(doc['figures'])}; paper vs ours in {out / 'comparison.md'}")


@reproduce_app.command("zuo2024")
def zuo2024(
    quick: bool = typer.Option(False, "--quick", help="1 GA run per variant (CI, < 3 minutes)"),
    out: Path = typer.Option(
        Path("results/zuo2024"), "--out", "--out-dir", help="output directory"
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Pre-DNNOff (exact, GA) vs Edgent: paper, three-tier, fitted and Pi-class setups."""
    from edgesplit.experiments.zuo2024 import reproduce

    doc = reproduce(out, quick=quick, log=None if as_json else console.print)
    if as_json:
        print_json(doc)


@reproduce_app.command("tuli2021")
def tuli2021(
    quick: bool = typer.Option(False, "--quick", help="30 intervals, 2 seeds (< 3 minutes)"),
    out: Path = typer.Option(Path("results/tuli2021"), "--out", help="output directory"),
    seeds: int | None = typer.Option(None, "--seeds", min=1, help="evaluation seeds"),
    as_json: bool = JsonOpt,
) -> None:
    """Reproduce SplitPlace's Table 1, Figure 4 and MAB curves (Tuli 2021)."""
    import torch

    from edgesplit.commands.cluster import summary_table
    from edgesplit.experiments.tuli2021 import reproduce

    torch.set_num_threads(1)  # the surrogate is tiny; threads only add contention
    if as_json:
        print_json(reproduce(quick, out, seeds))
        return
    with console.status("training and simulating every Table 1 policy"):
        doc = reproduce(quick, out, seeds)
    rows = {
        n: {k: (v[0] if v else None) for k, v in r.items() if k != "per_app"}
        for n, r in doc["ours"].items()
    }
    console.print(summary_table("Tuli 2021 Table 1 (ours, means over seeds)", rows))
    console.print(f"wrote {out}/results.json, comparison.md, table1.md, fig4.png, mab_training.png")
