"""The serve/run/reproduce commands: a short run end to end, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgesplit.demo import DEMO_SCHEDULE
from edgesplit.runtime.conditions import ConditionSchedule

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_run_json_check_and_csv(cli, tmp_path: Path) -> None:
    csv_path = tmp_path / "r.csv"
    res = cli(
        "run", "mnist_cnn", "-n", "4", "--check", "--json", "--layers",
        "--schedule", str(EXAMPLES / "conditions-requests.yaml"),
        "--csv", str(csv_path), "--jsonl", str(tmp_path / "r.jsonl"),
    )  # fmt: skip
    doc = res.json()
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
def test_bad_input_raises_one_line_errors(
    cli, assert_input_error, args: tuple[str, ...], needle: str
) -> None:
    assert_input_error(cli(*args), needle)


def test_cli_prints_the_error_line_and_exits_2(cli_subprocess, assert_input_error) -> None:
    line = assert_input_error(cli_subprocess("serve", "--host", "0.0.0.0"))
    assert [line] == [
        "error: --host 0.0.0.0 exposes the server beyond this machine; give --token T "
        "(clients send 'Authorization: Bearer T') or pass --insecure"
    ]


def test_demo_schedule_matches_the_example_file() -> None:
    assert ConditionSchedule.load(EXAMPLES / "conditions-demo.yaml") == DEMO_SCHEDULE


def test_conditions_schema_is_listed(cli) -> None:
    assert (
        "bandwidth_mbit"
        in cli("schema", "conditions").json()["$defs"]["ConditionStep"]["properties"]
    )
