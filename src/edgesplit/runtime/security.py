"""Who may talk to a tier and how tiers talk to each other: bearer auth and TLS (issue 14 point 6).

Auth
    :class:`BearerAuth` is an ASGI middleware in front of the whole app (routing, query and
    body validation, the OpenAPI document and its ``/docs`` and ``/redoc`` pages): with a
    token set, a request without ``Authorization: Bearer T`` is answered 401 with
    ``WWW-Authenticate: Bearer`` and the one JSON error shape ``{"error", "field"}`` before
    anything of it is parsed. Only ``GET /healthz`` is open: liveness and nothing else. The
    comparison is constant-time (``hmac.compare_digest``).

TLS
    A server given ``--tls-cert`` and ``--tls-key`` (:class:`ServerTLS`) serves HTTPS on its
    port and WSS on its WebSocket port (:mod:`.binwire`). Every client of a tier — the
    engine's hops over HTTP and WebSockets, decode links, ``edgesplit run`` — verifies the
    server's certificate against :func:`client_context`: the system's trust store, or the
    CA bundle given with ``--tls-ca`` (:func:`use_ca`). Verification is never turned off.

Next-hop tokens
    A tier's token for its next hop comes from its own configuration: the topology device's
    ``token_env`` (the environment variable holding that device's token, read by whoever
    connects to it), else the tier's own ``--token``. Nothing in a request names a URL or a
    token (:func:`hop_token`).
"""

from __future__ import annotations

import functools
import hmac
import json
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgesplit.errors import InputError

OPEN_PATHS = frozenset({"/healthz"})
UNAUTHORISED = "missing or wrong bearer token; send 'Authorization: Bearer T'"


def bearer_matches(given: bytes | str | None, token: str) -> bool:
    """Constant-time check that an ``Authorization`` value is ``Bearer <token>``."""
    raw = given.encode() if isinstance(given, str) else (given or b"")
    return hmac.compare_digest(raw, f"Bearer {token}".encode())


class BearerAuth:
    """ASGI middleware: every HTTP request but ``/healthz`` carries the bearer token.

    Runs before routing, so a request without the token learns nothing from the
    validation of its query or body (which would otherwise answer 422 first).
    """

    def __init__(
        self, app: Any, token: str | None, count: Callable[[str, int], None] | None = None
    ) -> None:
        self.app, self.token, self.count = app, token, count  # count(path, 401): /metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self.token is None or scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or ()).get(b"authorization")
        if bearer_matches(given, self.token):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": UNAUTHORISED, "field": "Authorization"}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b'Bearer realm="edgesplit"'),
        ]
        if self.count is not None:
            self.count(scope["path"], 401)
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True)
class ServerTLS:
    """A server's certificate chain and private key (``serve --tls-cert F --tls-key F``)."""

    cert: str
    key: str

    @classmethod
    def of(cls, cert: Path | str | None, key: Path | str | None) -> ServerTLS | None:
        """Both files or neither; each must load (InputError naming the flag)."""
        if cert is None and key is None:
            return None
        if cert is None or key is None:
            raise InputError("give --tls-cert and --tls-key together (or neither, for plain HTTP)")
        tls = cls(str(cert), str(key))
        tls.context()
        return tls

    def context(self) -> ssl.SSLContext:
        """The server side's context (the WebSocket transport; uvicorn loads the files itself)."""
        for flag, path in (("--tls-cert", self.cert), ("--tls-key", self.key)):
            if not Path(path).is_file():
                raise InputError(f"{flag} {path}: no such file; give a PEM file")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            ctx.load_cert_chain(self.cert, self.key)
        except (ssl.SSLError, OSError) as err:
            raise InputError(
                f"--tls-cert {self.cert} / --tls-key {self.key}: cannot load ({err}); "
                "give a PEM certificate chain and its matching private key"
            ) from None
        return ctx

    def uvicorn_args(self) -> dict[str, str]:
        return {"ssl_certfile": self.cert, "ssl_keyfile": self.key}


_trust: dict[str, str | None] = {"ca": None}


def use_ca(path: Path | str | None) -> None:
    """Trust ``path`` (a PEM CA bundle, ``--tls-ca``) instead of the system store; None resets."""
    if path is not None:
        if not Path(path).is_file():
            raise InputError(f"--tls-ca {path}: no such file; give a PEM CA bundle")
        try:
            ssl.create_default_context(cafile=str(path))
        except (ssl.SSLError, OSError) as err:
            raise InputError(f"--tls-ca {path}: not a PEM CA bundle ({err})") from None
    _trust["ca"] = None if path is None else str(path)


def client_context() -> ssl.SSLContext:
    """The verifying client context every tier-to-tier client uses (hostname checked)."""
    return _context(_trust["ca"])


@functools.lru_cache(maxsize=4)
def _context(ca: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca)


def hop_token(device: Any, own: str | None) -> str | None:
    """The bearer token to send to topology ``device``: its ``token_env``, else ``own``."""
    env = getattr(device, "token_env", None)
    if env is None:
        return own
    value = os.environ.get(env)
    if not value:
        raise InputError(
            f"topology device {device.name!r}: token_env {env} is not set; "
            f"export {env}=<that server's --token>"
        )
    return value
