"""A user package written to disk, as a user's own module would be (imported by name)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

USER_MODULE = textwrap.dedent(
    '''
    import torch
    from torch import nn


    class Tagger(nn.Module):
        """Token ids in, one score per token out; the mask and type ids are optional."""

        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(37, 8)
            self.fc = nn.Linear(8, 4)

        def forward(self, input_ids, attention_mask=None, token_type_ids=None):
            h = self.emb(input_ids)
            if attention_mask is not None:
                h = h * attention_mask.unsqueeze(-1)
            return self.fc(h)


    class SmallCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.relu = nn.ReLU()
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.relu(self.conv(x))), 1))


    def tagger():
        return Tagger()


    def small_cnn():
        return SmallCNN()


    def ids():
        return torch.arange(6).reshape(1, 6)


    def example_args():
        return (ids(),)


    def example_kwargs():
        return {"input_ids": ids(), "attention_mask": torch.ones(1, 6)}


    def example_both():
        return (ids(),), {"attention_mask": torch.ones(1, 6)}


    def example_tensor():
        return ids()


    def example_bad():
        return 42


    def example_wrong_name():
        return {"pixels": ids()}
    '''
)


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``usernets`` importable in this process (and via PYTHONPATH in subprocesses)."""
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "usernets.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop("usernets", None)
    return folder
