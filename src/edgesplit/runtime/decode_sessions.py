"""Decode sessions on the server: one decoder part and its KV cache per client generation.

Endpoints (mounted on the one server app by :func:`mount`)
    ``POST /v1/decode/open``  JSON ``{model, cuts, part, max_len, batch, weights, chain}``:
        builds part ``part`` of the served decoder cut at ``cuts``
        (:func:`edgesplit.graph.decoder.decoder_part`) with an empty cache, reserves its KV
        bytes at ``max_len`` tokens (:func:`edgesplit.plan.decoder.kv_bytes`), and answers
        ``{session, covers, device, blocks, kv_reserved}``. ``weights`` is the client's
        digest of the model (:func:`~edgesplit.runtime.stages.weights_digest`); another
        digest is a 409. ``chain`` names the devices of parts ``part+1, ...``: when this
        server's own topology (``serve --topology F --as NAME``) links it to ``chain[0]``,
        it opens that session itself and relays every step there (``covers`` counts the
        parts this session runs, its own and the relayed ones).
    ``POST /v1/decode/step``  header ``x-edgesplit-session``; safetensors ``{"x": ...}``:
        token ids ``(batch, q)`` int64 for part 0, else the hidden state ``(batch, q,
        hidden)``. Answers ``{"y": ...}``: the hidden state of the new tokens, or, from the
        part holding the LM head, the greedy next token ids ``(batch,)`` int64. The
        metadata ``edgesplit.decode`` reports the processing seconds and the relayed links.
    ``POST /v1/decode/close``  header ``x-edgesplit-session``: frees the session (and the
        relayed ones).

Bounds (``serve --decode-sessions N --decode-kv BYTES --decode-ttl S``): at most N open
sessions; the KV bytes reserved by all sessions stay within BYTES (a session reserves its
deepest cache at open and cannot grow past ``max_len``); a session idle for S seconds is
freed. Each session id is 192 random bits (``secrets``) and is bound to a digest of the
``Authorization`` header that opened it: a step or close with another header, like an
unknown or expired id, is the same 404, so ids cannot be probed. The id travels in a
header, never in the URL (access logs). Over the count or the KV budget: 429 with
``Retry-After``; one session larger than the whole budget: 413; bad fields: 422; a step
sent while another step of the same session runs: 409 (a session's steps are sequential).
Every refusal is the server's one JSON shape ``{"error": ..., "field": ...}`` (issue 14
point 4): ``field`` names the body field, the step tensor ``x``, the session header or
``Authorization`` at fault.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from edgesplit.errors import EdgesplitError, InputError, UnknownModelError
from edgesplit.graph.decoder import DecoderPart, decoder_part, describe
from edgesplit.plan.decoder import kv_bytes
from edgesplit.runtime import wire
from edgesplit.runtime.decode import (
    FAILED_HEADER,
    REPORT,
    SESSION_HEADER,
    HTTPDecodeLink,
    TierFailed,
    payload_bytes,
)
from edgesplit.runtime.security import hop_token
from edgesplit.runtime.stages import weights_digest
from edgesplit.runtime.transport import ServerRejected

#: Largest open document (bytes); a chain longer than this many devices is refused.
MAX_OPEN_BYTES = 64 * 1024
MAX_CHAIN = 32


@dataclass(frozen=True)
class SessionLimits:
    """How many decode sessions a server holds, their KV bytes in all, and their idle TTL."""

    max_sessions: int = 16
    max_kv_bytes: int = 1 << 30
    ttl_s: float = 120.0

    @classmethod
    def of(cls, sessions: int, kv: str, ttl_s: float) -> SessionLimits:
        """From ``serve``'s options; ``kv`` is a size such as ``1GiB`` (InputError naming it)."""
        from edgesplit.units import parse_bytes

        try:
            kv_bytes = int(parse_bytes(kv))
        except InputError as err:
            raise InputError(f"--decode-kv: {err}") from None
        return cls(sessions, kv_bytes, ttl_s)

    def __post_init__(self) -> None:
        if self.max_sessions < 1:
            raise InputError("--decode-sessions must be at least 1")
        if self.max_kv_bytes < 1:
            raise InputError("--decode-kv must be a positive number of bytes, e.g. 1GiB")
        if self.ttl_s <= 0:
            raise InputError("--decode-ttl must be a positive number of seconds")


