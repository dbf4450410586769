"""`edgesplit simulate`: one JSON document, files written whole, one-line errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster_small.yaml"


def test_simulate_json_is_one_document(cli, tmp_path) -> None:
    out = tmp_path / "run.json"
    doc = cli(
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
    ).json()
    assert doc["policy"] == "gillis" and doc["intervals"] == 3 and doc["seed"] == 2
    assert len(doc["per_interval"]) == 3
    assert json.loads(out.read_text()) == doc


def test_simulate_saves_and_reuses_mab_state(cli, tmp_path, monkeypatch) -> None:
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
    cli(*args).json()
    saved = json.loads(state.read_text())
    assert set(saved["q"]) == {"h/layer", "h/semantic", "l/layer", "l/semantic"}
    cli(*args).json()
    assert json.loads(state.read_text()) == saved


def test_bad_cluster_file_is_one_line_and_exit_2(
    cli_subprocess, assert_input_error, tmp_path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("hosts: 3\n")
    assert_input_error(cli_subprocess("simulate", "--cluster", bad), bad, "'hosts'")
