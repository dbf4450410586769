"""Simulated vs real response times for the same decisions on a small Ray run (issue 8).

4 emulated hosts (Ray custom resources on this machine), 10 intervals of 2 s, lambda = 2,
best-fit and Gillis decisions. The simulator's host speed is calibrated by timing the full
digits network on one thread here; the baseline is the simulated response time of the same
tasks, and the ratio printed is measured / simulated (median over tasks). ``--quick``:
6 intervals, one policy.
"""

from __future__ import annotations

import argparse

from _common import save

from edgesplit.cluster.ray_backend import run_on_ray


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    policies = ["bestfit"] if args.quick else ["bestfit", "gillis"]
    runs = {}
    for p in policies:
        doc = run_on_ray(p, hosts=4, intervals=6 if args.quick else 10, epochs=8)
        runs[p] = doc
        print(
            f"{p}: {doc['tasks']} tasks, simulated median "
            f"{doc['simulated_response_s']['median']:.3f} s, measured median "
            f"{doc['measured_response_s']['median']:.3f} s, measured/simulated "
            f"{doc['measured_over_simulated_median']:.2f}x, corr {doc['correlation']}, "
            f"accuracy {doc['measured_accuracy']:.1f} %"
        )
    save("cluster_ray", {"runs": runs})


if __name__ == "__main__":
    main()
