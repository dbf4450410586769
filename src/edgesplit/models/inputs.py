"""Example inputs of a model: named input specs, seeded values, and the bad-input checks.

An :class:`InputSpec` is one tensor input, written ``NAME=SHAPE[:DTYPE]`` on the command
line (``input_ids=1x128:int64``; ``1x128`` and ``1,128`` both parse; the dtype defaults to
float32). :func:`build_example` turns specs into the ``(args, kwargs)`` a module's forward
takes, with seeded values that are valid for the model:

* float inputs: standard normal;
* integer inputs named ``*mask*``: ones (attend everywhere); bool inputs: all True;
* ``token_type_ids`` (``*type_ids``): zeros; ``position_ids``: ``0..L-1`` on the last axis;
* any other integer input (token ids): uniform below the vocabulary size, read from the model
  (``config.vocab_size``, else the first ``nn.Embedding``'s ``num_embeddings``; 2 when it has
  neither).

Inputs are matched against ``inspect.signature(model.forward)``: a name the forward does not
take, or a required argument left out, is a one-line :class:`InputError` (a ``**kwargs``
beside named parameters, as in Hugging Face models, takes flags and does not widen the names). Given inputs that
lead the forward's parameter list are passed positionally, the rest by keyword; optional
arguments not given are left out, so the tracer keeps their defaults as constants.
``--example package.module:callable`` replaces the specs for inputs that are not plain tensors.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgesplit.errors import InputError, ShapeError

if TYPE_CHECKING:
    import torch
    from torch import nn

SEED = 0

# Accepted dtype spellings -> torch dtype attribute.
DTYPES: dict[str, str] = {
    "float32": "float32",
    "float": "float32",
    "fp32": "float32",
    "float16": "float16",
    "half": "float16",
    "fp16": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float64": "float64",
    "double": "float64",
    "int64": "int64",
    "long": "int64",
    "int32": "int32",
    "int": "int32",
    "int16": "int16",
    "int8": "int8",
    "uint8": "uint8",
    "bool": "bool",
}
_INTEGER = ("int64", "int32", "int16", "int8", "uint8")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_shape(text: str, option: str = "--input-shape") -> tuple[int, ...]:
    """Parse ``"1,3,224,224"`` or ``"1x3x224x224"`` into a shape tuple."""
    try:
        shape = tuple(int(p) for p in re.split(r"[,x]", text.strip()))
    except ValueError:
        shape = ()
    if not shape or any(s <= 0 for s in shape):
        raise ShapeError(
            f"{option} {text!r} is not a shape; write positive integers like 1,3,224,224 or 1x128"
        )
    return shape


@dataclass(frozen=True)
class InputSpec:
    """One tensor input of a model's forward: its argument name, shape and dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise InputError(f"--input name {self.name!r} is not a Python argument name")
        if not self.shape or any(int(s) <= 0 for s in self.shape):
            raise ShapeError(f"--input {self.name}: shape {self.shape} must be positive integers")
        if self.dtype not in DTYPES:
            raise InputError(
                f"--input {self.name}: unknown dtype {self.dtype!r}; use one of "
                f"{', '.join(sorted(set(DTYPES.values())))}"
            )
        object.__setattr__(self, "dtype", DTYPES[self.dtype])
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))

    @classmethod
    def parse(cls, text: str) -> InputSpec:
        """``NAME=SHAPE[:DTYPE]``, e.g. ``input_ids=1x128:int64`` or ``x=1,3,32,32``."""
        name, sep, rest = text.strip().partition("=")
        if not sep or not name:
            raise InputError(
                f"--input {text!r} is not NAME=SHAPE[:DTYPE]; write e.g. input_ids=1x128:int64"
            )
        shape_text, _, dtype = rest.partition(":")
        shape = parse_shape(shape_text, f"--input {name}:")
        return cls(name.strip(), shape, dtype.strip().lower() or "float32")

    @property
    def is_integer(self) -> bool:
        return self.dtype in _INTEGER

    def __str__(self) -> str:
        return f"{self.name}={'x'.join(map(str, self.shape))}:{self.dtype}"


