"""The thesis' client transport to a remote tier (``/v1/infer``, ``/offload``; httpx style).

The engine moves tensors with its stage transports (:mod:`edgesplit.runtime.engine`);
this module keeps the single-cut client of ``POST /v1/infer`` and the thesis'
``/offload`` for interoperability, benchmarks and tests, and the shared helpers
(:func:`http_client`, :func:`probe_rtt`, :class:`ServerRejected`).
:class:`Transport` is the interface of such a single-cut client. :class:`HTTPTransport`
talks to a server over sockets; :func:`in_process` wraps the FastAPI app in a
Starlette ``TestClient`` so the very same code runs with no sockets (tests, demo).
Both may carry a :class:`~edgesplit.runtime.shaping.TokenBucketShaper`, which paces
the request body and adds the RTT in user space.

Failures surface as :class:`~edgesplit.errors.TransportError`; :class:`ServerRejected`
(a subclass) carries the HTTP status and whether retrying can help (5xx, 503 with
``Retry-After``) or not (4xx: the request itself is wrong).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import httpx
import torch

from edgesplit.errors import TransportError
from edgesplit.runtime import security, wire
from edgesplit.runtime.shaping import TokenBucketShaper


class ServerRejected(TransportError):
    """The server answered with an error status."""

    def __init__(self, status: int, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"server answered {status}: {message}")
        self.status = status
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        return self.status >= 500


@dataclass(frozen=True)
class InferReply:
    """The remote tier's answer: tensors of cut ``end`` and the cloud stamps (eq. 3.2)."""

    tensors: dict[str, torch.Tensor]
    cloud_lat_start: float
    cloud_lat_stop: float
    request_bytes: int
    response_bytes: int
    node_times: dict[str, float] = field(default_factory=dict)

    @property
    def cloud_lat(self) -> float:
        return self.cloud_lat_stop - self.cloud_lat_start


class Transport(Protocol):
    """A single-cut client of a remote tier (HTTP; the engine's hops are :mod:`.binwire`)."""

    def infer(
        self,
        model: str,
        cut: int,
        tensors: Mapping[str, torch.Tensor],
        end: int | None = None,
        timings: bool = False,
    ) -> InferReply: ...

    def probe(self) -> float:
        """Round-trip seconds of a tiny request (the thesis' ping)."""
        ...

    def close(self) -> None: ...


