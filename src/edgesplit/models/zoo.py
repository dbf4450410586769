"""Named model builders with default input shapes. Weights are random with a fixed seed.

Nothing is ever downloaded. :func:`resolve` also accepts ``timm:NAME``, ``hf:ARCH`` (see
:mod:`edgesplit.models.hub`) and ``package.module:callable`` for any user model;
:func:`load_weights` loads a state dict safely (safetensors, or
``torch.load(weights_only=True)``). This module imports no torch until a model is built, so
``edgesplit models`` answers at once.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
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


def import_callable(ref: str, what: str) -> Any:
    """The object ``package.module:attr`` names, imported from the user's code.

    Every failure is one :class:`~edgesplit.errors.UnknownModelError` naming ``what``
    (``model``, ``--example``) and the fix: a module Python cannot find is imported from
    its folder with ``PYTHONPATH=.`` or installed; a dependency of it is installed; an error
    raised by the module's own code is reported with its file and line.
    """
    module_name, _, attr = ref.partition(":")
    head = f"cannot import {what} {ref!r}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        missing = err.name or module_name
        parent, _, leaf = missing.rpartition(".")
        if parent and parent in sys.modules and module_name.startswith(missing):
            raise UnknownModelError(
                f"{head}: package {parent!r} ({getattr(sys.modules[parent], '__file__', '?')}) "
                f"has no module {leaf!r}; check the name before ':'"
            ) from None
        if module_name == missing or module_name.startswith(missing + "."):
            raise UnknownModelError(
                f"{head}: Python cannot find module {missing!r} (working folder "
                f"{os.getcwd()}); run from the folder that holds it with PYTHONPATH=. "
                "(e.g. PYTHONPATH=. edgesplit ...), or pip install it"
            ) from None
        raise UnknownModelError(
            f"{head}: {module_name!r} imports {missing!r}, which is not installed; pip install it"
        ) from None
    except Exception as err:  # the user's module raised while being imported
        raise UnknownModelError(
            f"{head}: importing {module_name!r} raised {_where(err)}; fix that module"
        ) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise UnknownModelError(
            f"{head}: module {module_name!r} ({getattr(module, '__file__', '?')}) has no "
            f"{attr!r}; check the name after ':'"
        ) from None


def _where(err: BaseException) -> str:
    """``Type: message (file:line)`` of an exception raised by user code, on one line."""
    if isinstance(err, SyntaxError):
        return f"SyntaxError: {err.msg} ({err.filename}:{err.lineno})"
    frames = traceback.extract_tb(err.__traceback__)
    place = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(err).__name__}: {err}{place}"


def import_model(name: str) -> nn.Module:
    """Import ``package.module:callable`` and call it with no arguments."""
    from torch import nn

    factory = import_callable(name, "model")
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
