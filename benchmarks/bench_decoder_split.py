"""Decoder per-token latency: GPT-2 split into 3 parts vs unsplit, in-process (issue 12).

GPT-2 with the default ``GPT2Config`` (124M parameters, random weights, seed 0, nothing
downloaded), a seeded prompt of 128 token ids, 32 greedy tokens. The split runs
:mod:`edgesplit.graph.decoder` (blocks ``[0,4) [4,8) [8,12)``, each part keeping its own KV
cache); the baseline is the unsplit model's ``forward`` with one ``DynamicCache``, in the
same run. Rounds alternate which goes first, so load drifts hit both.

Reported: the median wall seconds per decoded token (steps 1..31) of each, their ratio (goal
at most 1.10), the prefill ratio, and the bytes per token crossing each cut at every decode
position (they must not grow with the position). Every round also checks that the split's
tokens and logits equal the unsplit ones. The JSON goes to results/bench/decoder_split.json
with the machine's load average.
"""

from __future__ import annotations

import argparse
import os
import statistics

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from _common import save

from edgesplit.graph.decoder import Generation, split_decoder, unsplit_generate


def decode_seconds(gen: Generation) -> list[float]:
    return [r.seconds for r in gen.records[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7, help="rounds of (split, unsplit)")
    parser.add_argument("--prompt-len", type=int, default=128)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--cuts", default="4,8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="one round, to prove the script runs")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    torch.set_num_threads(args.threads)

    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config()).eval()
    params = sum(p.numel() for p in model.parameters())
    cuts = [int(c) for c in args.cuts.split(",")]
    split = split_decoder(model, cuts)
    ids = torch.randint(
        0, model.config.vocab_size, (1, args.prompt_len), generator=torch.Generator().manual_seed(0)
    )

    def run_split() -> Generation:
        return split.generate(ids, args.tokens)

    def run_unsplit() -> Generation:
        return unsplit_generate(model, ids, args.tokens)

    run_split(), run_unsplit()  # warm-up: allocator, kernels
    split_tok: list[float] = []
    base_tok: list[float] = []
    split_pre: list[float] = []
    base_pre: list[float] = []
    part_tok: list[list[float]] = [[] for _ in split.parts]
    equal = True
    cut_bytes_by_position: dict[int, list[int]] = {}
    for i in range(repeats):
        order = (run_split, run_unsplit) if i % 2 == 0 else (run_unsplit, run_split)
        results = {f: f() for f in order}
        s, b = results[run_split], results[run_unsplit]
        equal &= torch.equal(s.tokens, b.tokens)
        equal &= all(torch.equal(x, y) for x, y in zip(s.logits, b.logits))
        split_tok += decode_seconds(s)
        base_tok += decode_seconds(b)
        split_pre.append(s.records[0].seconds)
        base_pre.append(b.records[0].seconds)
        for r in s.records[1:]:
            cut_bytes_by_position[r.position] = list(r.cut_bytes)
            for k, sec in enumerate(r.part_seconds):
                part_tok[k].append(sec)
    per_token_split = statistics.median(split_tok)
    per_token_unsplit = statistics.median(base_tok)
    ratio = per_token_split / per_token_unsplit
    prefill_ratio = statistics.median(split_pre) / statistics.median(base_pre)
    byte_rows = sorted(cut_bytes_by_position.items())
    grows = any(later != byte_rows[0][1] for _, later in byte_rows)
    print(
        f"GPT-2 {params / 1e6:.0f}M, prompt {args.prompt_len}, {args.tokens} tokens, cuts {cuts}, "
        f"{repeats} rounds, {args.threads} threads"
    )
    print(
        f"decode per token: split {per_token_split * 1e3:.2f} ms, unsplit "
        f"{per_token_unsplit * 1e3:.2f} ms, ratio {ratio:.3f} (goal <= 1.10)"
    )
    print(f"prefill: ratio {prefill_ratio:.3f}; tokens and logits equal unsplit: {equal}")
    print(f"bytes per token per cut: {byte_rows[0][1]} at every position: {not grows}")
    save(
        "decoder_split",
        {
            "model": "GPT2LMHeadModel(GPT2Config())",
            "params": params,
            "prompt_len": args.prompt_len,
            "tokens": args.tokens,
            "cuts": cuts,
            "repeats": repeats,
            "quick": args.quick,
            "threads": args.threads,
            "split_seconds_per_token_median": per_token_split,
            "unsplit_seconds_per_token_median": per_token_unsplit,
            "ratio": ratio,
            "goal_ratio": 1.10,
            "meets_goal": ratio <= 1.10,
            "part_seconds_per_token_median": [statistics.median(p) for p in part_tok],
            "split_prefill_seconds_median": statistics.median(split_pre),
            "unsplit_prefill_seconds_median": statistics.median(base_pre),
            "prefill_ratio": prefill_ratio,
            "tokens_and_logits_equal": equal,
            "bytes_per_token_per_cut": [{"position": pos, "cut_bytes": b} for pos, b in byte_rows],
            "bytes_per_token_grow_with_position": grows,
        },
    )


if __name__ == "__main__":
    main()
