"""Options and helpers shared by every command module."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console

from edgesplit.graph import Graph, trace
from edgesplit.models import build, input_shape_from_text, load_weights

# Human output goes to stderr-free stdout only when --json is off; --json prints one document.
console = Console()
err_console = Console(stderr=True)

ModelArg = typer.Argument(..., help="zoo name (see `edgesplit models`) or package.module:callable")
InputShapeOpt = typer.Option(None, "--input-shape", help="input shape, e.g. 1,3,224,224")
GranularityOpt = typer.Option("layer", "--granularity", help="layer or op")
JsonOpt = typer.Option(False, "--json", help="print one JSON document on stdout")
WeightsOpt = typer.Option(None, "--weights", help="state dict (.safetensors or .pt, loaded safely)")


def load_graph(
    model: str,
    input_shape: str | None,
    granularity: str = "layer",
    weights: str | None = None,
) -> tuple[Graph, Any, Any]:
    """Resolve, optionally load weights, and trace; returns (graph, module, example input)."""
    from edgesplit.errors import InputError

    if granularity not in ("layer", "op"):
        raise InputError(f"--granularity must be 'layer' or 'op', not {granularity!r}")
    shape = input_shape_from_text(input_shape) if input_shape else None
    module, x = build(model, shape)
    if weights:
        load_weights(module, weights)
    graph = trace(module, x, name=model, granularity=granularity)  # type: ignore[arg-type]
    return graph, module, x


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")
