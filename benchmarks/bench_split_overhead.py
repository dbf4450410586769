"""Split overhead: k-part in-process execution over the unsplit forward, same run.

For each model we time the unsplit ``model(x)`` and the split model alternately, at
(a) the worst two-part cut, taken as the cut crossing the most tensors and, among those,
the most bytes, (b) a three-part split at the 1/3 and 2/3 cuts, and (c) the extreme of one
part per node. Goal (issue #2): ratio at most 1.03 at the median for (a).

The engine path (issue 13's figure, goal the same 1.03 at the median): ``engine_*`` rows
run (a) and (b) as a 2- and 3-device plan through :meth:`edgesplit.runtime.engine.Engine.infer`
with every device in this process (stages, the walk, the per-request record, the compute
slot), interleaved with the unsplit forward of the same run.
"""

from __future__ import annotations

import argparse

import torch
from _common import interleaved, save

from edgesplit.graph import trace
from edgesplit.graph.partition import partition, split_at
from edgesplit.models import build
from edgesplit.runtime.engine import Engine
from edgesplit.runtime.stages import build_stages, fingerprint


def engine_path(g, cuts: list[int]):  # type: ignore[no-untyped-def]
    """An in-process engine for the plan cut at ``cuts`` (one device per part, all here)."""
    devices = tuple(f"d{i}" for i in range(len(cuts) + 1))
    assignment = [sum(k >= c for c in cuts) for k in range(len(g))]
    stages = build_stages(g, devices, assignment)
    engine = Engine(stages, g.name, fingerprint(g), devices[0], frozenset(devices), {})
    return engine, len(stages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--models", default="alexnet,vgg16,resnet50")
    parser.add_argument("--quick", action="store_true", help="alexnet, 5 repeats (smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.models = 5, "alexnet"
    torch.set_num_threads(2)
    rows = []
    for name in args.models.split(","):
        model, x = build(name)
        g = trace(model, x, name=name)
        n = len(g)
        worst = max(range(1, n), key=lambda k: (len(g.cut(k).tensors), g.cut(k).bytes))
        variants = {
            "worst_two_part": split_at(g, [worst]),
            "three_part": split_at(g, [n // 3, 2 * n // 3]),
            "per_node": partition(g, list(range(n))),
        }
        engines = {
            "engine_worst_two_part": engine_path(g, [worst]),
            "engine_three_part": engine_path(g, [n // 3, 2 * n // 3]),
        }
        with torch.inference_mode():
            for label, split in variants.items():
                reps = args.repeats if label != "per_node" else max(5, args.repeats // 3)
                cand, base = interleaved(lambda s=split, x=x: s(x), lambda m=model, x=x: m(x), reps)
                row = {
                    "model": name,
                    "variant": label,
                    "parts": len(split.parts),
                    "cut": worst if label == "worst_two_part" else None,
                    "crossing_tensors": len(g.cut(worst).tensors)
                    if label == "worst_two_part"
                    else None,
                    "split_median_s": cand,
                    "unsplit_median_s": base,
                    "ratio": cand / base,
                }
                rows.append(row)
                print(
                    f"{name:10s} {label:15s} parts={len(split.parts):3d}  split {cand * 1e3:8.2f} ms"
                    f"  unsplit {base * 1e3:8.2f} ms  ratio {cand / base:.3f}"
                )
            for label, (engine, parts) in engines.items():
                cand, base = interleaved(
                    lambda e=engine, x=x: e.infer((x,)), lambda m=model, x=x: m(x), args.repeats
                )
                rows.append(
                    {
                        "model": name,
                        "variant": label,
                        "parts": parts,
                        "cut": worst if label == "engine_worst_two_part" else None,
                        "split_median_s": cand,
                        "unsplit_median_s": base,
                        "ratio": cand / base,
                    }
                )
                print(
                    f"{name:10s} {label:22s} parts={parts:3d}  engine {cand * 1e3:8.2f} ms"
                    f"  unsplit {base * 1e3:8.2f} ms  ratio {cand / base:.3f}"
                )
    engine_rows = [r["ratio"] for r in rows if r["variant"] == "engine_worst_two_part"]
    save(
        "split_overhead",
        {
            "repeats": args.repeats,
            "goal": "engine_worst_two_part ratio <= 1.03 at the median, every model",
            "goal_met": all(r <= 1.03 for r in engine_rows),
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
