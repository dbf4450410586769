"""`edgesplit simulate`: one JSON document, files written whole, one-line errors (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from edgesplit.cli import app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster_small.yaml"


def test_simulate_json_is_one_document(tmp_path) -> None:
    out = tmp_path / "run.json"
    res = CliRunner().invoke(
        app,
        [
            "simulate",
            "--cluster",
            str(EXAMPLE),
            "--policy",
            "gillis",
            "--intervals",
            "3",
            "--seed",
            "2",
            "--json",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["policy"] == "gillis" and doc["intervals"] == 3 and doc["seed"] == 2
    assert len(doc["per_interval"]) == 3
    assert json.loads(out.read_text()) == doc


def test_simulate_saves_and_reuses_mab_state(tmp_path, monkeypatch) -> None:
    import edgesplit.cluster.policies as policies

    real = policies.train_surrogate
    # the GOBI surrogate's quality is not under test here: a few epochs keep this cheap
    monkeypatch.setattr(policies, "train_surrogate", lambda *a, **k: real(*a, **{**k, "epochs": 5}))
    state = tmp_path / "mab.json"
    args = [
        "simulate",
        "--cluster",
        str(EXAMPLE),
        "--policy",
        "m+g",
        "--intervals",
        "2",
        "--mab-state",
        str(state),
        "--json",
    ]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    saved = json.loads(state.read_text())
    assert set(saved["q"]) == {"h/layer", "h/semantic", "l/layer", "l/semantic"}
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0 and json.loads(state.read_text()) == saved


def test_bad_cluster_file_is_one_line_and_exit_2(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("hosts: 3\n")
    res = subprocess.run(
        [sys.executable, "-m", "edgesplit.cli", "simulate", "--cluster", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "hosts" in res.stderr
    assert res.stdout == ""
