"""The cloud tier: a FastAPI app that finishes split inferences (Luger 2023 §3.2, §6.5).

Endpoints
    ``POST /v1/infer?model=M&cut=K[&end=E][&timings=true]``
        Body: safetensors of the tensors crossing cut ``K`` (see :mod:`.wire`). Runs nodes
        ``[K, E)`` (``E`` defaults to the node count) and answers safetensors of the
        tensors crossing cut ``E`` with metadata ``cloud_lat_start``/``cloud_lat_stop``
        (``time.time()`` seconds, eq. 3.2) and, with ``timings=true``, ``node_times``
        (JSON: Graph node -> seconds). The same two stamps come back as headers.
    ``POST /v1/stage``  The engine's relay (:mod:`.engine`): a safetensors body whose
        metadata names the plan and a stage cursor; runs this device's stages, forwards
        to the next hops of the server's own topology (``serve --topology --as``), answers
        the tensors the caller needs. A plan for another model fingerprint is a 409.
    ``GET /v1/wire``  The port of the engine's fast tier-to-tier transport
        (:mod:`.binwire`): a WebSocket server of the same process carrying ``/v1/stage``
        requests as a JSON header and one binary message per tensor; same token, store
        and bounds. ``edgesplit serve`` and :class:`BackgroundServer` start it.
    ``POST /offload``  Listing 1's JSON/base64 form (see :mod:`.wire`); an optional
        ``"end"`` field in ``input_data`` works as ``end`` above.
    ``GET /v1/models``, ``GET /healthz`` (the RTT probe), ``GET /metrics`` (Prometheus),
    ``GET /openapi.json``.

Bad input never takes the server down: unknown model -> 404, cut or shape or dtype wrong
-> 422, corrupt safetensors/base64/JSON -> 400, body over the limit -> 413, body too slow
-> 408, missing or wrong bearer token -> 401, more requests than ``max_concurrency +
max_queue`` in flight, or more body bytes held than ``max_pending_bytes`` -> 503 with
``Retry-After`` (bounded admission instead of an unbounded queue). Every error answers one
JSON shape ``{"error": ..., "field": ...}`` (:mod:`.admission`), FastAPI's own 422s and
404s included. Received bytes are parsed by safetensors or base64 only; nothing is
unpickled.

Hardening (issue 14 points 1-4): bodies arrive in full before a request takes a slot
(:class:`~.admission.BodyGate`); headers are bounded before any parse
(:func:`~.wire.check_header`); assignments and part ids are checked against the model's
node count before anything is built (:meth:`~.store.ModelStore.plan_part`); decoding,
validation, building parts and compute run in worker threads, so the event loop only
moves bytes and ``/healthz`` (liveness only, no token) answers at once.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from edgesplit.errors import (
    EdgesplitError,
    InputError,
    PartitionError,
    ShapeError,
    TransportError,
    UnknownModelError,
)
from edgesplit.models import ModelRequest
from edgesplit.runtime import binwire, decode_sessions, engine, openapi, security, wire
from edgesplit.runtime.admission import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_PENDING_BYTES,
    BodyGate,
    error_response,
)
from edgesplit.runtime.emulation import Emulation
from edgesplit.runtime.shapes import INPUT_SHAPES
from edgesplit.runtime.store import DEFAULT_CACHE_BYTES, ModelStore

SAFETENSORS_TYPE = wire.SAFETENSORS_TYPE


@dataclass(frozen=True)
class ServerConfig:
    """What one cloud server serves and how much it admits at once."""

    models: tuple[str | ModelRequest, ...] = ("alexnet",)
    device: str = "cpu"
    max_body_bytes: int = wire.DEFAULT_MAX_BYTES
    max_concurrency: int = 2
    max_queue: int = 16
    retry_after_s: int = 1
    token: str | None = None
    topology: Any = None  # edgesplit.system.topology.Topology: this server's next hops
    name: str | None = None  # the topology device this server is (serve --as)
    part_cache_bytes: int = DEFAULT_CACHE_BYTES  # serve --part-cache: built parts' LRU bound
    decode: Any = None  # decode_sessions.SessionLimits (serve --decode-*); None: defaults
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S  # serve --body-timeout: else 408
    max_pending_bytes: int | None = None  # serve --max-pending; None: max(512 MiB, max_body)
    tls: Any = None  # security.ServerTLS (serve --tls-cert/--tls-key): HTTPS and WSS

    def __post_init__(self) -> None:
        if not self.models:
            raise InputError("serve at least one model: give --model NAME")
        if self.max_concurrency < 1 or self.max_queue < 0:
            raise InputError("--max-concurrency must be >= 1 and --max-queue >= 0")
        if self.max_body_bytes < 1024:
            raise InputError("--max-body must be at least 1024 bytes")
        if not self.body_timeout_s > 0:
            raise InputError("--body-timeout must be > 0 seconds")
        if self.max_pending_bytes is not None and self.max_pending_bytes < self.max_body_bytes:
            raise InputError("--max-pending must be at least --max-body, or no body could fit")

    @property
    def pending_bytes(self) -> int:
        """The bound on body bytes held at once (arriving or being served)."""
        if self.max_pending_bytes is not None:
            return self.max_pending_bytes
        return max(DEFAULT_PENDING_BYTES, self.max_body_bytes)


class _HttpError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
        field: str = "body",
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.field = field


def _status_of(err: EdgesplitError) -> int:
    if isinstance(err, wire.FieldError):
        return err.status
    if isinstance(err, UnknownModelError):
        return 404
    if isinstance(err, ShapeError):
        return 422
    return 400


def _field_of(err: EdgesplitError) -> str:
    if isinstance(err, wire.FieldError):
        return err.field
    return "model" if isinstance(err, UnknownModelError) else "body"


#: Metric labels of the routes (the body gate counts its own answers by them too).
_ENDPOINTS = {
    "/v1/infer": "infer",
    "/v1/part": "part",
    "/v1/stage": "stage",
    "/offload": "offload",
}


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "edgesplit_requests",
            "requests by endpoint and status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "edgesplit_cloud_seconds",
            "cloud compute seconds per request",
            ["model"],
            registry=self.registry,
        )
        self.inflight = Gauge("edgesplit_inflight", "requests admitted", registry=self.registry)
        self.rejected = Counter(
            "edgesplit_overload_rejections", "503 answers", registry=self.registry
        )


def create_app(config: ServerConfig, store: ModelStore | None = None) -> FastAPI:
    """Build the app; models load here, once, unless a ``store`` is passed in."""
    store = store or ModelStore(config.models, config.device, config.part_cache_bytes)
    metrics = _Metrics()
    state: dict[str, Any] = {"inflight": 0}
    limiter = anyio.CapacityLimiter(config.max_concurrency)
    app = FastAPI(
        title="edgesplit cloud tier",
        description="Finishes split DNN inferences sent by edge agents (Luger 2023).",
        version="1",
    )

    @app.exception_handler(_HttpError)
    async def _http_error(_: Request, err: _HttpError) -> JSONResponse:
        return error_response(err.status, err.message, err.field, err.headers)

    @app.exception_handler(EdgesplitError)
    async def _edgesplit_error(_: Request, err: EdgesplitError) -> JSONResponse:
        return error_response(_status_of(err), str(err), _field_of(err))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        model = request.query_params.get("model")
        if model is not None and model not in store.names:  # unknown model: 404 first
            count(request.url.path, 404)
            try:
                store.model(model)
            except UnknownModelError as unknown:
                return error_response(404, str(unknown), "model")
        first = (err.errors() or [{}])[0]
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body")]
        field = ".".join(loc) or "body"
        count(request.url.path, 422)
        return error_response(422, f"{field}: {first.get('msg', 'invalid value')}", field)

    @app.exception_handler(StarletteHTTPException)
    async def _starlette(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return error_response(err.status_code, str(err.detail), "path", err.headers)

    def count(path: str, status: int) -> None:
        metrics.requests.labels(_ENDPOINTS.get(path, "other"), str(status)).inc()
        if status == 503:
            metrics.rejected.inc()

    # Added first, so it runs inside the auth hook: bodies are read only once authorised.
    app.add_middleware(
        BodyGate,
        max_body=config.max_body_bytes,
        max_pending=config.pending_bytes,
        timeout_s=config.body_timeout_s,
        retry_after_s=config.retry_after_s,
        count=count,
    )

    def segment(model: str, cut: int, end: int | None) -> Any:
        """Nodes [cut, end) of ``model``; ranges are checked before anything is built."""
        n = len(store.model(model).graph.nodes)
        if not 0 <= cut <= n:
            raise _HttpError(
                422, f"cut {cut} is out of range for {model!r}; use 0..{n}", field="cut"
            )
        if end is not None and not cut <= end <= n:
            raise _HttpError(
                422, f"end {end} must lie in {cut}..{n} for {model!r} at cut {cut}", field="end"
            )
        return store.segment(model, cut, end)

    def authorise(request: Request) -> None:
        if config.token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {config.token}".encode()):
            raise _HttpError(
                401,
                "missing or wrong bearer token; send 'Authorization: Bearer T'",
                field="Authorization",
            )

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > config.max_body_bytes:
            raise _HttpError(413, f"body of {declared} bytes is over {config.max_body_bytes}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > config.max_body_bytes:
                raise _HttpError(413, f"body is over the limit of {config.max_body_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def admitted(endpoint: str, request: Request, work: Any) -> Response:
        authorise(request)
        if state["inflight"] >= config.max_concurrency + config.max_queue:
            metrics.rejected.inc()
            metrics.requests.labels(endpoint, "503").inc()
            raise _HttpError(
                503,
                "server is at capacity; retry later",
                {"Retry-After": str(config.retry_after_s)},
            )
        state["inflight"] += 1
        metrics.inflight.inc()
        try:
            response: Response = await work()
        except (_HttpError, EdgesplitError) as err:
            status = err.status if isinstance(err, _HttpError) else _status_of(err)
            metrics.requests.labels(endpoint, str(status)).inc()
            raise
        finally:
            state["inflight"] -= 1
            metrics.inflight.dec()
        metrics.requests.labels(endpoint, str(response.status_code)).inc()
        return response

    @app.post("/v1/infer", summary="Finish nodes [cut, end) on a safetensors body")
    async def infer(
        request: Request, model: str, cut: int, end: int | None = None, timings: bool = False
    ) -> Response:
        async def work() -> Response:
            body = await read_body(request)
            start = time.time()

            def compute() -> bytes:  # a worker thread: checks, decoding, building, compute
                seg = segment(model, cut, end)
                tensors = wire.decode_tensors(body, config.max_body_bytes)
                shapes = wire.decode_metadata(body).get(INPUT_SHAPES)
                outs, times = store.run(seg, tensors, timings, shapes)
                meta["cloud_lat_stop"] = repr(time.time())
                if timings:
                    meta["node_times"] = json.dumps(times)
                return wire.encode_tensors(outs, meta)

            meta = {"cloud_lat_start": repr(start)}
            out = await anyio.to_thread.run_sync(compute, limiter=limiter)
            metrics.latency.labels(model).observe(float(meta["cloud_lat_stop"]) - start)
            return Response(
                out,
                media_type=SAFETENSORS_TYPE,
                headers={
                    "X-Cloud-Lat-Start": meta["cloud_lat_start"],
                    "X-Cloud-Lat-Stop": meta["cloud_lat_stop"],
                },
            )

        return await admitted("infer", request, work)

    @app.post("/v1/part", summary="Run one part of a DAG plan's assignment on a safetensors body")
    async def run_part(request: Request, model: str, assignment: str, part: int) -> Response:
        async def work() -> Response:
            body = await read_body(request)
            start = time.time()
            n = len(store.model(model).graph.nodes)  # unknown model: a 404 naming it, first
            items = assignment.split(",")
            if len(items) != n or not all(wire.is_int_text(a.strip()) for a in items):
                raise _HttpError(
                    422,
                    f"assignment must be {n} comma-separated part ids (0..{n - 1}), one per "
                    f"node of {model!r}",
                    field="assignment",
                )
            ids = tuple(int(a) for a in items)

            def compute() -> bytes:  # a worker thread: checks, decoding, building, compute
                try:
                    seg = store.plan_part(model, ids, part)
                except (InputError, PartitionError) as err:
                    raise _HttpError(422, str(err), field="assignment") from None
                tensors = wire.decode_tensors(body, config.max_body_bytes)
                shapes = wire.decode_metadata(body).get(INPUT_SHAPES)
                outs, _ = store.run(seg, tensors, False, shapes)
                meta = {"cloud_lat_start": repr(start), "cloud_lat_stop": repr(time.time())}
                return wire.encode_tensors(outs, meta)

            out = await anyio.to_thread.run_sync(compute, limiter=limiter)
            return Response(out, media_type=SAFETENSORS_TYPE)

        return await admitted("part", request, work)

    # Next hops from this server's own topology; tests may swap in in-process transports.
    # A request relays on the transport it came by: HTTP here, WebSockets in .binwire.
    app.state.hops = (
        engine.make_hops(config.topology, config.name, config.token, transport="http")
        if config.name
        else {}
    )
    # Stage requests wait on next hops and shaped links: they hold a thread, not a compute
    # slot; their compute takes one of the emulation's max_concurrency slots (.emulation).
    stage_threads = anyio.CapacityLimiter(config.max_concurrency + config.max_queue)
    app.state.emulation = Emulation.from_topology(
        config.topology, {config.name} if config.name else set(), config.max_concurrency
    )

    @app.post("/v1/stage", summary="Run a plan's stages from a cursor, relaying to next hops")
    async def run_stage(request: Request) -> Response:
        async def work() -> Response:
            body = await read_body(request)
            arrived = time.perf_counter()
            try:
                out, headers = await anyio.to_thread.run_sync(
                    lambda: engine.serve_stage(
                        store,
                        body,
                        config.name,
                        config.topology,
                        app.state.hops,
                        config.max_body_bytes,
                        app.state.emulation,
                        arrived,
                    ),
                    limiter=stage_threads,
                )
            except engine.FingerprintError as err:
                raise _HttpError(409, str(err)) from None
            except PartitionError as err:
                raise _HttpError(422, str(err)) from None
            except engine.HopFailed as err:
                failed = {engine.FAILED_HEADER: err.device}
                raise _HttpError(502, f"next hop failed: {err}", failed) from None
            except TransportError as err:
                raise _HttpError(502, f"next hop failed: {err}") from None
            return Response(out, media_type=SAFETENSORS_TYPE, headers=headers)

        return await admitted("stage", request, work)

    @app.post("/offload", summary="Luger Listing 1: JSON with a base64 tensor")
    async def offload(request: Request) -> Response:
        async def work() -> Response:
            body = await read_body(request)
            start = time.time()

            def compute() -> tuple[str, dict[str, Any]]:  # a worker thread: parse, check, run
                data = wire.offload_fields(body)
                name, sp, end = str(data["model"]), data["splitting_point"], data.get("end")
                seg = segment(name, sp, end)
                if len(seg.needs) != 1:
                    raise ShapeError(
                        f"cut {sp} of {name!r} crosses {len(seg.needs)} tensors; use /v1/infer"
                    )
                want = store.model(seg.model).graph.tensor(seg.needs[0])
                if "shape" in data and data["shape"] != list(want.shape):
                    raise _HttpError(
                        422,
                        f"field 'shape' is {data['shape']} but cut {sp} of {name!r} needs "
                        f"{list(want.shape)}",
                        field="shape",
                    )
                dtype = str(data.get("dtype", "float32"))
                tensor = wire.b64_to_tensor(
                    str(data["tensor"]), want.shape, dtype, config.max_body_bytes
                )
                return seg.model, store.run(seg, {seg.needs[0]: tensor})[0]

            model, outs = await anyio.to_thread.run_sync(compute, limiter=limiter)
            stop = time.time()
            metrics.latency.labels(model).observe(stop - start)
            return JSONResponse(
                {
                    "outputs": {
                        k: {
                            "tensor": wire.tensor_to_b64(v),
                            "shape": list(v.shape),
                            "dtype": wire.dtype_name(v.dtype),
                        }
                        for k, v in outs.items()
                    },
                    "cloud_lat_start": start,
                    "cloud_lat_stop": stop,
                }
            )

        return await admitted("offload", request, work)

    @app.get("/v1/models", summary="Served models, node counts and bytes per cut")
    async def models(request: Request) -> dict[str, Any]:
        authorise(request)
        out = []
        for name in store.names:
            g = store.model(name).graph
            out.append(
                {
                    "name": name,
                    "nodes": len(g.nodes),
                    "input_shape": list(g.tensor(g.input_names[0]).shape),
                    "cut_bytes": [c.bytes for c in g.cuts()],
                }
            )
        return {"models": out, "device": str(store.device), "part_cache": store.parts.info()}

    @app.get("/healthz", summary="Liveness; also the agent's RTT probe")
    async def healthz() -> dict[str, Any]:
        # On the loop and touching nothing: liveness only (load is in the token's /metrics).
        return {"status": "ok"}

    @app.get("/metrics", summary="Prometheus metrics")
    async def prom(request: Request) -> Response:
        authorise(request)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    binwire.mount(app, config, metrics)
    decode_sessions.mount(app, store, config, limiter)
    app.add_middleware(security.BearerAuth, token=config.token, count=count)  # before all else
    openapi.install(app, config.token is not None)
    app.state.store = store
    app.state.config = config
    return app


def check_bind(host: str, token: str | None, insecure: bool) -> None:
    """Loopback needs nothing; any other address needs a token or an explicit --insecure."""
    if host in ("127.0.0.1", "localhost", "::1") or token or insecure:
        return
    raise InputError(
        f"--host {host} exposes the server beyond this machine; give --token T "
        "(clients send 'Authorization: Bearer T') or pass --insecure"
    )


#: Seconds an idle keep-alive connection stays open. Longer than clients keep idle
#: connections (httpx expires them after 5 s, as uvicorn's own default closes them): with
#: both at 5 s, a client reusing a connection the server is closing at that instant gets a
#: ReadError on a request the server never saw (CI caught one in a burst of 200).
KEEP_ALIVE_S = 75


class BackgroundServer:
    """A real uvicorn server on a loopback port in a thread (tests, demo, benchmarks).

    ``stop()`` asks uvicorn to exit, which lets requests in flight finish first
    (uvicorn's graceful shutdown), then joins the thread.
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        import socket
        import threading

        import uvicorn

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        self.tls = getattr(app.state, "config", None) and app.state.config.tls
        config = uvicorn.Config(
            app,
            log_level="warning",
            timeout_graceful_shutdown=30,
            timeout_keep_alive=KEEP_ALIVE_S,
            lifespan="off",
            **(self.tls.uvicorn_args() if self.tls else {}),
        )
        self.server = uvicorn.Server(config)
        self.wire: binwire.WireServer | None = getattr(app.state, "wire", None)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> BackgroundServer:
        if self.wire is not None:
            self.wire.start(self.host)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise EdgesplitError(f"uvicorn did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=60)
        self._sock.close()
        if self.wire is not None:
            self.wire.stop()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    config: ServerConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    insecure: bool = False,
    wire_port: int = 0,
    ready: Callable[[], None] | None = None,
) -> None:
    """Run the cloud tier in the foreground until SIGINT/SIGTERM (graceful).

    ``wire_port``: the engine's WebSocket transport (:mod:`.binwire`); 0 takes a free port.
    ``ready`` is called once the models are loaded (the command's "serving ..." line), so a
    model that fails to load is the only line printed.
    """
    import uvicorn

    check_bind(host, config.token, insecure)
    app = create_app(config)
    if ready is not None:
        ready()
    app.state.wire.start(host, wire_port)
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="info",
            timeout_graceful_shutdown=30,
            timeout_keep_alive=KEEP_ALIVE_S,
            **(config.tls.uvicorn_args() if config.tls else {}),
        )
    finally:
        app.state.wire.stop()


class ServerProcess:
    """``edgesplit serve`` in a child process (benchmarks, fault runs): start, kill, restart."""

    def __init__(self, models: tuple[str, ...], port: int = 0, args: tuple[str, ...] = ()) -> None:
        import socket

        if port == 0:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.models, self.port, self.args = models, port, args
        self.proc: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 180.0) -> ServerProcess:
        import subprocess
        import sys

        import httpx

        argv = [sys.executable, "-m", "edgesplit.cli", "serve", "--port", str(self.port)]
        for m in self.models:
            argv += ["--model", m]
        self.proc = subprocess.Popen(
            [*argv, *self.args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EdgesplitError(f"edgesplit serve exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        self.kill()
        raise EdgesplitError(f"edgesplit serve did not answer on {self.url} in {timeout_s} s")

    def kill(self) -> None:
        """SIGKILL: the crash case, no graceful shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM: uvicorn finishes the requests in flight, then exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
