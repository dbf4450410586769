"""The cloud tier replicated on Ray Serve: the same FastAPI app, ``N`` replicas.

Luger 2023 §6.5 runs one cloud server; a deployment that outgrows it needs more
replicas behind one address. This module deploys the app built by
:func:`edgesplit.runtime.server.create_app` (no endpoint is duplicated) as a Ray Serve
deployment. Each replica builds its own app in ``__serve_build_asgi_app__`` at replica
start, so it loads its models once; Ray's HTTP proxy spreads requests over the replicas
(power-of-two-choices on queue length). The bearer-token rule, body limit and 4xx
answers are those of the plain server because the app is the same, and so are the parts
and the wire: each replica's store splits with the one partition mechanism, keeps its own
part cache (``ServerConfig.part_cache_bytes`` bounds each replica's), relays the engine's
stages and decodes every codec of :mod:`edgesplit.runtime.codecs`; nothing here splits or
serialises on its own.

Ray is imported only here, so the plain server never pays for it. Complexity: one Ray
actor per replica plus Serve's controller and proxy; per request, the proxy hop adds one
in-process ASGI call and one actor call on top of the app's own work.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgesplit.errors import EdgesplitError, InputError
from edgesplit.runtime.server import ServerConfig, check_bind, create_app

APP_NAME = "edgesplit"


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide the replicated tier runs.

    ``address=None`` starts a private local Ray with ``num_cpus`` logical CPUs and stops it
    again on :meth:`RayServer.stop`; an address (``auto`` or ``ray://...``) joins an existing
    cluster and only removes this application on stop.
    """

    replicas: int = 2
    host: str = "127.0.0.1"
    port: int = 8000
    address: str | None = None
    num_cpus: int = 2
    replica_cpus: float = 0.5
    threads: int = 1
    insecure: bool = False

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise InputError(f"--ray-replicas must be >= 1, not {self.replicas}")
        if self.num_cpus < 1 or self.replica_cpus < 0:
            raise InputError("Ray num_cpus must be >= 1 and the CPUs per replica >= 0")
        if self.threads < 1:
            raise InputError(f"--threads must be >= 1, not {self.threads}")
        if not 0 < self.port < 65536:
            raise InputError(f"--port must be 1..65535 for Ray Serve, not {self.port}")


def check_ray_address(address: str) -> None:
    """Refuse, in one line and within seconds, a ``--ray-address`` no cluster answers at.

    ``auto`` is left to ``ray.init`` (it looks for a cluster on this machine and fails at
    once); ``HOST:PORT`` and ``ray://HOST:PORT`` are probed with one TCP connect, because
    ``ray.init`` retries an address where nothing listens for minutes.
    """
    if address == "auto":
        return
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(
            f"--ray-address {address!r}: write auto, HOST:PORT (the GCS, e.g. 10.0.0.5:6379) "
            "or ray://HOST:PORT (the Ray client server, e.g. ray://10.0.0.5:10001)"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=3.0):
            pass
    except OSError as err:
        raise InputError(_no_cluster(address, err.strerror or type(err).__name__)) from None


def _no_cluster(address: str, why: str) -> str:
    return (
        f"--ray-address {address!r}: no Ray cluster at that address ({why.split('.')[0]}); "
        "start one with `ray start --head`, or drop --ray-address to run a private local Ray"
    )


class _CloudReplica:
    """One replica: keeps the config, builds the shared app (and loads models) on start."""

    def __init__(self, config: ServerConfig, threads: int) -> None:
        import torch

        # Replicas share the host's cores; one intra-op pool per replica would oversubscribe.
        torch.set_num_threads(threads)
        self._config = config

    def __serve_build_asgi_app__(self) -> Any:
        return create_app(self._config)


def _deployment(config: ServerConfig, options: RayOptions) -> Any:
    from ray import serve

    ingress = serve.ingress()(_CloudReplica)
    return serve.deployment(
        name=APP_NAME,
        num_replicas=options.replicas,
        ray_actor_options={"num_cpus": options.replica_cpus},
        # Admit enough for the app's own queue so its 503 + Retry-After rule stays in force.
        max_ongoing_requests=config.max_concurrency + config.max_queue + 1,
    )(ingress).bind(config, options.threads)


class RayServer:
    """The replicated cloud tier: ``start()`` deploys, ``stop()`` removes (and stops Ray)."""

    def __init__(self, config: ServerConfig, options: RayOptions | None = None) -> None:
        self.config = config
        self.options = options or RayOptions()
        check_bind(self.options.host, config.token, self.options.insecure)
        self._owns_ray = False
        self.started = False

    @property
    def url(self) -> str:
        return f"http://{self.options.host}:{self.options.port}"

    def start(self) -> RayServer:
        """Start (or join) Ray, deploy ``replicas`` replicas, return when all are ready."""
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray
        from ray import serve
        from ray.serve.config import HTTPOptions
        from ray.serve.schema import LoggingConfig

        opts = self.options
        if not ray.is_initialized():
            if opts.address is None:
                ray.init(
                    num_cpus=opts.num_cpus,
                    include_dashboard=False,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                )
                self._owns_ray = True
            else:
                check_ray_address(opts.address)
                try:
                    ray.init(address=opts.address, logging_level=logging.WARNING)
                except ConnectionError as err:  # 'auto' and no cluster on this machine
                    raise InputError(_no_cluster(opts.address, str(err))) from None
        need = opts.replicas * opts.replica_cpus
        have = float(ray.cluster_resources().get("CPU", 0.0))
        if need > have:
            self.stop()
            raise InputError(
                f"{opts.replicas} replicas x {opts.replica_cpus} CPU need {need:g} CPUs but "
                f"Ray has {have:g}; lower --ray-replicas or raise the Ray CPUs"
            )
        try:
            serve.start(http_options=HTTPOptions(host=opts.host, port=opts.port))
            serve.run(
                _deployment(self.config, opts),
                name=APP_NAME,
                route_prefix="/",
                logging_config=LoggingConfig(log_level="WARNING"),
            )
        except Exception as err:
            self.stop()
            raise EdgesplitError(
                f"Ray Serve could not deploy {APP_NAME!r} on {self.url}: "
                f"{type(err).__name__}: {err}"
            ) from None
        self.started = True
        return self

    def stop(self) -> None:
        """Remove the app; a private Ray is shut down, a joined cluster is left running."""
        import ray
        from ray import serve

        if ray.is_initialized():
            if self._owns_ray:
                serve.shutdown()
            else:
                # Nothing deployed yet (a failed start) means nothing to remove.
                with contextlib.suppress(Exception):
                    serve.delete(APP_NAME)
            ray.shutdown()
        self.started = False

    def __enter__(self) -> RayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_replicated(
    config: ServerConfig, options: RayOptions, ready: Callable[[], None] | None = None
) -> None:
    """Run the replicated tier in the foreground until SIGINT/SIGTERM, then stop it.

    ``ready`` is called once every replica answers (the command's "serving ..." line).
    """
    server = RayServer(config, options)
    done = threading.Event()

    def _stop(*_: object) -> None:
        done.set()

    signals = (signal.SIGINT, signal.SIGTERM)
    old = {s: signal.signal(s, _stop) for s in signals}
    try:
        server.start()
        if ready is not None:
            ready()
        # ray.init installs its own handlers; ours must win so that stop() runs.
        for s in signals:
            signal.signal(s, _stop)
        while not done.is_set():
            time.sleep(0.2)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        server.stop()
