"""The decoder cost model against the real split parts, and the planner against enumeration."""

from __future__ import annotations

import itertools
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded: models come from configs

import pytest
import torch
import transformers
from torch.utils.flop_counter import FlopCounterMode

from edgesplit.errors import InfeasiblePlanError, InputError
from edgesplit.graph.decoder import DecoderShape, describe, split_decoder
from edgesplit.plan.decoder import (
    DecoderTier,
    attention_flops,
    cut_bytes,
    dense_flops,
    head_flops,
    kv_bytes,
    load_decoder_plan,
    param_bytes,
    plan_decoder,
)
from edgesplit.system import Link

VOCAB = 300


def tiny(family: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if family == "gpt2":
        cfg = transformers.GPT2Config(
            n_layer=4, n_embd=32, n_head=4, vocab_size=VOCAB, n_positions=64
        )
        return transformers.GPT2LMHeadModel(cfg).eval()
    cfg = transformers.LlamaConfig(
        num_hidden_layers=4,
        hidden_size=32,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=48,
        vocab_size=VOCAB,
        max_position_embeddings=64,
    )
    return transformers.LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_dense_flops_equal_torch_flop_counter_on_the_real_parts(family: str) -> None:
    """CPU attention kernels are not counted by FlopCounterMode: the dense terms are exact."""
    model = tiny(family)
    split = split_decoder(model, [1, 3])
    s = split.shape
    feeds = [torch.randint(0, VOCAB, (1, 6)), torch.tensor([[7]]), torch.tensor([[9]])]
    for ids in feeds:
        x = ids
        for part in split.parts:
            with FlopCounterMode(display=False) as counter:
                y = part(x)
            q = ids.shape[1]
            want = (part.hi - part.lo) * dense_flops(s, q) + (head_flops(s, q) if part.last else 0)
            assert counter.get_total_flops() == want
            x = y


def test_attention_flops_sum_the_causal_context() -> None:
    s = describe(tiny("gpt2"))
    # Prefill of 3 tokens sees contexts 1, 2, 3; a decode step after 5 sees 6.
    assert attention_flops(s, 3, 0) == 4 * s.heads * s.head_dim * (1 + 2 + 3)
    assert attention_flops(s, 1, 5) == 4 * s.heads * s.head_dim * 6
    assert attention_flops(s, 2, 5) == attention_flops(s, 1, 5) + attention_flops(s, 1, 6)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_kv_memory_and_cut_bytes_match_the_running_split(family: str) -> None:
    model = tiny(family)
    split = split_decoder(model, [1, 3])
    prompt, tokens = 6, 5
    gen = split.generate(torch.randint(0, VOCAB, (2, prompt)), tokens)
    s = split.shape
    for part in split.parts:
        assert part.kv_bytes() == kv_bytes(s, part.hi - part.lo, prompt + tokens - 1, batch=2)
    assert gen.records[0].cut_bytes == (cut_bytes(s, prompt, batch=2),) * 2
    assert all(r.cut_bytes == (cut_bytes(s, 1, batch=2),) * 2 for r in gen.records[1:])
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    tied = VOCAB * 32 * 4 if model.config.tie_word_embeddings else 0
    assert sum(param_bytes(s, p.lo, p.hi) for p in split.parts) == total + tied


SHAPE = DecoderShape(
    family="llama",
    layers=6,
    hidden=64,
    heads=4,
    kv_heads=4,
    head_dim=16,
    intermediate=128,
    mlp_matrices=3,
    vocab=1000,
    context=256,
    dtype_bytes=4,
    has_head=True,
    embed_param_bytes=256_000,
    block_param_bytes=(147_456,) * 6,
    final_param_bytes=256_256,
)
TIERS = [
    DecoderTier(name="device", flops_per_second=2e9, memory=900_000),
    DecoderTier(name="edge", flops_per_second=2e10),
    DecoderTier(name="cloud", flops_per_second=1e11),
]
LINKS = [Link.of(20e6, 0.02), Link.of(100e6, 0.04)]


def independent_total(cuts: tuple[int, ...], prompt: int, tokens: int) -> float:
    """Recompute a plan's total seconds token by token, from the formulas in the docstring."""
    bounds = (0, *cuts, SHAPE.layers)
    proj = (2 * SHAPE.heads + 2 * SHAPE.kv_heads) * SHAPE.head_dim * SHAPE.hidden
    mlp = SHAPE.mlp_matrices * SHAPE.hidden * SHAPE.intermediate
    seconds = 0.0
    feeds = [(prompt, 0)] + [(1, p) for p in range(prompt, prompt + tokens - 1)]
    for q, past in feeds:
        for tier, lo, hi in zip(TIERS, bounds, bounds[1:]):
            flops = 0
            for t in range(q):  # token t attends to past + t + 1 positions
                flops += (hi - lo) * (
                    2 * (proj + mlp) + 4 * SHAPE.heads * SHAPE.head_dim * (past + t + 1)
                )
                if hi == SHAPE.layers:
                    flops += 2 * SHAPE.hidden * SHAPE.vocab
            seconds += flops / tier.flops_per_second
        for link in LINKS[: len(cuts)]:
            seconds += q * SHAPE.hidden * SHAPE.dtype_bytes * 8 / link.rate_bps + link.rtt / 2
    return seconds


def test_plan_total_equals_an_independent_token_by_token_evaluator() -> None:
    for cuts in itertools.combinations(range(1, 6), 2):
        plan = plan_decoder(SHAPE, TIERS, LINKS, 16, 8, cuts=cuts)
        assert plan.total_seconds == pytest.approx(independent_total(cuts, 16, 8), rel=1e-12)
        assert [t.name for t in plan.tiers] == ["device", "edge", "cloud"]
        assert [c.bytes_per_token for c in plan.links] == [64 * 4, 64 * 4]


@pytest.mark.parametrize("device_speed", [2e9, 1e12])
def test_search_finds_the_fastest_fitting_cuts_by_enumeration(device_speed: float) -> None:
    tiers = [TIERS[0].model_copy(update={"flops_per_second": device_speed}), *TIERS[1:]]
    best = plan_decoder(SHAPE, tiers, LINKS, 16, 8)
    feasible = {}
    for cuts in itertools.combinations(range(1, 6), 2):
        p = plan_decoder(SHAPE, tiers, LINKS, 16, 8, cuts=cuts)
        if p.tiers[0].memory_bytes <= 900_000:
            feasible[cuts] = p.total_seconds
    assert best.total_seconds == min(feasible.values())
    assert best.cuts in feasible


def test_memory_limit_moves_the_cut() -> None:
    """The fastest device wants 4 blocks (all it may take); 800 kB holds only 3 with the cache."""
    fast = TIERS[0].model_copy(update={"flops_per_second": 1e13, "memory": None})
    free = plan_decoder(SHAPE, [fast, *TIERS[1:]], LINKS, 16, 8)
    assert free.cuts[0] == 4 and free.tiers[0].memory_bytes > 800_000
    tight = plan_decoder(
        SHAPE, [fast.model_copy(update={"memory": 800_000}), *TIERS[1:]], LINKS, 16, 8
    )
    assert tight.cuts[0] == 3 and tight.tiers[0].memory_bytes <= 800_000


def test_no_fitting_placement_is_infeasible() -> None:
    small = [TIERS[0].model_copy(update={"memory": 1000}), *TIERS[1:]]
    with pytest.raises(InfeasiblePlanError, match="device 1000 B"):
        plan_decoder(SHAPE, small, LINKS, 16, 8)


def test_plan_round_trips_through_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = plan_decoder(SHAPE, TIERS, LINKS, 16, 8, cuts=[2, 4], model="hf:LlamaForCausalLM")
    path = plan.save(tmp_path / "plan.json")
    doc = json.loads(path.read_text())
    assert doc["format"] == "edgesplit.decoder_plan"
    assert [t["blocks"] for t in doc["tiers"]] == [[0, 2], [2, 4], [4, 6]]
    assert load_decoder_plan(path) == plan
    (tmp_path / "bad.json").write_text(json.dumps({**doc, "cuts": "x"}))
    with pytest.raises(InputError, match="field 'cuts'"):
        load_decoder_plan(tmp_path / "bad.json")
    with pytest.raises(InputError, match="cannot be read"):
        load_decoder_plan(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"links": LINKS[:1]}, "need 2 links"),
        ({"cuts": [3]}, "1 cuts make 2 parts"),
        ({"cuts": [3, 6]}, "out of range"),
        ({"tokens": 250}, "context window"),
    ],
)
def test_bad_plan_requests_are_one_line_input_errors(kwargs, message) -> None:  # type: ignore[no-untyped-def]
    args = {"links": LINKS, "tokens": 8, **kwargs}
    links, tokens = args.pop("links"), args.pop("tokens")
    with pytest.raises(InputError, match=message):
        plan_decoder(SHAPE, TIERS, links, 16, tokens, **args)
