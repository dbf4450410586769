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
