"""verify time at every cut: the new methods against the old one (rebuild) in the same run.

Model: timm efficientnet_b0 (random weights, seed 0) on one 224x224 image, layer
granularity, 2 torch threads. Both methods check ``torch.equal`` at every cut
(:mod:`edgesplit.graph.verify`):

* ``rebuild`` (the method ``edgesplit verify`` used before): ``split_at(graph, [k])``
  built afresh and run for every cut ``k``;
* ``fast``: one recorded run, one part per node built once, every cut's head run and its
  tail checked part by part (three forwards in all);
* ``tails`` (the default of ``edgesplit verify``): the same, but every cut's whole tail
  run from the cut's recorded tensors.

Goal (issue 12): the default method <= 20 s on 2 cores. Tracing is timed once, apart from both.
"""

from __future__ import annotations

import argparse
import os
import time

import timm
import torch
from _common import save

from edgesplit.graph import trace
from edgesplit.graph.verify import check_every_cut


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="efficientnet_b0", help="timm architecture")
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--quick", action="store_true", help="64x64 input: proves the script")
    args = parser.parse_args()
    size = 64 if args.quick else args.size
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = timm.create_model(args.model).eval()
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    graph = trace(model, x, name=args.model)
    trace_s = time.perf_counter() - t0
    with torch.inference_mode():
        reference = model(x)
    seconds, passed = {}, {}
    for method in ("fast", "tails", "rebuild"):
        t0 = time.perf_counter()
        checks = check_every_cut(graph, (x,), reference, method=method)  # type: ignore[arg-type]
        seconds[method] = time.perf_counter() - t0
        passed[method] = all(c.equal for c in checks)
        print(
            f"{method:8s} {len(checks)} cuts in {seconds[method]:7.1f} s, "
            f"{'all exact' if passed[method] else 'NOT EXACT'}",
            flush=True,
        )
    ratio = seconds["rebuild"] / seconds["tails"]
    print(
        f"{args.model} {size}x{size}: {len(graph)} layers, trace {trace_s:.1f} s; "
        f"tails (default) {seconds['tails']:.1f} s, fast {seconds['fast']:.1f} s vs rebuild "
        f"{seconds['rebuild']:.1f} s (default x{ratio:.1f} faster); "
        f"goal default <= 20 s: {'met' if seconds['tails'] <= 20 else 'missed'}"
    )
    save(
        "verify_speed",
        {
            "model": f"timm:{args.model}",
            "input": [1, 3, size, size],
            "quick": args.quick,
            "layers": len(graph),
            "cuts": len(graph) + 1,
            "tracer": graph.tracer,
            "trace_s": trace_s,
            "fast_s": seconds["fast"],
            "tails_s": seconds["tails"],
            "rebuild_s": seconds["rebuild"],
            "default_method": "tails",
            "speedup_default_vs_rebuild": ratio,
            "all_exact": passed,
            "goal_default_s": 20.0,
            "load_average_1m_before": load_before,
            "load_average_1m_after": os.getloadavg()[0],
        },
    )


if __name__ == "__main__":
    main()
