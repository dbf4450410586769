"""``edgesplit run`` on the engine: equal to local, Table 6.1 rows, retries and failover."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from edgesplit.errors import InputError
from edgesplit.runtime.clock import ClockEmulator
from edgesplit.runtime.conditions import ConditionSchedule
from edgesplit.runtime.engine import HopFailed, HTTPStageTransport, StageReply, StageRequest
from edgesplit.runtime.loop import RetryingHop, RunOptions, build_run
from edgesplit.runtime.measure import COLUMNS, RowContext, comm_latency, from_record
from edgesplit.runtime.server import BackgroundServer, ServerConfig, create_app
from edgesplit.runtime.stages import build_stages, fingerprint

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def serve_subprocess() -> Iterator[str]:
    """A real ``edgesplit serve`` process on a free loopback port."""
    port = free_port()
    exe = Path(sys.executable).with_name("edgesplit")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [str(exe), "serve", "--model", "mnist_cnn", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"edgesplit serve did not start on {url}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_run_cli_against_a_serve_process_equals_local(cli, serve_subprocess, tmp_path) -> None:  # type: ignore[no-untyped-def]
    csv_path = tmp_path / "r.csv"
    res = cli(
        "run", "mnist_cnn", "--server", serve_subprocess, "-n", "5", "--check", "--json",
        "--schedule", str(EXAMPLES / "conditions-requests.yaml"), "--csv", str(csv_path),
    )  # fmt: skip
    doc = res.json()
    assert res.returncode == 0
    assert doc["requests"] == 5 and doc["mismatches"] == 0 and doc["fallbacks"] == 0
    with csv_path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0])[:8] == ["id", "datetime", "start", "stop", "size", "SP", "BW", "CS"]
    assert [int(r["id"]) for r in rows] == list(range(5))
    for r in rows:
        assert r["correct"] == "True"
        f = {k: float(r[k]) for k in ("edge_lat", "cloud_lat", "overall_lat", "rtt", "BW")}
        # Eq. 3.3 recomputed from the row's own columns (an independent evaluator).
        expected = comm_latency(
            f["overall_lat"], f["cloud_lat"], f["edge_lat"], f["rtt"],
            int(r["response_size"]), f["BW"],
        )  # fmt: skip
        assert float(r["comm_lat"]) == pytest.approx(expected)
        assert f["overall_lat"] >= f["edge_lat"] + f["cloud_lat"]
        assert float(r["stop"]) - float(r["start"]) == pytest.approx(f["overall_lat"], abs=1e-5)


def test_unreachable_server_fails_fast_without_failover(cli, assert_input_error) -> None:  # type: ignore[no-untyped-def]
    url = f"http://127.0.0.1:{free_port()}"
    res = cli("run", "mnist_cnn", "--server", url, "--no-failover", "-n", "1")
    assert "unreachable" in assert_input_error(res, "--no-failover")


def test_unreachable_server_runs_locally_with_failover(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"http://127.0.0.1:{free_port()}"
    res = cli(
        "run", "mnist_cnn", "--server", url, "-n", "2", "--cut", "3", "--check", "--json",
        "--csv", str(tmp_path / "r.csv"),
    )  # fmt: skip
    doc = res.json()
    assert doc["requests"] == 2 and doc["fallbacks"] == 2 and doc["mismatches"] == 0


def test_row_from_an_engine_record_follows_eq_3_1_to_3_4() -> None:
    record = {
        "total_s": 0.5,
        "failover": False,
        "stages": [
            {"stage": 0, "device": "edge", "compute_s": 0.1},
            {"stage": 1, "device": "cloud", "compute_s": 0.15},
        ],
        "hops": [
            {
                "src": "edge",
                "dst": "cloud",
                "sent_wire_bytes": 1000,
                "reply_wire_bytes": 250,
                "remote_s": 0.2,
                "transfer_s": 0.19,
                "retries": 1,
            }
        ],
    }
    ctx = RowContext(0, "now", 100.0, 4, 2.0, 0.04, 1.5, "m", "time-dilation")
    m = from_record(record, "edge", ctx)
    assert (m.edge_lat, m.cloud_lat, m.overall_lat) == (0.1, 0.2, 0.5)
    assert m.comm_lat == pytest.approx(0.5 - 0.2 - 0.1 - 0.02 - 250 * 8 / 2e6)
    assert (m.size, m.response_size, m.retries, m.SP, m.stop) == (1000, 250, 1, 4, 100.5)
    assert not m.fallback and m.correct is None
    failed = {**record, "failover": True, "failed_device": "cloud", "hops": []}
    failed["stages"] = [
        {"stage": 0, "device": "edge", "compute_s": 0.1},
        {"stage": 1, "device": "edge", "planned": "cloud", "compute_s": 0.3},
    ]
    f = from_record(failed, "edge", ctx)
    assert f.fallback and (f.edge_lat, f.cloud_lat, f.comm_lat, f.size) == (0.1, 0.3, 0.0, 0)
    assert f.error == "cloud"
    assert COLUMNS[:8] == ("id", "datetime", "start", "stop", "size", "SP", "BW", "CS")


class Flaky:
    """A stage transport whose first ``fails`` sends fail like a dead tier."""

    def __init__(self, inner: HTTPStageTransport, fails: int) -> None:
        self.inner, self.dst, self.fails, self.calls = inner, inner.dst, fails, 0

    def send(self, stage: StageRequest, tensors: Mapping[str, torch.Tensor]) -> StageReply:
        self.calls += 1
        if self.calls <= self.fails:
            raise HopFailed(self.dst, "connection refused")
        return self.inner.send(stage, tensors)

    def unreachable(self) -> str | None:
        return None

    def close(self) -> None:
        self.inner.close()


def test_retries_then_success_and_exhausted_retries(live, store) -> None:  # type: ignore[no-untyped-def]
    graph = store.model("mnist_cnn").graph
    stages = build_stages(graph, ("edge", "cloud"), [0] * 3 + [1] * (len(graph.nodes) - 3))
    request = StageRequest(
        "mnist_cnn", stages.devices, stages.assignment, fingerprint(graph), 1, "cloud", ("edge",)
    )
    x = torch.randn(1, 1, 28, 28)
    with torch.inference_mode():
        have = stages[0].part({graph.input_names[0]: x})
    flaky = Flaky(HTTPStageTransport("edge", "cloud", live.url), 2)
    reply = RetryingHop(flaky, retries=2, backoff_s=0).send(request, have)
    assert reply.hop["retries"] == 2 and flaky.calls == 3
    with torch.inference_mode():
        assert torch.equal(reply.tensors[graph.output_names[0]], graph.module(x))
    flaky.calls, flaky.fails = 0, 5
    with pytest.raises(HopFailed):
        RetryingHop(flaky, retries=1, backoff_s=0).send(request, have)
    assert flaky.calls == 2
    with pytest.raises(InputError, match="--retries"):
        RetryingHop(flaky, retries=-1)
    flaky.close()


@pytest.mark.slow
def test_server_killed_and_restarted_every_result_exact(store) -> None:  # type: ignore[no-untyped-def]
    """Kill uvicorn mid-run, restart it on the same port: rows marked, results exact."""
    graph = store.model("mnist_cnn").graph
    app = create_app(ServerConfig(models=("mnist_cnn",)), store=store)
    server = BackgroundServer(app).start()
    port = server.port
    opts = RunOptions(
        model="mnist_cnn",
        schedule=ConditionSchedule.constant(1000.0, 0.0, 2.6),
        server=server.url,
        fixed_cut=3,
        retries=1,
        timeout_s=2.0,
        check=True,
        shape=False,
    )
    parts = build_run(opts, graph=graph, seconds=np.full(len(graph.nodes), 1e-3))
    parts.engine.probe_every_s = 0.0
    rows = []
    try:
        for i in range(12):
            if i == 4:
                server.stop()
            if i == 8:
                server = BackgroundServer(app, port=port).start()
            step = parts.session.step()
            x = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(i))
            with torch.inference_mode():
                assert torch.equal(step.output, graph.module(x))
            rows.append(step.measurement)
    finally:
        parts.close()
        server.stop()
    assert [m.fallback for m in rows] == [False] * 4 + [True] * 4 + [False] * 4
    assert all(m.correct for m in rows) and [m.id for m in rows] == list(range(12))
    assert {m.error for m in rows if m.fallback} == {"cloud"}


def test_clock_dilation_stretches_only_when_slower() -> None:
    clock = ClockEmulator(ref_ghz=2.0, clock_ghz=1.0)
    assert clock.factor == 2.0 and not clock.clamped
    assert clock.run(lambda: 7) == 7
    clock.set(3.0)
    assert clock.factor == 1.0 and clock.clamped
    assert clock.method == "time-dilation"