class HTTPTransport:
    """``POST /v1/infer`` with safetensors bodies over an ``httpx.Client``."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout_s: float = 30.0,
        shaper: TokenBucketShaper | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = client or httpx.Client(
            base_url=base_url, timeout=timeout_s, verify=security.client_context()
        )
        self.client.headers.update(headers)
        self.timeout_s = timeout_s
        self.shaper = shaper
        self.closer: Callable[[], object] = self.client.close
        # Starlette's TestClient rejects per-request timeouts; it has no network to time out.
        self._timeout: Any = (
            None if client is not None and base_url == "http://testserver" else timeout_s
        )

    def _post(self, path: str, body: bytes, params: dict[str, Any], ctype: str) -> httpx.Response:
        content: Any = body if self.shaper is None else self.shaper.pace(body)
        if self.shaper is not None:
            self.shaper.half_rtt()
        try:
            resp = self.client.post(
                path,
                content=content,
                params=params,
                headers={"content-type": ctype, "content-length": str(len(body))},
                **({"timeout": self._timeout} if self._timeout else {}),
            )
        except httpx.HTTPError as err:
            raise TransportError(f"{path} failed: {type(err).__name__}: {err}") from None
        if self.shaper is not None:
            # The answer crosses the same shaped link back, then the other half RTT.
            for _ in self.shaper.pace(resp.content):
                pass
            self.shaper.half_rtt()
        if resp.status_code >= 400:
            try:
                message = str(resp.json().get("error", resp.text))
            except ValueError:
                message = resp.text[:200]
            retry = resp.headers.get("retry-after")
            raise ServerRejected(resp.status_code, message, float(retry) if retry else None)
        return resp

    def infer(
        self,
        model: str,
        cut: int,
        tensors: Mapping[str, torch.Tensor],
        end: int | None = None,
        timings: bool = False,
    ) -> InferReply:
        body = wire.encode_tensors(tensors)
        params: dict[str, Any] = {"model": model, "cut": cut}
        if end is not None:
            params["end"] = end
        if timings:
            params["timings"] = "true"
        return self._safetensors_reply("/v1/infer", body, params)

    def _safetensors_reply(self, path: str, body: bytes, params: dict[str, Any]) -> InferReply:
        """POST a safetensors body; decode the tensors, cloud stamps and node times."""
        data = self._post(path, body, params, wire.SAFETENSORS_TYPE).content
        try:
            meta = wire.decode_metadata(data)
            out = wire.decode_tensors(data)
            start, stop = float(meta["cloud_lat_start"]), float(meta["cloud_lat_stop"])
        except (KeyError, ValueError) as err:
            raise TransportError(f"{path} answered an unreadable body ({err})") from None
        times = {k: float(v) for k, v in json.loads(meta.get("node_times", "{}")).items()}
        return InferReply(out, start, stop, len(body), len(data), times)

    def offload_json(
        self, model: str, cut: int, tensor: torch.Tensor, end: int | None = None
    ) -> InferReply:
        """The thesis' path: Listing 1 JSON with a base64 tensor (for comparison only)."""
        doc = wire.offload_document(model, cut, tensor)
        if end is not None:
            doc["input_data"]["end"] = end
        body = json.dumps(doc).encode()
        resp = self._post("/offload", body, {}, "application/json")
        doc = resp.json()
        out = {
            k: wire.b64_to_tensor(v["tensor"], tuple(v["shape"]), v["dtype"])
            for k, v in doc["outputs"].items()
        }
        return InferReply(
            out, doc["cloud_lat_start"], doc["cloud_lat_stop"], len(body), len(resp.content)
        )

    def probe(self) -> float:
        t0 = time.perf_counter()
        if self.shaper is not None:
            self.shaper.half_rtt()
        try:
            extra: dict[str, Any] = {"timeout": 5.0} if self._timeout else {}
            resp = self.client.get("/healthz", **extra)
        except httpx.HTTPError as err:
            raise TransportError(f"/healthz failed: {type(err).__name__}: {err}") from None
        if self.shaper is not None:
            self.shaper.half_rtt()
        if resp.status_code != 200:
            raise ServerRejected(resp.status_code, "health probe failed")
        return time.perf_counter() - t0

    def close(self) -> None:
        self.closer()


def in_process(
    app: Any, *, shaper: TokenBucketShaper | None = None, token: str | None = None
) -> HTTPTransport:
    """The same HTTP transport, but the app runs in this process through ASGI (no sockets)."""
    import warnings

    with warnings.catch_warnings():
        # Starlette nudges towards httpx2; the httpx client here is the supported pin.
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    client = TestClient(app, base_url="http://testserver", raise_server_exceptions=False)
    # Entering keeps one event-loop portal for the client's life instead of one per request.
    client.__enter__()
    # Starlette's TestClient is an httpx2.Client: the same request API as the pinned httpx
    # client, which is all HTTPTransport uses.
    transport = HTTPTransport(
        "http://testserver", token=token, shaper=shaper, client=cast("httpx.Client", client)
    )
    transport.closer = lambda: client.__exit__(None, None, None)
    return transport


def http_client(token: str | None = None, timeout_s: float = 30.0) -> httpx.Client:
    """One persistent httpx client carrying the token (a hop's and its probe's)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(timeout=timeout_s, headers=headers, verify=security.client_context())


def probe_rtt(client: httpx.Client, url: str) -> float:
    """Round-trip seconds of ``GET /healthz`` (the thesis' ping); TransportError if down."""
    t0 = time.perf_counter()
    try:
        resp = client.get(f"{url.rstrip('/')}/healthz", timeout=5.0)
    except httpx.HTTPError as err:
        raise TransportError(f"/healthz failed: {type(err).__name__}: {err}") from None
    if resp.status_code != 200:
        raise ServerRejected(resp.status_code, "health probe failed")
    return time.perf_counter() - t0
