"""The engine in-process: stages of any assignment, the relay through ASGI apps, the
fingerprint 409, records, and run-plan's bad-input lines.

Oracles: every staged or relayed output is ``torch.equal`` to the unsplit model; a
record's bytes are recomputed from the graph's tensor sizes.
"""

from __future__ import annotations

import json
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from edgesplit.graph import trace
from edgesplit.plan.types import Plan
from edgesplit.runtime.engine import (
    Engine,
    HopFailed,
    HTTPStageTransport,
    StageRequest,
    StageTransport,
    link_key,
)
from edgesplit.runtime.records import RecordWriter, flatten
from edgesplit.runtime.server import ServerConfig, create_app
from edgesplit.runtime.stages import ORIGIN, build_stages, fingerprint
from edgesplit.runtime.store import ModelStore
from edgesplit.runtime.transport import ServerRejected
from edgesplit.system.topology import Topology

MODEL = "mnist_cnn"
DEVICES = ("device", "edge", "cloud")


class Residual(nn.Module):
    """Two residual blocks: each skip tensor is read by a later node than its producer's next."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.c = nn.Conv2d(4, 4, 3, padding=1)
        self.d = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.a(x))
        y = y + self.b(torch.relu(y))
        return y + self.d(torch.relu(self.c(y)))


def _topology(
    edge_url: str = "http://127.0.0.1:1", cloud_url: str = "http://127.0.0.1:2"
) -> Topology:
    return Topology.model_validate(
        {
            "devices": [
                {"name": "device", "url": "local"},
                {"name": "edge", "url": edge_url},
                {"name": "cloud", "url": cloud_url},
            ],
            "links": [
                {"a": "device", "b": "edge", "bandwidth": "1gbit", "codecs": ["none", "zstd"]},
                {
                    "a": "edge",
                    "b": "cloud",
                    "bandwidth": "1gbit",
                    "codecs": ["none", "zstd", "fp16"],
                },
            ],
        }
    )


def test_stages_split_revisits_and_keep_the_dag_exact() -> None:
    model = Residual().eval()
    x = torch.randn(1, 3, 8, 8)
    graph = trace(model, x, name="residual")
    n = len(graph.nodes)
    # device, then edge, back to the device, then the cloud: the device is visited twice.
    assignment = [0 if i < 2 else 1 if i < 4 else 0 if i < 6 else 2 for i in range(n)]
    stages = build_stages(graph, DEVICES, assignment)
    assert [s.device for s in stages.stages] == ["device", "edge", "device", "cloud"][: len(stages)]
    with torch.inference_mode():
        assert torch.equal(stages.split(x), model(x))
    # Every node is in exactly one stage, and a stage holds one device's nodes.
    names = [name for s in stages.stages for name in s.part.node_names]
    assert sorted(names) == sorted(node.name for node in graph.nodes)
    for s in stages.stages:
        assert {assignment[graph.index(m)] for m in s.part.node_names} == {DEVICES.index(s.device)}
    # Readers: each output is read by later stages only; model outputs come back to the origin.
    for s in stages.stages:
        for name, readers in s.readers.items():
            assert readers and all(r == ORIGIN or r > s.index for r in readers)
            assert (ORIGIN in readers) == (name in graph.output_names)


def test_a_contiguous_chain_gets_one_stage_per_maximal_run() -> None:
    store_graph = ModelStore((MODEL,)).model(MODEL).graph
    n = len(store_graph.nodes)
    chain = [0] * 2 + [1] * 3 + [0] * (n - 5)
    stages = build_stages(store_graph, DEVICES, chain)
    assert [s.device for s in stages.stages] == ["device", "edge", "device"]
    assert [len(s.part.node_names) for s in stages.stages] == [2, 3, n - 5]


@pytest.fixture(scope="module")
def relay() -> Iterator[dict[str, Any]]:
    """Edge and cloud apps in-process; the edge reaches the cloud through ASGI, not sockets."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    store = ModelStore((MODEL,))
    topo = _topology()
    edge = create_app(ServerConfig(models=(MODEL,), topology=topo, name="edge"), store)
    cloud = create_app(ServerConfig(models=(MODEL,), topology=topo, name="cloud"), store)
    clients = [TestClient(app, base_url="http://testserver") for app in (edge, cloud)]
    for c in clients:
        c.__enter__()
    edge.state.hops = {
        "cloud": HTTPStageTransport("edge", "cloud", "http://testserver", client=clients[1])
    }
    to_edge = HTTPStageTransport("device", "edge", "http://testserver", client=clients[0])
    try:
        yield {"store": store, "topology": topo, "to_edge": to_edge, "edge": edge}
    finally:
        for c in clients:
            c.__exit__(None, None, None)


