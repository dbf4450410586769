"""Any model splits exactly: timm and Hugging Face transformers at every layer cut.

Models come from small configs with random weights (nothing is downloaded); the
full-size sweep is ``benchmarks/bench_model_coverage.py``. The oracle is the unsplit
model's own output, compared leaf by leaf with ``torch.equal``
(:func:`edgesplit.graph.verify.check_every_cut`).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections.abc import Callable
from typing import Any

import pytest
import timm
import torch
import transformers as hf
from torch import nn

from edgesplit.graph import Graph, trace
from edgesplit.graph.trace import flat_inputs
from edgesplit.graph.verify import check_every_cut

VOCAB = 100


def _every_cut_exact(model: nn.Module, args: Any, kwargs: dict[str, Any] | None = None) -> Graph:
    kwargs = kwargs or {}
    args = args if isinstance(args, tuple) else (args,)
    g = trace(model, args, kwargs)
    with torch.inference_mode():
        reference = model(*args, **kwargs)
    checks = check_every_cut(g, flat_inputs(model, g, args, kwargs), reference)
    assert len(checks) == len(g) + 1
    # Only tensors cross cuts (sizes are folded), so the wire can carry every cut.
    assert all(t.dtype != "object" for c in g.cuts() for t in c.tensors)
    assert all(c.equal for c in checks), [c for c in checks if not c.equal][:3]
    return g


def _ids(length: int = 8) -> torch.Tensor:
    return torch.randint(0, VOCAB, (1, length), generator=torch.Generator().manual_seed(0))


# -- timm -------------------------------------------------------------------------------
TIMM: dict[str, tuple[dict[str, Any], int]] = {
    "vit_tiny_patch16_224": ({"img_size": 32, "depth": 2}, 32),
    "deit_tiny_patch16_224": ({"img_size": 32, "depth": 2}, 32),
    "swin_tiny_patch4_window7_224": (
        {"img_size": 64, "window_size": 2, "depths": (1, 1, 2, 1)},
        64,
    ),
    "convnext_atto": ({"depths": (1, 1, 2, 1)}, 64),
    "efficientnet_b0": ({}, 64),
}


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n == "efficientnet_b0" else n for n in TIMM],
)
def test_timm_models_split_exactly_at_every_cut(name: str) -> None:
    kwargs, size = TIMM[name]
    torch.manual_seed(0)
    model = timm.create_model(name, **kwargs).eval()
    g = _every_cut_exact(model, torch.randn(1, 3, size, size))
    # ViT's forward has `attn_mask=None`: a constant of the graph, not an input of a part.
    assert g.input_args == ("x",) and len(g.input_names) == 1


# -- Hugging Face transformers ---------------------------------------------------------
def _bert() -> nn.Module:
    cfg = hf.BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=VOCAB,
        max_position_embeddings=32,
    )
    return hf.BertModel(cfg)


def _gpt2() -> nn.Module:
    cfg = hf.GPT2Config(
        n_layer=2, n_embd=32, n_head=2, vocab_size=VOCAB, n_positions=32, use_cache=False
    )
    return hf.GPT2Model(cfg)


def _llama() -> nn.Module:
    cfg = hf.LlamaConfig(
        num_hidden_layers=2,
        hidden_size=32,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=64,
        vocab_size=VOCAB,
        max_position_embeddings=32,
        use_cache=False,
    )
    return hf.LlamaModel(cfg)


def _vit() -> nn.Module:
    cfg = hf.ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
    )
    return hf.ViTModel(cfg)


def _whisper_encoder() -> nn.Module:
    cfg = hf.WhisperConfig(
        d_model=32,
        encoder_layers=2,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        num_mel_bins=16,
        max_source_positions=20,
    )
    return hf.WhisperModel(cfg).get_encoder()


HF: dict[str, tuple[Callable[[], nn.Module], Callable[[], tuple[Any, dict[str, Any]]], str]] = {
    "BertModel": (
        _bert,
        lambda: ((_ids(),), {"attention_mask": torch.ones(1, 8, dtype=torch.int64)}),
        "encoder.layer.0.attention.self",
    ),
    "GPT2Model": (_gpt2, lambda: ((_ids(),), {}), "h.0.attn"),
    "LlamaModel": (_llama, lambda: ((_ids(),), {}), "layers.0.self_attn"),
    "ViTModel": (_vit, lambda: ((torch.randn(1, 3, 32, 32),), {}), "layers.0.attention"),
    "WhisperEncoder": (
        _whisper_encoder,
        lambda: ((torch.randn(1, 16, 40),), {}),
        "layers.0.self_attn",
    ),
}


@pytest.mark.parametrize("arch", sorted(HF))
def test_transformers_split_exactly_at_every_cut(arch: str) -> None:
    build, example, attention = HF[arch]
    torch.manual_seed(0)
    model = build().eval()
    args, kwargs = example()
    g = _every_cut_exact(model, args, kwargs)
    assert g.tracer.startswith("export")
    # Layers follow the module hierarchy: one attention is one node, with its projections.
    modules = [n.attrs.get("module") for n in g]
    assert modules.count(attention) == 1
    node = g.nodes[modules.index(attention)]
    assert node.kind == "linear" and node.params > 0
    assert len(g) < 40


def test_model_output_is_reassembled_with_every_field() -> None:
    from edgesplit.graph.partition import split_at

    torch.manual_seed(0)
    model = _bert().eval()
    g = trace(model, _ids())
    with torch.inference_mode():
        out = split_at(g, [len(g) // 2])(_ids())
        ref = model(_ids())
    assert type(out) is type(ref)
    assert out.keys() == ref.keys() == {"last_hidden_state", "pooler_output"}
    assert torch.equal(out.last_hidden_state, ref.last_hidden_state)


def test_integer_and_mask_inputs_are_named_after_the_forward_arguments() -> None:
    torch.manual_seed(0)
    model = _bert().eval()
    mask = torch.ones(1, 8, dtype=torch.int64)
    g = trace(model, (_ids(),), {"attention_mask": mask})
    assert g.input_args == ("input_ids", "attention_mask")
    assert [g.tensor(n).dtype for n in g.input_names] == ["int64", "int64"]


# -- plain torch.nn ----------------------------------------------------------------------
class _EmbeddedEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 32)
        layer = nn.TransformerEncoderLayer(32, 2, 64, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(32, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(ids)))


def test_transformer_encoder_behind_an_embedding_splits_exactly() -> None:
    torch.manual_seed(0)
    g = _every_cut_exact(_EmbeddedEncoder().eval(), _ids())
    # In eval without grad the encoder layers run PyTorch's fused fast path: one node
    # each, since that fused kernel is what the unsplit model computes.
    assert g.nodes[0].target == "Embedding" and len(g) == 4
