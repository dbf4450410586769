"""The fast tier-to-tier transport: WebSocket messages on the same server, one per tensor.

Chosen by measurement (``benchmarks/bench_runtime_hop.py``, docs/runtime.md "Transport")
among HTTP, WebSockets and gRPC streaming; issue 13 point 2. The WebSocket protocol
(RFC 6455, the ``websockets`` library on both ends, uvicorn on the server) gives the
message boundaries: this module writes no framing of its own.

One request on a persistent connection to ``/v1/ws``
    1. a text message, the JSON header::

         {"id": 7, "op": "part", "model": "resnet50", "assignment": [0, 0, 1, ...],
          "part": 1, "tensors": [{"name": "x", "dtype": "float32", "shape": [1, 64]}]}

       ``op`` is ``part`` (as ``POST /v1/part``) or ``infer`` (as ``POST /v1/infer``, with
       ``cut``, optional ``end`` and ``timings``);
    2. one binary message per tensor in the header's order: its raw C-order bytes
       (little-endian, as torch stores them), sent from the tensor's own memory.

    The reply is the same shape: a text header ``{"id", "ok": true, "cloud_lat_start",
    "cloud_lat_stop", "node_times", "meta", "tensors": [...]}`` then one binary message
    per tensor; or ``{"id", "ok": false, "status", "error"}`` and no binary message.
    The two stamps are the server's ``time.time()`` around its work, as on HTTP (Luger
    2023 eq. 3.2: the agent subtracts them from the round trip to get the transfer time).
    Status codes are the HTTP ones (400, 401, 404, 409, 422, 500, 503).

Codecs
    A link's wire codec (:mod:`edgesplit.system.codecs`: ``none``, ``zstd``, ``fp16``,
    ``bf16``, ``int8``) packs the tensors before they become frames; its metadata strings
    travel in the header's ``meta``, and the reply comes back under the same codec.

Safety
    The header is bounded (:data:`MAX_HEADER_BYTES`); every dtype, shape and byte count is
    checked, and the declared total is bounded by the server's ``max_body_bytes`` before
    any tensor is built; tensors are made by ``torch.frombuffer`` over the received bytes,
    never unpickled. A bad header or frame answers an error naming the field and the
    connection stays usable: the binary messages of a refused request are skipped up to
    the next text message. The bearer token is checked once, at the WebSocket handshake
    (``Authorization: Bearer T``, as HTTP); a wrong one is refused with HTTP 401.

Complexity: O(total tensor bytes) per request; no copy beyond the socket's own on the
sending side, one (the library's receive buffer) on the receiving side.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
from edgesplit.runtime.shaping import TokenBucketShaper
from edgesplit.runtime.transport import InferReply, ServerRejected
from edgesplit.system import codecs

if TYPE_CHECKING:  # the server side only: a device tier's client needs no web framework
    from starlette.websockets import WebSocket

#: The route on the FastAPI app.
PATH = "/v1/ws"

#: Bound on one JSON header; an assignment of 100k nodes fits.
MAX_HEADER_BYTES = 1024 * 1024

#: Frames up to this size are copied into their own memory; larger ones are used in place.
COPY_BELOW = 64 * 1024

#: Bound on the tensor count and the rank of each tensor in one message.
MAX_TENSORS = 1024
MAX_RANK = 16


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

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


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
        specs.append(TensorSpec(name, dtype, tuple(t.shape)).as_json())
        buffers.append(memoryview(flat.numpy()))  # type: ignore[arg-type]
    return specs, buffers


def parse_specs(entries: object, max_bytes: int) -> list[TensorSpec]:
    """Validate the header's ``tensors`` list; the total is bounded before anything is built."""
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
            raise InputError(
                f"field '{field}.shape' takes the message over the limit of {max_bytes} bytes"
            )
        seen.add(name)
        specs.append(spec)
    return specs


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
    """The JSON header of one message, bounded; an object with a ``tensors`` list."""
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


