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

Codecs (binary form only)
    ``encode_tensors(..., codec=C)`` packs the tensors with a wire codec
    (:mod:`edgesplit.system.codecs`: ``none``, ``zstd``, ``fp16``, ``bf16``, ``int8``) and
    says so in the string metadata; :func:`decode_tensors` unpacks such a body to the
    original dtypes and shapes, bounded by the same ``max_bytes``. ``none``, the default,
    writes exactly the plain document above.

Both decoders bound their input (``max_bytes``) and raise
:class:`~edgesplit.errors.InputError` with one line naming what is wrong.
Complexity: O(total tensor bytes) for every function here.
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


def decode_tensors(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, torch.Tensor]:
    """Parse safetensors bytes into named tensors; never unpickles."""
    if len(data) > max_bytes:
        raise InputError(f"body has {len(data)} bytes, over the limit of {max_bytes}")
    if len(data) < 8:
        raise InputError("body is not safetensors: it is shorter than the 8-byte header length")
    try:
        tensors = dict(st_load(data))
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise InputError(f"body is not valid safetensors ({str(err).splitlines()[0]})") from None
    # A body packed by a wire codec is unpacked here, so that every receiver reads it.
    return codecs.unpack(tensors, decode_metadata(data), max_bytes)


def decode_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` strings of a safetensors document (empty when absent)."""
    try:
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + n])
    except (ValueError, UnicodeDecodeError):
        raise InputError("safetensors header is not valid JSON") from None
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
