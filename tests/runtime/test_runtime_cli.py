"""The serve/run/reproduce commands: a short run end to end, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgesplit.cli import app
from edgesplit.demo import DEMO_SCHEDULE
from edgesplit.errors import EdgesplitError
from edgesplit.runtime.conditions import ConditionSchedule

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


def test_run_json_check_and_csv(tmp_path: Path) -> None:
    csv_path = tmp_path / "r.csv"
    res = invoke(
        "run", "mnist_cnn", "-n", "4", "--check", "--json", "--layers",
        "--schedule", str(EXAMPLES / "conditions-requests.yaml"),
        "--csv", str(csv_path), "--jsonl", str(tmp_path / "r.jsonl"),
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["requests"] == 4 and doc["mismatches"] == 0 and doc["fallbacks"] == 0
    assert doc["clock_method"] == "time-dilation"
    header = csv_path.read_text().splitlines()[0].split(",")
    assert header[:8] == ["id", "datetime", "start", "stop", "size", "SP", "BW", "CS"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("run", "mnist_cnn", "--cut", "99", "-n", "1"), "--cut 99"),
        (("run", "mnist_cnn", "--schedule", "/nonexistent.yaml"), "does not exist"),
        (("run", "mnist_cnn", "--weight", "3", "-n", "1"), "--weight"),
        (("serve", "--host", "0.0.0.0"), "--token"),
    ],
)
def test_bad_input_raises_one_line_errors(args: tuple[str, ...], needle: str) -> None:
    res = invoke(*args)
    assert isinstance(res.exception, EdgesplitError), res.output
    assert needle in str(res.exception) and "\n" not in str(res.exception)


def test_cli_prints_the_error_line_and_exits_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edgesplit.cli", "serve", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --host 0.0.0.0 exposes the server beyond this machine; give --token T "
        "(clients send 'Authorization: Bearer T') or pass --insecure"
    ]


def test_demo_schedule_matches_the_example_file() -> None:
    assert ConditionSchedule.load(EXAMPLES / "conditions-demo.yaml") == DEMO_SCHEDULE


def test_conditions_schema_is_listed() -> None:
    res = invoke("schema", "conditions")
    assert res.exit_code == 0 and "bandwidth_mbit" in res.stdout
