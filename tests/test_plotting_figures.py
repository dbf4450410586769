"""The figure defects of issue 15 point 22, each checked on the project's own plot function
with small real inputs: the figure is captured at ``plotting.save`` and inspected."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="figures need the full extra (matplotlib)")

from edgesplit import plotting


@pytest.fixture
def saved(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Any]:
    """Every figure passed to ``plotting.save``, after it was checked and written."""
    figs: list[Any] = []
    real = plotting.save

    def keep(fig: Any, path: str | Path) -> Path:
        figs.append(fig)
        out = real(fig, tmp_path / Path(path).name)
        assert out.read_bytes()[:4] == b"\x89PNG"
        return out

    monkeypatch.setattr(plotting, "save", keep)
    return figs


def _renderer(fig: Any) -> Any:
    """Lay ``fig`` out again (``save`` closed it, which detaches its Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def test_tuli_fig4_error_bars_stop_at_zero(saved: list[Any], tmp_path: Path) -> None:
    from edgesplit.experiments.tuli2021 import plot_fig4

    policies = {
        "gillis": {"response_intervals": (1.0, 0.2), "sla_violation": (0.0, 0.0),
                   "accuracy": (90.0, 1.0)},
        "s+g": {"response_intervals": (0.3, 0.9), "sla_violation": (0.02, 0.1),
                "accuracy": (80.0, 2.0)},
        "m+g": {"response_intervals": None, "sla_violation": (0.4, 0.05),
                "accuracy": (85.0, 1.0)},
    }  # fmt: skip
    plot_fig4({"mnist": policies}, tmp_path / "fig4.png")
    (fig,) = saved
    lows = [
        np.asarray(seg).reshape(-1, 2)[:, 1].min(initial=np.inf)
        for ax in fig.get_axes()
        for c in ax.containers
        if getattr(c, "errorbar", None) is not None
        for seg in c.errorbar.lines[2][0].get_segments()
    ]
    # Per panel (response, SLA, accuracy) the policies in order; m+g's response is unknown.
    assert len(lows) == 9
    assert min(lows) == 0.0, "no error bar reaches below zero"
    assert lows[1] == 0.0, "s+g's response 0.3 ± 0.9 stops at 0"
    assert lows[4] == 0.0, "s+g's SLA rate 0.02 ± 0.1 stops at 0"
    assert lows[0] == pytest.approx(0.8), "an interval above 0 is drawn as it is"


def test_samadi_and_gao_count_axes_have_integer_ticks(saved: list[Any], tmp_path: Path) -> None:
    from edgesplit.experiments.samadi import METHODS
    from edgesplit.experiments.samadi import plot as samadi_plot

    def point(procs: int, mbps: float, key: str) -> dict[str, Any]:
        lat = {m: {"latency": 0.1 / procs + 1 / mbps + 0.01 * k} for k, m in enumerate(METHODS)}
        return {"processors": procs, "mbps": mbps, key: True, **lat}

    pts = [point(p, 100.0, "by_processors") for p in (1, 2, 3)]
    pts += [point(3, b, "by_bandwidth") for b in (10.0, 1000.0)]
    samadi_plot({"models": {"resnet50": pts}}, tmp_path)
    by_procs = saved[0].get_axes()[0]
    _renderer(saved[0])
    assert by_procs.get_xlabel().startswith("processors")
    assert all(t == round(t) for t in by_procs.get_xticks())
    # Methods on the same point stay visible: each its own marker.
    assert len({line.get_marker() for line in by_procs.get_lines()}) == len(METHODS)
    by_bw = saved[1].get_axes()[0]
    assert sorted(by_bw.get_lines()[0].get_xdata()) == [10.0, 100.0, 1000.0]

    from edgesplit.experiments.gao2019 import _plot_sweep

    def case(s: float) -> dict[str, float]:
        return {"average_s": s, "transmitted_bytes": 0}

    sweep = [
        {
            "speed_factor": f,
            "fig2": [{"model": "alexnet", "case1": case(1.0), "case3": case(f)}],
            "fig5": [{"devices": n, "case1": case(0.1 * n), "case3": case(f)} for n in (1, 2, 4)],
        }
        for f in (3.0, 10.0)
    ]
    _plot_sweep({"speed_sweep": sweep}, tmp_path)
    fig5 = saved[-1].get_axes()[0]
    _renderer(saved[-1])
    ticks = [t for t in fig5.get_xticks() if 1 <= t <= 4]
    assert ticks and all(t == round(t) for t in ticks)


def _step(t: float, bw: float, ghz: float, assignment: list[int]) -> Any:
    return SimpleNamespace(
        measurement=SimpleNamespace(start=t, overall_lat=0.5, predicted_lat=0.45),
        conditions=SimpleNamespace(bandwidth_mbit=bw, clock_ghz=ghz),
        plan=SimpleNamespace(assignment=assignment, meta={"codecs": {"device|edge": "zstd"}}),
    )


def test_demo_split_over_time_keeps_the_clock_off_the_bandwidth_axis(
    saved: list[Any], tmp_path: Path
) -> None:
    from edgesplit.demo import plot_split_over_time

    steps = [
        _step(0.0, 2.0, 0.4, [0] * 13 + [1] + [2] * 7),
        _step(20.0, 20.0, 0.4, [0] * 3 + [1] * 3 + [2] * 15),
        _step(40.0, 5.0, 0.6, [0] * 3 + [1] * 18),
    ]
    plot_split_over_time(steps, 0.0, "alexnet", tmp_path / "split_over_time.png")
    (fig,) = saved
    by_label = {ax.get_ylabel(): ax for ax in fig.get_axes()}
    bandwidth, clock = by_label["bandwidth (Mbit/s)"], by_label["device clock (GHz)"]
    assert bandwidth is not clock
    assert [list(line.get_ydata()) for line in bandwidth.get_lines()] == [[2.0, 20.0, 5.0]]
    assert [list(line.get_ydata()) for line in clock.get_lines()] == [[0.4, 0.4, 0.6]]
    assert all(t == round(t) for t in by_label["graph nodes"].get_yticks())


def test_demo_latency_parts_legend_leaves_the_marks_visible(
    saved: list[Any], tmp_path: Path
) -> None:
    from edgesplit.demo import plot_latency_parts

    rows = [
        {"nodes_device_edge_cloud": "13/1/7", "codecs": "device-edge=zstd", "predicted_s": 0.7,
         "parts": {"device compute": 0.5, "device→edge transfer": 0.1, "cloud compute": 0.05}},
        {"nodes_device_edge_cloud": "21/0/0", "codecs": "none", "predicted_s": 0.9,
         "parts": {"device compute": 1.0}},
    ]  # fmt: skip
    plot_latency_parts(rows, "alexnet", tmp_path / "latency_parts.png")
    (fig,) = saved
    (ax,) = fig.get_axes()
    r = _renderer(fig)
    assert ax.get_legend().get_window_extent(r).x0 > ax.get_window_extent(r).x1
    top = ax.get_ylim()[1]
    assert top > 1.0, "the tallest stack and every predicted mark lie inside the axes"
    legend = ax.get_legend()
    colours = {
        t.get_text(): h.get_facecolor()
        for t, h in zip(legend.get_texts(), legend.legend_handles)
        if hasattr(h, "get_facecolor")
    }
    assert np.allclose(colours["device compute"][:3], _rgb(plotting.COLOURS["device"]))


def _rgb(hex_colour: str) -> tuple[float, ...]:
    return tuple(int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
