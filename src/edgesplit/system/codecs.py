"""Wire codecs: the tensor-level math of the codecs a :class:`~edgesplit.system.link.Link`
may allow (``none``, ``zstd``, ``fp16``, ``bf16``, ``int8``).

:func:`pack` turns named tensors into the tensors that travel plus string metadata, and
:func:`unpack` inverts it, restoring every tensor's dtype and shape. Both are pure: the
bytes format (safetensors, :mod:`edgesplit.runtime.wire`) wraps them, and the cost model
(:mod:`edgesplit.predict.codec_costs`) times them.

Layering. The codec vocabulary (``CODECS``) belongs to the link, in ``system``, and both
``predict`` (codec costs) and ``runtime`` (the wire) need the math; ``predict`` sits below
``runtime`` in import-linter's layers contract, so the math lives here, beside the link,
and imports only torch, numpy and zstandard. The runtime adds the bytes;
:mod:`edgesplit.runtime.codecs` is the per-link API the engine calls.

The codecs
    ``none``  the tensor as it is (exact).
    ``zstd``  lossless: each tensor's raw little-endian bytes as one zstd frame (level 1,
              zstd's fastest standard level; activations compress mostly through the
              exact zeros ReLU leaves). Exact for every dtype.
    ``fp16``, ``bf16``  float32 and float64 tensors are rounded to nearest (IEEE 754) to
              2 bytes and widened back on decode: relative error ≤ 2^-11 (fp16, values
              in its normal range 6.1e-5…65504; beyond ±65504 a value becomes ±inf) and
              ≤ 2^-8 (bf16, float32's whole range).
    ``int8``  per-channel affine quantisation, as ONNX ``DynamicQuantizeLinear`` but
              signed: per channel ``lo = min(x, 0)``, ``hi = max(x, 0)``,
              ``scale = (hi − lo)/255`` (1 for an all-zero channel),
              ``zero_point = −128 − round(lo/scale)``, ``q = clamp(round(x/scale) +
              zero_point, −128, 127)`` and ``x̂ = (q − zero_point)·scale``, so
              ``|x̂ − x| ≤ scale/2`` and zero is exact. The channel dim is 1 for tensors
              of 3 or more dims (C of NCHW and NCL, the token of (B, T, H)), 0 for 2-D
              tensors (one scale per row: per sample of (N, features)), and a 0-D or
              1-D tensor is one channel. A tensor holding inf or nan cannot be sent.

Integer and bool tensors, float16/bfloat16 tensors under ``fp16``/``bf16`` (already two
bytes) and empty tensors travel unchanged under every lossy codec; their entry says
``"codec": "none"``.

Metadata (all text, parsed with ``json``/``float``/``int``, never unpickled)
    ``edgesplit.codec``               the document's codec
    ``edgesplit.codec/NAME``          JSON ``{"codec", "dtype", "shape"[, "dim"]}``
    ``edgesplit.scale/NAME``          int8: comma-separated decimal scales, one per channel
    ``edgesplit.zero_point/NAME``     int8: comma-separated integer zero points

:func:`unpack` validates all of it and names the tensor in every error; a zstd frame is
decompressed to exactly the size its declared dtype and shape give, never more.
Complexity: O(total tensor bytes) for every function here.

>>> x = {"a": torch.tensor([[0.0, 1.0, 2.0]])}
>>> payload, meta = pack(x, "int8")
>>> payload["a"].dtype, meta["edgesplit.scale/a"]
(torch.int8, '0.007843138')
>>> torch.equal(unpack(payload, meta)["a"], x["a"])
False
>>> fidelity(x, unpack(payload, meta))["a"].max_abs < 0.004
True
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import zstandard

from edgesplit.errors import InputError, ShapeError
from edgesplit.system.link import CODECS

LOSSLESS = ("none", "zstd")
"""Codecs after which ``torch.equal`` holds."""

MARK = "edgesplit.codec"
"""Metadata key naming a packed document's codec; its absence means a plain document."""

_WIDE_FLOATS = (torch.float32, torch.float64)
_NARROW = {"fp16": torch.float16, "bf16": torch.bfloat16}
_ZSTD_LEVEL = 1
_SPEC, _SCALE, _ZERO = f"{MARK}/", "edgesplit.scale/", "edgesplit.zero_point/"


