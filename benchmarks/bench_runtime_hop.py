"""Extra time per tier-to-tier hop over a raw TCP echo of the same bytes (issue 13, point 2).

A hop is one stage request to a remote identity part, sent through the engine's own
transport objects (:class:`edgesplit.runtime.wireclient.WireStageTransport`, the default,
and :class:`edgesplit.runtime.engine.HTTPStageTransport`, ``POST /v1/stage``): the payload
goes out, the same payload comes back, with encoding, decoding, the stage request's checks
and the bearer token included, codec ``none``. The identity part is one node of
:class:`Ladder`, ``narrow(t, 1, 0, full)`` (a view: no compute), whose input and output
carry exactly 4 KiB, 100 KiB, 1 MiB or 10 MiB of float32; it runs on a real
``edgesplit serve`` process on loopback. The baseline is a raw TCP echo of the same bytes
(another process), in the same run; the three are interleaved (one hop of each per round,
order rotated), each over one persistent connection.

Goals (issue 13): the WebSocket transport <= 0.3 ms median extra at <= 100 KB, and
<= 2x raw at >= 1 MB; HTTP is reported beside it. Output: results/bench/runtime_hop.json,
with p50 and p90 per candidate and size, the extra median over raw, the ratio, and each
goal's pass/fail.

``--candidates`` measures instead how the transport was chosen: an echo of the same
header and payload over websockets' own asyncio server, Starlette's WebSocket on uvicorn
and a grpcio bidirectional stream, each server in its own process handing the payload to
a worker thread and back, against the same raw echo; results/bench/runtime_hop_candidates.json.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save

TOKEN = "bench-token"
MODEL = "bench_runtime_hop:Ladder"
#: float32 element counts: 10 MiB, 1 MiB, 100 KiB, 4 KiB.
SIZES = {"10MB": 2_621_440, "1MB": 262_144, "100KB": 25_600, "4KB": 1_024}
GOAL_EXTRA_MS, GOAL_RATIO = 0.3, 2.0


class Ladder(nn.Module):
    """Four identity nodes (full-width views), one per payload size, with narrower views
    between them: the node of size S reads and writes exactly S bytes, computing nothing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x
        for numel in SIZES.values():
            t = torch.narrow(t, 1, 0, numel)  # to this size (a view)
            t = torch.narrow(t, 1, 0, numel)  # the identity node of this size
        return t


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _connect(port: int, timeout_s: float = 60.0) -> socket.socket:
    """A TCP connection to a child process's port, once it listens."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port))
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def echo_server(port: int) -> None:
    """The baseline's far end: returns every byte it receives, in its own process."""
    with socket.create_server(("127.0.0.1", port)) as srv:
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = bytearray(1 << 20)
        while n := conn.recv_into(buf):
            conn.sendall(memoryview(buf)[:n])


class RawEcho:
    """Send ``payload`` and read it back, both at once (a large payload fills the buffers)."""

    def __init__(self, port: int) -> None:
        self.sock = _connect(port)
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


# ------------------------------------------------- candidates (how the transport was chosen)
# Each candidate echoes a JSON header and one binary message per tensor, handing the
# payload to a worker thread and back (as a server must: work never runs on its loop).
CANDIDATES = ("websockets", "starlette", "grpc")


