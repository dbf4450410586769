"""Gantt chart of a multi-device schedule (Gao 2019 §III): per device its local compute and
its upload, and the server's segments in the order the schedule runs them."""

from __future__ import annotations

from pathlib import Path

from edgesplit.multidevice.problem import MecProblem, Schedule
from edgesplit.plotting import engineering, legend_right, pyplot, save


def draw_gantt(problem: MecProblem, schedule: Schedule, path: str | Path) -> Path:
    """Write a PNG: one row per device (local, upload, done) and one for the server.

    Each device keeps one colour in its own row and in the server row; the legend, right of
    the chart, says what solid, hatched and the tick mean.
    """
    plt = pyplot()
    n = problem.n
    fig, ax = plt.subplots(figsize=(10, 1.6 + 0.45 * (n + 1)))
    colors = plt.get_cmap("tab10")
    for i, r in enumerate(schedule.devices):
        y = n - i
        if r.local_finish_s > 0:
            ax.barh(y, r.local_finish_s, left=0, color=colors(i % 10), alpha=0.5, edgecolor="k",
                    label="local compute" if i == 0 else None)  # fmt: skip
        if r.arrival_s is not None and r.arrival_s > r.local_finish_s:
            ax.barh(y, r.arrival_s - r.local_finish_s, left=r.local_finish_s, color="white",
                    hatch="//", edgecolor=colors(i % 10), label="upload")  # fmt: skip
        ax.plot([r.completion_s], [y], "k|", markersize=14, label="result done")
    for seg in schedule.segments:
        ax.barh(0, seg.finish_s - seg.start_s, left=seg.start_s, color=colors(seg.device % 10),
                edgecolor="k", label="server segment (device's colour)")  # fmt: skip
    ax.set_yticks(range(n + 1), ["server", *[d.name for d in reversed(problem.devices)]])
    ax.set_ylabel("device / server")
    ax.set_xlabel("time since all devices start")
    engineering(ax, "s", "x")
    ax.set_xlim(left=0)
    ax.set_title(
        f"{schedule.algorithm}: {n} devices, average completion "
        f"{schedule.average_s * 1e3:.1f} ms (Gao 2019)"
    )
    legend_right(ax)
    return save(fig, path)
