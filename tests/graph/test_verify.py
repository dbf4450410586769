"""The every-cut oracle: fast and rebuild agree, in-place writes, and failures are caught."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from edgesplit.errors import InputError
from edgesplit.graph import trace
from edgesplit.graph.partition import split_at
from edgesplit.graph.verify import (
    check_every_cut,
    leaf_differences,
    outputs_equal,
    record_values,
)
from edgesplit.models import SMALL_INPUT_SHAPES, build


class _WritesInPlaceLater(nn.Module):
    """``a`` is read after an in-place ReLU wrote it: it crosses later cuts written."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv(x)
        b = self.relu(a)
        return self.conv2(b) + a


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2"])
def test_fast_and_rebuild_agree_on_every_cut(name: str) -> None:
    model, x = build(name, SMALL_INPUT_SHAPES.get(name))
    g = trace(model, x)
    with torch.inference_mode():
        reference = model(x)
    every = range(0, len(g) + 1, 5)
    fast = check_every_cut(g, (x,), reference, method="fast")
    tails = check_every_cut(g, (x,), reference, method="tails", cuts=every)
    rebuild = check_every_cut(g, (x,), reference, method="rebuild", cuts=every)
    assert [c.cut for c in fast] == list(range(len(g) + 1))
    assert all(c.equal for c in fast), [c for c in fast if not c.equal][:3]
    assert all(c.equal for c in tails) and all(c.equal for c in rebuild)


def test_a_tensor_written_in_place_after_its_cut_is_rebuilt_and_exact() -> None:
    torch.manual_seed(0)
    model = _WritesInPlaceLater().eval()
    x = torch.randn(1, 3, 8, 8)
    g = trace(model, x)
    recording = record_values(g, (x,))
    conv = g.nodes[0].outputs[0]
    # The recording holds `a` as the conv returned it, before the ReLU wrote it.
    assert recording.mutated == {conv: 1}
    assert (recording.values[conv] < 0).any()
    with torch.inference_mode():
        reference = model(x.clone())
    for method in ("fast", "tails"):
        checks = check_every_cut(g, (x,), reference, method=method)  # type: ignore[arg-type]
        assert all(c.equal for c in checks) and len(checks) == len(g) + 1
    with torch.inference_mode():
        for k in range(len(g) + 1):
            assert torch.equal(split_at(g, [k])(x.clone()), reference)


def test_a_wrong_reference_fails_every_cut_and_names_the_leaf() -> None:
    model, x = build("mnist_cnn")
    g = trace(model, x)
    with torch.inference_mode():
        wrong = model(x) + 1
    checks = check_every_cut(g, (x,), wrong, method="fast")
    assert not any(c.equal for c in checks)
    assert not any(c.equal for c in check_every_cut(g, (x,), wrong, method="tails"))
    assert all("output leaves ['output'] differ" in c.reason for c in checks)


def test_a_cut_that_omits_a_needed_tensor_is_caught() -> None:
    model, x = build("resnet50", SMALL_INPUT_SHAPES["resnet50"])
    g = trace(model, x)
    with torch.inference_mode():
        reference = model(x)
    # Forget that the first residual's identity branch is read by the block's `add`:
    # cuts inside the block then under-declare what crosses them.
    add = next(n for n in g if n.kind == "add")
    skip = next(t for t in g.tensors if add.name in t.consumers and len(t.consumers) == 1)
    broken = dataclasses.replace(
        g,
        tensors=tuple(
            dataclasses.replace(t, consumers=()) if t.name == skip.name else t for t in g.tensors
        ),
    )
    checks = check_every_cut(broken, (x,), reference, method="tails")
    bad = [c for c in checks if not c.equal]
    assert bad and all("not computed" in c.reason or "needs tensor" in c.reason for c in bad)
    assert checks[0].equal and checks[-1].equal is False
    # The step-by-step tails are stricter: a part fed an under-declared cut fails, so
    # every cut before it fails too (cut 0 included, though its whole tail would pass).
    fast = check_every_cut(broken, (x,), reference, method="fast")
    assert {c.cut for c in bad} <= {c.cut for c in fast if not c.equal}
    assert not fast[0].equal and "tail: part" in fast[0].reason


def test_pytree_comparison_is_leaf_by_leaf() -> None:
    a = {"x": torch.zeros(2), "y": (torch.ones(1), 3)}
    assert outputs_equal(a, {"x": torch.zeros(2), "y": (torch.ones(1), 3)})
    assert leaf_differences(a, {"x": torch.zeros(2), "y": (torch.zeros(1), 3)}) == ["['y'][0]"]
    assert leaf_differences(a, {"x": torch.zeros(2)}) == ["structure"]
    # Same values, another dtype: not equal.
    assert not outputs_equal(torch.zeros(2), torch.zeros(2, dtype=torch.float64))


def test_bad_requests_are_input_errors() -> None:
    model, x = build("mnist_cnn")
    g = trace(model, x)
    with pytest.raises(InputError, match="out of range"):
        check_every_cut(g, (x,), None, cuts=[len(g) + 1])
    with pytest.raises(InputError, match="takes 1 inputs"):
        check_every_cut(g, (x, x), None)
    with pytest.raises(InputError, match="method"):
        check_every_cut(g, (x,), None, method="slow")  # type: ignore[arg-type]