def link_key(a: str, b: str) -> str:
    """The key of the link joining devices ``a`` and ``b`` in a codec map (order-free):
    a plan's ``meta["codecs"]`` and the engine's per-link codecs use it."""
    return "|".join(sorted((a, b)))


def channel_dim(ndim: int) -> int | None:
    """The int8 codec's channel dim for a tensor of ``ndim`` dims (None: one channel)."""
    if ndim >= 3:
        return 1
    return 0 if ndim == 2 else None


def _codec_for(t: torch.Tensor, codec: str) -> str:
    """The codec a tensor actually travels with: lossy codecs leave some tensors alone."""
    if t.numel() == 0 or codec in LOSSLESS:
        return "none" if t.numel() == 0 else codec
    if codec in _NARROW:
        return codec if t.dtype in _WIDE_FLOATS else "none"
    return codec if t.is_floating_point() else "none"


def _raw_bytes(t: torch.Tensor) -> bytes:
    # torch stores native byte order; every platform torch supports here is little-endian.
    return bytes(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())


def _as_channels(t: torch.Tensor, dim: int | None) -> torch.Tensor:
    return t.reshape(1, -1) if dim is None else t.movedim(dim, 0).reshape(t.shape[dim], -1)


def _quantize(name: str, t: torch.Tensor) -> tuple[torch.Tensor, dict[str, str], int | None]:
    if not bool(torch.isfinite(t).all()):
        raise InputError(
            f"tensor {name!r} holds inf or nan, which int8 cannot carry; "
            "send it with codec none, zstd, fp16 or bf16"
        )
    dim = channel_dim(t.dim())
    work = torch.float64 if t.dtype == torch.float64 else torch.float32
    v = _as_channels(t.to(work), dim)
    lo = v.amin(dim=1).clamp(max=0)
    hi = v.amax(dim=1).clamp(min=0)
    scale = (hi - lo) / 255.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero = (-128.0 - torch.round(lo / scale)).clamp(-128, 127)
    q = (torch.round(v / scale[:, None]) + zero[:, None]).clamp(-128, 127).to(torch.int8)
    moved = t.shape if dim is None else t.movedim(dim, 0).shape
    q = q.reshape(moved) if dim is None else q.reshape(moved).movedim(0, dim)
    meta = {
        _SCALE + name: ",".join(str(s) for s in scale.numpy()),
        _ZERO + name: ",".join(str(int(z)) for z in zero.to(torch.int64)),
    }
    return q.contiguous(), meta, dim


