"""Wire codecs: exact round trips, error bounds per codec, and bounded, validated decoding.

The oracles are independent of the codec code: ``torch.equal`` for the lossless codecs,
IEEE round-to-nearest bounds for fp16/bf16 recomputed elementwise here, and for int8 the
scale each channel must have (its range including zero, over 255), recomputed here from
the tensor and the channel dim the module docstring states.
"""

from __future__ import annotations

import json

import pytest
import torch
import zstandard

from edgesplit.errors import InputError, ShapeError
from edgesplit.graph.partition import split_at
from edgesplit.runtime import codecs, wire
from edgesplit.runtime.store import ModelStore
from edgesplit.runtime.transport import in_process
from edgesplit.system.codecs import channel_dim, fidelity, pack, unpack
from edgesplit.system.link import CODECS

# Every dtype that crosses a cut in the zoo: activations, token ids, masks.
DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.bool)


def _tensor(dtype: torch.dtype, shape: tuple[int, ...] = (2, 8, 5, 5)) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    if dtype == torch.bool:
        return torch.rand(shape, generator=g) > 0.5
    if dtype == torch.int64:
        return torch.randint(-(2**40), 2**40, shape, generator=g)
    # ReLU-like activations: many exact zeros, as the cuts of CNNs carry.
    return (torch.randn(shape, generator=g) * 3).relu().to(dtype)


