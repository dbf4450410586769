"""Decoder LLMs across processes: decode sessions, relay, bounds and failover by replay.

Oracle: the unsplit model's own greedy generation (``unsplit_generate``: one DynamicCache,
``model.forward``); every split run must give the same token ids. A tiny randomly
initialised GPT-2 (seeded, so every process builds the same weights) stands in for a real one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from edgesplit.commands.common import model_request
from edgesplit.graph.decoder import unsplit_generate
from edgesplit.plan.decoder import kv_bytes
from edgesplit.runtime.decode import SESSION_HEADER, DecodeClient, DecodeRun, Tier
from edgesplit.runtime.decode_sessions import SessionLimits
from edgesplit.runtime.server import BackgroundServer, ServerConfig, ServerProcess, create_app
from edgesplit.runtime.stages import weights_digest
from edgesplit.runtime.store import ModelStore
from edgesplit.system.topology import Topology

MODEL = "hf:GPT2LMHeadModel"
HIDDEN, VOCAB, TOKENS = 64, 97, 32
# bos/eos ids inside the tiny vocabulary, so transformers does not warn about the config
CONFIG = [
    *("n_layer=4", f"n_embd={HIDDEN}", "n_head=4", f"vocab_size={VOCAB}", "n_positions=64"),
    *("bos_token_id=0", "eos_token_id=0"),
]
CONFIG_ARGS = [a for c in CONFIG for a in ("--model-config", c)]
CUTS = (1, 3)  # three parts: device [0,1), edge [1,3), cloud [3,4) + head


@pytest.fixture(scope="module")
def request_() -> Any:
    return model_request(MODEL, None, None, None, None, CONFIG)


@pytest.fixture(scope="module")
def store(request_: Any) -> ModelStore:
    return ModelStore((request_,))


@pytest.fixture(scope="module")
def module(request_: Any) -> torch.nn.Module:
    return request_.load()[0]


@pytest.fixture(scope="module")
def prompt() -> torch.Tensor:
    return torch.randint(0, VOCAB, (1, 8), generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def reference(module: torch.nn.Module, prompt: torch.Tensor) -> torch.Tensor:
    return unsplit_generate(module, prompt, TOKENS).tokens


def _server(store: ModelStore, request_: Any, **kw: Any) -> BackgroundServer:
    return BackgroundServer(create_app(ServerConfig(models=(request_,), **kw), store=store))


def _topology(edge: str, cloud: str) -> Topology:
    return Topology.model_validate(
        {
            "devices": [
                {"name": "device", "url": "local"},
                {"name": "edge", "url": edge},
                {"name": "cloud", "url": cloud},
            ],
            "links": [
                {"a": "device", "b": "edge", "bandwidth": "1gbit", "rtt": "1ms"},
                {"a": "edge", "b": "cloud", "bandwidth": "1gbit", "rtt": "1ms"},
            ],
        }
    )


def _hops(run: DecodeRun) -> list[dict[tuple[str, str], tuple[int, int]]]:
    """Per step: (src, dst) -> (payload bytes sent, payload bytes back)."""
    return [
        {(h["src"], h["dst"]): (h["sent_bytes"], h["back_bytes"]) for h in r.links}
        for r in run.records
    ]


def test_star_through_two_servers_equals_unsplit_greedy(
    store: ModelStore, request_: Any, module: torch.nn.Module, prompt: torch.Tensor, reference
) -> None:  # type: ignore[no-untyped-def]
    with _server(store, request_) as edge, _server(store, request_) as cloud:
        tiers = [Tier("device"), Tier("edge", edge.url), Tier("cloud", cloud.url)]
        client = DecodeClient(module, MODEL, CUTS, tiers)
        run = client.generate(prompt, TOKENS)
        client.close()
    assert torch.equal(run.tokens, reference)
    hops = _hops(run)
    # No relay (the servers have no topology): both hops go from the device.
    assert hops[0] == {
        ("device", "edge"): (8 * HIDDEN * 4,) * 2,
        ("device", "cloud"): (8 * HIDDEN * 4, 8),
    }
    hidden = HIDDEN * 4  # batch 1 x 1 token x hidden x float32
    assert all(
        h == {("device", "edge"): (hidden, hidden), ("device", "cloud"): (hidden, 8)}
        for h in hops[1:]
    )


def _drained(server: BackgroundServer, within_s: float = 20.0) -> bool:
    """True once ``server`` holds no decode session (polled, at most ``within_s``)."""
    table = server.server.config.app.state.decode_sessions
    deadline = time.monotonic() + within_s
    while len(table) and time.monotonic() < deadline:
        time.sleep(0.02)
    return len(table) == 0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _relaying_edge(
    store: ModelStore, request_: Any, cloud_url: str, **kw: Any
) -> tuple[BackgroundServer, Topology]:
    """An edge server whose own topology links it to the cloud (serve --topology --as edge)."""
    port = _free_port()
    topo = _topology(f"http://127.0.0.1:{port}", cloud_url)
    config = ServerConfig(models=(request_,), topology=topo, name="edge", **kw)
    return BackgroundServer(create_app(config, store=store), port=port), topo


def test_relay_carries_each_hidden_state_once_per_link(
    store: ModelStore, request_: Any, module: torch.nn.Module, prompt: torch.Tensor, reference
) -> None:  # type: ignore[no-untyped-def]
    with _server(store, request_) as cloud:
        edge, topo = _relaying_edge(store, request_, cloud.url)
        with edge:
            tiers = [Tier("device"), Tier("edge", edge.url), Tier("cloud", cloud.url)]
            relay = {frozenset((ln.a, ln.b)) for ln in topo.links}
            client = DecodeClient(module, MODEL, CUTS, tiers, relay=relay)
            run = client.generate(prompt, TOKENS)
            client.close()
            # The edge closes its relayed cloud session off the request's path.
            assert _drained(edge) and _drained(cloud)
    assert torch.equal(run.tokens, reference)
    hidden = HIDDEN * 4  # batch 1 x 1 token x hidden x float32
    hops = _hops(run)
    # The device sends to the edge only; the edge relays to the cloud; ids (8 B) come back.
    assert hops[0] == {("device", "edge"): (8 * hidden, 8), ("edge", "cloud"): (8 * hidden, 8)}
    assert all(
        h == {("device", "edge"): (hidden, 8), ("edge", "cloud"): (hidden, 8)} for h in hops[1:]
    )
    assert all(r.where == ("device", "edge", "cloud") and not r.rebuilt for r in run.records)


def _open_doc(module: torch.nn.Module, part: int = 1, max_len: int = 64, batch: int = 1) -> dict:
    return {
        "model": MODEL,
        "cuts": list(CUTS),
        "part": part,
        "max_len": max_len,
        "batch": batch,
        "weights": weights_digest(module),
    }


def test_sessions_are_bounded_in_count_kv_bytes_and_idle_time(
    store: ModelStore, request_: Any, module: torch.nn.Module
) -> None:
    from edgesplit.graph.decoder import describe

    per_session = kv_bytes(describe(module), 2, 64)  # part 1 holds blocks [1, 3)
    limits = SessionLimits(
        max_sessions=3, max_kv_bytes=2 * per_session + per_session // 4, ttl_s=0.5
    )
    with _server(store, request_, decode=limits) as srv, httpx.Client(base_url=srv.url) as http:

        def open_(**kw: Any) -> httpx.Response:
            return http.post("/v1/decode/open", json=_open_doc(module, **kw))

        first, second = open_(), open_()
        assert first.status_code == second.status_code == 200
        assert first.json()["kv_reserved"] == per_session and first.json()["blocks"] == [1, 3]
        over_kv = open_()  # the KV budget holds two such sessions
        assert over_kv.status_code == 429 and "KV bytes" in over_kv.json()["error"]
        assert over_kv.headers["retry-after"] == "1"
        assert open_(max_len=2).status_code == 200  # a short one still fits
        over_count = open_(max_len=2)
        assert over_count.status_code == 429 and "--decode-sessions" in over_count.json()["error"]
        too_big = open_(batch=4)  # more than the whole budget: never fits
        assert too_big.status_code == 413
        wrong = {**_open_doc(module), "weights": "0" * 64}
        assert http.post("/v1/decode/open", json=wrong).status_code == 409
        for field, value in (("cuts", ["a"]), ("cuts", [3, 1]), ("part", 5), ("max_len", 65)):
            bad = http.post("/v1/decode/open", json={**_open_doc(module), field: value})
            assert bad.status_code == 422, (field, value, bad.text)
        assert http.post("/v1/decode/open", content=b"{not json").status_code == 400

        sid = first.json()["session"]
        x = torch.zeros(1, 1, HIDDEN)
        from edgesplit.runtime import wire

        def step(session: str, tensor: torch.Tensor, auth: str | None = None) -> httpx.Response:
            headers = {SESSION_HEADER: session}
            if auth:
                headers["Authorization"] = auth
            body = wire.encode_tensors({"x": tensor})
            return http.post("/v1/decode/step", content=body, headers=headers)

        assert step(sid, x).status_code == 200
        # The id is bound to the credentials that opened it: another client gets a 404,
        # exactly like an unknown id, and cannot read or extend the session.
        foreign = step(sid, x, auth="Bearer someone-else")
        assert foreign.status_code == 404 and "unknown or expired" in foreign.json()["error"]
        assert step("A" * 32, x).status_code == 404
        assert step(sid, torch.zeros(1, 1, HIDDEN + 1)).status_code == 422  # names the shape
        assert http.post("/v1/decode/close", headers={SESSION_HEADER: sid}).status_code == 200
        assert step(sid, x).status_code == 404  # closed
        assert open_().status_code == 200  # its KV bytes are free again

        time.sleep(0.8)  # every session is now idle past the 0.5 s TTL
        assert step(second.json()["session"], x).status_code == 404
        # Expired sessions free their count and bytes: the first state again.
        assert [open_().status_code, open_().status_code] == [200, 200]
        assert open_(max_len=2).status_code == 200


def test_an_expired_session_is_rebuilt_on_the_same_tier(
    store: ModelStore, request_: Any, module: torch.nn.Module, prompt: torch.Tensor, reference
) -> None:  # type: ignore[no-untyped-def]
    limits = SessionLimits(ttl_s=0.3)
    with _server(store, request_, decode=limits) as srv:
        tiers = [Tier("device"), Tier("edge", srv.url), Tier("cloud", srv.url)]
        client = DecodeClient(module, MODEL, CUTS, tiers)

        def pause(rec: Any) -> None:
            if rec.step == 10:
                time.sleep(0.7)  # idle past the TTL: the server frees both sessions

        run = client.generate(prompt, TOKENS, on_step=pause)
        client.close()
    assert torch.equal(run.tokens, reference)
    rebuilt = [r for r in run.records if r.rebuilt]
    assert [r.step for r in rebuilt] == [11]
    assert rebuilt[0].replayed_steps == 11 and rebuilt[0].where == ("device", "edge", "cloud")


def test_a_tier_at_its_session_bound_fails_over_here_and_the_token_is_checked(
    store: ModelStore, request_: Any, module: torch.nn.Module, prompt: torch.Tensor, reference
) -> None:  # type: ignore[no-untyped-def]
    limits = SessionLimits(max_sessions=1)
    with _server(store, request_, decode=limits, token="s3cret") as srv:
        refused = httpx.post(f"{srv.url}/v1/decode/open", json=_open_doc(module))
        assert refused.status_code == 401 and "bearer token" in refused.json()["error"]
        # Both remote parts on one server that holds one session: the second open is a 429,
        # so the cloud's part runs here, marked, and the output is still the greedy one.
        tiers = [Tier("device"), Tier("edge", srv.url), Tier("cloud", srv.url)]
        client = DecodeClient(module, MODEL, CUTS, tiers, token="s3cret")
        run = client.generate(prompt, TOKENS)
        client.close()
        assert _drained(srv)
    assert torch.equal(run.tokens, reference)
    assert (run.records[0].rebuilt, run.records[0].failed_device) == (True, "cloud")
    assert all(r.where == ("device", "edge", "cloud (here)") for r in run.records)
    assert not any(r.rebuilt for r in run.records[1:])


def test_generate_topology_names_the_tiers_or_says_how(
    cli, assert_input_error, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    topo = _topology("http://127.0.0.1:9", "http://127.0.0.1:9").model_dump(mode="json")
    topo["devices"] = topo["devices"][:2]
    topo["links"] = topo["links"][:1]
    path = tmp_path / "two.json"
    path.write_text(json.dumps(topo))
    assert_input_error(cli(*GENERATE, "--topology", path), "3 parts", "--tiers")
    bad = cli(*GENERATE, "--topology", path, "--tiers", "device,edge,nowhere")
    assert_input_error(bad, "nowhere")


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, Path]]:
    """Two real `edgesplit serve` processes: the edge relays to the cloud (its topology)."""
    edge = ServerProcess((MODEL,))
    cloud = ServerProcess((MODEL,), args=tuple(CONFIG_ARGS))
    path = tmp_path_factory.mktemp("decode") / "topology.json"
    path.write_text(json.dumps(_topology(edge.url, cloud.url).model_dump(mode="json")))
    edge.args = (*CONFIG_ARGS, "--topology", str(path), "--as", "edge")
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda p: p.start(timeout_s=600), (edge, cloud)))
        yield edge, cloud, path
    finally:
        edge.kill()
        cloud.kill()


GENERATE = ["generate", MODEL, *CONFIG_ARGS, "--cuts", "1,3", "--prompt-len", "8"]


@pytest.mark.slow
def test_generate_across_two_serve_processes_equals_unsplit_greedy(cli, processes) -> None:  # type: ignore[no-untyped-def]
    _, _, path = processes
    result = cli(*GENERATE, "--tokens", str(TOKENS), "--topology", path, "--check", "--json")
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["tokens_equal_unsplit"] is True and len(doc["generated"][0]) == TOKENS
    # Per token only the new token's hidden state crosses each link, relayed edge -> cloud.
    assert doc["bytes_per_token_per_link"] == {
        "device->edge": HIDDEN * 4,
        "edge->cloud": HIDDEN * 4,
    }
    assert all(h["back_bytes"] == 8 for r in doc["records"] for h in r["links"])
    assert doc["rebuilt_steps"] == []


@pytest.mark.slow
def test_the_python_api_generates_a_saved_decoder_plan_across_the_servers(
    cli, processes, tmp_path: Path, prompt: torch.Tensor, reference
) -> None:  # type: ignore[no-untyped-def]
    from edgesplit.runtime import api

    _, _, path = processes
    plan = tmp_path / "decoder-plan.json"
    saved = cli(*GENERATE, "--tokens", "2", "--tiers", "device,edge,cloud", "--save-plan", plan)
    assert saved.code == 0, saved.stderr
    with api.decoder(plan, path) as dep:  # the model comes back from the plan's options
        run = dep.generate(prompt, TOKENS)
    assert torch.equal(run.tokens, reference)
    assert all(r.where == ("device", "edge", "cloud") for r in run.records)


@pytest.mark.slow
def test_killing_a_tier_mid_generation_rebuilds_it_and_keeps_the_greedy_output(
    cli, processes, module: torch.nn.Module, prompt: torch.Tensor, reference
) -> None:  # type: ignore[no-untyped-def]
    edge, cloud, path = processes
    tiers = [Tier("device"), Tier("edge", edge.url), Tier("cloud", cloud.url)]
    relay = {frozenset(("device", "edge")), frozenset(("edge", "cloud"))}
    client = DecodeClient(module, MODEL, CUTS, tiers, relay=relay)

    def kill(rec: Any) -> None:
        if rec.step == 10:
            edge.kill()  # SIGKILL: its part and its relay to the cloud die together

    run = client.generate(prompt, TOKENS, on_step=kill)
    client.close()
    assert torch.equal(run.tokens, reference)
    rebuilt = [r for r in run.records if r.rebuilt]
    assert [(r.step, r.failed_device, r.replayed_steps) for r in rebuilt] == [(11, "edge", 11)]
    # The edge's part runs here now; the cloud, still alive, got a new session directly.
    assert all(r.where == ("device", "edge (here)", "cloud") for r in run.records[11:])
    hidden = HIDDEN * 4
    assert all(_hops(run)[i] == {("device", "cloud"): (hidden, 8)} for i in range(11, TOKENS))

    # The edge is down from the start now: without failover one line and exit 1 ...
    failed = cli(*GENERATE, "--tokens", "4", "--topology", path, "--no-failover", "--json")
    assert failed.code == 1 and failed.stdout == ""
    lines = [ln for ln in failed.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: edge"), failed.stderr
    # ... with it (the default), a warning line and the same greedy tokens.
    done = cli(*GENERATE, "--tokens", "4", "--topology", path, "--check", "--json")
    assert done.code == 0 and done.json()["tokens_equal_unsplit"] is True
    assert "warning: tier edge failed" in done.stderr and done.json()["rebuilt_steps"] == [0]