def candidate_server(kind: str, port: int) -> None:
    """One candidate's echo server, in its own process, on 127.0.0.1:``port``."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(2)
    if kind == "grpc":
        import grpc

        def stream(requests: Any, context: Any) -> Any:
            for header in requests:
                frame = next(requests)
                yield header
                yield pool.submit(bytes, frame).result()

        opts = [
            ("grpc.max_receive_message_length", 1 << 28),
            ("grpc.max_send_message_length", 1 << 28),
        ]
        server = grpc.server(pool, options=opts)
        handler = grpc.stream_stream_rpc_method_handler(stream)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("edgesplit.Hop", {"Stream": handler}),)
        )
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        server.wait_for_termination()
        return

    async def echo(recv: Any, send_text: Any, send_bytes: Any) -> None:
        loop = asyncio.get_running_loop()
        while True:
            header = await recv()
            frame = await recv()
            frame = await loop.run_in_executor(pool, bytes, frame)
            await send_text(header)
            await send_bytes(frame)

    if kind == "websockets":
        from websockets.asyncio.server import serve

        async def session(ws: Any) -> None:
            sock = ws.transport.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with contextlib.suppress(Exception):
                await echo(ws.recv, ws.send, ws.send)

        async def main() -> None:
            async with serve(session, "127.0.0.1", port, max_size=1 << 28, compression=None):
                await asyncio.Future()

        from edgesplit.runtime.binwire import new_event_loop

        new_event_loop().run_until_complete(main())  # uvloop where installed, as binwire
        return
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute

    async def route(ws: Any) -> None:
        await ws.accept()

        async def recv() -> Any:
            msg = await ws.receive()
            return msg.get("text") if msg.get("text") is not None else msg.get("bytes")

        with contextlib.suppress(Exception):
            await echo(recv, ws.send_text, ws.send_bytes)

    app = Starlette(routes=[WebSocketRoute("/", route)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws_max_size=1 << 28)


class CandidateClient:
    """The client end of one candidate: ``hop(header, payload)`` returns the echoed bytes."""

    def __init__(self, kind: str, port: int) -> None:
        self.kind = kind
        _connect(port).close()  # its server listens
        self._open(port)

    def _open(self, port: int) -> None:
        if self.kind == "grpc":
            import queue

            import grpc

            opts = [
                ("grpc.max_receive_message_length", 1 << 28),
                ("grpc.max_send_message_length", 1 << 28),
            ]
            self.channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=opts)
            grpc.channel_ready_future(self.channel).result(timeout=60)
            self.out: Any = queue.Queue()
            call = self.channel.stream_stream("/edgesplit.Hop/Stream")
            self.replies = call(iter(self.out.get, None))
            return
        from websockets.sync.client import connect

        self.ws = connect(f"ws://127.0.0.1:{port}/", max_size=1 << 28, compression=None,
                          proxy=None, legacy=True)  # fmt: skip

    def hop(self, header: str, payload: memoryview) -> bytes:
        if self.kind == "grpc":
            self.out.put(header.encode())
            self.out.put(bytes(payload))  # grpcio's raw-bytes messages take bytes only
            next(self.replies)
            return bytes(next(self.replies))
        self.ws.send(header)
        self.ws.send(payload)
        self.ws.recv()
        return bytes(self.ws.recv())

    def close(self) -> None:
        if self.kind == "grpc":
            self.out.put(None)
            self.channel.close()
        else:
            self.ws.close()


def candidates(repeats: int) -> dict[str, Any]:
    """Echo round trips of every candidate against the raw TCP echo, interleaved."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    ports = {kind: _free_port() for kind in (*CANDIDATES, "raw")}
    procs = [ctx.Process(target=echo_server, args=(ports["raw"],), daemon=True)]
    procs += [
        ctx.Process(target=candidate_server, args=(k, ports[k]), daemon=True) for k in CANDIDATES
    ]
    for proc in procs:
        proc.start()
    rows = []
    try:
        time.sleep(1.0)
        raw = RawEcho(ports["raw"])
        clients = {kind: CandidateClient(kind, ports[kind]) for kind in CANDIDATES}
        header = '{"id": 1, "tensors": [{"name": "x", "dtype": "float32", "shape": [1, 1]}]}'
        for label, numel in SIZES.items():
            payload = memoryview(torch.randn(1, numel).numpy()).cast("B")
            into = memoryview(bytearray(len(payload)))
            hops: dict[str, Callable[[], Any]] = {"raw": lambda p=payload, i=into: raw.hop(p, i)}
            for kind, client in clients.items():
                assert client.hop(header, payload) == bytes(payload), kind
                hops[kind] = lambda c=client, p=payload: c.hop(header, p)
            rows.append({"size": label, **_interleaved(hops, _repeats(repeats, numel))})
        for client in clients.values():
            client.close()
    finally:
        for proc in procs:
            proc.kill()
    return {"rows": rows}


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"p50_ms": statistics.median(ordered) * 1e3, "p90_ms": p90 * 1e3}


