"""Issue 14 points 5-6: a truthful OpenAPI, the token before everything, TLS between tiers.

Oracles: the OpenAPI document is loaded by schemathesis and every status a real request
gets is one the document declares for that operation; a TLS run through two real relaying
servers is ``torch.equal`` to the unsplit model; a relay asked to go where its own topology
does not lead opens no connection (a listening trap socket sees none).
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import torch
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from edgesplit.errors import InputError, TransportError
from edgesplit.runtime import openapi, security
from edgesplit.runtime.engine import HTTPStageTransport, engine_for, make_hops
from edgesplit.runtime.server import BackgroundServer, ServerConfig, create_app
from edgesplit.runtime.stages import build_stages
from edgesplit.runtime.store import ModelStore
from edgesplit.runtime.transport import ServerRejected
from edgesplit.system.topology import Topology

MODEL = "mnist_cnn"
TOKEN = "s3cret-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEVICES = ("device", "edge", "cloud")


@pytest.fixture(scope="module")
def store() -> ModelStore:
    return ModelStore((MODEL,))


@pytest.fixture(scope="module")
def client(store: ModelStore) -> Iterator[TestClient]:
    app = create_app(ServerConfig(models=(MODEL,), token=TOKEN, max_body_bytes=4096), store)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _operations(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p, m) for p, ops in doc["paths"].items() for m in ops]


def test_every_route_but_healthz_needs_the_token_docs_included(client: TestClient) -> None:
    doc = client.get("/openapi.json", headers=AUTH).json()
    routes = [*_operations(doc), ("/openapi.json", "get"), ("/docs", "get"), ("/redoc", "get")]
    assert ("/v1/stage", "post") in routes and ("/v1/decode/step", "post") in routes
    for path, method in routes:
        if path == "/healthz":
            continue
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            r = client.request(method, path, headers=headers)
            assert r.status_code == 401, (path, headers)
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert r.json() == {"error": security.UNAUTHORISED, "field": "Authorization"}
    # Liveness only, with no token: nothing about models, plans or configuration.
    r = client.get("/healthz")
    assert r.status_code == 200 and set(r.json()) <= {"status", "inflight"}
    assert client.get("/docs", headers=AUTH).status_code == 200
    metrics = client.get("/metrics", headers=AUTH).text
    assert 'edgesplit_requests_total{endpoint="infer",status="401"} 3.0' in metrics


def test_the_token_is_checked_before_query_and_body_validation(client: TestClient) -> None:
    # Each request is bad in its query or body: without the token all are 401, not 4xx.
    for path, params, content in (
        ("/v1/infer", "cut=abc", b""),
        ("/v1/infer", "model=nope&cut=1", b"x"),
        ("/v1/part", "assignment=0,0,1000000&part=9", b""),
        ("/offload", "", b"[" * 5000),  # also over max_body_bytes (413 with the token)
        ("/v1/decode/open", "", b"{not json"),
    ):
        r = client.post(f"{path}?{params}", content=content)
        assert r.status_code == 401, (path, r.text)
        with_token = client.post(f"{path}?{params}", content=content, headers=AUTH)
        assert 400 <= with_token.status_code < 500 and with_token.status_code != 401


def test_the_openapi_document_loads_and_declares_bodies_media_and_errors(
    client: TestClient,
) -> None:
    doc = client.get("/openapi.json", headers=AUTH).json()
    schema = schemathesis.openapi.from_dict(doc)
    labels = {op.ok().label for op in schema.get_all_operations()}
    assert {"POST /v1/infer", "POST /v1/stage", "POST /offload", "GET /metrics"} <= labels
    paths = doc["paths"]
    for path in ("/v1/infer", "/v1/stage", "/v1/decode/step"):
        assert list(paths[path]["post"]["requestBody"]["content"]) == ["application/octet-stream"]
    offload = paths["/offload"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert offload["properties"]["input_data"]["required"] == ["model", "splitting_point", "tensor"]
    assert list(paths["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
    for path, method in _operations(doc):
        op = paths[path][method]
        if path == "/healthz":
            assert op["security"] == [] and "401" not in op["responses"]
            continue
        assert op["security"] == [{"bearer": []}]
        assert "WWW-Authenticate" in op["responses"]["401"]["headers"]
        for status, answer in op["responses"].items():
            if status != "200":
                ref = answer["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/Error"
    # Without a token configured, no operation claims 401 or a security scheme.
    plain = openapi.document(client.app, token=False)  # type: ignore[arg-type]
    assert all("401" not in plain["paths"][p][m]["responses"] for p, m in _operations(plain))


def test_every_status_a_real_request_gets_is_declared(client: TestClient) -> None:
    """A small cross-check: real answers of the server against the document's table."""
    doc = client.get("/openapi.json", headers=AUTH).json()
    cases = [
        ("post", "/v1/infer?model=nope&cut=1", b"", 404),
        ("post", "/v1/infer?model=mnist_cnn&cut=abc", b"", 422),
        ("post", "/v1/infer?model=mnist_cnn&cut=1", b"not safetensors", 400),
        ("post", "/v1/infer?model=mnist_cnn&cut=1", b"\0" * 5000, 413),
        ("post", "/v1/part?model=mnist_cnn&assignment=a&part=0", b"", 422),
        ("post", "/v1/stage", b"junk", 400),
        ("post", "/offload", b"[[[", 400),
        ("post", "/v1/decode/open", b"{", 400),
        ("post", "/v1/decode/step", b"", 404),
        ("post", "/v1/decode/close", b"", 404),
        ("get", "/v1/models", b"", 200),
        ("get", "/metrics", b"", 200),
        ("get", "/v1/wire", b"", 503),  # the TestClient starts no WebSocket server
        ("get", "/healthz", b"", 200),
    ]
    for method, url, body, want in cases:
        r = client.request(method, url, content=body or None, headers=AUTH)
        path = url.partition("?")[0]
        assert r.status_code == want, (url, r.status_code, r.text)
        assert want in openapi.declared(doc, path, method), (url, want)
        if want != 200:
            assert isinstance(r.json()["error"], str)
        else:
            media = next(iter(doc["paths"][path][method]["responses"]["200"]["content"]))
            assert r.headers["content-type"].startswith(media)


