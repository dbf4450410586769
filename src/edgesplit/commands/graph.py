"""Commands on model graphs: models, inspect, verify, profile, schema."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from edgesplit.commands.common import (
    ExampleOpt,
    GranularityOpt,
    InputOpt,
    InputShapeOpt,
    JsonOpt,
    ModelArg,
    ModelConfigOpt,
    TrustOpt,
    WeightsOpt,
    console,
    load_graph,
    model_request,
    print_json,
)
from edgesplit.commands.progress import Progress

if TYPE_CHECKING:
    from edgesplit.graph import Graph


def graph_document(graph: Graph) -> dict[str, Any]:
    return {
        **graph.summary(),
        "inputs": [
            {"name": t.name, "arg": arg, "shape": list(t.shape), "dtype": t.dtype}
            for t, arg in zip((graph.tensor(i) for i in graph.input_names), graph.input_args)
        ],
        "nodes": [
            {
                "index": n.index,
                "name": n.name,
                "kind": n.kind,
                "target": n.target,
                "inputs": list(n.inputs),
                "input_shapes": [list(s) for s in n.input_shapes],
                "output_shape": list(n.output_shape),
                "dtype": n.dtype,
                "output_bytes": n.output_bytes,
                "flops": n.flops,
                "params": n.params,
                "param_bytes": n.param_bytes,
            }
            for n in graph.nodes
        ],
        "cuts": [
            {
                "index": c.index,
                "bytes": c.bytes,
                "tensors": [
                    {"name": t.name, "shape": list(t.shape), "bytes": t.nbytes} for t in c.tensors
                ],
            }
            for c in graph.cuts()
        ],
    }


def models() -> None:
    """List the model zoo."""
    from edgesplit.models import ZOO

    table = Table(title="edgesplit model zoo")
    for col in ("name", "input shape", "description"):
        table.add_column(col)
    for spec in ZOO.values():
        table.add_row(spec.name, ",".join(map(str, spec.input_shape)), spec.description)
    console.print(table)
    other = Table(
        title="beyond the zoo: seeded random weights unless --weights; nothing is downloaded",
        show_header=False,
    )
    other.add_column("name", no_wrap=True)
    other.add_column("what")
    for row in (
        ("timm:NAME", "any timm architecture, e.g. timm:vit_tiny_patch16_224"),
        (
            "hf:ARCH",
            "a transformers class from its default config: hf:BertModel, hf:GPT2Model, "
            "hf:ViTModel, hf:WhisperEncoder; shrink it with --model-config num_hidden_layers=2",
        ),
        ("hf:ARCH=DIR", "a local directory with config.json (and weights, if there)"),
        ("pkg.mod:fn", "your own model, with --input-shape, --input or --example"),
        (
            "inputs",
            "hf text: input_ids (+attention_mask) 1x16 int64; vision: pixel_values "
            "1xCxHxW; Whisper: input_features; timm: 1 x its input_size",
        ),
    ):
        other.add_row(*row)
    console.print(other)


def inspect(
    model: str = ModelArg,
    inputs: list[str] | None = InputOpt,
    input_shape: str | None = InputShapeOpt,
    example: str | None = ExampleOpt,
    weights: str | None = WeightsOpt,
    model_config: list[str] | None = ModelConfigOpt,
    trust_model_code: bool = TrustOpt,
    granularity: str = GranularityOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Show the nodes of MODEL and the bytes that cross every cut."""
    request = model_request(model, inputs, input_shape, example, weights, model_config)
    graph, _, _ = load_graph(request, granularity)
    if as_json:
        print_json(graph_document(graph))
        return
    s = graph.summary()
    console.print(
        f"[bold]{graph.name}[/]: {s['nodes']} {graph.granularity} nodes, "
        f"{'chain' if s['is_chain'] else 'DAG'}, {s['flops'] / 1e9:.3f} GFLOPs, {s['params']:,} params, "
        f"traced by {graph.tracer}; inputs {', '.join(graph.input_args)}"
    )
    from edgesplit.commands.tables import eng, make_table

    cuts = graph.cuts()
    rows = [
        ["-", "(input)", "", "", "", "", "", f"{eng(cuts[0].bytes, 'B')} ({len(cuts[0].tensors)})"]
    ]
    for n in graph.nodes:
        c = cuts[n.index + 1]
        rows.append(
            [
                str(n.index),
                n.name,
                n.kind,
                "x".join(map(str, n.output_shape)),
                eng(n.output_bytes, "B"),
                eng(n.flops),
                eng(n.params),
                f"{eng(c.bytes, 'B')} ({len(c.tensors)})",
            ]
        )
    columns = ["#", "name", "kind", "output shape", "out", "FLOPs", "params", "cut after"]
    console.print(make_table(None, columns, rows, text={"name", "kind", "output shape"}))
    console.print("cut after: bytes crossing a cut after that node (tensors crossing)")


