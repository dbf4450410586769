"""The cloud server, in-process (ASGI) and on a real uvicorn: exact results, bad input, faults."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import torch

from edgesplit.errors import InputError
from edgesplit.graph.partition import split_at
from edgesplit.runtime import wire
from edgesplit.runtime.server import BackgroundServer, ServerConfig, check_bind, create_app
from edgesplit.runtime.store import ModelStore
from edgesplit.runtime.transport import HTTPTransport, ServerRejected

LIMIT = 1_000_000  # the body limit the session app in conftest.py is built with


def crossing(store: ModelStore, model: str, cut: int) -> tuple[dict[str, torch.Tensor], object]:
    lm = store.model(model)
    values = split_at(lm.graph, [cut]).parts[0]({lm.graph.input_names[0]: lm.example})
    values[lm.graph.input_names[0]] = lm.example
    with torch.inference_mode():
        ref = lm.graph.module(lm.example)
    return {t.name: values[t.name] for t in lm.graph.cut(cut).tensors}, ref


def test_every_cut_of_mnist_is_exact_through_the_wire(transport, store) -> None:  # type: ignore[no-untyped-def]
    n = len(store.model("mnist_cnn").graph.nodes)
    for cut in range(n + 1):
        tensors, ref = crossing(store, "mnist_cnn", cut)
        reply = transport.infer("mnist_cnn", cut, tensors)
        assert torch.equal(reply.tensors["softmax"], ref)
        assert reply.cloud_lat_stop >= reply.cloud_lat_start


def test_alexnet_middle_cut_with_node_times(transport, store) -> None:  # type: ignore[no-untyped-def]
    tensors, ref = crossing(store, "alexnet", 8)
    reply = transport.infer("alexnet", 8, tensors, timings=True)
    assert torch.equal(reply.tensors["classifier_6"], ref)
    graph = store.model("alexnet").graph
    assert set(reply.node_times) == {n.name for n in graph.nodes[8:]}


def test_three_tier_chain_agent_edge_cloud(transport, store) -> None:  # type: ignore[no-untyped-def]
    """Agent runs [0, 3), a middle tier [3, 6), the cloud [6, n): equal to the model."""
    tensors, ref = crossing(store, "alexnet", 3)
    mid = transport.infer("alexnet", 3, tensors, end=6)
    graph = store.model("alexnet").graph
    assert set(mid.tensors) == {t.name for t in graph.cut(6).tensors}
    out = transport.infer("alexnet", 6, mid.tensors)
    assert torch.equal(out.tensors["classifier_6"], ref)


def test_offload_json_listing_1(transport, store) -> None:  # type: ignore[no-untyped-def]
    tensors, ref = crossing(store, "alexnet", 5)
    (t,) = tensors.values()
    reply = transport.offload_json("alexnet", 5, t)
    assert torch.equal(reply.tensors["classifier_6"], ref)


def _post(transport, path: str, content: bytes, **params: object) -> httpx.Response:  # type: ignore[no-untyped-def]
    return transport.client.post(path, content=content, params=params)


def test_bad_input_gets_4xx_and_server_stays_up(transport, store) -> None:  # type: ignore[no-untyped-def]
    tensors, _ = crossing(store, "mnist_cnn", 3)
    good = wire.encode_tensors(tensors)
    (name,) = tensors
    cases = [
        (404, dict(model="nope", cut=1), good),
        (422, dict(model="mnist_cnn", cut=99), good),
        (422, dict(model="mnist_cnn", cut=-1), good),
        (422, dict(model="mnist_cnn", cut=3, end=2), good),
        (422, dict(model="mnist_cnn", cut=4), good),  # tensors of cut 3 sent for cut 4
        (422, dict(model="mnist_cnn", cut=3), wire.encode_tensors({name: tensors[name][:, :2]})),
        (422, dict(model="mnist_cnn", cut=3), wire.encode_tensors({name: tensors[name].double()})),
        (422, dict(model="mnist_cnn", cut=3), wire.encode_tensors({"zzz": tensors[name]})),
        (400, dict(model="mnist_cnn", cut=3), b"\x10\x00\x00\x00\x00\x00\x00\x00not-json-header!"),
        (400, dict(model="mnist_cnn", cut=3), b"abc"),
        (413, dict(model="mnist_cnn", cut=3), b"\x00" * (LIMIT + 1)),
    ]
    for status, params, body in cases:
        resp = _post(transport, "/v1/infer", body, **params)
        assert resp.status_code == status, (params, resp.text)
        assert resp.json()["error"]
    bad_json = [
        (400, b"{not json"),
        (400, json.dumps({"input_data": {"model": "alexnet"}}).encode()),
        (
            400,
            json.dumps(
                {"input_data": {"tensor": "***", "splitting_point": 3, "model": "mnist_cnn"}}
            ).encode(),
        ),
        (
            422,
            json.dumps(
                {"input_data": {"tensor": "AAAA", "splitting_point": 3, "model": "mnist_cnn"}}
            ).encode(),
        ),
        (
            404,
            json.dumps(
                {"input_data": {"tensor": "AAAA", "splitting_point": 3, "model": "x"}}
            ).encode(),
        ),
    ]
    for status, body in bad_json:
        resp = transport.client.post("/offload", content=body)
        assert resp.status_code == status, resp.text
    assert transport.client.get("/healthz").json()["status"] == "ok"
    reply = transport.infer("mnist_cnn", 3, tensors)
    assert reply.tensors


def test_models_metrics_openapi(transport) -> None:  # type: ignore[no-untyped-def]
    models = transport.client.get("/v1/models").json()
    assert {m["name"] for m in models["models"]} == {"mnist_cnn", "alexnet"}
    mnist = next(m for m in models["models"] if m["name"] == "mnist_cnn")
    assert len(mnist["cut_bytes"]) == mnist["nodes"] + 1
    metrics = transport.client.get("/metrics").text
    assert "edgesplit_requests_total" in metrics
    spec = transport.client.get("/openapi.json").json()
    assert {"/v1/infer", "/offload", "/v1/models", "/healthz", "/metrics"} <= set(spec["paths"])


def test_transport_maps_4xx_to_non_retryable(transport, store) -> None:  # type: ignore[no-untyped-def]
    tensors, _ = crossing(store, "mnist_cnn", 3)
    with pytest.raises(ServerRejected) as info:
        transport.infer("mnist_cnn", 5, tensors)
    assert info.value.status == 422 and not info.value.retryable


def _slow_body(data: bytes, gate: threading.Event, started: threading.Event) -> Iterator[bytes]:
    yield data[:10]
    started.set()
    gate.wait(20)
    yield data[10:]


def test_overload_gives_503_retry_after_and_token_is_required(store) -> None:  # type: ignore[no-untyped-def]
    """A trickling upload holds body bytes, not a slot: others are served; bytes past the
    --max-pending bound get 503 with Retry-After (issue 14 point 3)."""
    tensors, ref = crossing(store, "mnist_cnn", 3)
    body = wire.encode_tensors(tensors)
    config = ServerConfig(
        models=("mnist_cnn",),
        max_concurrency=1,
        max_queue=0,
        token="s3cret",
        max_body_bytes=len(body),
        max_pending_bytes=len(body) + len(body) // 2,
    )
    auth = {"Authorization": "Bearer s3cret"}
    with BackgroundServer(create_app(config, store=store)) as tight:
        assert httpx.get(tight.url + "/v1/models").status_code == 401
        wrong = {"Authorization": "Bearer x"}
        assert httpx.get(tight.url + "/v1/models", headers=wrong).status_code == 401
        gate, started = threading.Event(), threading.Event()
        result: dict[str, httpx.Response] = {}

        def first() -> None:
            result["r"] = httpx.post(
                tight.url + "/v1/infer",
                params={"model": "mnist_cnn", "cut": 3},
                content=_slow_body(body, gate, started),
                headers={**auth, "Content-Length": str(len(body))},
                timeout=30,
            )

        th = threading.Thread(target=first)
        th.start()
        assert started.wait(20)
        time.sleep(0.2)  # the first body's bytes are reserved once its headers arrive
        params = {"model": "mnist_cnn", "cut": 3}
        small = wire.encode_tensors({"x": torch.zeros(4)})  # fits beside the slow one: a 4xx
        assert (
            httpx.post(
                tight.url + "/v1/infer", params=params, content=small, headers=auth
            ).status_code
            == 422
        )
        second = httpx.post(tight.url + "/v1/infer", params=params, content=body, headers=auth)
        assert second.status_code == 503, second.text
        assert second.headers["retry-after"] == "1"
        assert set(second.json()) == {"error", "field"}
        gate.set()
        th.join(30)
        assert result["r"].status_code == 200
        out = wire.decode_tensors(result["r"].content)
        assert torch.equal(out["softmax"], ref)


def test_graceful_shutdown_finishes_the_request_in_flight(store) -> None:  # type: ignore[no-untyped-def]
    tensors, ref = crossing(store, "mnist_cnn", 2)
    body = wire.encode_tensors(tensors)
    server = BackgroundServer(create_app(ServerConfig(models=("mnist_cnn",)), store=store)).start()
    gate, started = threading.Event(), threading.Event()
    result: dict[str, httpx.Response] = {}

    def client() -> None:
        result["r"] = httpx.post(
            server.url + "/v1/infer",
            params={"model": "mnist_cnn", "cut": 2},
            content=_slow_body(body, gate, started),
            timeout=30,
        )

    th = threading.Thread(target=client)
    th.start()
    assert started.wait(20)
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    time.sleep(0.2)
    gate.set()
    th.join(30)
    stopper.join(30)
    assert result["r"].status_code == 200
    assert torch.equal(wire.decode_tensors(result["r"].content)["softmax"], ref)
    with pytest.raises(httpx.HTTPError):
        httpx.get(server.url + "/healthz", timeout=2)


def test_non_loopback_bind_needs_token_or_insecure() -> None:
    check_bind("127.0.0.1", None, False)
    check_bind("0.0.0.0", "t", False)
    check_bind("0.0.0.0", None, True)
    with pytest.raises(InputError, match="--token"):
        check_bind("0.0.0.0", None, False)


def test_http_transport_against_closed_port_is_a_transport_error() -> None:
    from edgesplit.errors import TransportError

    t = HTTPTransport("http://127.0.0.1:9", timeout_s=2)
    with pytest.raises(TransportError):
        t.probe()
    with pytest.raises(TransportError):
        t.infer("mnist_cnn", 0, {"x": torch.zeros(1, 1, 28, 28)})


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; CI has none")
def test_cuda_cloud_tier_matches_cpu(store) -> None:  # type: ignore[no-untyped-def]
    cuda = ModelStore(("alexnet",), device="cuda")
    tensors, ref = crossing(store, "alexnet", 8)
    out, _ = cuda.run(cuda.segment("alexnet", 8), tensors)
    assert torch.allclose(out["classifier_6"], ref, rtol=1e-3, atol=1e-4)
