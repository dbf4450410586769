"""Named models from timm and Hugging Face ``transformers``, built offline with seeded weights.

* ``timm:NAME`` is ``timm.create_model(NAME, pretrained=False, **overrides)``; the default
  input is ``1 x pretrained_cfg['input_size']``.
* ``hf:ARCH`` is the ``transformers`` class ARCH (``BertModel``, ``GPT2Model``, ``ViTModel``;
  submodules such as ``WhisperEncoder`` are looked up beside ``WhisperModel``) built from
  ``ARCH.config_class(**overrides)``.
* ``hf:PATH`` or ``hf:ARCH=PATH`` reads ``PATH/config.json`` (a local directory) and, when the
  directory holds weights, loads them from there; ARCH defaults to the config's first
  ``architectures`` entry.

Overrides come from ``--model-config KEY=VALUE`` (repeatable; VALUE is read as JSON when it
parses, so ``2``, ``0.1``, ``true`` and ``[64,64]`` are numbers, booleans and lists, anything
else a string). Nothing is downloaded: ``HF_HUB_OFFLINE=1`` is set before transformers is
imported and ``from_pretrained`` is only ever given a local directory.
"""

from __future__ import annotations

import difflib
import inspect
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgesplit.errors import InputError, UnknownModelError
from edgesplit.models.inputs import InputSpec

if TYPE_CHECKING:
    from torch import nn

PREFIXES = ("timm:", "hf:")
TEXT_LENGTH = 16
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def is_hub_name(name: str) -> bool:
    return name.startswith(PREFIXES) or _is_local_config_dir(name)


def _is_local_config_dir(name: str) -> bool:
    return ":" not in name and (Path(name) / "config.json").is_file()


def parse_overrides(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings to a dict; VALUE is JSON when it parses, else a string."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(
                f"--model-config {item!r} is not KEY=VALUE; write e.g. num_hidden_layers=2"
            )
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def build_hub(name: str, overrides: dict[str, Any]) -> tuple[nn.Module, tuple[InputSpec, ...]]:
    """Build ``timm:NAME``, ``hf:ARCH``, ``hf:[ARCH=]PATH`` or a config directory."""
    if name.startswith("timm:"):
        return _timm(name.removeprefix("timm:"), overrides)
    return _hf(name.removeprefix("hf:"), overrides)


def _timm(arch: str, overrides: dict[str, Any]) -> tuple[nn.Module, tuple[InputSpec, ...]]:
    import timm

    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join('timm:' + c for c in close)}?" if close else ""
        raise UnknownModelError(f"timm has no architecture {arch!r}{hint}")
    try:
        model = timm.create_model(arch, pretrained=False, **overrides)
    except TypeError as err:
        raise InputError(
            f"--model-config does not fit timm:{arch}: {err}; give create_model arguments "
            "such as num_classes=10 or img_size=64"
        ) from None
    cfg: dict[str, Any] = dict(getattr(model, "pretrained_cfg", None) or {})
    size = tuple(cfg.get("input_size", (3, 224, 224)))
    if "img_size" in overrides and isinstance(overrides["img_size"], int):
        size = (size[0], overrides["img_size"], overrides["img_size"])
    return model, (InputSpec("_", (1, *size)),)


def _hf_class(arch: str) -> Any:
    import transformers

    found = getattr(transformers, arch, None)
    if found is None:
        # Submodules (WhisperEncoder) live beside the family's model class (WhisperModel).
        for family in sorted(dir(transformers), key=len, reverse=True):
            if family.endswith("Model") and arch.startswith(family.removesuffix("Model")):
                import sys

                owner = getattr(transformers, family)
                found = getattr(sys.modules[owner.__module__], arch, None)
                if found is not None:
                    break
    if found is None or not isinstance(found, type):
        names = [n for n in dir(transformers) if n.endswith("Model")]
        close = difflib.get_close_matches(arch, names, n=3)
        hint = f"; did you mean {', '.join('hf:' + c for c in close)}?" if close else ""
        raise UnknownModelError(f"transformers has no model class {arch!r}{hint}")
    return found


