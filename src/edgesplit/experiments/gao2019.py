"""``edgesplit reproduce gao2019``: Figs. 1-5 of Gao et al. (2019) with 4 devices.

Protocol. The four mobile devices are emulated from this host: every layer's wall-clock
time (the one profiler, :func:`edgesplit.predict.profile.profile_graph`, on one torch
thread as ``multidevice run`` executes) times the *speed factor*
(default 10) is the mobile delay ``T^l``; the host itself is the MEC server (``T^s`` =
measured). Output sizes come from the traced graphs (float32, batch 1). For each setting
the three cases of §IV are solved:

* Case 1: eq. 10-16 by CP-SAT (:mod:`edgesplit.multidevice.cpsat`), seeded with the
  heuristic; its status (optimal or time limit with the proven gap) is recorded;
* Case 2: server-only, in its best server order; Case 3: local-only.

Why 10: the paper's devices are Orange Pi Win Plus boards (4x Cortex-A53, 1.2 GHz) and the
server an i5 at 3.2 GHz. The paper's own fits, eq. 1 against eq. 2, put the dominant
term (the multiply-accumulates G²K²OI) at 0.3e-5 against 3e-7: a ratio of exactly 10.
The other terms' ratios are 35 and 19, so 10 is the conservative end.

Speed-factor sweep. At <= 2.5 Mbit/s and factor 10 every model of Figs. 2 and 5 stays
local, so Case 1 = Case 3 there, unlike the paper. ``speed_sweep`` re-solves Figs. 2 and 5
at factors 3, 10 and 30 (``SPEED_FACTORS``) so that a reader sees where Case 1 departs from
Case 3 (``departs``: Case 1 at least 1 % faster than Case 3). 10 is the factor that matches
the paper's devices (above); 3 and 30 bracket it.

Delay model (§II-B, eq. 1-2). ``fit`` is :func:`edgesplit.predict.gao.fit_with_holdout` on
the same wall-clock profiles: variable-controlled single-layer blocks
(:func:`~edgesplit.predict.gao.sample_layers`) plus every profiled model's layers, 80/20
split; its held-out R² and MAE are recorded beside the paper's 99.58 % and 2.78 ms, with
the 1/5/15-minute load average (``load_average``) the profiles were taken under. Our MAE is
on this host's (server-speed) delays, the paper's on an Orange Pi's, so only R² compares.

Figures: Fig. 1 average delay against bandwidth (AlexNet), Fig. 2 relative speed
``T_case3 / T_case`` at 1 Mbit/s for VGG16, VGG13, AlexNet, LeNet, Fig. 3 transmitted
data against bandwidth, Fig. 4 delay against server load level at 5 Mbit/s (load ``L``
slows the server by ``1/(1-L)``), Fig. 5 delay against the number of devices at
2.5 Mbit/s. The bandwidth and load grids are ours (the paper's axes are not in the text).
Outputs under ``--out`` (default ``results/gao2019``): ``fig1.png`` … ``fig5.png``,
``fig2_speed_sweep.png``, ``fig5_speed_sweep.png``, ``table.md`` (every setting),
``comparison.md`` (paper vs ours) and ``results.json``: the shared fields of
:mod:`edgesplit.experiments.registry`, the held-out fit at ``fit.r2`` and ``fit.mae_s``
(seconds; ``fit.r2_conv``, ``fit.paper``), ``max_reduction_vs_server`` /
``max_reduction_vs_local`` beside ``paper``, each figure's settings (``fig1_fig3``,
``fig2``, ``fig4``, ``fig5``) and ``speed_sweep``. ``--quick``: alexnet and lenet, every
other bandwidth and load, 1/2/4 devices, CP-SAT limited to 5 s a setting, 15 sampled
blocks for the fit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

BANDWIDTHS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 50.0, 100.0)
LOADS = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9)
DEVICE_COUNTS = (1, 2, 3, 4, 5, 6, 7, 8)
MODELS = ("vgg16", "vgg13", "alexnet", "lenet")
PAPER = {"max_reduction_vs_server": 0.905, "max_reduction_vs_local": 0.695}
CASES = ("case1", "case2", "case3")
SPEED_FACTORS = (3.0, 10.0, 30.0)
QUICK_TIME_LIMIT = 5.0  # --quick: CP-SAT seconds per setting at most
#: Case 1 "departs" from Case 3 when it is at least this much faster (relative).
DEPARTS = 0.01


class _Costs:
    """Measured per-layer costs of each model, profiled once."""

    def __init__(self, speed_factor: float, repeats: int) -> None:
        self.speed_factor = speed_factor
        self.repeats = repeats
        self.cache: dict[str, tuple[tuple[str, ...], list[float], tuple[int, ...]]] = {}
        self.nodes: dict[str, list[Any]] = {}  # traced nodes, for the delay fit

    def get(self, model: str) -> tuple[tuple[str, ...], list[float], tuple[int, ...]]:
        if model not in self.cache:
            from edgesplit.graph import trace
            from edgesplit.models import build
            from edgesplit.multidevice.instance import PROFILE_THREADS
            from edgesplit.predict.profile import profile_graph

            module, x = build(model)
            graph = trace(module, x, name=model)
            prof = profile_graph(graph, x, threads=PROFILE_THREADS, repeats=self.repeats, warmup=2)
            secs = prof.seconds(graph)
            self.nodes[model] = list(graph.nodes)
            self.cache[model] = (
                tuple(n.name for n in graph.nodes),
                secs,
                tuple(c.bytes for c in graph.cuts()),
            )
        return self.cache[model]

    def problem(
        self, model: str, n: int, mbps: float, load: float = 0.0, factor: float | None = None
    ) -> Any:
        from edgesplit.multidevice.problem import DeviceCosts, MecProblem
        from edgesplit.system.link import Link

        layers, secs, cut_bytes = self.get(model)
        slow = 1.0 / (1.0 - load)
        speed = self.speed_factor if factor is None else factor
        devices = tuple(
            DeviceCosts(
                name=f"{model}-{i}",
                model=model,
                layers=layers,
                local_s=tuple(s * speed for s in secs),
                server_s=tuple(s * slow for s in secs),
                cut_bytes=cut_bytes,
                uplink=Link.of(mbps * 1e6),
            )
            for i in range(n)
        )
        return MecProblem(devices, server_load=load)


def _cases(problem: Any, time_limit: float) -> dict[str, Any]:
    from edgesplit.multidevice.baselines import solve_local, solve_server
    from edgesplit.multidevice.cpsat import solve_cpsat
    from edgesplit.multidevice.heuristic import solve_heuristic

    hint = solve_heuristic(problem)
    case1 = solve_cpsat(problem, time_limit=time_limit, hint=hint)
    if hint.average_s < case1.average_s:
        case1 = hint
    out = {
        "case1": case1,
        "case2": solve_server(problem, time_limit=time_limit),
        "case3": solve_local(problem),
    }
    return {
        name: {
            "average_s": s.average_s,
            "transmitted_bytes": s.transmitted_bytes,
            "splits": list(s.splits),
            "status": s.status,
            "gap": s.gap,
        }
        for name, s in out.items()
    }


def run_experiment(
    speed_factor: float = 10.0,
    time_limit: float = 20.0,
    quick: bool = False,
    repeats: int = 5,
    log: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """All five figures' data as one document; ``log`` receives one line per stage."""
    import torch

    say = log or (lambda _line: None)
    torch.set_num_threads(1)
    costs = _Costs(speed_factor, repeats)
    bandwidths = BANDWIDTHS[1::2] if quick else BANDWIDTHS
    loads = LOADS[::2] if quick else LOADS
    counts = (1, 2, 4) if quick else DEVICE_COUNTS
    models = ("alexnet", "lenet") if quick else MODELS
    doc: dict[str, Any] = {"speed_factor": speed_factor, "time_limit_s": time_limit, "quick": quick}
    doc["profile"] = {"timer": "wall clock (time.perf_counter)", "torch_threads": 1}
    say("Figs. 1 and 3: alexnet over bandwidth (profiling each model on first use)")
    doc["fig1_fig3"] = [
        {"mbps": bw, **_cases(costs.problem("alexnet", 4, bw), time_limit)} for bw in bandwidths
    ]
    say(f"Fig. 2: {', '.join(models)} at 1 Mbit/s")
    doc["fig2"] = [{"model": m, **_cases(costs.problem(m, 4, 1.0), time_limit)} for m in models]
    say("Figs. 4 and 5: server load and device count")
    doc["fig4"] = [
        {"load": ld, **_cases(costs.problem("alexnet", 4, 5.0, ld), time_limit)} for ld in loads
    ]
    doc["fig5"] = [
        {"devices": n, **_cases(costs.problem("alexnet", n, 2.5), time_limit)} for n in counts
    ]
    rows = [r for key in ("fig1_fig3", "fig2", "fig4", "fig5") for r in doc[key]]
    doc["max_reduction_vs_server"] = max(
        1 - r["case1"]["average_s"] / r["case2"]["average_s"] for r in rows
    )
    doc["max_reduction_vs_local"] = max(
        1 - r["case1"]["average_s"] / r["case3"]["average_s"] for r in rows
    )
    doc["paper"] = PAPER
    doc["model_layers"] = {m: len(costs.get(m)[0]) for m in costs.cache}
    doc["model_local_ms"] = {m: sum(costs.get(m)[1]) * speed_factor * 1e3 for m in costs.cache}
    doc["model_server_ms"] = {m: sum(costs.get(m)[1]) * 1e3 for m in costs.cache}
    doc["case1_not_optimal"] = sum(r["case1"]["status"] != "optimal" for r in rows)
    say(f"speed-factor sweep {', '.join(f'{f:g}' for f in SPEED_FACTORS)}")
    doc["speed_sweep"] = _speed_sweep(doc, costs, models, counts, time_limit)
    say("eq. 1-2 delay fit on sampled single-layer blocks and the profiled layers")
    doc["fit"] = _fit(costs, quick, repeats)
    return doc


