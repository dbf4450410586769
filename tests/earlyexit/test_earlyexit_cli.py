"""The ``edgesplit earlyexit`` commands: one JSON document with --json, one-line errors."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgesplit.cli import main

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run(capsys, monkeypatch):  # type: ignore[no-untyped-def]
    """Run the CLI's real entry point in-process (same error handling as the executable)."""

    def _run(*args: str) -> Result:
        monkeypatch.setattr(sys, "argv", ["edgesplit", *args])
        monkeypatch.chdir(ROOT)
        code: int | str | None = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        out = capsys.readouterr()
        return Result(int(code or 0), out.out, out.err)

    return _run


def test_solve_json_every_solver_agrees_with_evaluator(run) -> None:
    out = run("earlyexit", "solve", "examples/earlyexit-3tier.yaml", "--solver", "exact", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["algorithm"] == "pre-dnnoff-exact"
    expected = sum(e["probability"] * e["latency_ms"]["total_s"] for e in doc["exits"])
    assert doc["expected_latency_ms"] == pytest.approx(expected)
    assert len(doc["layers"]) == 52


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ("accuracies: [0.9, 0.8, 0.7, 0.6, 0.5]", "must not decrease with depth"),
        ("requirement: {distribution: uniform, params: {loc: 3, scale: 1}}", "no probability"),
        ("wireless: {rate_mbps: -1}", "wireless"),
    ],
)
def test_bad_instances_one_line_exit_2(run, tmp_path: Path, patch: str, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"model: zuo_alexnet\n{patch}\n")
    out = run("earlyexit", "solve", str(path))
    assert out.returncode == 2
    assert out.stderr.startswith("error:") and needle in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and out.stdout == ""


def test_schema_earlyexit(run) -> None:
    out = run("schema", "earlyexit")
    assert out.returncode == 0
    assert "accuracies" in json.loads(out.stdout)["properties"]
