"""What each wire codec costs on this host: seconds per byte and the bytes it leaves.

For the cost model (issue 13, point 3): a transfer of ``B`` raw bytes under codec ``c``
sends ``B·bytes_ratio(c)`` bytes over the link (Luger eq. 4.3 prices those) and spends
``B·(encode_s_per_byte(c) + decode_s_per_byte(c))`` seconds in the codec. Both are
measured here on given tensors (a model's crossing tensors, say), by timing
:func:`edgesplit.system.codecs.pack` and :func:`~edgesplit.system.codecs.unpack` — the
codec work alone, since the safetensors framing around it is paid by every codec,
``none`` included. The bytes ratio is exact: the safetensors document with the codec
over the one without, metadata included. Each time is the median of ``repeats`` runs
(``time.perf_counter``). Complexity: O(repeats · tensor bytes) per codec.

>>> import torch
>>> costs = codec_costs({"x": torch.ones(1, 64, 16, 16)}, codecs=("none", "fp16"), repeats=1)
>>> costs["none"].bytes_ratio, round(costs["fp16"].bytes_ratio, 2)
(1.0, 0.5)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from safetensors.torch import save as st_save

from edgesplit.errors import InputError
from edgesplit.system.codecs import pack, unpack
from edgesplit.system.link import CODECS


@dataclass(frozen=True)
class CodecCost:
    """One codec on one set of tensors: bytes and seconds.

    ``raw_bytes`` is the plain safetensors document (codec ``none``), ``wire_bytes`` the
    document under this codec; the seconds are the codec's encode and decode.
    """

    codec: str
    raw_bytes: int
    wire_bytes: int
    encode_s: float
    decode_s: float

    @property
    def bytes_ratio(self) -> float:
        """Wire bytes with the codec over wire bytes without it."""
        return self.wire_bytes / self.raw_bytes

    @property
    def encode_s_per_byte(self) -> float:
        return self.encode_s / self.raw_bytes

    @property
    def decode_s_per_byte(self) -> float:
        return self.decode_s / self.raw_bytes

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields plus the derived rates, for a profile record."""
        return {
            **asdict(self),
            "bytes_ratio": self.bytes_ratio,
            "encode_s_per_byte": self.encode_s_per_byte,
            "decode_s_per_byte": self.decode_s_per_byte,
        }


def _median_seconds(fn: Any, repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def codec_costs(
    tensors: Mapping[str, torch.Tensor], codecs: Sequence[str] = CODECS, repeats: int = 5
) -> dict[str, CodecCost]:
    """Each codec's measured cost on ``tensors`` (CPU), keyed by codec name."""
    if repeats < 1:
        raise InputError(f"repeats is {repeats}; measure at least once")
    plain = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    raw = len(st_save(plain))
    costs = {}
    for codec in codecs:
        enc_s, (payload, meta) = _median_seconds(lambda c=codec: pack(plain, c), repeats)
        dec_s, _ = _median_seconds(lambda p=payload, m=meta: unpack(p, m), repeats)
        wire = len(st_save({k: v.contiguous() for k, v in payload.items()}, metadata=meta or None))
        costs[codec] = CodecCost(codec, raw, wire, enc_s, dec_s)
    return costs
