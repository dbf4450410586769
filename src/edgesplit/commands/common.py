"""Options and helpers shared by every command module.

The model options are one bundle that every command taking a model declares the same way
(inspect, verify, profile, plan, serve, run, run-plan, generate; ``serve`` takes
:data:`ModelsOpt`, repeatable, where the others take :data:`ModelArg`)::

    def cmd(
        model: str = ModelArg,
        inputs: list[str] | None = InputOpt,
        input_shape: str | None = InputShapeOpt,
        example: str | None = ExampleOpt,
        weights: str | None = WeightsOpt,
        model_config: list[str] | None = ModelConfigOpt,
        trust_model_code: bool = TrustOpt,
    ) -> None:
        request = model_request(model, inputs, input_shape, example, weights, model_config)
        graph, module, example_inputs = load_graph(request)

``--inputs PATH`` (:data:`InputsFileOpt`, :func:`file_inputs`) gives the commands that run
requests (run-plan, run) real inputs. This module imports no torch, so every ``--help``
answers at once.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from pathlib import Path

    from torch import nn

    from edgesplit.graph import Graph
    from edgesplit.models import Example, ModelRequest

# Human output goes to stderr-free stdout only when --json is off; --json prints one document.
console = Console()
err_console = Console(stderr=True)

MODEL_HELP = (
    "zoo name (see `edgesplit models`), timm:NAME (any timm architecture), hf:ARCH "
    "(a transformers class from its default config, e.g. hf:BertModel), hf:ARCH=DIR "
    "(a local config.json [+ weights]), or package.module:callable"
)
ModelArg = typer.Argument(..., help=MODEL_HELP)
#: ``serve``'s models: the same forms, repeatable; the model options apply to each.
ModelsOpt = typer.Option(
    ["alexnet"],
    "--model",
    "-m",
    help=f"model to serve, repeat for several: {MODEL_HELP}; the model options apply to each",
)
InputOpt = typer.Option(
    None,
    "--input",
    help=(
        "NAME=SHAPE[:DTYPE], repeatable, e.g. --input input_ids=1x128:int64 "
        "--input attention_mask=1x128:int64 (dtype default float32). Seeded values: floats "
        "normal; *mask* ones; *type_ids zeros; position_ids 0..L-1; other integers are token "
        "ids below the vocabulary size (config.vocab_size, else the first nn.Embedding's "
        "num_embeddings). Forward arguments not given keep their defaults"
    ),
)
InputShapeOpt = typer.Option(
    None, "--input-shape", help="shorthand for one float input, e.g. 1,3,224,224 or 1x3x224x224"
)
ExampleOpt = typer.Option(
    None,
    "--example",
    help="package.module:callable returning example args (tuple), kwargs (dict) or (args, kwargs)",
)
WeightsOpt = typer.Option(
    None,
    "--weights",
    help="state dict (.safetensors or .pt, loaded safely); default: seeded random",
)
ModelConfigOpt = typer.Option(
    None,
    "--model-config",
    help=(
        "KEY=VALUE for timm:/hf: models, repeatable (VALUE read as JSON): hf config fields, "
        "e.g. num_hidden_layers=2, or timm create_model arguments, e.g. depth=2"
    ),
)
TrustOpt = typer.Option(
    False,
    "--trust-model-code",
    help="import a package.module:callable model named inside a data file (plan, profile, ...)",
)
InputsFileOpt = typer.Option(
    None,
    "--inputs",
    help=(
        "real inputs instead of seeded random ones: a folder of images or .npy files, a "
        ".safetensors or .npy file (tensors by input name; R x shape is R requests) or a .txt "
        "of token ids (one request per line); shapes and dtypes must match the model's"
    ),
)
GranularityOpt = typer.Option("layer", "--granularity", help="layer or op")
JsonOpt = typer.Option(False, "--json", help="print one JSON document on stdout")


def model_request(
    model: str,
    inputs: list[str] | None = None,
    input_shape: str | None = None,
    example: str | None = None,
    weights: str | None = None,
    model_config: list[str] | None = None,
) -> ModelRequest:
    """The model options of a command as one :class:`~edgesplit.models.ModelRequest`."""
    from edgesplit.models import ModelRequest

    return ModelRequest.from_options(model, inputs, input_shape, example, weights, model_config)


def file_model_request(
    name: str,
    source: str,
    trust_model_code: bool,
    inputs: list[str] | None = None,
    input_shape: str | None = None,
    example: str | None = None,
    weights: str | None = None,
    model_config: list[str] | None = None,
) -> ModelRequest:
    """Like :func:`model_request` for a model named inside the data file ``source``."""
    from edgesplit.models import check_trusted

    check_trusted(name, source, trust_model_code)
    return model_request(name, inputs, input_shape, example, weights, model_config)


def load_graph(
    request: ModelRequest | str, granularity: str = "layer"
) -> tuple[Graph, nn.Module, Example]:
    """Build, optionally load weights, and trace; returns (graph, module, example inputs).

    A plain name is a request with the model's default inputs.
    """
    from edgesplit.models import ModelRequest
    from edgesplit.models.loader import trace_request

    if isinstance(request, str):
        request = ModelRequest(request)
    return trace_request(request, granularity)


def file_inputs(
    path: Path, graph: Graph, module: nn.Module, example: tuple[Any, ...]
) -> list[tuple[Any, ...]]:
    """The requests ``--inputs PATH`` holds (:mod:`edgesplit.runtime.inputs`), checked
    against ``graph``'s inputs; ``example`` fills the inputs the file does not give."""
    from edgesplit.runtime.inputs import load_inputs

    return load_inputs(path, graph, tuple(example), module)


def refused_setup(err: Exception) -> None:
    """Re-raise a tier's refusal of the setup itself, which no retry or failover mends:
    the model is not served there (404, the message names it and the served ones) or is
    served with other weights (409). The CLI prints it as one line and exits 2; the caller
    handles any other transport error (a tier failing mid-run: exit 1)."""
    from edgesplit.runtime.transport import ServerRejected

    if isinstance(err, ServerRejected) and err.status in (404, 409):
        raise err


def print_json(doc: Any) -> None:
    """The one ``--json`` printer: one strict JSON document on stdout.

    A quantity that is undefined or infinite (``nan``, ``inf``) prints as ``null``
    (:func:`edgesplit.io.json_safe`); ``NaN`` and ``Infinity`` are not JSON, and
    ``allow_nan=False`` makes sure none slips through.
    """
    from edgesplit.io import json_safe

    sys.stdout.write(json.dumps(json_safe(doc), indent=2, allow_nan=False) + "\n")