class Refused(Exception):
    """A decode request refused with an HTTP status, one line and the field at fault."""

    def __init__(
        self,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
        field: str | None = "body",
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}
        self.field = field


@dataclass
class Session:
    """One client's part of one generation: the part, its cache, and where it relays."""

    id: str
    owner: bytes
    part: DecoderPart
    max_len: int
    batch: int
    reserved: int
    device: torch.device
    vocab: int
    hidden: int
    dtype: torch.dtype
    relay: HTTPDecodeLink | None = None
    relay_session: str = ""
    covers: int = 1
    used: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class SessionTable:
    """The open sessions, bounded in count and reserved KV bytes, swept when idle."""

    def __init__(self, limits: SessionLimits, clock: Callable[[], float] = time.monotonic):
        self.limits, self._clock = limits, clock
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    @property
    def reserved(self) -> int:
        with self._lock:
            return sum(s.reserved for s in self._sessions.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _sweep(self) -> list[Session]:
        """Drop sessions idle past the TTL (caller holds the lock); they are returned."""
        now = self._clock()
        old = [
            s
            for s in self._sessions.values()
            if now - s.used > self.limits.ttl_s and not s.lock.locked()
        ]
        for s in old:
            del self._sessions[s.id]
        return old

    def admit(self, reserved: int) -> None:
        """Refuse a session of ``reserved`` KV bytes that would break a bound (413/429)."""
        lim = self.limits
        if reserved > lim.max_kv_bytes:
            raise Refused(
                413,
                f"a session of {reserved} KV bytes is over the server's --decode-kv of "
                f"{lim.max_kv_bytes}; ask for fewer tokens or a smaller batch",
            )
        with self._lock:
            gone = self._sweep()
            used = sum(s.reserved for s in self._sessions.values())
            count = len(self._sessions)
        _close_relays(gone)
        if count >= lim.max_sessions:
            raise Refused(
                429,
                f"{count} decode sessions are open, the --decode-sessions limit; "
                "close one or retry later",
                {"Retry-After": "1"},
            )
        if used + reserved > lim.max_kv_bytes:
            raise Refused(
                429,
                f"{used} of {lim.max_kv_bytes} KV bytes are reserved; a session of "
                f"{reserved} does not fit now; retry later",
                {"Retry-After": "1"},
            )

    def add(self, session: Session) -> None:
        session.used = self._clock()
        with self._lock:
            self._sessions[session.id] = session

    def get(self, sid: str, owner: bytes) -> Session:
        """The session ``sid`` opened with ``owner``'s credentials; 404 otherwise."""
        with self._lock:
            gone = self._sweep()
            s = self._sessions.get(sid)
        _close_relays(gone)
        if s is None or not hmac.compare_digest(s.owner, owner):
            raise Refused(
                404, "unknown or expired decode session; open a new one", field=SESSION_HEADER
            )
        s.used = self._clock()
        return s

    def touch(self, session: Session) -> None:
        session.used = self._clock()

    def pop(self, sid: str, owner: bytes) -> Session:
        s = self.get(sid, owner)
        with self._lock:
            self._sessions.pop(sid, None)
        return s


def _release(link: HTTPDecodeLink, sid: str) -> None:
    link.close(sid)
    link.shutdown()


def _close_relays(sessions: list[Session]) -> None:
    """Close the relayed sessions of freed ones, off the request's path."""
    for s in sessions:
        if s.relay is not None:
            threading.Thread(target=_release, args=(s.relay, s.relay_session), daemon=True).start()


def _int(doc: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        msg = f"field {key!r} must be an integer in {low}..{high}, not {value!r}"
        raise Refused(422, msg, field=key)
    return value


class _Models:
    """Per served model, once: its shape and weights digest (hashing runs off the loop)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._facts: dict[str, tuple[Any, str]] = {}

    def facts(self, name: str) -> tuple[Any, str]:
        self.store.model(name)  # a model not served is a 404 naming it
        with self._lock:
            if name not in self._facts:
                module = self.store.module(name)
                self._facts[name] = (describe(module), weights_digest(module))
            return self._facts[name]


def _open(
    table: SessionTable, models: _Models, config: Any, doc: Any, owner: bytes
) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise Refused(422, "the open body must be a JSON object with model, cuts, part, ...")
    name = doc.get("model")
    if not isinstance(name, str):
        raise Refused(422, "field 'model' must name a served model", field="model")
    shape, digest = models.facts(name)
    if doc.get("weights") != digest:
        raise Refused(
            409,
            f"field 'weights' {doc.get('weights')!r} is not the served {name!r} weights digest "
            f"{digest!r}; serve the same model, config and weights as the client",
            field="weights",
        )
    given = doc.get("cuts")
    if not isinstance(given, list) or len(given) > shape.layers:
        given = ["?"]
    cuts: list[int] = [c for c in given if type(c) is int]
    if len(cuts) != len(given):
        msg = f"field 'cuts' must be a list of block indices 1..{shape.layers - 1}"
        raise Refused(422, msg, field="cuts")
    part_index = _int(doc, "part", 0, len(cuts))
    max_len = _int(doc, "max_len", 1, shape.context)
    batch = _int(doc, "batch", 1, 1024)
    chain = doc.get("chain", [])
    if not isinstance(chain, list) or len(chain) > min(MAX_CHAIN, len(cuts) - part_index):
        raise Refused(
            422, "field 'chain' must list the devices of the following parts", field="chain"
        )
    module = models.store.module(name)
    part = decoder_part(module, cuts, part_index)
    reserved = kv_bytes(shape, part.hi - part.lo, max_len, batch)
    table.admit(reserved)
    param = next(module.parameters())
    session = Session(
        id=secrets.token_urlsafe(24),
        owner=owner,
        part=part,
        max_len=max_len,
        batch=batch,
        reserved=reserved,
        device=param.device,
        vocab=shape.vocab,
        hidden=shape.hidden,
        dtype=param.dtype,
    )
    _relay_open(session, config, {**doc, "part": part_index + 1, "chain": chain[1:]}, chain)
    table.add(session)
    return {
        "session": session.id,
        "covers": session.covers,
        "device": config.name,
        "blocks": [part.lo, part.hi],
        "kv_reserved": reserved,
    }


def _relay_open(session: Session, config: Any, doc: dict[str, Any], chain: list[Any]) -> None:
    """Open the next part on ``chain[0]`` when this server's topology links it there."""
    topo, me = config.topology, config.name
    if not chain or topo is None or me is None or not isinstance(chain[0], str):
        return
    nxt = chain[0]
    if nxt == me or nxt not in topo.names or topo.device(nxt).local or not topo.link(me, nxt):
        return
    # The next hop's URL and token come from this server's own configuration only.
    link = HTTPDecodeLink(nxt, topo.device(nxt).url, hop_token(topo.device(nxt), config.token))
    try:
        answer = link.open(doc)
    except (TierFailed, ServerRejected):
        link.shutdown()
        return  # the client opens that part itself (a star through the client)
    session.relay, session.relay_session = link, str(answer["session"])
    session.covers = 1 + int(answer.get("covers", 1))


def _step(session: Session, body: bytes, max_bytes: int, me: str | None) -> bytes:
    t0 = time.perf_counter()
    tensors = wire.decode_tensors(body, max_bytes)
    x = tensors.get("x")
    if set(tensors) != {"x"} or x is None:
        msg = f"the step body must hold one tensor 'x', not {sorted(tensors)}"
        raise Refused(422, msg, field="x")
    part = session.part
    if part.first:
        ok = x.dtype == torch.int64 and x.dim() == 2
        want = f"int64 token ids ({session.batch}, q)"
    else:
        ok = x.dtype == session.dtype and x.dim() == 3 and x.shape[2] == session.hidden
        want = (
            f"{wire.dtype_name(session.dtype)} hidden state ({session.batch}, q, {session.hidden})"
        )
    if not ok or x.shape[0] != session.batch or x.shape[1] < 1:
        msg = f"tensor 'x' is {wire.dtype_name(x.dtype)}{list(x.shape)}; send {want}"
        raise Refused(422, msg, field="x")
    if part.first and (int(x.min()) < 0 or int(x.max()) >= session.vocab):
        raise Refused(422, f"token ids must lie in 0..{session.vocab - 1}", field="x")
    if part.seen + x.shape[1] > session.max_len:
        raise Refused(
            422,
            f"the session holds {part.seen} tokens and was opened for max_len "
            f"{session.max_len}; {x.shape[1]} more do not fit; open a longer session",
            field="x",
        )
    y = part(x.to(session.device)).cpu()
    if part.last:
        y = y[:, -1, :].argmax(dim=-1)
    links: list[dict[str, Any]] = []
    if session.relay is not None:
        sent = payload_bytes(y)
        try:
            y, report, wire_bytes = session.relay.step(session.relay_session, y)
        except ServerRejected as err:
            msg = f"next hop {session.relay.dst} refused: {err}"
            raise Refused(502, msg, {FAILED_HEADER: session.relay.dst}, None) from None
        hop = {"src": me or "server", "dst": session.relay.dst, "sent_bytes": sent}
        links = [{**hop, "back_bytes": payload_bytes(y), "wire_bytes": wire_bytes}]
        links.extend(report.get("links", []))
    report_doc = {"processing_s": time.perf_counter() - t0, "links": links}
    return wire.encode_tensors({"y": y}, {REPORT: json.dumps(report_doc)})


def mount(app: FastAPI, store: Any, config: Any, limiter: Any) -> SessionTable:
    """Add the decode-session routes to the server ``app`` (limits from ``config.decode``)."""
    table = SessionTable(getattr(config, "decode", None) or SessionLimits())
    models = _Models(store)
    app.state.decode_sessions = table

    def check(request: Request) -> bytes:
        """The caller's owner digest, after the server's token check."""
        given = request.headers.get("authorization", "")
        if config.token is not None and not hmac.compare_digest(
            given.encode(), f"Bearer {config.token}".encode()
        ):
            msg = "missing or wrong bearer token; send 'Authorization: Bearer T'"
            raise Refused(401, msg, {"WWW-Authenticate": "Bearer"}, "Authorization")
        return hashlib.sha256(given.encode()).digest()

    async def body_of(request: Request, limit: int) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise Refused(413, f"body of {declared} bytes is over {limit}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refused(413, f"body is over the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def answer(work: Callable[[], Any]) -> Response:
        try:
            return await work()  # type: ignore[no-any-return]
        except Refused as err:
            doc = {"error": err.message, "field": err.field}
            return JSONResponse(doc, err.status, headers=err.headers)
        except TierFailed as err:  # the one error shape; the header names the failed device
            doc = {"error": f"next hop failed: {err}", "field": None}
            return JSONResponse(doc, 502, headers={FAILED_HEADER: err.device})
        except UnknownModelError as err:
            return JSONResponse({"error": str(err), "field": "model"}, 404)
        except EdgesplitError as err:
            return JSONResponse({"error": str(err), "field": "body"}, 422)

    def session_id(request: Request) -> str:
        sid = request.headers.get(SESSION_HEADER, "")
        if not sid or len(sid) > 64:
            raise Refused(
                404, "unknown or expired decode session; open a new one", field=SESSION_HEADER
            )
        return sid

    @app.post("/v1/decode/open", summary="Open a decode session holding one decoder part")
    async def decode_open(request: Request) -> Response:
        async def work() -> Response:
            owner = check(request)
            raw = await body_of(request, MAX_OPEN_BYTES)
            try:
                doc = json.loads(raw)
            except ValueError as err:
                raise Refused(400, f"the open body is not JSON ({err})") from None
            out = await anyio.to_thread.run_sync(
                lambda: _open(table, models, config, doc, owner), limiter=limiter
            )
            return JSONResponse(out)

        return await answer(work)

    @app.post("/v1/decode/step", summary="Feed a decode session the new tokens' input")
    async def decode_step(request: Request) -> Response:
        async def work() -> Response:
            owner = check(request)
            session = table.get(session_id(request), owner)
            if session.lock.locked():
                # A session's steps are sequential: one waits for no other, none piles up.
                raise Refused(
                    409, "a step of this decode session is running; send the next after it"
                )
            body = await body_of(request, config.max_body_bytes)

            def run() -> bytes:
                with session.lock:
                    return _step(session, body, config.max_body_bytes, config.name)

            out = await anyio.to_thread.run_sync(run, limiter=limiter)
            table.touch(session)
            return Response(out, media_type=wire.SAFETENSORS_TYPE)

        return await answer(work)

    @app.post("/v1/decode/close", summary="Close a decode session and free its KV cache")
    async def decode_close(request: Request) -> Response:
        async def work() -> Response:
            owner = check(request)
            session = table.pop(session_id(request), owner)
            _close_relays([session])
            return JSONResponse({"closed": True})

        return await answer(work)

    return table