def _speed_sweep(
    doc: dict[str, Any], costs: _Costs, models: Any, counts: Any, time_limit: float
) -> list[dict[str, Any]]:
    """Figs. 2 and 5 re-solved at every factor of ``SPEED_FACTORS`` (and the run's own)."""
    sweep = []
    for f in sorted({*SPEED_FACTORS, costs.speed_factor}):
        if f == costs.speed_factor:
            fig2, fig5 = doc["fig2"], doc["fig5"]
        else:
            fig2 = [
                {"model": m, **_cases(costs.problem(m, 4, 1.0, factor=f), time_limit)}
                for m in models
            ]
            fig5 = [
                {"devices": n, **_cases(costs.problem("alexnet", n, 2.5, factor=f), time_limit)}
                for n in counts
            ]
        for r in (*fig2, *fig5):
            r["departs"] = r["case1"]["average_s"] < (1 - DEPARTS) * r["case3"]["average_s"]
        sweep.append({"speed_factor": f, "fig2": fig2, "fig5": fig5})
    return sweep


def _fit(costs: _Costs, quick: bool, repeats: int) -> dict[str, Any]:
    """Eq. 1-2 fitted on single-layer blocks plus the profiled models' layers (§II-B)."""
    from edgesplit.multidevice.instance import PROFILE_THREADS
    from edgesplit.predict.gao import PAPER_FIT, fit_with_holdout, sample_layers

    nodes, secs = sample_layers(15 if quick else 40, threads=PROFILE_THREADS, repeats=repeats)
    for m in sorted(costs.cache):
        nodes.extend(costs.nodes[m])
        secs.extend(costs.cache[m][1])
    report = fit_with_holdout(nodes, secs)
    return {
        **{k: v for k, v in report.to_dict().items() if k != "coefficients"},
        "layers": len(nodes),
        "models": sorted(costs.cache),
        "timer": "wall clock (time.perf_counter)",
        "torch_threads": PROFILE_THREADS,
        "paper": {**PAPER_FIT, "scope": "conv layers, Orange Pi and i5"},
    }


