"""``edgesplit reproduce tuli2021``: Table 1, Figure 4 and MAB training curves of SplitPlace.

Protocol (Tuli 2021 §4): the paper's default cluster (16 Raspberry Pi 4B, 8 x 4 GB and
8 x 8 GB, Poisson(6) tasks of the three applications on MobileNetV2 / ResNet50 /
InceptionV3, 5-minute intervals, 100 intervals; ``--quick``: 30 intervals). Learned parts
are trained once on their own seeds (DASO/GOBI surrogates: traces of random runs on seeds
1001-1002; then the MAB: epsilon-greedy run on seed 2001 under DASO, whose final R^a the
test runs start from), then every Table 1 policy is evaluated on the same evaluation seeds
(3, or 2 with ``--quick``). Each cell is the mean over seeds with a 95 % Student-t
confidence half-width. Fig. 4 is three single-application workloads, as in the paper:
each policy runs on a workload of one application only (same cluster and rate; the learned
parts trained on the mixed workload are reused; 1 seed with ``--quick``).

Outputs under ``--out`` (default ``results/tuli2021``): ``results.json`` (the shared
fields of :mod:`edgesplit.experiments.registry`; per policy ``ours.<policy>.reward_eq8``,
``ours.<policy>.reward_omab`` and ``ours.<policy>.layer_fraction``, each ``[mean, 95 %
half-width]`` over the seeds, or null where no task finished; ``fig4.<app>.<policy>`` the
same for each single-application workload; ``paper`` and ``paper_reward_bound``),
``table1.md`` (ours beside the paper's), ``comparison.md`` (one row per
published Table 1 entry and Fig. 4 reward range: paper, ours, why they differ), ``fig4.png`` (per workload: response
time, SLA violations, accuracy), ``mab_training.png`` (epsilon, O^MAB, Q). Nothing here
is tuned towards the paper's numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgesplit.cluster.apps import AppProfile, build_profiles
from edgesplit.cluster.config import ClusterConfig
from edgesplit.cluster.metrics import summarize
from edgesplit.cluster.policies import TABLE1, LearnedState, prepare, run_policy
from edgesplit.io import write_atomic

# Table 1 of the paper: energy (MW-hr as printed), sched. s, Jain, wait, response, SLA
# violation rate, accuracy %, reward.
PAPER: dict[str, dict[str, float]] = {
    "mc": dict(
        energy=1.1368,
        sched_s=8.84,
        jain=0.65,
        wait=1.15,
        response=6.85,
        sla=0.26,
        accuracy=89.93,
        reward=83.98,
    ),
    "gillis": dict(
        energy=1.1442,
        sched_s=8.22,
        jain=0.89,
        wait=1.40,
        response=8.39,
        sla=0.22,
        accuracy=91.90,
        reward=84.17,
    ),
    "s+g": dict(
        energy=1.1112,
        sched_s=8.68,
        jain=0.68,
        wait=1.08,
        response=3.70,
        sla=0.14,
        accuracy=89.04,
        reward=83.91,
    ),
    "l+g": dict(
        energy=1.1517,
        sched_s=8.72,
        jain=0.88,
        wait=1.52,
        response=9.92,
        sla=0.62,
        accuracy=93.17,
        reward=64.87,
    ),
    "r+d": dict(
        energy=1.1297,
        sched_s=8.86,
        jain=0.62,
        wait=1.00,
        response=5.55,
        sla=0.29,
        accuracy=90.71,
        reward=81.62,
    ),
    "m+g": dict(
        energy=1.1290,
        sched_s=9.12,
        jain=0.78,
        wait=1.13,
        response=5.64,
        sla=0.10,
        accuracy=91.45,
        reward=90.18,
    ),
    "splitplace": dict(
        energy=1.0867,
        sched_s=9.32,
        jain=0.73,
        wait=1.09,
        response=4.50,
        sla=0.08,
        accuracy=92.72,
        reward=94.18,
    ),
}
METRICS = (
    ("energy_kwh", "energy", "Energy (ours kWh / paper MW-hr)"),
    ("sched_s", "sched_s", "Sched. time s"),
    ("jain", "jain", "Jain"),
    ("wait_intervals", "wait", "Wait"),
    ("response_intervals", "response", "Resp. time"),
    ("sla_violation", "sla", "SLA viol."),
    ("accuracy", "accuracy", "Acc. %"),
    ("reward_eq8", "reward", "Reward eq. 8"),
    ("reward_omab", "reward", "100 O^MAB"),
    ("layer_fraction", None, "Layer share"),
)
PER_APP_KEYS = ("response_intervals", "sla_violation", "accuracy", "layer_fraction")
FIG4_KEYS = (*PER_APP_KEYS, "reward_eq8", "reward_omab")
# Fig. 4 text (§4): reward ranges over the three single-application workloads
PAPER_FIG4_REWARD = {"splitplace": (89.83, 95.36), "gillis": (75.54, 83.98), "mc": (66.57, 88.31)}
# Why a Table 1 column of ours differs from the paper's (comparison.md)
REASONS = {
    "energy": "units differ (paper prints MW-hr for 16 Pis over 8 h 20 min; ours kWh from "
    "the SPEC-style Pi curves); only the order across policies compares",
    "sched_s": "ours times the in-process split and surrogate placement of a simulator; the "
    "paper's broker (i3 laptop) also orchestrates containers and fine-tunes",
    "jain": "ours is over the hosts' busy fractions; the paper does not say over what",
    "wait": "RAM rarely binds in our cluster (containers 0.3-0.8 GB), so waits stay near 0",
    "response": "our batches make an unsplit task ~1 interval of one Pi (the paper gives no "
    "batch size); semantic splits cost ~2.1x the work at s = 0.5 and queue at lambda = 6",
    "sla": "follows the response times and our U(1, 8)-interval deadlines (paper unstated)",
    "accuracy": "per-application table: mnist measured on the stand-in CNN, others assumed",
    "reward": "eq. 8 with our normalisation (AEC costs ~25 points); the paper's column is "
    "not eq. 8 taken literally (paper_reward_bound); compare 100 O^MAB for the scale",
    "reward_omab": "eq. 3-4 alone, on the paper's 0-100 scale; the paper's column exceeds "
    "what eq. 3-4 allow for SplitPlace (paper_reward_bound), so its normalisation is unstated",
}


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and 95 % Student-t half-width (0 for one value)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()), 0.0
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean()), float(half)


def paper_bound(name: str) -> float:
    """100 (1 - SLA + acc) / 2: the largest task-weighted O^MAB (eq. 3-4) a Table 1 row
    allows; eq. 8 subtracts alpha AEC + beta ART >= 0 from O^MAB, so it is an upper
    bound for a literal eq. 8 too (SplitPlace: 92.36 < the printed 94.18)."""
    row = PAPER[name]
    return 100.0 * (1.0 - row["sla"] + row["accuracy"] / 100.0) / 2.0


def _evaluate(
    cfg: ClusterConfig,
    profiles: dict[str, AppProfile],
    trained: LearnedState,
    seeds: list[int],
    keys: tuple[str, ...],
) -> dict[str, dict[str, Any]]:
    """Every Table 1 policy on ``seeds``: mean and 95 % CI of ``keys`` (+ per app)."""
    table: dict[str, dict[str, Any]] = {}
    for name in TABLE1:
        rows = []
        for s in seeds:
            metrics, _ = run_policy(cfg, name, profiles, trained, seed=s)
            rows.append(summarize(metrics, cfg.interval_s))
        cell: dict[str, Any] = {}
        for key in keys:
            vals = [r[key] for r in rows if r.get(key) is not None]
            cell[key] = mean_ci(vals) if vals else None
        cell["per_app"] = {
            app: {
                k: mean_ci([r["per_app"][app][k] for r in rows if app in r["per_app"]])
                for k in PER_APP_KEYS
            }
            for app in sorted({a for r in rows for a in r["per_app"]})
        }
        table[name] = cell
    return table


def reproduce(
    out: Path,
    *,
    quick: bool = False,
    seeds: int | None = None,
    intervals: int | None = None,
    log: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Run the protocol above; ``intervals`` overrides the run length (tests). Returns the
    ``results.json`` document (:func:`edgesplit.experiments.registry.finish`)."""
    from edgesplit.experiments.registry import LoadAverage, finish

    load = LoadAverage()
    say = log or (lambda _line: None)
    n = intervals or (30 if quick else 100)
    cfg = ClusterConfig().model_copy(update={"intervals": n})
    seed_list = list(range(seeds if seeds else (2 if quick else 3)))
    profiles = build_profiles(cfg.workload)
    say("training the learned parts (DASO/GOBI surrogates, then the MAB under DASO)")
    t0 = time.perf_counter()
    trained = prepare(cfg, profiles, list(TABLE1))
    train_s = time.perf_counter() - t0
    say(f"Table 1: every policy on seeds {seed_list}, {n} intervals")
    table = _evaluate(cfg, profiles, trained, seed_list, tuple(k for k, _, _ in METRICS))
    fig4: dict[str, dict[str, Any]] = {}
    fig4_seeds = seed_list[:1] if quick else seed_list
    for app in cfg.workload.apps:
        say(f"Fig. 4: the {app.name} workload alone")
        one = cfg.model_copy(update={"workload": cfg.workload.model_copy(update={"apps": [app]})})
        fig4[app.name] = _evaluate(
            one, {app.name: profiles[app.name]}, trained, fig4_seeds, FIG4_KEYS
        )
    doc = {
        "protocol": {
            "intervals": cfg.intervals,
            "seeds": seed_list,
            "fig4_seeds": fig4_seeds,
            "hosts": len(cfg.hosts),
            "arrival_rate": cfg.workload.arrival_rate,
            "apps": {a.name: a.model for a in cfg.workload.apps},
            "fragments": cfg.workload.fragments,
            "fragment_cores": cfg.workload.fragment_cores,
            "semantic_shared": cfg.workload.semantic_shared,
            "train_s": train_s,
        },
        "load_average": load.doc(),
        "ours": table,
        "fig4": fig4,
        "paper": PAPER,
        "paper_reward_bound": {name: paper_bound(name) for name in PAPER},
        "mab_state": trained.mab_state,
        "mab_history": trained.mab_history,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "table1.md", markdown(doc))
    say("drawing the figures")
    plot_fig4(fig4, out / "fig4.png")
    plot_mab(trained.mab_history, out / "mab_training.png")
    figures = [out / "fig4.png", out / "mab_training.png"]
    return finish(
        "tuli2021", out, doc, quick=quick, load=load, figures=figures, comparison=comparison(doc)
    )


