"""The CLI as a user meets it: a real subprocess, JSON on stdout, one-line errors, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EDGESPLIT = [sys.executable, "-m", "edgesplit.cli"]


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGESPLIT, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_inspect_alexnet_json_lists_layers_and_cut_bytes():
    res = _run("inspect", "alexnet", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["is_chain"] is True and len(doc["nodes"]) == 21
    assert len(doc["cuts"]) == 22
    assert doc["cuts"][0]["bytes"] == 3 * 224 * 224 * 4


def test_verify_user_model_json_passes_every_cut():
    res = _run("verify", "torchvision.models:squeezenet1_0", "--input-shape", "1,3,64,64", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["passed"] and all(c["equal"] for c in doc["cuts"])


def test_profile_writes_a_loadable_file(tmp_path):
    out = tmp_path / "prof.json"
    res = _run("profile", "mnist_cnn", "--repeats", "3", "-o", str(out), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["nodes"] == 9
    assert json.loads(out.read_text())["format"] == "edgesplit.profile"


def test_errors_are_one_line_with_exit_status_2(tmp_path):
    cases = [
        ("inspect", "nope"),
        ("inspect", "alexnet", "--input-shape", "1,x"),
        ("inspect", "alexnet", "--input-shape", "1,5,224,224"),
        ("profile", "mnist_cnn", "--repeats", "0", "-o", str(tmp_path / "never.json")),
        ("schema", "nope"),
    ]
    for args in cases:
        res = _run(*args)
        assert res.returncode == 2, (args, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, res.stderr)
        assert "Traceback" not in res.stderr
    assert not (tmp_path / "never.json").exists()


def test_schema_profile_is_json_schema():
    res = _run("schema", "profile")
    assert res.returncode == 0
    assert "nodes" in json.loads(res.stdout)["properties"]