def plot(doc: dict[str, Any], out: Path) -> list[Path]:
    """Figs. 1-5 (Cases 1-3 against bandwidth, model, server load and devices) and the
    speed-factor sweep of Figs. 2 and 5 (:func:`_plot_sweep`)."""
    from edgesplit.plotting import count_axis, engineering, legend_right, log_ticks, pyplot, save

    plt = pyplot()
    labels = {
        "case1": "Case 1 (MILP/CP-SAT)",
        "case2": "Case 2 (server only)",
        "case3": "Case 3 (local only)",
    }
    paths = []

    def lines(key: str, x: str, y: Callable[[dict[str, Any]], float], ylabel: str,
              unit: str, name: str, file: str) -> None:  # fmt: skip
        fig, ax = plt.subplots(figsize=(6, 4))
        xs = [r[x] for r in doc[key]]
        for k, case in enumerate(CASES):
            # Case 1 on top, dashed and hollow: where it equals Case 3 both stay visible
            first = case == "case1"
            ax.plot(xs, [y(r[case]) for r in doc[key]], marker="D" if first else "o",
                    color=f"C{k}", label=labels[case], ls="--" if first else "-",
                    mfc="none" if first else None, ms=9 if first else 6,
                    zorder=3 if first else 2)  # fmt: skip
        if x == "mbps":
            ax.set_xscale("log")
            log_ticks(ax, "x")
            ax.set_xlabel("device → server bandwidth (Mbit/s)")
        elif x == "devices":
            count_axis(ax)
            ax.set_xlabel("number of devices")
        else:
            ax.set_xlabel("server load level (fraction of capacity busy)")
        if unit == "s":
            ax.set_yscale("log")  # server-only is 10-100x the others at low bandwidth
        engineering(ax, unit)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.set_title(name)
        legend_right(ax)
        paths.append(save(fig, out / file))

    def delay(c: dict[str, Any]) -> float:
        return float(c["average_s"])

    lines("fig1_fig3", "mbps", delay, "average delay", "s", "Fig. 1: AlexNet, 4 devices",
          "fig1.png")  # fmt: skip
    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.25
    for k, case in enumerate(CASES):
        speeds = [r["case3"]["average_s"] / r[case]["average_s"] for r in doc["fig2"]]
        ax.bar([i + (k - 1) * width for i in range(len(speeds))], speeds, width,
               color=f"C{k}", label=labels[case])  # fmt: skip
    ax.set_xticks(range(len(doc["fig2"])), [r["model"] for r in doc["fig2"]])
    ax.set_xlabel("model")
    ax.set_ylabel("relative speed T_case3 / T (×)")
    ax.set_title("Fig. 2: 4 devices, 1 Mbit/s")
    legend_right(ax)
    paths.append(save(fig, out / "fig2.png"))
    lines("fig1_fig3", "mbps", lambda c: float(c["transmitted_bytes"]),
          "transmitted data (4 devices)", "B", "Fig. 3: AlexNet, 4 devices", "fig3.png")  # fmt: skip
    lines("fig4", "load", delay, "average delay", "s", "Fig. 4: AlexNet, 5 Mbit/s", "fig4.png")
    lines("fig5", "devices", delay, "average delay", "s", "Fig. 5: AlexNet, 2.5 Mbit/s",
          "fig5.png")  # fmt: skip
    paths += _plot_sweep(doc, out)
    return paths


