"""Exact split execution: every cut of every zoo model is torch.equal to the unsplit model."""

from __future__ import annotations

import pytest
import torch
import torchvision.models as tvm

from edgesplit.errors import PartitionError
from edgesplit.graph import trace
from edgesplit.graph.partition import partition, split_at
from edgesplit.models import SMALL_INPUT_SHAPES, ZOO, build


def _assert_every_cut_equal(model, x, granularity="layer", step=1):
    """Every cut by the fast oracle; every ``7 * step``-th also as a freshly built split."""
    from edgesplit.graph.verify import check_every_cut

    g = trace(model, x, granularity=granularity)
    with torch.inference_mode():
        reference = model(x)
    cuts = sorted({*range(0, len(g) + 1, step), len(g)})
    checks = check_every_cut(g, (x,), reference, cuts=cuts)
    assert all(c.equal for c in checks), [c for c in checks if not c.equal][:3]
    with torch.inference_mode():
        for k in cuts[:: 7 * step] + [len(g)]:
            out = split_at(g, [k])(x)
            assert torch.equal(out, reference), f"cut {k} differs"
    return g


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_layer_cut_is_exact(name):
    model, x = build(name, SMALL_INPUT_SHAPES.get(name))
    _assert_every_cut_equal(model, x)


@pytest.mark.parametrize("name", ["alexnet", "resnet50", "googlenet"])
def test_sampled_op_cuts_are_exact(name):
    model, x = build(name, SMALL_INPUT_SHAPES.get(name))
    _assert_every_cut_equal(model, x, granularity="op", step=7)


@pytest.mark.parametrize(
    "builder",
    [
        tvm.squeezenet1_0,
        tvm.shufflenet_v2_x0_5,
        tvm.mnasnet0_5,
        tvm.efficientnet_b0,
        tvm.regnet_x_400mf,
    ],
)
def test_torchvision_models_outside_the_zoo(builder):
    torch.manual_seed(0)
    model = builder(weights=None).eval()
    _assert_every_cut_equal(model, torch.randn(1, 3, 64, 64), step=3)


def test_three_part_contiguous_split():
    model, x = build("alexnet")
    g = trace(model, x)
    split = split_at(g, [5, 14])
    assert [len(p.node_names) for p in split.parts] == [5, 9, 7]
    with torch.inference_mode():
        assert torch.equal(split(x), model(x))


def test_non_contiguous_dag_assignment_executes_exactly():
    model, x = build("resnet50", SMALL_INPUT_SHAPES["resnet50"])
    g = trace(model, x)
    # Put every downsample branch (a parallel path) on part 1, the rest on part 0 except
    # the tail, which goes to part 2: data flows 0 -> 1 -> 0 would cycle, so the blocks
    # after the first downsample must follow on part 2.
    first_ds = next(n.index for n in g if "downsample" in n.name)
    assignment = [0 if i < first_ds else 2 for i in range(len(g))]
    for n in g:
        if "downsample" in n.name and n.index < first_ds + 2:
            assignment[n.index] = 1
    split = partition(g, assignment)
    assert [p.index for p in split.parts] == [0, 1, 2]
    with torch.inference_mode():
        assert torch.equal(split(x), model(x))


def test_cyclic_assignment_is_rejected_with_the_tensor_named():
    model, x = build("alexnet")
    g = trace(model, x)
    assignment = [0] * len(g)
    assignment[3] = 1  # 0 -> 1 -> 0: a cycle between parts
    with pytest.raises(PartitionError, match="cycle, e.g. via tensor"):
        partition(g, assignment)


def test_bad_assignments_are_rejected():
    model, x = build("mnist_cnn")
    g = trace(model, x)
    with pytest.raises(PartitionError, match="one part id per node"):
        partition(g, [0, 1])
    with pytest.raises(PartitionError, match="integers >= 0"):
        partition(g, [0] * (len(g) - 1) + [-1])
    with pytest.raises(PartitionError, match="increasing"):
        split_at(g, [5, 3])


def test_crossing_tensors_feed_the_next_part():
    model, x = build("resnet50", SMALL_INPUT_SHAPES["resnet50"])
    g = trace(model, x)
    k = max(range(len(g) + 1), key=lambda i: len(g.cut(i).tensors))
    split = split_at(g, [k])
    head, tail = split.parts
    assert set(tail.input_names) == set(g.cut(k).tensor_names)
    assert set(head.output_names) == set(g.cut(k).tensor_names)


class _PytreeOut(torch.nn.Module):
    """Returns a dict holding a tuple, a list and an input passed through."""

    def __init__(self, shape_branch: bool) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)
        self.shape_branch = shape_branch

    def forward(self, x: torch.Tensor) -> dict[str, object]:
        if self.shape_branch and x.shape[0] > 5:  # makes fx fail, so export runs
            x = x[:5]
        h = torch.relu(self.a(x))
        return {"pair": (h, self.b(h)), "list": [x, h.sum()], "n": 3}


@pytest.mark.parametrize(("shape_branch", "tracer"), [(False, "fx"), (True, "export-nonstrict")])
def test_pytree_outputs_are_reassembled_exactly_at_every_cut(shape_branch, tracer):
    from edgesplit.graph.verify import check_every_cut, outputs_equal

    torch.manual_seed(0)
    model = _PytreeOut(shape_branch).eval()
    x = torch.randn(2, 4)
    g = trace(model, x)
    assert g.tracer == tracer
    with torch.inference_mode():
        reference = model(x)
        for k in range(len(g) + 1):
            out = split_at(g, [k])(x)
            assert type(out["list"]) is list and out["n"] == 3
            assert outputs_equal(out, reference), f"cut {k}"
    assert all(c.equal for c in check_every_cut(g, (x,), reference))
