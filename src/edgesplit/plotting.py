"""One style for every figure edgesplit writes (issue 15 point 22, issue 16 item 9).

Every PNG the project writes (the five ``reproduce`` runs, the demo, the multi-device Gantt
chart) is drawn with these helpers, so that a figure reads the same wherever it comes from:

* matplotlib's Agg backend (no display needed), imported lazily: matplotlib belongs to the
  ``full`` extra, and the lean device install imports this module without it;
* a title, and every axis labelled with its unit: :func:`save` refuses a figure without
  them (a ``ValueError`` naming the panel, a bug in the caller, never the user's input);
* legends outside the data, right of the axes (:func:`legend_right`) or below them
  (:func:`legend_below`), so that no legend hides a mark;
* integer ticks on axes that count things (devices, processors, fragments, generations):
  :func:`count_axis`;
* error bars clipped at zero for quantities that cannot be negative: :func:`clipped_yerr`
  gives the asymmetric ``yerr`` whose lower arm stops at 0;
* one colour per Luger 2023 choice (OL, OC, CL, §4.4) and per tier (device, edge, cloud),
  the same everywhere: :data:`COLOURS`;
* tick labels in engineering notation where values are tiny or huge (:func:`engineering`),
  plain 1-2-5 labels on log axes (:func:`log_ticks`),
  and a "0" on bars of height zero (:func:`mark_zeros`);
* a panel that has nothing to draw says why in words (:func:`undefined`) instead of being
  written empty;
* :func:`save` writes through :func:`edgesplit.io.write_atomic`: the whole file or none,
  with the user's umask.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgesplit.io import write_atomic

#: The one colour of each Luger 2023 choice (OL: lowest latency, OC: lowest cost, CL: the
#: weighted compromise, Algorithm 1) and of each tier and link, in every figure.
COLOURS: dict[str, str] = {
    "OL": "#c44e52",
    "OC": "#55a868",
    "CL": "#4c72b0",
    "device": "#8172b2",
    "edge": "#dd8452",
    "cloud": "#64b5cd",
    "device→edge": "#937860",
    "edge→cloud": "#8c8c8c",
}
#: Resolution of every PNG (dots per inch).
DPI = 110


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (imported on first use: a ``full`` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def count_axis(ax: Any, which: str = "x") -> None:
    """Integer ticks only on the ``which`` ("x" or "y") axis of ``ax``: it counts things."""
    from matplotlib.ticker import MaxNLocator

    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(MaxNLocator(integer=True))


def clipped_yerr(means: Sequence[float], half: Sequence[float]) -> np.ndarray:
    """Asymmetric ``yerr`` (2 × n) for a non-negative quantity: the lower arm stops at 0.

    ``means ± half`` is a confidence interval; where it reaches below zero, the lower arm
    is shortened to ``mean`` (an unknown mean, NaN, gets no arm at all).
    """
    raw = np.asarray(means, dtype=float)
    m = np.nan_to_num(raw, nan=0.0)
    h = np.where(np.isnan(raw), 0.0, np.nan_to_num(np.asarray(half, dtype=float), nan=0.0))
    return np.vstack([np.clip(np.minimum(h, m), 0.0, None), np.clip(h, 0.0, None)])


def _handles(axes: Iterable[Any]) -> tuple[list[Any], list[str]]:
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    return list(seen.values()), list(seen)


def legend_right(ax: Any, axes: Iterable[Any] | None = None, x: float = 1.02) -> None:
    """The legend of ``axes`` (default: ``ax`` alone) right of ``ax``, outside the data.

    ``x`` is its left edge in axes fractions: past 1.1 it clears a twin's right-hand axis.
    """
    handles, labels = _handles(axes if axes is not None else [ax])
    ax.legend(
        handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(x, 1.0), borderaxespad=0
    )


def legend_below(fig: Any, axes: Iterable[Any], ncol: int = 3) -> None:
    """One legend for all ``axes`` below the figure's panels (labels shared once)."""
    handles, labels = _handles(axes)
    fig.legend(
        handles,
        labels,
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=max(1, min(ncol, len(labels))),
        frameon=False,
    )


def engineering(ax: Any, unit: str, which: str = "y") -> None:
    """Tick labels in engineering notation with ``unit`` (``2 µUSD``), not a ``1e-6`` offset."""
    from matplotlib.ticker import EngFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    if axis.get_scale() == "log":
        log_ticks(ax, which)
    axis.set_major_formatter(EngFormatter(unit=unit))


def log_ticks(ax: Any, which: str = "x") -> None:
    """A log axis labelled at 1, 2, 5 per decade in plain numbers (``0.5``, ``2``, ``50``),
    not ``5×10⁻¹``: readable and never crowded. The unit goes in the axis label."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def mark_zeros(
    ax: Any, xs: Iterable[float], values: Iterable[float], colour: str = "black"
) -> None:
    """Write "0" where a bar has height exactly 0, so that a zero is not read as missing."""
    for x, v in zip(xs, values):
        if v == 0:
            ax.annotate("0", (x, 0), xytext=(0, 2), textcoords="offset points", ha="center",
                        va="bottom", fontsize=8, color=colour, weight="bold")  # fmt: skip


def undefined(ax: Any, reason: str) -> None:
    """Say in the panel why there is nothing to draw, instead of leaving it empty."""
    ax.text(0.5, 0.5, f"undefined: {reason}", ha="center", va="center", wrap=True,
            transform=ax.transAxes, fontsize=9)  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])


def _labelled(ax: Any, which: str) -> bool:
    """``ax``'s ``which`` axis, or one it shares (a row of panels, a twin), has a label."""
    if which == "x":
        return any(o.get_xlabel() for o in ax.get_shared_x_axes().get_siblings(ax))
    return any(o.get_ylabel() for o in ax.get_shared_y_axes().get_siblings(ax))


def _check(fig: Any, path: Path) -> None:
    """Refuse a figure that would read wrong: no title, or an axis with ticks but no label."""
    panels = [ax for ax in fig.get_axes() if ax.get_visible() and ax.axison]
    suptitle = getattr(fig, "_suptitle", None)
    if not (suptitle is not None and suptitle.get_text()) and not any(
        ax.get_title() for ax in panels
    ):
        raise ValueError(f"figure {path.name}: no title; set one with ax.set_title or suptitle")
    for n, ax in enumerate(panels):
        name = ax.get_title() or f"panel {n}"
        if ax.get_yticks().size and not _labelled(ax, "y"):
            raise ValueError(f"figure {path.name}, {name!r}: the y axis has no label (with unit)")
        if ax.get_xticks().size and not _labelled(ax, "x"):
            raise ValueError(f"figure {path.name}, {name!r}: the x axis has no label (with unit)")


def save(fig: Any, path: str | Path) -> Path:
    """Check ``fig`` (:func:`_check`), write it as PNG to ``path`` whole or not at all, close it.

    Outside legends are kept (``bbox_inches="tight"``); the file gets the user's umask.
    """
    path = Path(path)
    plt = pyplot()
    try:
        _check(fig, path)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return write_atomic(path, buf.getvalue())