def verify(
    model: str = ModelArg,
    inputs: list[str] | None = InputOpt,
    input_shape: str | None = InputShapeOpt,
    example: str | None = ExampleOpt,
    weights: str | None = WeightsOpt,
    model_config: list[str] | None = ModelConfigOpt,
    trust_model_code: bool = TrustOpt,
    granularity: str = GranularityOpt,
    method: str = typer.Option(
        "tails",
        "--method",
        help="tails (one recorded run, parts built once, every cut's whole tail run; default), "
        "fast (tails checked part by part, exact by induction) or rebuild (every split "
        "built afresh, the slowest)",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Check that splitting MODEL at every cut gives output torch.equal to the unsplit model.

    Every output leaf (tuple, dict, ModelOutput) is compared. The default method records
    every tensor in one run, splits the graph once into one part per node, then checks
    every cut's head (the parts before it, fed the inputs) and its whole tail (the parts
    after it, fed only copies of the recorded tensors crossing the cut); --method fast
    checks each tail part by part (exact by induction, one forward), --method rebuild
    builds the two-part split of every cut afresh (slower, same verdict).
    """
    import torch

    from edgesplit.graph.trace import flat_inputs, traced_call
    from edgesplit.graph.verify import METHODS, check_every_cut

    request = model_request(model, inputs, input_shape, example, weights, model_config)
    graph, module, ex = load_graph(request, granularity)
    if method not in METHODS:
        from edgesplit.errors import InputError

        raise InputError(f"--method must be one of {', '.join(METHODS)}, not {method!r}")
    call_args, call_kwargs = traced_call(module, ex.args, ex.kwargs)
    with torch.inference_mode():
        reference = module(*call_args, **call_kwargs)
    flat = flat_inputs(module, graph, call_args, call_kwargs)
    n_cuts = len(graph.nodes) + 1
    with Progress(f"verify {graph.name}", total=n_cuts, unit="cuts", info=method) as bar:
        checks = check_every_cut(
            graph, flat, reference, method=method,  # type: ignore[arg-type]
            on_cut=lambda c: bar.advance(info=f"cut {c.cut} {'equal' if c.equal else 'DIFFERS'}"),
        )  # fmt: skip
    results = [c.as_dict() for c in checks]
    passed = all(c.equal for c in checks)
    if as_json:
        print_json(
            {
                "model": graph.name,
                "granularity": graph.granularity,
                "tracer": graph.tracer,
                "method": method,
                "passed": passed,
                "cuts": results,
            }
        )
    else:
        bad = [c.cut for c in checks if not c.equal]
        verdict = "[green]PASS[/]" if passed else f"[red]FAIL[/] at cuts {bad}"
        console.print(
            f"{graph.name} (traced by {graph.tracer}): {len(results)} cuts checked, {verdict}"
        )
        for c in checks:
            if not c.equal:
                console.print(f"  cut {c.cut}: {c.reason}", markup=False)
    if not passed:
        raise typer.Exit(1)


def profile(
    model: str = ModelArg,
    output: str = typer.Option(..., "-o", "--output", help="profile JSON to write"),
    inputs: list[str] | None = InputOpt,
    input_shape: str | None = InputShapeOpt,
    example: str | None = ExampleOpt,
    model_config: list[str] | None = ModelConfigOpt,
    trust_model_code: bool = TrustOpt,
    granularity: str = GranularityOpt,
    device: str = typer.Option("cpu", "--device", help="cpu or cuda"),
    repeats: int = typer.Option(20, "--repeats", help="timed repeats per node"),
    warmup: int = typer.Option(3, "--warmup", help="untimed warm-up passes"),
    threads: int | None = typer.Option(
        None, "--threads", help="torch threads to time on [default: torch's count on this host]"
    ),
    codecs: bool = typer.Option(
        False, "--codecs", help="also record each wire codec's cost on this host (plan --codec)"
    ),
    weights: str | None = WeightsOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Measure per-node latency (median, p90, wall clock) and the end-to-end forward on this host.

    Timed on ``--threads`` torch threads, which the profile records; time a profile on the
    thread count the tier it describes will run with.
    """
    import torch

    from edgesplit.graph.trace import flat_inputs
    from edgesplit.predict.profile import profile_graph

    request = model_request(model, inputs, input_shape, example, weights, model_config)
    graph, module, ex = load_graph(request, granularity)
    x = flat_inputs(module, graph, ex.args, ex.kwargs)
    n_threads = torch.get_num_threads() if threads is None else threads
    label = f"profile {graph.name}"
    with Progress(
        label, total=warmup + repeats, unit="passes", info=f"{n_threads} thread(s)"
    ) as bar:

        def on_pass(done: int, total: int) -> None:
            bar.update(done, "warm-up" if done <= warmup else f"{n_threads} thread(s)")
            if done == total and codecs:
                bar.stage("timing the wire codecs")

        prof = profile_graph(
            graph, x, threads=n_threads, repeats=repeats, warmup=warmup, device=device,
            codecs=codecs, on_pass=on_pass,
        )  # fmt: skip
    prof = prof.model_copy(update={"model_options": request.describe(ex)})
    prof.save(output)
    from edgesplit.commands.flags import check_fidelity

    check_fidelity(prof, output)
    summary = {
        "model": prof.model,
        "output": output,
        "nodes": len(prof.nodes),
        "sum_of_medians_s": prof.sum_of_medians_s,
        "end_to_end_median_s": prof.end_to_end.median_s,
        "fidelity": prof.fidelity,
        "threads": prof.host.threads,
        "timer": "wall clock (time.perf_counter)",
        "device": prof.host.device,
    }
    if as_json:
        print_json(summary)
    else:
        console.print(
            f"{prof.model}: {len(prof.nodes)} nodes, sum of medians "
            f"{prof.sum_of_medians_s * 1e3:.2f} ms vs end-to-end "
            f"{prof.end_to_end.median_s * 1e3:.2f} ms (ratio {prof.fidelity:.3f}), wall clock "
            f"on {prof.host.threads} torch thread(s); wrote {output}"
        )


def schema(name: str = typer.Argument(..., help="input file type, e.g. profile or system")) -> None:
    """Print the JSON schema of an input file type."""
    from edgesplit.schemas import schema as get_schema

    print_json(get_schema(name))


def register(app: typer.Typer) -> None:
    app.command()(models)
    app.command()(inspect)
    app.command()(verify)
    app.command()(profile)
    app.command()(schema)