def _cell(v: tuple[float, float] | None) -> str:
    return "-" if v is None else f"{v[0]:.3g} +- {v[1]:.2g}"


def markdown(doc: dict[str, Any]) -> str:
    p = doc["protocol"]
    lines = [
        "# Tuli 2021 SplitPlace, Table 1: ours (mean +- 95 % CI) / paper",
        "",
        f"{p['hosts']} hosts, {p['intervals']} intervals of 300 s, lambda = "
        f"{p['arrival_rate']}, apps {p['apps']}, evaluation seeds {p['seeds']}, load "
        f"average at start {doc['load_average']['start'][0]:.1f}. Units: energy ours kWh over "
        "the run (paper prints MW-hr), sched. time s per interval, wait and response in "
        "intervals. Reward eq. 8 = 100 x O^P with our normalisation (docs/cluster.md); "
        "100 O^MAB = eq. 3-4 alone. The paper's one reward column is set beside both; it "
        "cannot be eq. 8 taken literally (its bound 100 (1 - SLA + acc) / 2 is in the "
        "last column). Layer share: tasks given a layer split (no paper value).",
        "",
        "| Model | " + " | ".join(label for _, _, label in METRICS) + " | paper bound |",
        "|---" * (len(METRICS) + 2) + "|",
    ]
    for name, row in doc["ours"].items():
        cells = []
        for key, pkey, _ in METRICS:
            paper = "" if pkey is None else f" / {doc['paper'][name][pkey]:g}"
            cells.append(_cell(row[key]) + paper)
        bound = doc["paper_reward_bound"][name]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {bound:.2f} |")
    lines += [
        "",
        "## Fig. 4: single-application workloads (resp. / SLA viol. / acc. % / layer share)",
        "",
        "| Workload | Model | resp. | SLA viol. | acc. % | layer share |",
        "|---|---|---|---|---|---|",
    ]
    for app, rows in doc["fig4"].items():
        for name, row in rows.items():
            lines.append(
                f"| {app} | {name} | " + " | ".join(_cell(row[k]) for k in FIG4_KEYS) + " |"
            )
    return "\n".join(lines) + "\n"


