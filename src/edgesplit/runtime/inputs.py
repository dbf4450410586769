"""Real request inputs from files (``--inputs PATH``), checked against the model's inputs.

What ``PATH`` may be (each gives a list of requests, each request one tensor per graph
input in ``graph.input_names`` order):

* a **folder of images** (``.png .jpg .jpeg .bmp .gif .webp .tif .tiff``), for a model whose
  one float input is ``N×C×H×W`` with ``C`` 1 or 3: files in name order, ``N`` images per
  request. Each image is converted to RGB (``C = 3``) or greyscale (``C = 1``), resized so
  that its shorter side is ``max(H, W)`` (bilinear), centre-cropped to ``H×W``, scaled to
  ``[0, 1]``, and for RGB normalised with the ImageNet mean and standard deviation (the
  torchvision zoo's preprocessing). For anything else save tensors instead (below).
* a **``.safetensors``** file: tensors by input name (the graph input's name or the
  forward's argument name); a one-input model also takes a file holding one tensor of any
  name.
* a **``.npy``** file (a one-input model), or a folder of ``.npy`` files: named after the
  inputs (``input_ids.npy``, ``attention_mask.npy``) they are one set by name, otherwise
  (a one-input model) each file is its own value, in name order.
* **token ids** for text models: a ``.txt`` file, one request per line (``B`` lines per
  request for batch ``B``), ids separated by spaces or commas, exactly the traced
  sequence length per line and each below the vocabulary size; or int64 tensors in a
  ``.npy``/``.safetensors`` file as above. The ids fill the input named ``input_ids`` (or
  the one integer input that is not a mask, type or position input).

A tensor of exactly the input's shape is one request; one with an extra leading axis
``R`` (``R×shape``) is ``R`` requests. Dtypes must match exactly (say ``float32``, not
``float64``). Inputs a file does not give (an attention mask, say) keep the model's
example values (:mod:`edgesplit.models.inputs`: masks ones, type ids zeros).

Bounds: every file is at most :data:`MAX_FILE_BYTES`, a folder holds at most
:data:`MAX_FILES` inputs, images at most :data:`MAX_PIXELS` pixels; ``.npy`` files load
with ``allow_pickle=False`` and safetensors through the bounded wire decoder, so nothing
is unpickled. Every fault is one :class:`~edgesplit.errors.InputError` (a
:class:`~edgesplit.errors.ShapeError` for shapes and dtypes) naming the file and the
field. Cost: O(total bytes read).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from edgesplit.errors import InputError, ShapeError
from edgesplit.runtime import wire

if TYPE_CHECKING:
    from torch import nn

    from edgesplit.graph import Graph

#: Largest input file read (bytes).
MAX_FILE_BYTES = 256 * 1024 * 1024
#: Most files taken from one folder.
MAX_FILES = 10_000
#: Largest image decoded (pixels, read from the header before decoding).
MAX_PIXELS = 50_000_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Request = tuple[torch.Tensor, ...]


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


class _Inputs:
    """The graph's inputs: names, argument names, wanted shapes and dtypes, examples."""

    def __init__(self, graph: Graph, example: Request) -> None:
        self.graph, self.example = graph, example
        self.names = list(graph.input_names)
        self.args = list(graph.input_args) or self.names
        self.want = [graph.tensor(n) for n in self.names]

    def index(self, key: str) -> int | None:
        for i, (name, arg) in enumerate(zip(self.names, self.args)):
            if key in (name, arg):
                return i
        return None

    def label(self, i: int) -> str:
        return self.args[i]

    def expand(self, i: int, value: torch.Tensor, where: str) -> list[torch.Tensor]:
        """``value`` as one request (the input's shape) or ``R`` (``R×shape``)."""
        want = self.want[i]
        shape, need = tuple(value.shape), tuple(want.shape)
        if _dtype(value) != want.dtype:
            raise ShapeError(
                f"{where}: input {self.label(i)!r} is {_dtype(value)} but the model takes "
                f"{want.dtype}; save it as {want.dtype}"
            )
        if shape == need:
            return [value]
        if len(shape) == len(need) + 1 and shape[1:] == need and shape[0] >= 1:
            return list(value.unbind(0))
        raise ShapeError(
            f"{where}: input {self.label(i)!r} has shape {list(shape)} but the model takes "
            f"{list(need)} (or R x that for R requests)"
        )

    def assemble(self, given: dict[int, list[torch.Tensor]], where: str) -> list[Request]:
        """Requests from per-input value lists (equal lengths); other inputs as the example."""
        counts = {len(v) for v in given.values()}
        if len(counts) != 1:
            sizes = {self.label(i): len(v) for i, v in given.items()}
            raise ShapeError(f"{where}: inputs give different request counts {sizes}; give each R")
        (count,) = counts
        return [
            tuple(given[i][r] if i in given else self.example[i] for i in range(len(self.names)))
            for r in range(count)
        ]

    def primary(self, kind: str, where: str) -> int:
        """The input a single-valued source fills: the only one, else by ``kind``."""
        if len(self.names) == 1:
            return 0
        if kind == "ids":
            named = self.index("input_ids")
            if named is not None:
                return named
            ids = [
                i
                for i, t in enumerate(self.want)
                if not t.dtype.startswith("float")
                and t.dtype != "bool"
                and not re.search(r"mask|type|position", self.args[i])
            ]
        else:
            ids = [i for i, t in enumerate(self.want) if t.dtype.startswith(("float", "bfloat"))]
        if len(ids) == 1:
            return ids[0]
        raise InputError(
            f"{where}: the model takes inputs {self.args}, so this file cannot say which one "
            "it fills; give a .safetensors file (or .npy files) named after the inputs"
        )


