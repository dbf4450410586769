"""The shipped example plans run under ``run-plan`` against real ``edgesplit serve`` processes.

A Gao schedule (``examples/plan-gao-schedule.json``, written by ``multidevice solve
--plan``) and a two-tier cut (``examples/plan-two-tier.json``, written by ``plan -o``),
each with its topology rewritten to this test's free ports. The oracle: every output
bitwise equal to local inference (servers and client on one torch thread), and for the
schedule the server's own records show the planned order in every round.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgesplit.runtime.server import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def alexnet_server() -> Iterator[ServerProcess]:
    args = ("--threads", "1", "--max-concurrency", "8")
    server = ServerProcess(("alexnet",), args=args).start()
    try:
        yield server
    finally:
        server.kill()


def rewrite(topology: str, urls: dict[str, str], tmp: Path) -> Path:
    """The example topology with its server URLs pointed at this test's servers."""
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / topology).read_text())
    for dev in doc["devices"]:
        if dev["name"] in urls:
            dev["url"] = urls[dev["name"]]
    path = tmp / topology
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.slow
def test_gao_schedule_example_runs_in_planned_order(
    alexnet_server: ServerProcess, cli_subprocess: Callable[..., Any], tmp_path: Path
) -> None:
    topo = rewrite("topology-gao.yaml", {"mec": alexnet_server.url}, tmp_path)
    jsonl = tmp_path / "records.jsonl"
    out = cli_subprocess(
        "run-plan", EXAMPLES / "plan-gao-schedule.json", "--topology", topo,
        "-n", "3", "--check", "--threads", "1", "--jsonl", jsonl, "--json",
    )  # fmt: skip
    assert out.code == 0, out.stderr
    doc = out.json()
    plan = json.loads((EXAMPLES / "plan-gao-schedule.json").read_text())
    assert doc["bitwise_expected"] and doc["outputs_equal"]
    assert doc["planned_order"] == plan["schedule"]["order"]
    assert doc["order_honoured"] and doc["rounds_in_order"] == 3
    assert [d["name"] for d in doc["devices"]] == [r["name"] for r in plan["schedule"]["requests"]]
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    names = [r["name"] for r in plan["schedule"]["requests"]]
    assert sorted((r["device"], r["round"]) for r in rows) == sorted(
        (n, i) for n in names for i in range(3)
    )


@pytest.mark.slow
def test_two_tier_example_runs_bitwise(
    alexnet_server: ServerProcess, cli_subprocess: Callable[..., Any], tmp_path: Path
) -> None:
    topo = rewrite("topology-2tier.yaml", {"cloud": alexnet_server.url}, tmp_path)
    out = cli_subprocess(
        "run-plan", EXAMPLES / "plan-two-tier.json", "--topology", topo,
        "-n", "3", "--check", "--threads", "1", "--json",
    )  # fmt: skip
    assert out.code == 0, out.stderr
    doc = out.json()
    assert doc["bitwise_expected"] and doc["equal_to_local"]
    assert doc["check"]["checked"] == 3 and doc["check"]["equal"] == 3
    assert {s["device"] for s in doc["stages"]} == {"edge", "cloud"}
