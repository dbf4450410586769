"""``edgesplit generate``: a decoder LLM split at block boundaries generates token by token.

Each part keeps the KV cache of its own blocks (:mod:`edgesplit.graph.decoder`); per decoded
token only the new token's hidden state crosses each cut. The command prints one record per
token (the token, seconds per part, bytes per cut) and checks the tokens against the unsplit
model's greedy tokens. With ``--topology`` the parts run on the topology's servers as decode
sessions (:mod:`edgesplit.runtime.decode`), relayed device → edge → cloud where the
topology links them, with failover on unless ``--no-failover``. Torch and transformers are
imported inside the command only.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from edgesplit.commands.common import (
    ExampleOpt,
    InputOpt,
    InputShapeOpt,
    JsonOpt,
    ModelArg,
    ModelConfigOpt,
    TrustOpt,
    WeightsOpt,
    console,
    model_request,
    print_json,
    refused_setup,
)
from edgesplit.commands.runtime import TlsCaOpt
from edgesplit.errors import InputError

if TYPE_CHECKING:
    import torch

    from edgesplit.graph.decoder import DecoderShape, Generation
    from edgesplit.plan.decoder import DecoderPlan

DEFAULT_PROMPT_LEN = 16
DEFAULT_TOKENS = 32


def parse_cuts(text: str) -> list[float]:
    """``4,8`` -> ``[4, 8]``; a non-number names the fix."""
    try:
        cuts = [float(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        cuts = []
    if not cuts:
        raise InputError(f"--cuts {text!r} is not a list of block indices; write e.g. --cuts 4,8")
    return cuts


def _prompt(
    example: Any,
    shape: DecoderShape,
    prompt_len: int | None,
    explicit_inputs: bool,
) -> torch.Tensor:
    """The prompt: the given ``input_ids`` input, or ``prompt_len`` seeded token ids."""
    import torch

    if explicit_inputs:
        ids = example.kwargs.get("input_ids", example.args[0] if example.args else None)
        if not isinstance(ids, torch.Tensor) or ids.dtype != torch.int64 or ids.dim() != 2:
            raise InputError(
                "generate takes token ids: use --input input_ids=BATCHxN:int64 or --prompt-len N"
            )
        return ids
    n = DEFAULT_PROMPT_LEN if prompt_len is None else prompt_len
    if n < 1:
        raise InputError(f"--prompt-len must be at least 1, not {n}")
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, shape.vocab, (1, n), generator=gen)


def _calibrated_plan(
    shape: DecoderShape,
    gen: Generation,
    cuts: tuple[int, ...],
    names: list[str],
    link: str,
    prompt_len: int,
    batch: int,
    model: str,
) -> DecoderPlan:
    """A plan for the cuts run, each tier's FLOP/s measured in this run's decode steps."""
    from edgesplit.plan.decoder import DecoderTier, part_flops, plan_decoder
    from edgesplit.system import Link
    from edgesplit.units import parse_bandwidth, parse_duration

    bandwidth, _, rtt = link.partition(",")
    the_link = Link.of(parse_bandwidth(bandwidth), parse_duration(rtt or "0"))
    bounds = (0, *cuts, shape.layers)
    tokens = len(gen.records)
    tiers = []
    for i, name in enumerate(names):
        lo, hi = bounds[i], bounds[i + 1]
        steps = gen.records[1:] or gen.records
        flops = sum(part_flops(shape, lo, hi, 1, r.position, batch) for r in steps)
        seconds = sum(r.part_seconds[i] for r in steps)
        tiers.append(DecoderTier(name=name, flops_per_second=flops / max(seconds, 1e-9)))
    return plan_decoder(
        shape,
        tiers,
        [the_link] * len(cuts),
        prompt_len,
        tokens,
        batch=batch,
        cuts=cuts,
        model=model,
    )


def _print_records(gen: Generation, names: list[str]) -> None:
    from edgesplit.commands.tables import eng, make_table

    rows = [
        [
            str(r.step),
            str(r.position),
            ",".join(map(str, r.tokens)),
            *(eng(s, "s") for s in r.part_seconds),
            ", ".join(eng(b, "B") for b in r.cut_bytes) or "-",
            eng(r.seconds, "s"),
        ]
        for r in gen.records
    ]
    columns = ["step", "pos", "token", *names, "bytes/cut", "total"]
    title = "per-token records (step 0 is the prefill)"
    console.print(make_table(title, columns, rows, text={"token", "bytes/cut"}))


def generate(
    model: str = ModelArg,
    cuts: str | None = typer.Option(
        None, "--cuts", help="block indices to cut before, e.g. 4,8 (3 parts); or --plan"
    ),
    plan: str | None = typer.Option(
        None, "--plan", help="a decoder plan (--save-plan) giving cuts, tiers, prompt and tokens"
    ),
    prompt_len: int | None = typer.Option(
        None,
        "--prompt-len",
        help=f"seeded random prompt of N token ids (default {DEFAULT_PROMPT_LEN})",
    ),
    tokens: int | None = typer.Option(
        None, "--tokens", help=f"tokens to generate greedily (default {DEFAULT_TOKENS})"
    ),
    tiers: str | None = typer.Option(
        None, "--tiers", help="names of the tiers holding the parts, e.g. device,edge,cloud"
    ),
    save_plan: str | None = typer.Option(
        None,
        "--save-plan",
        help="write a decoder plan of this split, tier FLOP/s measured in this run",
    ),
    link: str = typer.Option(
        "1gbit,1ms", "--link", help="BANDWIDTH,RTT between consecutive tiers, for --save-plan"
    ),
    inputs: list[str] | None = InputOpt,
    input_shape: str | None = InputShapeOpt,
    example: str | None = ExampleOpt,
    weights: str | None = WeightsOpt,
    model_config: list[str] | None = ModelConfigOpt,
    trust_model_code: bool = TrustOpt,
    topology: Path | None = typer.Option(
        None,
        "--topology",
        help="run part i on tier i of this topology's servers (decode sessions); "
        "tiers: --tiers, else the topology's devices in order",
    ),
    check: bool = typer.Option(
        False, "--check", help="with --topology: compare the tokens with the unsplit model's"
    ),
    token: str | None = typer.Option(
        None, "--token", envvar="EDGESPLIT_TOKEN", help="bearer token of the servers"
    ),
    no_failover: bool = typer.Option(
        False, "--no-failover", help="with --topology: stop when a tier fails (default: rebuild)"
    ),
    as_json: bool = JsonOpt,
    tls_ca: Path | None = TlsCaOpt,
) -> None:
    """Split a GPT-2 / LLaMA model at block boundaries and generate greedily.

    Part 0 holds the embeddings, the last part the final norm and LM head;
    each part keeps the KV cache of its own blocks. Prints per-token records
    and checks tokens and logits against the unsplit model's greedy run.
    With --topology the parts run on the topology's `edgesplit serve` tiers.

    Example: edgesplit generate hf:GPT2LMHeadModel --cuts 4,8 --tokens 32
    """
    import torch

    from edgesplit.graph.decoder import describe, split_decoder, unsplit_generate
    from edgesplit.plan.decoder import load_decoder_plan
    from edgesplit.runtime import security

    security.use_ca(tls_ca)  # https:// tiers are verified against it (else system trust)

    if (cuts is None) == (plan is None):
        raise InputError("give --cuts (e.g. --cuts 4,8) or --plan PLAN, exactly one")
    explicit = bool(inputs or input_shape or example)
    if explicit and prompt_len is not None:
        raise InputError("give --prompt-len or the prompt as --input input_ids=1xN:int64, not both")
    if tokens is not None and tokens < 1:
        raise InputError(f"--tokens must be at least 1, not {tokens}")
    cut_list = parse_cuts(cuts) if cuts is not None else []
    saved = load_decoder_plan(plan) if plan else None
    request = model_request(model, inputs, input_shape, example, weights, model_config)
    module, example_inputs = request.load()
    shape = describe(module)
    if saved is not None:
        if (saved.family, saved.layers) != (shape.family, shape.layers):
            raise InputError(
                f"plan {plan!r} is for a {saved.layers}-block {saved.family} model, but "
                f"{model!r} is a {shape.layers}-block {shape.family}; plan this model"
            )
        prompt_len = saved.prompt_len if prompt_len is None and not explicit else prompt_len
        tokens = saved.tokens if tokens is None else tokens
    n_tokens = DEFAULT_TOKENS if tokens is None else tokens
    split = split_decoder(module, saved.cuts if saved else cut_list)
    names = (
        [t.name for t in saved.tiers] if saved else [f"part{i}" for i in range(len(split.parts))]
    )
    if tiers:
        names = [t.strip() for t in tiers.split(",")]
        if len(names) != len(split.parts):
            raise InputError(
                f"--tiers names {len(names)} tiers, but the cuts make {len(split.parts)} parts"
            )
    ids = _prompt(example_inputs, shape, prompt_len, explicit)
    if topology is not None:
        if save_plan:
            raise InputError("--save-plan measures the parts in-process; drop --topology")
        tier_names = names if (tiers or saved) else None
        _across(
            module, model, split.cuts, ids, n_tokens, topology, tier_names, token, check,
            not no_failover, as_json,
        )  # fmt: skip
        return

    gen = split.generate(ids, n_tokens)
    ref = unsplit_generate(module, ids, n_tokens)
    tokens_equal = torch.equal(gen.tokens, ref.tokens)
    logits_equal = all(torch.equal(a, b) for a, b in zip(gen.logits, ref.logits))
    decode = gen.records[1:]
    split_per_token = sum(r.seconds for r in decode) / max(len(decode), 1)
    ref_per_token = sum(r.seconds for r in ref.records[1:]) / max(len(decode), 1)
    if save_plan:
        measured = _calibrated_plan(
            shape, gen, split.cuts, names, link, ids.shape[1], ids.shape[0], model
        )
        options = {"model_options": request.describe(example_inputs)}
        measured.model_copy(update=options).save(save_plan)
    doc = {
        "model": model,
        "family": shape.family,
        "layers": shape.layers,
        "cuts": list(split.cuts),
        "tiers": [
            {"name": n, "blocks": [p.lo, p.hi], "kv_bytes": p.kv_bytes()}
            for n, p in zip(names, split.parts)
        ],
        "prompt_len": ids.shape[1],
        "batch": ids.shape[0],
        "tokens": n_tokens,
        "records": [
            {
                "step": r.step,
                "position": r.position,
                "tokens": list(r.tokens),
                "part_seconds": list(r.part_seconds),
                "cut_bytes": list(r.cut_bytes),
                "seconds": r.seconds,
            }
            for r in gen.records
        ],
        "split_seconds_per_token": split_per_token,
        "unsplit_seconds_per_token": ref_per_token,
        "tokens_equal_unsplit": tokens_equal,
        "logits_equal_unsplit": logits_equal,
    }
    if as_json:
        print_json(doc)
    else:
        _print_records(gen, names)
        console.print(
            f"decode: {split_per_token * 1e3:.2f} ms/token split vs {ref_per_token * 1e3:.2f} "
            f"unsplit; tokens equal unsplit greedy: {'yes' if tokens_equal else 'NO'}, "
            f"logits equal: {'yes' if logits_equal else 'NO'}"
        )
        if save_plan:
            console.print(f"wrote {save_plan}")
    if not tokens_equal:
        raise typer.Exit(1)


def _across(
    module: Any,
    model: str,
    cuts: tuple[int, ...],
    ids: torch.Tensor,
    n_tokens: int,
    path: Path,
    names: list[str] | None,
    token: str | None,
    check: bool,
    failover: bool,
    as_json: bool,
) -> None:
    """Generate with part i on tier i of the topology (:class:`DecodeClient`)."""
    import torch

    from edgesplit.errors import TransportError
    from edgesplit.graph.decoder import unsplit_generate
    from edgesplit.runtime.decode import DecodeClient, HTTPDecodeLink, Tier
    from edgesplit.runtime.security import hop_token
    from edgesplit.system.topology import load_topology

    topo = load_topology(path)
    parts = len(cuts) + 1
    if names is None:
        if len(topo.devices) != parts:
            raise InputError(
                f"the cuts make {parts} parts but topology file {str(path)!r} has "
                f"{len(topo.devices)} devices; name the tiers in order with --tiers"
            )
        names = list(topo.names)
    devices = [topo.device(n) for n in names]  # an unknown name is one line naming it
    tiers = [Tier(d.name, None if d.local else d.url) for d in devices]
    relay = {frozenset((link.a, link.b)) for link in topo.links}
    # Each tier's token: its topology device's token_env, else --token.
    tokens = {d.name: hop_token(d, token) for d in devices if not d.local}
    client = DecodeClient(
        module,
        model,
        cuts,
        tiers,
        token=token,
        relay=relay,
        failover=failover,
        here=topo.local,
        link_factory=lambda t: HTTPDecodeLink(t.name, str(t.url), tokens[t.name]),
    )
    try:
        run = client.generate(ids, n_tokens)
    except TransportError as err:
        # A tier failing (with --no-failover) is not bad input: one line, exit 1.
        refused_setup(err)
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        raise typer.Exit(1) from None
    finally:
        client.close()
    for r in run.records:
        if r.rebuilt:
            print(
                f"warning: tier {r.failed_device} failed at step {r.step}; sessions rebuilt "
                f"({', '.join(r.where)}), {r.replayed_steps} steps replayed",
                file=sys.stderr,
            )
    decode = run.records[1:]
    per_token = sum(r.seconds for r in decode) / max(len(decode), 1)
    link_bytes: dict[str, list[int]] = {}
    for r in decode:
        for hop in r.links:
            link_bytes.setdefault(f"{hop['src']}->{hop['dst']}", []).append(hop["sent_bytes"])
    doc: dict[str, Any] = {
        "model": model,
        "cuts": list(cuts),
        "topology": str(path),
        "tiers": [
            {"name": t.name, "url": t.url or "local", "blocks": [lo, hi]}
            for t, lo, hi in zip(tiers, (0, *cuts), (*cuts, client.shape.layers))
        ],
        "prompt_len": ids.shape[1],
        "batch": ids.shape[0],
        "tokens": n_tokens,
        "generated": run.tokens.tolist(),
        "records": [r.as_dict() for r in run.records],
        "seconds_per_token": per_token,
        "bytes_per_token_per_link": {k: max(v) for k, v in link_bytes.items()},
        "rebuilt_steps": [r.step for r in run.records if r.rebuilt],
    }
    equal = True
    if check:
        ref = unsplit_generate(module, ids, n_tokens)
        equal = torch.equal(run.tokens, ref.tokens)
        doc["tokens_equal_unsplit"] = equal
    if as_json:
        print_json(doc)
    else:
        _print_across(run.records)
        hops = ", ".join(f"{k} {v} B" for k, v in doc["bytes_per_token_per_link"].items())
        verdict = "" if not check else f"; tokens equal unsplit greedy: {'yes' if equal else 'NO'}"
        console.print(f"decode: {per_token * 1e3:.2f} ms/token; per token {hops or '-'}{verdict}")
    if not equal:
        raise typer.Exit(1)


def _print_across(records: Any) -> None:
    from edgesplit.commands.tables import eng, make_table

    rows = [
        [
            str(r.step),
            str(r.position),
            ",".join(map(str, r.tokens)),
            ",".join(r.where),
            " ".join(f"{h['dst']}:{eng(h['sent_bytes'], 'B')}" for h in r.links) or "-",
            eng(r.seconds, "s"),
            f"rebuilt after {r.failed_device} failed" if r.rebuilt else "",
        ]
        for r in records
    ]
    columns = ["step", "pos", "token", "where", "bytes per link", "total", "note"]
    title = "per-token records across tiers (step 0 is the prefill)"
    text = {"token", "where", "bytes per link", "note"}
    console.print(make_table(title, columns, rows, text=text))


def register(app: typer.Typer) -> None:
    app.command()(generate)