def _plot_sweep(doc: dict[str, Any], out: Path) -> list[Path]:
    """Figs. 2 and 5 at every mobile speed factor: where Case 1 departs from Case 3."""
    from edgesplit.plotting import count_axis, engineering, legend_right, pyplot, save

    plt = pyplot()
    sweep = doc["speed_sweep"]
    shades = [plt.get_cmap("viridis")(0.8 * k / max(1, len(sweep) - 1)) for k in range(len(sweep))]
    fig, ax = plt.subplots(figsize=(6, 4))
    models = [r["model"] for r in sweep[0]["fig2"]]
    width = 0.8 / len(sweep)
    for k, row in enumerate(sweep):
        speeds = [r["case3"]["average_s"] / r["case1"]["average_s"] for r in row["fig2"]]
        xs = [i + (k - (len(sweep) - 1) / 2) * width for i in range(len(models))]
        ax.bar(xs, speeds, width, color=shades[k], label=f"Case 1, factor {row['speed_factor']:g}")
    ax.axhline(1.0, color="black", lw=0.8, label="Case 3 (= 1)")
    ax.set_xticks(range(len(models)), models)
    ax.set_xlabel("model")
    ax.set_ylabel("relative speed of Case 1, T_case3 / T_case1 (×)")
    ax.set_title("Fig. 2 by mobile speed factor: 4 devices, 1 Mbit/s")
    legend_right(ax)
    paths = [save(fig, out / "fig2_speed_sweep.png")]
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, row in enumerate(sweep):
        xs = [r["devices"] for r in row["fig5"]]
        f = f"{row['speed_factor']:g}"
        ax.plot(xs, [r["case1"]["average_s"] for r in row["fig5"]], marker="o",
                color=shades[k], label=f"Case 1, factor {f}")  # fmt: skip
        ax.plot(xs, [r["case3"]["average_s"] for r in row["fig5"]], ls="--",
                color=shades[k], label=f"Case 3, factor {f}")  # fmt: skip
    ax.set_yscale("log")
    engineering(ax, "s")
    count_axis(ax)
    ax.set_xlabel("number of devices")
    ax.set_ylabel("average delay")
    ax.set_title("Fig. 5 by mobile speed factor: AlexNet, 2.5 Mbit/s")
    legend_right(ax)
    ax.grid(alpha=0.3)
    paths.append(save(fig, out / "fig5_speed_sweep.png"))
    return paths


