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

For planning, :func:`wire_nbytes` gives the bytes one graph tensor puts on the wire
under a codec (fp16/bf16 halve a float32 tensor, int8 quarters it plus a scale and zero
point per channel, zstd uses the ratio measured on that very tensor), and
:func:`measure_graph_codecs` records, in a :class:`CodecRecord` saved with the profile
(``edgesplit profile --codecs``), the per-byte encode/decode seconds of every codec on
this host and the zstd ratio of every tensor of the model.

>>> import torch
>>> costs = codec_costs({"x": torch.ones(1, 64, 16, 16)}, codecs=("none", "fp16"), repeats=1)
>>> costs["none"].bytes_ratio, round(costs["fp16"].bytes_ratio, 2)
(1.0, 0.5)
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import save as st_save

from edgesplit.errors import InputError
from edgesplit.graph.partition import partition
from edgesplit.graph.types import Graph
from edgesplit.system.codecs import channel_dim, pack, unpack
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


# -- the cost model's view: bytes after a codec per tensor, and per-byte seconds ---------

INT8_CHANNEL_BYTES = 20
"""Metadata bytes ``int8`` adds per channel: a scale (up to ~14 characters as text) and a
zero point (up to 4), each with its comma (:mod:`edgesplit.system.codecs`)."""

_NARROW_FROM = ("float32", "float64")
_FLOATS = ("float16", "bfloat16", "float32", "float64")


def _plain_dtype(dtype: str) -> str:
    return dtype.removeprefix("torch.")


def wire_nbytes(
    shape: Sequence[int], dtype: str, nbytes: float, codec: str, zstd_ratio: float = 1.0
) -> float:
    """Bytes one tensor of ``nbytes`` raw bytes puts on the wire under ``codec``.

    ``none`` = ``nbytes``; ``zstd`` = ``nbytes·zstd_ratio`` (the ratio measured on that
    tensor, :class:`CodecRecord`); ``fp16``/``bf16`` = 2 bytes per element of a float32 or
    float64 tensor; ``int8`` = 1 byte per element of a float tensor plus
    :data:`INT8_CHANNEL_BYTES` per channel (:func:`~edgesplit.system.codecs.channel_dim`).
    Tensors a lossy codec leaves alone (integers, bool, already-narrow floats) keep
    ``nbytes``. O(len(shape)).
    """
    if codec not in CODECS:
        raise InputError(f"unknown codec {codec!r}; choose from {', '.join(CODECS)}")
    if nbytes <= 0 or codec == "none":
        return float(max(nbytes, 0))
    numel = math.prod(shape)
    kind = _plain_dtype(dtype)
    if codec == "zstd":
        return float(nbytes) * zstd_ratio
    if codec in ("fp16", "bf16"):
        return 2.0 * numel if kind in _NARROW_FROM else float(nbytes)
    if kind not in _FLOATS:
        return float(nbytes)
    dim = channel_dim(len(shape))
    channels = 1 if dim is None else shape[dim]
    return float(numel + channels * INT8_CHANNEL_BYTES)


class CodecRate(BaseModel):
    """One codec's measured seconds per raw byte on the recording host (encode, decode)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    encode_s_per_byte: float = Field(ge=0)
    decode_s_per_byte: float = Field(ge=0)
    bytes_ratio: float = Field(gt=0, description="wire/raw bytes on the timed tensors")


class CodecRecord(BaseModel):
    """What a profile records about the codecs: per-byte seconds and per-tensor zstd ratios.

    ``compute_s`` is the host's compute seconds for the model (the profile's sum of node
    medians, or one unsplit forward when measured alone): a device whose node seconds add
    up to ``s`` runs the codecs ``s/compute_s`` times as long as this host
    (:mod:`edgesplit.plan.codec_choice`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rates: dict[str, CodecRate]
    zstd_ratio: dict[str, float] = Field(default_factory=dict, description="per graph tensor")
    compute_s: float = Field(gt=0)
    threads: int = Field(ge=1)


def _values(graph: Graph, inputs: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every tensor of one forward of ``graph``, by graph tensor name (node by node)."""
    split = partition(graph, list(range(len(graph.nodes))))
    values: dict[str, torch.Tensor] = dict(zip(graph.input_names, inputs, strict=True))
    names = {t.name for t in graph.tensors}
    # Copies as produced: a later in-place op (ReLU(inplace=True)) must not change them.
    seen = {k: v.detach().clone() for k, v in values.items()}
    with torch.inference_mode():
        for part in split.parts:
            out = part(values)
            values.update(out)
            seen.update({k: v.clone() for k, v in out.items() if isinstance(v, torch.Tensor)})
    return {k: v for k, v in seen.items() if k in names}


def measure_graph_codecs(
    graph: Graph,
    inputs: Sequence[torch.Tensor],
    *,
    codecs: Sequence[str] = CODECS,
    repeats: int = 3,
    sample_bytes: int = 8 << 20,
    compute_s: float | None = None,
) -> CodecRecord:
    """Time every codec on this host on ``graph``'s own tensors and measure zstd per tensor.

    The zstd ratio of each graph tensor is exact on the given inputs (its raw bytes
    compressed as the wire does). The seconds per byte come from :func:`codec_costs` on
    an evenly spaced sample of the finite float tensors of about ``sample_bytes``.
    ``compute_s`` defaults to the median of ``repeats`` unsplit forwards. Complexity:
    O(forward + tensor bytes + repeats·sample_bytes) per codec.
    """
    values = _values(graph, inputs)
    ratios = {}
    for name, t in values.items():
        raw = t.detach().cpu().contiguous()
        size = raw.numel() * raw.element_size()
        if size:
            ratios[name] = pack({name: raw}, "zstd")[0][name].numel() / size
    finite = [
        t for t in values.values()
        if t.is_floating_point() and t.numel() and bool(torch.isfinite(t).all())
    ]  # fmt: skip
    total = sum(t.numel() * t.element_size() for t in finite)
    stride = max(1, round(total / sample_bytes)) if total else 1
    sample = {f"t{i}": t for i, t in enumerate(finite[::stride])} or {"t": torch.zeros(1024)}
    costs = codec_costs(sample, codecs, repeats)
    if compute_s is None:
        module = graph.module
        with torch.inference_mode():
            compute_s, _ = _median_seconds(lambda: module(*inputs), repeats)
    rates = {
        c: CodecRate(
            encode_s_per_byte=k.encode_s_per_byte,
            decode_s_per_byte=k.decode_s_per_byte,
            bytes_ratio=k.bytes_ratio,
        )
        for c, k in costs.items()
    }
    return CodecRecord(
        rates=rates, zstd_ratio=ratios, compute_s=max(compute_s, 1e-9),
        threads=torch.get_num_threads(),
    )  # fmt: skip
