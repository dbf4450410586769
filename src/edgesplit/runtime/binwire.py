"""The engine's fast tier-to-tier transport: WebSocket messages, one per tensor.

Issue 13 point 2, chosen by measurement (``benchmarks/bench_runtime_hop.py``, docs/runtime.md
"Transport"). Every ``edgesplit serve`` runs, beside its HTTP app, a WebSocket server of
the ``websockets`` library (its own asyncio server, on a thread of the same process, on a
second port: ``serve --wire-port``, by default a free one). ``GET /v1/wire`` on the HTTP
port names that port, so a topology keeps one URL per device. RFC 6455 gives the message
boundaries: this module writes no framing of its own; the client is :mod:`.wireclient`.

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
    408, 409, 413, 422, 500, 502, 503) and ``field``, the header field at fault (null when none
    is). ``processing_s`` is the server's own duration from the
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
the next header and the connection keeps serving. A request's frames must all arrive within
``serve --body-timeout`` of its header (408, then close 1008: a trickling client frees its
slot), a connection idle for :data:`IDLE_S` is closed (1001; the client's pool drops its
connections idle half as long), a header's ``{`` count bounds its entries before it is
parsed, and a client that leaves mid-request logs one line, never a traceback.

Complexity: O(total tensor bytes) per request; the library's masking and buffering are the
only copies. A tensor over :data:`FRAGMENT` bytes goes as one message in fragments.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import socket
import threading
import time
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from edgesplit.errors import (
    EdgesplitError,
    InputError,
    PartitionError,
    ShapeError,
    TransportError,
    UnknownModelError,
)
from edgesplit.runtime import wire
from edgesplit.runtime.engine import (
    FingerprintError,
    HopFailed,
    StageRequest,
    continue_stage,
    make_hops,
    open_stage,
)
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

#: Seconds a connection may idle between requests (its frames have ``--body-timeout``).
IDLE_S = 120.0

log = logging.getLogger("edgesplit.wire")

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


def frame_mismatch(i: int, spec: TensorSpec, size: int) -> InputError | None:
    """The error for frame ``i`` of ``size`` bytes when its header entry needs another size."""
    if size == spec.nbytes:
        return None
    return InputError(
        f"field 'tensors[{i}].shape': the frame of tensor {spec.name!r} has {size} bytes but "
        f"its entry ({spec.dtype}{list(spec.shape)}) needs {spec.nbytes}"
    )


def parse_header(text: str) -> dict[str, Any]:
    """The JSON header of one message, bounded; a JSON object."""
    if len(text) > MAX_HEADER_BYTES:
        raise InputError(f"header has {len(text)} characters, over {MAX_HEADER_BYTES}")
    if text.count("{") > MAX_TENSORS + 64:  # entries are objects: bounded before any parse
        raise InputError(f"field 'tensors' has over {MAX_TENSORS} entries (counted by '{{')")
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
        self.frame_timeout_s = float(config.body_timeout_s)  # serve --body-timeout
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
        frames: list[bytes] = []
        specs: list[TensorSpec] = []
        try:
            while True:
                if pending is None:
                    try:
                        async with asyncio.timeout(IDLE_S):
                            pending = await _next_text(conn)
                    except TimeoutError:
                        await conn.close(1001, f"idle for {IDLE_S:.0f} s")
                        return
                text, pending, frames, specs = pending, None, [], []
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
                wrong: InputError | None = None
                try:
                    async with asyncio.timeout(self.frame_timeout_s):
                        while len(frames) < len(specs):
                            msg = await conn.recv()
                            if isinstance(msg, str):
                                pending = msg
                                break
                            # Checked on arrival: the frames held stay within the header's total.
                            wrong = frame_mismatch(len(frames), specs[len(frames)], len(msg))
                            if wrong is not None:
                                break
                            frames.append(msg)
                except TimeoutError:
                    slow = SlowFrames(
                        f"field 'tensors': {len(frames)} of {len(specs)} frames arrived in "
                        f"{self.frame_timeout_s:g} s; send a request's frames right after its header"
                    )
                    await self._refuse(conn, doc.get("id"), slow)
                    await conn.close(1008, "frames too slow")
                    return
                if wrong is not None:  # the request's later frames are skipped
                    await self._refuse(conn, doc.get("id"), wrong)
                    continue
                if pending is not None:
                    short = InputError(
                        f"field 'tensors' declares {len(specs)} tensor frames but "
                        f"{len(frames)} came before the next header"
                    )
                    await self._refuse(conn, doc.get("id"), short)
                    continue
                await self._answer(conn, doc, specs, frames)
                specs = []
        except ConnectionClosed:
            if len(frames) < len(specs):  # an aborted upload: one line, no traceback
                log.warning(
                    "wire: client %s left mid-request (%d of %d frames)",
                    conn.remote_address, len(frames), len(specs),
                )  # fmt: skip
        except Exception as err:  # never the library's traceback for one connection
            log.error(
                "wire: connection %s failed: %s: %s", conn.remote_address, type(err).__name__, err
            )
            await conn.close(1011, "internal error")
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
        status = (
            503 if isinstance(err, Busy) else 408 if isinstance(err, SlowFrames) else _status(err)
        )
        message = str(err) if status != 500 else f"{type(err).__name__}: {err}"
        if status == 500:  # the server's own fault: one line for the operator, no traceback
            log.error("wire: request %r failed: %s", request_id, message)
        if status == 502 and not message.startswith("next hop failed"):
            message = f"next hop failed: {message}"
        failed = err.device if isinstance(err, HopFailed) else None
        named = re.search(r"field '([^']+)'", message)
        doc = {"id": request_id, "ok": False, "status": status, "error": message}
        doc["field"] = named.group(1) if named else None
        self.metrics.requests.labels("wire", str(status)).inc()
        await conn.send(json.dumps({**doc, "failed_device": failed}))


class Busy(Exception):
    """More requests than ``max_concurrency + max_queue`` in flight (503)."""


class SlowFrames(InputError):
    """A request's frames did not all arrive within the frame timeout (408)."""


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
