"""Input specs, seeded valid values, forward-signature checks, --example, trust of data files."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from edgesplit.errors import InputError, ShapeError
from edgesplit.models import InputSpec, ModelRequest, build_example, check_trusted
from edgesplit.models.inputs import check_accepts, example_from_callable, vocab_size


def test_spec_parsing_and_text_form():
    spec = InputSpec.parse("input_ids=1x128:int64")
    assert spec == InputSpec("input_ids", (1, 128), "int64")
    assert InputSpec.parse("input_ids=1,128:long") == spec
    assert InputSpec.parse("x=1,3,32,32") == InputSpec("x", (1, 3, 32, 32), "float32")
    assert InputSpec.parse("m=2x4:bf16").dtype == "bfloat16"
    assert str(spec) == "input_ids=1x128:int64"
    assert InputSpec.parse(str(spec)) == spec


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("input_ids", "NAME=SHAPE"),
        ("=1x2", "NAME=SHAPE"),
        ("ids=1xq:int64", "--input ids"),
        ("ids=1x0", "--input ids"),
        ("ids=1x4:int65", "--input ids: unknown dtype 'int65'; use one of"),
        ("1ids=1x4", "not a Python argument name"),
    ],
)
def test_bad_specs_name_the_input(text, match):
    with pytest.raises(InputError, match=match):
        InputSpec.parse(text)


def test_seeded_values_are_valid_and_repeatable(user_dir):
    import usernets

    model = usernets.tagger()
    specs = (
        InputSpec.parse("input_ids=2x50:int64"),
        InputSpec.parse("attention_mask=2x50:int64"),
        InputSpec.parse("token_type_ids=2x50:int32"),
    )
    ex = build_example(specs, model)
    ids, mask, types = ex.args
    assert ids.dtype == torch.int64 and int(ids.min()) >= 0 and int(ids.max()) < 37
    assert len(torch.unique(ids)) > 1  # random ids, not a constant
    assert torch.equal(mask, torch.ones(2, 50, dtype=torch.int64))
    assert types.dtype == torch.int32 and not types.any()
    again = build_example(specs, model)
    assert all(torch.equal(a, b) for a, b in zip(ex.args, again.args, strict=True))
    assert ex.text == tuple(str(s) for s in specs)
    pos = build_example((InputSpec.parse("position_ids=2x5:int64"),), _Free())
    assert torch.equal(pos.kwargs["position_ids"][1], torch.arange(5))


class _Free(nn.Module):
    """A forward that takes any keyword; its config names the vocabulary."""

    def __init__(self) -> None:
        super().__init__()
        self.config = SimpleNamespace(vocab_size=5)
        self.emb = nn.Embedding(1000, 2)

    def forward(self, **inputs):
        return inputs


def test_vocab_size_prefers_the_config_then_the_first_embedding(user_dir):
    import usernets

    assert vocab_size(_Free()) == 5
    assert vocab_size(usernets.tagger()) == 37
    assert vocab_size(usernets.small_cnn()) is None
    ex = build_example((InputSpec.parse("input_ids=1x400:int64"),), _Free())
    assert int(ex.kwargs["input_ids"].max()) < 5


def test_inputs_are_checked_against_forward(user_dir):
    import usernets

    model = usernets.tagger()
    with pytest.raises(InputError, match=r"--input pixels=1x4:float32: Tagger.forward takes no "):
        build_example((InputSpec.parse("pixels=1x4"),), model)
    with pytest.raises(InputError, match="needs input 'input_ids'; add --input input_ids="):
        build_example((InputSpec.parse("attention_mask=1x4:int64"),), model)
    with pytest.raises(InputError, match="given twice"):
        build_example((InputSpec.parse("input_ids=1x4:int64"),) * 2, model)
    # Leading inputs go positionally, inputs after a gap by keyword; the gap is left out.
    ex = build_example(
        (InputSpec.parse("input_ids=1x4:int64"), InputSpec.parse("token_type_ids=1x4:int64")),
        model,
    )
    assert len(ex.args) == 1 and list(ex.kwargs) == ["token_type_ids"]


@pytest.mark.parametrize(
    ("fn", "n_args", "kwargs"),
    [
        ("example_args", 1, []),
        ("example_kwargs", 0, ["input_ids", "attention_mask"]),
        ("example_both", 1, ["attention_mask"]),
        ("example_tensor", 1, []),
    ],
)
def test_example_callables(user_dir, fn, n_args, kwargs):
    import usernets

    ex = example_from_callable(f"usernets:{fn}", usernets.tagger())
    assert len(ex.args) == n_args and list(ex.kwargs) == kwargs
    assert ex.text == (f"example=usernets:{fn}",)
    assert ex.run(usernets.tagger()).shape == (1, 6, 4)


def test_bad_example_callables(user_dir):
    import usernets

    model = usernets.tagger()
    with pytest.raises(InputError, match="returned int; return a tuple of args, a dict"):
        example_from_callable("usernets:example_bad", model)
    with pytest.raises(InputError, match="takes no input 'pixels'"):
        example_from_callable("usernets:example_wrong_name", model)
    with pytest.raises(InputError, match="cannot import --example .* has no 'nothing_here'"):
        example_from_callable("usernets:nothing_here", model)


def test_a_shape_the_model_rejects_names_the_inputs():
    model, ex = ModelRequest.from_options("mnist_cnn", input_shape="1,1,5,5").load()
    with pytest.raises(ShapeError, match=r"'mnist_cnn' rejects inputs x=1x1x5x5:float32"):
        check_accepts(model, ex, "mnist_cnn")


def test_request_options_that_conflict():
    with pytest.raises(InputError, match="--input-shape .* or --input, not both"):
        ModelRequest.from_options("mnist_cnn", ["x=1x1x28x28"], "1,1,28,28")
    with pytest.raises(InputError, match="--example or --input"):
        ModelRequest.from_options("mnist_cnn", ["x=1x1x28x28"], example="a.b:c")
    with pytest.raises(InputError, match="--model-config applies to timm: and hf:"):
        ModelRequest.from_options("mnist_cnn", config=["depth=2"]).load()


def test_zoo_default_is_the_one_float_input():
    _, ex = ModelRequest("lenet").load()
    assert ex.text == ("x=1x1x32x32:float32",) and ex.args[0].shape == (1, 1, 32, 32)
    assert ex.single("profile") is ex.args[0]


def test_data_files_naming_code_are_refused_unless_trusted(user_dir):
    with pytest.raises(InputError, match=r"plan file 'p.json' names model 'os:abort'.*--trust"):
        check_trusted("os:abort", "plan file 'p.json'", trust_code=False)
    check_trusted("usernets:tagger", "plan file 'p.json'", trust_code=True)
    for name in ("alexnet", "timm:resnet18", "hf:BertModel"):
        check_trusted(name, "plan file 'p.json'", trust_code=False)
    record = {"inputs": ["input_ids=1x6:int64"], "example": "usernets:example_args"}
    with pytest.raises(InputError, match="names example 'usernets:example_args'"):
        ModelRequest.from_record("hf:BertModel", record, "plan file 'p.json'", False)
    request = ModelRequest.from_record(
        "usernets:tagger", {"inputs": ["input_ids=1x6:int64"]}, "plan file 'p.json'", True
    )
    _, ex = request.load()
    assert request.describe(ex) == {"inputs": ["input_ids=1x6:int64"]}
