"""FLOPs of composite modules (issue 16 item 10): a float ``nn.TransformerEncoder`` traces to
fused ``_transformer_encoder_layer_fwd`` calls, which once counted one FLOP per output
element. The oracle is ``torch.utils.flop_counter.FlopCounterMode`` on the same module run
through its unfused path (grad enabled, SDPA's math kernel), which counts every matrix
product; the few elementwise FLOPs it does not count (residual adds, norms, activation)
are added by hand from the convention in :mod:`edgesplit.graph.flops`.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from edgesplit.graph import trace
from edgesplit.graph.flops import composite_flops

B, L, E, HEADS, F, LAYERS = 2, 6, 16, 2, 24, 2


def _encoder() -> nn.TransformerEncoder:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(
        d_model=E, nhead=HEADS, dim_feedforward=F, batch_first=True, dropout=0.0
    )
    return nn.TransformerEncoder(layer, num_layers=LAYERS, enable_nested_tensor=False).eval()


def _matmul_flops_by_torch(module: nn.Module, *args: torch.Tensor) -> int:
    """Matrix-product FLOPs as torch counts them on the unfused path."""
    with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        module(*args)
    return int(fc.get_total_flops())


@pytest.fixture(scope="module")
def encoder_case() -> tuple[nn.TransformerEncoder, torch.Tensor, int]:
    model, x = _encoder(), torch.randn(B, L, E)
    tokens = B * L
    elementwise = 4 * tokens * E + tokens * F  # two adds, two norms, the activation
    return model, x, _matmul_flops_by_torch(model, x) + LAYERS * elementwise


@pytest.mark.parametrize("granularity", ["layer", "op"])
def test_transformer_encoder_flops_match_torch_flop_counter(
    encoder_case: tuple[nn.TransformerEncoder, torch.Tensor, int], granularity: str
) -> None:
    model, x, expected = encoder_case
    graph = trace(model, x, name="encoder", granularity=granularity)
    # Dominated by products: the fused kernel must not count one FLOP per output element.
    assert expected > 50 * B * L * E * LAYERS
    assert sum(n.flops for n in graph.nodes) == expected
    assert all(n.flops > 0 for n in graph.nodes)


def test_fused_multi_head_attention_matches_torch_flop_counter() -> None:
    """``_native_multi_head_attention`` (nn.MultiheadAttention's fast path), with more keys
    than queries, against FlopCounterMode on the same module's unfused path."""
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(E, HEADS, batch_first=True).eval()
    q, kv = torch.randn(B, L, E), torch.randn(B, L + 3, E)

    class Call(nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return mha(a, b, b, need_weights=False)[0]

    expected = _matmul_flops_by_torch(Call(), q, kv)
    args = (tuple(q.shape), tuple(kv.shape), tuple(kv.shape), E, HEADS, (3 * E, E))
    assert composite_flops(torch.ops.aten._native_multi_head_attention.default, args) == expected


def test_embedding_is_free_and_norm_and_gelu_count_per_element() -> None:
    class Embed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb, self.norm, self.act = nn.Embedding(50, E), nn.LayerNorm(E), nn.GELU()

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.act(self.norm(self.emb(ids)))

    graph = trace(Embed().eval(), torch.randint(0, 50, (B, L)), name="embed", granularity="op")
    per_element = math.prod((B, L, E))
    assert {n.target: n.flops for n in graph.nodes} == {
        "Embedding": 0,
        "LayerNorm": per_element,
        "GELU": per_element,
    }
