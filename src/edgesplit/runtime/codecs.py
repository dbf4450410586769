"""Wire codecs per link, as the runtime uses them (issue 13, point 3).

A link allows some codecs (:attr:`edgesplit.system.link.Link.codecs`); a plan picks one
per link (:meth:`edgesplit.system.topology.Topology.check_codec` refuses one the link does
not allow); the sender calls :func:`encode` with it and the receiver :func:`decode`, which
reads the codec from the body itself. The body is one safetensors document
(:mod:`edgesplit.runtime.wire`); the codec math, its metadata and its bounds are
:mod:`edgesplit.system.codecs` (kept below ``predict`` so that the cost model can time it,
:mod:`edgesplit.predict.codec_costs`).

Lossless codecs (``none``, ``zstd``) keep ``torch.equal`` on every dtype; the lossy ones
(``fp16``, ``bf16``, ``int8``) restore the dtype and shape, and :func:`round_trip`
reports their max absolute and relative error with the bytes and seconds a transfer
record needs. The engine sends each link under the plan's codec
(:mod:`edgesplit.runtime.engine`); ``plan --codec`` chooses it with the split
(:mod:`edgesplit.plan.codec_choice`).

>>> import torch
>>> body, meta = encode({"x": torch.ones(2, 3)}, "fp16")
>>> meta["edgesplit.codec"], decode(body)["x"].dtype
('fp16', torch.float32)
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from edgesplit.runtime import wire
from edgesplit.system.codecs import LOSSLESS, Fidelity, fidelity, pack


def encode(
    tensors: Mapping[str, torch.Tensor],
    codec: str = "none",
    metadata: Mapping[str, str] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Named tensors as one safetensors body under ``codec``, and the metadata it carries.

    ``metadata`` (timings, say) travels beside the codec's own keys.
    """
    payload, codec_meta = pack(tensors, codec)
    sent = {**(metadata or {}), **codec_meta}
    return wire.encode_tensors(payload, sent), sent


def decode(data: bytes, max_bytes: int = wire.DEFAULT_MAX_BYTES) -> dict[str, torch.Tensor]:
    """A body made by :func:`encode` (any codec) back to the original dtypes and shapes.

    Bounded by ``max_bytes``: the body, and the sizes its metadata declares; every fault
    is one :class:`~edgesplit.errors.InputError` naming the tensor.
    """
    return wire.decode_tensors(data, max_bytes)


@dataclass(frozen=True)
class RoundTrip:
    """One encode/decode of a set of tensors: bytes before and after, seconds, error."""

    codec: str
    raw_bytes: int
    wire_bytes: int
    encode_s: float
    decode_s: float
    errors: dict[str, Fidelity]

    @property
    def lossless(self) -> bool:
        return self.codec in LOSSLESS

    @property
    def bytes_ratio(self) -> float:
        """Wire bytes over the raw tensor bytes (< 1: the codec saves bytes)."""
        return self.wire_bytes / self.raw_bytes if self.raw_bytes else 1.0

    @property
    def max_abs(self) -> float:
        return max((e.max_abs for e in self.errors.values()), default=0.0)

    @property
    def max_rel(self) -> float:
        return max((e.max_rel for e in self.errors.values()), default=0.0)


def round_trip(tensors: Mapping[str, torch.Tensor], codec: str) -> RoundTrip:
    """Encode and decode once, timing each (``time.perf_counter``) and measuring the error.

    ``raw_bytes`` counts the tensors' own bytes, ``wire_bytes`` the whole body.
    """
    raw = sum(t.numel() * t.element_size() for t in tensors.values())
    start = time.perf_counter()
    body, _ = encode(tensors, codec)
    mid = time.perf_counter()
    back = decode(body, max_bytes=max(wire.DEFAULT_MAX_BYTES, raw, len(body)))
    end = time.perf_counter()
    return RoundTrip(codec, raw, len(body), mid - start, end - mid, fidelity(tensors, back))
