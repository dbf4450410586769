"""Extra time per tier-to-tier hop over a raw TCP echo of the same bytes (issue 13, point 2).

A hop is one request to a remote identity part: the payload goes out, the same payload
comes back, with encoding, decoding and the bearer token included, codec ``none``. The
identity part is the empty segment ``[cut, cut)`` of :class:`Ladder`, whose cuts carry
exactly 4 KiB, 100 KiB, 1 MiB and 10 MiB of float32, served by a real
``edgesplit serve`` process on loopback (the server checks the tensor against the graph
and hands it back). Candidates, in the same run and interleaved (one hop of each per
round, order rotated), each over one persistent connection:

* ``http``: ``POST /v1/infer`` (uvicorn + httpx, safetensors bodies), as today;
* ``websocket``: ``/v1/ws`` on the same server (:mod:`edgesplit.runtime.fastwire`:
  a JSON header message, then one binary message per tensor, sent from its memory);
* ``grpc``: a grpcio bidirectional stream to a second process holding the same model
  store, same header and one message per tensor (grpcio's raw-bytes messages need a
  ``bytes`` copy of each buffer);
* ``raw``: the baseline, a TCP echo process returning the same bytes.

Output: results/bench/runtime_hop.json with p50/p99 per candidate and size, the extra
median over raw, and the goals: the new transport <= 0.3 ms extra at <= 100 KB and
<= 2x raw at >= 1 MB. pyzmq is not installed here, so it is not measured.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import select
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

from _common import save

TOKEN = "bench-token"
MODEL = "bench_runtime_hop:Ladder"
#: float32 element counts at cuts 0..3 of Ladder: 10 MiB, 1 MiB, 100 KiB, 4 KiB.
SIZES = {"10MB": 2_621_440, "1MB": 262_144, "100KB": 25_600, "4KB": 1_024}
GRPC_METHOD = "/edgesplit.Hop/Stream"


class Ladder(nn.Module):
    """x, then three narrower views of it: one cut per payload size, nothing to compute."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.narrow(x, 1, 0, SIZES["1MB"])
        b = torch.narrow(a, 1, 0, SIZES["100KB"])
        return torch.narrow(b, 1, 0, SIZES["4KB"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- raw TCP echo (baseline)
def echo_server(port: int) -> None:
    with socket.create_server(("127.0.0.1", port)) as srv:
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = bytearray(1 << 20)
        while n := conn.recv_into(buf):
            conn.sendall(memoryview(buf)[:n])


class RawEcho:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)

    def hop(self, payload: memoryview, into: memoryview) -> None:
        n, sent, got = len(payload), 0, 0
        while got < n:
            select.select([self.sock], [self.sock] if sent < n else [], [])
            if sent < n:
                with contextlib.suppress(BlockingIOError):
                    sent += self.sock.send(payload[sent : sent + (1 << 20)])
            with contextlib.suppress(BlockingIOError):
                got += self.sock.recv_into(into[got:], n - got)


# ------------------------------------------------------------------- grpc candidate
def grpc_server(port: int) -> None:
    import grpc

    from edgesplit.commands.common import model_request
    from edgesplit.runtime import fastwire
    from edgesplit.runtime.store import ModelStore

    store = ModelStore((model_request(MODEL, None, f"1,{SIZES['10MB']}", None, None, None),))

    def stream(requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
        meta = dict(context.invocation_metadata())
        if meta.get("authorization") != f"Bearer {TOKEN}":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        for header in requests:
            doc = fastwire.parse_header(header.decode())
            specs = fastwire.parse_specs(doc["tensors"], 1 << 28)
            tensors = {s.name: fastwire.from_frame(s, next(requests)) for s in specs}
            seg = store.segment(doc["model"], doc["cut"], doc["end"])
            outs, _ = store.run(seg, tensors)
            out_specs, buffers = fastwire.to_frames(outs)
            yield json.dumps({"id": doc["id"], "ok": True, "tensors": out_specs}).encode()
            for buf in buffers:
                yield bytes(buf)

    opts = [("grpc.max_receive_message_length", 1 << 28), ("grpc.max_send_message_length", 1 << 28)]
    server = grpc.server(futures.ThreadPoolExecutor(4), options=opts)
    handler = grpc.stream_stream_rpc_method_handler(stream)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("edgesplit.Hop", {"Stream": handler}),)
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


class GrpcHop:
    def __init__(self, port: int) -> None:
        import grpc

        opts = [
            ("grpc.max_receive_message_length", 1 << 28),
            ("grpc.max_send_message_length", 1 << 28),
        ]
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=opts)
        grpc.channel_ready_future(self.channel).result(timeout=120)
        self.out: queue.Queue[bytes | None] = queue.Queue()
        call = self.channel.stream_stream(GRPC_METHOD)
        self.replies = call(
            iter(self.out.get, None), metadata=[("authorization", f"Bearer {TOKEN}")]
        )
        self.n = 0

    def infer(self, cut: int, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        from edgesplit.runtime import fastwire

        self.n += 1
        specs, buffers = fastwire.to_frames(tensors)
        doc = {"id": self.n, "model": MODEL, "cut": cut, "end": cut, "tensors": specs}
        self.out.put(json.dumps(doc).encode())
        for buf in buffers:
            self.out.put(bytes(buf))
        reply = fastwire.parse_header(next(self.replies).decode())
        specs_back = fastwire.parse_specs(reply["tensors"], 1 << 28)
        return {s.name: fastwire.from_frame(s, next(self.replies)) for s in specs_back}

    def close(self) -> None:
        self.out.put(None)
        self.channel.close()


# ---------------------------------------------------------------------------- main
def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50_ms": statistics.median(ordered) * 1e3, "p99_ms": p99 * 1e3}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few repeats: proves it runs")
    parser.add_argument("--repeats", type=int, default=None, help="hops per candidate and size")
    parser.add_argument("--no-grpc", action="store_true", help="skip the grpc candidate")
    args = parser.parse_args(argv)
    repeats = args.repeats or (15 if args.quick else 300)

    import multiprocessing as mp

    from edgesplit.runtime.fastwire import WSTransport
    from edgesplit.runtime.server import ServerProcess
    from edgesplit.runtime.transport import HTTPTransport

    torch.set_num_threads(1)
    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])
    ctx = mp.get_context("spawn")
    echo_port, grpc_port = _free_port(), _free_port()
    children = [ctx.Process(target=echo_server, args=(echo_port,), daemon=True)]
    if not args.no_grpc:
        children.append(ctx.Process(target=grpc_server, args=(grpc_port,), daemon=True))
    for child in children:
        child.start()
    shape_arg = f"1,{SIZES['10MB']}"
    server = ServerProcess(
        (MODEL,), args=("--input-shape", shape_arg, "--token", TOKEN, "--threads", "1")
    ).start()
    try:
        time.sleep(0.5)
        raw = RawEcho(echo_port)
        http = HTTPTransport(server.url, token=TOKEN, timeout_s=120)
        ws = WSTransport(server.url, token=TOKEN, timeout_s=120)
        grpc_hop = None if args.no_grpc else GrpcHop(grpc_port)
        rows = []
        for cut, (label, numel) in enumerate(SIZES.items()):
            name = ["x", "narrow", "narrow_1", "narrow_2"][cut]
            x = torch.randn(1, numel)
            payload = memoryview(x.numpy()).cast("B")
            into = memoryview(bytearray(x.nbytes))
            hops: dict[str, Callable[[], object]] = {
                "raw": lambda p=payload, i=into: raw.hop(p, i),
                "http": lambda c=cut, n=name, t=x: http.infer(MODEL, c, {n: t}, end=c).tensors,
                "websocket": lambda c=cut, n=name, t=x: ws.infer(MODEL, c, {n: t}, end=c).tensors,
            }
            if grpc_hop is not None:
                hops["grpc"] = lambda c=cut, n=name, t=x, g=grpc_hop: g.infer(c, {n: t})
            for key, hop in hops.items():  # warm up, and check every path echoes exactly
                out = hop()
                if key != "raw":
                    assert isinstance(out, dict) and torch.equal(out[name], x), key
            assert bytes(into) == bytes(payload)
            samples: dict[str, list[float]] = {k: [] for k in hops}
            keys = list(hops)
            n_rep = max(5, repeats // 10) if numel >= SIZES["10MB"] else repeats
            for r in range(n_rep):
                for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
                    t0 = time.perf_counter()
                    hops[key]()
                    samples[key].append(time.perf_counter() - t0)
            stats = {k: _stats(v) for k, v in samples.items()}
            base = stats["raw"]["p50_ms"]
            row: dict[str, Any] = {"size": label, "bytes": x.nbytes, "repeats": n_rep}
            for key, st in stats.items():
                row[key] = {**st, "extra_p50_ms": st["p50_ms"] - base, "x_raw": st["p50_ms"] / base}
            rows.append(row)
            print(
                f"{label:>6}: raw {base:7.3f} ms | "
                + " | ".join(
                    f"{k} {row[k]['p50_ms']:7.3f} (+{row[k]['extra_p50_ms']:6.3f}, "
                    f"{row[k]['x_raw']:5.1f}x, p99 {row[k]['p99_ms']:7.3f})"
                    for k in keys
                    if k != "raw"
                )
            )
        ws.close()
        http.close()
        if grpc_hop is not None:
            grpc_hop.close()
    finally:
        server.kill()
        for child in children:
            child.kill()
    small = [r for r in rows if r["bytes"] <= 102_400]
    large = [r for r in rows if r["bytes"] >= 1_000_000]
    goals = {
        key: {
            "extra_le_0.3ms_at_le_100KB": all(r[key]["extra_p50_ms"] <= 0.3 for r in small),
            "le_2x_raw_at_ge_1MB": all(r[key]["x_raw"] <= 2.0 for r in large),
        }
        for key in rows[0]
        if isinstance(rows[0][key], dict) and key != "raw"
    }
    for key, goal in goals.items():
        print(f"goals {key}: {goal}")
    save(
        "runtime_hop",
        {
            "what": "one hop to a remote identity part on loopback: payload out, same back, "
            "encode + decode + bearer token included, codec none; medians of interleaved hops",
            "baseline": "raw TCP echo of the same bytes, separate process, same run",
            "goal": "new transport <= 0.3 ms median extra at <= 100 KB, <= 2x raw at >= 1 MB",
            "quick": bool(args.quick),
            "rows": rows,
            "goals": goals,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
