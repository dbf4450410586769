"""Codec costs for the cost model: exact bytes ratios against the real wire, and times recorded."""

from __future__ import annotations

import math

import pytest
import torch

from edgesplit.errors import InputError
from edgesplit.predict.codec_costs import codec_costs
from edgesplit.runtime import codecs as wire_codecs
from edgesplit.system.link import CODECS


def test_bytes_ratio_is_the_real_wire_ratio_for_every_codec() -> None:
    x = {"x": (torch.randn(1, 32, 14, 14, generator=torch.Generator().manual_seed(0))).relu()}
    costs = codec_costs(x, repeats=2)
    assert list(costs) == list(CODECS)
    plain = len(wire_codecs.encode(x, "none")[0])
    for codec, cost in costs.items():
        # The oracle: the body the runtime actually sends under that codec.
        assert cost.wire_bytes == len(wire_codecs.encode(x, codec)[0]), codec
        assert cost.raw_bytes == plain
        assert math.isfinite(cost.encode_s_per_byte) and cost.encode_s > 0
        assert math.isfinite(cost.decode_s_per_byte) and cost.decode_s > 0
    assert costs["none"].bytes_ratio == 1.0
    assert costs["fp16"].bytes_ratio == pytest.approx(0.5, abs=0.02)
    assert costs["int8"].bytes_ratio < 0.3
    assert costs["zstd"].bytes_ratio < 0.8  # ReLU leaves about half the values exactly zero


def test_record_is_plain_data_and_repeats_are_checked() -> None:
    cost = codec_costs({"x": torch.ones(4, 4)}, codecs=("zstd",), repeats=1)["zstd"]
    record = cost.to_dict()
    assert record["codec"] == "zstd" and record["bytes_ratio"] == cost.bytes_ratio
    with pytest.raises(InputError, match="repeats is 0"):
        codec_costs({"x": torch.ones(1)}, repeats=0)
