"""Named model builders with default input shapes. Weights are random with a fixed seed.

Nothing is ever downloaded. ``resolve`` also accepts ``package.module:callable`` for any
user model; :func:`load_weights` loads a state dict safely (safetensors, or
``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision.models as tvm
from torch import nn

from edgesplit.errors import InputError, ShapeError, UnknownModelError

SEED = 0


class MnistCNN(nn.Module):
    """The nine layers of Luger's thesis, Table 5.2 (the 5×5-kernel MNIST CNN)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.pool1 = nn.MaxPool2d(kernel_size=2)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.pool2 = nn.MaxPool2d(kernel_size=2)
        self.fc1 = nn.Linear(320, 50)
        self.relu2 = nn.ReLU()
        self.fc2 = nn.Linear(50, 10)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.pool1(self.conv1(x)))
        x = self.pool2(self.conv2(x))
        x = torch.flatten(x, 1)
        return self.softmax(self.fc2(self.relu2(self.fc1(x))))


class LeNet(nn.Module):
    """LeNet-5 (LeCun et al. 1998) for 32×32 grey images, as used by Gao et al."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, kernel_size=5)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(120, 84)
        self.relu4 = nn.ReLU()
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc3(self.relu4(self.fc2(self.relu3(self.fc1(x)))))


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    description: str


def _imagenet(builder: Callable[..., nn.Module], **kwargs: object) -> Callable[[], nn.Module]:
    return lambda: builder(weights=None, **kwargs)


ZOO: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("mnist_cnn", MnistCNN, (1, 1, 28, 28), "Luger Table 5.2 MNIST CNN, 9 layers"),
        ModelSpec("lenet", LeNet, (1, 1, 32, 32), "LeNet-5, 32x32 grey input"),
        ModelSpec("alexnet", _imagenet(tvm.alexnet), (1, 3, 224, 224), "torchvision AlexNet"),
        ModelSpec("vgg13", _imagenet(tvm.vgg13), (1, 3, 224, 224), "torchvision VGG13"),
        ModelSpec("vgg16", _imagenet(tvm.vgg16), (1, 3, 224, 224), "torchvision VGG16"),
        ModelSpec("resnet50", _imagenet(tvm.resnet50), (1, 3, 224, 224), "torchvision ResNet-50"),
        ModelSpec(
            "mobilenet_v2", _imagenet(tvm.mobilenet_v2), (1, 3, 224, 224), "torchvision MobileNetV2"
        ),
        ModelSpec(
            "googlenet",
            _imagenet(tvm.googlenet, aux_logits=False, init_weights=True),
            (1, 3, 224, 224),
            "torchvision GoogLeNet, aux logits off",
        ),
        ModelSpec(
            "inception_v3",
            _imagenet(tvm.inception_v3, aux_logits=False, init_weights=True),
            (1, 3, 299, 299),
            "torchvision Inception v3, aux logits off",
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
    """Parse ``"1,3,224,224"`` into a shape tuple."""
    try:
        shape = tuple(int(p) for p in re.split(r"[,x]", text.strip()))
    except ValueError:
        shape = ()
    if not shape or any(s <= 0 for s in shape):
        raise ShapeError(
            f"--input-shape {text!r} is not a shape; write positive integers like 1,3,224,224"
        )
    return shape


def resolve(
    name: str, input_shape: tuple[int, ...] | None = None
) -> tuple[nn.Module, tuple[int, ...]]:
    """Build a zoo model or import ``package.module:callable``; returns (model, input shape)."""
    torch.manual_seed(SEED)
    if name in ZOO:
        spec = ZOO[name]
        model = spec.builder()
        return model.eval(), input_shape or spec.input_shape
    if ":" not in name:
        raise UnknownModelError(
            f"unknown model {name!r}; choose one of {', '.join(ZOO)} (see `edgesplit models`) "
            "or give package.module:callable"
        )
    module_name, _, attr = name.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise UnknownModelError(f"cannot import model {name!r}: {err}") from None
    try:
        model = factory() if callable(factory) and not isinstance(factory, nn.Module) else factory
    except TypeError as err:
        raise UnknownModelError(f"cannot call {name!r} without arguments: {err}") from None
    if not isinstance(model, nn.Module):
        raise UnknownModelError(f"{name!r} returned {type(model).__name__}, not a torch.nn.Module")
    if input_shape is None:
        raise ShapeError(
            f"model {name!r} has no default input shape; pass --input-shape 1,3,224,224"
        )
    return model.eval(), input_shape


def build(name: str, input_shape: tuple[int, ...] | None = None) -> tuple[nn.Module, torch.Tensor]:
    """A model and a seeded example input of its input shape."""
    model, shape = resolve(name, input_shape)
    generator = torch.Generator().manual_seed(SEED)
    return model, torch.randn(shape, generator=generator)


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a state dict without unpickling arbitrary objects."""
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