def pack(
    tensors: Mapping[str, torch.Tensor], codec: str
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Named CPU tensors as the tensors that travel under ``codec`` plus their metadata.

    ``none`` returns the tensors as they are and no metadata (today's plain document).
    """
    if codec not in CODECS:
        raise InputError(f"unknown codec {codec!r}; choose from {', '.join(CODECS)}")
    plain = {k: v.detach().to("cpu") for k, v in tensors.items()}
    if codec == "none":
        return plain, {}
    payload: dict[str, torch.Tensor] = {}
    meta = {MARK: codec}
    for name, t in plain.items():
        used = _codec_for(t, codec)
        spec: dict[str, Any] = {"codec": used, "dtype": _dtype_name(t.dtype), "shape": [*t.shape]}
        if used == "zstd":
            frame = zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(_raw_bytes(t))
            payload[name] = torch.frombuffer(bytearray(frame), dtype=torch.uint8)
        elif used in _NARROW:
            payload[name] = t.to(_NARROW[used])
        elif used == "int8":
            payload[name], extra, spec["dim"] = _quantize(name, t)
            meta.update(extra)
        else:
            payload[name] = t
        meta[_SPEC + name] = json.dumps(spec, separators=(",", ":"))
    return payload, meta


def is_packed(metadata: Mapping[str, str]) -> bool:
    """Whether a document's metadata says its tensors were packed by a codec."""
    return MARK in metadata


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _dtype(name: str, value: object) -> torch.dtype:
    dtype = getattr(torch, value, None) if isinstance(value, str) else None
    if not isinstance(dtype, torch.dtype):
        raise InputError(f"tensor {name!r}: codec metadata has dtype {value!r}, not a torch dtype")
    return dtype


def _spec(name: str, metadata: Mapping[str, str], codec: str) -> dict[str, Any]:
    text = metadata.get(_SPEC + name)
    if text is None:
        raise InputError(f"tensor {name!r}: metadata {_SPEC + name!r} is missing; re-encode it")
    try:
        spec = json.loads(text)
    except ValueError:
        raise InputError(f"tensor {name!r}: metadata {_SPEC + name!r} is not JSON") from None
    if not isinstance(spec, dict):
        raise InputError(f"tensor {name!r}: metadata {_SPEC + name!r} is not a JSON object")
    if spec.get("codec") not in (codec, "none"):
        raise InputError(
            f"tensor {name!r}: codec {spec.get('codec')!r} in a {codec!r} document; "
            f"use {codec!r} or 'none'"
        )
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise InputError(f"tensor {name!r}: codec metadata 'shape' {shape!r} is not a shape")
    spec["dtype"] = _dtype(name, spec.get("dtype"))
    return spec


def _expect(name: str, t: torch.Tensor, dtype: torch.dtype, shape: list[int]) -> None:
    if t.dtype != dtype or list(t.shape) != shape:
        raise ShapeError(
            f"tensor {name!r}: received {_dtype_name(t.dtype)} {list(t.shape)}, but its codec "
            f"metadata needs {_dtype_name(dtype)} {shape}; the sender must re-encode it"
        )


def _numbers(name: str, metadata: Mapping[str, str], key: str, n: int, kind: type) -> np.ndarray:
    text = metadata.get(key + name)
    if text is None:
        raise InputError(f"tensor {name!r}: metadata {key + name!r} is missing (int8 needs it)")
    try:
        values = np.array(text.split(","), dtype=np.float64 if kind is float else np.int64)
    except (ValueError, OverflowError):
        raise InputError(f"tensor {name!r}: metadata {key + name!r} is not a number list") from None
    if values.size != n:
        raise InputError(
            f"tensor {name!r}: metadata {key + name!r} has {values.size} values for {n} channels"
        )
    return values


def _dequantize(
    name: str, q: torch.Tensor, spec: dict[str, Any], meta: Mapping[str, str]
) -> torch.Tensor:
    dtype, shape = spec["dtype"], spec["shape"]
    if not dtype.is_floating_point:
        raise InputError(f"tensor {name!r}: int8 metadata restores {dtype}, not a float dtype")
    dim = spec.get("dim")
    if dim is not None and (
        not isinstance(dim, int) or isinstance(dim, bool) or not 0 <= dim < len(shape)
    ):
        raise InputError(f"tensor {name!r}: int8 metadata 'dim' {dim!r} is not a dim of {shape}")
    _expect(name, q, torch.int8, shape)
    n = 1 if dim is None else shape[dim]
    scale = _numbers(name, meta, _SCALE, n, float)
    zero = _numbers(name, meta, _ZERO, n, int)
    if not (np.isfinite(scale).all() and (scale > 0).all()):
        raise InputError(f"tensor {name!r}: int8 scales must be finite and positive")
    if not ((zero >= -128).all() and (zero <= 127).all()):
        raise InputError(f"tensor {name!r}: int8 zero points must lie in [-128, 127]")
    work = torch.float64 if dtype == torch.float64 else torch.float32
    v = _as_channels(q, dim).to(work)
    x = (v - torch.from_numpy(zero).to(work)[:, None]) * torch.from_numpy(scale).to(work)[:, None]
    if dim is None:
        return x.reshape(shape).to(dtype)
    moved = [shape[dim], *shape[:dim], *shape[dim + 1 :]]
    return x.reshape(moved).movedim(0, dim).to(dtype).contiguous()


def _unzstd(name: str, frame: torch.Tensor, dtype: torch.dtype, shape: list[int]) -> torch.Tensor:
    if frame.dtype != torch.uint8 or frame.dim() != 1:
        raise ShapeError(f"tensor {name!r}: a zstd frame travels as 1-D uint8, got {frame.dtype}")
    size = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    data = frame.numpy().tobytes()
    try:
        declared = zstandard.frame_content_size(data)
        if declared not in (-1, size):
            raise InputError(
                f"tensor {name!r}: zstd frame declares {declared} bytes; its shape needs {size}"
            )
        raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
    except zstandard.ZstdError as err:
        raise InputError(f"tensor {name!r}: not a valid zstd frame ({err})") from None
    if len(raw) != size:
        raise InputError(
            f"tensor {name!r}: zstd frame holds {len(raw)} bytes; its shape needs {size}"
        )
    flat = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    if dtype == torch.bool and bool((flat > 1).any()):
        raise InputError(f"tensor {name!r}: bool bytes must be 0 or 1")
    return flat.view(dtype).reshape(shape)


def unpack(
    payload: Mapping[str, torch.Tensor], metadata: Mapping[str, str], max_bytes: int | None = None
) -> dict[str, torch.Tensor]:
    """Inverse of :func:`pack`: the original dtypes and shapes, every field checked.

    ``max_bytes`` bounds the total size the declared shapes may decode to. A plain
    document (no :data:`MARK`) comes back as it is.
    """
    codec = metadata.get(MARK)
    if codec is None:
        return dict(payload)
    if codec not in CODECS:
        raise InputError(f"metadata {MARK!r} names codec {codec!r}; known: {', '.join(CODECS)}")
    described = {k[len(_SPEC) :] for k in metadata if k.startswith(_SPEC)}
    stray = sorted(described - set(payload))
    if stray:
        raise InputError(f"tensor {stray[0]!r}: codec metadata names a tensor the body lacks")
    specs = {name: _spec(name, metadata, codec) for name in payload}
    total = sum(
        math.prod(s["shape"]) * torch.empty((), dtype=s["dtype"]).element_size()
        for s in specs.values()
    )
    if max_bytes is not None and total > max_bytes:
        raise InputError(
            f"codec metadata declares {total} bytes of tensors, over the limit of {max_bytes}"
        )
    out: dict[str, torch.Tensor] = {}
    for name, t in payload.items():
        spec = specs[name]
        used, dtype, shape = spec["codec"], spec["dtype"], spec["shape"]
        if used == "zstd":
            out[name] = _unzstd(name, t, dtype, shape)
        elif used in _NARROW:
            if dtype not in _WIDE_FLOATS:
                raise InputError(
                    f"tensor {name!r}: {used} restores float32 or float64, not {dtype}"
                )
            _expect(name, t, _NARROW[used], shape)
            out[name] = t.to(dtype)
        elif used == "int8":
            out[name] = _dequantize(name, t, spec, metadata)
        else:
            _expect(name, t, dtype, shape)
            out[name] = t
    return out


@dataclass(frozen=True)
class Fidelity:
    """How far a decoded tensor is from the original.

    ``max_rel`` is ``max_abs`` over the original's largest magnitude (0 for an all-zero
    tensor), the usual relative error of a quantised tensor.
    """

    equal: bool
    max_abs: float
    max_rel: float


def fidelity(
    original: Mapping[str, torch.Tensor], decoded: Mapping[str, torch.Tensor]
) -> dict[str, Fidelity]:
    """Per tensor: bitwise equality (``torch.equal``), max absolute and relative error."""
    report = {}
    for name, a in original.items():
        b = decoded[name]
        if a.shape != b.shape:
            raise ShapeError(f"tensor {name!r}: decoded shape {list(b.shape)} != {list(a.shape)}")
        a64, b64 = a.detach().cpu().to(torch.float64), b.detach().cpu().to(torch.float64)
        diff = (a64 - b64).abs()
        diff[(a64 == b64) | (a64.isnan() & b64.isnan())] = 0.0
        max_abs = float(diff.max()) if diff.numel() else 0.0
        scale = float(a64[a64.isfinite()].abs().max()) if a64.isfinite().any() else 0.0
        rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf)
        report[name] = Fidelity(torch.equal(a.cpu(), b.cpu()), max_abs, rel)
    return report
