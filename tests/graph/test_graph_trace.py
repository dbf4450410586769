"""Tracing: node counts, hand-checked node statistics, cuts, and the export fallback."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgesplit.errors import InputError, ShapeError, TraceError
from edgesplit.graph import KINDS, trace
from edgesplit.models import SMALL_INPUT_SHAPES, ZOO, build


@pytest.fixture(scope="module")
def alexnet_graph():
    model, x = build("alexnet")
    return trace(model, x, name="alexnet")


def test_layer_counts_match_the_papers(alexnet_graph):
    assert len(alexnet_graph) == 21
    assert sum(n.kind == "dropout" for n in alexnet_graph) == 2
    model, x = build("mnist_cnn")
    g = trace(model, x)
    assert [n.kind for n in g] == [
        "conv",
        "pool",
        "activation",
        "conv",
        "pool",
        "linear",
        "activation",
        "linear",
        "softmax",
    ]


def test_conv_and_linear_stats_by_hand(alexnet_graph):
    conv = alexnet_graph.nodes[0]  # Conv2d(3, 64, k=11, s=4, p=2) on 224x224 -> 55x55
    assert conv.kind == "conv" and conv.output_shape == (1, 64, 55, 55)
    assert conv.flops == 2 * 64 * 55 * 55 * 3 * 11 * 11
    assert conv.params == 64 * 3 * 11 * 11 + 64
    assert conv.param_bytes == conv.params * 4
    assert conv.output_bytes == 64 * 55 * 55 * 4
    fc = next(n for n in alexnet_graph if n.kind == "linear")  # Linear(9216, 4096)
    assert fc.input_shapes == ((1, 9216),)
    assert fc.flops == 2 * 9216 * 4096
    assert fc.params == 9216 * 4096 + 4096
    pool = alexnet_graph.nodes[2]  # MaxPool2d(3, 2): 9 comparisons per output element
    assert pool.flops == 64 * 27 * 27 * 9


def test_mnist_cnn_stats_by_hand():
    model, x = build("mnist_cnn")
    g = trace(model, x)
    conv1, fc1 = g.nodes[0], g.nodes[5]
    assert conv1.flops == 2 * 10 * 24 * 24 * 25 and conv1.params == 260
    assert fc1.flops == 2 * 320 * 50 and fc1.params == 320 * 50 + 50
    assert fc1.input_shapes == ((1, 320),)


def test_cut_zero_sends_input_and_last_cut_sends_output(alexnet_graph):
    cuts = alexnet_graph.cuts()
    assert len(cuts) == len(alexnet_graph) + 1
    assert cuts[0].bytes == 3 * 224 * 224 * 4
    assert cuts[-1].bytes == 1000 * 4
    assert cuts[-1].tensors[0].is_output
    # A chain: every cut crosses the output of the node before it.
    for k in range(1, len(alexnet_graph)):
        assert cuts[k].tensors[0].producer == alexnet_graph.nodes[k - 1].name
    assert alexnet_graph.is_chain


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_zoo_model_traces(name):
    model, x = build(name, SMALL_INPUT_SHAPES.get(name))
    g = trace(model, x, name=name)
    assert len(g) > 0 and all(n.kind in KINDS for n in g)
    chains = {"mnist_cnn", "lenet", "alexnet", "vgg13", "vgg16"}
    assert g.is_chain == (name in chains)
    op = trace(model, x, name=name, granularity="op")
    assert len(op) >= len(g)
    assert sum(n.flops for n in op) == g.flops


def test_resnet_is_a_dag_with_multi_tensor_cuts():
    model, x = build("resnet50", SMALL_INPUT_SHAPES["resnet50"])
    g = trace(model, x)
    assert not g.is_chain
    assert any(n.kind == "add" for n in g)
    assert max(len(c.tensors) for c in g.cuts()) >= 2


class _ShapeBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 1:  # Python control flow on a shape: fx fails, export specialises
            x = x * 2
        return self.c(self.b(self.a(x)))


class _DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) if x.sum() > 0 else x


def test_export_fallback_traces_what_fx_cannot():
    g = trace(_ShapeBranch().eval(), torch.randn(1, 8))
    assert g.tracer == "export-nonstrict"
    assert [n.kind for n in g] == ["linear", "activation", "linear"]
    assert g.nodes[0].params == 8 * 8 + 8


def test_untraceable_module_names_module_and_reasons():
    with pytest.raises(
        TraceError, match="_DataDependent.*fx said.*export nonstrict said.*export strict said"
    ):
        trace(_DataDependent().eval(), torch.randn(1, 8))


def test_wrong_input_shape_is_a_shape_error():
    model, _ = build("alexnet")
    with pytest.raises(ShapeError, match="AlexNet rejects the example inputs"):
        trace(model, torch.randn(1, 5, 224, 224))


class _TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 8)
        self.proj = nn.Linear(8, 8)

    def forward(
        self, ids: torch.Tensor, scale: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = self.proj(self.embed(ids)) * scale
        if mask is not None:
            h = h * mask
        return h


class _WithMeta(nn.Module):
    """A submodule named like GraphModule's own ``meta`` attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.meta = nn.Linear(4, 4)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.meta(x))


