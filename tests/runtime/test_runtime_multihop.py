"""Multi-device plans executed for real: agent -> edge server -> cloud on loopback uvicorn."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from edgesplit.errors import TransportError
from edgesplit.graph import trace
from edgesplit.models import build
from edgesplit.runtime.multihop import execute_plan
from edgesplit.runtime.server import BackgroundServer, ServerConfig, create_app
from edgesplit.runtime.transport import HTTPTransport

MODEL = "mobilenet_v2"
DEVICES = ("user", "edge", "cloud")


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, HTTPTransport]]:
    edge = BackgroundServer(create_app(ServerConfig(models=(MODEL,)))).start()
    cloud = BackgroundServer(create_app(ServerConfig(models=(MODEL,)))).start()
    remotes = {"edge": HTTPTransport(edge.url), "cloud": HTTPTransport(cloud.url)}
    try:
        yield remotes
    finally:
        for t in remotes.values():
            t.close()
        edge.stop()
        cloud.stop()


@pytest.fixture(scope="module")
def model_graph():
    model, x = build(MODEL)
    return model, x, trace(model, x, name=MODEL)


def _residual_plan(graph):
    """A residual block's branch on the edge, its add and everything after on the cloud."""
    add = next(n for n in graph if n.kind == "add")
    skip_producer = next(t.producer for t in graph.tensors if add.name in t.consumers)
    first = graph.index(skip_producer) + 1
    return [0 if i < first else 1 if i < add.index else 2 for i in range(len(graph))]


@pytest.mark.slow
def test_three_device_dag_plan_is_exact_and_sends_a_dag_cut_together(servers, model_graph):
    model, x, graph = model_graph
    assignment = _residual_plan(graph)
    out, hops = execute_plan(graph, assignment, DEVICES, servers, x)
    with torch.inference_mode():
        assert torch.equal(out, model(x))
    assert [h.device for h in hops] == ["edge", "cloud"]
    # The cloud part reads the skip tensor from the user device and the branch output from
    # the edge: both crossed in the one request.
    assert len(hops[1].sent) == 2


@pytest.mark.slow
def test_local_only_plan_sends_nothing(servers, model_graph):
    model, x, graph = model_graph
    out, hops = execute_plan(graph, [0] * len(graph), DEVICES, servers, x)
    with torch.inference_mode():
        assert torch.equal(out, model(x))
    assert hops == []


@pytest.mark.slow
def test_server_rejects_a_bad_assignment_with_4xx(servers, model_graph):
    _, x, graph = model_graph
    with pytest.raises(TransportError, match="422|one part id per node"):
        servers["edge"].run_part(MODEL, [0, 1], 1, {graph.input_names[0]: x})
    with pytest.raises(TransportError, match="takes tensors"):
        servers["edge"].run_part(MODEL, _residual_plan(graph), 1, {"nope": x})


@pytest.mark.slow
def test_run_plan_command_executes_a_saved_plan(cli, servers, model_graph, tmp_path):
    import json

    from edgesplit.plan.types import Plan

    _, _, graph = model_graph
    plan = Plan("mobilenet_v2", "hand", DEVICES, tuple(_residual_plan(graph)))
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan.to_dict()))
    args = ["run-plan", str(path), "--json"]
    for name in ("edge", "cloud"):
        args += ["--remote", f"{name}={servers[name].client.base_url}"]
    doc = cli(*args).json()
    assert doc["equal_to_local"] is True
    assert [h["device"] for h in doc["hops"]] == ["edge", "cloud"]
