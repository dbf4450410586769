"""Wire codecs chosen by the planner: best-plan latency with ``none`` against ``--codec auto``.

For alexnet, resnet50 and mobilenet_v2, a Pi-class device (``speed_factor`` 0.3: this
host's compute stretched by 1/0.3, Luger's emulated clock) and the cloud at host speed,
at 1, 2, 5, 10, 20 and 50 Mbit/s (RTT 10 ms):

1. the model is profiled here once, with its codec costs (``profile --codecs``:
   per-byte encode/decode seconds of every codec, zstd ratio per tensor);
2. the planner picks the best cut with ``none`` (the baseline) and the best (codec, cut)
   with ``auto`` (:func:`edgesplit.plan.codec_choice.choose_two_tier`, lossy codecs
   allowed);
3. both plans run through :class:`edgesplit.runtime.engine.Engine` in this process
   (the device) against a real ``edgesplit serve`` process (the cloud) on loopback, the
   link shaped by the topology (token bucket per direction, :mod:`edgesplit.runtime.
   emulation`) and the device's stages under the 0.3 clock. Each figure is the median
   end-to-end ``total_s`` of the requests after one warm-up, the two plans alternating.

Reported per model and bandwidth: both plans (cut, codec, predicted and measured seconds,
bytes on the wire), the speed-up ``none / chosen``, the bytes ratio (chosen plan's wire
bytes over the ``none`` plan's) and the codec's own ratio on its cut (wire over raw);
per model, the bandwidths where the chosen codec is >= 1.5x faster. Goal: such a range on
at least two models.

    .venv/bin/python benchmarks/bench_codecs.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace
from typing import Any

import torch
from _common import save

from edgesplit.plan.codec_choice import CodecModel, choose_two_tier
from edgesplit.plan.planner import analyse
from edgesplit.plan.problem import Problem
from edgesplit.predict.profile import profile_graph
from edgesplit.runtime.engine import engine_for
from edgesplit.runtime.server import ServerProcess
from edgesplit.runtime.stages import build_stages
from edgesplit.runtime.store import ModelStore
from edgesplit.system.codecs import link_key
from edgesplit.system.link import CODECS
from edgesplit.system.topology import Topology

MODELS = ("alexnet", "resnet50", "mobilenet_v2")
BANDWIDTHS_MBIT = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
SPEED = 0.3
RTT_S = 0.010
THREADS = 1
GOAL = 1.5


def topology(bw_mbit: float, cloud_url: str) -> Topology:
    return Topology.model_validate(
        {
            "devices": [
                {"name": "edge", "url": "local", "speed_factor": SPEED},
                {"name": "cloud", "url": cloud_url},
            ],
            "links": [
                {"a": "edge", "b": "cloud", "bandwidth": f"{bw_mbit}mbit", "rtt": RTT_S,
                 "codecs": list(CODECS), "shaping": True},
            ],
        }
    )  # fmt: skip


def problem_at(graph: Any, host_s: list[float], bw_mbit: float) -> Problem:
    problem = Problem.two_tier(
        graph, [s / SPEED for s in host_s], host_s, bandwidth_bps=bw_mbit * 1e6, rtt_s=RTT_S
    )
    links = {k: v.model_copy(update={"codecs": CODECS}) for k, v in problem.links.items()}
    return replace(problem, links=links)


def run_plans(
    store: ModelStore, name: str, plans: dict[str, tuple[int, str]], topo: Topology, n: int
) -> dict[str, dict[str, float]]:
    """Median total_s and wire/raw bytes per request of each (cut, codec) plan, alternating."""
    sm = store.model(name)
    graph, x = sm.graph, tuple(sm.inputs)
    engines = {}
    for label, (cut, codec) in plans.items():
        assignment = [0 if i < cut else 1 for i in range(len(graph.nodes))]
        stages = build_stages(graph, ("edge", "cloud"), assignment)
        codecs = {link_key("edge", "cloud"): codec}
        engines[label] = engine_for(stages, name, store.fingerprint(name), topo, None, codecs)
    totals: dict[str, list[float]] = {k: [] for k in plans}
    wire: dict[str, float] = {}
    raw: dict[str, float] = {}
    try:
        for engine in engines.values():
            engine.infer(x)  # warm-up
        for _ in range(n):
            for label, engine in engines.items():
                _, rec = engine.infer(x)
                totals[label].append(rec["total_s"])
                hops = rec.get("hops", [])
                wire[label] = sum(h["sent_wire_bytes"] + h["reply_wire_bytes"] for h in hops)
                raw[label] = sum(h["sent_raw_bytes"] + h["reply_raw_bytes"] for h in hops)
    finally:
        for engine in engines.values():
            engine.close()
    return {
        k: {"measured_s": statistics.median(v), "wire_bytes": wire[k], "raw_bytes": raw[k]}
        for k, v in totals.items()
    }


def bench_model(
    store: ModelStore, name: str, bandwidths: tuple[float, ...], n: int, repeats: int
) -> dict[str, Any]:
    sm = store.model(name)
    graph = sm.graph
    prof = profile_graph(graph, tuple(sm.inputs), threads=THREADS, repeats=repeats, warmup=2,
                         codecs=True)  # fmt: skip
    assert prof.codecs is not None
    host_s = prof.seconds(graph)
    server = ServerProcess((name,), args=("--threads", str(THREADS))).start()
    rows = []
    try:
        for bw in bandwidths:
            problem = problem_at(graph, host_s, bw)
            base = analyse(problem).chosen
            model = CodecModel.from_record(prof.codecs, problem)
            codec, cut, tables = choose_two_tier(problem, model, "auto")
            codec_s = tables[codec].codec_s
            plans = {"none": (int(base.cut or 0), "none"), "chosen": (cut, codec)}
            measured = run_plans(store, name, plans, topology(bw, server.url), n)
            none, chosen = measured["none"], measured["chosen"]
            row = {
                "bandwidth_mbit": bw,
                "none": {"cut": base.cut, "predicted_s": base.predicted["latency_s"], **none},
                "chosen": {
                    "codec": codec,
                    "cut": cut,
                    "predicted_s": float(tables[codec].latency_s[cut]),
                    "predicted_codec_s": 0.0 if codec_s is None else float(codec_s[cut]),
                    **chosen,
                },
                "speedup": none["measured_s"] / chosen["measured_s"],
                "predicted_speedup": base.predicted["latency_s"]
                / float(tables[codec].latency_s[cut]),
                "bytes_ratio": chosen["wire_bytes"] / none["wire_bytes"]
                if none["wire_bytes"] else None,
                "codec_bytes_ratio": chosen["wire_bytes"] / chosen["raw_bytes"]
                if chosen["raw_bytes"] else None,
            }  # fmt: skip
            rows.append(row)
            print(
                f"{name:13s} {bw:5.1f} Mbit/s: none cut {base.cut:>3} "
                f"{none['measured_s'] * 1e3:8.1f} ms | {codec:5s} cut {cut:>3} "
                f"{chosen['measured_s'] * 1e3:8.1f} ms (predicted "
                f"{row['chosen']['predicted_s'] * 1e3:7.1f}) | x{row['speedup']:.2f}"
            )
    finally:
        server.stop()
    fast = [r["bandwidth_mbit"] for r in rows if r["speedup"] >= GOAL]
    return {
        "model": name,
        "profile_threads": THREADS,
        "codec_rates_s_per_byte": {c: r.model_dump() for c, r in prof.codecs.rates.items()},
        "rows": rows,
        "range_ge_1_5x_mbit": [min(fast), max(fast)] if fast else None,
        "bandwidths_ge_1_5x_mbit": fast,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="alexnet at 2 and 20 Mbit/s, 2 runs")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    models = ("alexnet",) if args.quick else MODELS
    bandwidths = (2.0, 20.0) if args.quick else BANDWIDTHS_MBIT
    n, repeats = (2, 3) if args.quick else (7, 10)
    store = ModelStore(models)
    results = [bench_model(store, m, bandwidths, n, repeats) for m in models]
    with_range = [r["model"] for r in results if r["range_ge_1_5x_mbit"]]
    for r in results:
        print(f"{r['model']}: chosen codec >= {GOAL}x faster than none at "
              f"{r['bandwidths_ge_1_5x_mbit'] or 'no bandwidth'} Mbit/s")  # fmt: skip
    met = len(with_range) >= 2
    print(f"goal (a >= {GOAL}x range on at least two models): {'met' if met else 'MISSED'}")
    save(
        "codecs",
        {
            "what": "best-plan end-to-end latency through the engine (device in-process at "
            f"speed_factor {SPEED}, cloud an `edgesplit serve` process at host speed, link "
            f"shaped, RTT {RTT_S * 1e3:.0f} ms): codec none (baseline, same run) against "
            "plan --codec auto; median of the requests after one warm-up",
            "quick": args.quick,
            "requests": n,
            "goal": f"a bandwidth range where the chosen codec is >= {GOAL}x faster than none, "
            "on at least two models",
            "models_with_range": with_range,
            "goal_met": met,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
