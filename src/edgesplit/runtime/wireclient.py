"""The client side of the engine's WebSocket transport (:mod:`.binwire` has the format).

:class:`WireStageTransport` is the engine's hop to a server's ``/v1/wire`` port: persistent,
pooled connections, one JSON header and one binary message per tensor each way (issue 13
point 2). A connection idle for half the server's :data:`~.binwire.IDLE_S` is dropped
rather than reused, so the server's idle close never meets a request (issue 14 point 3).
Complexity: O(total tensor bytes) per request.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
import torch

from edgesplit.errors import InputError
from edgesplit.runtime import security, wire
from edgesplit.runtime.binwire import (
    DISCOVERY,
    IDLE_S,
    MAX_HEADER_BYTES,
    fragments,
    from_frame,
    meta_field,
    parse_header,
    parse_specs,
    to_frames,
)
from edgesplit.runtime.engine import (
    HopFailed,
    HTTPStageTransport,
    StageReply,
    StageRequest,
    _raw_bytes,
    link_key,
)
from edgesplit.runtime.transport import ServerRejected
from edgesplit.system import codecs


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
        self._idle: list[tuple[Any, float]] = []  # (connection, when it went idle)
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

        Idle connections the server closed meanwhile (a restart) or is about to close
        (idle for half its ``IDLE_S``) are dropped here, so neither costs a failed request.
        """
        from websockets.protocol import State

        with self._lock:
            while self._idle:
                conn, since = self._idle.pop()
                if conn.state is State.OPEN and time.monotonic() - since < IDLE_S / 2:
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
            self._idle.append((conn, time.monotonic()))

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
        for conn, _ in idle:
            conn.close()

    def close(self) -> None:
        self._drop_idle()
        self.http.close()
