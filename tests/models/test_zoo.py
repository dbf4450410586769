"""Model zoo: resolution of names, user callables, input shapes and safe weight loading."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from edgesplit.errors import InputError, ShapeError, UnknownModelError
from edgesplit.models import ZOO, build, input_shape_from_text, load_weights, resolve


def test_builds_are_seeded():
    a, xa = build("lenet")
    b, xb = build("lenet")
    assert torch.equal(xa, xb)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_user_callable_needs_a_shape():
    model, shape = resolve("torchvision.models:squeezenet1_0", (1, 3, 64, 64))
    assert shape == (1, 3, 64, 64) and isinstance(model, torch.nn.Module)
    with pytest.raises(ShapeError, match="--input-shape"):
        resolve("torchvision.models:squeezenet1_0")


def test_unknown_and_unimportable_models():
    with pytest.raises(UnknownModelError, match="edgesplit models"):
        resolve("nope")
    with pytest.raises(UnknownModelError, match="cannot import"):
        resolve("no_such_pkg.mod:fn", (1, 3))
    with pytest.raises(UnknownModelError, match="not a torch.nn.Module"):
        resolve("math:pi", (1,))


@pytest.mark.parametrize("text", ["", "a,b", "1,-3", "0", "1,x", "1,,3"])
def test_bad_input_shapes(text):
    with pytest.raises(ShapeError, match="--input-shape"):
        input_shape_from_text(text)


def test_input_shape_parsing():
    assert input_shape_from_text("1,3,224,224") == (1, 3, 224, 224)
    assert input_shape_from_text("1x3x32x32") == (1, 3, 32, 32)


def test_weights_load_from_safetensors_and_pt(tmp_path):
    src, _ = build("mnist_cnn")
    with torch.no_grad():
        for p in src.parameters():
            p.add_(1.0)
    save_file(src.state_dict(), tmp_path / "w.safetensors")
    torch.save(src.state_dict(), tmp_path / "w.pt")
    for name in ("w.safetensors", "w.pt"):
        dst, _ = build("mnist_cnn")
        load_weights(dst, tmp_path / name)
        assert torch.equal(dst.conv1.weight, src.conv1.weight)


def test_bad_weight_files(tmp_path):
    model, _ = build("mnist_cnn")
    with pytest.raises(InputError, match="does not exist"):
        load_weights(model, tmp_path / "missing.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"garbage")
    with pytest.raises(InputError, match="cannot be read safely"):
        load_weights(model, tmp_path / "junk.safetensors")
    other, _ = build("lenet")
    save_file(other.state_dict(), tmp_path / "other.safetensors")
    with pytest.raises(InputError, match="do not fit"):
        load_weights(model, tmp_path / "other.safetensors")


def test_zoo_lists_every_issue_model():
    assert set(ZOO) == {
        "mnist_cnn",
        "lenet",
        "alexnet",
        "vgg13",
        "vgg16",
        "resnet50",
        "mobilenet_v2",
        "googlenet",
        "inception_v3",
    }