def _repeats(repeats: int, numel: int) -> int:
    return max(5, repeats // 10) if numel >= SIZES["10MB"] else repeats


def _interleaved(hops: dict[str, Callable[[], Any]], n_rep: int) -> dict[str, Any]:
    """p50/p90 of each hop (one of each per round, order rotated), extra and ratio to raw."""
    samples: dict[str, list[float]] = {key: [] for key in hops}
    keys = list(hops)
    for r in range(n_rep):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            t0 = time.perf_counter()
            hops[key]()
            samples[key].append(time.perf_counter() - t0)
    stats = {key: _stats(v) for key, v in samples.items()}
    base = stats["raw"]["p50_ms"]
    row: dict[str, Any] = {"repeats": n_rep}
    for key, st in stats.items():
        row[key] = {**st, "extra_p50_ms": st["p50_ms"] - base, "x_raw": st["p50_ms"] / base}
    return row


def _print(row: dict[str, Any]) -> None:
    print(
        f"{row['size']:>6}: raw {row['raw']['p50_ms']:7.3f} ms | "
        + " | ".join(
            f"{key} {st['p50_ms']:7.3f} (+{st['extra_p50_ms']:6.3f}, "
            f"{st['x_raw']:5.1f}x, p90 {st['p90_ms']:7.3f})"
            for key, st in row.items()
            if isinstance(st, dict) and key != "raw"
        ),
        flush=True,
    )


def _goals(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, dict[str, bool]]:
    small = [r for r in rows if SIZES[r["size"]] * 4 <= 100 * 1024]
    large = [r for r in rows if SIZES[r["size"]] * 4 >= 1024 * 1024]
    return {
        key: {
            f"extra_le_{GOAL_EXTRA_MS}ms_at_le_100KB": all(
                r[key]["extra_p50_ms"] <= GOAL_EXTRA_MS for r in small
            ),
            f"le_{GOAL_RATIO:g}x_raw_at_ge_1MB": all(r[key]["x_raw"] <= GOAL_RATIO for r in large),
        }
        for key in keys
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few hops: proves it runs")
    parser.add_argument("--repeats", type=int, default=None, help="hops per candidate and size")
    parser.add_argument(
        "--candidates",
        action="store_true",
        help="instead: echo round trips of websockets, starlette WS and grpcio streaming "
        "(the transport choice), written to runtime_hop_candidates.json",
    )
    args = parser.parse_args(argv)
    repeats = args.repeats or (20 if args.quick else 400)
    if args.candidates:
        doc = candidates(repeats)
        for row in doc["rows"]:
            _print(row)
        goals = _goals(doc["rows"], CANDIDATES)
        print(f"goals: {goals}")
        save(
            "runtime_hop_candidates",
            {
                "what": "echo of a JSON header and one binary message (the payload) per "
                "round trip, the payload handed to a worker thread on the server, each "
                "candidate over one persistent connection to its own process",
                "baseline": "raw TCP echo of the same bytes both ways, same run, interleaved",
                "quick": bool(args.quick),
                **doc,
                "goals": goals,
            },
        )
        return 0

    import multiprocessing as mp

    from edgesplit.commands.common import model_request
    from edgesplit.runtime.engine import HTTPStageTransport, StageRequest
    from edgesplit.runtime.server import ServerProcess
    from edgesplit.runtime.stages import build_stages
    from edgesplit.runtime.store import ModelStore
    from edgesplit.runtime.wireclient import WireStageTransport

    torch.set_num_threads(1)
    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])
    shape = f"1,{SIZES['10MB']}"
    store = ModelStore((model_request(MODEL, None, shape, None, None, None),))
    graph = store.model(MODEL).graph
    fingerprint = store.fingerprint(MODEL)
    echo_port = _free_port()
    echo = mp.get_context("spawn").Process(target=echo_server, args=(echo_port,), daemon=True)
    echo.start()
    server = ServerProcess(
        (MODEL,), args=("--input-shape", shape, "--token", TOKEN, "--threads", "1")
    ).start()
    rows = []
    try:
        time.sleep(0.5)
        raw = RawEcho(echo_port)
        ws = WireStageTransport("device", "edge", server.url, TOKEN, timeout_s=120)
        http = HTTPStageTransport("device", "edge", server.url, TOKEN, timeout_s=120)
        for k, (label, numel) in enumerate(SIZES.items()):
            node = graph.nodes[2 * k + 1]  # the identity node of this size
            assignment = [1 if n is node else 0 for n in graph.nodes]
            stages = build_stages(graph, ("device", "edge"), assignment)
            cursor = next(i for i, s in enumerate(stages.stages) if s.device == "edge")
            (name,) = stages[cursor].inputs
            stage = StageRequest(MODEL, ("device", "edge"), tuple(assignment), fingerprint,
                                 cursor, "edge", ("device",))  # fmt: skip
            x = torch.randn(1, numel)
            payload = memoryview(x.numpy()).cast("B")
            into = memoryview(bytearray(x.nbytes))
            hops: dict[str, Callable[[], Any]] = {
                "raw": lambda p=payload, i=into: raw.hop(p, i),
                "ws": lambda s=stage, t={name: x}: ws.send(s, t),
                "http": lambda s=stage, t={name: x}: http.send(s, t),
            }
            for key, hop in hops.items():  # warm up, and check that every path echoes exactly
                reply = hop()
                if key == "raw":
                    assert bytes(into) == bytes(payload)
                else:
                    (back,) = reply.tensors.values()
                    assert torch.equal(back, x) and reply.hop.get("transport", key) == key, key
            row = {"size": label, "bytes": x.nbytes, **_interleaved(hops, _repeats(repeats, numel))}
            rows.append(row)
            _print(row)
        ws.close()
        http.close()
    finally:
        server.kill()
        echo.kill()
    goals = _goals(rows, ("ws", "http"))
    for key, goal in goals.items():
        print(f"goals {key}: {goal}")
    save(
        "runtime_hop",
        {
            "what": "one stage request to a remote identity part (edgesplit serve on loopback) "
            "through the engine's transport objects: payload out, same back, encode + decode "
            "+ checks + bearer token included, codec none; medians of interleaved hops",
            "baseline": "raw TCP echo of the same bytes both ways, separate process, same run",
            "goal": f"ws <= {GOAL_EXTRA_MS} ms median extra at <= 100 KB, "
            f"<= {GOAL_RATIO:g}x raw at >= 1 MB; http reported beside it",
            "quick": bool(args.quick),
            "rows": rows,
            "goals": goals,
            "pass": all(goals["ws"].values()),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
