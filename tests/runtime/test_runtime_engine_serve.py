"""The engine across real processes: the shipped 3-tier resnet50 plan on two `edgesplit serve`
processes (edge and cloud, each knowing only its own topology), run through the CLI.

Oracle: `run-plan --check` compares every output with local inference by ``torch.equal``;
all processes run on this host with the same torch thread count, so bitwise equality must
hold and the run must say so.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgesplit.runtime.server import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "examples" / "plan-resnet50-3tier.json"
TOPOLOGY = ROOT / "examples" / "topology-3tier.yaml"
THREADS = "2"


@pytest.fixture(scope="module")
def tiers(tmp_path_factory) -> Iterator[Path]:
    """Two uvicorn processes on free loopback ports; the topology's URLs rewritten to them."""
    edge, cloud = ServerProcess(("resnet50",)), ServerProcess(("resnet50",))
    text = TOPOLOGY.read_text()
    text = text.replace("http://127.0.0.1:8101", edge.url).replace(
        "http://127.0.0.1:8102", cloud.url
    )
    topo = tmp_path_factory.mktemp("topo") / "topology.yaml"
    topo.write_text(text)
    edge.args = ("--threads", THREADS, "--topology", str(topo), "--as", "edge")
    cloud.args = ("--threads", THREADS, "--topology", str(topo), "--as", "cloud")
    try:
        edge.start()
        cloud.start()
        yield topo
    finally:
        edge.stop()
        cloud.stop()


@pytest.mark.slow
def test_shipped_plan_relays_device_edge_cloud_bitwise_equal(tiers, tmp_path) -> None:
    jsonl = tmp_path / "records.jsonl"
    argv = [sys.executable, "-m", "edgesplit.cli", "run-plan", str(PLAN), "--topology", str(tiers)]
    argv += ["-n", "3", "--check", "--json", "--threads", THREADS, "--jsonl", str(jsonl)]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["requests"] == 3
    assert {t["threads"] for t in doc["tiers"].values()} == {int(THREADS)}
    assert doc["bitwise_expected"] is True
    assert doc["check"]["checked"] == 3
    assert all(r["check"]["equal"] for r in doc["records"])
    assert doc["equal_to_local"] is True
    # The edge forwarded to the cloud itself; the device never sent to the cloud.
    for record in doc["records"]:
        assert {(h["src"], h["dst"]) for h in record["hops"]} == {
            ("device", "edge"),
            ("edge", "cloud"),
        }
        assert {s["device"] for s in record["stages"]} == {"device", "edge", "cloud"}
    # One JSON line per request, written as the run went.
    assert [json.loads(line)["id"] for line in jsonl.read_text().splitlines()] == [0, 1, 2]
