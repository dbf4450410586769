"""Admission before routing: whole bodies, a body deadline, a byte budget, one error shape.

Issue 14 points 1, 3 and 4. :class:`BodyGate` is an ASGI middleware in front of the
server's routes. For every HTTP request it

* reads the body in full *before* the route runs, so a request takes a concurrency slot
  (:func:`edgesplit.runtime.server.create_app`'s admission) only once its body has arrived;
  a client trickling bytes holds no slot and blocks nobody;
* bounds the time the body may take to arrive (``serve --body-timeout``, default
  :data:`DEFAULT_BODY_TIMEOUT_S`): past it the client gets **408**;
* bounds one body (``serve --max-body``): a ``Content-Length`` over it, or more bytes than
  it, is **413** before anything is parsed;
* bounds the bytes of all bodies the server holds at once, still arriving or being served
  (``serve --max-pending``, default the larger of :data:`DEFAULT_PENDING_BYTES` and the
  body limit): a body that would push the total over it is **503** with ``Retry-After``,
  since it fits once others finish (a body larger than the whole budget is the 413 above);
* answers an exception no handler took as a JSON **500**, counted like every other answer,
  without closing the keep-alive connection (uvicorn closes it when an exception escapes).

Every error of the server has one JSON shape, ``{"error": "...", "field": "..."}``
(:func:`error_response`): ``field`` names the query parameter, header or body field at
fault, or ``"body"`` for the body as a whole.

Costs: O(body bytes) to buffer a body, which the route would read anyway; O(1) per request
otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import anyio
from starlette.responses import JSONResponse

log = logging.getLogger("edgesplit.server")

#: Default seconds a request body may take to arrive in full (``serve --body-timeout``).
DEFAULT_BODY_TIMEOUT_S = 60.0

#: Default bound on the bytes of all bodies held at once (``serve --max-pending``).
DEFAULT_PENDING_BYTES = 512 * 1024 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def error_response(
    status: int, message: str, field: str = "body", headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The server's one error shape: ``{"error": message, "field": field}``."""
    return JSONResponse({"error": message, "field": field}, status_code=status, headers=headers)


class BodyGate:
    """The ASGI middleware of the module docstring.

    ``count(path, status)`` is called for the answers the gate gives itself (408, 413, 503,
    500), so that they appear in ``/metrics`` beside the routes' own.
    """

    def __init__(
        self,
        app: Any,
        max_body: int,
        max_pending: int,
        timeout_s: float,
        retry_after_s: int,
        count: Callable[[str, int], None],
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.max_pending = max_pending
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.count = count
        #: Bytes of the bodies held now: arriving or being served.
        self.pending = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        held = 0
        try:
            refused: JSONResponse | None = None
            body = b""
            if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
                body, held, refused = await self._read(scope, receive)
            if refused is not None:
                self.count(scope["path"], refused.status_code)
                await refused(scope, receive, send)
                return
            if body is None:  # the client went away before its body arrived: one line (pt 7)
                client = scope.get("client") or ("?", 0)
                log.warning("http: client %s:%s left mid-upload of %s", *client, scope["path"])
                return
            await self.app(scope, _replay(body, receive), tracking_send)
        except Exception as err:
            self.count(scope["path"], 500)
            if not started:
                message = f"internal error ({type(err).__name__}); the request was not served"
                await error_response(500, message)(scope, receive, send)
        finally:
            self.pending -= held

    async def _read(self, scope: Scope, receive: Receive) -> tuple[Any, int, JSONResponse | None]:
        """``(body or None if the client left, bytes reserved, refusal or None)``."""
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            return b"", 0, self._too_large(f"body of {declared} bytes")
        held = 0
        if declared is not None:
            if not self._reserve(declared):
                return b"", 0, self._busy()
            held = declared
        chunks: list[bytes] = []
        size = 0
        with anyio.move_on_after(self.timeout_s) as scope_timer:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None, held, None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body:
                    return b"", held, self._too_large("body")
                if size > held:  # no or a false Content-Length: reserve as bytes come
                    if not self._reserve(size - held):
                        return b"", held, self._busy()
                    held = size
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        if scope_timer.cancelled_caught:
            refusal = error_response(
                408,
                f"the request body did not arrive within {self.timeout_s:g} s "
                f"({size} bytes came); send it faster or raise serve --body-timeout",
                headers={"Connection": "close"},
            )
            return b"", held, refusal
        return b"".join(chunks), held, None

    def _reserve(self, n: int) -> bool:
        if self.pending + n > self.max_pending:
            return False
        self.pending += n
        return True

    def _too_large(self, what: str) -> JSONResponse:
        return error_response(
            413, f"{what} is over the limit of {self.max_body} bytes (serve --max-body)"
        )

    def _busy(self) -> JSONResponse:
        return error_response(
            503,
            f"the server holds {self.pending} bytes of bodies (bound {self.max_pending}, "
            "serve --max-pending); retry later",
            headers={"Retry-After": str(self.retry_after_s)},
        )


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) < 20 else 1 << 62
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the buffered body once, then waits on the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
