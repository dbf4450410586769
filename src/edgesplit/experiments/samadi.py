"""``edgesplit reproduce samadi``: Samadi and Mohammadi's placement over k processors.

Their evaluation section is empty, so this is the evaluation the issue asks for: latency
against the number of processors (1 to 5: the user device plus up to 4 edge servers) and
against bandwidth, for resnet50, googlenet and inception_v3 (layer graphs), comparing

* **chain**: the best placement of topological-order intervals (the Neurosurgeon family;
  for two devices this contains every one of the n+1 topological cuts), by the interval DP
  of :mod:`edgesplit.plan.heuristic`;

All methods run on one :class:`~edgesplit.plan.Problem` through the planner registry
(``mincut`` on its two-device, sequential version).
* **mincut**: DADS two-tier min-cut (user device + one server) of :mod:`edgesplit.plan.mincut`;
* **milp**: the Tarnawski latency MILP of :mod:`edgesplit.plan.milp` (time-limited; its gap
  is reported);
* **relax**: the LP relaxation with rounding of :mod:`edgesplit.plan.relax`;
* **heuristic**: interval DP plus local search.

All placements are scored by the independent evaluator under Tarnawski's critical-path
semantics. Device speeds are synthetic and stated in the output: per-node seconds are
``flops / rate + overhead`` with the user device at ``USER_FLOPS`` and every edge server at
``SERVER_FLOPS``; transfers cost ``bytes * 8 / bandwidth`` per tensor through the user
device (``comm="tensor"``; RTT 0, so each tensor's eq. 4.3 is its bytes over the rate). Nothing is tuned to any target number.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgesplit.io import write_atomic, write_json

USER_FLOPS = 20e9
SERVER_FLOPS = 100e9
OVERHEAD_S = 20e-6
MODELS = ("resnet50", "googlenet", "inception_v3")
PROCESSORS = (1, 2, 3, 4, 5)
BANDWIDTHS_MBPS = (10.0, 50.0, 200.0, 1000.0)
DEFAULT_MBPS = 100.0
SWEEP_PROCESSORS = 3
METHODS = ("chain", "mincut", "milp", "relax", "heuristic")


def make_problem(graph: Any, processors: int, mbps: float, semantics: str = "critical") -> Any:
    """The user device (source, host) plus ``processors - 1`` identical edge servers,
    per-tensor transfers through the user device (Tarnawski's model)."""
    from edgesplit.plan import Problem
    from edgesplit.system.link import Link

    flops = np.array([float(n.flops) for n in graph.nodes])
    rates = [USER_FLOPS] + [SERVER_FLOPS] * (processors - 1)
    secs = np.array([flops / r + OVERHEAD_S for r in rates])
    links = {frozenset((0, d)): Link.of(mbps * 1e6, 0.0) for d in range(1, processors)}
    names = ("user", *(f"edge{d}" for d in range(1, processors)))
    return Problem(
        graph=graph,
        devices=names,
        seconds=secs,
        links=links,
        price_per_second=(0.0,) * processors,
        semantics=semantics,  # type: ignore[arg-type]
        comm="tensor",
    )


def run_point(graph: Any, processors: int, mbps: float, time_limit: float) -> dict[str, Any]:
    """Every method at one (processors, bandwidth) point, through the planner registry;
    latencies in seconds, each scored by the evaluator under the critical-path semantics."""
    from edgesplit.plan import evaluate, solve
    from edgesplit.plan.heuristic import interval_dp

    problem = make_problem(graph, processors, mbps)
    host_only = evaluate(problem, [0] * problem.n_nodes).latency_s
    point: dict[str, Any] = {"processors": processors, "mbps": mbps, "user_only": host_only}
    if processors == 1:
        for method in METHODS:
            point[method] = {"latency": host_only, "solve_s": 0.0}
        return point
    t0 = time.perf_counter()
    chain, _ = interval_dp(problem)
    point["chain"] = {
        "latency": evaluate(problem, chain).latency_s,
        "solve_s": time.perf_counter() - t0,
    }
    cut = solve(make_problem(graph, 2, mbps, "sequential"), "mincut")
    point["mincut"] = {
        "latency": evaluate(problem, cut.assignment).latency_s,
        "solve_s": cut.meta["solve_s"],
    }
    h = solve(problem, "heuristic")
    point["heuristic"] = {"latency": h.predicted["latency_s"], "solve_s": h.meta["solve_s"]}
    m = solve(problem, "ilp", time_limit=time_limit, warm=h)
    point["milp"] = {
        "latency": m.predicted["latency_s"],
        "solve_s": m.meta["solve_s"],
        "gap": m.meta["gap"],
        "status": m.meta["status"],
    }
    r = solve(problem, "relax", time_limit=time_limit)
    point["relax"] = {
        "latency": r.predicted["latency_s"],
        "solve_s": r.meta["solve_s"],
        "lp_bound": r.meta["bound"],
    }
    return point


def table(doc: dict[str, Any]) -> str:
    lines = [
        "| model | processors | Mbit/s | user only | " + " | ".join(METHODS) + " | MILP gap |",
        "|---|---|---|---|" + "---|" * len(METHODS) + "---|",
    ]
    for model, points in doc["models"].items():
        for p in points:
            gap = p["milp"].get("gap")
            cells = " | ".join(f"{p[m]['latency'] * 1e3:.2f}" for m in METHODS)
            lines.append(
                f"| {model} | {p['processors']} | {p['mbps']:g} | {p['user_only'] * 1e3:.2f} | "
                f"{cells} | {'-' if gap is None else f'{gap:.1%}'} |"
            )
    return "\n".join(lines) + "\n\nLatencies in ms (critical-path semantics).\n"


def plot(doc: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for axis, key in (("processors", "by_processors"), ("mbps", "by_bandwidth")):
        models = list(doc["models"])
        fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4), squeeze=False)
        for ax, model in zip(axes[0], models):
            pts = [p for p in doc["models"][model] if p.get(key)]
            xs = [p[axis] for p in pts]
            for m in METHODS:
                ax.plot(xs, [p[m]["latency"] * 1e3 for p in pts], marker="o", label=m)
            ax.set_title(model)
            ax.set_xlabel("processors" if axis == "processors" else "bandwidth (Mbit/s)")
            if axis == "mbps":
                ax.set_xscale("log")
            ax.set_ylabel("latency (ms)")
            ax.grid(alpha=0.3)
        axes[0][0].legend()
        fig.tight_layout()
        path = out / f"samadi_{key}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def reproduce(
    out: Path,
    *,
    quick: bool = False,
    time_limit: float = 10.0,
    models: Sequence[str] = MODELS,
    log: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Latency vs processors (1-5) and vs bandwidth: chain, mincut, MILP, relax, heuristic.

    Writes ``samadi.json``, ``samadi_table.md`` and the PNGs under ``out``; returns the
    document with the figure paths under ``"figures"``. ``log`` receives progress lines.
    """
    from edgesplit.errors import InputError
    from edgesplit.graph import trace
    from edgesplit.models import build

    say = log or (lambda _line: None)
    if time_limit <= 0:
        raise InputError(f"--time-limit must be positive, not {time_limit}")
    names = ["resnet50"] if quick else [m.strip() for m in models if m.strip()]
    limit = 5.0 if quick else time_limit
    warnings.filterwarnings("ignore")
    doc: dict[str, Any] = {
        "paper": "Samadi & Mohammadi, DNN model placement (after Tarnawski et al. 2020)",
        "semantics": "critical path (Tarnawski); per-tensor transfer bytes*8/bandwidth, no RTT",
        "user_flops": USER_FLOPS,
        "server_flops": SERVER_FLOPS,
        "overhead_s": OVERHEAD_S,
        "time_limit_s": limit,
        "models": {},
    }
    for name in names:
        module, x = build(name)
        graph = trace(module, x, name=name)
        points = []
        for k in PROCESSORS:
            say(f"{name}: {k} processors, {DEFAULT_MBPS:g} Mbit/s")
            points.append({**run_point(graph, k, DEFAULT_MBPS, limit), "by_processors": True})
        for mbps in BANDWIDTHS_MBPS:
            say(f"{name}: {SWEEP_PROCESSORS} processors, {mbps:g} Mbit/s")
            points.append({**run_point(graph, SWEEP_PROCESSORS, mbps, limit), "by_bandwidth": True})
        doc["models"][name] = points
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "samadi.json", doc)
    write_atomic(out / "samadi_table.md", table(doc))
    doc["figures"] = [str(path) for path in plot(doc, out)]
    return doc
