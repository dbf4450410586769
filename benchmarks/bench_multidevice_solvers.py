"""Solve time and optimality: MILP (HiGHS) vs CP-SAT vs heuristic, N = 1..12 devices.

Instances: alternating AlexNet / VGG16 devices (this host's per-layer CPU times, mobile =
10x), uplinks cycling through 2.5, 5, 10, 20 Mbit/s, server load 0. Every solver gets the
same time limit; the MILP (the paper's method) is the baseline. Reported per N: time,
average delay, status and proven gap per solver; the heuristic's excess over the best
proven optimum. Then the heuristic alone on N = 100 (median of 5 runs).

Goals (issue #6): CP-SAT optimal for N <= 8 within 10 s; heuristic within 2 % of the
optimum wherever it is known; heuristic N = 100 under 1 s.

    .venv/bin/python benchmarks/bench_multidevice_solvers.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _common import save

from edgesplit.experiments.gao2019 import _Costs
from edgesplit.multidevice.cpsat import solve_cpsat
from edgesplit.multidevice.heuristic import solve_heuristic
from edgesplit.multidevice.milp import solve_milp
from edgesplit.multidevice.problem import MecProblem

RATES = (2.5, 5.0, 10.0, 20.0)


def mixed(costs: _Costs, n: int) -> MecProblem:
    devices = []
    for i in range(n):
        model = ("alexnet", "vgg16")[i % 2]
        one = costs.problem(model, 1, RATES[i % len(RATES)]).devices[0]
        devices.append(type(one)(**{**vars(one), "name": f"{model}-{i}"}))
    return MecProblem(tuple(devices))


def row(name: str, s) -> dict:  # type: ignore[no-untyped-def]
    return {
        "solver": name,
        "time_s": s.solve_s,
        "average_s": s.average_s,
        "status": s.status,
        "gap": s.gap,
        "splits": list(s.splits),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--time-limit", type=float, default=10.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    costs = _Costs(speed_factor=10.0, repeats=3)
    ns = (1, 2, 4, 8) if args.quick else tuple(range(1, 13))
    milp_max = 4 if args.quick else 8
    rows = []
    for n in ns:
        problem = mixed(costs, n)
        heur = solve_heuristic(problem)
        cp = solve_cpsat(problem, time_limit=args.time_limit, hint=heur)
        entry = {
            "n": n,
            "layers": sum(d.m for d in problem.devices),
            "results": [row("cpsat", cp), row("heuristic", heur)],
        }
        if n <= milp_max:
            entry["results"].append(row("milp", solve_milp(problem, time_limit=args.time_limit)))
        optimal = [r["average_s"] for r in entry["results"] if r["status"] == "optimal"]
        entry["optimum_s"] = min(optimal) if optimal else None
        entry["heuristic_excess"] = heur.average_s / entry["optimum_s"] - 1 if optimal else None
        rows.append(entry)
        print(
            f"N={n:2d}: "
            + "  ".join(
                f"{r['solver']} {r['time_s']:.2f}s {r['average_s'] * 1e3:.1f}ms {r['status']}"
                for r in entry["results"]
            )
            + (f"  heuristic +{entry['heuristic_excess']:.2%}" if optimal else "")
        )
    big = mixed(costs, 100)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        solve_heuristic(big)
        times.append(time.perf_counter() - t0)
    known = [r for r in rows if r["heuristic_excess"] is not None]
    cp_ok = [
        r["n"]
        for r in rows
        if r["n"] <= 8
        and any(
            x["solver"] == "cpsat" and x["status"] == "optimal" and x["time_s"] <= 10
            for x in r["results"]
        )
    ]
    milp_times = [x["time_s"] for r in rows for x in r["results"] if x["solver"] == "milp"]
    cp_times = [
        x["time_s"]
        for r in rows
        if r["n"] <= milp_max
        for x in r["results"]
        if x["solver"] == "cpsat"
    ]
    summary = {
        "cpsat_optimal_within_10s_for_n": cp_ok,
        "goal_cpsat_n_le_8": all(n in cp_ok for n in ns if n <= 8),
        "heuristic_max_excess": max((r["heuristic_excess"] for r in known), default=None),
        "goal_heuristic_2pct": all(r["heuristic_excess"] <= 0.02 for r in known),
        "heuristic_n100_median_s": statistics.median(times),
        "goal_heuristic_n100_1s": statistics.median(times) < 1.0,
        "milp_total_s": sum(milp_times),
        "cpsat_total_s_same_instances": sum(cp_times),
        "milp_over_cpsat_time": sum(milp_times) / max(sum(cp_times), 1e-9),
    }
    print(
        f"CP-SAT optimal within 10 s for N in {cp_ok}; heuristic max excess "
        f"{summary['heuristic_max_excess']}; heuristic N=100 {summary['heuristic_n100_median_s']:.3f} s; "
        f"MILP/CP-SAT time ratio {summary['milp_over_cpsat_time']:.1f}x"
    )
    save(
        "multidevice_solvers",
        {"quick": args.quick, "time_limit_s": args.time_limit, "rows": rows, "summary": summary},
    )


if __name__ == "__main__":
    main()
