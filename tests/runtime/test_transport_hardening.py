"""Issue 14 points 6–7 on the engine's parts: the WebSocket transport, the relay, logs.

Real servers on loopback (port 0), the real ``websockets`` client, real torch parts.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import torch
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from edgesplit.errors import InputError
from edgesplit.runtime import binwire, records
from edgesplit.runtime.decode import SESSION_HEADER
from edgesplit.runtime.engine import (
    Engine,
    HopFailed,
    HTTPStageTransport,
    Log,
    StageReply,
    StageRequest,
    check_stack,
    walk,
)
from edgesplit.runtime.loop import RetryingHop
from edgesplit.runtime.server import BackgroundServer, ServerConfig, create_app
from edgesplit.runtime.stages import build_stages, fingerprint

MODEL = "mnist_cnn"


def dead_url() -> str:
    """A loopback URL nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture(scope="module")
def server(store) -> Iterator[BackgroundServer]:  # type: ignore[no-untyped-def]
    with BackgroundServer(create_app(ServerConfig(models=(MODEL,)), store)) as live:
        yield live


def direct(live: BackgroundServer) -> Any:
    assert live.wire is not None
    return connect(f"ws://127.0.0.1:{live.wire.port}/", proxy=None, compression=None)


def stage_request(store: Any, stack: tuple[str, ...] = ("device",), to: str = "edge") -> Any:
    graph = store.model(MODEL).graph
    stages = build_stages(graph, ("device", "edge"), [1] * len(graph.nodes))
    return StageRequest(
        MODEL, ("device", "edge"), stages.assignment, fingerprint(graph), 0, to, stack
    )


def test_a_failover_row_records_the_retries_that_all_failed(store) -> None:  # type: ignore[no-untyped-def]
    graph = store.model(MODEL).graph
    stages = build_stages(graph, ("edge", "cloud"), [0] * 3 + [1] * (len(graph.nodes) - 3))
    hop = RetryingHop(HTTPStageTransport("edge", "cloud", dead_url(), timeout_s=5), 2, 0.0)
    engine = Engine(stages, MODEL, fingerprint(graph), "edge", frozenset({"edge"}), {"cloud": hop})
    x = torch.randn(1, 1, 28, 28)
    outs, record = engine.infer([x])
    engine.close()
    with torch.inference_mode():
        assert torch.equal(outs[graph.output_names[0]], graph.module(x))
    assert record["failover"] and record["failed_device"] == "cloud"
    assert record["failover_retries"] == 2
    assert records.flatten({"id": 0, **record})["retries"] == 2


def test_malformed_headers_get_the_one_error_shape_and_the_connection_serves_on(
    server, store
) -> None:  # type: ignore[no-untyped-def]
    graph = store.model(MODEL).graph
    with direct(server) as ws:
        # Too many entries is refused by a count of '{' before any JSON parse.
        ws.send(json.dumps({"id": 1, "tensors": [{}] * (binwire.MAX_TENSORS + 65)}))
        reply = json.loads(ws.recv(timeout=10))
        assert (reply["status"], reply["field"]) == (400, "tensors") and not reply["ok"]
        ws.send("[1, 2")
        reply = json.loads(ws.recv(timeout=10))
        assert reply["status"] == 400 and set(reply) >= {"error", "field"}
        ws.send(json.dumps({"id": 3, "tensors": [{"name": "x", "dtype": "f4", "shape": [1]}]}))
        reply = json.loads(ws.recv(timeout=10))
        assert (reply["id"], reply["status"], reply["field"]) == (3, 400, "tensors[0].dtype")
        shape = [1, 2**62, 2**62]  # a product past 2^63 is 413, not an overflow
        ws.send(
            json.dumps({"id": 4, "tensors": [{"name": "x", "dtype": "float32", "shape": shape}]})
        )
        reply = json.loads(ws.recv(timeout=10))
        assert (reply["status"], reply["field"]) == (413, "tensors[0].shape")
        # A frame bigger than its entry is refused on arrival; the request's later frames
        # are skipped, so frames held never exceed the header's declared total.
        two = [{"name": n, "dtype": "float32", "shape": [1]} for n in ("a", "b")]
        ws.send(json.dumps({"id": 5, "stage": "{}", "tensors": two}))
        ws.send(bytes(1 << 20))
        ws.send(bytes(1 << 20))
        reply = json.loads(ws.recv(timeout=10))
        assert (reply["id"], reply["status"], reply["field"]) == (5, 400, "tensors[0].shape")
        # The same connection still answers a good request exactly.
        x = torch.randn(1, 1, 28, 28)
        spec = {"name": graph.input_names[0], "dtype": "float32", "shape": list(x.shape)}
        ws.send(json.dumps({"id": 6, "stage": stage_request(store).to_json(), "tensors": [spec]}))
        ws.send(x.numpy().tobytes())
        reply = json.loads(ws.recv(timeout=30))
        assert reply["ok"] and reply["id"] == 6
        (out,) = reply["tensors"]
        y = torch.frombuffer(bytearray(ws.recv(timeout=30)), dtype=torch.float32)
        with torch.inference_mode():
            assert torch.equal(y.reshape(out["shape"]), graph.module(x))


