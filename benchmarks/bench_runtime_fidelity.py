"""Wire fidelity through the engine: measured transfer over the eq. 4.3 prediction, per link.

Two 3-tier AlexNet plans run through :class:`edgesplit.runtime.engine.Engine`, with the
edge and the cloud as two real ``edgesplit serve --topology --as`` processes on loopback
and both links (device-edge, edge-cloud) shaped by the topology at 2, 7.2 and 20 Mbit/s,
RTT 20 ms:

* ``input|cut13``: the edge runs nodes 0-12, the cloud 13-20 (602 KB device->edge,
  37 KB edge->cloud);
* ``cut3|cut16``: the device runs nodes 0-2, the edge 3-15, the cloud 16-20 (187 KB
  device->edge, 16 KB edge->cloud).

Measured: a hop's ``transfer_s`` as the engine records it (the sender's round trip less
the receiver's reported processing, one clock). Predicted: Luger eq. 4.3 for each
direction, ``bytes·8/bw + rtt/2`` of the request body plus the same of the reply body
(:meth:`edgesplit.system.link.Link.seconds`), on the wire bytes the hop recorded. The
ratio is measured / predicted (median of the repeats, after one warm-up request); the
goal is within 10 %. ``pacing_ratio`` isolates the shaper (paced seconds over the
prediction): the rest of the gap is the transport's own loopback time.

Why the previous figure missed above 2 Mbit/s (our reading): not the bucket's arithmetic
(``TokenBucketShaper.pace`` alone takes size/rate to 0.1 %), but the agent's shaper
streaming the request body through httpx in paced 16 KB chunks (a sleep and a socket
write per chunk, the server reading them one by one), a roughly fixed cost per message
that the kernel-tbf mode, writing the same chunks, paid too. The engine's links pace each
whole message once, on the receiver, from its arrival to an absolute deadline
(``TokenBucketShaper.transmit``), and the body crosses loopback in one piece.

    .venv/bin/python benchmarks/bench_runtime_fidelity.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch
from _common import save

from edgesplit.runtime.engine import engine_for
from edgesplit.runtime.server import ServerProcess
from edgesplit.runtime.stages import build_stages
from edgesplit.runtime.store import ModelStore
from edgesplit.system.link import Link
from edgesplit.system.topology import Topology

BANDWIDTHS = (2.0, 7.2, 20.0)
RTT = "20ms"
THREADS = "2"
#: Plan name -> (first edge node, first cloud node); nodes before the edge run on the device.
PLANS = {"input|cut13": (0, 13), "cut3|cut16": (3, 16)}


def topology(bw: float, edge: str, cloud: str) -> Topology:
    link = {"bandwidth": f"{bw}mbit", "rtt": RTT, "shaping": True}
    return Topology.model_validate(
        {
            "devices": [
                {"name": "device", "url": "local"},
                {"name": "edge", "url": edge},
                {"name": "cloud", "url": cloud},
            ],
            "links": [{"a": "device", "b": "edge", **link}, {"a": "edge", "b": "cloud", **link}],
        }
    )


def measure(bw: float, store: ModelStore, repeats: int) -> list[dict[str, Any]]:
    """Median transfer per link and plan at ``bw`` Mbit/s, servers started for this link."""
    edge, cloud = ServerProcess(("alexnet",)), ServerProcess(("alexnet",))
    topo = topology(bw, edge.url, cloud.url)
    path = Path(tempfile.mkdtemp()) / "topology.json"
    path.write_text(json.dumps(topo.model_dump(mode="json", exclude_none=True)))
    for tier, name in ((edge, "edge"), (cloud, "cloud")):
        tier.args = ("--threads", THREADS, "--topology", str(path), "--as", name)
    graph = store.model("alexnet").graph
    n = len(graph.nodes)
    x = tuple(store.model("alexnet").inputs)
    rows = []
    try:
        edge.start()
        cloud.start()
        for plan, (a, b) in PLANS.items():
            assignment = [0 if i < a else 1 if i < b else 2 for i in range(n)]
            stages = build_stages(graph, ("device", "edge", "cloud"), assignment)
            engine = engine_for(stages, "alexnet", store.fingerprint("alexnet"), topo)
            try:
                hops = [engine.infer(x)[1]["hops"] for _ in range(repeats + 1)][1:]
            finally:
                engine.close()
            for j, first in enumerate(hops[0]):
                link = Link.of(bw * 1e6, rtt_s=topo.link(first["src"], first["dst"]).rtt)
                per = [h[j] for h in hops]
                predicted = link.seconds(first["sent_wire_bytes"]) + link.seconds(
                    first["reply_wire_bytes"]
                )
                measured = statistics.median(h["transfer_s"] for h in per)
                paced = statistics.median(h["paced_out_s"] + h["paced_back_s"] for h in per)
                rows.append(
                    {
                        "plan": plan,
                        "link": f"{first['src']}>{first['dst']}",
                        "bandwidth_mbit": bw,
                        "sent_wire_bytes": first["sent_wire_bytes"],
                        "reply_wire_bytes": first["reply_wire_bytes"],
                        "measured_transfer_s": measured,
                        "predicted_s": predicted,
                        "ratio": measured / predicted,
                        "pacing_ratio": paced / predicted,
                        "repeats": repeats,
                    }
                )
    finally:
        edge.stop()
        cloud.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 7")
    args = parser.parse_args()
    torch.set_num_threads(int(THREADS))
    store = ModelStore(("alexnet",))
    rows = [r for bw in BANDWIDTHS for r in measure(bw, store, 3 if args.quick else 7)]
    for r in rows:
        print(
            f"{r['plan']:12s} {r['link']:12s} {r['bandwidth_mbit']:5.1f} Mbit/s "
            f"{r['sent_wire_bytes']:>7} B out {r['reply_wire_bytes']:>6} B back: measured "
            f"{r['measured_transfer_s'] * 1e3:8.1f} ms, eq. 4.3 {r['predicted_s'] * 1e3:8.1f} ms,"
            f" ratio {r['ratio']:.3f} (pacing alone {r['pacing_ratio']:.3f})"
        )
    worst = max(abs(r["ratio"] - 1) for r in rows)
    print(
        f"worst |ratio - 1| = {worst:.3f}: goal within 10 % {'met' if worst <= 0.1 else 'MISSED'}"
    )
    save(
        "runtime_fidelity",
        {
            "what": "engine hop transfer_s (round trip - receiver processing) over eq. 4.3 "
            "(bytes*8/bw + rtt/2 per direction), links shaped by the topology, RTT 20 ms",
            "transport": "the engine's default (make_hops)",
            "goal": "ratio within 10 % on device>edge and edge>cloud at 2, 7.2, 20 Mbit/s",
            "worst_abs_ratio_error": worst,
            "goal_met": worst <= 0.10,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
