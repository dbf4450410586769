"""The ``edgesplit earlyexit`` commands: one JSON document with --json, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_solve_json_every_solver_agrees_with_evaluator(cli) -> None:
    out = cli("earlyexit", "solve", "examples/earlyexit-3tier.yaml", "--solver", "exact", "--json")
    doc = out.json()
    assert doc["algorithm"] == "pre-dnnoff-exact"
    expected = sum(e["probability"] * e["latency_ms"]["total_s"] for e in doc["exit_table"])
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
def test_bad_instances_one_line_exit_2(
    cli, assert_input_error, tmp_path: Path, patch: str, needle: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"model: zuo_alexnet\n{patch}\n")
    assert_input_error(cli("earlyexit", "solve", path), needle)


def test_an_empty_instance_file_is_an_error_not_the_defaults(
    cli, assert_input_error, tmp_path: Path
) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert "is empty" in assert_input_error(cli("earlyexit", "solve", path), path)


def test_schema_earlyexit(cli) -> None:
    assert "accuracies" in cli("schema", "earlyexit").json()["properties"]
