"""The engine's WebSocket transport (runtime/binwire.py) between real servers on loopback.

Oracles: every output is ``torch.equal`` to the unsplit model (and to the same run over
HTTP); refusals are checked by their status and the field they name; the killed tier is a
real ``edgesplit serve`` process stopped with SIGKILL.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from edgesplit.plan.types import Plan
from edgesplit.runtime import binwire
from edgesplit.runtime.binwire import TensorSpec
from edgesplit.runtime.engine import Engine, StageRequest, engine_for
from edgesplit.runtime.server import BackgroundServer, ServerConfig, ServerProcess, create_app
from edgesplit.runtime.stages import build_stages
from edgesplit.runtime.store import ModelStore
from edgesplit.runtime.transport import ServerRejected
from edgesplit.runtime.wireclient import WireStageTransport
from edgesplit.system.topology import Topology

MODEL = "mnist_cnn"
DEVICES = ("device", "edge", "cloud")
TOKEN = "t0ken"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _topology(edge: str, cloud: str) -> Topology:
    link = {"bandwidth": "1gbit", "codecs": ["none", "zstd"]}
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


def _assignment(n: int) -> list[int]:
    """device → edge → cloud → edge → device, each run non-empty."""
    return [0 if i < 1 else 1 if i < 3 else 2 if i < 5 else 1 if i < 7 else 0 for i in range(n)]


@pytest.fixture(scope="module")
def tiers() -> Iterator[dict[str, Any]]:
    """Edge and cloud: real uvicorn + WebSocket servers on loopback; the edge relays."""
    store = ModelStore((MODEL,))
    ports = _free_port(), _free_port()
    topo = _topology(*(f"http://127.0.0.1:{p}" for p in ports))
    servers = [
        BackgroundServer(
            create_app(ServerConfig(models=(MODEL,), topology=topo, name=name, token=TOKEN), store),
            port=port,
        ).start()
        for name, port in zip(("edge", "cloud"), ports, strict=True)
    ]
    try:
        yield {"store": store, "topology": topo, "servers": servers}
    finally:
        for server in servers:
            server.stop()


def _stages(store: ModelStore, assignment: list[int]) -> Any:
    return build_stages(store.model(MODEL).graph, DEVICES, assignment)


def test_run_plan_over_websockets_relays_and_equals_local(cli, tiers, tmp_path) -> None:
    store = tiers["store"]
    graph = store.model(MODEL).graph
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(Plan(MODEL, "hand", DEVICES, tuple(_assignment(len(graph.nodes)))).to_dict())
    )
    topo = tmp_path / "topology.json"
    topo.write_text(json.dumps(tiers["topology"].model_dump(mode="json", exclude_none=True)))
    outs = {}
    for transport in ("ws", "http"):
        res = cli("run-plan", plan, "--topology", topo, "-n", "3", "--check", "--json",
                  "--token", TOKEN, "--transport", transport)  # fmt: skip
        assert res.code == 0, res.stderr
        doc = json.loads(res.stdout)
        assert doc["equal_to_local"] is True and doc["bitwise_expected"] is True
        hops = [h for r in doc["records"] for h in r["hops"]]
        # The device reaches the edge, and the edge relays to the cloud, each on `transport`.
        assert {(h["src"], h["dst"]) for h in hops} == {("device", "edge"), ("edge", "cloud")}
        assert {h.get("transport", "http") for h in hops} == {transport}
        for h in hops:
            assert h["transfer_s"] == pytest.approx(h["round_trip_s"] - h["remote_s"])
            assert 0 <= h["remote_s"] <= h["round_trip_s"]
        outs[transport] = doc["records"]
    # The same tensors cross either way: the wire bytes differ, the raw bytes do not.
    for a, b in zip(outs["ws"], outs["http"], strict=True):
        assert [h["sent_raw_bytes"] for h in a["hops"]] == [h["sent_raw_bytes"] for h in b["hops"]]


def test_a_wrong_token_is_refused_at_discovery_and_at_the_handshake(tiers) -> None:
    store = tiers["store"]
    edge = tiers["servers"][0]
    stages = _stages(store, _assignment(len(store.model(MODEL).graph.nodes)))
    hop = WireStageTransport("device", "edge", edge.url, token="wrong")
    stage = StageRequest(MODEL, DEVICES, stages.assignment, store.fingerprint(MODEL), 1, "edge",
                         ("device",))  # fmt: skip
    with pytest.raises(ServerRejected) as err:
        hop.send(stage, {})
    assert err.value.status == 401
    hop.close()
    # Straight to the WebSocket port: the handshake itself checks the token.
    port = edge.wire.port
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        with pytest.raises(InvalidStatus) as refused:
            connect(f"ws://127.0.0.1:{port}/", additional_headers=headers, proxy=None)
        assert refused.value.response.status_code == 401


def _direct(edge: BackgroundServer) -> Any:
    return connect(f"ws://127.0.0.1:{edge.wire.port}/", proxy=None, compression=None,
                   additional_headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip


def test_bad_headers_and_frames_are_answered_and_the_connection_keeps_serving(tiers) -> None:
    edge = tiers["servers"][0]
    with _direct(edge) as ws:
        ws.send("{not json")
        reply = json.loads(ws.recv(timeout=10))
        assert reply["ok"] is False and reply["status"] == 400 and "JSON" in reply["error"]
        # A frame shorter than its header entry: the field and both sizes are named.
        spec = {"name": "x", "dtype": "float32", "shape": [4]}
        ws.send(json.dumps({"id": 2, "stage": "{}", "tensors": [spec]}))
        ws.send(b"\0" * 12)
        reply = json.loads(ws.recv(timeout=10))
        assert reply["id"] == 2 and reply["status"] == 400 and "12 bytes" in reply["error"]
        ws.send(json.dumps({"id": 3, "tensors": [{"name": "x", "dtype": "complex64"}]}))
        reply = json.loads(ws.recv(timeout=10))
        assert reply["id"] == 3 and "tensors[0].dtype" in reply["error"]
    with pytest.raises(Exception, match="needs 16"):
        binwire.from_frame(TensorSpec("x", "float32", (4,)), b"\0" * 12)


def test_an_oversized_message_is_refused_with_an_answer() -> None:
    store = ModelStore((MODEL,))
    graph = store.model(MODEL).graph
    limit = 8192
    app = create_app(ServerConfig(models=(MODEL,), max_body_bytes=limit), store)
    stages = build_stages(graph, ("device", "edge"), [1] * len(graph.nodes))
    x = dict(zip(graph.input_names, store.model(MODEL).inputs, strict=True))
    stage = StageRequest(MODEL, ("device", "edge"), stages.assignment,
                         store.fingerprint(MODEL), 0, "edge", ("device",))  # fmt: skip
    with BackgroundServer(app) as server:
        hop = WireStageTransport("device", "edge", server.url)
        # The client knows the server's bound from /v1/wire and sends nothing over it.
        with pytest.raises(ServerRejected) as err:
            hop.send(stage, {graph.input_names[0]: torch.zeros(limit)})
        assert err.value.status == 413 and "--max-body" in str(err.value)
        # The server answers a header declaring too much with 413 and skips its frame...
        with _direct(server) as ws:
            spec = {"name": "x", "dtype": "float32", "shape": [limit]}
            ws.send(json.dumps({"id": 1, "stage": stage.to_json(), "tensors": [spec]}))
            ws.send(bytes(4 * limit))
            reply = json.loads(ws.recv(timeout=10))
            assert reply["status"] == 413 and "--max-body" in reply["error"]
            ws.send("[]")  # ... and keeps serving: the next header gets its own answer.
            assert json.loads(ws.recv(timeout=10))["status"] == 400
            # A message past the library's bound (--max-body plus the header's) closes it.
            ws.send(bytes(limit + binwire.MAX_HEADER_BYTES + 1))
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        # Within the bound, the transport answers exactly.
        reply = hop.send(stage, x)
        assert reply.hop["transport"] == "ws" and reply.cursor == len(stages)
        with torch.inference_mode():
            ref = graph.module(*x.values())
        assert torch.equal(reply.tensors[graph.output_names[0]], ref)
        hop.close()


@pytest.mark.slow
def test_a_killed_server_fails_over_and_offloading_resumes_on_a_new_connection() -> None:
    """SIGKILL a real `edgesplit serve`: HopFailed, the row finishes locally, marked."""
    store = ModelStore((MODEL,))
    graph = store.model(MODEL).graph
    server = ServerProcess((MODEL,), args=("--threads", str(torch.get_num_threads()))).start()
    try:
        topo = Topology.model_validate(
            {
                "devices": [
                    {"name": "device", "url": "local"},
                    {"name": "edge", "url": server.url},
                ],
                "links": [{"a": "device", "b": "edge", "bandwidth": "1gbit"}],
            }
        )
        n = len(graph.nodes)
        stages = build_stages(graph, ("device", "edge"), [0] * 2 + [1] * (n - 2))
        engine: Engine = engine_for(stages, MODEL, store.fingerprint(MODEL), topo)
        engine.probe_every_s = 0.0
        x = store.model(MODEL).inputs
        with torch.inference_mode():
            ref = graph.module(*x)
        outs, rec = engine.infer(x)
        assert torch.equal(outs[graph.output_names[0]], ref) and not rec["failover"]
        assert [h["transport"] for h in rec["hops"]] == ["ws"]
        # Killed and restarted between requests: the pooled connection the kill closed is
        # dropped, and the next request opens one to the new WebSocket port.
        server.kill()
        server.start()
        outs, rec = engine.infer(x)
        assert torch.equal(outs[graph.output_names[0]], ref) and not rec["failover"]
        # Killed before a request: HopFailed, the request finishes here, marked.
        server.kill()
        outs, rec = engine.infer(x)
        assert torch.equal(outs[graph.output_names[0]], ref)
        assert rec["failover"] and rec["failed_device"] == "edge" and rec["hops"] == []
        server.start()  # same HTTP port; the WebSocket port is asked for again
        outs, rec = engine.infer(x)
        assert torch.equal(outs[graph.output_names[0]], ref) and not rec["failover"]
        assert [h["transport"] for h in rec["hops"]] == ["ws"]
        engine.close()
    finally:
        server.kill()


def test_a_server_without_the_websocket_port_is_reached_over_http() -> None:
    """An app no one started the WebSocket server of (Ray Serve, say): /v1/wire is 503."""
    store = ModelStore((MODEL,))
    graph = store.model(MODEL).graph
    app = create_app(ServerConfig(models=(MODEL,)), store)
    app.state.wire, wire = None, app.state.wire  # BackgroundServer then starts none
    stages = build_stages(graph, ("device", "edge"), [1] * len(graph.nodes))
    x = store.model(MODEL).inputs
    with BackgroundServer(app) as server:
        assert wire.port is None
        hop = WireStageTransport("device", "edge", server.url)
        stage = StageRequest(MODEL, ("device", "edge"), stages.assignment,
                             store.fingerprint(MODEL), 0, "edge", ("device",))  # fmt: skip
        reply = hop.send(stage, dict(zip(graph.input_names, x, strict=True)))
        assert reply.hop["transport"] == "http"
        with torch.inference_mode():
            assert torch.equal(reply.tensors[graph.output_names[0]], graph.module(*x))
        hop.close()


def test_an_unknown_transport_is_one_line(cli, assert_input_error, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    n = len(ModelStore((MODEL,)).model(MODEL).graph.nodes)
    plan.write_text(json.dumps(Plan(MODEL, "hand", ("device",), tuple([0] * n)).to_dict()))
    assert_input_error(cli("run-plan", plan, "--transport", "zmq"), "--transport", "ws")


def test_large_tensors_go_in_fragments_both_ways_and_stay_exact(tiers) -> None:
    """A batch of 128: the input (400 KB) and the reply (737 KB) exceed one fragment."""
    store = tiers["store"]
    graph = store.model(MODEL).graph
    cloud = tiers["servers"][1]
    n = len(graph.nodes)
    stages = build_stages(graph, ("cloud", "device"), [0] * 2 + [1] * (n - 2))
    (x,) = store.model(MODEL).inputs
    big = {graph.input_names[0]: torch.randn(128, *x.shape[1:])}
    assert big[graph.input_names[0]].nbytes > binwire.FRAGMENT
    stage = StageRequest(MODEL, ("cloud", "device"), stages.assignment,
                         store.fingerprint(MODEL), 0, "cloud", ("device",))  # fmt: skip
    hop = WireStageTransport("device", "cloud", cloud.url, TOKEN)
    reply = hop.send(stage, big)
    hop.close()
    with torch.inference_mode():
        ref = store.run_stage(stages, 0, big)
    assert reply.hop["transport"] == "ws" and reply.cursor == 1
    assert reply.hop["reply_raw_bytes"] > 2 * binwire.FRAGMENT
    assert set(reply.tensors) == set(ref)
    assert all(torch.equal(reply.tensors[k], ref[k]) for k in ref)
