"""Shared fixtures of the runtime tests: one model store, an ASGI app and a real uvicorn."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edgesplit.runtime.server import BackgroundServer, ServerConfig, create_app
from edgesplit.runtime.store import ModelStore
from edgesplit.runtime.transport import HTTPTransport, in_process

MODELS = ("mnist_cnn", "alexnet")
LIMIT = 1_000_000


@pytest.fixture(scope="session")
def store() -> ModelStore:
    return ModelStore(MODELS)


@pytest.fixture(scope="session")
def app(store: ModelStore):  # type: ignore[no-untyped-def]
    return create_app(ServerConfig(models=MODELS, max_body_bytes=LIMIT), store=store)


@pytest.fixture(scope="session")
def live(app) -> Iterator[BackgroundServer]:  # type: ignore[no-untyped-def]
    with BackgroundServer(app) as server:
        yield server


@pytest.fixture(params=["asgi", "uvicorn"])
def transport(request, app, live) -> Iterator[HTTPTransport]:  # type: ignore[no-untyped-def]
    """The same tests in-process (ASGI, no sockets) and against uvicorn on loopback."""
    t = in_process(app) if request.param == "asgi" else HTTPTransport(live.url, timeout_s=30)
    yield t
    t.close()
