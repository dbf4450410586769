"""Requests/s of the cloud tier: plain uvicorn vs Ray Serve with 1 and 2 replicas.

AlexNet at the middle cut 10 (``--quick``: mnist_cnn at cut 4). Four agents, each a
thread with its own HTTP client, send the tensors crossing the cut back to back for a
fixed time. The baseline, measured in the same run, is ``edgesplit serve`` (one uvicorn
process, one torch thread per inference, ``--max-concurrency 2``). The Ray Serve tier
runs the same app on a private local Ray with ``num_cpus=2``, one torch thread and one
logical CPU per replica. The first answer of every configuration is checked
``torch.equal`` against local inference. This host has 2 cores, shared with other jobs
and with the load generator itself, so two replicas cannot double the throughput here;
the figure shows the cost of the Ray proxy hop and whether a second replica helps at all.
Output: results/bench/runtime_ray_serve.json.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import threading
import time

import torch
from _common import save

from edgesplit.errors import TransportError
from edgesplit.graph import trace
from edgesplit.graph.partition import split_at
from edgesplit.models import build
from edgesplit.runtime.serve_ray import RayOptions, RayServer
from edgesplit.runtime.server import ServerConfig, ServerProcess
from edgesplit.runtime.transport import HTTPTransport

AGENTS = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load(
    url: str, model: str, cut: int, tensors: dict[str, torch.Tensor], seconds: float
) -> dict[str, float]:
    """``AGENTS`` closed-loop clients for ``seconds``: requests/s and latency quantiles."""
    lat: list[list[float]] = [[] for _ in range(AGENTS)]
    failed = [0] * AGENTS
    stop = time.monotonic() + seconds

    def agent(i: int) -> None:
        client = HTTPTransport(url, timeout_s=60)
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            try:
                client.infer(model, cut, tensors)
            except TransportError:
                failed[i] += 1
                continue
            lat[i].append(time.perf_counter() - t0)
        client.close()

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(AGENTS)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    flat = sorted(x for per in lat for x in per)
    return {
        "requests": len(flat),
        "requests_per_s": len(flat) / wall,
        "p50_s": statistics.median(flat),
        "p90_s": flat[int(0.9 * (len(flat) - 1))],
        "failed": sum(failed),
    }


def measure(
    url: str,
    model: str,
    cut: int,
    tensors: dict[str, torch.Tensor],
    ref: torch.Tensor,
    seconds: float,
) -> dict[str, float]:
    client = HTTPTransport(url, timeout_s=60)
    reply = client.infer(model, cut, tensors)
    client.close()
    if not all(torch.equal(v, ref) for v in reply.tensors.values()):
        raise SystemExit(f"{url}: answer differs from local inference")
    load(url, model, cut, tensors, 2.0)  # warm-up: every replica sees requests
    return load(url, model, cut, tensors, seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="mnist_cnn, 4 s per setting")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, cut = ("mnist_cnn", 4) if args.quick else ("alexnet", 10)
    seconds = 4.0 if args.quick else 15.0
    module, x = build(model)
    graph = trace(module, x, name=model)
    values = split_at(graph, [cut]).parts[0]({graph.input_names[0]: x})
    tensors = {t.name: values[t.name] for t in graph.cut(cut).tensors}
    with torch.inference_mode():
        ref = graph.module(x)

    rows: dict[str, dict[str, float]] = {}
    plain = ServerProcess(
        (model,), args=("--threads", "1", "--max-concurrency", "2", "--max-queue", "64")
    ).start()
    try:
        rows["uvicorn"] = measure(plain.url, model, cut, tensors, ref, seconds)
    finally:
        plain.stop()
    config = ServerConfig(models=(model,), max_concurrency=2, max_queue=64)
    for replicas in (1, 2):
        opts = RayOptions(replicas=replicas, port=_free_port(), num_cpus=2, replica_cpus=1.0)
        t0 = time.perf_counter()
        with RayServer(config, opts) as server:
            started = time.perf_counter() - t0
            row = measure(server.url, model, cut, tensors, ref, seconds)
        rows[f"ray_{replicas}"] = {**row, "start_s": started}
    base = rows["uvicorn"]["requests_per_s"]
    for name, r in rows.items():
        r["ratio_to_uvicorn"] = r["requests_per_s"] / base
        print(
            f"{name:>8}: {r['requests_per_s']:7.1f} req/s ({r['ratio_to_uvicorn']:.2f}x uvicorn),"
            f" p50 {r['p50_s'] * 1e3:7.1f} ms, p90 {r['p90_s'] * 1e3:7.1f} ms, "
            f"failed {r['failed']}"
        )
    scale = rows["ray_2"]["requests_per_s"] / rows["ray_1"]["requests_per_s"]
    print(f"2 replicas / 1 replica: {scale:.2f}x")
    save(
        "runtime_ray_serve",
        {
            "model": model,
            "cut": cut,
            "agents": AGENTS,
            "seconds_per_setting": seconds,
            "cores": os.cpu_count(),
            "note": "2 cores shared with other jobs and with the 4 client threads",
            "settings": rows,
            "ray_2_over_ray_1": scale,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
