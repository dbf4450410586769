"""Named model builders with default input shapes. Weights are random with a fixed seed.

Nothing is ever downloaded. :func:`resolve` also accepts ``timm:NAME``, ``hf:ARCH`` (see
:mod:`edgesplit.models.hub`) and ``package.module:callable`` for any user model;
:func:`load_weights` loads a state dict safely (safetensors, or
``torch.load(weights_only=True)``). This module imports no torch until a model is built, so
``edgesplit models`` answers at once.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgesplit.errors import InputError, ShapeError, UnknownModelError
from edgesplit.models.inputs import SEED, parse_shape

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """A zoo entry: ``builder`` is ``package.module:callable``, called with ``kwargs``."""

    name: str
    builder: str
    input_shape: tuple[int, ...]
    description: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self) -> nn.Module:
        module_name, _, attr = self.builder.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        model: nn.Module = factory(**self.kwargs)
        return model


_TV = "torchvision.models:"
_NO_WEIGHTS: dict[str, Any] = {"weights": None}
_NO_AUX: dict[str, Any] = {"weights": None, "aux_logits": False, "init_weights": True}

ZOO: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "mnist_cnn",
            "edgesplit.models.nets:MnistCNN",
            (1, 1, 28, 28),
            "Luger Table 5.2 MNIST CNN, 9 layers",
        ),
        ModelSpec("lenet", "edgesplit.models.nets:LeNet", (1, 1, 32, 32), "LeNet-5, 32x32 grey"),
        ModelSpec("alexnet", _TV + "alexnet", (1, 3, 224, 224), "torchvision AlexNet", _NO_WEIGHTS),
        ModelSpec("vgg13", _TV + "vgg13", (1, 3, 224, 224), "torchvision VGG13", _NO_WEIGHTS),
        ModelSpec("vgg16", _TV + "vgg16", (1, 3, 224, 224), "torchvision VGG16", _NO_WEIGHTS),
        ModelSpec(
            "resnet50", _TV + "resnet50", (1, 3, 224, 224), "torchvision ResNet-50", _NO_WEIGHTS
        ),
        ModelSpec(
            "mobilenet_v2",
            _TV + "mobilenet_v2",
            (1, 3, 224, 224),
            "torchvision MobileNetV2",
            _NO_WEIGHTS,
        ),
        ModelSpec(
            "googlenet",
            _TV + "googlenet",
            (1, 3, 224, 224),
            "torchvision GoogLeNet, aux logits off",
            _NO_AUX,
        ),
        ModelSpec(
            "inception_v3",
            _TV + "inception_v3",
            (1, 3, 299, 299),
            "torchvision Inception v3, aux logits off",
            _NO_AUX,
        ),
    )
}


# Reduced inputs for fast checks (tests, quick benchmarks): adaptive pooling lets every
# zoo model accept them, and 75x75 is the smallest input Inception v3 takes.
SMALL_INPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "vgg13": (1, 3, 32, 32),
    "vgg16": (1, 3, 32, 32),
    "resnet50": (1, 3, 64, 64),
    "mobilenet_v2": (1, 3, 64, 64),
    "googlenet": (1, 3, 64, 64),
    "inception_v3": (1, 3, 75, 75),
}


def input_shape_from_text(text: str) -> tuple[int, ...]:
    """Parse ``"1,3,224,224"`` (or ``1x3x224x224``) into a shape tuple."""
    return parse_shape(text)


def is_code_name(name: str) -> bool:
    """``package.module:callable`` (imported and called), as opposed to a zoo/timm/hf name."""
    from edgesplit.models.hub import is_hub_name

    return name not in ZOO and ":" in name and not is_hub_name(name)


def import_model(name: str) -> nn.Module:
    """Import ``package.module:callable`` and call it with no arguments."""
    from torch import nn

    module_name, _, attr = name.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise UnknownModelError(
            f"cannot import model {name!r}: {err}; run with PYTHONPATH=. for a module in "
            "this folder"
        ) from None
    try:
        model = factory() if callable(factory) and not isinstance(factory, nn.Module) else factory
    except TypeError as err:
        raise UnknownModelError(f"cannot call {name!r} without arguments: {err}") from None
    if not isinstance(model, nn.Module):
        raise UnknownModelError(f"{name!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def resolve(
    name: str, input_shape: tuple[int, ...] | None = None
) -> tuple[nn.Module, tuple[int, ...]]:
    """Build a one-input model by name; returns (model in eval mode, input shape)."""
    import torch

    torch.manual_seed(SEED)
    if name in ZOO:
        spec = ZOO[name]
        return spec.build().eval(), input_shape or spec.input_shape
    from edgesplit.models.hub import build_hub, is_hub_name

    if is_hub_name(name):
        model, specs = build_hub(name, {})
        if input_shape is None and (len(specs) != 1 or specs[0].is_integer):
            raise ShapeError(
                f"model {name!r} takes {', '.join(map(str, specs))}; load it with "
                "edgesplit.models.load_model, or give --input on the command line"
            )
        return model.eval(), input_shape or specs[0].shape
    if ":" not in name:
        raise UnknownModelError(
            f"unknown model {name!r}; choose one of {', '.join(ZOO)} (see `edgesplit models`), "
            "timm:NAME, hf:ARCH, or give package.module:callable"
        )
    model = import_model(name)
    if input_shape is None:
        raise ShapeError(
            f"model {name!r} has no default input shape; pass --input-shape 1,3,224,224 "
            "or --input NAME=SHAPE[:DTYPE]"
        )
    return model.eval(), input_shape


def build(name: str, input_shape: tuple[int, ...] | None = None) -> tuple[nn.Module, torch.Tensor]:
    """A one-input model and a seeded float example input of its input shape."""
    import torch

    model, shape = resolve(name, input_shape)
    generator = torch.Generator().manual_seed(SEED)
    return model, torch.randn(shape, generator=generator)


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a state dict without unpickling arbitrary objects."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"weights file {str(path)!r} does not exist; give a .safetensors or .pt file"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(f"weights file {str(path)!r} cannot be read safely: {err}") from None
    if not isinstance(state, dict):
        raise InputError(f"weights file {str(path)!r} does not hold a state dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise InputError(f"weights in {str(path)!r} do not fit the model: {first}") from None
    return model