def comparison(doc: dict[str, Any]) -> str:
    """Paper vs ours, one row per published Table 1 entry and Fig. 4 reward range."""
    lines = [
        "# Tuli 2021 SplitPlace: paper vs ours",
        "",
        "Ours: mean over seeds (results.json has the 95 % CIs and the load average). "
        "Nothing is tuned to the paper. Our ranking is our own (docs/cluster.md).",
        "",
        "| Entry | Paper | Ours | Why they differ |",
        "|---|---|---|---|",
    ]
    for name, row in doc["ours"].items():
        for key, pkey, label in METRICS:
            if pkey is None or row[key] is None:
                continue
            why = REASONS["reward_omab" if key == "reward_omab" else pkey]
            lines.append(
                f"| Table 1 {name} {label} | {doc['paper'][name][pkey]:g} | "
                f"{row[key][0]:.3g} | {why} |"
            )
    for name, (lo, hi) in PAPER_FIG4_REWARD.items():
        vals = [doc["fig4"][app][name]["reward_omab"] for app in doc["fig4"]]
        ours = [v[0] for v in vals if v is not None]
        span = f"{min(ours):.2f}-{max(ours):.2f}" if ours else "-"
        lines.append(
            f"| Fig. 4 {name} reward range over the 3 workloads | {lo}-{hi} | {span} "
            f"(100 O^MAB) | {REASONS['reward_omab']} |"
        )
    return "\n".join(lines) + "\n"


