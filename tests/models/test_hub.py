"""timm: and hf: models built offline from small configs, with seeded weights and inputs."""

from __future__ import annotations

import os

import pytest
import torch

from edgesplit.errors import InputError, UnknownModelError
from edgesplit.models import ModelRequest
from edgesplit.models.hub import parse_overrides

BERT = ["num_hidden_layers=1", "hidden_size=32", "num_attention_heads=2", "intermediate_size=32"]


def _params_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_overrides_read_json_values():
    assert parse_overrides(["n=2", "p=0.1", "b=true", "s=[64,64]", "t=gelu"]) == {
        "n": 2,
        "p": 0.1,
        "b": True,
        "s": [64, 64],
        "t": "gelu",
    }
    with pytest.raises(InputError, match="--model-config 'n' is not KEY=VALUE"):
        parse_overrides(["n"])


def test_bert_from_default_config_with_text_inputs():
    request = ModelRequest.from_options("hf:BertModel", config=BERT)
    model, ex = request.load()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert ex.text == ("input_ids=1x16:int64", "attention_mask=1x16:int64")
    ids, mask = ex.args
    assert int(ids.max()) < model.config.vocab_size and torch.equal(mask, torch.ones_like(mask))
    assert model.config.num_hidden_layers == 1
    again, _ = request.load()
    assert _params_equal(model, again)  # seeded weights
    assert ex.run(model).last_hidden_state.shape == (1, 16, 32)


@pytest.mark.parametrize(
    ("name", "config", "text"),
    [
        (
            "hf:ViTModel",
            ["num_hidden_layers=1", "hidden_size=32", "num_attention_heads=2",
             "intermediate_size=32", "image_size=32", "patch_size=8"],
            ("pixel_values=1x3x32x32:float32",),
        ),
        (
            "hf:WhisperEncoder",
            ["encoder_layers=1", "d_model=32", "encoder_attention_heads=2",
             "encoder_ffn_dim=32", "max_source_positions=8", "num_mel_bins=16"],
            ("input_features=1x16x16:float32",),
        ),
        (
            "hf:GPT2Model",
            ["n_layer=1", "n_embd=32", "n_head=2", "vocab_size=100"],
            ("input_ids=1x16:int64", "attention_mask=1x16:int64"),
        ),
        ("timm:vit_tiny_patch16_224", ["depth=1"], ("x=1x3x224x224:float32",)),
        ("timm:resnet18", ["num_classes=7"], ("x=1x3x224x224:float32",)),
    ],
)  # fmt: skip
def test_named_models_and_their_default_inputs(name, config, text):
    model, ex = ModelRequest.from_options(name, config=config).load()
    assert ex.text == text
    with torch.inference_mode():
        ex.run(model)


def test_user_inputs_override_the_defaults():
    request = ModelRequest.from_options("hf:BertModel", ["input_ids=2x5:int64"], config=BERT)
    _, ex = request.load()
    assert ex.text == ("input_ids=2x5:int64",) and ex.args[0].shape == (2, 5)


def test_unknown_names_and_fields_suggest_the_fix():
    with pytest.raises(UnknownModelError, match="did you mean hf:BertModel"):
        ModelRequest("hf:BertModle").load()
    with pytest.raises(UnknownModelError, match="timm has no architecture 'resnet1800'"):
        ModelRequest("timm:resnet1800").load()
    with pytest.raises(InputError, match="num_hiden_layers: BertConfig has no such field"):
        ModelRequest.from_options("hf:BertModel", config=["num_hiden_layers=1"]).load()
    with pytest.raises(InputError, match="--model-config does not fit timm:resnet18"):
        ModelRequest.from_options("timm:resnet18", config=["no_such_arg=1"]).load()


def test_local_directory_config_and_weights(tmp_path):
    from transformers import BertConfig, BertModel

    torch.manual_seed(7)
    config = BertConfig(
        num_hidden_layers=1, hidden_size=32, num_attention_heads=2, intermediate_size=32
    )
    config.save_pretrained(tmp_path / "cfg")
    model, ex = ModelRequest(f"hf:{tmp_path / 'cfg'}").load()
    assert model.config.hidden_size == 32 and ex.text[0] == "input_ids=1x16:int64"
    trained = BertModel(config)
    trained.save_pretrained(tmp_path / "full")
    loaded, _ = ModelRequest(f"hf:BertModel={tmp_path / 'full'}").load()
    assert _params_equal(loaded, trained)
    with pytest.raises(InputError, match="has no config.json"):
        ModelRequest(f"hf:BertModel={tmp_path}").load()


def test_a_config_too_big_for_memory_is_one_line(monkeypatch):
    import edgesplit.models.hub as hub

    monkeypatch.setattr(hub, "_available_bytes", lambda: 1_000_000)
    with pytest.raises(InputError, match=r"hf:BertModel .* GB free; shrink it with --model-config"):
        ModelRequest.from_options("hf:BertModel", config=BERT).load()
    monkeypatch.setattr(hub, "_available_bytes", lambda: None)
    small, _ = ModelRequest.from_options("hf:BertModel", config=BERT).load()
    monkeypatch.undo()
    again, _ = ModelRequest.from_options("hf:BertModel", config=BERT).load()
    assert _params_equal(small, again)  # the probe on 'meta' does not shift the seed


def test_constructor_arguments_such_as_the_attention_backend_are_accepted():
    model, _ = ModelRequest.from_options(
        "hf:BertModel", config=[*BERT, "attn_implementation=eager"]
    ).load()
    assert model.config._attn_implementation == "eager"
