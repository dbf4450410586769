"""Issue 14 points 6–7 on the engine's parts: the WebSocket transport, the relay, logs.

Real servers on loopback (port 0), the real ``websockets`` client, real torch parts.
"""

from __future__ import annotations

import socket

import torch

from edgesplit.runtime import records
from edgesplit.runtime.engine import Engine, HTTPStageTransport
from edgesplit.runtime.loop import RetryingHop
from edgesplit.runtime.stages import build_stages, fingerprint


def dead_url() -> str:
    """A loopback URL nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_a_failover_row_records_the_retries_that_all_failed(store) -> None:  # type: ignore[no-untyped-def]
    graph = store.model("mnist_cnn").graph
    stages = build_stages(graph, ("edge", "cloud"), [0] * 3 + [1] * (len(graph.nodes) - 3))
    hop = RetryingHop(HTTPStageTransport("edge", "cloud", dead_url(), timeout_s=5), 2, 0.0)
    engine = Engine(
        stages, "mnist_cnn", fingerprint(graph), "edge", frozenset({"edge"}), {"cloud": hop}
    )
    x = torch.randn(1, 1, 28, 28)
    outs, record = engine.infer([x])
    engine.close()
    with torch.inference_mode():
        assert torch.equal(outs[graph.output_names[0]], graph.module(x))
    assert record["failover"] and record["failed_device"] == "cloud"
    assert record["failover_retries"] == 2
    assert records.flatten({"id": 0, **record})["retries"] == 2
