"""The one figure style, ``edgesplit.plotting``, checked on real small matplotlib figures."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="figures need the full extra (matplotlib)")

from edgesplit import plotting
from edgesplit.plotting import (
    COLOURS,
    clipped_yerr,
    count_axis,
    engineering,
    legend_right,
    pyplot,
    save,
    undefined,
)

SRC = Path(plotting.__file__).parent


def _fig(title: str = "t") -> tuple:
    fig, ax = pyplot().subplots(figsize=(4, 3))
    ax.set_title(title)
    ax.set_xlabel("devices (count)")
    ax.set_ylabel("delay (s)")
    return fig, ax


def test_count_axis_has_only_integer_ticks() -> None:
    fig, ax = _fig()
    ax.plot([1, 2, 3], [0.1, 0.2, 0.3])
    fig.canvas.draw()
    assert any(t != round(t) for t in ax.get_xticks()), "default ticks on 1..3 are fractional"
    count_axis(ax)
    fig.canvas.draw()
    ticks = ax.get_xticks()
    assert ticks.size >= 2
    assert all(t == round(t) for t in ticks)
    pyplot().close(fig)


def test_clipped_error_bars_never_reach_below_zero() -> None:
    rng = np.random.default_rng(0)
    means = np.abs(rng.normal(0.5, 1.0, 200))
    half = np.abs(rng.normal(0.5, 1.0, 200))
    yerr = clipped_yerr(means, half)
    assert yerr.shape == (2, 200)
    assert np.all(means - yerr[0] >= 0)
    assert np.all(yerr >= 0)
    assert np.array_equal(yerr[1], half), "the upper arm is the interval, unchanged"
    inside = means >= half
    assert np.array_equal(yerr[0][inside], half[inside]), "an interval above 0 is untouched"
    # NaN (no data): no arm at all.
    assert clipped_yerr([np.nan], [1.0]).tolist() == [[0.0], [0.0]]


def test_clipped_error_bars_on_a_drawn_bar_chart() -> None:
    fig, ax = _fig()
    means, half = [0.02, 1.0, 0.0], [0.5, 0.2, 0.3]
    bars = ax.bar(range(3), means, yerr=clipped_yerr(means, half))
    segments = bars.errorbar.lines[2][0].get_segments()
    lows = [min(seg[:, 1]) for seg in segments]
    assert min(lows) == 0.0
    assert lows[1] == pytest.approx(0.8)
    pyplot().close(fig)


def test_one_colour_map_for_choices_and_tiers_everywhere() -> None:
    keys = ("OL", "OC", "CL", "device", "edge", "cloud")
    assert len({COLOURS[k] for k in keys}) == len(keys), "each choice and tier its own colour"
    from edgesplit.experiments import luger2023_plots

    assert luger2023_plots.COLOURS is COLOURS
    # No module keeps a colour map of its own for OL/OC/CL or the tiers.
    own_map = re.compile(r"""["'](OL|OC|CL|device|edge|cloud)["']\s*:\s*["']#[0-9a-fA-F]{6}""")
    offenders = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if p.name != "plotting.py" and own_map.search(p.read_text())
    ]
    assert offenders == []


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_save_gives_the_umask_mode(tmp_path: Path, mask: int) -> None:
    fig, ax = _fig()
    ax.plot([0, 1], [0, 1])
    old = os.umask(mask)
    try:
        path = save(fig, tmp_path / "sub" / "f.png")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_save_is_whole_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "f.png"
    path.write_bytes(b"previous")
    fig, ax = pyplot().subplots()
    ax.plot([0, 1], [0, 1])  # no title, no labels: refused before anything is written
    with pytest.raises(ValueError, match="f.png: no title"):
        save(fig, path)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"], "no temporary file left behind"
    assert not pyplot().get_fignums(), "the figure is closed even when refused"


def test_save_refuses_an_unlabelled_axis_and_accepts_shared_labels(tmp_path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.set_title("latency")
    ax.set_xlabel("split point (layers)")
    ax.plot([0, 1], [0, 1])
    with pytest.raises(ValueError, match="'latency': the y axis has no label"):
        save(fig, tmp_path / "a.png")
    fig, axes = plt.subplots(1, 2, sharey=True)
    for a in axes:
        a.set_title("panel")
        a.set_xlabel("bandwidth (Mbit/s)")
        a.plot([0, 1], [0, 1])
    axes[0].set_ylabel("delay (s)")  # the shared y axis is labelled once
    assert save(fig, tmp_path / "b.png").exists()


def test_legend_right_lies_outside_the_data(tmp_path: Path) -> None:
    fig, ax = _fig()
    for c in ("OL", "OC", "CL"):
        ax.plot([0, 1], [0, 1], color=COLOURS[c], label=c)
    legend_right(ax)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = ax.get_legend().get_window_extent(renderer)
    assert box.x0 > ax.get_window_extent(renderer).x1
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["OL", "OC", "CL"]
    assert save(fig, tmp_path / "l.png").exists()


def test_engineering_ticks_and_undefined_panel(tmp_path: Path) -> None:
    fig, (a, b) = pyplot().subplots(1, 2)
    a.set_title("cost")
    a.set_xlabel("setting")
    a.set_ylabel("cost per inference")
    a.bar([0, 1], [2e-6, 4e-6])
    engineering(a, "USD")
    b.set_title("own cost")
    undefined(b, "every pick costs 0")
    fig.canvas.draw()
    labels = [t.get_text() for t in a.get_yticklabels()]
    assert any("µUSD" in t for t in labels)
    assert [t.get_text() for t in b.texts] == ["undefined: every pick costs 0"]
    assert save(fig, tmp_path / "e.png").exists()


def test_every_figure_is_written_through_plotting_save() -> None:
    """One home for the style: no other module saves a figure or picks the backend itself."""
    direct = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if p.name != "plotting.py" and re.search(r"\.savefig\(|matplotlib\.use\(", p.read_text())
    ]
    assert direct == []
