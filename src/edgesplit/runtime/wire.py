"""Wire formats for tensors crossing a cut: safetensors (binary) and the thesis' JSON form.

Binary form (``POST /v1/infer``)
    The body is one safetensors document (https://huggingface.co/docs/safetensors) that
    maps each crossing tensor's name (the :class:`~edgesplit.graph.types.Tensor` name, e.g.
    ``features_2``) to its value. A DAG cut sends several tensors, each once, each in its
    own dtype (:data:`DTYPES`: int64 token ids, bool masks, float16 and bfloat16
    activations travel bit for bit), so a split is exact whatever crosses it. The format
    is a little-endian JSON header plus raw bytes, so decoding never executes code
    (no pickle) and costs one copy. String metadata (``__metadata__``) carries timings
    on responses.

JSON form (``POST /offload``, Luger 2023 Listing 1)
    ``{"input_data": {"tensor": B64, "splitting_point": SP, "model": NAME}}`` where
    ``B64`` is standard base64 (RFC 4648, with padding) of the tensor's raw bytes in
    C order, little-endian, dtype float32 unless ``"dtype"`` says otherwise. The shape
    is the one the graph has at cut ``SP``; an optional ``"shape"`` list is checked
    against it. Only a cut with exactly one crossing tensor can use this form; the
    thesis' chains always have one. The answer is JSON with the output in the same
    encoding plus ``cloud_lat_start`` / ``cloud_lat_stop``.
    :func:`offload_fields` checks the document before anything else: a body that is not
    Listing 1 is a 400, a field of the wrong type (``end`` ``"abc"``, ``splitting_point``
    ``1e400``, ``shape`` ``["a"]``) a 422 naming it (:class:`FieldError`).

Codecs (binary form only)
    ``encode_tensors(..., codec=C)`` packs the tensors with a wire codec
    (:mod:`edgesplit.system.codecs`: ``none``, ``zstd``, ``fp16``, ``bf16``, ``int8``) and
    says so in the string metadata; :func:`decode_tensors` unpacks such a body to the
    original dtypes and shapes, bounded by the same ``max_bytes``. ``none``, the default,
    writes exactly the plain document above.

Both decoders bound their input (``max_bytes``) and raise
:class:`~edgesplit.errors.InputError` with one line naming what is wrong.
Complexity: O(total tensor bytes) for every function here.

Bounds before parsing (issue 14 point 1)
    :func:`check_header` runs before safetensors sees a body: the header length is at most
    :data:`MAX_HEADER_BYTES` and lies inside the body; a cheap byte count of ``{`` (every
    entry is one JSON object, and a brace cannot be escaped) bounds the entries by
    :data:`MAX_ENTRIES` before the JSON is decoded; then every entry must have a carried
    dtype (:data:`ST_DTYPES`), a shape of at most 8 non-negative dimensions none over
    ``max_bytes``, and data offsets whose span equals the shape's bytes and lies inside
    the body. So a hostile header costs one bounded scan, never a long parse, and safetensors
    and torch only ever see documents they can load.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from edgesplit.errors import InputError, ShapeError
from edgesplit.system import codecs

#: Default bound on one request body: 256 MiB holds VGG16's largest cut 16 times over.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024

#: Media type of safetensors bodies.
SAFETENSORS_TYPE = "application/octet-stream"

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
_CARRIED = frozenset(DTYPES.values())

#: The safetensors dtype codes of :data:`DTYPES` and their bytes per element.
ST_DTYPES: dict[str, int] = {
    "F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8,
    "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
}  # fmt: skip

#: Bound on a body's safetensors JSON header (1 MiB holds thousands of tensor entries).
MAX_HEADER_BYTES = 1 << 20

#: Bound on the tensors in one body (a DAG cut crosses tens; a decoder's KV a few hundred).
MAX_ENTRIES = 4096

_MAX_RANK = 8


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``"float32"`` (the names the Graph uses)."""
    return str(dtype).removeprefix("torch.")