def table(doc: dict[str, Any]) -> str:
    out = [
        f"# Gao et al. 2019 reproduction (speed factor {doc['speed_factor']})",
        "",
        "| figure | setting | case 1 (ms) | case 2 (ms) | case 3 (ms) | case 1 splits | case 1 status | sent case 1 (B) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, x, unit in (
        ("fig1_fig3", "mbps", "Mbit/s"),
        ("fig2", "model", "@1 Mbit/s"),
        ("fig4", "load", "load"),
        ("fig5", "devices", "devices"),
    ):
        for r in doc[key]:
            c1 = r["case1"]
            out.append(
                f"| {key} | {r[x]} {unit} | {c1['average_s'] * 1e3:.1f} | {r['case2']['average_s'] * 1e3:.1f} | "
                f"{r['case3']['average_s'] * 1e3:.1f} | {c1['splits']} | {c1['status']} | {c1['transmitted_bytes']:,} |"
            )
    out += [
        "",
        f"Max reduction vs server-only: {doc['max_reduction_vs_server']:.1%} (paper 90.5%)",
        f"Max reduction vs local-only: {doc['max_reduction_vs_local']:.1%} (paper 69.5%)",
        "",
    ]
    return "\n".join(out)


def _departures(row: dict[str, Any]) -> str:
    fig2 = [r["model"] for r in row["fig2"] if r["departs"]]
    fig5 = [str(r["devices"]) for r in row["fig5"] if r["departs"]]
    return f"Fig. 2: {', '.join(fig2) or 'none'}; Fig. 5 device counts: {', '.join(fig5) or 'none'}"


