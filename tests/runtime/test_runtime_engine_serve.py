"""The engine across real processes: the shipped 3-tier resnet50 plan on two `edgesplit serve`
processes (edge and cloud, each knowing only its own topology), run through the CLI.

Oracle: `run-plan --check` compares every output with local inference by ``torch.equal``;
all processes run on this host with the same torch thread count, so bitwise equality must
hold and the run must say so. The failover test kills the edge with SIGKILL mid-run and
restarts it: every request still completes exactly, and offloading resumes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgesplit.runtime.server import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "examples" / "plan-resnet50-3tier.json"
TOPOLOGY = ROOT / "examples" / "topology-3tier.yaml"
THREADS = "2"


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[dict[str, Any]]:
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
        yield {"topology": topo, "edge": edge, "cloud": cloud}
    finally:
        edge.stop()
        cloud.stop()


@pytest.fixture
def tiers(servers) -> Path:
    return Path(servers["topology"])


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


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    # A line is written whole and flushed per record; a partial last line is not yet one.
    return [
        json.loads(line)
        for line in path.read_text().splitlines(keepends=True)
        if line.endswith("\n")
    ]


def _wait_for(run: subprocess.Popen[str], path: Path, done: Any) -> None:
    """Poll the run's JSON lines until ``done(records)`` or the run exits (no timing asserted)."""
    deadline = time.monotonic() + 300
    while run.poll() is None and not done(_records(path)) and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_of_the_edge_mid_run_fails_over_exactly_and_resumes(servers, tmp_path) -> None:
    jsonl = tmp_path / "records.jsonl"
    argv = [sys.executable, "-m", "edgesplit.cli", "run-plan", str(PLAN)]
    argv += ["--topology", str(servers["topology"]), "-n", "12", "--check", "--json"]
    argv += ["--threads", THREADS, "--jsonl", str(jsonl)]
    edge = servers["edge"]
    run = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        _wait_for(run, jsonl, lambda rs: len(rs) >= 3)
        edge.kill()  # SIGKILL: no graceful shutdown
        _wait_for(run, jsonl, lambda rs: any(r["failover"] for r in rs))
        # Hold the run while the edge restarts, so that requests remain to see it resume.
        run.send_signal(signal.SIGSTOP)
        try:
            edge.start()
        finally:
            run.send_signal(signal.SIGCONT)
        out, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        if edge.proc is None or edge.proc.poll() is not None:
            edge.start()
    assert run.returncode == 0, err
    doc = json.loads(out)
    assert doc["requests"] == 12 and doc["check"]["checked"] == 12
    assert doc["check"]["equal"] == 12 and doc["equal_to_local"] is True
    records = doc["records"]
    failed = [r for r in records if r["failover"]]
    assert failed and {r["failed_device"] for r in failed} == {"edge"}
    assert doc["failover"]["requests"] == len(failed) and doc["failover"]["devices"] == ["edge"]
    for r in failed:
        assert r["check"]["equal"] is True
        assert all(s["device"] == "device" for s in r["stages"])
    # Offloading resumed after the restart: a later row went through the edge and the cloud.
    last = max(r["id"] for r in failed)
    resumed = [r for r in records if r["id"] > last]
    assert resumed, "the run ended before the edge answered again"
    for r in resumed:
        assert {(h["src"], h["dst"]) for h in r["hops"]} == {("device", "edge"), ("edge", "cloud")}