class Refused(Exception):
    """An op's refusal with its HTTP status (a fingerprint mismatch is a 409, say)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


#: An op: (header, decoded tensors) -> (tensors to send back, extra reply-header fields).
#: It runs on the server's event loop; heavy work goes to a thread (``anyio.to_thread``).
Op = Callable[
    [dict[str, Any], dict[str, torch.Tensor]],
    Awaitable[tuple[dict[str, torch.Tensor], dict[str, Any]]],
]


def _status_of(err: Exception) -> int:
    if isinstance(err, Refused):
        return err.status
    if isinstance(err, UnknownModelError):
        return 404
    if isinstance(err, ShapeError | PartitionError):
        return 422
    return 400


def _int_field(doc: Mapping[str, Any], key: str) -> int | None:
    value = doc.get(key)
    if value is not None and type(value) is not int:
        raise Refused(422, f"field '{key}' must be an integer")
    return value


def _segment(store: Any, doc: Mapping[str, Any]) -> Any:
    """The store's segment for op ``infer`` (nodes [cut, end)) or ``part`` (a plan's part)."""
    model = doc.get("model")
    if not isinstance(model, str):
        raise Refused(422, "field 'model' must be a model name")
    store.model(model)  # a model not served is a 404 naming it
    if doc.get("op") == "infer":
        cut = _int_field(doc, "cut")
        if cut is None:
            raise Refused(422, "field 'cut' is required for op 'infer'")
        try:
            return store.segment(model, cut, _int_field(doc, "end"))
        except UnknownModelError:
            raise
        except InputError as err:
            raise Refused(422, str(err)) from None
    ids = doc.get("assignment")
    if not isinstance(ids, list) or not all(type(a) is int for a in ids):
        raise Refused(422, "field 'assignment' must be a list of part ids, one per node")
    part = _int_field(doc, "part")
    if part is None:
        raise Refused(422, "field 'part' is required for op 'part'")
    try:
        return store.plan_part(model, tuple(ids), part)
    except (InputError, PartitionError) as err:
        raise Refused(422, str(err)) from None


def mount(
    app: Any, store: Any, config: Any, limiter: Any, state: dict[str, Any], metrics: Any
) -> dict[str, Op]:
    """Add ``/v1/ws`` to the server app; it runs parts through the app's store and limiter.

    ``config`` is the server's ``ServerConfig`` (token, bounds, admission); ``state``
    holds the app's ``inflight`` count and ``metrics`` its Prometheus series, both shared
    with the HTTP routes (requests are counted under endpoint ``ws``). Returns the op
    table (``infer``, ``part``), also kept as ``app.state.fast_ops``: the app may add its
    own :data:`Op` (the engine's relay, say) and clients reach it with
    :meth:`WSTransport.exchange`.
    """
    import anyio
    from starlette.responses import JSONResponse
    from starlette.websockets import WebSocketDisconnect

    async def run_segment(
        doc: dict[str, Any], tensors: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        seg = _segment(store, doc)
        timings = doc.get("timings") is True
        outs, times = await anyio.to_thread.run_sync(
            lambda: store.run(seg, tensors, timings), limiter=limiter
        )
        return outs, {"node_times": times}

    ops: dict[str, Op] = {"infer": run_segment, "part": run_segment}

    async def answer(
        ws: WebSocket, doc: dict[str, Any], specs: list[TensorSpec], frames: list[bytes]
    ) -> None:
        op = ops.get(str(doc.get("op")))
        if op is None:
            raise Refused(400, f"field 'op' is {doc.get('op')!r}; use one of {sorted(ops)}")
        if state["inflight"] >= config.max_concurrency + config.max_queue:
            metrics.rejected.inc()
            raise Refused(503, "server is at capacity; retry later")
        state["inflight"] += 1
        metrics.inflight.inc()
        try:
            start = time.time()
            meta = meta_field(doc)
            frames_in = {s.name: from_frame(s, f) for s, f in zip(specs, frames, strict=True)}
            tensors = codecs.unpack(frames_in, meta, config.max_body_bytes)
            outs, extra = await op(doc, tensors)
            stop = time.time()
        finally:
            state["inflight"] -= 1
            metrics.inflight.dec()
        if isinstance(doc.get("model"), str):
            metrics.latency.labels(doc["model"]).observe(stop - start)
        metrics.requests.labels("ws", "200").inc()
        packed, out_meta = codecs.pack(outs, meta.get(codecs.MARK, "none"))
        out_specs, buffers = to_frames(packed)
        reply = {**extra, "id": doc.get("id"), "ok": True, "cloud_lat_start": start}
        reply |= {"cloud_lat_stop": stop, "meta": out_meta, "tensors": out_specs}
        await ws.send_text(json.dumps(reply))
        for buf in buffers:
            await ws.send_bytes(buf)  # type: ignore[arg-type]

    async def refuse(ws: WebSocket, request_id: object, err: Exception) -> None:
        message = err.message if isinstance(err, Refused) else str(err)
        doc = {"id": request_id, "ok": False, "status": _status_of(err), "error": message}
        metrics.requests.labels("ws", str(doc["status"])).inc()
        await ws.send_text(json.dumps(doc))

    async def fast(ws: WebSocket) -> None:
        if config.token is not None:
            given = ws.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {config.token}".encode()):
                error = "missing or wrong bearer token; send 'Authorization: Bearer T'"
                await ws.send_denial_response(JSONResponse({"error": error}, status_code=401))
                return
        await ws.accept()
        pending: str | None = None
        try:
            while True:
                text = pending if pending is not None else await _next_text(ws)
                pending = None
                doc: dict[str, Any] = {}
                try:
                    doc = parse_header(text)
                    specs = parse_specs(doc.get("tensors"), config.max_body_bytes)
                except InputError as err:
                    # The refused request's binary messages are skipped by _next_text.
                    await refuse(ws, doc.get("id"), err)
                    continue
                frames: list[bytes] = []
                while len(frames) < len(specs):
                    msg = await ws.receive()
                    if msg["type"] == "websocket.disconnect":
                        return
                    if msg.get("text") is not None:
                        pending = msg["text"]
                        break
                    frames.append(msg.get("bytes") or b"")
                if pending is not None:
                    short = InputError(
                        f"field 'tensors' declares {len(specs)} tensor frames but "
                        f"{len(frames)} came before the next header"
                    )
                    await refuse(ws, doc.get("id"), short)
                    continue
                try:
                    await answer(ws, doc, specs, frames)
                except (Refused, EdgesplitError) as err:
                    await refuse(ws, doc.get("id"), err)
                except WebSocketDisconnect:
                    raise
                except Exception as err:  # a fault of the server's own: 500, the socket lives on
                    await refuse(ws, doc.get("id"), Refused(500, f"{type(err).__name__}: {err}"))
        except WebSocketDisconnect:
            return

    # A plain Starlette route: the endpoint takes the socket, with no dependency injection.
    app.router.add_websocket_route(PATH, fast)
    app.state.fast_ops = ops
    return ops


def ws_max_size(app: Any) -> int:
    """uvicorn's ``ws_max_size`` for an app: one tensor may be as large as a whole body."""
    return max(int(app.state.config.max_body_bytes), MAX_HEADER_BYTES)


async def _next_text(ws: WebSocket) -> str:
    """The next text message; binary messages before it belong to a refused request."""
    from starlette.websockets import WebSocketDisconnect

    while True:
        msg = await ws.receive()
        if msg["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(msg.get("code", 1000))
        if msg.get("text") is not None:
            return str(msg["text"])


class WSTransport:
    """The agent's side of ``/v1/ws``: the :class:`~edgesplit.runtime.transport.Transport`
    seam (``infer``, ``run_part``, ``probe``, ``close``) over one persistent connection.

    ``base_url`` is the server's ``http://host:port``, as for ``HTTPTransport``. The
    connection opens here (a wrong token is a :class:`ServerRejected` 401 at once); a
    broken one raises :class:`~edgesplit.errors.TransportError` and the next call opens a
    new one, so failover can probe a restarted tier. Requests from several threads take
    turns on the one connection.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout_s: float = 30.0,
        shaper: TokenBucketShaper | None = None,
        max_bytes: int = wire.DEFAULT_MAX_BYTES,
        codec: str = "none",
    ) -> None:
        codecs.pack({}, codec)  # an unknown codec is refused here, naming the choices
        self.codec = codec
        self.url = "ws" + base_url.removeprefix("http").rstrip("/") + PATH
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout_s, self.shaper, self.max_bytes = timeout_s, shaper, max_bytes
        self._next_id = 0
        self._lock = threading.Lock()
        self._ws: Any = None
        with self._lock:
            self._connection()

    def _connection(self) -> Any:
        """The open connection, opened now if there is none (the caller holds the lock)."""
        from websockets.exceptions import InvalidStatus, WebSocketException
        from websockets.sync.client import connect

        if self._ws is not None:
            return self._ws
        try:
            self._ws = connect(
                self.url,
                additional_headers=self._headers,
                compression=None,
                max_size=max(self.max_bytes, MAX_HEADER_BYTES),
                open_timeout=self.timeout_s,
                proxy=None,
                legacy=True,  # a plain connection object, closed by close()
            )
        except InvalidStatus as err:
            status = err.response.status_code
            try:
                message = str(json.loads(err.response.body or b"{}").get("error", ""))
            except ValueError:
                message = ""
            raise ServerRejected(status, message or f"{self.url} refused the connection") from None
        except (OSError, WebSocketException, TimeoutError) as err:
            raise TransportError(f"{self.url} failed: {type(err).__name__}: {err}") from None
        return self._ws

    def _drop(self) -> None:
        """Forget a connection that failed mid-request: its stream is out of step."""
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    def infer(
        self,
        model: str,
        cut: int,
        tensors: Mapping[str, torch.Tensor],
        end: int | None = None,
        timings: bool = False,
    ) -> InferReply:
        doc: dict[str, Any] = {"op": "infer", "model": model, "cut": cut, "timings": timings}
        if end is not None:
            doc["end"] = end
        return self.request(doc, tensors)

    def run_part(
        self,
        model: str,
        assignment: Sequence[int],
        part: int,
        tensors: Mapping[str, torch.Tensor],
    ) -> InferReply:
        """Run part ``part`` of a DAG plan's assignment remotely (as ``POST /v1/part``)."""
        doc = {"op": "part", "model": model, "assignment": list(assignment), "part": part}
        return self.request(doc, tensors)

    def request(self, doc: dict[str, Any], tensors: Mapping[str, torch.Tensor]) -> InferReply:
        """One ``infer`` or ``part`` request: the reply's tensors, stamps and byte counts."""
        reply, out, sent, got = self.exchange(doc, tensors)
        try:
            times = {str(k): float(v) for k, v in (reply.get("node_times") or {}).items()}
            start, stop = float(reply["cloud_lat_start"]), float(reply["cloud_lat_stop"])
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise TransportError(f"{PATH} answered an unreadable reply ({err})") from None
        return InferReply(out, start, stop, sent, got, times)

    def exchange(
        self, doc: dict[str, Any], tensors: Mapping[str, torch.Tensor], codec: str | None = None
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor], int, int]:
        """Send a header (any op the server has) and its tensors under ``codec``.

        ``codec`` defaults to this transport's; a re-planned link passes its new one.

        Returns the reply header, the decoded reply tensors, and the bytes sent and
        received (header and frames). A refusal raises :class:`ServerRejected` and keeps
        the connection; a broken or garbled stream drops it (the next call reconnects).
        """
        from websockets.exceptions import WebSocketException

        packed, meta = codecs.pack(tensors, self.codec if codec is None else codec)
        specs, buffers = to_frames(packed)
        with self._lock:
            ws = self._connection()
            self._next_id += 1
            header = json.dumps({**doc, "id": self._next_id, "meta": meta, "tensors": specs})
            try:
                reply, out, got = self._exchange(ws, header, buffers)
            except (WebSocketException, OSError, TimeoutError) as err:
                self._drop()
                raise TransportError(f"{PATH} failed: {type(err).__name__}: {err}") from None
            except (InputError, KeyError, TypeError, ValueError) as err:
                self._drop()
                raise TransportError(f"{PATH} answered an unreadable reply ({err})") from None
        sent = len(header) + sum(b.nbytes for b in buffers)
        return reply, out, sent, got

    def _exchange(
        self, ws: Any, header: str, buffers: list[memoryview]
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor], int]:
        if self.shaper is not None:
            self.shaper.half_rtt()
        ws.send(header)
        for buf in buffers:
            self._pace(buf)
            ws.send(buf)
        text = str(ws.recv(timeout=self.timeout_s))
        reply = parse_header(text)
        if reply.get("id") != self._next_id:
            raise ValueError(f"reply to request {reply.get('id')}, not {self._next_id}")
        if not reply.get("ok"):
            raise ServerRejected(int(reply.get("status", 500)), str(reply.get("error")))
        out, got = {}, len(text)
        for spec in parse_specs(reply.get("tensors"), self.max_bytes):
            data = ws.recv(timeout=self.timeout_s)
            if isinstance(data, str):
                raise ValueError(f"text where the frame of tensor {spec.name!r} was due")
            self._pace(data)
            out[spec.name] = from_frame(spec, data)
            got += len(data)
        out = codecs.unpack(out, meta_field(reply), self.max_bytes)
        if self.shaper is not None:
            self.shaper.half_rtt()
        return reply, out, got

    def _pace(self, data: Any) -> None:
        if self.shaper is not None:
            for _ in self.shaper.pace(data):
                pass

    def probe(self) -> float:
        """Round-trip seconds of a WebSocket ping (on a new connection if the last broke)."""
        from websockets.exceptions import WebSocketException

        with self._lock:
            ws = self._connection()
            t0 = time.perf_counter()
            if self.shaper is not None:
                self.shaper.half_rtt()
            try:
                if not ws.ping().wait(timeout=5.0):
                    raise TimeoutError("no pong in 5 s")
            except (WebSocketException, OSError, TimeoutError) as err:
                self._drop()
                raise TransportError(f"{PATH} ping failed: {type(err).__name__}: {err}") from None
            if self.shaper is not None:
                self.shaper.half_rtt()
            return time.perf_counter() - t0

    def close(self) -> None:
        with self._lock:
            self._drop()