def test_args_and_kwargs_become_named_inputs_and_none_a_constant():
    ids = torch.tensor([[1, 2, 3]])
    g = trace(_TwoInputs().eval(), (ids,), {"scale": torch.tensor(2.0)})
    assert g.tracer == "fx"
    assert g.input_args == ("ids", "scale")
    assert [g.tensor(n).dtype for n in g.input_names] == ["int64", "float32"]
    # `mask` was left at None: the branch is gone and nothing asks for it.
    assert "mask" not in " ".join(t.name for t in g.tensors)
    with_mask = trace(_TwoInputs().eval(), (ids, torch.tensor(2.0), torch.ones(1, 3, 8)))
    assert with_mask.input_args == ("ids", "scale", "mask")
    assert len(with_mask) == len(g) + 1


def test_a_submodule_named_meta_traces():
    g = trace(_WithMeta().eval(), torch.randn(1, 4))
    assert g.tracer == "fx" and [n.kind for n in g] == ["linear", "activation"]
    assert g.nodes[0].params == 4 * 4 + 4


def test_errors_blame_the_real_cause_in_one_line():
    model = _TwoInputs().eval()
    with pytest.raises(InputError, match=r"_TwoInputs.forward\(ids, scale, mask\).*'scale'") as e:
        trace(model, torch.randn(1, 3))
    assert "\n" not in str(e.value)
    # An Embedding fed floats: the dtype is named, not the shape.
    with pytest.raises(ShapeError) as e:
        trace(model, (torch.randn(1, 3), torch.tensor(1.0)))
    msg = str(e.value)
    assert "\n" not in msg and "ids: float32[1, 3]" in msg and "Long" in msg
    assert "Proxy" not in msg and "symbolically" not in msg


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv, self.out = nn.Linear(16, 48), nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).reshape(1, 6, 3, 2, 8).permute(2, 0, 3, 1, 4).unbind(0)
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return self.out(a.transpose(1, 2).reshape(1, 6, 16))


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm, self.attn = nn.LayerNorm(16), _Attention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > 100:  # shape control flow: fx fails, export specialises
            x = x[:, :100]
        return x + self.attn(self.norm(x))


def test_exported_layers_follow_the_module_hierarchy_with_flops_by_hand():
    torch.manual_seed(0)
    model = nn.Sequential(_Block(), _Block()).eval()
    g = trace(model, torch.randn(1, 6, 16))
    assert g.tracer == "export-nonstrict"
    assert [(n.name, n.kind) for n in g] == [
        ("0_norm", "norm"),
        ("0_attn", "linear"),
        (g.nodes[2].name, "add"),
        ("1_norm", "norm"),
        ("1_attn", "linear"),
        (g.nodes[5].name, "add"),
    ]
    attn = g.nodes[1]
    assert attn.target == "_Attention" and attn.attrs == {"module": "0.attn"}
    assert attn.params == 16 * 48 + 48 + 16 * 16 + 16
    op = trace(model, torch.randn(1, 6, 16), granularity="op")
    assert len(op) > 3 * len(g) and op.flops == g.flops
    members = [op.node(m) for m in attn.members if m in {n.name for n in op}]
    assert attn.flops == sum(n.flops for n in members)
    # qkv and out projections; QK^T and AV over 2 heads of 6 tokens x 8 dims.
    products = sorted(n.flops for n in members if n.kind == "linear")
    assert products == sorted([2 * 6 * 16 * 48, 2 * 6 * 16 * 16, 2 * 2 * 6 * 6 * (8 + 8)])


class _Cache:
    """Stands for a Hugging Face cache object: not a tensor, not a pytree."""


class _CachingModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor, use_cache: bool = True) -> tuple[torch.Tensor, object]:
        return self.lin(x), (_Cache() if use_cache else None)


def test_use_cache_is_false_unless_given_and_objects_in_outputs_are_named():
    from edgesplit.graph.trace import traced_call

    model = _CachingModel().eval()
    x = torch.randn(1, 4)
    assert traced_call(model, x) == ((x,), {"use_cache": False})
    assert traced_call(model, (x, True)) == ((x, True), {})
    g = trace(model, x)
    assert g.input_args == ("x",) and len(g) == 1
    with pytest.raises(TraceError, match=r"returns a _Cache at \[1\].*use_cache=False") as e:
        trace(model, x, {"use_cache": True})
    assert "\n" not in str(e.value)