def _hf(text: str, overrides: dict[str, Any]) -> tuple[nn.Module, tuple[InputSpec, ...]]:
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch

    arch, sep, path = text.partition("=")
    if not sep and (Path(text) / "config.json").is_file():
        arch, path = "", text
    if path:
        model = _hf_local(arch, Path(path), overrides)
    else:
        cls = _hf_class(arch)
        config_class = getattr(cls, "config_class", None)
        if config_class is None:
            raise UnknownModelError(f"hf:{arch} is not a transformers model class with a config")
        # Config fields, the constructor's named arguments, and the attention backend.
        known = set(config_class().to_dict()) | {"attn_implementation"}
        known |= set(inspect.signature(config_class.__init__).parameters) - {"self", "kwargs"}
        unknown = sorted(k for k in overrides if k not in known)
        if unknown:
            close = difflib.get_close_matches(unknown[0], known, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise InputError(
                f"--model-config {unknown[0]}: {config_class.__name__} has no such field{hint}"
            )
        config = config_class(**overrides)
        _check_fits(cls, config, f"hf:{arch}")
        model = cls(config)
    if not isinstance(model, torch.nn.Module):
        raise UnknownModelError(f"hf:{text} did not build a torch.nn.Module")
    return model, default_hf_inputs(model)


def _available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux); None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _check_fits(cls: Any, config: Any, name: str) -> None:
    """Refuse a model whose float32 weights exceed 80 % of free memory (counted on 'meta').

    Default configs can be huge (``LlamaConfig()`` is 6.6e9 parameters): a one-line error
    that says how to shrink it beats the kernel's OOM killer.
    """
    import torch

    from edgesplit.models.inputs import SEED

    with torch.device("meta"):
        probe = cls(config)
    need = 4 * sum(p.numel() for p in probe.parameters())
    torch.manual_seed(SEED)  # the probe must not shift the seeded weights
    free = _available_bytes()
    if free is not None and need > 0.8 * free:
        raise InputError(
            f"{name} with this config has {need / 4e9:.2f}e9 parameters ({need / 1e9:.1f} GB "
            f"as float32), more than this machine's {free / 1e9:.1f} GB free; shrink it with "
            "--model-config, e.g. --model-config num_hidden_layers=2 --model-config hidden_size=256"
        )


def _hf_local(arch: str, path: Path, overrides: dict[str, Any]) -> nn.Module:
    import transformers

    if not (path / "config.json").is_file():
        raise InputError(f"hf model directory {str(path)!r} has no config.json")
    try:
        config = transformers.AutoConfig.from_pretrained(
            str(path), local_files_only=True, **overrides
        )
    except (OSError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise InputError(f"{str(path / 'config.json')!r} cannot be read: {first}") from None
    arch = arch or next(iter(getattr(config, "architectures", None) or []), "")
    # No architecture named: the config's base model (AutoModel), as transformers does.
    cls: Any = _hf_class(arch) if arch else transformers.AutoModel
    model: nn.Module
    if any((path / f).is_file() for f in _WEIGHT_FILES):
        model = cls.from_pretrained(str(path), config=config, local_files_only=True)
    else:
        model = cls(config) if arch else cls.from_config(config)
    return model


def default_hf_inputs(model: nn.Module) -> tuple[InputSpec, ...]:
    """Text: input_ids (+attention_mask) 1x16 int64; vision: pixel_values; audio: features."""
    from edgesplit.models.inputs import forward_parameters

    params = {p.name for p in forward_parameters(model)[0]}
    config = getattr(model, "config", None)
    main = getattr(model, "main_input_name", "input_ids")
    specs: list[InputSpec] = []
    if main == "pixel_values":
        size = getattr(config, "image_size", 224)
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        specs.append(InputSpec(main, (1, getattr(config, "num_channels", 3), h, w)))
    elif main == "input_features":
        mels = getattr(config, "num_mel_bins", 80)
        frames = 2 * getattr(config, "max_source_positions", 1500)
        specs.append(InputSpec(main, (1, mels, frames)))
    else:
        specs.append(InputSpec(main, (1, TEXT_LENGTH), "int64"))
        if "attention_mask" in params:
            specs.append(InputSpec("attention_mask", (1, TEXT_LENGTH), "int64"))
    if getattr(config, "is_encoder_decoder", False) and "decoder_input_ids" in params:
        specs.append(InputSpec("decoder_input_ids", (1, TEXT_LENGTH), "int64"))
    return tuple(specs)