def comparison(doc: dict[str, Any]) -> str:
    """Paper vs ours, one row per published figure or number, with the reason for each gap."""
    fit, paper = doc["fit"], doc["fit"]["paper"]
    conv = "-" if fit["r2_conv"] is None else f"{fit['r2_conv']:.2%}"
    load = ", ".join(f"{v:.1f}" for v in doc["load_average"]["end"])
    sweep = {row["speed_factor"]: row for row in doc["speed_sweep"]}
    f = doc["speed_factor"]
    rows = [
        (
            "§II-B conv R² (test set)",
            f"{paper['r2']:.2%}",
            f"{conv} conv, {fit['r2']:.2%} all layers",
            f"{fit['n_test']} held-out layers of {fit['layers']}, wall clock on 1 thread at load "
            f"{load}; the paper fitted > 1000 conv runs on an idle Orange Pi",
        ),
        (
            "§II-B mean absolute error",
            f"{paper['mae_s'] * 1e3:.2f} ms",
            f"{fit['mae_s'] * 1e3:.3f} ms",
            "ours is on this host's (server-speed) delays, the paper's on an Orange Pi's: "
            "only the R² compares",
        ),
        (
            "max reduction vs server-only (Case 2)",
            f"{PAPER['max_reduction_vs_server']:.1%}",
            f"{doc['max_reduction_vs_server']:.1%}",
            "our bandwidth/load grid is ours (the paper's axes are not in the text)",
        ),
        (
            "max reduction vs local-only (Case 3)",
            f"{PAPER['max_reduction_vs_local']:.1%}",
            f"{doc['max_reduction_vs_local']:.1%}",
            f"mobile delays are this host's times {f:g}; the paper measured Orange Pis",
        ),
        (
            "Fig. 1: Case 1 always lowest",
            "yes",
            "yes"
            if all(
                r["case1"]["average_s"] <= min(r["case2"]["average_s"], r["case3"]["average_s"])
                for r in doc["fig1_fig3"]
            )
            else "no",
            "Case 1 is solved exactly (or seeded with the best heuristic schedule)",
        ),
        (
            "Figs. 2 and 5: Case 1 departs from Case 3",
            "Case 1 highest for every model (text); ahead of Case 3 in the plots",
            _departures(sweep[f]) if f in sweep else "-",
            "where Case 1 = Case 3, sending at ≤ 2.5 Mbit/s costs more than the mobile compute "
            f"it saves at factor {f:g}; the sweep below shows where that changes",
        ),
    ]
    out = [
        f"# Gao et al. 2019: paper vs ours (speed factor {f:g})",
        "",
        "| entry | paper | ours | why they differ |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
        "",
        "## Mobile speed factor sweep (Figs. 2 and 5)",
        "",
        "| factor | where Case 1 is ≥ 1 % faster than Case 3 |",
        "|---|---|",
        *(f"| {k:g} | {_departures(row)} |" for k, row in sweep.items()),
        "",
        "Factor 10 matches the paper's devices: the ratio of the dominant multiply-accumulate "
        "term of eq. 1 (Orange Pi Win Plus, 4x Cortex-A53 at 1.2 GHz) to eq. 2 (i5 at "
        "3.2 GHz) is 0.3e-5 / 3e-7 = 10 (the other two terms give 35 and 19, so 10 is the "
        "conservative end). A slower mobile device (factor 30) makes offloading pay at lower "
        "bandwidths, which is where the paper's Figs. 2 and 5 show Case 1 ahead.",
        "",
        f"Load average (1, 5, 15 min) during the run: {load}.",
        "",
    ]
    return "\n".join(out)


def reproduce(
    out: Path,
    *,
    quick: bool = False,
    speed_factor: float = 10.0,
    time_limit: float = 20.0,
    log: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Run every figure; write ``table.md``, the PNGs, then ``comparison.md`` and
    ``results.json`` (:func:`edgesplit.experiments.registry.finish`).

    Returns the ``results.json`` document. ``log`` receives one line per stage.
    """
    from edgesplit.errors import InputError
    from edgesplit.experiments.registry import LoadAverage, finish
    from edgesplit.io import write_atomic

    load = LoadAverage()
    say = log or (lambda _line: None)
    if speed_factor <= 0:
        raise InputError(f"--speed-factor must be positive, not {speed_factor}")
    if time_limit <= 0:
        raise InputError(f"--time-limit must be positive, not {time_limit}")
    limit = min(time_limit, QUICK_TIME_LIMIT) if quick else time_limit
    doc = run_experiment(speed_factor=speed_factor, time_limit=limit, quick=quick, log=say)
    doc["load_average"] = load.doc()
    say("drawing the figures")
    figures = plot(doc, out)
    write_atomic(out / "table.md", table(doc))
    return finish(
        "gao2019", out, doc, quick=quick, load=load, figures=figures, comparison=comparison(doc)
    )
