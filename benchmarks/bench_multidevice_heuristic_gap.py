"""Heuristic against the exact optimum on random small instances (brute force known).

Complements bench_multidevice_solvers.py, whose AlexNet/VGG16 mixes turned out easy for
the heuristic: here 60 random instances with N = 3 devices, 2-4 layers, integer local
delays 1-9 s, server delays 0-3 s and uploads 0-5 s (the test fixtures' generator), where
layer-level interleaving (eq. 16) can beat whole tails. The baseline is the brute-force
optimum (every split and every server interleaving) in the same run.

    .venv/bin/python benchmarks/bench_multidevice_heuristic_gap.py [--quick]
"""

from __future__ import annotations

import argparse
import random
import statistics

from _common import save

from edgesplit.multidevice import DeviceCosts, MecProblem
from edgesplit.multidevice.bruteforce import solve_bruteforce
from edgesplit.multidevice.heuristic import solve_heuristic
from edgesplit.system.link import Link


def random_problem(seed: int, n: int = 3, m_range: tuple[int, int] = (2, 4)) -> MecProblem:
    rng = random.Random(seed)
    devices = []
    for i in range(n):
        m = rng.randint(*m_range)
        devices.append(
            DeviceCosts(
                name=f"d{i}",
                model="explicit",
                layers=tuple(f"l{j}" for j in range(m)),
                local_s=tuple(float(rng.randint(1, 9)) for _ in range(m)),
                server_s=tuple(float(rng.randint(0, 3)) for _ in range(m)),
                cut_bytes=tuple(rng.randint(0, 5) for _ in range(m + 1)),
                uplink=Link.of(8.0),
            )
        )
    return MecProblem(tuple(devices))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    count = 20 if args.quick else 60
    excess = []
    for seed in range(count):
        problem = random_problem(1000 + seed)
        exact = solve_bruteforce(problem).average_s
        excess.append(solve_heuristic(problem).average_s / exact - 1)
    summary = {
        "instances": count,
        "heuristic_optimal_share": sum(e <= 1e-9 for e in excess) / count,
        "heuristic_excess_median": statistics.median(excess),
        "heuristic_excess_max": max(excess),
        "within_2pct_share": sum(e <= 0.02 for e in excess) / count,
    }
    print(
        f"heuristic optimal on {summary['heuristic_optimal_share']:.0%} of {count}; excess "
        f"median {summary['heuristic_excess_median']:.2%}, max {summary['heuristic_excess_max']:.2%}; "
        f"within 2 % on {summary['within_2pct_share']:.0%}"
    )
    save("multidevice_heuristic_gap", {"quick": args.quick, "excess": excess, "summary": summary})


if __name__ == "__main__":
    main()