def _engine(relay: dict[str, Any], assignment: list[int], codecs: dict[str, str] | None = None):
    store = relay["store"]
    graph = store.model(MODEL).graph
    stages = build_stages(graph, DEVICES, assignment)
    hop = relay["to_edge"]
    # The device's topology links it to the edge only: the cloud is reached through it.
    hops = {"edge": hop, "cloud": hop}
    return Engine(
        stages, MODEL, store.fingerprint(MODEL), "device", frozenset({"device"}), hops, codecs
    )


def _assignment(n: int) -> list[int]:
    """device → edge → cloud → edge → device, each run non-empty."""
    return [0 if i < 1 else 1 if i < 3 else 2 if i < 5 else 1 if i < 7 else 0 for i in range(n)]


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_relay_runs_device_edge_cloud_and_back_exactly(relay, codec) -> None:
    store = relay["store"]
    graph = store.model(MODEL).graph
    x = store.model(MODEL).inputs
    engine = _engine(relay, _assignment(len(graph.nodes)), {link_key("edge", "cloud"): codec})
    outs, record = engine.infer(x)
    with torch.inference_mode():
        ref = graph.module(*x)
    assert torch.equal(outs[graph.output_names[0]], ref)
    assert [s["device"] for s in record["stages"]] == ["device", "edge", "cloud", "edge", "device"]
    # The cloud's tensors went device → edge → cloud: no hop from the device to the cloud.
    links = [(h["src"], h["dst"]) for h in record["hops"]]
    assert links == [("device", "edge"), ("edge", "cloud")]
    assert record["hops"][1]["codec"] == codec
    for hop in record["hops"]:
        raw = sum(graph.tensor(t).nbytes for t in hop["tensors_sent"])
        assert hop["sent_raw_bytes"] == raw
        assert hop["reply_raw_bytes"] == sum(graph.tensor(t).nbytes for t in hop["tensors_back"])
        assert hop["transfer_s"] == pytest.approx(hop["round_trip_s"] - hop["remote_s"])
        assert hop["remote_s"] <= hop["round_trip_s"]
    # The edge's reply carries the last edge stage's output back, and nothing the device has.
    assert set(record["hops"][0]["tensors_sent"]).isdisjoint(record["hops"][0]["tensors_back"])
    assert set(record["tiers"]) == set(DEVICES)


def test_a_tensor_read_by_two_stages_on_one_device_crosses_once(relay) -> None:
    store = relay["store"]
    graph = store.model(MODEL).graph
    n = len(graph.nodes)
    # The edge runs node 1 and node 3, the cloud node 2 between: stage outputs and readers
    # differ, but each message names each tensor once and each tensor crosses a link once.
    engine = _engine(relay, [0] + [1] + [2] + [1] * (n - 3))
    outs, record = engine.infer(store.model(MODEL).inputs)
    crossings = [(h["src"], h["dst"], t) for h in record["hops"] for t in h["tensors_sent"]]
    assert len(crossings) == len(set(crossings))
    with torch.inference_mode():
        assert torch.equal(outs[graph.output_names[0]], graph.module(*store.model(MODEL).inputs))


def test_a_plan_for_other_weights_is_refused_with_409(relay) -> None:
    store = relay["store"]
    graph = store.model(MODEL).graph
    fp = dict(store.fingerprint(MODEL), weights="0" * 64)
    request = StageRequest(
        MODEL, DEVICES, tuple(_assignment(len(graph.nodes))), fp, 1, "edge", ("device",)
    )
    with pytest.raises(ServerRejected) as err:
        relay["to_edge"].send(request, {})
    assert err.value.status == 409
    assert "'weights'" in str(err.value) and "\n" not in str(err.value)


def test_bad_stage_requests_are_4xx_one_line(relay) -> None:
    store = relay["store"]
    graph = store.model(MODEL).graph
    fp = store.fingerprint(MODEL)
    a = tuple(_assignment(len(graph.nodes)))
    cases = [
        (
            StageRequest(MODEL, DEVICES, a, fp, 1, "cloud", ("device",)),
            400,
            "this server is 'edge'",
        ),
        (StageRequest(MODEL, DEVICES, a, fp, 99, "edge", ("device",)), 400, "stage 99"),
        (StageRequest("alexnet", DEVICES, a, fp, 1, "edge", ("device",)), 404, "alexnet"),
        (StageRequest(MODEL, DEVICES, a[:-1], fp, 1, "edge", ("device",)), 400, "per node"),
    ]
    for request, status, words in cases:
        with pytest.raises(ServerRejected) as err:
            relay["to_edge"].send(request, {})
        assert err.value.status == status, (request, str(err.value))
        assert words in str(err.value)
    # Wrong tensors: a ShapeError naming the tensor, 422.
    with pytest.raises(ServerRejected) as err:
        relay["to_edge"].send(
            StageRequest(MODEL, DEVICES, a, fp, 1, "edge", ("device",)), {"x": torch.zeros(1)}
        )
    assert err.value.status in (400, 422)