@pytest.mark.parametrize("codec", ["none", "zstd"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_lossless_codecs_are_bitwise_exact_on_every_cut_dtype(codec: str, dtype) -> None:
    tensors = {"x": _tensor(dtype), "scalar": _tensor(dtype, ()), "empty": _tensor(dtype, (0, 3))}
    body, _ = codecs.encode(tensors, codec)
    back = codecs.decode(body)
    for name, t in tensors.items():
        assert back[name].dtype == t.dtype and back[name].shape == t.shape
        assert torch.equal(back[name], t), name


def test_none_writes_todays_plain_document() -> None:
    tensors = {"a": _tensor(torch.float32), "b": _tensor(torch.int64, (3,))}
    body, meta = codecs.encode(tensors, "none", {"cloud_lat_start": "1.5"})
    assert body == wire.encode_tensors(tensors, {"cloud_lat_start": "1.5"})
    assert meta == {"cloud_lat_start": "1.5"}


def test_zstd_shrinks_relu_activations_and_keeps_other_metadata() -> None:
    x = {"x": _tensor(torch.float32, (1, 64, 28, 28))}
    body, meta = codecs.encode(x, "zstd", {"cloud_lat_start": "2.0"})
    assert len(body) < 0.8 * x["x"].numel() * 4
    assert wire.decode_metadata(body)["cloud_lat_start"] == "2.0"
    assert meta["edgesplit.codec"] == "zstd"


@pytest.mark.parametrize(("codec", "bound"), [("fp16", 2.0**-10), ("bf16", 2.0**-7)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_half_codecs_relative_error_on_normal_values(codec: str, bound: float, dtype) -> None:
    x = torch.randn(4, 16, 7, 7, dtype=dtype, generator=torch.Generator().manual_seed(1)) * 100
    normal = x.abs() >= torch.finfo(torch.float16).tiny  # fp16's normal range starts here
    back = codecs.decode(codecs.encode({"x": x}, codec)[0])["x"]
    assert back.dtype == dtype and back.shape == x.shape
    rel = ((back - x).abs() / x.abs())[normal]
    assert float(rel.max()) <= bound
    report = codecs.round_trip({"x": x}, codec)
    assert report.max_rel <= bound and not report.errors["x"].equal
    assert report.bytes_ratio == pytest.approx(2 / dtype.itemsize, rel=0.05)


def _int8_scales(x: torch.Tensor) -> torch.Tensor:
    """Independent oracle: per channel, (max(x,0) - min(x,0)) / 255 over the stated dim."""
    dim = {2: 0, 3: 1, 4: 1}.get(x.dim())
    v = x.reshape(1, -1) if dim is None else x.movedim(dim, 0).reshape(x.shape[dim], -1)
    v = v.double()
    return (v.amax(1).clamp(min=0) - v.amin(1).clamp(max=0)) / 255


@pytest.mark.parametrize("shape", [(2, 8, 6, 6), (3, 50), (2, 5, 16), (40,), ()], ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_int8_error_is_at_most_half_a_step_per_channel(shape, dtype) -> None:
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(shape, generator=g) * torch.rand(shape, generator=g) * 10 - 1).to(dtype)
    back = codecs.decode(codecs.encode({"x": x}, "int8")[0])["x"]
    assert back.dtype == dtype and back.shape == x.shape
    dim = channel_dim(x.dim())
    err = (back.double() - x.double()).abs()
    err = err.reshape(1, -1) if dim is None else err.movedim(dim, 0).reshape(x.shape[dim], -1)
    # Half a step per channel, plus the rounding of x̂ back to the tensor's own dtype.
    slack = x.double().abs().max() * torch.finfo(dtype).eps
    assert bool((err.amax(1) <= _int8_scales(x) / 2 * (1 + 1e-5) + slack).all())


def test_int8_channel_dims_as_documented() -> None:
    assert [channel_dim(n) for n in (0, 1, 2, 3, 4)] == [None, None, 0, 1, 1]
    x = torch.randn(1, 64, 14, 14)
    payload, meta = pack({"x": x}, "int8")
    assert payload["x"].dtype == torch.int8
    assert len(meta["edgesplit.scale/x"].split(",")) == 64
    assert json.loads(meta["edgesplit.codec/x"])["dim"] == 1
    assert codecs.round_trip({"x": x}, "int8").bytes_ratio < 0.35


def test_int8_keeps_zeros_and_constant_channels_exact() -> None:
    x = torch.zeros(1, 3, 4, 4)
    x[0, 1] = 2.5
    x[0, 2, 0, 0] = -1.0
    back = codecs.decode(codecs.encode({"x": x}, "int8")[0])["x"]
    assert torch.equal(back[0, 0], x[0, 0]) and bool((back[0, 2, 1:] == 0).all())
    assert float((back[0, 1] - 2.5).abs().max()) <= 2.5 / 255 / 2


@pytest.mark.parametrize("codec", ["fp16", "bf16", "int8"])
@pytest.mark.parametrize("dtype", [torch.int64, torch.bool], ids=str)
def test_integer_and_bool_pass_lossy_codecs_unchanged(codec: str, dtype) -> None:
    t = _tensor(dtype)
    payload, meta = pack({"t": t}, codec)
    assert payload["t"].dtype == dtype and json.loads(meta["edgesplit.codec/t"])["codec"] == "none"
    assert torch.equal(codecs.decode(codecs.encode({"t": t}, codec)[0])["t"], t)


def test_two_byte_floats_pass_half_codecs_unchanged() -> None:
    t = _tensor(torch.bfloat16)
    assert torch.equal(codecs.decode(codecs.encode({"t": t}, "fp16")[0])["t"], t)


def test_int8_refuses_non_finite_values_naming_the_tensor() -> None:
    with pytest.raises(InputError, match="'h' holds inf or nan"):
        codecs.encode({"h": torch.tensor([1.0, float("inf")])}, "int8")


def test_fidelity_reports_equality_and_errors() -> None:
    a = {"x": torch.tensor([1.0, -4.0]), "i": torch.tensor([1, 2])}
    b = {"x": torch.tensor([1.5, -4.0]), "i": torch.tensor([1, 2])}
    rep = fidelity(a, b)
    assert rep["x"].max_abs == 0.5 and rep["x"].max_rel == 0.125 and not rep["x"].equal
    assert rep["i"].equal and rep["i"].max_abs == 0.0


def test_unknown_codec_is_refused() -> None:
    with pytest.raises(InputError, match="unknown codec 'lz9'"):
        codecs.encode({"x": torch.ones(1)}, "lz9")
    assert set(CODECS) == {"none", "zstd", "fp16", "bf16", "int8"}


# --- a decoder is bounded and validates what it is sent ---------------------------------


def _tampered(codec: str, x: torch.Tensor, **meta: str) -> bytes:
    payload, sent = pack({"x": x}, codec)
    return wire.encode_tensors(payload, {**sent, **meta})


def _spec(packed_with: str, x: torch.Tensor, **changes: object) -> str:
    spec = json.loads(pack({"x": x}, packed_with)[1]["edgesplit.codec/x"])
    return json.dumps({**spec, **changes})


X = torch.randn(1, 4, 3, 3)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (_tampered("fp16", X, **{"edgesplit.codec": "lz9"}), "names codec 'lz9'"),
        (
            wire.encode_tensors(pack({"x": X}, "fp16")[0], {"edgesplit.codec": "fp16"}),
            "'x': metadata 'edgesplit.codec/x' is missing",
        ),
        (_tampered("int8", X, **{"edgesplit.scale/x": "1,2"}), "'x'.* 2 values for 4 channels"),
        (_tampered("int8", X, **{"edgesplit.scale/x": "1,2,nan,4"}), "'x': int8 scales"),
        (_tampered("int8", X, **{"edgesplit.zero_point/x": "0,0,0,900"}), "'x': int8 zero"),
        (_tampered("int8", X, **{"edgesplit.zero_point/x": "a,b,c,d"}), "not a number list"),
        (
            _tampered("fp16", X, **{"edgesplit.codec/x": _spec("fp16", X, shape=[1, 4, 9])}),
            "'x': received float16 \\[1, 4, 3, 3\\].*needs float16 \\[1, 4, 9\\]",
        ),
        (
            _tampered("fp16", X, **{"edgesplit.codec/x": _spec("fp16", X, dtype="int64")}),
            "'x': fp16 restores float32 or float64",
        ),
        (
            _tampered("fp16", X, **{"edgesplit.codec/x": _spec("fp16", X, dtype="os.system")}),
            "'x'.*not a torch dtype",
        ),
        (
            _tampered("fp16", X, **{"edgesplit.codec/x": _spec("fp16", X, codec="int8")}),
            "'x': codec 'int8' in a 'fp16' document",
        ),
        (
            _tampered("fp16", X, **{"edgesplit.codec/y": _spec("fp16", X)}),
            "'y': codec metadata names a tensor the body lacks",
        ),
        (_tampered("fp16", X, **{"edgesplit.codec/x": "{not json"}), "'x'.* is not JSON"),
        (_tampered("int8", X, **{"edgesplit.codec/x": _spec("int8", X, dim=7)}), "'dim' 7"),
    ],
)
def test_bad_codec_metadata_is_one_input_error_naming_the_tensor(body: bytes, needle: str):
    with pytest.raises(InputError, match=needle):
        codecs.decode(body)


def test_shape_mismatch_is_a_shape_error() -> None:
    body = _tampered("int8", X, **{"edgesplit.codec/x": _spec("int8", X, shape=[1, 4, 3, 4])})
    with pytest.raises(ShapeError, match="'x': received int8"):
        codecs.decode(body)


def test_zstd_bomb_is_refused_by_the_declared_shape() -> None:
    bomb = zstandard.ZstdCompressor().compress(bytes(50_000_000))
    frame = torch.frombuffer(bytearray(bomb), dtype=torch.uint8)
    spec = json.dumps({"codec": "zstd", "dtype": "float32", "shape": [4]})
    meta = {"edgesplit.codec": "zstd", "edgesplit.codec/x": spec}
    with pytest.raises(
        InputError, match="'x': zstd frame declares 50000000 bytes; its shape needs 16"
    ):
        codecs.decode(wire.encode_tensors({"x": frame}, meta))
    # Without a declared content size the output is still capped at the shape's 16 bytes.
    quiet = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(50_000_000))
    frame = torch.frombuffer(bytearray(quiet), dtype=torch.uint8)
    with pytest.raises(InputError, match="'x': not a valid zstd frame"):
        codecs.decode(wire.encode_tensors({"x": frame}, meta))


def test_declared_sizes_are_bounded_by_max_bytes() -> None:
    spec = json.dumps({"codec": "zstd", "dtype": "float32", "shape": [10**6, 10**6]})
    frame = torch.frombuffer(bytearray(zstandard.ZstdCompressor().compress(b"")), dtype=torch.uint8)
    body = wire.encode_tensors({"x": frame}, {"edgesplit.codec": "zstd", "edgesplit.codec/x": spec})
    with pytest.raises(InputError, match="declares 4000000000000 bytes of tensors, over the limit"):
        codecs.decode(body)


def test_zstd_bool_bytes_must_be_0_or_1() -> None:
    frame = zstandard.ZstdCompressor().compress(bytes([0, 1, 2]))
    spec = json.dumps({"codec": "zstd", "dtype": "bool", "shape": [3]})
    meta = {"edgesplit.codec": "zstd", "edgesplit.codec/m": spec}
    payload = {"m": torch.frombuffer(bytearray(frame), dtype=torch.uint8)}
    with pytest.raises(InputError, match="'m': bool bytes must be 0 or 1"):
        unpack(payload, meta)


@pytest.mark.parametrize("codec", CODECS)
def test_the_server_reads_every_codec_through_the_one_wire(app, store: ModelStore, codec: str):
    """A packed body sent to today's server: lossless codecs keep the output bitwise equal."""
    lm = store.model("mnist_cnn")
    cut = 3
    values = split_at(lm.graph, [cut]).parts[0]({lm.graph.input_names[0]: lm.example})
    tensors = {t.name: values[t.name] for t in lm.graph.cut(cut).tensors}
    with torch.inference_mode():
        ref = lm.graph.module(lm.example)
    body, _ = codecs.encode(tensors, codec)
    client = in_process(app).client
    resp = client.post("/v1/infer", content=body, params={"model": "mnist_cnn", "cut": cut})
    assert resp.status_code == 200, resp.text
    out = wire.decode_tensors(resp.content)["softmax"]
    if codec in ("none", "zstd"):
        assert torch.equal(out, ref)
    else:
        assert torch.equal(out.argmax(1), ref.argmax(1))
    payload, meta = pack(tensors, "zstd")
    bad = wire.encode_tensors(payload, {**meta, "edgesplit.codec": "lz9"})
    resp = client.post("/v1/infer", content=bad, params={"model": "mnist_cnn", "cut": cut})
    assert resp.status_code == 400 and "names codec 'lz9'" in resp.json()["error"]
