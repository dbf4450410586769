"""Shapes at run time: a model traced at batch 1 (or 16 tokens) runs at batch 3 (2x24 tokens).

Oracle: the unsplit eager model at the new shape, ``torch.equal`` leaf by leaf.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from torch import nn

from edgesplit.errors import InputError, ShapeError
from edgesplit.graph import trace
from edgesplit.graph.partition import assemble_output
from edgesplit.graph.verify import outputs_equal
from edgesplit.models import InputSpec, ModelRequest
from edgesplit.runtime import wire
from edgesplit.runtime.server import ServerConfig, create_app
from edgesplit.runtime.shapes import INPUT_SHAPES, MAX_SHAPES, encode_input_shapes
from edgesplit.runtime.store import ModelStore

RESNET = ModelRequest("resnet50", (InputSpec("x", (1, 3, 64, 64)),))
BERT = ModelRequest(
    "hf:BertModel",
    (InputSpec("input_ids", (1, 16), "int64"),),
    config=(
        "num_hidden_layers=1",
        "hidden_size=32",
        "num_attention_heads=2",
        "intermediate_size=64",
    ),
)
LENET = ModelRequest("lenet", (InputSpec("x", (1, 1, 32, 32)),))


@pytest.fixture(scope="module")
def resnet() -> ModelStore:
    return ModelStore((RESNET,))


def _eager(request: ModelRequest, *args: Any, **kwargs: Any) -> Any:
    """The unsplit model (same seeded weights as the store's) on the given inputs."""
    module, _ = request.load()
    with torch.inference_mode():
        return module(*args, **kwargs)


def _halves(store: ModelStore, name: str) -> tuple[int, ...]:
    n = len(store.model(name).graph.nodes)
    return tuple([0] * (n // 2) + [1] * (n - n // 2))


def test_fx_resnet_at_batch_3_through_the_store(resnet: ModelStore) -> None:
    graph = resnet.model("resnet50").graph
    assert graph.tracer == "fx"
    assert graph.tensor(graph.input_names[0]).shape[0] == 1
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    cut = len(graph.nodes) // 2
    first = resnet.segment("resnet50", 0, cut)
    mid, _ = resnet.run(first, {graph.input_names[0]: x})  # shapes read from the input
    second = resnet.segment("resnet50", cut)
    with pytest.raises(ShapeError, match="needs float32\\[1,"):
        resnet.run(second, mid)  # an interior part cannot see the batch: traced shape
    out, _ = resnet.run(second, mid, input_shapes=encode_input_shapes({"x": x})[INPUT_SHAPES])
    split = assemble_output(graph, out)
    assert split.shape[0] == 3
    assert outputs_equal(split, _eager(RESNET, x))


def test_fx_resnet_at_batch_3_across_post_v1_part(resnet: ModelStore) -> None:
    graph = resnet.model("resnet50").graph
    app = create_app(ServerConfig(models=(RESNET,)), store=resnet)
    assignment = ",".join(map(str, _halves(resnet, "resnet50")))
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with TestClient(app) as client:

        def post(part: int, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> Any:
            reply = client.post(
                "/v1/part",
                params={"model": "resnet50", "assignment": assignment, "part": part},
                content=wire.encode_tensors(tensors, meta),
                headers={"content-type": wire.SAFETENSORS_TYPE},
            )
            return reply

        first = post(0, {graph.input_names[0]: x}, {})
        assert first.status_code == 200, first.text
        mid = wire.decode_tensors(first.content)
        second = post(1, mid, encode_input_shapes({"x": x}))
        assert second.status_code == 200, second.text
        bad = post(1, mid, {INPUT_SHAPES: "[3, 3]"})
        assert bad.status_code == 400
        assert INPUT_SHAPES in bad.json()["error"]
    split = assemble_output(graph, wire.decode_tensors(second.content))
    assert outputs_equal(split, _eager(RESNET, x))


def test_fx_resnet_stages_at_batch_3(resnet: ModelStore) -> None:
    graph = resnet.model("resnet50").graph
    stages = resnet.plan_stages("resnet50", ("edge", "cloud"), _halves(resnet, "resnet50"))
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    have = {graph.input_names[0]: x}
    for i in range(len(stages)):
        have.update(resnet.run_stage(stages, i, have))
    split = assemble_output(graph, {n: have[n] for n in graph.output_names})
    assert outputs_equal(split, _eager(RESNET, x))


def test_export_bert_at_2x24() -> None:
    store = ModelStore((BERT,))
    graph = store.model("hf:BertModel").graph
    assert graph.tracer.startswith("export")
    assert graph.tensor(graph.input_names[0]).shape == (1, 16)
    ids = torch.randint(0, 100, (2, 24), generator=torch.Generator().manual_seed(4))
    assignment = _halves(store, "hf:BertModel")
    shapes = encode_input_shapes({graph.input_names[0]: ids})[INPUT_SHAPES]
    have: dict[str, torch.Tensor] = {graph.input_names[0]: ids}
    for part in (0, 1):
        seg = store.plan_part("hf:BertModel", assignment, part)
        out, _ = store.run(seg, {n: have[n] for n in seg.needs}, input_shapes=shapes)
        have.update(out)
    split = assemble_output(graph, {n: have[n] for n in graph.output_names})
    assert outputs_equal(split, _eager(BERT, input_ids=ids, use_cache=False))
    assert store.shapes_cached("hf:BertModel") == (((2, 24),),)


def test_shape_variants_are_bounded_least_recently_used_first() -> None:
    store = ModelStore((LENET,))
    seg = store.segment("lenet", 0)
    for batch in range(2, MAX_SHAPES + 3):
        store.run(seg, {"x": torch.zeros(batch, 1, 32, 32)})
    kept = store.shapes_cached("lenet")
    assert [k[0][0] for k in kept] == list(range(3, MAX_SHAPES + 3))  # batch 2 went first
    store.run(seg, {"x": torch.zeros(4, 1, 32, 32)})  # a hit moves it to the end
    assert store.shapes_cached("lenet")[-1] == ((4, 1, 32, 32),)
    store.run(seg, {"x": torch.zeros(1, 1, 32, 32)})  # the traced shape is never a variant
    assert len(store.shapes_cached("lenet")) == MAX_SHAPES


def test_bad_input_shapes_are_one_line_errors() -> None:
    store = ModelStore((LENET,))
    seg = store.segment("lenet", 0)
    x = {"x": torch.zeros(2, 1, 32, 32)}
    with pytest.raises(InputError, match="names inputs \\['y'\\]"):
        store.run(seg, x, input_shapes=json.dumps({"y": [2, 1, 32, 32]}))
    with pytest.raises(ShapeError, match="ranks \\[4\\]"):
        store.run(seg, x, input_shapes=json.dumps({"x": [2, 32, 32]}))


class _Flatten(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.view(x.size(0), -1))


def test_fx_graphs_fold_sizes_so_other_shapes_need_a_re_trace() -> None:
    # Why fx graphs are re-traced too: the traced batch size is a constant of the graph.
    graph = trace(_Flatten().eval(), torch.zeros(1, 2, 4))
    assert graph.tracer == "fx"
    assert graph.module is not None
    with pytest.raises(RuntimeError):
        graph.module(torch.zeros(3, 2, 4))
