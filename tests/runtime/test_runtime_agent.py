"""Edge agent: exact split results, eq. 3.1-3.4 bookkeeping, retries, fallback and resume."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
import torch

from edgesplit.errors import TransportError
from edgesplit.runtime.agent import AgentConfig, EdgeAgent, RequestContext
from edgesplit.runtime.clock import ClockEmulator
from edgesplit.runtime.measure import COLUMNS, Recorder, comm_latency
from edgesplit.runtime.server import BackgroundServer, ServerConfig, create_app
from edgesplit.runtime.transport import HTTPTransport, InferReply, ServerRejected, in_process

CTX = RequestContext(bandwidth_mbit=100.0, rtt_s=0.0)


class FlakyTransport:
    """Fails the first ``failures`` calls with ``error``, then forwards to ``inner``."""

    def __init__(self, inner: HTTPTransport, failures: int, error: Exception) -> None:
        self.inner, self.failures, self.error = inner, failures, error
        self.calls = 0
        self.up = True

    def infer(
        self,
        model: str,
        cut: int,
        tensors: Mapping[str, torch.Tensor],
        end: int | None = None,
        timings: bool = False,
    ) -> InferReply:
        self.calls += 1
        if self.calls <= self.failures or not self.up:
            raise self.error
        return self.inner.infer(model, cut, tensors, end, timings)

    def probe(self) -> float:
        if not self.up:
            raise TransportError("down")
        return 0.001

    def close(self) -> None:
        self.inner.close()


def reference(store, model: str, x: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
    with torch.inference_mode():
        return store.model(model).graph.module(x)


def test_every_cut_gives_the_local_result_and_consistent_latencies(app, store) -> None:  # type: ignore[no-untyped-def]
    graph = store.model("mnist_cnn").graph
    agent = EdgeAgent(graph, in_process(app), config=AgentConfig(check=True, node_times=True))
    x = torch.randn(1, 1, 28, 28)
    ref = reference(store, "mnist_cnn", x)
    for cut in range(len(graph.nodes) + 1):
        out, m = agent.infer(x, cut, cut, CTX)
        assert torch.equal(out, ref)
        assert (m.correct, m.fallback, m.SP) == (True, False, cut)
        assert m.overall_lat == pytest.approx(m.stop - m.start)
        assert 0 <= m.edge_lat <= m.overall_lat
        if cut < len(graph.nodes):
            assert m.size == graph.cut(cut).bytes
            assert set(m.layers) == {n.name for n in graph.nodes}
            expect = comm_latency(
                m.overall_lat, m.cloud_lat, m.edge_lat, 0.0, m.response_size, 100.0
            )
            assert m.comm_lat == pytest.approx(expect)
        else:
            assert m.size == 0 and m.comm_lat == 0 and m.cloud_lat == 0


def test_retries_then_success_is_not_a_fallback(app, store) -> None:  # type: ignore[no-untyped-def]
    flaky = FlakyTransport(in_process(app), 2, ServerRejected(503, "busy", 0.0))
    agent = EdgeAgent(
        store.model("mnist_cnn").graph, flaky, config=AgentConfig(retries=2, backoff_s=0)
    )
    x = torch.randn(1, 1, 28, 28)
    out, m = agent.infer(x, 3, 0, CTX)
    assert torch.equal(out, reference(store, "mnist_cnn", x))
    assert m.retries == 2 and not m.fallback and flaky.calls == 3


def test_unreachable_cloud_falls_back_locally_then_resumes(app, store) -> None:  # type: ignore[no-untyped-def]
    flaky = FlakyTransport(in_process(app), 0, TransportError("connection refused"))
    flaky.up = False
    agent = EdgeAgent(
        store.model("mnist_cnn").graph,
        flaky,
        config=AgentConfig(retries=1, backoff_s=0, resume_after_s=0.0),
    )
    x = torch.randn(1, 1, 28, 28)
    ref = reference(store, "mnist_cnn", x)
    out, m = agent.infer(x, 4, 0, CTX)
    assert torch.equal(out, ref) and m.fallback and "refused" in m.error
    assert not agent.cloud_up and flaky.calls == 2
    out, m = agent.infer(x, 4, 1, CTX)  # probe fails: no send attempted
    assert torch.equal(out, ref) and m.fallback and flaky.calls == 2
    flaky.up = True
    out, m = agent.infer(x, 4, 2, CTX)
    assert torch.equal(out, ref) and not m.fallback and agent.cloud_up


def test_client_error_is_not_retried_and_keeps_cloud_up(app, store) -> None:  # type: ignore[no-untyped-def]
    flaky = FlakyTransport(in_process(app), 5, ServerRejected(422, "bad shape"))
    agent = EdgeAgent(
        store.model("mnist_cnn").graph, flaky, config=AgentConfig(retries=3, backoff_s=0)
    )
    x = torch.randn(1, 1, 28, 28)
    out, m = agent.infer(x, 2, 0, CTX)
    assert torch.equal(out, reference(store, "mnist_cnn", x))
    assert m.fallback and flaky.calls == 1 and agent.cloud_up


@pytest.mark.slow
def test_real_server_killed_and_restarted(store) -> None:  # type: ignore[no-untyped-def]
    """Kill uvicorn mid-run, restart it on the same port: every result is exact."""
    graph = store.model("mnist_cnn").graph
    app = create_app(ServerConfig(models=("mnist_cnn",)), store=store)
    server = BackgroundServer(app).start()
    port = server.port
    agent = EdgeAgent(
        graph,
        HTTPTransport(server.url, timeout_s=2),
        config=AgentConfig(retries=1, backoff_s=0.01, resume_after_s=0.0),
    )
    rows = []
    for i in range(12):
        if i == 4:
            server.stop()
        if i == 8:
            server = BackgroundServer(app, port=port).start()
        x = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(i))
        out, m = agent.infer(x, 3, i, CTX)
        assert torch.equal(out, reference(store, "mnist_cnn", x))
        rows.append(m)
    server.stop()
    assert [m.fallback for m in rows] == [False] * 4 + [True] * 4 + [False] * 4


def test_clock_dilation_stretches_only_when_slower() -> None:
    clock = ClockEmulator(ref_ghz=2.0, clock_ghz=1.0)
    assert clock.factor == 2.0 and not clock.clamped
    assert clock.run(lambda: 7) == 7
    clock.set(3.0)
    assert clock.factor == 1.0 and clock.clamped
    assert clock.method == "time-dilation"


def test_csv_starts_with_table_6_1_columns(app, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert COLUMNS[:8] == ("id", "datetime", "start", "stop", "size", "SP", "BW", "CS")
    agent = EdgeAgent(
        store.model("mnist_cnn").graph, in_process(app), config=AgentConfig(node_times=True)
    )
    rec = Recorder(layer_rows=True)
    for i in range(2):
        rec.add(agent.infer(torch.randn(1, 1, 28, 28), 5, i, CTX)[1])
    rec.save(tmp_path / "r.csv", tmp_path / "r.jsonl")
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0].split(",")[:8] == list(COLUMNS[:8])
    kinds = [line.rsplit(",", 1)[1] for line in lines[1:]]
    assert kinds.count("request") == 2 and kinds.count("layer") == 2 * 9
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 2
