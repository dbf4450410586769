"""``--inputs PATH``: real request inputs from files, checked against the model's inputs.

Oracles: images against torchvision's own ``Resize``/``CenterCrop``/``ToTensor``/``Normalize``
(an independent implementation of the same preprocessing); tensors and token ids against
the values written to the files; run-plan's ``--check`` (``torch.equal`` with local
inference) on the requests the files give. Bad files: one line naming the file and field.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn
from torchvision import transforms

from edgesplit.cli import main
from edgesplit.errors import InputError, ShapeError
from edgesplit.graph import trace
from edgesplit.plan.types import Plan
from edgesplit.runtime import inputs as inputs_mod
from edgesplit.runtime.inputs import load_inputs


class Conv(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean((2, 3))


class Text(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 8)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return (self.emb(input_ids) * attention_mask.unsqueeze(-1)).sum(1)


def _conv(channels: int = 3, batch: int = 1, side: int = 16):
    module = Conv(channels).eval()
    x = torch.randn(batch, channels, side, side)
    return trace(module, x, name="conv"), module, (x,)


def _text(length: int = 6):
    module = Text().eval()
    ids = torch.zeros(1, length, dtype=torch.int64)
    mask = torch.ones(1, length, dtype=torch.int64)
    graph = trace(module, (ids, mask), name="text")
    return graph, module, (ids, mask)


def _image(path: Path, size: tuple[int, int], seed: int, mode: str = "RGB") -> None:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)


def test_image_folder_matches_torchvision_preprocessing(tmp_path) -> None:
    graph, module, ex = _conv(3, batch=2)
    for i, size in enumerate([(40, 30), (20, 50), (16, 16), (33, 17)]):
        _image(tmp_path / f"img{i}.png", size, i)
    (tmp_path / "notes.md").write_text("ignored")
    requests = load_inputs(tmp_path, graph, ex, module)
    assert len(requests) == 2 and requests[0][0].shape == (2, 3, 16, 16)
    ref = transforms.Compose(
        [
            transforms.Resize(16),
            transforms.CenterCrop(16),
            transforms.ToTensor(),
            transforms.Normalize(inputs_mod.IMAGENET_MEAN, inputs_mod.IMAGENET_STD),
        ]
    )
    files = sorted(tmp_path.glob("*.png"))
    for r, request in enumerate(requests):
        for b in range(2):
            with Image.open(files[2 * r + b]) as img:
                want = ref(img.convert("RGB"))
            assert torch.allclose(request[0][b], want, atol=1e-5)


def test_greyscale_images_and_batch_remainder(tmp_path) -> None:
    graph, module, ex = _conv(1, side=12)
    _image(tmp_path / "a.png", (24, 12), 1)
    (x,) = load_inputs(tmp_path, graph, ex, module)[0]
    with Image.open(tmp_path / "a.png") as img:
        want = transforms.Compose(
            [transforms.Resize(12), transforms.CenterCrop(12), transforms.ToTensor()]
        )(img.convert("L"))
    assert torch.allclose(x[0], want, atol=1e-6)
    graph2, module2, ex2 = _conv(1, batch=2, side=12)
    with pytest.raises(InputError, match=r"has 1 images; input 'x' takes 2 per request"):
        load_inputs(tmp_path, graph2, ex2, module2)
    (tmp_path / "b.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"b\.png.*cannot be read"):
        load_inputs(tmp_path, graph, ex, module)


def test_safetensors_by_name_leading_axis_and_bad_fields(tmp_path) -> None:
    graph, module, ex = _text()
    ids = torch.randint(0, 50, (3, 1, 6))
    save_file({"input_ids": ids}, tmp_path / "ids.safetensors")
    requests = load_inputs(tmp_path / "ids.safetensors", graph, ex, module)
    assert len(requests) == 3
    for r, (got_ids, mask) in enumerate(requests):
        assert torch.equal(got_ids, ids[r]) and torch.equal(mask, ex[1])
    save_file({"input_ids": ids.int()}, tmp_path / "int32.safetensors")
    with pytest.raises(ShapeError, match=r"int32\.safetensors.*'input_ids' is int32.*int64"):
        load_inputs(tmp_path / "int32.safetensors", graph, ex, module)
    save_file({"input_ids": ids[:, :, :4].contiguous()}, tmp_path / "short.safetensors")
    with pytest.raises(ShapeError, match=r"'input_ids' has shape \[3, 1, 4\].*\[1, 6\]"):
        load_inputs(tmp_path / "short.safetensors", graph, ex, module)
    save_file({"tokens": ids}, tmp_path / "other.safetensors")
    with pytest.raises(InputError, match=r"tensor 'tokens' is not an input"):
        load_inputs(tmp_path / "other.safetensors", graph, ex, module)
    save_file({"input_ids": ids, "attention_mask": torch.ones(2, 1, 6, dtype=torch.int64)},
              tmp_path / "uneven.safetensors")  # fmt: skip
    with pytest.raises(ShapeError, match="different request counts"):
        load_inputs(tmp_path / "uneven.safetensors", graph, ex, module)


def test_npy_files_never_unpickle_and_folders_by_name(tmp_path) -> None:
    graph, module, ex = _conv(3)
    x = np.random.default_rng(0).standard_normal((2, 1, 3, 16, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    requests = load_inputs(tmp_path / "x.npy", graph, ex, module)
    assert [torch.equal(r[0], torch.from_numpy(x[i])) for i, r in enumerate(requests)] == [1, 1]
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match=r"obj\.npy.*not a plain \.npy"):
        load_inputs(tmp_path / "obj.npy", graph, ex, module)
    np.save(tmp_path / "f64.npy", x.astype(np.float64))
    with pytest.raises(ShapeError, match=r"f64\.npy': input 'x' is float64.*save it as float32"):
        load_inputs(tmp_path / "f64.npy", graph, ex, module)
    tgraph, tmodule, tex = _text()
    folder = tmp_path / "named"
    folder.mkdir()
    ids = np.arange(6, dtype=np.int64).reshape(1, 6)
    np.save(folder / "input_ids.npy", ids)
    np.save(folder / "attention_mask.npy", np.zeros((1, 6), dtype=np.int64))
    ((got_ids, mask),) = load_inputs(folder, tgraph, tex, tmodule)
    assert got_ids.tolist() == ids.tolist() and not mask.any()


def test_token_id_lines(tmp_path) -> None:
    graph, module, ex = _text()
    good = tmp_path / "ids.txt"
    good.write_text("1 2 3 4 5 6\n\n7,8,9,10,11,49\n")
    requests = load_inputs(good, graph, ex, module)
    assert [r[0].tolist() for r in requests] == [[[1, 2, 3, 4, 5, 6]], [[7, 8, 9, 10, 11, 49]]]
    assert all(torch.equal(r[1], ex[1]) for r in requests)
    short = tmp_path / "short.txt"
    short.write_text("1 2 3 4 5 6\n1 2 3\n")
    with pytest.raises(ShapeError, match=r"short\.txt' line 2: 3 token ids.*takes 6"):
        load_inputs(short, graph, ex, module)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("1 2 3 4 5 50\n")
    with pytest.raises(InputError, match=r"line 1: token id 50 is outside 0\.\.49"):
        load_inputs(vocab, graph, ex, module)
    words = tmp_path / "words.txt"
    words.write_text("hello world\n")
    with pytest.raises(InputError, match="is not integers"):
        load_inputs(words, graph, ex, module)


def test_size_limit_and_unknown_kinds(tmp_path, monkeypatch) -> None:
    graph, module, ex = _conv(3)
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 16, 16), dtype=np.float32))
    monkeypatch.setattr(inputs_mod, "MAX_FILE_BYTES", 1000)
    with pytest.raises(InputError, match=r"x\.npy' is \d+ bytes, over the limit of 1000"):
        load_inputs(tmp_path / "x.npy", graph, ex, module)
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(InputError, match=r"x\.csv'.*use a folder of images"):
        load_inputs(tmp_path / "x.csv", graph, ex, module)
    with pytest.raises(InputError, match="does not exist"):
        load_inputs(tmp_path / "nope", graph, ex, module)


def _plan_file(tmp_path: Path) -> Path:
    from edgesplit.commands.common import load_graph

    n = len(load_graph("mnist_cnn")[0].nodes)
    plan = Plan.two_tier("mnist_cnn", "manual", n, 4, devices=("device", "edge"))
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan.to_dict()))
    return path


def test_run_plan_inputs_runs_each_file_and_checks_it(tmp_path, capsys) -> None:
    folder = tmp_path / "digits"
    folder.mkdir()
    for i in range(3):
        _image(folder / f"d{i}.png", (28, 28), i, mode="L")
    plan = _plan_file(tmp_path)
    with pytest.raises(SystemExit) as done:
        main(["run-plan", str(plan), "--inputs", str(folder), "--check", "--json"])
    assert done.value.code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["requests"] == 3 and doc["check"]["equal"] == 3 and doc["equal_to_local"]
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((1, 1, 27, 28), dtype=np.float32))
    with pytest.raises(SystemExit) as done:
        main(["run-plan", str(plan), "--inputs", str(bad), "-n", "2"])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --inputs file") and "bad.npy" in err and "\n" not in err
