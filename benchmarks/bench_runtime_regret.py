"""Split-choice regret, end to end: the predicted-latency-optimal split (OL) against the
best split found by *running* the candidates over the shaped link.

For each model and setting (bandwidth from Poisson(7.2) Mbit/s, clock from N(1.5, 0.2)
GHz × the edge clock scale, RTT 20 ms, as in Luger §6.7) the planner picks OL from this
host's profile. The chosen split is run (median of 3), then every split that could beat
it: a split whose predicted communication time alone (eq. 4.3, the part the shaper makes
exact) is not below the chosen split's measured latency cannot be faster, and is
skipped, so the chosen split's rank among all splits is exact. Regret =
L(chosen) / min over measured splits L − 1. A second figure, "after feedback", re-plans
once with the chosen split's measured edge and cloud times fed back (ComputeMonitor,
alpha = 1): the runtime's own calibration, which the thesis did not have. Goal (issue #4):
median ≤ 5 % on alexnet, vgg16 and mnist_cnn.

Pi-class edge by default: ``--clock-scale 0.3`` (the thesis' clock pool × 0.3 of this
host's 2.6 GHz). With the cloud on this same host, the unscaled 1.5 GHz pool makes
all-edge optimal in every setting and the regret exercises no choice. Reported beside the
regret: ``interior_share`` (settings whose measured optimum is an interior split) and the
regret over those alone; §7.1 as the thesis measures it, the gap relative to the worst
split (L(OL) − L(best)) / (L(worst) − L(best)) (thesis: 20.91 %, 5.36 %, 30.34 %) and the
top-5 hit rate (thesis: 100, 100, 76.47 %), beside our top-3. The worst split is measured
where it was run, else predicted.

Clock model: the eq. 4.1–4.2 model is fitted from all-in-edge runs at several emulated
clocks and scored at the clocks between the two it de-normalises with, against plain
1/clock scaling. 1/clock is the emulator's own law, so it is right by construction here;
the comparison is informative only on a device whose clock really changes.
Output: results/bench/runtime_regret.json (another ``--clock-scale F``:
``runtime_regret_clockF.json``), with the load average.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import torch

from edgesplit.experiments.luger2023 import (
    CLOCK_GRID_GHZ,
    EDGE_CLOCK_SCALE,
    RTT_MS,
    clock_fit,
    draw_settings,
)
from edgesplit.plan.planner import choose
from edgesplit.runtime.conditions import ComputeMonitor, ConditionSchedule
from edgesplit.runtime.loop import RunOptions, build_run, measure_cuts
from edgesplit.runtime.rescheduler import Observation
from edgesplit.runtime.server import BackgroundServer, ServerConfig, create_app

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save

THESIS = {"alexnet": 20.91, "vgg16": 5.36, "mnist_cnn": 30.34}
THESIS_TOP5 = {"alexnet": 100.0, "vgg16": 100.0, "mnist_cnn": 76.47}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 settings, no vgg16")
    parser.add_argument(
        "--clock-scale",
        type=float,
        default=EDGE_CLOCK_SCALE,
        help="multiply every drawn edge clock (default 0.3: a Pi-class edge beside a cloud "
        "tier on this host; 1: the thesis' pool as is)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    models = ("alexnet", "mnist_cnn") if args.quick else ("alexnet", "vgg16", "mnist_cnn")
    settings = draw_settings(2 if args.quick else 5, seed=1, scale=args.clock_scale)
    repeats = 3
    grid = tuple(round(c * args.clock_scale / EDGE_CLOCK_SCALE, 3) for c in CLOCK_GRID_GHZ)
    app = create_app(ServerConfig(models=models))
    per_model: dict[str, list[dict]] = {}
    with BackgroundServer(app) as server:
        all_parts = {}
        for model in models:
            graph = app.state.store.model(model).graph
            opts = RunOptions(
                model=model,
                schedule=ConditionSchedule.constant(7.2, RTT_MS, settings[0].clock_ghz),
                server=server.url,
                objective="latency",
            )
            all_parts[model] = build_run(opts, graph=graph)
        fit, _ = clock_fit(all_parts, grid if not args.quick else grid[::2], repeats)
        for model, parts in all_parts.items():
            rows = []
            for s in settings:
                obs = Observation(s.bandwidth_mbit, RTT_MS / 1000, s.clock_ghz)
                table = parts.planner.table(obs)
                chosen = choose(table, "latency")
                measured = measure_cuts(parts, s.conditions, [chosen], repeats, seed=s.index)
                m0 = measured[chosen]
                # One measured request feeds back (ComputeMonitor with alpha = 1).
                feedback = ComputeMonitor(alpha=1.0)
                feedback.observe("edge", m0["edge_lat"], float(table.edge_s[chosen]))
                feedback.observe("cloud", m0["cloud_lat"], float(table.cloud_s[chosen]))
                obs1 = replace(obs, factors=dict(feedback.factors))
                chosen1 = choose(parts.planner.table(obs1), "latency")
                if chosen1 not in measured:
                    measured |= measure_cuts(parts, s.conditions, [chosen1], repeats, s.index)
                # Everything that could beat either pick is run: ranks are exact.
                bound = max(measured[k]["overall_lat"] for k in (chosen, chosen1))
                rivals = [
                    k for k in range(len(table)) if k not in measured and table.comm_s[k] < bound
                ]
                measured |= measure_cuts(parts, s.conditions, rivals, repeats, s.index)
                best = min(measured, key=lambda k: measured[k]["overall_lat"])
                lbest = measured[best]["overall_lat"]
                regret = measured[chosen]["overall_lat"] / lbest - 1
                regret1 = measured[chosen1]["overall_lat"] / lbest - 1
                lat = {k: v["overall_lat"] for k, v in measured.items()}
                worst = max(
                    [*lat.values()]
                    + [float(table.latency_s[k]) for k in range(len(table)) if k not in lat]
                )
                span = worst - lbest
                rank = 1 + sum(v < lat[chosen] for v in lat.values())
                rows.append(
                    {
                        "bandwidth_mbit": s.bandwidth_mbit,
                        "clock_ghz": s.clock_ghz,
                        "chosen": chosen,
                        "chosen_after_feedback": chosen1,
                        "best_measured": best,
                        "measured_splits": len(measured),
                        "edge_factor": feedback.factors.get("edge", 1.0),
                        "cloud_factor": feedback.factors.get("cloud", 1.0),
                        "chosen_latency_s": measured[chosen]["overall_lat"],
                        "best_latency_s": lbest,
                        "predicted_latency_s": float(table.latency_s[chosen]),
                        "regret": regret,
                        "regret_after_feedback": regret1,
                        "interior": 0 < best < len(table) - 1,
                        "rank": rank,
                        "gap_vs_worst": (lat[chosen] - lbest) / span if span > 0 else 0.0,
                    }
                )
                print(
                    f"{model:>9} {s.bandwidth_mbit:5.1f} Mbit/s {s.clock_ghz:4.2f} GHz: chose "
                    f"{chosen:>2} (after feedback {chosen1:>2}), best {best:>2} of "
                    f"{len(measured)} run, regret {regret * 100:6.2f} % "
                    f"(after feedback {regret1 * 100:6.2f} %)"
                )
            parts.close()
            per_model[model] = rows
    summary = {m: statistics.median(r["regret"] for r in rows) for m, rows in per_model.items()}
    all_rows = [r for rows in per_model.values() for r in rows]
    section = {}
    for m, rows in per_model.items():
        inner = [r["regret"] for r in rows if r["interior"]]
        section[m] = {
            "interior_share": sum(r["interior"] for r in rows) / len(rows),
            "median_regret_interior": statistics.median(inner) if inner else None,
            "gap_vs_worst_pct": 100 * statistics.mean(r["gap_vs_worst"] for r in rows),
            "top5_pct": 100 * statistics.mean(r["rank"] <= 5 for r in rows),
            "top3_pct": 100 * statistics.mean(r["rank"] <= 3 for r in rows),
            "thesis_gap_vs_worst_pct": THESIS[m],
            "thesis_top5_pct": THESIS_TOP5[m],
        }
    after = {
        m: statistics.median(r["regret_after_feedback"] for r in rows)
        for m, rows in per_model.items()
    }
    doc = {
        "goal": "median regret <= 5 % per model",
        "edge": f"Pi-class: thesis clock pool x {args.clock_scale} of this host's 2.6 GHz",
        "interior_share": sum(r["interior"] for r in all_rows) / len(all_rows),
        "section_7_1": section,
        "clock_model": fit,
        "median_regret": summary,
        "median_regret_after_feedback": after,
        "goal_met": {m: v <= 0.05 for m, v in summary.items()},
        "goal_met_after_feedback": {m: v <= 0.05 for m, v in after.items()},
        "repeats": repeats,
        "clock_scale": args.clock_scale,
        "rows": per_model,
    }
    suffix = "" if args.clock_scale == EDGE_CLOCK_SCALE else f"_clock{args.clock_scale:g}"
    out = save(f"runtime_regret{suffix}", doc)
    for m, sec in section.items():
        acc = fit["accuracy_held_out_clocks"][m]
        print(
            f"{m}: interior {sec['interior_share']:.0%}, gap vs worst "
            f"{sec['gap_vs_worst_pct']:.1f} % (thesis {THESIS[m]}), top-5 {sec['top5_pct']:.0f} %"
            f", top-3 {sec['top3_pct']:.0f} %; clock model error eq. 4.1 "
            f"{acc['eq41_mape_pct']} % vs 1/clock {acc['inverse_clock_mape_pct']} % (the "
            "emulator's own law)"
        )
    print(
        f"median regret: { {m: round(v * 100, 2) for m, v in summary.items()} } %, after "
        f"feedback { {m: round(v * 100, 2) for m, v in after.items()} } %; wrote {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
