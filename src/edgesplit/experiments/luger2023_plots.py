"""The figures of ``reproduce luger2023``, all from measured points (Luger 2023).

* ``latency_<model>_<strategy>.png`` / ``cost_<model>_<strategy>.png``: Figs. 7.2–7.8,
  the measured latency and eq. 4.4 cost of OC, OL and CL per setting;
* ``weights_<model>.png``: Fig. 7.1, Algorithm 1's pick at w = 0, 0.33, 0.67, 1 on the
  first setting (rent), every run split's measured latency beside the prediction;
* ``pareto_<model>.png``: Fig. 7.9, measured latency and rent cost of every split run in
  every setting, with the measured Pareto front;
* ``clock_fit.png``: Fig. 4.1, the normalised all-in-edge slopes per model and the fitted
  power law ``a·CS^b``;
* ``clock_grid_<model>.png``: Fig. 4.5, one panel per grid clock at 7.2 Mbit/s: measured
  and predicted (profile; eq. 4.1–4.2) latency per split, and the OC/OL/CL picks.

Drawn in the one style of :mod:`edgesplit.plotting`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgesplit.plotting import (
    COLOURS,
    count_axis,
    engineering,
    legend_right,
    mark_zeros,
    pyplot,
    save,
    undefined,
)

#: Ring sizes, largest first, so that picks on the same split stay visible.
SIZES = {"OC": 13, "OL": 9.5, "CL": 6}
CHOICES = ("OC", "OL", "CL")


def bars(records: list[dict[str, Any]], model: str, strategy: str, out: Path) -> list[Path]:
    plt = pyplot()
    rows = [r for r in records if r["model"] == model and r["strategy"] == strategy]
    settings = sorted({r["setting"] for r in rows})
    labels = []
    for s in settings:
        r0 = next(r for r in rows if r["setting"] == s)
        labels.append(f"{r0['bandwidth_mbit']:g} Mbit/s\n{r0['clock_ghz']:g} GHz")
    paths = []
    for metric, unit in (("latency", "s"), ("cost", "USD")):
        fig, ax = plt.subplots(figsize=(max(6, len(settings) * 0.8), 3.8))
        x = np.arange(len(settings))
        table = {
            choice: [
                next(r[metric] for r in rows if r["setting"] == s and r["choice"] == choice)
                for s in settings
            ]
            for choice in CHOICES
        }
        ax.set_title(f"{metric}: {model}, {strategy}, w = 0.5 (measured)")
        if not any(v for vals in table.values() for v in vals):
            undefined(ax, f"every pick's {metric} is 0 ({strategy}: the edge is free, eq. 4.4)")
            paths.append(save(fig, out / f"{metric}_{model}_{strategy}.png"))
            continue
        for j, (choice, vals) in enumerate(table.items()):
            xs = x + (j - 1) * 0.27
            ax.bar(xs, vals, 0.27, label=choice, color=COLOURS[choice])
            mark_zeros(ax, xs, vals, COLOURS[choice])
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_xlabel("setting (bandwidth, edge clock)")
        ax.set_ylabel(f"{metric} per inference")
        engineering(ax, unit)
        legend_right(ax)
        paths.append(save(fig, out / f"{metric}_{model}_{strategy}.png"))
    return paths


def _measured(split: dict[str, Any]) -> tuple[list[int], list[float]]:
    cuts = sorted(int(k) for k in split["measured"])
    return cuts, [split["measured"][str(k)]["latency"] for k in cuts]


def weights(split: dict[str, Any], out: Path) -> Path:
    """Fig. 7.1: picks at w = 0, 0.33, 0.67, 1 (rent), measured latency of each."""
    plt = pyplot()
    by_w = split["picks_by_weight"]
    fig, axes = plt.subplots(1, len(by_w), figsize=(3.4 * len(by_w), 3.4), sharey=True)
    cuts, lat = _measured(split)
    for ax, (w, cl) in zip(axes, by_w.items()):
        ax.plot(split["predicted_latency"], "k-", lw=1, label="predicted")
        ax.plot(cuts, lat, ".", color="grey", label="measured")
        marks = {"OC": split["picks"]["rent"]["OC"], "OL": split["picks"]["rent"]["OL"], "CL": cl}
        for name, k in marks.items():
            ax.plot([k], [split["measured"][str(k)]["latency"]], "o", ms=SIZES[name], mfc="none",
                    mew=2, color=COLOURS[name], label=name)  # fmt: skip
        ax.set_title(f"w = {w}")
        ax.set_xlabel("split point (layers on the edge)")
        count_axis(ax)
    axes[0].set_ylabel("latency (s)")
    legend_right(axes[-1])
    fig.suptitle(
        y=1.04,
        t=f"{split['model']}, rent, {split['bandwidth_mbit']:g} Mbit/s, "
        f"{split['clock_ghz']:g} GHz: Algorithm 1 by weight (Fig. 7.1)",
    )
    return save(fig, out / f"weights_{split['model']}.png")


def pareto(splits: list[dict[str, Any]], model: str, out: Path) -> Path:
    """Fig. 7.9: every measured (latency, rent cost) of ``model`` and their Pareto front."""
    plt = pyplot()
    pts = np.array(
        [
            (v["latency"], v["cost_rent"])
            for s in splits
            if s["model"] == model
            for v in s["measured"].values()
        ]
    )
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    front, best = [], np.inf
    for i in order:
        if pts[i, 1] < best:
            front.append(i)
            best = pts[i, 1]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(pts[:, 0], pts[:, 1], ".", color="grey", label="every split run")
    ax.plot(pts[front, 0], pts[front, 1], "o-", color="black", mfc="none", label="Pareto front")
    for choice in CHOICES:
        sel = [
            (s["measured"][str(s["picks"]["rent"][choice])]["latency"],
             s["measured"][str(s["picks"]["rent"][choice])]["cost_rent"])
            for s in splits if s["model"] == model
        ]  # fmt: skip
        xs, ys = zip(*sel)
        ax.plot(xs, ys, "o", ms=SIZES[choice], mfc="none", mew=2, color=COLOURS[choice],
                label=f"{choice} (rent)")  # fmt: skip
    ax.set_xlabel("measured latency (s)")
    ax.set_ylabel("measured cost per inference, rent")
    engineering(ax, "USD")
    ax.set_title(f"{model}: latency-cost trade-off over all settings (Fig. 7.9)")
    legend_right(ax)
    return save(fig, out / f"pareto_{model}.png")


def clock_fit(fit: dict[str, Any], out: Path) -> Path:
    """Fig. 4.1: normalised all-in-edge slopes per model and the pooled power law."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    lo, hi = np.inf, 0.0
    for model, acc in fit["accuracy_held_out_clocks"].items():
        lat = np.array(acc["all_in_edge_s"])
        norm = (lat - lat.min()) / (lat.max() - lat.min())
        ax.plot(acc["clocks_ghz"], norm, "o", label=model)
        lo, hi = min(lo, min(acc["clocks_ghz"])), max(hi, max(acc["clocks_ghz"]))
    cs = np.linspace(lo, hi, 100)
    a, b = fit["power_law"]["a"], fit["power_law"]["b"]
    ax.plot(cs, a * cs**b, "k-", label=f"fit {a:.3g}·CS^{b:.2f}")
    ax.set_xlabel("edge clock CS (GHz)")
    ax.set_ylabel("normalised slope (1)")
    ax.set_title("All-in-edge slopes and the eq. 4.1 power law (Fig. 4.1)")
    legend_right(ax)
    return save(fig, out / "clock_fit.png")