def encode_tensors(
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str] | None = None,
    codec: str = "none",
) -> bytes:
    """Serialise named tensors to safetensors bytes (contiguous CPU copies).

    A value that is not a tensor, or a dtype outside :data:`DTYPES`, is an
    :class:`InputError` naming it.

    ``codec`` (:mod:`edgesplit.system.codecs`) packs them first; ``none`` sends them as
    they are, with no codec metadata.
    """
    for name, value in tensors.items():
        if not isinstance(value, torch.Tensor):
            raise InputError(
                f"value {name!r} is a {type(value).__name__}, not a tensor; only tensors "
                "can cross a cut"
            )
        if value.dtype not in _CARRIED:
            raise InputError(
                f"tensor {name!r} has dtype {dtype_name(value.dtype)}, which the wire does "
                f"not carry; use one of {', '.join(DTYPES)}"
            )
    packed, codec_meta = codecs.pack(tensors, codec)
    plain = {k: v.contiguous() for k, v in packed.items()}
    metadata = {**(metadata or {}), **codec_meta}
    return st_save(plain, metadata=metadata or None)


def check_header(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """The checked safetensors header of ``data`` (module docstring: bounds before parsing).

    O(header bytes): one ``bytes.count`` and, within the bounds, one JSON decode.
    """
    if len(data) > max_bytes:
        raise InputError(f"body has {len(data)} bytes, over the limit of {max_bytes}")
    if len(data) < 8:
        raise InputError("body is not safetensors: it is shorter than the 8-byte header length")
    n = int.from_bytes(data[:8], "little")
    if n > MAX_HEADER_BYTES or 8 + n > len(data):
        raise InputError(
            f"safetensors header length {n} is over {MAX_HEADER_BYTES} bytes or past the "
            f"body's {len(data)} bytes; send a safetensors document"
        )
    if data.count(b"{", 8, 8 + n) > MAX_ENTRIES + 2:
        raise InputError(f"safetensors header has over {MAX_ENTRIES} entries; send fewer tensors")
    try:
        header = json.loads(data[8 : 8 + n])
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InputError("safetensors header is not valid JSON") from None
    if not isinstance(header, dict):
        raise InputError("safetensors header must be a JSON object of tensor entries")
    room = len(data) - 8 - n
    for name, entry in header.items():
        if name == "__metadata__":
            if entry is not None and not (
                isinstance(entry, dict) and all(isinstance(v, str) for v in entry.values())
            ):
                raise InputError("safetensors '__metadata__' must map strings to strings")
            continue
        _check_entry(name, entry, room, max_bytes)
    return header


def _check_entry(name: str, entry: Any, room: int, max_bytes: int) -> None:
    if not isinstance(entry, dict):
        raise InputError(f"safetensors entry {name!r} is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in ST_DTYPES:
        raise InputError(
            f"tensor {name!r} has dtype {str(dtype)[:20]!r}, which the wire does not carry; "
            f"use one of {', '.join(ST_DTYPES)}"
        )
    if (
        not isinstance(shape, list)
        or len(shape) > _MAX_RANK
        or not all(type(d) is int and 0 <= d <= max_bytes for d in shape)
    ):
        raise InputError(
            f"tensor {name!r} has shape {str(shape)[:60]}; give at most {_MAX_RANK} "
            f"dimensions, each an integer in 0..{max_bytes}"
        )
    numel = 1
    for d in shape:
        numel *= d
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(type(o) is int for o in offsets)
        or not 0 <= offsets[0] <= offsets[1] <= room
        or offsets[1] - offsets[0] != numel * ST_DTYPES[dtype]
    ):
        raise InputError(
            f"tensor {name!r} has data_offsets {str(offsets)[:60]}, which do not hold its "
            f"{dtype}{shape} inside the body"
        )


def decode_tensors(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, torch.Tensor]:
    """Parse safetensors bytes into named tensors; never unpickles.

    The header passes :func:`check_header` before safetensors parses anything.
    """
    check_header(data, max_bytes)
    try:
        tensors = dict(st_load(data))
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise InputError(f"body is not valid safetensors ({str(err).splitlines()[0]})") from None
    # A body packed by a wire codec is unpacked here, so that every receiver reads it.
    return codecs.unpack(tensors, decode_metadata(data), max_bytes)


def decode_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` strings of a safetensors document (empty when absent).

    The header passes :func:`check_header` (bounded by its own length) first.
    """
    header = check_header(data, max(len(data), 8))
    meta = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()}


def tensor_to_b64(t: torch.Tensor) -> str:
    """Raw C-order little-endian bytes of ``t``, base64 encoded (Listing 1's ``tensor``)."""
    # torch stores native byte order; every platform torch supports here is little-endian.
    raw = t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    return base64.b64encode(raw).decode("ascii")


def b64_to_tensor(
    text: str, shape: tuple[int, ...], dtype: str = "float32", max_bytes: int = DEFAULT_MAX_BYTES
) -> torch.Tensor:
    """Inverse of :func:`tensor_to_b64`; checks the byte count against ``shape``."""
    if dtype not in DTYPES:
        raise InputError(f"field 'dtype' is {dtype!r}; use one of {', '.join(DTYPES)}")
    if len(text) * 3 // 4 > max_bytes:
        raise InputError(f"field 'tensor' decodes to over {max_bytes} bytes")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("field 'tensor' is not valid base64 (RFC 4648 with padding)") from None
    torch_dtype = DTYPES[dtype]
    itemsize = torch.empty((), dtype=torch_dtype).element_size()
    numel = 1
    for d in shape:
        numel *= d
    if len(raw) != numel * itemsize:
        raise ShapeError(
            f"field 'tensor' has {len(raw)} bytes but shape {list(shape)} of {dtype} needs "
            f"{numel * itemsize}; send the tensor at the chosen splitting_point"
        )
    flat = torch.frombuffer(bytearray(raw), dtype=torch_dtype)
    return flat.reshape(shape).clone()


class FieldError(InputError):
    """A bad field of a request: ``field`` names it; ``status`` is 400 for a document that is
    not the expected form at all, 422 for a field whose value is wrong."""

    def __init__(self, message: str, field: str, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


def offload_fields(body: bytes) -> dict[str, Any]:
    """The checked ``input_data`` of an /offload body (Listing 1); a 4xx naming the field."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise FieldError("body is not JSON; send Luger's Listing 1 document", "body", 400) from None
    data = doc.get("input_data") if isinstance(doc, dict) else None
    if not isinstance(data, dict):
        raise FieldError(
            "body must be JSON {'input_data': {'tensor', 'splitting_point', 'model'}}",
            "input_data",
            400,
        )
    for key in ("model", "splitting_point", "tensor"):
        if key not in data:
            raise FieldError(f"field 'input_data.{key}' is missing", key, 400)
    for key in ("model", "tensor", "dtype"):
        if key in data and not isinstance(data[key], str):
            raise FieldError(f"field {key!r} must be a string", key, 422)
    out = {**data, "splitting_point": _int_field(data, "splitting_point")}
    out["end"] = _int_field(data, "end")
    if "shape" in data:
        shape = data["shape"]
        if not isinstance(shape, list) or len(shape) > 8:
            raise FieldError("field 'shape' must be a list of at most 8 integers", "shape", 422)
        out["shape"] = [_int_field({"shape": d}, "shape") for d in shape]
    return out


def _int_field(data: dict[str, Any], key: str) -> int | None:
    """A JSON integer field of /offload: an int, an integral finite float or a digit string."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        value = None
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and is_int_text(value.strip().removeprefix("-"))
    ):
        value = int(value)
    if not isinstance(value, int):
        raise FieldError(
            f"field {key!r} must be an integer, not {str(data.get(key))[:40]!r}", key, 422
        )
    return value


def is_int_text(text: str) -> bool:
    """Plain ASCII decimal digits, at most 18 of them (so ``int`` neither fails nor grows)."""
    return text.isascii() and text.isdecimal() and len(text) <= 18


def offload_document(model: str, splitting_point: int, tensor: torch.Tensor) -> dict[str, Any]:
    """The request body of ``POST /offload`` (Luger Listing 1) for one crossing tensor."""
    return {
        "input_data": {
            "tensor": tensor_to_b64(tensor),
            "splitting_point": splitting_point,
            "model": model,
            "shape": list(tensor.shape),
            "dtype": dtype_name(tensor.dtype),
        }
    }
