"""One model request, as every command takes it: a name, its inputs, weights and trust.

:class:`ModelRequest` bundles what the model options of the CLI say (the model name,
``--input``/``--input-shape``/``--example``, ``--weights``, ``--model-config`` and
``--trust-model-code``); :meth:`ModelRequest.load` builds the module and its seeded example
``(args, kwargs)``. The request is plain data, so a server process and an agent build the same
model from the same request.

Data files are data (``trust_remote_code`` in transformers is the convention):
:func:`check_trusted` refuses a ``package.module:callable`` named inside a plan, profile,
multidevice or early-exit file unless the user passes ``--trust-model-code``. Zoo, ``timm:``
and ``hf:`` names are not code and need no flag; a model given on the command line is the
user's own choice and is never refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgesplit.errors import InputError, UnknownModelError
from edgesplit.models.inputs import (
    SEED,
    Example,
    InputSpec,
    build_example,
    example_from_callable,
    first_input_name,
    parse_shape,
)

if TYPE_CHECKING:
    from torch import nn

    from edgesplit.graph import Graph


@dataclass(frozen=True)
class ModelRequest:
    """A model and how to feed it; empty inputs mean the model's default inputs."""

    name: str
    inputs: tuple[InputSpec, ...] = ()
    example: str | None = None
    weights: str | None = None
    config: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.example and self.inputs:
            raise InputError("give --example or --input/--input-shape, not both")

    @classmethod
    def from_options(
        cls,
        name: str,
        inputs: list[str] | None = None,
        input_shape: str | None = None,
        example: str | None = None,
        weights: str | None = None,
        config: list[str] | None = None,
    ) -> ModelRequest:
        """Parse the command-line forms of the model options."""
        if input_shape and inputs:
            raise InputError("give --input-shape (one float input) or --input, not both")
        specs: tuple[InputSpec, ...] = tuple(InputSpec.parse(t) for t in inputs or ())
        if input_shape:
            # The name is fixed at load time, when the forward's first argument is known.
            specs = (InputSpec("_", parse_shape(input_shape)),)
        return cls(name, specs, example, weights, tuple(config or ()))

    def describe(self, example: Example | None = None) -> dict[str, Any]:
        """The textual form recorded in plans and profiles (``model`` is recorded beside it).

        With the loaded ``example``, the inputs are the resolved ones (defaults included).
        """
        doc: dict[str, Any] = {}
        if self.example:
            doc["example"] = self.example
        elif example is not None:
            doc["inputs"] = list(example.text)
        elif self.inputs:
            doc["inputs"] = [str(s) for s in self.inputs]
        if self.config:
            doc["model_config"] = list(self.config)
        if self.weights:
            doc["weights"] = self.weights
        return doc

    @classmethod
    def from_record(
        cls, name: str, record: dict[str, Any], source: str, trust_code: bool
    ) -> ModelRequest:
        """Rebuild a request from :meth:`describe`'s record inside the data file ``source``.

        A model or ``example`` that is code is refused unless ``trust_code``.
        """
        check_trusted(name, source, trust_code)
        example = record.get("example")
        if example is not None:
            check_trusted(str(example), source, trust_code, what="example")
        try:
            specs = tuple(InputSpec.parse(str(t)) for t in record.get("inputs", ()))
            config = tuple(str(c) for c in record.get("model_config", ()))
        except (TypeError, InputError) as err:
            raise InputError(f"{source}: model options {record!r} are not valid: {err}") from None
        weights = record.get("weights")
        return cls(name, specs, example, None if weights is None else str(weights), config)

    def load(self) -> tuple[nn.Module, Example]:
        """Build the module (eval mode, seeded weights or ``weights``) and its example."""
        import torch

        from edgesplit.models.hub import build_hub, is_hub_name, parse_overrides
        from edgesplit.models.zoo import ZOO, import_model, load_weights

        torch.manual_seed(SEED)
        defaults: tuple[InputSpec, ...] = ()
        if self.config and not is_hub_name(self.name):
            raise InputError(
                f"--model-config applies to timm: and hf: models, not {self.name!r}; "
                "configure your own model in its callable"
            )
        if self.name in ZOO:
            module = ZOO[self.name].build()
            defaults = (InputSpec("_", ZOO[self.name].input_shape),)
        elif is_hub_name(self.name):
            module, defaults = build_hub(self.name, parse_overrides(self.config))
        elif ":" in self.name:
            module = import_model(self.name)
        else:
            raise UnknownModelError(
                f"unknown model {self.name!r}; choose one of {', '.join(ZOO)} "
                "(see `edgesplit models`), timm:NAME, hf:ARCH, or give package.module:callable"
            )
        module.eval()
        if self.weights:
            load_weights(module, self.weights)
        if self.example:
            return module, example_from_callable(self.example, module)
        specs = self.inputs or defaults
        if not specs:
            raise InputError(
                f"model {self.name!r} has no default inputs; pass --input-shape 1,3,224,224 "
                "or --input NAME=SHAPE[:DTYPE] (repeatable), or --example package.module:callable"
            )
        if len(specs) == 1 and specs[0].name == "_":
            # --input-shape and the zoo/timm defaults: one positional float tensor.
            one = InputSpec(first_input_name(module), specs[0].shape, specs[0].dtype)
            gen = torch.Generator().manual_seed(SEED)
            return module, Example((torch.randn(one.shape, generator=gen),), {}, (str(one),))
        return module, build_example(specs, module)


def trace_request(
    request: ModelRequest, granularity: str = "layer"
) -> tuple[Graph, nn.Module, Example]:
    """Build and trace; a trace failure the model itself shows is blamed on the inputs."""
    from edgesplit.errors import ShapeError, TraceError
    from edgesplit.graph import trace
    from edgesplit.models.inputs import check_accepts

    if granularity not in ("layer", "op"):
        raise InputError(f"--granularity must be 'layer' or 'op', not {granularity!r}")
    module, example = request.load()
    try:
        graph = trace(
            module,
            example.args,
            example.kwargs,
            name=request.name,
            granularity=granularity,  # type: ignore[arg-type]
        )
    except (ShapeError, TraceError):
        check_accepts(module, example, request.name)
        raise
    return graph, module, example


def check_trusted(name: str, source: str, trust_code: bool, what: str = "model") -> None:
    """Refuse a ``package.module:callable`` named inside the data file ``source``."""
    from edgesplit.models.zoo import is_code_name

    if is_code_name(name) and not trust_code:
        raise InputError(
            f"{source} names {what} {name!r}, which is code (package.module:callable) and is "
            "not imported from a data file; pass --trust-model-code if you trust the file"
        )
