"""The replicated cloud tier on a private local Ray: exact results, same 4xx, clean stop."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
import torch

from edgesplit.errors import InputError
from edgesplit.graph.partition import assemble_output
from edgesplit.runtime import wire
from edgesplit.runtime.loop import cut_stages, two_tier_engine
from edgesplit.runtime.serve_ray import APP_NAME, RayOptions, RayServer
from edgesplit.runtime.server import ServerConfig, create_app
from edgesplit.runtime.store import ModelStore
from edgesplit.runtime.transport import in_process

pytestmark = [
    pytest.mark.slow,
    # Ray Serve's own pydantic models warn about deprecated Field arguments on import.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

TOKEN = "ray-test-token"
CONFIG = ServerConfig(models=("mnist_cnn",), max_body_bytes=100_000, token=TOKEN)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray_children() -> list[str]:
    """Command lines of this process's living Ray descendants (GCS, raylet, workers), via /proc."""
    parent: dict[int, int] = {}
    cmd: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":  # zombies are already dead
            parent[int(entry)] = int(fields[1])
    mine, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - mine
        mine |= frontier
    return [cmd[p] for p in mine if _is_ray(cmd.get(p, ""))]


def _is_ray(cmdline: str) -> bool:
    # Other tests leave a multiprocessing forkserver whose sys.path argument names Ray's
    # thirdparty_files; Ray's own processes are its binaries, scripts run from its package,
    # or workers named "ray::". Only the program and its script decide.
    head = " ".join(cmdline.split()[:2])
    markers = ("/ray/", "raylet", "gcs_server", "default_worker.py")
    return cmdline.startswith("ray::") or any(m in head for m in markers)


@pytest.fixture(scope="module")
def ray_server() -> Iterator[RayServer]:
    server = RayServer(CONFIG, RayOptions(replicas=2, port=_free_port(), num_cpus=2)).start()
    try:
        assert _ray_children(), "the /proc scan should see the private Ray's processes"
        yield server
    finally:
        server.stop()
    # The private Ray (GCS, raylet, workers) must be gone after stop().
    deadline = time.monotonic() + 20
    while _ray_children() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _ray_children() == []


@pytest.fixture(scope="module")
def store() -> ModelStore:
    return ModelStore(CONFIG.models)


def test_two_replicas_are_running(ray_server: RayServer) -> None:
    from ray import serve

    app = serve.status().applications[APP_NAME]
    assert app.status == "RUNNING"
    replicas = app.deployments[APP_NAME].replica_states
    assert replicas.get("RUNNING") == 2


def test_engine_through_ray_serve_equals_local_inference(
    ray_server: RayServer, store: ModelStore
) -> None:
    lm = store.model("mnist_cnn")
    engine = two_tier_engine(lm.graph, ray_server.url, model="mnist_cnn", token=TOKEN)
    torch.manual_seed(1)
    try:
        for cut in range(len(lm.graph.nodes)):  # every cut that offloads
            x = torch.randn(1, 1, 28, 28)
            engine.switch(cut_stages(lm.graph, cut))
            outs, record = engine.infer([x])
            with torch.inference_mode():
                ref = lm.graph.module(x)
            assert not record["failover"], record["failed_device"]
            assert record["hops"][0]["remote_s"] > 0
            assert torch.equal(assemble_output(lm.graph, outs), ref)
    finally:
        engine.close()


def _bad_requests() -> list[tuple[str, dict[str, object], bytes, dict[str, str]]]:
    good = wire.encode_tensors({"x": torch.zeros(1, 1, 28, 28)})
    auth = {"Authorization": f"Bearer {TOKEN}"}
    return [
        ("unknown model", {"model": "nope", "cut": 0}, good, auth),
        ("cut out of range", {"model": "mnist_cnn", "cut": 99}, good, auth),
        ("corrupt safetensors", {"model": "mnist_cnn", "cut": 0}, b"\x00garbage", auth),
        ("no token", {"model": "mnist_cnn", "cut": 0}, good, {}),
        ("wrong token", {"model": "mnist_cnn", "cut": 0}, good, {"Authorization": "Bearer x"}),
        ("body too large", {"model": "mnist_cnn", "cut": 0}, b"\x00" * 200_000, auth),
    ]


def test_bad_requests_get_the_same_answer_as_the_plain_server(
    ray_server: RayServer, store: ModelStore
) -> None:
    plain = in_process(create_app(CONFIG, store=store))
    try:
        for what, params, body, headers in _bad_requests():
            a = plain.client.post("/v1/infer", params=params, content=body, headers=headers)
            b = httpx.post(
                ray_server.url + "/v1/infer",
                params=params,  # type: ignore[arg-type]
                content=body,
                headers=headers,
                timeout=30,
            )
            assert 400 <= a.status_code < 500, what
            assert (b.status_code, b.json()) == (a.status_code, a.json()), what
    finally:
        plain.close()
    # ... and the replicas are still serving.
    assert httpx.get(ray_server.url + "/healthz", timeout=10).status_code == 200


def test_options_refuse_bad_values_and_open_binds() -> None:
    with pytest.raises(InputError, match="ray-replicas"):
        RayOptions(replicas=0)
    with pytest.raises(InputError, match="--token"):
        RayServer(ServerConfig(models=("mnist_cnn",)), RayOptions(host="0.0.0.0"))
