"""The fast transport (/v1/ws): frames of every dtype, bounds, bad frames, auth, exactness.

Exactness is checked against the unsplit model (torch.equal) on a real uvicorn server on
loopback; bad frames are sent by a bare ``websockets`` client, and each answer must name
the field while the same connection keeps serving good requests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import torch

from edgesplit.errors import InputError, TransportError
from edgesplit.models import build
from edgesplit.runtime import fastwire, wire
from edgesplit.runtime.fastwire import TensorSpec, WSTransport
from edgesplit.runtime.server import BackgroundServer, ServerConfig, create_app
from edgesplit.runtime.store import ModelStore
from edgesplit.runtime.transport import HTTPTransport, ServerRejected

from .conftest import LIMIT, MODELS

TOKEN = "fast-token"


def _round_trip(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    specs, buffers = fastwire.to_frames(tensors)
    parsed = fastwire.parse_specs(json.loads(json.dumps(specs)), LIMIT)
    return {s.name: fastwire.from_frame(s, bytes(b)) for s, b in zip(parsed, buffers, strict=True)}


@pytest.mark.parametrize("dtype", list(wire.DTYPES.values()), ids=list(wire.DTYPES))
def test_every_dtype_round_trips_bitwise(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(2, 3, 5, generator=g) * 100).to(dtype)
    odd = x.transpose(0, 2)  # not contiguous: sent as its C-order copy
    out = _round_trip({"x": x, "odd": odd, "scalar": x.reshape(-1)[0], "empty": x[:0]})
    for name, want in {"x": x, "odd": odd, "scalar": x.reshape(-1)[0], "empty": x[:0]}.items():
        assert out[name].dtype == dtype and out[name].shape == want.shape
        assert torch.equal(out[name], want), name


def test_bool_and_int64_keep_their_values() -> None:
    mask = torch.tensor([[True, False], [False, True]])
    ids = torch.tensor([-(2**62), 0, 2**62 + 7], dtype=torch.int64)
    out = _round_trip({"mask": mask, "ids": ids})
    assert torch.equal(out["mask"], mask) and torch.equal(out["ids"], ids)


@pytest.mark.parametrize(
    ("entries", "field"),
    [
        ([{"name": "x", "dtype": "float32", "shape": [1000, 1000]}], "tensors[0].shape"),
        ([{"name": "x", "dtype": "float32", "shape": [-1]}], "tensors[0].shape"),
        ([{"name": "x", "dtype": "float32", "shape": [1.5]}], "tensors[0].shape"),
        ([{"name": "x", "dtype": "float32", "shape": [1] * 17}], "tensors[0].shape"),
        ([{"name": "x", "dtype": "complex64", "shape": [1]}], "tensors[0].dtype"),
        ([{"name": "x", "dtype": "float32", "shape": [1]}] * 2, "tensors[1].name"),
        ([{"dtype": "float32", "shape": [1]}], "tensors[0].name"),
        (["x"], "tensors[0]"),
        ({"x": 1}, "tensors"),
    ],
)
def test_bad_headers_are_refused_before_anything_is_allocated(entries: object, field: str) -> None:
    with pytest.raises(InputError, match=re.escape(f"'{field}")):
        fastwire.parse_specs(entries, LIMIT)


def test_a_frame_of_the_wrong_length_names_its_tensor() -> None:
    spec = TensorSpec("features_2", "float32", (1, 4))
    with pytest.raises(InputError, match="features_2.*12 bytes.*needs 16"):
        fastwire.from_frame(spec, b"\0" * 12)


@pytest.fixture(scope="module")
def fast(store: ModelStore) -> Iterator[BackgroundServer]:
    config = ServerConfig(models=MODELS, max_body_bytes=LIMIT, token=TOKEN)
    with BackgroundServer(create_app(config, store=store)) as server:
        yield server


@pytest.fixture(scope="module")
def oracle() -> tuple[torch.Tensor, torch.Tensor]:
    model, x = build("alexnet")
    with torch.inference_mode():
        return x, model(x)


def test_a_part_over_the_transport_equals_local_inference(
    fast: BackgroundServer, store: ModelStore, oracle: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, want = oracle
    graph = store.model("alexnet").graph
    k = len(graph.nodes) // 2
    assignment = [0] * k + [1] * (len(graph.nodes) - k)
    local = store.plan_part("alexnet", tuple(assignment), 0)
    sent, _ = store.run(local, {local.needs[0]: x})
    client = WSTransport(fast.url, token=TOKEN)
    http = HTTPTransport(fast.url, token=TOKEN)
    try:
        reply = client.run_part("alexnet", assignment, 1, sent)
        (got,) = reply.tensors.values()
        assert torch.equal(got, want)
        assert reply.cloud_lat_stop >= reply.cloud_lat_start
        assert reply.request_bytes > sum(t.nbytes for t in sent.values())
        (by_http,) = http.run_part("alexnet", assignment, 1, sent).tensors.values()
        assert torch.equal(got, by_http)
        whole = client.infer("alexnet", 0, {graph.input_names[0]: x}, timings=True)
        assert torch.equal(next(iter(whole.tensors.values())), want)
        assert set(whole.node_times) == {n.name for n in graph.nodes}
        assert client.probe() > 0
    finally:
        client.close()
        http.close()


@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_missing_or_wrong_token_is_a_401(fast: BackgroundServer, token: str | None) -> None:
    with pytest.raises(ServerRejected, match="bearer token") as err:
        WSTransport(fast.url, token=token)
    assert err.value.status == 401 and not err.value.retryable


def test_server_errors_come_back_as_rejections(fast: BackgroundServer, store: ModelStore) -> None:
    client = WSTransport(fast.url, token=TOKEN)
    x = torch.zeros(1, 1, 28, 28)
    try:
        with pytest.raises(ServerRejected, match="not served") as err:
            client.infer("vgg16", 0, {"x": x})
        assert err.value.status == 404
        with pytest.raises(ServerRejected, match="float16") as err:
            client.infer("mnist_cnn", 0, {"x": x.half()})
        assert err.value.status == 422
        with pytest.raises(ServerRejected, match="part 9 is not in the assignment"):
            client.run_part(
                "mnist_cnn", [0] * len(store.model("mnist_cnn").graph.nodes), 9, {"x": x}
            )
        (out,) = client.infer("mnist_cnn", 0, {"x": x}).tensors.values()  # still usable
        assert out.shape == (1, 10)
    finally:
        client.close()


def _bare(server: BackgroundServer):  # type: ignore[no-untyped-def]
    from websockets.sync.client import connect

    url = server.url.replace("http", "ws") + fastwire.PATH
    return connect(url, additional_headers={"Authorization": f"Bearer {TOKEN}"}, proxy=None)


def _good(ws, request_id: int) -> dict[str, object]:  # type: ignore[no-untyped-def]
    x = torch.ones(1, 1, 28, 28)
    specs, buffers = fastwire.to_frames({"x": x})
    header = {"id": request_id, "op": "infer", "model": "mnist_cnn", "cut": 0, "tensors": specs}
    ws.send(json.dumps(header))
    for buf in buffers:
        ws.send(buf)
    reply = json.loads(ws.recv(timeout=30))
    for _ in reply.get("tensors", []):
        ws.recv(timeout=30)
    return dict(reply)


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        (["{not json"], "header is not valid JSON"),
        (["[1, 2]"], "header must be a JSON object"),
        ([json.dumps({"op": "infer", "model": "mnist_cnn", "cut": 0})], "'tensors'"),
        (
            [
                json.dumps(
                    {
                        "op": "infer",
                        "model": "mnist_cnn",
                        "cut": 0,
                        "tensors": [{"name": "x", "dtype": "float32", "shape": [1, 1, 28, 28]}],
                    }
                ),
                b"\0" * 7,
            ],
            "frame of tensor 'x' has 7 bytes",
        ),
        (
            [
                json.dumps(
                    {
                        "op": "infer",
                        "model": "mnist_cnn",
                        "cut": 0,
                        "tensors": [{"name": "x", "dtype": "float32", "shape": [10**9]}],
                    }
                )
            ],
            "tensors[0].shape",
        ),
        ([json.dumps({"op": "train", "model": "mnist_cnn", "tensors": []})], "field 'op'"),
        (
            [
                json.dumps(
                    {"op": "infer", "model": "mnist_cnn", "cut": 0, "tensors": [], "meta": [1]}
                )
            ],
            "field 'meta'",
        ),
        (
            [json.dumps({"op": "infer", "model": "mnist_cnn", "cut": "0", "tensors": []})],
            "field 'cut'",
        ),
        (
            [json.dumps({"op": "part", "model": "mnist_cnn", "part": 0, "tensors": []})],
            "field 'assignment'",
        ),
        (
            [
                json.dumps(
                    {
                        "op": "infer",
                        "model": "mnist_cnn",
                        "cut": 0,
                        "tensors": [
                            {"name": "a", "dtype": "float32", "shape": [1]},
                            {"name": "b", "dtype": "float32", "shape": [1]},
                        ],
                    }
                )
            ],
            "declares 2 tensor frames but 0",
        ),
        ([b"\0" * 16], None),
    ],
)
def test_bad_frames_answer_an_error_and_the_connection_stays_usable(
    fast: BackgroundServer, messages: list[str | bytes], field: str | None
) -> None:
    with _bare(fast) as ws:
        for m in messages:
            ws.send(m)
        if field is not None:
            if "declares" in field:
                ws.send(json.dumps({"id": 2, "op": "noop"}))  # the next header cuts it short
            error = json.loads(ws.recv(timeout=30))
            assert error["ok"] is False and error["status"] in (400, 422)
            assert field in error["error"]
            if "declares" in field:
                json.loads(ws.recv(timeout=30))  # the cutting header's own (refused) answer
        reply = _good(ws, 99)
        assert reply["ok"] is True and reply["id"] == 99


def test_a_broken_connection_fails_once_then_reconnects(fast: BackgroundServer) -> None:
    client = WSTransport(fast.url, token=TOKEN)
    x = torch.ones(1, 1, 28, 28)
    try:
        (want,) = client.infer("mnist_cnn", 0, {"x": x}).tensors.values()
        client._ws.close()  # the tier went away under an open connection
        with pytest.raises(TransportError):
            client.infer("mnist_cnn", 0, {"x": x})
        (again,) = client.infer("mnist_cnn", 0, {"x": x}).tensors.values()
        assert torch.equal(again, want)
    finally:
        client.close()


def test_threads_share_one_connection_and_each_gets_its_own_answer(
    fast: BackgroundServer,
) -> None:
    client = WSTransport(fast.url, token=TOKEN)
    inputs = [torch.full((1, 1, 28, 28), float(i)) for i in range(8)]
    try:
        wants = [client.infer("mnist_cnn", 0, {"x": x}).tensors for x in inputs]
        with ThreadPoolExecutor(4) as pool:
            gots = list(pool.map(lambda x: client.infer("mnist_cnn", 0, {"x": x}).tensors, inputs))
        for want, got in zip(wants, gots, strict=True):
            assert got.keys() == want.keys()
            assert all(torch.equal(got[k], want[k]) for k in want)
    finally:
        client.close()


def test_requests_over_the_socket_show_in_the_server_metrics(fast: BackgroundServer) -> None:
    client = WSTransport(fast.url, token=TOKEN)
    try:
        client.infer("mnist_cnn", 0, {"x": torch.ones(1, 1, 28, 28)})
    finally:
        client.close()
    text = httpx.get(fast.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    assert 'edgesplit_requests_total{endpoint="ws",status="200"}' in text


@pytest.mark.parametrize("codec", ["zstd", "fp16", "int8"])
def test_a_link_codec_packs_the_frames_and_lossless_stays_exact(
    fast: BackgroundServer, store: ModelStore, oracle: tuple[torch.Tensor, torch.Tensor], codec: str
) -> None:
    x, want = oracle
    graph = store.model("alexnet").graph
    cut = len(graph.nodes) // 2
    head = store.segment("alexnet", 0, cut)
    sent, _ = store.run(head, {head.needs[0]: x})
    plain = WSTransport(fast.url, token=TOKEN)
    packed = WSTransport(fast.url, token=TOKEN, codec=codec)
    try:
        (got,) = packed.infer("alexnet", cut, sent).tensors.values()
        base = plain.infer("alexnet", cut, sent)
        assert got.dtype == want.dtype and got.shape == want.shape
        if codec == "zstd":
            assert torch.equal(got, want)
        else:
            assert got.argmax() == want.argmax()
            assert packed.infer("alexnet", cut, sent).request_bytes < base.request_bytes
    finally:
        plain.close()
        packed.close()


def test_an_unknown_codec_is_refused_before_connecting(fast: BackgroundServer) -> None:
    with pytest.raises(InputError, match="unknown codec 'gzip'"):
        WSTransport(fast.url, token=TOKEN, codec="gzip")


def test_a_small_frame_gets_its_own_memory_so_in_place_parts_cannot_touch_shared_bytes() -> None:
    one = bytes([1])  # CPython shares 1-byte objects: writing into one would corrupt others
    t = fastwire.from_frame(TensorSpec("flag", "uint8", (1,)), one)
    t.add_(5)
    assert one == bytes([1]) and t.item() == 6


def test_an_op_the_app_adds_is_reached_by_exchange_and_may_refuse_with_its_status(
    fast: BackgroundServer,
) -> None:
    async def twice(doc, tensors):  # type: ignore[no-untyped-def]
        if doc.get("plan") != "mine":
            raise fastwire.Refused(409, "field 'plan' is for another model")
        return {k: v * 2 for k, v in tensors.items()}, {"note": "doubled"}

    fast.server.config.app.state.fast_ops["twice"] = twice
    client = WSTransport(fast.url, token=TOKEN, codec="zstd")
    x = torch.arange(6, dtype=torch.int64).reshape(2, 3)
    try:
        reply, out, sent, got = client.exchange({"op": "twice", "plan": "mine"}, {"x": x})
        assert reply["note"] == "doubled" and torch.equal(out["x"], x * 2)
        assert sent > 0 and got > 0
        _, plain, sent_plain, _ = client.exchange({"op": "twice", "plan": "mine"}, {"x": x}, "none")
        assert torch.equal(plain["x"], x * 2) and sent_plain != sent
        with pytest.raises(ServerRejected, match="another model") as err:
            client.exchange({"op": "twice", "plan": "theirs"}, {"x": x})
        assert err.value.status == 409
    finally:
        client.close()


def test_a_fault_inside_an_op_is_a_500_and_the_connection_lives_on(fast: BackgroundServer) -> None:
    async def broken(doc, tensors):  # type: ignore[no-untyped-def]
        raise RuntimeError("kernel fault")

    fast.server.config.app.state.fast_ops["broken"] = broken
    client = WSTransport(fast.url, token=TOKEN)
    try:
        with pytest.raises(ServerRejected, match="RuntimeError: kernel fault") as err:
            client.exchange({"op": "broken"}, {})
        assert err.value.status == 500
        assert client.infer("mnist_cnn", 0, {"x": torch.ones(1, 1, 28, 28)}).tensors
    finally:
        client.close()


def test_a_shaped_link_paces_both_ways_and_keeps_the_answer(fast: BackgroundServer) -> None:
    from edgesplit.runtime.shaping import TokenBucketShaper
    from edgesplit.system.link import Link

    x = torch.randn(1, 1, 28, 28)
    plain = WSTransport(fast.url, token=TOKEN)
    shaped = WSTransport(fast.url, token=TOKEN, shaper=TokenBucketShaper(Link.of(1e9)))
    try:
        want = plain.infer("mnist_cnn", 0, {"x": x})
        got = shaped.infer("mnist_cnn", 0, {"x": x})
        assert torch.equal(next(iter(got.tensors.values())), next(iter(want.tensors.values())))
        assert got.request_bytes == want.request_bytes > x.nbytes
        assert shaped.probe() > 0
    finally:
        plain.close()
        shaped.close()