def test_a_relay_stack_that_loops_or_outgrows_the_devices_is_refused(server, store) -> None:  # type: ignore[no-untyped-def]
    check_stack(stage_request(store), None)  # device -> edge: fine
    for stack, to in [(("device", "device"), "edge"), (("edge",), "edge"), (("a", "b"), "edge")]:
        with pytest.raises(InputError, match="field 'stack'"):
            check_stack(stage_request(store, stack, to), None)
    bad = stage_request(store, ("edge", "device"), "edge")
    with direct(server) as ws:
        ws.send(json.dumps({"id": 9, "stage": bad.to_json(), "tensors": []}))
        reply = json.loads(ws.recv(timeout=10))
        assert (reply["status"], reply["field"]) == (400, "stack") and "loops" in reply["error"]


def test_trickling_frames_get_408_and_a_close_freeing_the_slot(server, store) -> None:  # type: ignore[no-untyped-def]
    wire = server.wire
    assert wire is not None
    before, wire.frame_timeout_s = wire.frame_timeout_s, 0.5
    try:
        with direct(server) as ws:
            spec = {"name": "x", "dtype": "float32", "shape": [4]}
            ws.send(
                json.dumps({"id": 7, "stage": stage_request(store).to_json(), "tensors": [spec]})
            )
            reply = json.loads(ws.recv(timeout=10))  # no frame comes
            assert (reply["id"], reply["status"], reply["field"]) == (7, 408, "tensors")
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        deadline = time.monotonic() + 10
        while wire._connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert wire._connections == 0  # the slot is free again
    finally:
        wire.frame_timeout_s = before


def test_an_aborted_upload_logs_one_line_without_a_traceback(server, store, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO)
    specs = [{"name": n, "dtype": "float32", "shape": [4]} for n in ("a", "b")]
    with direct(server) as ws:
        ws.send(json.dumps({"id": 1, "stage": stage_request(store).to_json(), "tensors": specs}))
        ws.send(bytes(16))  # one frame of two, then the client leaves
    deadline = time.monotonic() + 10
    while not [r for r in caplog.records if "mid-request" in r.getMessage()]:
        assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
        time.sleep(0.05)
    time.sleep(0.2)
    wire_lines = [r for r in caplog.records if r.name.startswith(("edgesplit", "websockets"))]
    assert len([r for r in wire_lines if r.levelno >= logging.WARNING]) == 1
    assert all(r.exc_info is None for r in caplog.records)


def test_an_aborted_http_upload_logs_one_line_without_a_traceback(server, caplog) -> None:  # type: ignore[no-untyped-def]
    uvicorn_log = logging.getLogger("uvicorn")  # uvicorn's loggers do not reach the root
    uvicorn_log.addHandler(caplog.handler)
    caplog.set_level(logging.INFO)
    try:
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            head = "POST /v1/stage HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
            s.sendall(f"{head}Content-Type: application/octet-stream\r\n\r\n".encode())
            s.sendall(bytes(1000))  # then the client leaves mid-body
        deadline = time.monotonic() + 10
        while not [r for r in caplog.records if "mid-upload" in r.getMessage()]:
            assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        uvicorn_log.removeHandler(caplog.handler)
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
    assert all(r.exc_info is None for r in caplog.records)


class Backwards:
    """A next hop that answers a stage before the one it was sent (a relay that loops)."""

    dst = "edge"

    def send(self, stage: StageRequest, tensors: Any) -> StageReply:
        return StageReply({}, stage.cursor - 1, {}, {"src": "device", "dst": "edge"})

    def unreachable(self) -> None:
        return None

    def close(self) -> None:
        return None


def test_a_next_hop_that_sends_the_walk_backwards_is_a_failed_hop(store) -> None:  # type: ignore[no-untyped-def]
    graph = store.model(MODEL).graph
    stages = build_stages(graph, ("device", "edge"), [0] * 3 + [1] * (len(graph.nodes) - 3))
    request = StageRequest(
        MODEL, stages.devices, stages.assignment, fingerprint(graph), 0, "device", ()
    )
    have = dict(zip(graph.input_names, [torch.randn(1, 1, 28, 28)], strict=True))

    def run(i: int, values: Any) -> Any:
        with torch.inference_mode():
            return stages[i].part(values)

    with pytest.raises(HopFailed, match="answered stage 0 from 1") as err:
        walk(stages, request, frozenset({"device"}), have, {"edge": Backwards()}, run, Log())
    assert err.value.device == "edge"


def test_a_decode_step_for_an_unknown_session_is_404_in_the_one_shape(server) -> None:  # type: ignore[no-untyped-def]
    resp = httpx.post(
        f"{server.url}/v1/decode/step",
        headers={SESSION_HEADER: "not-a-session"},
        content=b"x",
        timeout=10,
    )
    assert resp.status_code == 404
    assert resp.json() == {
        "error": "unknown or expired decode session; open a new one",
        "field": SESSION_HEADER,
    }
