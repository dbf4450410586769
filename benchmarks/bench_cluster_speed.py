"""Simulator speed (issue 8): 16 hosts x 100 intervals, lambda = 6, per policy; and growth.

Part 1 times one evaluation run of every policy on the paper's cluster (training of the
MAB and surrogates is timed separately, once). The goal is < 60 s per heuristic run on 2
cores; the ratio printed is time / 60 s. Part 2 scales hosts (16 -> 1000) with lambda
scaled in proportion (6 x H / 16) for the heuristic policies and fits the growth exponent
(time ~ H^b). The baseline of each row is the random policy measured in the same run.
``--quick``: 30 intervals in part 1, hosts up to 256 in part 2.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import save

from edgesplit.cluster.apps import build_profiles
from edgesplit.cluster.config import ClusterConfig, raspberry_pi_cluster
from edgesplit.cluster.policies import POLICIES, prepare, run_policy

HEURISTICS = ("random", "bestfit", "gillis", "mc")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    intervals = 30 if args.quick else 100
    cfg = ClusterConfig().model_copy(update={"intervals": intervals})
    profiles = build_profiles(cfg.workload)
    t0 = time.perf_counter()
    trained = prepare(cfg, profiles, list(POLICIES))
    train_s = time.perf_counter() - t0
    per_policy = {}
    for name in POLICIES:
        t0 = time.perf_counter()
        metrics, _ = run_policy(cfg, name, profiles, trained, seed=0)
        dt = time.perf_counter() - t0
        per_policy[name] = {
            "seconds": dt,
            "tasks": sum(len(m.left) for m in metrics),
            "ratio_to_goal_60s": dt / 60.0,
        }
        print(f"16 hosts x {intervals}: {name:10s} {dt:7.2f} s  ({dt / 60:.3f} of the goal)")
    sizes = [16, 64, 256] if args.quick else [16, 64, 256, 1000]
    growth: dict[str, list[dict[str, float]]] = {}
    for h in sizes:
        lam = 6.0 * h / 16
        big = ClusterConfig(
            hosts=raspberry_pi_cluster(h),
            intervals=intervals,
            workload=cfg.workload.model_copy(update={"arrival_rate": lam}),
        )
        for name in HEURISTICS:
            t0 = time.perf_counter()
            metrics, _ = run_policy(big, name, profiles, trained, seed=0)
            dt = time.perf_counter() - t0
            growth.setdefault(name, []).append(
                {
                    "hosts": h,
                    "arrival_rate": lam,
                    "seconds": dt,
                    "tasks": sum(len(m.left) for m in metrics),
                }
            )
            print(f"{h:5d} hosts lambda {lam:6.1f}: {name:8s} {dt:8.2f} s")
    exponents = {}
    for name, rows in growth.items():
        x = np.log([r["hosts"] for r in rows])
        y = np.log([r["seconds"] for r in rows])
        exponents[name] = float(np.polyfit(x, y, 1)[0])
    base = per_policy["random"]["seconds"]
    for row in per_policy.values():
        row["ratio_to_random"] = row["seconds"] / base
    print("growth exponents (time ~ hosts^b, lambda ~ hosts):", exponents)
    save(
        "cluster_speed",
        {
            "intervals": intervals,
            "training_s": train_s,
            "per_policy_16_hosts": per_policy,
            "goal_s": 60.0,
            "growth": growth,
            "growth_exponent": exponents,
        },
    )


if __name__ == "__main__":
    main()