def plot_fig4(fig4: dict[str, dict[str, Any]], path: Path) -> None:
    """One row per single-application workload; bars per policy; CI bars clipped at 0."""
    from edgesplit.plotting import clipped_yerr, mark_zeros, pyplot, save

    plt = pyplot()
    keys = (
        ("response_intervals", "response time (intervals)"),
        ("sla_violation", "SLA violation rate (fraction)"),
        ("accuracy", "accuracy (%)"),
    )
    apps = list(fig4)
    fig, axes = plt.subplots(len(apps), len(keys), figsize=(15, 3.8 * len(apps)), squeeze=False)
    for r, app in enumerate(apps):
        names = list(fig4[app])
        x = np.arange(len(names))
        for c, (key, label) in enumerate(keys):
            ax = axes[r][c]
            vals = [fig4[app][n][key] or (float("nan"), 0.0) for n in names]
            means = [v[0] for v in vals]
            yerr = clipped_yerr(means, [v[1] for v in vals])
            ax.bar(x, means, 0.7, yerr=yerr, capsize=3, color=f"C{c}")
            mark_zeros(ax, x, means)
            ax.set_ylim(bottom=0)
            ax.set_xticks(x, names, rotation=30, ha="right")
            ax.set_xlabel("policy")
            ax.set_ylabel(label)
            ax.set_title(f"{app} workload: {label.split(' (')[0]}")
    fig.suptitle("Tuli 2021 Fig. 4 (ours): single-application workloads, mean and 95 % CI")
    fig.tight_layout()
    save(fig, path)


#: The MAB's contexts (eq. 3-4): is the deadline at least the estimated response R^a?
_CONTEXT = {"h": "deadline ≥ R^a", "l": "deadline < R^a"}


def plot_mab(history: list[dict[str, Any]], path: Path) -> None:
    """Training under DASO: epsilon and O^MAB (eq. 8), and Q per context/decision."""
    from edgesplit.plotting import count_axis, legend_right, pyplot, save, undefined

    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4))
    a.set_title("MAB training under DASO: epsilon and O^MAB")
    b.set_title("Q per decision and context (eq. 3-4)")
    if not history:
        undefined(a, "no training interval was run")
        undefined(b, "no training interval was run")
        save(fig, path)
        return
    t = [h["interval"] for h in history]
    a.plot(t, [h["epsilon"] for h in history], label="epsilon")
    a.plot(t, [h["o_mab"] if h["o_mab"] is not None else np.nan for h in history], label="O^MAB")
    a.set_xlabel("training interval")
    a.set_ylabel("value (unitless)")
    count_axis(a)
    legend_right(a)
    for key in history[0]["q"]:
        ctx, decision = key.split("/")
        b.plot(t, [h["q"][key] for h in history], label=f"Q {decision}, {_CONTEXT[ctx]}")
    b.set_xlabel("training interval")
    b.set_ylabel("reward estimate Q (unitless)")
    count_axis(b)
    legend_right(b)
    fig.tight_layout()
    save(fig, path)
