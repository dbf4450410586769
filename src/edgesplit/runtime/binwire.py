"""The engine's fast tier-to-tier transport: WebSocket messages, one per tensor.

Issue 13 point 2, chosen by measurement (``benchmarks/bench_runtime_hop.py``, docs/runtime.md
"Transport"). Every ``edgesplit serve`` runs, beside its HTTP app, a WebSocket server of
the ``websockets`` library (its own asyncio server, on a thread of the same process, on a
second port: ``serve --wire-port``, by default a free one). ``GET /v1/wire`` on the HTTP
port names that port, so a topology keeps one URL per device. RFC 6455 gives the message
boundaries: this module writes no framing of its own.

One stage request (:class:`~edgesplit.runtime.engine.StageRequest`) on a persistent connection
    1. a text message, the JSON header::

         {"id": 7, "stage": "<StageRequest.to_json()>", "meta": {<codec metadata>},
          "tensors": [{"name": "x", "dtype": "float32", "shape": [1, 64]}]}

    2. one binary message per tensor in the header's order: its raw C-order bytes
       (little-endian, as torch stores them), sent from the tensor's own memory (a
       ``memoryview``, never joined into one blob).

    The reply: ``{"id", "ok": true, "report", "processing_s", "encode_s", "meta",
    "tensors"}`` then one binary message per tensor; or ``{"id", "ok": false, "status",
    "error", "failed_device"}`` with the HTTP status codes of ``POST /v1/stage`` (400, 404,
    409, 413, 422, 500, 502, 503). ``processing_s`` is the server's own duration from the
    last frame's arrival to the reply's frames, so the sender's transfer time is its round
    trip minus it (Luger 2023 eq. 3.1–3.4, one clock per machine, as on HTTP).

Codecs: a link's codec (:mod:`edgesplit.system.codecs`) packs the tensors before they become
frames; its metadata travels in ``meta`` and the reply comes back under the reply link's codec.

Safety (issue 14 keeps these): the bearer token of the HTTP app is checked at the handshake
(401 otherwise); at most :data:`MAX_CONNECTIONS` connections (503 beyond); every message is
bounded by ``--max-body`` in the library (a bigger one closes the connection with 1009, which
the client reports as 413) and the header's declared total is checked against it before any
frame is used (413 answer); dtypes, shapes and frame lengths are checked, and tensors are
``torch.frombuffer`` over the received bytes, never unpickled. Decoding, compute and encoding
run on worker threads (at most ``max_concurrency + max_queue`` requests admitted, 503
beyond), so the event loop only moves messages. A refused request's frames are skipped up to
the next header and the connection keeps serving.

Complexity: O(total tensor bytes) per request; the library's masking and buffering are the
only copies. A tensor over :data:`FRAGMENT` bytes goes as one message in fragments.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import socket
import threading
import time
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import torch

from edgesplit.errors import (
    EdgesplitError,
    InputError,
    PartitionError,
    ShapeError,
    TransportError,
    UnknownModelError,
)
from edgesplit.runtime import security, wire
from edgesplit.runtime.engine import (
    FingerprintError,
    HopFailed,
    HTTPStageTransport,
    StageReply,
    StageRequest,
    _raw_bytes,
    continue_stage,
    link_key,
    make_hops,
    open_stage,
)
from edgesplit.runtime.transport import ServerRejected
from edgesplit.system import codecs

#: The HTTP route that names the WebSocket port.
DISCOVERY = "/v1/wire"

#: Bound on one JSON header (an assignment of 100k nodes fits), on the tensors per message
#: and on each tensor's rank.
MAX_HEADER_BYTES = 1024 * 1024
MAX_TENSORS = 1024
MAX_RANK = 16

#: Headers longer than this are parsed on a worker thread, not on the event loop.
INLINE_HEADER = 64 * 1024

#: Open connections one server accepts at once.
MAX_CONNECTIONS = 64

#: Frames up to this size get their own memory; larger ones are used in place.
COPY_BELOW = 64 * 1024

#: Fragment size of a larger tensor's message (the library's continuation frames): the
#: receiver reads one while the sender masks the next (docs/runtime.md "Transport").
FRAGMENT = 256 * 1024


def fragments(buf: memoryview) -> memoryview | list[memoryview]:
    """``buf`` as one message's payload: itself, or its slices of :data:`FRAGMENT` bytes."""
    if buf.nbytes <= FRAGMENT:
        return buf
    flat = buf.cast("B")
    return [flat[i : i + FRAGMENT] for i in range(0, flat.nbytes, FRAGMENT)]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (uvicorn's own choice), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def bearer_ok(given: str | None, token: str | None) -> bool:
    """Whether an ``Authorization`` header value carries ``token`` (always, without one)."""
    if token is None:
        return True
    return hmac.compare_digest((given or "").encode(), f"Bearer {token}".encode())


@dataclass(frozen=True)
class TensorSpec:
    """One tensor's header entry, validated: its bytes follow in the next binary message."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        numel = 1
        for d in self.shape:
            numel *= d
        return numel * wire.DTYPES[self.dtype].itemsize


def to_frames(
    tensors: Mapping[str, torch.Tensor],
) -> tuple[list[dict[str, Any]], list[memoryview]]:
    """Header entries and one buffer per tensor, viewing the (contiguous CPU) tensor memory."""
    specs, buffers = [], []
    for name, t in tensors.items():
        dtype = wire.dtype_name(t.dtype)
        if dtype not in wire.DTYPES:
            raise InputError(f"tensor {name!r} has dtype {dtype}; send one of {list(wire.DTYPES)}")
        flat = t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
        specs.append({"name": name, "dtype": dtype, "shape": list(t.shape)})
        buffers.append(memoryview(flat.numpy()))  # type: ignore[arg-type]
    return specs, buffers


def parse_specs(entries: object, max_bytes: int) -> list[TensorSpec]:
    """Validate a header's ``tensors`` list; the total is bounded before anything is built."""
    if not isinstance(entries, list) or len(entries) > MAX_TENSORS:
        raise InputError(f"field 'tensors' must be a list of at most {MAX_TENSORS} entries")
    specs, total, seen = [], 0, set()
    for i, entry in enumerate(entries):
        field = f"tensors[{i}]"
        if not isinstance(entry, dict):
            raise InputError(f"field '{field}' must be an object with name, dtype and shape")
        name, dtype, shape = entry.get("name"), entry.get("dtype"), entry.get("shape")
        if not isinstance(name, str) or not name or name in seen:
            raise InputError(f"field '{field}.name' must be a non-empty, unique string")
        if dtype not in wire.DTYPES:
            raise InputError(f"field '{field}.dtype' is {dtype!r}; use one of {list(wire.DTYPES)}")
        if (
            not isinstance(shape, list)
            or len(shape) > MAX_RANK
            or not all(type(d) is int and d >= 0 for d in shape)
        ):
            raise InputError(
                f"field '{field}.shape' must be a list of at most {MAX_RANK} non-negative ints"
            )
        spec = TensorSpec(name, str(dtype), tuple(shape))
        total += spec.nbytes
        if total > max_bytes:
            raise TooLarge(
                f"field '{field}.shape' takes the message over the limit of {max_bytes} bytes; "
                "raise the server's --max-body or send less"
            )
        seen.add(name)
        specs.append(spec)
    return specs


class TooLarge(InputError):
    """A message declares more bytes than the receiver admits (status 413)."""


def from_frame(spec: TensorSpec, data: bytes) -> torch.Tensor:
    """The tensor over one received binary message; its length must match the header."""
    if len(data) != spec.nbytes:
        raise InputError(
            f"frame of tensor {spec.name!r} has {len(data)} bytes but its header entry "
            f"({spec.dtype}{list(spec.shape)}) needs {spec.nbytes}"
        )
    dtype = wire.DTYPES[spec.dtype]
    if not data:
        return torch.empty(spec.shape, dtype=dtype)
    if len(data) <= COPY_BELOW:
        # Small bytes objects may be shared (CPython caches 1-byte ones), and a part may
        # write its input in place: these get their own memory, for a few microseconds.
        return torch.frombuffer(bytearray(data), dtype=dtype).reshape(spec.shape)
    with warnings.catch_warnings():
        # A large received message belongs to this request alone: the tensor may own it.
        warnings.simplefilter("ignore", UserWarning)
        return torch.frombuffer(data, dtype=dtype).reshape(spec.shape)


def parse_header(text: str) -> dict[str, Any]:
    """The JSON header of one message, bounded; a JSON object."""
    if len(text) > MAX_HEADER_BYTES:
        raise InputError(f"header has {len(text)} characters, over {MAX_HEADER_BYTES}")
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise InputError(f"header is not valid JSON ({err})") from None
    if not isinstance(doc, dict):
        raise InputError("header must be a JSON object")
    return doc


def meta_field(doc: Mapping[str, Any]) -> dict[str, str]:
    """The header's ``meta`` strings: a wire codec's metadata (:mod:`edgesplit.system.codecs`)."""
    meta = doc.get("meta") or {}
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        raise InputError("field 'meta' must be an object of strings (a codec's metadata)")
    return meta


def _status(err: Exception) -> int:
    """The HTTP status ``POST /v1/stage`` answers for ``err``."""
    if isinstance(err, TooLarge):
        return 413
    if isinstance(err, FingerprintError):
        return 409
    if isinstance(err, UnknownModelError):
        return 404
    if isinstance(err, TransportError):  # a next hop of this relay failed
        return 502
    if isinstance(err, ShapeError | PartitionError):
        return 422
    return 400 if isinstance(err, EdgesplitError) else 500


class WireServer:
    """The WebSocket side of one server app: its own event loop on a thread, one port.

    ``app`` is the HTTP app (:func:`edgesplit.runtime.server.create_app`): this server uses
    its store, config (token, ``max_body_bytes``, ``max_concurrency``, ``max_queue``, the
    device name) and emulation; its next hops are ``app.state.wire_hops`` (WebSockets),
    read per request.
    """

    def __init__(self, app: Any, config: Any, metrics: Any) -> None:
        self.app, self.config, self.metrics = app, config, metrics
        self.max_bytes = int(config.max_body_bytes)
        self.admit = int(config.max_concurrency) + int(config.max_queue)
        self.port: int | None = None
        self._inflight = 0
        self._connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._stopped: asyncio.Event | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> WireServer:
        """Bind ``host:port`` (0: a free port) and serve on a thread; returns self."""
        from websockets.asyncio.server import serve

        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            sock.close()
            raise InputError(f"--wire-port {port}: cannot bind {host}:{port} ({err})") from None
        sock.listen(128)
        self.port = int(sock.getsockname()[1])
        self._pool = ThreadPoolExecutor(self.admit, thread_name_prefix="edgesplit-wire")
        loop = self._loop = new_event_loop()
        ready = threading.Event()

        async def main() -> None:
            self._stopped = asyncio.Event()
            async with serve(
                self._session,
                sock=sock,
                max_size=self.max_bytes + MAX_HEADER_BYTES,
                compression=None,
                process_request=self._handshake,
                ping_interval=None,
                ssl=self.config.tls.context() if getattr(self.config, "tls", None) else None,
            ):
                ready.set()
                await self._stopped.wait()

        self._thread = threading.Thread(
            target=loop.run_until_complete, args=(main(),), name="edgesplit-wire", daemon=True
        )
        self._thread.start()
        ready.wait(timeout=30)
        return self

    def stop(self) -> None:
        """Close the port and every connection, then end the thread."""
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._loop = self._thread = self._pool = None
        self.port = None

    def _handshake(self, connection: Any, request: Any) -> Any:
        if not bearer_ok(request.headers.get("Authorization"), self.config.token):
            return connection.respond(
                401, "missing or wrong bearer token; send 'Authorization: Bearer T'\n"
            )
        if self._connections >= MAX_CONNECTIONS:
            return connection.respond(503, f"over {MAX_CONNECTIONS} connections; retry later\n")
        return None

    async def _session(self, conn: Any) -> None:
        """One connection: headers and their frames in turn, answered in order."""
        from websockets.exceptions import ConnectionClosed

        sock = conn.transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._connections += 1
        pending: str | None = None
        try:
            while True:
                text = pending if pending is not None else await _next_text(conn)
                pending = None
                doc: dict[str, Any] = {}
                try:
                    if len(text) > INLINE_HEADER:  # a long parse never holds the loop
                        assert self._loop is not None
                        doc = await self._loop.run_in_executor(self._pool, parse_header, text)
                    else:
                        doc = parse_header(text)
                    specs = parse_specs(doc.get("tensors"), self.max_bytes)
                except InputError as err:
                    await self._refuse(conn, doc.get("id"), err)  # its frames are skipped
                    continue
                frames: list[bytes] = []
                while len(frames) < len(specs):
                    msg = await conn.recv()
                    if isinstance(msg, str):
                        pending = msg
                        break
                    frames.append(msg)
                if pending is not None:
                    short = InputError(
                        f"field 'tensors' declares {len(specs)} tensor frames but "
                        f"{len(frames)} came before the next header"
                    )
                    await self._refuse(conn, doc.get("id"), short)
                    continue
                await self._answer(conn, doc, specs, frames)
        except ConnectionClosed:
            return
        finally:
            self._connections -= 1

    async def _answer(
        self, conn: Any, doc: dict[str, Any], specs: list[TensorSpec], frames: list[bytes]
    ) -> None:
        if self._inflight >= self.admit:
            self.metrics.rejected.inc()
            await self._refuse(conn, doc.get("id"), Busy("server is at capacity; retry later"))
            return
        self._inflight += 1
        self.metrics.inflight.inc()
        t0 = time.perf_counter()
        try:
            assert self._loop is not None
            reply, buffers = await self._loop.run_in_executor(
                self._pool, self._work, doc, specs, frames, t0
            )
        except Exception as err:  # every fault is an answer; the connection lives on
            await self._refuse(conn, doc.get("id"), err)
            return
        finally:
            self._inflight -= 1
            self.metrics.inflight.dec()
        self.metrics.requests.labels("wire", "200").inc()
        await conn.send(reply)
        for buf in buffers:
            await conn.send(fragments(buf))

    def _work(
        self, doc: dict[str, Any], specs: list[TensorSpec], frames: list[bytes], t0: float
    ) -> tuple[str, list[memoryview]]:
        """A worker thread's part: check, decode, walk on (relaying), encode the reply."""
        state, config = self.app.state, self.config
        control = doc.get("stage")
        if not isinstance(control, str):
            raise InputError("field 'stage' must be the stage request's JSON text")
        request = StageRequest.from_json(control)
        emu = state.emulation
        size = len(control) + sum(len(f) for f in frames)
        paced_in_s = emu.receive(request.stack[-1] if request.stack else None, size, t0)
        t0 = time.perf_counter() if paced_in_s is not None else t0
        stages, target = open_stage(state.store, request, config.name, config.topology)
        raw = {s.name: from_frame(s, f) for s, f in zip(specs, frames, strict=True)}
        received = codecs.unpack(raw, meta_field(doc), self.max_bytes)
        decode_s = time.perf_counter() - t0
        back, codec, report = continue_stage(
            state.store, stages, request, target, received, state.wire_hops, emu
        )
        t1 = time.perf_counter()
        packed, out_meta = codecs.pack(back, codec)
        out_specs, buffers = to_frames(packed)
        t2 = time.perf_counter()
        report = {**report, "decode_s": decode_s, "paced_in_s": paced_in_s}
        reply = {"id": doc.get("id"), "ok": True, "report": report, "meta": out_meta}
        reply |= {"tensors": out_specs, "processing_s": t2 - t0, "encode_s": t2 - t1}
        return json.dumps(reply), buffers

    async def _refuse(self, conn: Any, request_id: object, err: Exception) -> None:
        status = 503 if isinstance(err, Busy) else _status(err)
        message = str(err) if status != 500 else f"{type(err).__name__}: {err}"
        if status == 502 and not message.startswith("next hop failed"):
            message = f"next hop failed: {message}"
        failed = err.device if isinstance(err, HopFailed) else None
        doc = {"id": request_id, "ok": False, "status": status, "error": message}
        self.metrics.requests.labels("wire", str(status)).inc()
        await conn.send(json.dumps({**doc, "failed_device": failed}))


class Busy(Exception):
    """More requests than ``max_concurrency + max_queue`` in flight (503)."""


async def _next_text(conn: Any) -> str:
    """The next text message; binary messages before it belong to a refused request."""
    while True:
        msg = await conn.recv()
        if isinstance(msg, str):
            return msg


def mount(app: Any, config: Any, metrics: Any) -> WireServer:
    """Add ``GET /v1/wire`` to the HTTP app and keep an unstarted :class:`WireServer`.

    The server starts with :meth:`WireServer.start` (``edgesplit serve`` and
    ``BackgroundServer`` do it); until then ``/v1/wire`` answers 503, and the engine's
    client falls back to HTTP for that hop.
    """
    from starlette.responses import JSONResponse

    server = WireServer(app, config, metrics)
    app.state.wire = server
    # Requests that came by WebSocket relay by WebSocket (HTTP ones by HTTP: app.state.hops).
    app.state.wire_hops = (
        make_hops(config.topology, config.name, config.token, transport="ws") if config.name else {}
    )

    async def discover(request: Any) -> JSONResponse:
        if not bearer_ok(request.headers.get("authorization"), config.token):
            error = "missing or wrong bearer token; send 'Authorization: Bearer T'"
            return JSONResponse({"error": error}, status_code=401)
        if server.port is None:
            return JSONResponse({"error": "no WebSocket transport here"}, status_code=503)
        return JSONResponse({"port": server.port, "max_bytes": server.max_bytes})

    # A plain Starlette route: the endpoint takes the request, with no dependency injection.
    app.router.add_route(DISCOVERY, discover, methods=["GET"], include_in_schema=False)
    return server


class WireStageTransport:
    """The engine's :class:`~edgesplit.runtime.engine.StageTransport` over WebSockets.

    ``url`` is the device's ``http://host:port``; the WebSocket port comes from its
    ``GET /v1/wire``. Connections are persistent and pooled: a request takes an idle one
    (or opens one), so requests in flight from several threads (``run-plan
    --concurrency``) each have their own. A connection that fails is dropped and the
    request raises :class:`~edgesplit.runtime.engine.HopFailed` (failover); the next
    request opens a new one, asking ``/v1/wire`` again (a restarted tier may have a new
    port). A server without the WebSocket transport (``/v1/wire`` 404 or 503) is reached
    over ``POST /v1/stage`` instead (the hop record's ``transport`` says which).
    """

    def __init__(
        self,
        src: str,
        dst: str,
        url: str,
        token: str | None = None,
        timeout_s: float = 60.0,
        max_bytes: int = wire.DEFAULT_MAX_BYTES,
    ) -> None:
        self.src, self.dst, self.url = src, dst, url.rstrip("/")
        self.timeout_s, self.max_bytes = timeout_s, max_bytes
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = HTTPStageTransport(src, dst, url, token, timeout_s)
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._next_id = 0
        self._fallback = False
        self._server_max = max_bytes  # the server's --max-body, once /v1/wire named it

    def _ws_url(self) -> str | None:
        """The WebSocket URL from ``/v1/wire``; None when the server has no such transport."""
        try:
            resp = self.http._client.get(f"{self.url}{DISCOVERY}", timeout=self.timeout_s)
        except httpx.HTTPError as err:
            msg = f"{self.dst} at {self.url}: {type(err).__name__}: {err}"
            raise HopFailed(self.dst, msg) from None
        if resp.status_code in (404, 503):
            return None
        if resp.status_code != 200:
            raise ServerRejected(resp.status_code, f"{self.dst} at {self.url}{DISCOVERY}")
        try:
            doc = resp.json()
            port, self._server_max = int(doc["port"]), int(doc["max_bytes"])
        except (ValueError, KeyError, TypeError) as err:
            raise HopFailed(self.dst, f"{self.url}{DISCOVERY} answered {err!r}") from None
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        return f"{scheme}://{host}:{port}/"

    def _connect(self, ws_url: str) -> Any:
        from websockets.exceptions import InvalidStatus, WebSocketException
        from websockets.sync.client import connect

        try:
            return connect(
                ws_url,
                additional_headers=self._headers,
                compression=None,
                max_size=self.max_bytes + MAX_HEADER_BYTES,
                open_timeout=self.timeout_s,
                close_timeout=1.0,
                ping_interval=None,
                proxy=None,
                ssl=security.client_context() if ws_url.startswith("wss:") else None,  # verified
                legacy=True,  # a plain connection object, closed by close()
            )
        except InvalidStatus as err:
            status = err.response.status_code
            body = (err.response.body or b"").decode(errors="replace").strip()
            if status >= 500:
                raise HopFailed(self.dst, f"{ws_url} answered {status}: {body}") from None
            raise ServerRejected(status, f"{self.dst} at {ws_url}: {body}") from None
        except (OSError, WebSocketException, TimeoutError) as err:
            msg = f"{self.dst} at {ws_url}: {type(err).__name__}: {err}"
            raise HopFailed(self.dst, msg) from None

    def _take(self) -> Any:
        """An idle connection, or a new one; None when the server has no WebSocket port.

        Idle connections the server closed meanwhile (a restart) are dropped here, so a
        restarted tier costs no failed request.
        """
        from websockets.protocol import State

        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if conn.state is State.OPEN:
                    return conn
                conn.close()
            if self._fallback:
                return None
        ws_url = self._ws_url()
        if ws_url is None:
            self._fallback = True
            return None
        return self._connect(ws_url)

    def send(self, stage: StageRequest, tensors: Mapping[str, torch.Tensor]) -> StageReply:
        """One stage request; its reply, with the hop's record (``transport``: ws or http)."""
        conn = self._take()
        if conn is None:
            done = self.http.send(stage, tensors)
            return StageReply(
                done.tensors, done.cursor, done.log, {**done.hop, "transport": "http"}
            )
        from websockets.exceptions import ConnectionClosed, WebSocketException

        codec = stage.codecs.get(link_key(self.src, self.dst), "none")
        t0 = time.perf_counter()
        packed, meta = codecs.pack(tensors, codec)
        specs, buffers = to_frames(packed)
        if sum(b.nbytes for b in buffers) > self._server_max:
            self._put(conn)  # the server would answer 413: nothing is sent
            raise ServerRejected(
                413,
                f"{self.dst} at {self.url}: the tensors take {sum(b.nbytes for b in buffers)} "
                f"bytes, over its --max-body of {self._server_max}; raise it or send less",
            )
        with self._lock:
            self._next_id += 1
            rid = self._next_id
        header = json.dumps({"id": rid, "stage": stage.to_json(), "meta": meta, "tensors": specs})
        t1 = time.perf_counter()
        try:
            conn.send(header)
            for buf in buffers:
                conn.send(fragments(buf))
            text = conn.recv(timeout=self.timeout_s)
            reply = parse_header(str(text))
            if reply.get("id") != rid:
                raise InputError(f"reply to request {reply.get('id')}, not {rid}")
            if not reply.get("ok"):
                self._put(conn)
                self._refused(reply)
            out_specs = parse_specs(reply.get("tensors"), self.max_bytes)
            frames = [conn.recv(timeout=self.timeout_s) for _ in out_specs]
            t3 = time.perf_counter()
            raw = {s.name: from_frame(s, f) for s, f in zip(out_specs, frames, strict=True)}
            back = codecs.unpack(raw, meta_field(reply), self.max_bytes)
            report = dict(reply.get("report") or {})
            remote_s = float(reply.get("processing_s", 0.0))
            encode_s = float(reply.get("encode_s", 0.0))
        except ConnectionClosed as err:
            conn.close()
            if err.rcvd is not None and err.rcvd.code == 1009:  # message too big
                raise ServerRejected(
                    413, f"{self.dst}: a message is over its --max-body ({err.rcvd.reason})"
                ) from None
            msg = f"{self.dst} at {self.url}: connection closed ({err})"
            raise HopFailed(self.dst, msg) from None
        except (OSError, WebSocketException, TimeoutError) as err:
            conn.close()
            msg = f"{self.dst} at {self.url}: {type(err).__name__}: {err}"
            raise HopFailed(self.dst, msg) from None
        except (InputError, ValueError, TypeError) as err:
            conn.close()
            raise HopFailed(self.dst, f"{self.dst} answered an unreadable reply ({err})") from None
        self._put(conn)
        t4 = time.perf_counter()
        sent = len(header) + sum(b.nbytes for b in buffers)
        hop = {
            "src": self.src,
            "dst": self.dst,
            "transport": "ws",
            "codec": codec,
            "tensors_sent": sorted(tensors),
            "tensors_back": sorted(back),
            "sent_raw_bytes": _raw_bytes(tensors),
            "sent_wire_bytes": sent,
            "reply_raw_bytes": _raw_bytes(back),
            "reply_wire_bytes": len(str(text)) + sum(len(f) for f in frames),
            "encode_s": (t1 - t0) + encode_s,
            "decode_s": (t4 - t3) + float(report.get("decode_s", 0.0)),
            "round_trip_s": t3 - t1,
            "remote_s": remote_s,
            "transfer_s": (t3 - t1) - remote_s,
        }
        return StageReply(back, int(report.get("cursor", stage.cursor)), report, hop)

    def _put(self, conn: Any) -> None:
        with self._lock:
            self._idle.append(conn)

    def _refused(self, reply: Mapping[str, Any]) -> None:
        status = int(reply.get("status", 500))
        msg = f"{self.dst} at {self.url} answered {status}: {reply.get('error')}"
        if status >= 500:
            raise HopFailed(str(reply.get("failed_device") or self.dst), msg)
        raise ServerRejected(status, f"{self.dst} at {self.url}: {reply.get('error')}")

    def unreachable(self) -> str | None:
        """The HTTP app's ``/healthz`` (same process); a failed probe drops idle connections."""
        line = self.http.unreachable()
        if line is not None:
            self._drop_idle()
        return line

    def _drop_idle(self) -> None:
        with self._lock:
            idle, self._idle, self._fallback = self._idle, [], False
        for conn in idle:
            conn.close()

    def close(self) -> None:
        self._drop_idle()
        self.http.close()
