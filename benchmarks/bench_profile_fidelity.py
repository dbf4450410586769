"""Profiling fidelity: summed per-node medians over the measured end-to-end forward time.

Goal (issue #2): within ±10% per model. Both figures come from the same
:func:`edgesplit.predict.profile.profile_graph` run, interleaved repeat by repeat.
"""

from __future__ import annotations

import argparse

from _common import save

from edgesplit.graph import trace
from edgesplit.models import ZOO, build
from edgesplit.predict.profile import profile_graph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default=",".join(ZOO))
    args = parser.parse_args()
    rows = []
    for name in args.models.split(","):
        model, x = build(name)
        graph = trace(model, x, name=name)
        prof = profile_graph(
            graph, x, threads=args.threads, repeats=args.repeats, warmup=3, device=args.device
        )
        row = {
            "model": name,
            "nodes": len(graph),
            "sum_of_node_medians_s": prof.sum_of_medians_s,
            "end_to_end_median_s": prof.end_to_end.median_s,
            "fidelity": prof.fidelity,
            "within_10pct": abs(prof.fidelity - 1) <= 0.10,
        }
        rows.append(row)
        print(
            f"{name:14s} sum {prof.sum_of_medians_s * 1e3:9.2f} ms  e2e "
            f"{prof.end_to_end.median_s * 1e3:9.2f} ms  ratio {prof.fidelity:.3f}"
        )
    suffix = "" if args.device == "cpu" else f"_{args.device}"
    save(
        f"profile_fidelity{suffix}",
        {"device": args.device, "repeats": args.repeats, "threads": args.threads, "models": rows},
    )


if __name__ == "__main__":
    main()
