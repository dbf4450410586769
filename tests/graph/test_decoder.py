"""Decoder LLMs split at block boundaries: oracle is the unsplit model, token by token.

Models are GPT-2 and LLaMA from small configs with random weights (nothing downloaded).
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded: models come from configs

import pytest
import torch
import transformers

from edgesplit.errors import InputError
from edgesplit.graph.decoder import check_cuts, describe, split_decoder, unsplit_generate

VOCAB, PROMPT, TOKENS = 512, 8, 32


def gpt2(**kw: int) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        n_layer=4, n_embd=64, n_head=4, vocab_size=VOCAB, n_positions=64, **kw
    )
    return transformers.GPT2LMHeadModel(cfg).eval()


def llama(**kw: int) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        num_hidden_layers=4,
        hidden_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        vocab_size=VOCAB,
        max_position_embeddings=64,
        **kw,
    )
    return transformers.LlamaForCausalLM(cfg).eval()


def bare_of(model: torch.nn.Module) -> torch.nn.Module:
    return model.transformer if hasattr(model, "transformer") else model.model  # type: ignore[return-value]


BUILDERS = {"gpt2": gpt2, "llama": llama}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def model(request: pytest.FixtureRequest) -> torch.nn.Module:
    return BUILDERS[request.param]()


@pytest.fixture(scope="module")
def prompt() -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, PROMPT), generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def reference(model: torch.nn.Module, prompt: torch.Tensor):  # type: ignore[no-untyped-def]
    return unsplit_generate(model, prompt, TOKENS)


@pytest.mark.parametrize("cuts", [[2], [1, 3], [1, 2]])
def test_greedy_tokens_and_logits_equal_unsplit(model, prompt, reference, cuts) -> None:  # type: ignore[no-untyped-def]
    gen = split_decoder(model, cuts).generate(prompt, TOKENS)
    assert gen.tokens.shape == (2, TOKENS)
    assert torch.equal(gen.tokens, reference.tokens)
    assert len(gen.logits) == TOKENS
    for mine, theirs in zip(gen.logits, reference.logits):
        assert torch.equal(mine, theirs)


def test_reference_matches_transformers_generate(model, prompt, reference) -> None:  # type: ignore[no-untyped-def]
    """The oracle itself agrees with transformers' own greedy ``generate``."""
    out = model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=TOKENS,
        min_new_tokens=TOKENS,
        do_sample=False,
        pad_token_id=0,
    )
    assert torch.equal(out[:, PROMPT:], reference.tokens)


def test_only_the_new_hidden_state_crosses_each_cut(model, prompt) -> None:  # type: ignore[no-untyped-def]
    split = split_decoder(model, [1, 3])
    gen = split.generate(prompt, TOKENS)
    hidden, size = split.shape.hidden, split.shape.dtype_bytes
    prefill, *decode = gen.records
    assert prefill.cut_bytes == (2 * PROMPT * hidden * size,) * 2
    # Per decoded token, batch x 1 x hidden per cut, whatever the position.
    assert {r.cut_bytes for r in decode} == {(2 * hidden * size,) * 2}
    assert [r.position for r in gen.records] == [0, *range(PROMPT, PROMPT + TOKENS - 1)]
    assert all(len(r.part_seconds) == 3 for r in gen.records)


def test_each_part_holds_the_cache_of_its_own_blocks_only(model, prompt) -> None:  # type: ignore[no-untyped-def]
    split = split_decoder(model, [1, 3])
    split.generate(prompt, 5)
    s = split.shape
    seq = PROMPT + 4  # the last generated token is never fed back
    per_block = 2 * 2 * s.kv_heads * s.head_dim * seq * s.dtype_bytes
    for part in split.parts:
        assert part.seen == seq
        assert part.kv_bytes() == (part.hi - part.lo) * per_block
        for i, layer in enumerate(part.cache.layers):
            if not part.lo <= i < part.hi:
                assert getattr(layer, "keys", None) is None or layer.keys.numel() == 0


def test_bare_model_hidden_states_equal_unsplit(model, prompt) -> None:  # type: ignore[no-untyped-def]
    """A bare ``*Model`` splits too; its last part returns the final-normed hidden state."""
    base = bare_of(model)
    split = split_decoder(base, [2])
    assert not split.shape.has_head
    cache = transformers.DynamicCache(config=base.config)
    steps = [prompt, *torch.randint(0, VOCAB, (5, 2, 1)).unbind(0)]
    with torch.no_grad():
        for x in steps:
            want = base(input_ids=x, past_key_values=cache, use_cache=True).last_hidden_state
            got, _, crossing = split.forward(x)
            assert torch.equal(got, want)
            assert crossing == [x.numel() * base.config.hidden_size * 4]
    with pytest.raises(InputError, match="no LM head"):
        split.generate(prompt, 2)


def test_describe_counts_dimensions_and_parameters(model) -> None:  # type: ignore[no-untyped-def]
    s = describe(model)
    assert (s.layers, s.hidden, s.heads, s.vocab, s.context, s.dtype_bytes) == (
        4,
        64,
        4,
        VOCAB,
        64,
        4,
    )
    assert s.kv_heads == (2 if s.family == "llama" else 4)
    assert s.mlp_matrices == (3 if s.family == "llama" else 2)
    total = sum(p.numel() * p.element_size() for p in model.parameters())  # tied weights once
    tied = VOCAB * 64 * 4 if model.config.tie_word_embeddings else 0  # the head's tier needs it
    assert s.embed_param_bytes + sum(s.block_param_bytes) + s.final_param_bytes == total + tied


