"""Decoder per-token latency across two `edgesplit serve` processes vs unsplit in-process (issue 13.8).

GPT-2 with the default ``GPT2Config`` (124M parameters, random weights seeded by the model
loader, nothing downloaded) cut at blocks 4 and 8: blocks ``[0,4)`` and the embeddings run
here (the device), ``[4,8)`` on an edge server and ``[8,12)`` with the LM head on a cloud
server, both real ``edgesplit serve`` processes on loopback. The edge relays to the cloud
(``serve --topology F --as edge``), so per token the device sends the edge one hidden state
and the edge sends the cloud one; each answers the greedy token id. The baseline is the
unsplit model's ``forward`` with one ``DynamicCache`` in this process, in the same run;
rounds alternate which goes first.

Reported: the median wall seconds per decoded token (steps 1..T-1) of each and their ratio,
the extra milliseconds per token per link, the payload bytes per token on each link (they
must equal the hidden state's ``batch x hidden x 4`` and not grow with the position), and
whether the tokens equal the unsplit greedy tokens. ``--quick`` runs a tiny GPT-2 for one
round to prove the script works. Writes results/bench/decoder_engine.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from _common import save

from edgesplit.commands.common import model_request
from edgesplit.graph.decoder import describe, unsplit_generate
from edgesplit.runtime.decode import DecodeClient, DecodeRun, Tier
from edgesplit.runtime.server import ServerProcess

MODEL = "hf:GPT2LMHeadModel"
TINY = ["n_layer=4", "n_embd=64", "n_head=4", "vocab_size=97", "n_positions=64"]


def topology(edge: str, cloud: str) -> dict[str, object]:
    return {
        "devices": [
            {"name": "device", "url": "local"},
            {"name": "edge", "url": edge},
            {"name": "cloud", "url": cloud},
        ],
        "links": [
            {"a": "device", "b": "edge", "bandwidth": "1gbit", "rtt": "0ms"},
            {"a": "edge", "b": "cloud", "bandwidth": "1gbit", "rtt": "0ms"},
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5, help="rounds of (engine, unsplit)")
    parser.add_argument("--prompt-len", type=int, default=128)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--cuts", default="4,8")
    parser.add_argument("--threads", type=int, default=2, help="torch threads, every process")
    parser.add_argument("--quick", action="store_true", help="tiny GPT-2, one round")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    config = TINY if args.quick else []
    cuts = [1, 3] if args.quick else [int(c) for c in args.cuts.split(",")]
    prompt_len = 8 if args.quick else args.prompt_len
    torch.set_num_threads(args.threads)

    module = model_request(MODEL, None, None, None, None, config).load()[0].eval()
    shape = describe(module)
    ids = torch.randint(0, shape.vocab, (1, prompt_len), generator=torch.Generator().manual_seed(0))
    options = [a for c in config for a in ("--model-config", c)]
    options += ["--threads", str(args.threads)]
    edge, cloud = ServerProcess((MODEL,)), ServerProcess((MODEL,), args=tuple(options))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "topology.json"
        path.write_text(json.dumps(topology(edge.url, cloud.url)))
        edge.args = (*options, "--topology", str(path), "--as", "edge")
        try:
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda p: p.start(timeout_s=600), (edge, cloud)))
            tiers = [Tier("device"), Tier("edge", edge.url), Tier("cloud", cloud.url)]
            relay = {frozenset(("device", "edge")), frozenset(("edge", "cloud"))}
            client = DecodeClient(module, MODEL, cuts, tiers, relay=relay)
            result = measure(client, module, ids, args.tokens, repeats)
            client.close()
        finally:
            edge.stop()
            cloud.stop()
    engine_tok, base_tok, equal, links = result
    per_engine, per_base = statistics.median(engine_tok), statistics.median(base_tok)
    ratio = per_engine / per_base
    hidden_bytes = shape.hidden * shape.dtype_bytes
    sizes = {k: sorted(set(v)) for k, v in links.items()}
    one_hidden = all(v == [hidden_bytes] for v in sizes.values())
    extra_ms = (per_engine - per_base) * 1e3 / max(len(links), 1)
    print(
        f"GPT-2 {sum(p.numel() for p in module.parameters()) / 1e6:.1f}M, prompt {prompt_len}, "
        f"{args.tokens} tokens, cuts {cuts}, {repeats} rounds, {args.threads} threads"
    )
    print(
        f"decode per token: across two serve processes {per_engine * 1e3:.2f} ms, unsplit "
        f"in-process {per_base * 1e3:.2f} ms, ratio {ratio:.3f}; {extra_ms:.2f} ms per link"
    )
    print(
        f"bytes per token per link: {sizes} (hidden state {hidden_bytes} B: {one_hidden}); "
        f"tokens equal unsplit: {equal}"
    )
    save(
        "decoder_engine",
        {
            "model": f"GPT2LMHeadModel(GPT2Config({', '.join(config)}))",
            "params": sum(p.numel() for p in module.parameters()),
            "prompt_len": prompt_len,
            "tokens": args.tokens,
            "cuts": cuts,
            "tiers": "device (here) -> edge serve -> cloud serve, relayed over HTTP on loopback",
            "repeats": repeats,
            "quick": args.quick,
            "threads": args.threads,
            "engine_seconds_per_token_median": per_engine,
            "unsplit_seconds_per_token_median": per_base,
            "ratio": ratio,
            "extra_ms_per_token_per_link": extra_ms,
            "bytes_per_token_per_link": {k: v[0] for k, v in sizes.items()},
            "hidden_state_bytes": hidden_bytes,
            "bytes_equal_hidden_state_at_every_position": one_hidden,
            "tokens_equal_unsplit": equal,
        },
    )


def measure(
    client: DecodeClient, module: torch.nn.Module, ids: torch.Tensor, tokens: int, repeats: int
) -> tuple[list[float], list[float], bool, dict[str, list[int]]]:
    """Alternate rounds; per-token seconds of each, tokens equal, bytes per decode step."""

    def engine() -> DecodeRun:
        return client.generate(ids, tokens)

    def unsplit() -> object:
        return unsplit_generate(module, ids, tokens)

    engine(), unsplit()  # warm-up: connections, allocator, kernels
    engine_tok: list[float] = []
    base_tok: list[float] = []
    links: dict[str, list[int]] = {}
    equal = True
    for i in range(repeats):
        order = (engine, unsplit) if i % 2 == 0 else (unsplit, engine)
        results = {f: f() for f in order}
        run, ref = results[engine], results[unsplit]
        assert isinstance(run, DecodeRun)
        equal &= torch.equal(run.tokens, ref.tokens)  # type: ignore[attr-defined]
        engine_tok += [r.seconds for r in run.records[1:]]
        base_tok += [r.seconds for r in ref.records[1:]]  # type: ignore[attr-defined]
        equal &= not any(r.rebuilt for r in run.records)
        for r in run.records[1:]:
            for h in r.links:
                links.setdefault(f"{h['src']}->{h['dst']}", []).append(h["sent_bytes"])
    return engine_tok, base_tok, equal, links


if __name__ == "__main__":
    main()
