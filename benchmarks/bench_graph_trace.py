"""Trace time per zoo model (layer and op granularity), median of repeats.

Baseline: a bare ``torch.fx.symbolic_trace`` of the same model, so the ratio shows what
shape propagation and node grouping add on top of fx itself.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.fx
from _common import save

from edgesplit.graph import trace
from edgesplit.models import ZOO, build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = []
    for name in ZOO:
        model, x = build(name)
        times = {"layer": [], "op": [], "fx_only": []}
        for _ in range(args.repeats):
            for gran in ("layer", "op"):
                t0 = time.perf_counter()
                g = trace(model, x, name=name, granularity=gran)
                times[gran].append(time.perf_counter() - t0)
                nodes = len(g)
            t0 = time.perf_counter()
            torch.fx.symbolic_trace(model)
            times["fx_only"].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        row = {
            "model": name,
            "layer_nodes": len(trace(model, x, granularity="layer")),
            "op_nodes": nodes,
            "trace_layer_s": med["layer"],
            "trace_op_s": med["op"],
            "fx_symbolic_trace_s": med["fx_only"],
            "ratio_layer_over_fx": med["layer"] / med["fx_only"],
        }
        rows.append(row)
        print(
            f"{name:14s} {row['layer_nodes']:4d} layers  trace {med['layer'] * 1e3:8.1f} ms"
            f"  (bare fx {med['fx_only'] * 1e3:7.1f} ms, x{row['ratio_layer_over_fx']:.1f})"
        )
    save("graph_trace", {"repeats": args.repeats, "models": rows})


if __name__ == "__main__":
    main()