@pytest.mark.parametrize(
    ("cuts", "message"),
    [
        ([0], "out of range"),
        ([4], "out of range"),
        ([2.5], "inside a block"),
        ([3, 1], "strictly increasing"),
        ([2, 2], "strictly increasing"),
    ],
)
def test_bad_cuts_name_the_cut_and_the_range(cuts, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=message):
        check_cuts(cuts, 4)


def test_more_tokens_than_the_context_window_is_refused(model) -> None:  # type: ignore[no-untyped-def]
    split = split_decoder(model, [2])
    ids = torch.zeros(1, 60, dtype=torch.long)
    split.generate(ids, 5)  # positions 0..63: fits exactly
    with pytest.raises(InputError, match="context window of 64"):
        split.generate(ids, 6)
    with pytest.raises(InputError, match="context window of 64"):
        unsplit_generate(model, ids, 6)


def test_non_decoder_model_is_refused() -> None:
    torch.manual_seed(0)
    bert = transformers.BertModel(
        transformers.BertConfig(
            num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64
        )
    )
    with pytest.raises(InputError, match="layout"):
        split_decoder(bert, [1])
    with pytest.raises(InputError, match="decoder-only"):
        split_decoder(torch.nn.Linear(2, 2), [1])


GPT2_CLI = [
    "hf:GPT2LMHeadModel",
    *("--model-config", "n_layer=4", "--model-config", "n_embd=64"),
    *("--model-config", "n_head=4", "--model-config", f"vocab_size={VOCAB}"),
    *("--model-config", "n_positions=64"),
]


def test_generate_command_prints_per_token_records_equal_to_unsplit(cli) -> None:  # type: ignore[no-untyped-def]
    doc = cli(
        "generate", *GPT2_CLI, "--cuts", "1,3", "--prompt-len", "8", "--tokens", "32", "--json"
    )
    doc = doc.json()
    assert doc["tokens_equal_unsplit"] is True and doc["logits_equal_unsplit"] is True
    assert [t["blocks"] for t in doc["tiers"]] == [[0, 1], [1, 3], [3, 4]]
    records = doc["records"]
    assert len(records) == 32 and records[0]["cut_bytes"] == [8 * 64 * 4] * 2
    assert all(r["cut_bytes"] == [64 * 4] * 2 and len(r["part_seconds"]) == 3 for r in records[1:])


def test_generate_takes_the_prompt_as_an_input_ids_input(cli) -> None:  # type: ignore[no-untyped-def]
    doc = cli(
        "generate",
        *GPT2_CLI,
        "--cuts",
        "2",
        "--input",
        "input_ids=2x5:int64",
        "--tokens",
        "4",
        "--json",
    )
    doc = doc.json()
    assert (doc["batch"], doc["prompt_len"], doc["tokens_equal_unsplit"]) == (2, 5, True)
    assert all(len(r["tokens"]) == 2 for r in doc["records"])
    assert doc["records"][1]["cut_bytes"] == [2 * 64 * 4]


def test_generate_llama_with_a_saved_plan_naming_the_tiers(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    llama_cli = [
        "hf:LlamaForCausalLM",
        *("--model-config", "num_hidden_layers=3", "--model-config", "hidden_size=32"),
        *("--model-config", "num_attention_heads=4", "--model-config", "num_key_value_heads=2"),
        *("--model-config", "intermediate_size=64", "--model-config", f"vocab_size={VOCAB}"),
    ]
    plan = tmp_path / "plan.json"
    first = cli(
        "generate", *llama_cli, "--cuts", "2", "--tiers", "edge,cloud",
        "--prompt-len", "6", "--tokens", "8", "--save-plan", plan, "--link", "100mbit,20ms",
        "--json",
    ).json()  # fmt: skip
    assert first["tokens_equal_unsplit"] is True
    saved = json.loads(plan.read_text())
    assert [(t["name"], t["blocks"]) for t in saved["tiers"]] == [
        ("edge", [0, 2]),
        ("cloud", [2, 3]),
    ]
    assert all(t["flops_per_second"] > 0 for t in saved["tiers"])  # measured in the run
    assert (saved["links"][0]["bandwidth_bps"], saved["links"][0]["rtt_s"]) == (1e8, 0.02)
    assert saved["links"][0]["bytes_per_token"] == 32 * 4
    again = cli("generate", *llama_cli, "--plan", plan, "--json").json()
    assert [t["name"] for t in again["tiers"]] == ["edge", "cloud"]
    assert (again["prompt_len"], again["tokens"]) == (6, 8)
    assert [r["tokens"] for r in again["records"]] == [r["tokens"] for r in first["records"]]


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (("--cuts", "2.5"), "2.5"),
        (("--cuts", "4"), "cut 4"),
        (("--cuts", "x"), "--cuts"),
        (("--cuts", ""), "--cuts"),
        (("--cuts", "2", "--input-shape", "1,8"), "token ids"),
        (("--cuts", "2", "--input", "input_ids=1x8:int64", "--prompt-len", "8"), "--prompt-len"),
        (("--cuts", "2", "--tiers", "a,b,c"), "--tiers"),
        (("--cuts", "2", "--prompt-len", "40", "--tokens", "30"), "context window"),
        ((), "--cuts"),
    ],
)
def test_generate_bad_input_is_one_line_exit_2(cli, assert_input_error, extra, named) -> None:  # type: ignore[no-untyped-def]
    assert_input_error(cli("generate", *GPT2_CLI, *extra), named)


def test_generate_refuses_a_model_that_is_not_a_decoder(cli, assert_input_error) -> None:  # type: ignore[no-untyped-def]
    bert = [
        "hf:BertModel",
        "--model-config",
        "num_hidden_layers=2",
        "--model-config",
        "hidden_size=32",
    ]
    bert += ["--model-config", "num_attention_heads=2", "--model-config", "intermediate_size=64"]
    assert_input_error(cli("generate", *bert, "--cuts", "1"), "BertModel")