def test_no_operation_answers_an_undeclared_status_to_odd_bodies(client: TestClient) -> None:
    """Every operation, with no body, an oversized one and an empty JSON object."""
    doc = client.get("/openapi.json", headers=AUTH).json()
    seen = set()
    for path, method in _operations(doc):
        for body in (None, b"x" * 5000, b"{}"):
            r = client.request(method, path, content=body, headers=AUTH)
            assert r.status_code in openapi.declared(doc, path, method), (path, r.status_code)
            seen.add(r.status_code)
    assert {200, 400, 404, 413, 422} <= seen


# --- TLS ------------------------------------------------------------------------------


def _pem(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it (cert, key, ca)."""
    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer: x509.Name | None, key: Any, sign: Any, ca: bool) -> Any:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        b = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(sign.public_key()),
                critical=False,
            )
        )
        if ca:
            b = b.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
            )
        else:
            b = b.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            ).add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False
            )
        return b.sign(sign, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = build("edgesplit test CA", None, ca_key, ca_key, True)
    cert = build("127.0.0.1", ca.subject, key, ca_key, False)
    paths = tmp / "cert.pem", tmp / "key.pem", tmp / "ca.pem"
    paths[0].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths[2].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return paths


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _topology(devices: dict[str, str]) -> Topology:
    names = list(devices)
    return Topology.model_validate(
        {
            "devices": [{"name": n, "url": u} for n, u in devices.items()],
            "links": [
                {"a": a, "b": b, "bandwidth": "1gbit"}
                for a, b in zip(names, names[1:], strict=False)
            ],
        }
    )


@pytest.fixture(scope="module")
def tls_tiers(store: ModelStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Edge and cloud on HTTPS + WSS; the edge relays to the cloud; one CA trusted."""
    cert, key, ca = _pem(tmp_path_factory.mktemp("tls"))
    tls = security.ServerTLS.of(cert, key)
    security.use_ca(ca)  # before the apps: their relays' clients take the trust at start
    ports = _free_port(), _free_port()
    topo = _topology(
        {"device": "local", **{n: f"https://127.0.0.1:{p}" for n, p in zip(DEVICES[1:], ports)}}
    )
    servers = [
        BackgroundServer(
            create_app(
                ServerConfig(models=(MODEL,), topology=topo, name=n, token=TOKEN, tls=tls), store
            ),
            port=p,
        ).start()
        for n, p in zip(DEVICES[1:], ports, strict=True)
    ]
    try:
        yield {"topology": topo, "servers": servers, "ca": ca}
    finally:
        security.use_ca(None)
        for s in servers:
            # The relays' idle keep-alive TLS connections first: an open one would hold the
            # next server's graceful shutdown for asyncio's 30 s TLS close timeout.
            state = s.server.config.app.state
            for hop in {*state.hops.values(), *state.wire_hops.values()}:
                hop.close()
            s.stop()


def _stages(store: ModelStore) -> Any:
    n = len(store.model(MODEL).graph.nodes)
    return build_stages(store.model(MODEL).graph, DEVICES, [0] * 1 + [1] * 2 + [2] * (n - 3))


@pytest.mark.parametrize("transport", ["ws", "http"])
def test_a_run_over_tls_relays_through_both_tiers_and_equals_local(
    store: ModelStore, tls_tiers: Any, transport: str
) -> None:
    graph = store.model(MODEL).graph
    engine = engine_for(_stages(store), MODEL, store.fingerprint(MODEL), tls_tiers["topology"],
                        TOKEN, transport=transport, failover=False)  # fmt: skip
    x = store.model(MODEL).inputs
    with torch.inference_mode():
        ref = graph.module(*x)
    outs, rec = engine.infer(x)
    engine.close()
    assert torch.equal(outs[graph.output_names[0]], ref)
    assert {(h["src"], h["dst"]) for h in rec["hops"]} == {("device", "edge"), ("edge", "cloud")}
    assert {h.get("transport", "http") for h in rec["hops"]} == {transport}


def test_clients_verify_the_certificate_and_never_fall_back_to_plain(tls_tiers: Any) -> None:
    edge = tls_tiers["servers"][0]
    assert edge.url.startswith("https://")
    ok = httpx.get(f"{edge.url}/v1/models", headers=AUTH, verify=security.client_context())
    assert ok.status_code == 200
    security.use_ca(None)  # the system's trust store does not know the test CA
    try:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{edge.url}/healthz", verify=security.client_context())
        hop = HTTPStageTransport("device", "edge", edge.url, TOKEN)
        assert hop.unreachable() is not None  # the probe fails; it does not go on unverified
        hop.close()
    finally:
        security.use_ca(tls_tiers["ca"])
    # The WebSocket port is WSS: a plain ws:// handshake fails, wss:// with the token opens,
    # a wrong token is refused at the handshake.
    wss = f"wss://127.0.0.1:{edge.wire.port}/"
    with pytest.raises(Exception):  # noqa: B017 - a TLS server answers no plain upgrade
        connect(f"ws://127.0.0.1:{edge.wire.port}/", proxy=None, open_timeout=5)
    with connect(wss, additional_headers=AUTH, ssl=security.client_context(), proxy=None) as ws:
        assert (
            ws.request is not None and ws.request.headers["Authorization"] == AUTH["Authorization"]
        )
    with pytest.raises(InvalidStatus) as refused:
        connect(wss, additional_headers={"Authorization": "Bearer no"},
                ssl=security.client_context(), proxy=None)  # fmt: skip
    assert refused.value.response.status_code == 401


def test_edgesplit_serve_with_a_certificate_serves_https_and_wss(tmp_path: Path) -> None:
    """The CLI end to end: ``serve --tls-cert --tls-key`` answers HTTPS; /v1/wire is WSS."""
    cert, key, ca = _pem(tmp_path)
    port = _free_port()
    argv = [sys.executable, "-m", "edgesplit.cli", "serve", "--model", MODEL, "--port", str(port),
            "--token", TOKEN, "--tls-cert", str(cert), "--tls-key", str(key)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    security.use_ca(ca)
    try:
        with httpx.Client(verify=security.client_context(), headers=AUTH) as http:
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                try:
                    if http.get(f"https://127.0.0.1:{port}/healthz").status_code == 200:
                        break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline, "serve did not answer over HTTPS"
                    time.sleep(0.2)
            wire_port = http.get(f"https://127.0.0.1:{port}/v1/wire").json()["port"]
        with connect(f"wss://127.0.0.1:{wire_port}/", additional_headers=AUTH,
                     ssl=security.client_context(), proxy=None) as ws:  # fmt: skip
            assert ws.protocol.state.name == "OPEN"
        with pytest.raises(httpx.RemoteProtocolError):  # plain HTTP gets no answer
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        security.use_ca(None)
        proc.terminate()
        proc.wait(timeout=60)


def test_bad_tls_files_are_one_line_errors(
    tmp_path: Path, cli: Any, assert_input_error: Any
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    absent = tmp_path / "absent.pem"
    assert_input_error(cli("serve", "--tls-cert", junk), "--tls-key")
    assert_input_error(cli("serve", "--tls-cert", junk, "--tls-key", junk), "--tls-cert", junk)
    assert_input_error(cli("serve", "--tls-cert", absent, "--tls-key", junk), absent)
    assert_input_error(cli("serve", "--tls-ca", absent), "--tls-ca", absent)
    assert_input_error(cli("run-plan", junk, "--tls-ca", absent), "--tls-ca", absent)
    with pytest.raises(InputError, match="--tls-cert and --tls-key together"):
        security.ServerTLS.of(junk, None)
    with pytest.raises(InputError, match="--tls-cert .*cannot load"):
        security.ServerTLS.of(junk, junk)
    with pytest.raises(InputError, match="--tls-ca .*no such file"):
        security.use_ca(tmp_path / "absent.pem")


# --- next hops come from the server's own configuration ------------------------------


def test_a_client_cannot_redirect_a_relay(store: ModelStore) -> None:
    """The client's topology sends the edge's stages on to a "cloud" at a trap URL.

    The edge's own topology has no cloud: it hands the request back unrelayed, and the trap
    sees no connection.
    """
    with socket.socket() as trap:
        trap.bind(("127.0.0.1", 0))
        trap.listen(8)
        trap.settimeout(0.5)
        edge_port = _free_port()
        edge_url = f"http://127.0.0.1:{edge_port}"
        own = _topology({"device": "local", "edge": edge_url})
        app = create_app(ServerConfig(models=(MODEL,), topology=own, name="edge"), store)
        claimed = _topology(
            {
                "device": "local",
                "edge": edge_url,
                "cloud": f"http://127.0.0.1:{trap.getsockname()[1]}",
            }
        )
        with BackgroundServer(app, port=edge_port):
            for transport in ("ws", "http"):
                engine = engine_for(_stages(store), MODEL, store.fingerprint(MODEL), claimed,
                                    transport=transport, failover=False)  # fmt: skip
                with pytest.raises((ServerRejected, TransportError)) as refused:
                    engine.infer(store.model(MODEL).inputs)
                engine.close()
                assert "cloud" in str(refused.value)
        with pytest.raises(TimeoutError):
            trap.accept()  # nobody ever connected to the URL the client named


def test_a_hop_token_comes_from_the_topology_devices_token_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topo = Topology.model_validate(
        {
            "devices": [
                {"name": "edge", "url": "local"},
                {"name": "cloud", "url": "http://127.0.0.1:9", "token_env": "CLOUD_TOKEN"},
                {"name": "other", "url": "http://127.0.0.1:10"},
            ],
            "links": [
                {"a": "edge", "b": "cloud", "bandwidth": "1gbit"},
                {"a": "edge", "b": "other", "bandwidth": "1gbit"},
            ],
        }
    )
    monkeypatch.delenv("CLOUD_TOKEN", raising=False)
    with pytest.raises(InputError, match="token_env CLOUD_TOKEN is not set"):
        make_hops(topo, "edge", "own", transport="http")
    monkeypatch.setenv("CLOUD_TOKEN", "cloud-secret")
    hops = make_hops(topo, "edge", "own", transport="http")
    headers = {n: h._client.headers.get("authorization") for n, h in hops.items()}  # type: ignore[attr-defined]
    assert headers == {"cloud": "Bearer cloud-secret", "other": "Bearer own"}
    with pytest.raises(ValueError, match="token_env"):
        Topology.model_validate(
            {"devices": [{"name": "a", "url": "local", "token_env": "NOT-A-NAME"}]}
        )
