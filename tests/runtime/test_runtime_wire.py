"""Wire formats: safetensors and Listing 1 base64 round-trips, bounds and corrupt input."""

from __future__ import annotations

import base64

import pytest
import torch

from edgesplit.errors import InputError
from edgesplit.runtime import wire


def test_safetensors_round_trip_several_tensors_and_metadata() -> None:
    tensors = {
        "a": torch.randn(1, 3, 5, 5),
        "b": torch.arange(7, dtype=torch.int64),
        "c": torch.randn(2, 2).to(torch.bfloat16),
    }
    data = wire.encode_tensors(tensors, {"cloud_lat_start": "1.5"})
    back = wire.decode_tensors(data)
    assert set(back) == set(tensors)
    for k in tensors:
        assert torch.equal(back[k], tensors[k])
    assert wire.decode_metadata(data) == {"cloud_lat_start": "1.5"}


def test_non_contiguous_tensor_is_sent_by_value() -> None:
    t = torch.randn(4, 6).t()
    assert torch.equal(wire.decode_tensors(wire.encode_tensors({"t": t}))["t"], t)


@pytest.mark.parametrize(
    "body", [b"", b"1234567", b"\xff" * 64, b"\x08" + b"\x00" * 7 + b"{bad json"]
)
def test_corrupt_safetensors_is_an_input_error(body: bytes) -> None:
    with pytest.raises(InputError, match="safetensors"):
        wire.decode_tensors(body)


def test_oversize_body_is_rejected_before_parsing() -> None:
    data = wire.encode_tensors({"x": torch.zeros(1000)})
    with pytest.raises(InputError, match="over the limit"):
        wire.decode_tensors(data, max_bytes=len(data) - 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.int64, torch.bfloat16])
def test_base64_round_trip(dtype: torch.dtype) -> None:
    t = (torch.randn(2, 3, 4) * 10).to(dtype)
    text = wire.tensor_to_b64(t)
    assert torch.equal(wire.b64_to_tensor(text, (2, 3, 4), wire.dtype_name(dtype)), t)


def test_base64_is_raw_little_endian_bytes() -> None:
    t = torch.tensor([1.0], dtype=torch.float32)
    assert base64.b64decode(wire.tensor_to_b64(t)) == b"\x00\x00\x80\x3f"


def test_base64_errors_name_the_field() -> None:
    with pytest.raises(InputError, match="not valid base64"):
        wire.b64_to_tensor("***", (1,))
    with pytest.raises(InputError, match="needs 8"):
        wire.b64_to_tensor(wire.tensor_to_b64(torch.zeros(3)), (2,))
    with pytest.raises(InputError, match="dtype"):
        wire.b64_to_tensor("AAAA", (1,), "complex7")


def test_offload_document_has_listing_1_fields() -> None:
    doc = wire.offload_document("alexnet", 15, torch.zeros(1, 2))
    assert {"tensor", "splitting_point", "model"} <= set(doc["input_data"])
    assert doc["input_data"]["splitting_point"] == 15


def _every_dtype() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    values = torch.randn(3, 5, generator=g) * 100
    out = {
        name: (values > 0) if dtype is torch.bool else values.to(dtype)
        for name, dtype in wire.DTYPES.items()
    }
    out["bfloat16_tiny"] = torch.tensor([1e-30, -3.0e38, 0.0078125], dtype=torch.bfloat16)
    out["float16_subnormal"] = torch.tensor([6e-8, -65504.0, 0.5], dtype=torch.float16)
    return out


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_every_dtype_crosses_bit_for_bit(codec: str) -> None:
    tensors = _every_dtype()
    back = wire.decode_tensors(wire.encode_tensors(tensors, codec=codec))
    assert set(back) == set(tensors)
    for name, t in tensors.items():
        assert back[name].dtype == t.dtype and torch.equal(back[name], t), name


def test_non_tensors_and_uncarried_dtypes_are_named() -> None:
    with pytest.raises(InputError, match="value 'size' is a int, not a tensor"):
        wire.encode_tensors({"x": torch.zeros(1), "size": 3})  # type: ignore[dict-item]
    with pytest.raises(InputError, match="tensor 'z' has dtype complex64"):
        wire.encode_tensors({"z": torch.zeros(2, dtype=torch.complex64)})


class _MixedDtypes(torch.nn.Module):
    """Cuts of this model cross int64, bool, float16 and bfloat16 tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(8, 8), torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        top = torch.argmax(h, dim=-1, keepdim=True)
        positive = h > 0
        half = h.to(torch.float16) * 3
        brain = h.to(torch.bfloat16) - 1
        mixed = half.float() + brain.float() * positive.float() + top.float()
        return self.b(mixed)


def test_server_and_engine_carry_every_dtype_at_every_cut(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sys
    import types

    from edgesplit.graph.partition import assemble_output
    from edgesplit.models import ModelRequest
    from edgesplit.models.inputs import InputSpec
    from edgesplit.runtime.loop import cut_stages, two_tier_engine
    from edgesplit.runtime.server import ServerConfig, create_app
    from edgesplit.runtime.store import ModelStore
    from edgesplit.runtime.transport import in_process

    module = types.ModuleType("edgesplit_test_mixed")
    module.mixed = _MixedDtypes  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "edgesplit_test_mixed", module)
    request = ModelRequest("edgesplit_test_mixed:mixed", (InputSpec("x", (2, 8)),))
    store = ModelStore((request,))
    graph = store.model(request.name).graph
    crossing = {t.dtype for c in graph.cuts() for t in c.tensors}
    assert {"int64", "bool", "float16", "bfloat16", "float32"} <= crossing
    x = store.model(request.name).example
    with torch.inference_mode():
        reference = graph.module(x)
    transport = in_process(create_app(ServerConfig(models=(request,)), store=store))
    engine = two_tier_engine(
        graph, "http://testserver", model=request.name, client=transport.client
    )
    try:
        for cut in range(len(graph) + 1):
            engine.switch(cut_stages(graph, cut))
            outs, record = engine.infer([x])
            assert not record["failover"], record["failed_device"]
            assert torch.equal(assemble_output(graph, outs), reference), f"cut {cut}"
    finally:
        transport.close()