def _check_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InputError(
            f"--inputs file {str(path)!r} is {size} bytes, over the limit of {MAX_FILE_BYTES}; "
            "split it into smaller files"
        )


def _npy(path: Path) -> torch.Tensor:
    import numpy as np

    _check_size(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        reason = " ".join(str(err).split())[:200]
        raise InputError(
            f"--inputs file {str(path)!r} is not a plain .npy array ({reason}); "
            "save it with numpy.save, without object dtypes"
        ) from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        raise InputError(
            f"--inputs file {str(path)!r} holds {getattr(array, 'dtype', type(array))}; "
            "save a numeric array"
        )
    return torch.from_numpy(np.ascontiguousarray(array))


def _safetensors(path: Path) -> dict[str, torch.Tensor]:
    _check_size(path)
    try:
        return wire.decode_tensors(path.read_bytes(), MAX_FILE_BYTES)
    except InputError as err:
        raise InputError(f"--inputs file {str(path)!r}: {err}") from None


def _by_name(
    spec: _Inputs, tensors: dict[str, torch.Tensor], where: str
) -> dict[int, list[torch.Tensor]]:
    if len(tensors) == 1 and len(spec.names) == 1:
        ((key, value),) = tensors.items()
        return {0: spec.expand(0, value, f"{where} tensor {key!r}")}
    given: dict[int, list[torch.Tensor]] = {}
    for key, value in tensors.items():
        i = spec.index(key)
        if i is None:
            raise InputError(
                f"{where}: tensor {key!r} is not an input of the model; name tensors after "
                f"its inputs {spec.args}"
            )
        given[i] = spec.expand(i, value, where)
    if not given:
        raise InputError(f"{where} holds no tensors; give one per input {spec.args}")
    return given


def _token_lines(spec: _Inputs, path: Path, module: nn.Module | None) -> list[Request]:
    from edgesplit.models.inputs import vocab_size

    _check_size(path)
    where = f"--inputs file {str(path)!r}"
    i = spec.primary("ids", where)
    want = spec.want[i]
    if want.dtype.startswith(("float", "bfloat")) or want.dtype == "bool" or not want.shape:
        raise InputError(
            f"{where}: token ids fill an integer input, but {spec.label(i)!r} is "
            f"{want.dtype}{list(want.shape)}; give a .safetensors or .npy file instead"
        )
    length, rows = want.shape[-1], (want.shape[0] if len(want.shape) == 2 else 1)
    high = vocab_size(module) if module is not None else None
    lines: list[list[int]] = []
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        if not text.strip():
            continue
        try:
            ids = [int(t) for t in re.split(r"[\s,]+", text.strip())]
        except ValueError:
            raise InputError(
                f"{where} line {number}: {text.strip()[:40]!r} is not integers; write token "
                "ids separated by spaces or commas"
            ) from None
        if len(ids) != length:
            raise ShapeError(
                f"{where} line {number}: {len(ids)} token ids but input {spec.label(i)!r} "
                f"takes {length} (the plan's traced length); give {length} per line"
            )
        bad = [t for t in ids if t < 0 or (high is not None and t >= high)]
        if bad:
            raise InputError(
                f"{where} line {number}: token id {bad[0]} is outside 0..{(high or 1) - 1} "
                "(the model's vocabulary); use the model's tokenizer"
            )
        lines.append(ids)
    if not lines or len(lines) % rows:
        raise InputError(
            f"{where} has {len(lines)} lines; input {spec.label(i)!r} takes {rows} per request"
        )
    dtype = getattr(torch, want.dtype)
    values = [
        torch.tensor(lines[r : r + rows], dtype=dtype).reshape(want.shape)
        for r in range(0, len(lines), rows)
    ]
    return spec.assemble({i: values}, where)


def _image(path: Path, channels: int, height: int, width: int) -> torch.Tensor:
    import warnings

    import numpy as np
    from PIL import Image

    _check_size(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as raw:  # reads the header only
                if raw.size[0] * raw.size[1] > MAX_PIXELS:
                    raise ValueError(f"{raw.size[0]}x{raw.size[1]} is over {MAX_PIXELS} pixels")
                img = raw.convert("RGB" if channels == 3 else "L")
            # torchvision's Resize(max(H, W)) then CenterCrop((H, W)) on PIL images.
            w, h = img.size
            side = max(height, width)
            size = (side, int(side * h / w)) if w <= h else (int(side * w / h), side)
            img = img.resize(size, Image.Resampling.BILINEAR)
            left = round((size[0] - width) / 2.0)
            top = round((size[1] - height) / 2.0)
            img = img.crop((left, top, left + width, top + height))
            array = np.asarray(img, dtype=np.float32) / 255.0
    except (OSError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        reason = " ".join(str(e).split())[:200]
        raise InputError(f"--inputs image {str(path)!r} cannot be read ({reason})") from None
    x = torch.from_numpy(array.reshape(height, width, channels)).permute(2, 0, 1).contiguous()
    if channels == 3:
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        x = (x - mean) / std
    return x


def _images(spec: _Inputs, folder: Path, files: list[Path]) -> list[Request]:
    where = f"--inputs folder {str(folder)!r}"
    i = spec.primary("image", where)
    want = spec.want[i]
    shape = tuple(want.shape)
    if len(shape) != 4 or shape[1] not in (1, 3) or not want.dtype.startswith("float"):
        raise ShapeError(
            f"{where}: images fill an N x C x H x W float input with C 1 or 3, but "
            f"{spec.label(i)!r} is {want.dtype}{list(shape)}; give a .safetensors or .npy file"
        )
    batch, channels, height, width = shape
    if len(files) % batch:
        raise InputError(
            f"{where} has {len(files)} images; input {spec.label(i)!r} takes {batch} per "
            "request, so give a multiple of that"
        )
    dtype = getattr(torch, want.dtype)
    values = [
        torch.stack([_image(f, channels, height, width) for f in files[r : r + batch]]).to(dtype)
        for r in range(0, len(files), batch)
    ]
    return spec.assemble({i: values}, where)


def _folder(spec: _Inputs, folder: Path) -> list[Request]:
    where = f"--inputs folder {str(folder)!r}"
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    arrays = [p for p in files if p.suffix.lower() == ".npy"]
    if images and arrays:
        raise InputError(f"{where} mixes images and .npy files; keep one kind per folder")
    if len(images) + len(arrays) > MAX_FILES:
        raise InputError(f"{where} holds more than {MAX_FILES} inputs; split it")
    if images:
        return _images(spec, folder, images)
    if not arrays:
        raise InputError(f"{where} holds no images ({', '.join(IMAGE_SUFFIXES)}) and no .npy files")
    if all(spec.index(p.stem) is not None for p in arrays):
        named = {p.stem: _npy(p) for p in arrays}
        return spec.assemble(_by_name(spec, named, where), where)
    i = spec.primary("array", where)
    values = [v for p in arrays for v in spec.expand(i, _npy(p), f"--inputs file {str(p)!r}")]
    return spec.assemble({i: values}, where)


def load_inputs(
    path: str | Path, graph: Graph, example: Request, module: nn.Module | None = None
) -> list[Request]:
    """The requests ``path`` holds (rules in the module docstring), at least one.

    ``example``: the model's example inputs in ``graph.input_names`` order (inputs the file
    does not give keep these); ``module``: the model, for the vocabulary bound of token ids.
    """
    p = Path(path)
    spec = _Inputs(graph, example)
    if not p.exists():
        raise InputError(f"--inputs {str(p)!r} does not exist; give a folder or a file")
    if p.is_dir():
        requests = _folder(spec, p)
    else:
        suffix = p.suffix.lower()
        where = f"--inputs file {str(p)!r}"
        if suffix == ".safetensors":
            requests = spec.assemble(_by_name(spec, _safetensors(p), where), where)
        elif suffix == ".npy":
            i = spec.primary("array", where)
            requests = spec.assemble({i: spec.expand(i, _npy(p), where)}, where)
        elif suffix == ".txt":
            requests = _token_lines(spec, p, module)
        else:
            raise InputError(
                f"{where}: use a folder of images or .npy files, a .safetensors, .npy or "
                ".txt (token ids) file"
            )
    if len(requests) > MAX_FILES:
        raise InputError(f"--inputs {str(p)!r} holds {len(requests)} requests; at most {MAX_FILES}")
    return requests