def clock_grid(grid: list[dict[str, Any]], out: Path) -> Path:
    """Fig. 4.5: per grid clock, measured and predicted latency per split, OC/OL/CL (rent)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(grid), figsize=(3.4 * len(grid), 3.4), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, s in zip(axes, grid):
        cuts, lat = _measured(s)
        ax.plot(s["predicted_latency"], "k-", lw=1, label="predicted (profile)")
        ax.plot(s["predicted_latency_eq41"], "k:", lw=1, label="predicted (eq. 4.1-4.2)")
        ax.plot(cuts, lat, ".", color="grey", label="measured")
        for choice in CHOICES:
            k = s["picks"]["rent"][choice]
            ax.plot([k], [s["measured"][str(k)]["latency"]], "o", ms=SIZES[choice], mfc="none", mew=2,
                    color=COLOURS[choice], label=choice)  # fmt: skip
        ax.set_title(f"{s['clock_ghz']:g} GHz")
        ax.set_xlabel("split point (layers on the edge)")
        count_axis(ax)
        ax.set_yscale("log")
        engineering(ax, "s")
    axes[0].set_ylabel("latency (log scale)")
    legend_right(axes[-1])
    fig.suptitle(y=1.04, t=f"{grid[0]['model']}, rent, 7.2 Mbit/s over edge clocks (Fig. 4.5)")
    return save(fig, out / f"clock_grid_{grid[0]['model']}.png")


def plot_all(
    records: list[dict[str, Any]],
    splits: list[dict[str, Any]],
    grid: list[dict[str, Any]],
    fit: dict[str, Any],
    out: Path,
) -> list[Path]:
    """Every figure above; returns the paths written."""
    models = list(dict.fromkeys(r["model"] for r in records))
    paths = [p for m in models for st in ("own", "rent") for p in bars(records, m, st, out)]
    first = next(s for s in splits if s["model"] == models[0])
    paths += [weights(first, out), pareto(splits, models[0], out), clock_fit(fit, out)]
    paths.append(clock_grid(grid, out))
    return paths