def test_records_append_and_flush_per_record(tmp_path: Path) -> None:
    rec = {
        "id": 0,
        "total_s": 0.5,
        "stages": [{"stage": 0, "device": "edge", "compute_s": 0.1}],
        "hops": [
            {
                "src": "device",
                "dst": "edge",
                "codec": "none",
                "sent_raw_bytes": 10,
                "sent_wire_bytes": 90,
                "reply_raw_bytes": 4,
                "reply_wire_bytes": 80,
                "encode_s": 0.001,
                "decode_s": 0.002,
                "round_trip_s": 0.3,
                "remote_s": 0.1,
                "transfer_s": 0.2,
            }
        ],
    }
    csv_path, jsonl = tmp_path / "r.csv", tmp_path / "r.jsonl"
    with RecordWriter(csv_path, jsonl) as w:
        w.write(rec)
        # Flushed: readable before the writer closes.
        assert json.loads(jsonl.read_text().splitlines()[0])["total_s"] == 0.5
        assert len(csv_path.read_text().splitlines()) == 2
    with RecordWriter(csv_path, jsonl) as w:
        w.write({**rec, "id": 1})
    lines = csv_path.read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("id,total_s,stage0_edge_compute_s")
    assert "hop0_device>edge_transfer_s" in flatten(rec)
    assert [json.loads(x)["id"] for x in jsonl.read_text().splitlines()] == [0, 1]


# -- run-plan's bad input -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory) -> Path:
    graph = ModelStore((MODEL,)).model(MODEL).graph
    path = tmp_path_factory.mktemp("plan") / "plan.json"
    plan = Plan(MODEL, "hand", DEVICES, tuple(_assignment(len(graph.nodes))))
    path.write_text(json.dumps(plan.to_dict()))
    return path


def _write_topology(path: Path, topo: Topology) -> Path:
    path.write_text(json.dumps(topo.model_dump(mode="json", exclude_none=True)))
    return path


def test_run_plan_bad_inputs_are_one_line(cli, assert_input_error, plan_file, tmp_path) -> None:
    out = tmp_path / "never.csv"
    good = _write_topology(tmp_path / "t.json", _topology())
    # A plan device the topology lacks.
    doc = _topology().model_dump(mode="json", exclude_none=True)
    doc["devices"] = [d for d in doc["devices"] if d["name"] != "cloud"]
    doc["links"] = doc["links"][:1]
    two = tmp_path / "two.json"
    two.write_text(json.dumps(doc))
    assert_input_error(
        cli("run-plan", plan_file, "--topology", two, "--csv", out), "'cloud'", str(two)
    )
    # A codec the link does not allow.
    assert_input_error(
        cli("run-plan", plan_file, "--topology", good, "--codec", "edge-cloud=int8", "--csv", out),
        "int8",
        "edge",
    )
    # A link to a device the topology does not name.
    doc = _topology().model_dump(mode="json", exclude_none=True)
    doc["links"][1]["b"] = "moon"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert_input_error(cli("run-plan", plan_file, "--topology", bad, "--csv", out), "moon")
    # A server that does not answer at start, with --no-failover: an error.
    dead = _write_topology(
        tmp_path / "dead.json",
        _topology(f"http://127.0.0.1:{_free_port()}", f"http://127.0.0.1:{_free_port()}"),
    )
    assert_input_error(
        cli("run-plan", plan_file, "--topology", dead, "--no-failover", "--csv", out),
        "'edge'",
        "unreachable",
    )
    assert not out.exists()


def test_unreachable_at_start_with_failover_warns_and_runs_locally(
    cli, plan_file, tmp_path
) -> None:
    dead = _write_topology(
        tmp_path / "dead.json",
        _topology(f"http://127.0.0.1:{_free_port()}", f"http://127.0.0.1:{_free_port()}"),
    )
    res = cli("run-plan", plan_file, "--topology", dead, "-n", "3", "--check", "--json")
    assert res.code == 0, res.stderr
    # Besides the progress lines (`run-plan MODEL: 3/3 requests, ...`), one warning.
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith("run-plan ")]
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "'edge'" in lines[0]
    doc = json.loads(res.stdout)
    assert doc["equal_to_local"] is True and doc["check"]["equal"] == 3
    assert doc["failover"] == {"enabled": True, "requests": 3, "devices": ["edge"]}
    for record in doc["records"]:
        assert record["failover"] is True and record["failed_device"] == "edge"
        assert record["hops"] == []
        assert {s["device"] for s in record["stages"]} == {"device"}