@dataclass(frozen=True)
class Example:
    """Example ``(args, kwargs)`` for a forward, and their textual form for plans and profiles."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    text: tuple[str, ...] = ()

    def describe(self) -> str:
        return " ".join(self.text)

    def run(self, module: nn.Module) -> Any:
        return module(*self.args, **self.kwargs)

    def single(self, what: str) -> torch.Tensor:
        """The one tensor input, for code paths that take exactly one (``what`` names them)."""
        import torch

        if len(self.args) != 1 or self.kwargs or not isinstance(self.args[0], torch.Tensor):
            raise InputError(
                f"{what} takes a model with one tensor input, not {self.describe()}; "
                "use a one-input model or --input-shape"
            )
        return self.args[0]


def forward_parameters(module: nn.Module) -> tuple[list[inspect.Parameter], bool]:
    """The forward's named parameters and whether it takes ``**kwargs``."""
    try:
        sig = inspect.signature(module.forward)
    except (TypeError, ValueError):
        return [], True
    named = [
        p
        for p in sig.parameters.values()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    return named, var_kw


def first_input_name(module: nn.Module) -> str:
    """The forward's first parameter name (``x`` when it has none we can read)."""
    named, _ = forward_parameters(module)
    return named[0].name if named else "x"


def vocab_size(module: nn.Module) -> int | None:
    """Token ids must lie below this: ``config.vocab_size``, else the first ``nn.Embedding``'s."""
    from torch import nn

    size = getattr(getattr(module, "config", None), "vocab_size", None)
    if isinstance(size, int) and size > 0:
        return size
    for m in module.modules():
        if isinstance(m, nn.Embedding):
            return int(m.num_embeddings)
    return None


def seeded_value(spec: InputSpec, module: nn.Module, generator: torch.Generator) -> torch.Tensor:
    """A valid seeded tensor for ``spec`` (rules in the module docstring)."""
    import torch

    dtype = getattr(torch, spec.dtype)
    name = spec.name.lower()
    if spec.dtype == "bool":
        return torch.ones(spec.shape, dtype=dtype)
    if not spec.is_integer:
        return torch.randn(spec.shape, generator=generator).to(dtype)
    if "mask" in name:
        return torch.ones(spec.shape, dtype=dtype)
    if name.endswith("type_ids"):
        return torch.zeros(spec.shape, dtype=dtype)
    if name.endswith("position_ids"):
        return torch.arange(spec.shape[-1], dtype=dtype).expand(spec.shape).contiguous()
    high = min(vocab_size(module) or 2, int(torch.iinfo(dtype).max) + 1)
    return torch.randint(0, high, spec.shape, generator=generator, dtype=torch.int64).to(dtype)


def build_example(specs: tuple[InputSpec, ...], module: nn.Module, seed: int = SEED) -> Example:
    """Seeded ``(args, kwargs)`` for ``specs``, checked against ``module.forward``'s signature."""
    import torch

    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"--input {dup[0]} is given twice; give each input once")
    generator = torch.Generator().manual_seed(seed)
    values = {s.name: seeded_value(s, module, generator) for s in specs}
    args, kwargs = arrange(module, values, [f"--input {s}" for s in specs])
    return Example(args, kwargs, tuple(str(s) for s in specs))


def arrange(
    module: nn.Module, values: dict[str, Any], labels: list[str]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Check names against the forward and split them into a positional prefix and kwargs."""
    params, var_kw = forward_parameters(module)
    known = [p.name for p in params]
    cls = type(module).__name__
    # **kwargs beside named parameters (Hugging Face) takes flags, not tensors: refuse
    # other names unless the forward names no parameter at all.
    open_ended = var_kw and not known
    for label, name in zip(labels, values, strict=True):
        if name not in known and not open_ended:
            raise InputError(
                f"{label}: {cls}.forward takes no input {name!r}; "
                f"it takes {', '.join(known) or 'no named inputs'}"
            )
    for p in params:
        if p.default is inspect.Parameter.empty and p.name not in values:
            raise InputError(
                f"{cls}.forward needs input {p.name!r}; add --input {p.name}=SHAPE[:DTYPE]"
            )
    args: list[Any] = []
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    for p in params:
        if p.kind not in positional or p.name not in values:
            break
        args.append(values[p.name])
    kwargs = {k: v for k, v in values.items() if k not in known[: len(args)]}
    return tuple(args), kwargs


def example_from_callable(ref: str, module: nn.Module) -> Example:
    """Call ``package.module:callable``; it returns args (tuple), kwargs (dict) or both."""
    import torch

    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise InputError(f"--example {ref!r} is not package.module:callable")
    from edgesplit.models.zoo import import_callable

    factory = import_callable(ref, "--example")
    result = factory() if callable(factory) else factory
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    if isinstance(result, torch.Tensor):
        args, kwargs = (result,), {}
    elif isinstance(result, dict) and all(isinstance(k, str) for k in result):
        args, kwargs = (), dict(result)
    elif (
        isinstance(result, tuple | list)
        and len(result) == 2
        and isinstance(result[0], tuple | list)
        and isinstance(result[1], dict)
    ):
        args, kwargs = tuple(result[0]), dict(result[1])
    elif isinstance(result, tuple | list):
        args, kwargs = tuple(result), {}
    else:
        raise InputError(
            f"--example {ref!r} returned {type(result).__name__}; return a tuple of args, "
            "a dict of kwargs, or (args, kwargs)"
        )
    if not args and not kwargs:
        raise InputError(f"--example {ref!r} returned no inputs; return at least one argument")
    named, var_kw = forward_parameters(module)
    known = [p.name for p in named]
    bad = [k for k in kwargs if k not in known and not (var_kw and not known)]
    if bad:
        raise InputError(
            f"--example {ref!r}: {type(module).__name__}.forward takes no input {bad[0]!r}; "
            f"it takes {', '.join(known)}"
        )
    return Example(args, kwargs, (f"example={ref}",))


def check_accepts(module: nn.Module, example: Example, model: str) -> None:
    """Run the forward once; a failure is a one-line :class:`ShapeError` naming the inputs."""
    import torch

    try:
        with torch.inference_mode():
            example.run(module)
    except Exception as err:
        text = str(err).strip().splitlines()
        reason = (text[0] if text else type(err).__name__)[:300]
        fix = (
            "fix what --example returns"
            if example.text[:1] and example.text[0].startswith("example=")
            else "pass the shape and dtype its forward expects "
            "(--input-shape, or --input NAME=SHAPE[:DTYPE] per input)"
        )
        raise ShapeError(
            f"model {model!r} rejects inputs {example.describe()}: {reason}; {fix}"
        ) from None
