"""The tuli2021 reproduction writes every artefact, with the paper's rows beside ours."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def one_thread() -> Iterator[None]:
    """The surrogate is tiny: on busy cores a second thread only adds synchronisation."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_reproduce_writes_table_figures_and_curves(tmp_path, monkeypatch, one_thread) -> None:
    import edgesplit.cluster.policies as policies
    from edgesplit.experiments.tuli2021 import PAPER, reproduce

    real = policies.train_surrogate
    monkeypatch.setattr(policies, "train_surrogate", lambda *a, **k: real(*a, **{**k, "epochs": 5}))
    doc = reproduce(quick=True, out=tmp_path, seeds=2, intervals=3)
    assert set(doc["ours"]) == set(PAPER)
    for name in ("table1.md", "table1.json", "fig4.png", "mab_training.png"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "table1.json").read_text())
    assert saved["protocol"]["seeds"] == [0, 1] and saved["protocol"]["intervals"] == 3
    md = (tmp_path / "table1.md").read_text()
    assert all(f"| {name} |" in md for name in PAPER)
    # a cell is (mean, 95 % half-width) over the two seeds
    mean, half = doc["ours"]["gillis"]["energy_kwh"]
    assert mean > 0 and half >= 0
    assert (tmp_path / "fig4.png").read_bytes()[:4] == b"\x89PNG"
