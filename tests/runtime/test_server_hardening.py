"""Issue 14 points 1-4 on the real server: every bad input a 4xx in one JSON shape, no stall,
rejected requests cache nothing, slow uploads get 408 and hold no slot, a 500 stays JSON."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import torch

from edgesplit.runtime import wire
from edgesplit.runtime.server import BackgroundServer, ServerConfig, create_app
from edgesplit.runtime.store import MAX_SHAPE_GROWTH, ModelStore

MODEL = "mnist_cnn"


def _st(entries: dict[str, object], data: bytes = b"") -> bytes:
    """A safetensors document written by hand, so that its header can be anything."""
    header = json.dumps(entries).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + data


def _one(dtype: str, shape: list[int], offsets: list[int], data: bytes) -> bytes:
    return _st({"x": {"dtype": dtype, "shape": shape, "data_offsets": offsets}}, data)


def _offload(**fields: object) -> bytes:
    data = {"tensor": "AAAA", "splitting_point": 3, "model": MODEL, **fields}
    return json.dumps({"input_data": data}).encode()


#: The 13 inputs the issue found answered 500, each with the endpoint it was sent to.
THIRTEEN: list[tuple[str, dict[str, object], bytes]] = [
    ("/v1/infer", {"model": MODEL, "cut": 3}, _one("F4", [2], [0, 1], b"\x00")),
    ("/v1/infer", {"model": MODEL, "cut": 3}, _one("F6_E2M3", [1], [0, 1], b"\x00")),
    ("/v1/infer", {"model": MODEL, "cut": 3}, _one("F8_E8M0", [1], [0, 1], b"\x00")),
    ("/v1/infer", {"model": MODEL, "cut": 3}, _one("F32", [0, 2**63], [0, 0], b"")),
    ("/offload", {}, _offload(end="abc")),
    ("/offload", {}, _offload(end=[1])),
    ("/offload", {}, _offload(end=float("inf"))),  # json.dumps writes Infinity
    ("/offload", {}, _offload().replace(b'"splitting_point": 3', b'"splitting_point": 1e400')),
    ("/offload", {}, _offload(shape=5)),
    ("/offload", {}, _offload(shape=["a"])),
    ("/offload", {}, _offload(shape=[1]).replace(b"[1]", b"[1e400]")),
    ("/offload", {}, b"[" * 100_000),
    ("/v1/infer", {"model": MODEL, "cut": 3}, b"[" * 100_000),
]


@pytest.fixture(scope="module")
def store() -> ModelStore:
    return ModelStore((MODEL,))


@pytest.fixture(scope="module")
def server(store: ModelStore) -> Iterator[BackgroundServer]:
    config = ServerConfig(models=(MODEL,), max_body_bytes=32 << 20, body_timeout_s=1.0)
    with BackgroundServer(create_app(config, store=store)) as live:
        yield live


def _is_error(resp: httpx.Response, status: int | None = None) -> None:
    assert 400 <= resp.status_code < 500, resp.text
    if status is not None:
        assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error", "field"} and body["error"] and body["field"], body


@pytest.mark.parametrize(("path", "params", "body"), THIRTEEN, ids=[str(i) for i in range(13)])
def test_the_thirteen_inputs_get_4xx_in_one_shape(server, path, params, body) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=server.url) as c:  # one keep-alive connection for both
        _is_error(c.post(path, params=params, content=body))
        assert c.get("/healthz").json() == {"status": "ok"}


def test_unknown_model_and_bad_parameters_name_their_field(server) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=server.url) as c:
        nope = c.post("/v1/part", params={"model": "nope"}, content=b"")
        _is_error(nope, 404)
        assert "'nope'" in nope.json()["error"] and nope.json()["field"] == "model"
        _is_error(c.post("/v1/infer", params={"model": "nope", "cut": 1}, content=b""), 404)
        bad_cut = c.post("/v1/infer", params={"model": MODEL, "cut": "abc"}, content=b"")
        _is_error(bad_cut, 422)
        assert bad_cut.json()["field"] == "cut"
        out_of_range = c.post("/v1/infer", params={"model": MODEL, "cut": 99}, content=b"")
        assert out_of_range.json()["field"] == "cut"
        _is_error(c.get("/no/such/route"), 404)
        assert c.post("/offload", content=_offload(end="abc")).json()["field"] == "end"
        for odd in ("--5", "\u00b2", "9" * 40):  # never an int() failure or a huge int
            _is_error(c.post("/offload", content=_offload(end=odd)), 422)
            params = {"model": MODEL, "assignment": odd, "part": 0}
            _is_error(c.post("/v1/part", params=params, content=b""), 422)


def _healthz_max_while(server: BackgroundServer, attack) -> float:  # type: ignore[no-untyped-def]
    """The slowest /healthz answer (seconds) seen while ``attack()`` runs in a thread."""
    done = threading.Event()
    result: dict[str, httpx.Response] = {}

    def run() -> None:
        result["r"] = attack()
        done.set()

    th = threading.Thread(target=run)
    th.start()
    worst = 0.0
    with httpx.Client(base_url=server.url, timeout=30) as c:
        while not done.is_set():
            t0 = time.perf_counter()
            assert c.get("/healthz").status_code == 200
            worst = max(worst, time.perf_counter() - t0)
            time.sleep(0.005)
    th.join()
    _is_error(result["r"])
    return worst


def test_stall_attacks_are_refused_and_healthz_keeps_answering(server, store) -> None:  # type: ignore[no-untyped-def]
    n = len(store.model(MODEL).graph.nodes)
    huge = ",".join(["0"] * (n - 1) + ["10000"])  # the 80-byte stall
    header = {
        f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(200_000)
    }
    bomb = _st(header)
    assert len(bomb) > 10_000_000
    cases = [
        lambda: httpx.post(
            server.url + "/v1/part",
            params={"model": MODEL, "assignment": huge, "part": 0},
            content=b"",
        ),
        lambda: httpx.post(
            server.url + "/v1/infer", params={"model": MODEL, "cut": 3}, content=bomb, timeout=30
        ),
        lambda: httpx.post(server.url + "/v1/stage", content=bomb, timeout=30),
    ]
    for attack in cases:
        # A sanity bound only: the 50 ms figure is measured by the hardening benchmark.
        assert _healthz_max_while(server, attack) < 1.0


def test_rejected_requests_leave_nothing_in_the_parts_cache(server, store) -> None:  # type: ignore[no-untyped-def]
    n = len(store.model(MODEL).graph.nodes)
    before = store.parts.info()["entries"]
    body = wire.encode_tensors({"x": torch.zeros(2)})
    with httpx.Client(base_url=server.url) as c:
        for i in range(40):
            assignment = ",".join(["0"] * (n - 1) + [str(n + i)])  # a part id past the nodes
            _is_error(
                c.post(
                    "/v1/part",
                    params={"model": MODEL, "assignment": assignment, "part": 0},
                    content=body,
                ),
                422,
            )
            short = ",".join(["0"] * (i % (n - 1) + 1))
            _is_error(
                c.post(
                    "/v1/part",
                    params={"model": MODEL, "assignment": short, "part": 0},
                    content=body,
                ),
                422,
            )
            _is_error(
                c.post("/v1/infer", params={"model": MODEL, "cut": n + 1 + i}, content=body), 422
            )
            _is_error(
                c.post(
                    "/v1/part",
                    params={"model": MODEL, "assignment": "0," * (n - 1) + "0", "part": 5},
                    content=body,
                ),
                422,
            )
    assert store.parts.info()["entries"] == before


def test_huge_input_shapes_are_refused_before_any_retrace(server, store) -> None:  # type: ignore[no-untyped-def]
    graph = store.model(MODEL).graph
    (name,) = [t.name for t in graph.cut(3).tensors]
    shapes = {graph.input_names[0]: [100_000, *graph.tensor(graph.input_names[0]).shape[1:]]}
    body = wire.encode_tensors(
        {name: torch.zeros(graph.tensor(name).shape)}, {"input_shapes": json.dumps(shapes)}
    )
    before = store.shapes_cached(MODEL)
    resp = httpx.post(server.url + "/v1/infer", params={"model": MODEL, "cut": 3}, content=body)
    _is_error(resp, 422)
    assert f"{MAX_SHAPE_GROWTH} times" in resp.json()["error"]
    assert store.shapes_cached(MODEL) == before


def _raw_slow_upload(server: BackgroundServer) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=10)
    sock.sendall(
        f"POST /v1/infer?model={MODEL}&cut=3 HTTP/1.1\r\nHost: x\r\n"
        "Content-Length: 1000\r\n\r\n".encode()
        + b"ab"
    )
    return sock


def test_slow_upload_gets_408_and_holds_no_slot(store) -> None:  # type: ignore[no-untyped-def]
    config = ServerConfig(models=(MODEL,), max_concurrency=1, max_queue=0, body_timeout_s=1.5)
    graph = store.model(MODEL).graph
    (name,) = [t.name for t in graph.cut(3).tensors]
    tensor = torch.zeros(graph.tensor(name).shape)
    body = wire.encode_tensors({name: tensor})
    with BackgroundServer(create_app(config, store=store)) as live:
        slow = [_raw_slow_upload(live) for _ in range(3)]
        time.sleep(0.2)
        # One slot, no queue: a trickling body holding a slot would make this a 503.
        ok = httpx.post(live.url + "/v1/infer", params={"model": MODEL, "cut": 3}, content=body)
        assert ok.status_code == 200, ok.text
        for sock in slow:
            answer = sock.recv(4096).decode()
            assert answer.startswith("HTTP/1.1 408"), answer
            assert '"field":"body"' in answer
            sock.close()
        metrics = httpx.get(live.url + "/metrics").text
        assert 'edgesplit_requests_total{endpoint="infer",status="408"} 3.0' in metrics


def test_a_500_is_json_counted_and_keeps_the_connection(store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("injected fault")

    graph = store.model(MODEL).graph
    (name,) = [t.name for t in graph.cut(3).tensors]
    body = wire.encode_tensors({name: torch.zeros(graph.tensor(name).shape)})
    app = create_app(ServerConfig(models=(MODEL,)), store=store)
    with BackgroundServer(app) as live:
        conn = http.client.HTTPConnection(live.host, live.port, timeout=30)
        path = f"/v1/infer?model={MODEL}&cut=3"
        monkeypatch.setattr(store, "run", broken)
        conn.request("POST", path, body=body)
        resp = conn.getresponse()
        answer = json.loads(resp.read())
        monkeypatch.undo()
        assert resp.status == 500
        assert set(answer) == {"error", "field"}
        sock = conn.sock
        assert sock is not None  # the server did not ask to close the connection
        conn.request("POST", path, body=body)  # the same keep-alive connection
        again = conn.getresponse()
        again.read()
        assert again.status == 200 and conn.sock is sock
        conn.close()
        metrics = httpx.get(live.url + "/metrics").text
        assert 'edgesplit_requests_total{endpoint="infer",status="500"} 1.0' in metrics
