"""Pipelining, shaping and clocks in the engine, across two real uvicorn servers on loopback.

Oracles: every output of a pipelined run is ``torch.equal`` to the unsplit model and the
records come back one per request in request order; a shaped direction is paced for at
least eq. 4.3's ``bytes·8/bw + rtt/2`` (a lower bound, since pacing sleeps to a deadline)
and the record names who paced it; a device's clock stretches its stages by at least
the factor the topology gives. No test asserts that anything is fast.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from edgesplit.plan.types import Plan
from edgesplit.runtime.emulation import Emulation
from edgesplit.runtime.engine import HopFailed, engine_for
from edgesplit.runtime.pipeline import pipelined
from edgesplit.runtime.server import BackgroundServer, ServerConfig, ServerProcess, create_app
from edgesplit.runtime.shaping import TokenBucketShaper
from edgesplit.runtime.stages import build_stages
from edgesplit.runtime.store import ModelStore
from edgesplit.system.link import Link
from edgesplit.system.topology import Topology

MODEL = "mnist_cnn"
DEVICES = ("device", "edge", "cloud")
RATE_BPS = 8e6
RTT_S = 0.010


def _topology(edge_url: str, cloud_url: str, shaped: bool = True, **speeds: float) -> Topology:
    def dev(name: str, url: str) -> dict[str, Any]:
        extra = {"speed_factor": speeds[name]} if name in speeds else {}
        return {"name": name, "url": url, **extra}

    return Topology.model_validate(
        {
            "devices": [dev("device", "local"), dev("edge", edge_url), dev("cloud", cloud_url)],
            "links": [
                {"a": "device", "b": "edge", "bandwidth": "8mbit", "rtt": "10ms",
                 "shaping": shaped},
                {"a": "edge", "b": "cloud", "bandwidth": "1gbit"},
            ],
        }
    )  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tiers() -> Iterator[dict[str, Any]]:
    """Edge and cloud apps on real loopback sockets; the edge is 2x slower than this host.

    Each app is built with the final topology (its next hops come from it), so the ports
    are chosen first.
    """
    store = ModelStore((MODEL,))
    ports = {"edge": _free_port(), "cloud": _free_port()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    topo = _topology(urls["edge"], urls["cloud"], edge=0.5)
    apps = {
        name: create_app(ServerConfig(models=(MODEL,), topology=topo, name=name), store)
        for name in ("edge", "cloud")
    }
    with (
        BackgroundServer(apps["edge"], port=ports["edge"]),
        BackgroundServer(apps["cloud"], port=ports["cloud"]),
    ):
        yield {"store": store, "topology": topo, "apps": apps}


def _assignment(n: int) -> list[int]:
    """device (1 node) -> edge (3) -> cloud -> device (the last node)."""
    return [0] + [1] * 3 + [2] * (n - 5) + [0]


def _stages(store: ModelStore) -> Any:
    graph = store.model(MODEL).graph
    return build_stages(graph, DEVICES, _assignment(len(graph.nodes)))


def _inputs(store: ModelStore, seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(t.shape, generator=gen) for t in store.model(MODEL).inputs)


def _exact(store: ModelStore, outs: dict[str, torch.Tensor], xs: tuple[torch.Tensor, ...]) -> bool:
    graph = store.model(MODEL).graph
    with torch.inference_mode():
        return torch.equal(outs[graph.output_names[0]], graph.module(*xs))


def _engine(tiers: dict[str, Any], topo: Topology | None = None, **kw: Any) -> Any:
    store = tiers["store"]
    return engine_for(
        _stages(store), MODEL, store.fingerprint(MODEL), topo or tiers["topology"], **kw
    )


def test_concurrency_keeps_every_output_exact_one_record_each_in_order(tiers) -> None:
    store = tiers["store"]
    engine = _engine(tiers)
    inflight, most = [0], [0]
    lock = threading.Lock()

    def request(i: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        with lock:
            inflight[0] += 1
            most[0] = max(most[0], inflight[0])
        try:
            return engine.infer(_inputs(store, i))
        finally:
            with lock:
                inflight[0] -= 1

    try:
        results = list(pipelined(request, 9, k=3))
    finally:
        engine.close()
    assert [i for i, _ in results] == list(range(9))
    assert all(_exact(store, outs, _inputs(store, i)) for i, (outs, _) in results)
    assert all(len(rec["hops"]) == 2 and not rec["failover"] for _, (_, rec) in results)
    # Requests really overlapped (K=3), and never more than K at once.
    assert 1 < most[0] <= 3


def test_shaping_from_the_topology_paces_both_directions_on_both_ends(tiers) -> None:
    store = tiers["store"]
    engine = _engine(tiers)
    try:
        _, record = engine.infer(_inputs(store, 1))
    finally:
        engine.close()
    to_edge, to_cloud = record["hops"]
    assert (to_edge["dst"], to_cloud["dst"]) == ("edge", "cloud")
    link = Link.of(RATE_BPS, rtt_s=RTT_S)
    # The edge server paced the request (its own topology), the device paced the reply;
    # 1 % slack: a transport may count a message's few header bytes on one end only.
    assert to_edge["shaped"] is True
    assert to_edge["paced_out_s"] >= 0.99 * link.seconds(to_edge["sent_wire_bytes"])
    assert to_edge["paced_back_s"] >= 0.99 * link.seconds(to_edge["reply_wire_bytes"])
    assert to_edge["transfer_s"] >= to_edge["paced_out_s"] + to_edge["paced_back_s"]
    # The edge-cloud link is not shaped: nothing paced, and the record says so.
    assert to_cloud["shaped"] is False and to_cloud["paced_out_s"] is None


def test_a_receiver_that_does_not_shape_leaves_the_pacing_to_the_sender(tiers) -> None:
    store = tiers["store"]
    apps = tiers["apps"]
    saved = apps["edge"].state.emulation
    apps["edge"].state.emulation = Emulation()  # as a plain `edgesplit serve`, no topology
    engine = _engine(tiers)
    try:
        outs, record = engine.infer(_inputs(store, 2))
    finally:
        engine.close()
        apps["edge"].state.emulation = saved
    hop = record["hops"][0]
    assert _exact(store, outs, _inputs(store, 2))
    assert hop["shaped"] is True
    assert hop["paced_out_s"] >= Link.of(RATE_BPS, rtt_s=RTT_S).seconds(hop["sent_wire_bytes"])
    assert hop["transfer_s"] >= hop["paced_out_s"] + hop["paced_back_s"]


def test_clock_from_the_topology_stretches_the_devices_stages(tiers) -> None:
    store = tiers["store"]
    fast = _topology("http://x:1", "http://x:2")
    slow = _topology("http://x:1", "http://x:2", device=0.25)
    assert _engine(tiers, fast).emulation.describe("device") == {"clock_factor": 1.0}
    emu = _engine(tiers, slow).emulation
    assert emu.describe("device") == {"clock_factor": 4.0, "clock_method": "time-dilation"}
    _, wait_s, compute_s = emu.compute("device", lambda: time.sleep(0.02))
    assert compute_s >= 4 * 0.02 and wait_s >= 0
    # A clock is against the 2.6 GHz reference (run --ref-clock's default): 1.3 GHz is 2x.
    doc = fast.model_dump(mode="json", exclude_none=True)
    doc["devices"][0]["clock"] = "1.3GHz"
    clocked = Emulation.from_topology(Topology.model_validate(doc), {"device"})
    assert clocked.describe("device")["clock_factor"] == pytest.approx(2.0)
    # The edge server runs its own stages under its own clock (speed_factor 0.5).
    engine = _engine(tiers)
    try:
        _, record = engine.infer(_inputs(store, 3))
    finally:
        engine.close()
    assert record["tiers"]["edge"]["clock_factor"] == 2.0
    assert record["tiers"]["device"]["clock_factor"] == 1.0


def test_one_token_bucket_is_shared_by_the_messages_in_flight() -> None:
    link = Link.of(8e6, rtt_s=0.0)
    shaper = TokenBucketShaper(link)
    n = 50_000  # 50 ms each at 8 Mbit/s
    ends: list[float] = []
    t0 = time.perf_counter()

    def send() -> None:
        shaper.transmit(n)
        ends.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=send) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # First come, first served on one link: the last message is through after all three.
    assert max(ends) >= 3 * n * 8 / 8e6


def test_failover_holds_with_requests_in_flight(tiers) -> None:
    """The edge dies while three requests are in flight: each finishes here, exactly."""
    store = tiers["store"]
    engine = _engine(tiers)
    real = engine.hops["edge"]
    sent = [0]
    lock = threading.Lock()

    class Dying:
        dst = "edge"

        def send(self, stage: Any, tensors: Any) -> Any:
            with lock:
                sent[0] += 1
                dead = sent[0] > 3
            if dead:
                raise HopFailed("edge", "edge at loopback: connection refused")
            return real.send(stage, tensors)

        def unreachable(self) -> str | None:
            return "edge is down"

        def close(self) -> None:
            real.close()

    engine.hops = {"edge": Dying(), "cloud": engine.hops["cloud"]}
    engine.hops["cloud"] = engine.hops["edge"]
    try:
        results = list(pipelined(lambda i: engine.infer(_inputs(store, i)), 10, k=3))
    finally:
        engine.close()
    assert [i for i, _ in results] == list(range(10))
    assert all(_exact(store, outs, _inputs(store, i)) for i, (outs, _) in results)
    marked = [rec for _, (_, rec) in results if rec["failover"]]
    assert marked and all(rec["failed_device"] == "edge" for rec in marked)
    assert engine.failovers == len(marked) and engine.down == "edge"


def test_run_plan_concurrency_checks_every_output_and_writes_records_in_order(
    tiers, cli, tmp_path
) -> None:
    graph = tiers["store"].model(MODEL).graph
    plan = tmp_path / "plan.json"
    doc = Plan(MODEL, "hand", DEVICES, tuple(_assignment(len(graph.nodes)))).to_dict()
    plan.write_text(json.dumps(doc))
    topo = tmp_path / "topology.json"
    topo.write_text(json.dumps(tiers["topology"].model_dump(mode="json", exclude_none=True)))
    jsonl = tmp_path / "records.jsonl"
    args = ["run-plan", plan, "--topology", topo, "-n", "7", "--concurrency", "3"]
    result = cli(*args, "--check", "--json", "--jsonl", jsonl)
    assert result.code == 0, result.stderr
    out = json.loads(result.stdout)
    assert (out["requests"], out["concurrency"], out["check"]["equal"]) == (7, 3, 7)
    assert out["equal_to_local"] is True
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(7))
    assert all(r["hops"][0]["shaped"] for r in rows)


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines(keepends=True)
    return [json.loads(line) for line in lines if line.endswith("\n")]


@pytest.mark.slow
def test_sigkill_of_the_edge_with_three_requests_in_flight_keeps_every_output_exact(
    tmp_path,
) -> None:
    """Real `edgesplit serve` processes; the edge is SIGKILLed mid-run at --concurrency 3."""
    edge, cloud = ServerProcess((MODEL,)), ServerProcess((MODEL,))
    topo = _topology(edge.url, cloud.url)  # device-edge shaped: ~25 ms a request
    path = tmp_path / "topology.json"
    path.write_text(json.dumps(topo.model_dump(mode="json", exclude_none=True)))
    for tier, name in ((edge, "edge"), (cloud, "cloud")):
        tier.args = ("--threads", "1", "--topology", str(path), "--as", name)
    graph = ModelStore((MODEL,)).model(MODEL).graph
    plan = tmp_path / "plan.json"
    doc = Plan(MODEL, "hand", DEVICES, tuple(_assignment(len(graph.nodes)))).to_dict()
    plan.write_text(json.dumps(doc))
    jsonl = tmp_path / "records.jsonl"
    argv = [sys.executable, "-m", "edgesplit.cli", "run-plan", str(plan), "--topology", str(path)]
    argv += ["-n", "60", "--concurrency", "3", "--check", "--json", "--threads", "1"]
    argv += ["--jsonl", str(jsonl)]
    try:
        edge.start()
        cloud.start()
        run = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while run.poll() is None and len(_records(jsonl)) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        edge.kill()  # SIGKILL with requests in flight
        out, err = run.communicate(timeout=300)
    finally:
        edge.stop()
        cloud.stop()
    assert run.returncode == 0, err
    result = json.loads(out)
    assert (result["requests"], result["concurrency"]) == (60, 3)
    assert result["check"]["equal"] == 60 and result["equal_to_local"] is True
    records = result["records"]
    assert [r["id"] for r in records] == list(range(60))
    failed = [r for r in records if r["failover"]]
    assert failed and {r["failed_device"] for r in failed} == {"edge"}
    assert result["failover"]["requests"] == len(failed)