def test_fingerprint_records_the_model_identity() -> None:
    store = ModelStore((MODEL,))
    fp = fingerprint(store.model(MODEL).graph)
    assert fp == store.fingerprint(MODEL)
    assert fp["tracer"] == "fx" and fp["granularity"] == "layer"
    assert fp["inputs"].endswith("float32[1, 1, 28, 28]")
    # Other weights, another digest (this store's own model; no other test shares it).
    graph = store.model(MODEL).graph
    with torch.no_grad():
        next(graph.module.parameters()).add_(1.0)
    assert fingerprint(graph)["weights"] != fp["weights"]


def test_serve_topology_flags_are_checked_before_loading(cli, assert_input_error, tmp_path) -> None:
    topo = _write_topology(tmp_path / "t.json", _topology())
    assert_input_error(cli("serve", "--topology", topo), "--as")
    assert_input_error(cli("serve", "--topology", topo, "--as", "moon"), "moon")
    assert_input_error(cli("serve", "--topology", topo, "--as", "device"), "local")


def test_remote_star_takes_any_codec_and_stays_exact(cli, plan_file) -> None:
    """--remote with no URL runs every device here; --codec zstd is allowed on the star."""
    doc = cli("run-plan", plan_file, "--codec", "zstd", "--json", "-n", "2", "--check").json()
    assert doc["equal_to_local"] is True and doc["check"]["equal"] == 2
    assert [s["device"] for s in doc["records"][0]["stages"]] == [
        "device",
        "edge",
        "cloud",
        "edge",
        "device",
    ]


def test_a_lossy_codec_on_the_relay_stays_close_and_keeps_the_class(relay) -> None:
    store = relay["store"]
    graph = store.model(MODEL).graph
    x = store.model(MODEL).inputs
    engine = _engine(relay, _assignment(len(graph.nodes)), {link_key("edge", "cloud"): "fp16"})
    outs, record = engine.infer(x)
    with torch.inference_mode():
        ref = graph.module(*x)
    got = outs[graph.output_names[0]]
    assert record["hops"][1]["codec"] == "fp16"
    assert record["hops"][1]["sent_wire_bytes"] < record["hops"][1]["sent_raw_bytes"]
    assert torch.allclose(got, ref, rtol=1e-2, atol=1e-2)
    assert torch.equal(got.argmax(-1), ref.argmax(-1))
    # The edge's own topology does not allow fp16 from the device: it refuses, naming it.
    lossy_in = _engine(relay, _assignment(len(graph.nodes)), {link_key("device", "edge"): "fp16"})
    with pytest.raises(ServerRejected) as err:
        lossy_in.infer(x)
    assert err.value.status == 400 and "'fp16'" in str(err.value)


