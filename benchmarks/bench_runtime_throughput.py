"""Server throughput with 1, 4 and 16 concurrent agents (AlexNet, middle cut 10).

The cloud tier runs as ``edgesplit serve`` in its own process (one torch thread per
inference, ``--max-concurrency`` = cores, queue 64). Each agent is a thread with its own
HTTP client that sends the tensors crossing cut 10 back to back for a fixed time. The
compute bound is cores / tail time, where the tail time is the server's own median
``cloud_lat`` with one agent. Requests/s and p50/p99 latency per level; 503 answers
are counted. ``--device cuda`` runs the same with the server on a GPU.
Output: results/bench/runtime_throughput[_cuda].json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from edgesplit.errors import TransportError
from edgesplit.graph import trace
from edgesplit.graph.partition import split_at
from edgesplit.io import write_json
from edgesplit.models import build
from edgesplit.runtime.server import ServerProcess
from edgesplit.runtime.transport import HTTPTransport

CUT = 10


def level(url: str, agents: int, seconds: float, tensors: dict[str, torch.Tensor]) -> dict:
    lat: list[list[float]] = [[] for _ in range(agents)]
    cloud: list[list[float]] = [[] for _ in range(agents)]
    rejected = [0] * agents
    stop = time.monotonic() + seconds

    def agent(i: int) -> None:
        client = HTTPTransport(url, timeout_s=60)
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            try:
                reply = client.infer("alexnet", CUT, tensors)
            except TransportError:
                rejected[i] += 1
                continue
            lat[i].append(time.perf_counter() - t0)
            cloud[i].append(reply.cloud_lat)
        client.close()

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(agents)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    all_lat = np.array([x for per in lat for x in per])
    return {
        "agents": agents,
        "requests": int(all_lat.size),
        "requests_per_s": all_lat.size / wall,
        "p50_s": float(np.percentile(all_lat, 50)),
        "p99_s": float(np.percentile(all_lat, 99)),
        "median_cloud_s": statistics.median(x for per in cloud for x in per),
        "rejected": sum(rejected),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter levels")
    parser.add_argument("--device", default="cpu", help="cpu or cuda for the server")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cores = os.cpu_count() or 1
    seconds = 4.0 if args.quick else 12.0
    module, x = build("alexnet")
    graph = trace(module, x, name="alexnet")
    values = split_at(graph, [CUT]).parts[0]({"x": x})
    tensors = {t.name: values[t.name] for t in graph.cut(CUT).tensors}
    server = ServerProcess(
        ("alexnet",),
        args=(
            "--threads",
            "1",
            "--max-concurrency",
            str(cores),
            "--max-queue",
            "64",
            "--device",
            args.device,
        ),
    ).start()
    try:
        level(server.url, 1, 2.0, tensors)  # warm-up
        rows = [level(server.url, n, seconds, tensors) for n in (1, 4, 16)]
    finally:
        server.stop()
    tail = rows[0]["median_cloud_s"]
    bound = cores / tail
    for r in rows:
        r["compute_bound_rps"] = bound
        r["fraction_of_bound"] = r["requests_per_s"] / bound
        print(
            f"{r['agents']:>2} agents: {r['requests_per_s']:7.1f} req/s "
            f"(bound {bound:6.1f}), p50 {r['p50_s'] * 1e3:7.1f} ms, p99 {r['p99_s'] * 1e3:7.1f} ms,"
            f" 503s {r['rejected']}"
        )
    doc = {
        "benchmark": "runtime_throughput" + ("_cuda" if args.device != "cpu" else ""),
        "device": args.device,
        "gpu": torch.cuda.get_device_name(0) if args.device != "cpu" else None,
        "cores": cores,
        "model": "alexnet",
        "cut": CUT,
        "tail_time_s": tail,
        "baseline": "compute bound = cores / tail time (server's median cloud_lat, 1 agent)",
        "note": "agents run on the same machine as the server and share its cores",
        "rows": rows,
    }
    name = "runtime_throughput" + ("_cuda" if args.device != "cpu" else "")
    out = write_json(Path(f"results/bench/{name}.json"), doc)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
