"""Gantt chart of a multi-device schedule: per device local compute and upload, and the server."""

from __future__ import annotations

import io
from pathlib import Path

from edgesplit.io import write_atomic
from edgesplit.multidevice.problem import MecProblem, Schedule


def draw_gantt(problem: MecProblem, schedule: Schedule, path: str | Path) -> Path:
    """Write a PNG: one row per device (local, upload) and one for the server's segments."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = problem.n
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.45 * (n + 1)))
    colors = plt.get_cmap("tab10")
    for i, (_d, r) in enumerate(zip(problem.devices, schedule.devices)):
        y = n - i
        if r.local_finish_s > 0:
            ax.barh(y, r.local_finish_s, left=0, color=colors(i % 10), alpha=0.5, edgecolor="k")
        if r.arrival_s is not None and r.arrival_s > r.local_finish_s:
            ax.barh(
                y,
                r.arrival_s - r.local_finish_s,
                left=r.local_finish_s,
                color="white",
                hatch="//",
                edgecolor=colors(i % 10),
            )
        ax.plot([r.completion_s], [y], "k|", markersize=14)
    for seg in schedule.segments:
        ax.barh(
            0,
            seg.finish_s - seg.start_s,
            left=seg.start_s,
            color=colors(seg.device % 10),
            edgecolor="k",
        )
    ax.set_yticks(range(n + 1), ["server", *[d.name for d in reversed(problem.devices)]])
    ax.set_xlabel("time (s)")
    ax.set_title(
        f"{schedule.algorithm}: average completion {schedule.average_s * 1e3:.1f} ms "
        "(solid: local compute, hatched: upload, |: done)"
    )
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return write_atomic(path, buf.getvalue())