class TwoBranch(nn.Module):
    """Two convolutions of the input, added: branches that need not wait on each other."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.p = nn.Conv2d(3, 4, 3, padding=1)
        self.q = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.p(x) + self.q(x)


def test_an_acyclic_device_flow_keeps_one_stage_per_device() -> None:
    model = TwoBranch().eval()
    x = torch.randn(1, 3, 8, 8)
    graph = trace(model, x, name="two_branch")
    # p and the add on the device, q on the edge: the edge feeds the device only.
    assignment = [1 if node.name == "q" else 0 for node in graph.nodes]
    stages = build_stages(graph, DEVICES, assignment)
    assert [s.device for s in stages.stages] == ["edge", "device"]
    assert sorted(stages[1].part.node_names) == sorted(n.name for n in graph.nodes if n.name != "q")
    with torch.inference_mode():
        assert torch.equal(stages.split(x), model(x))


def test_a_device_no_link_reaches_fails_in_one_line(cli, plan_file, tmp_path) -> None:
    """A plain edge server (no --as) answers back; the device has no link to the cloud."""
    from edgesplit.runtime.server import BackgroundServer

    with BackgroundServer(create_app(ServerConfig(models=(MODEL,)))) as edge:
        topo = _write_topology(tmp_path / "t.json", _topology(edge.url))
        res = cli("run-plan", plan_file, "--topology", topo)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.code == 1 and len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ") and "'cloud'" in lines[0] and "--as" in lines[0]


# -- failover -----------------------------------------------------------------------------


class Switch:
    """The device's hop to the edge, at the transport seam: alive, it is the in-process
    edge; dead, a real HTTP transport to a loopback port nobody listens on."""

    def __init__(self, alive: StageTransport) -> None:
        self.dst = alive.dst
        self.alive_hop = alive
        self.dead_hop = HTTPStageTransport("device", "edge", f"http://127.0.0.1:{_free_port()}")
        self.alive = True
        self.probes = 0

    def _hop(self) -> StageTransport:
        return self.alive_hop if self.alive else self.dead_hop

    def send(self, stage: StageRequest, tensors: Any) -> Any:
        return self._hop().send(stage, tensors)

    def unreachable(self) -> str | None:
        self.probes += 1
        return self._hop().unreachable()

    def close(self) -> None:
        self.dead_hop.close()


def _failover_engine(relay, switch: Switch, **kw: Any) -> Engine:
    store = relay["store"]
    graph = store.model(MODEL).graph
    stages = build_stages(graph, DEVICES, _assignment(len(graph.nodes)))
    hops = {"edge": switch, "cloud": switch}
    return Engine(
        stages, MODEL, store.fingerprint(MODEL), "device", frozenset({"device"}), hops, **kw
    )


def _exact(relay, outs: dict[str, torch.Tensor], x: Any) -> bool:
    graph = relay["store"].model(MODEL).graph
    with torch.inference_mode():
        return torch.equal(outs[graph.output_names[0]], graph.module(*x))


def _inputs(relay, seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(t.shape, generator=gen) for t in relay["store"].model(MODEL).inputs)


def test_a_dead_edge_fails_over_marks_the_row_and_resumes_after_a_probe(relay) -> None:
    switch = Switch(relay["to_edge"])
    engine = _failover_engine(relay, switch, probe_every_s=0.0)
    x = _inputs(relay, 1)
    outs, record = engine.infer(x)
    assert _exact(relay, outs, x) and record["failover"] is False and record["hops"]
    switch.alive = False
    outs, record = engine.infer(x)
    assert _exact(relay, outs, x)
    assert (record["failover"], record["failed_device"], record["failover_stage"]) == (
        True,
        "edge",
        1,
    )
    # Stage 0 ran as planned; the rest ran here, each naming the device the plan gave it.
    assert [s["device"] for s in record["stages"]] == ["device"] * 5
    assert [s.get("planned") for s in record["stages"]] == [None, "edge", "cloud", "edge", "device"]
    # Still dead: the probe fails, the whole request runs here without trying the hop.
    outs, record = engine.infer(x)
    assert _exact(relay, outs, x) and record["failover_stage"] == 0 and record["hops"] == []
    assert switch.probes == 1
    switch.alive = True
    outs, record = engine.infer(x)
    assert _exact(relay, outs, x) and record["failover"] is False
    assert [(h["src"], h["dst"]) for h in record["hops"]] == [("device", "edge"), ("edge", "cloud")]
    assert engine.failovers == 2 and engine.down is None


def test_the_probe_waits_its_interval_and_never_runs_inside_a_request(relay) -> None:
    switch = Switch(relay["to_edge"])
    engine = _failover_engine(relay, switch, probe_every_s=3600.0)
    switch.alive = False
    x = _inputs(relay, 2)
    engine.infer(x)
    switch.alive = True
    for _ in range(2):
        outs, record = engine.infer(x)
        assert _exact(relay, outs, x) and record["failover"] is True and record["hops"] == []
    assert switch.probes == 0


def test_a_cloud_dying_behind_the_edge_is_named_by_the_relays_502(relay) -> None:
    edge = relay["edge"]
    saved = edge.state.hops
    dead = HTTPStageTransport("edge", "cloud", f"http://127.0.0.1:{_free_port()}")
    edge.state.hops = {"cloud": dead}
    try:
        engine = _failover_engine(relay, Switch(relay["to_edge"]))
        x = _inputs(relay, 3)
        outs, record = engine.infer(x)
        assert _exact(relay, outs, x)
        assert (record["failover"], record["failed_device"], record["failover_stage"]) == (
            True,
            "cloud",
            1,
        )
        # Fail fast instead: the 502 surfaces as the transport error naming the cloud.
        strict = _failover_engine(relay, Switch(relay["to_edge"]), failover=False)
        with pytest.raises(HopFailed) as err:
            strict.infer(x)
        assert err.value.device == "cloud" and "502" in str(err.value)
    finally:
        edge.state.hops = saved
        dead.close()
