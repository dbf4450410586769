"""The device-side Python API (``edgesplit.Deployment``) against real servers.

The README's snippet runs as written against two uvicorn servers on free loopback ports
(the example topology's URLs rewritten to them), and its outputs are checked by the oracle
``torch.equal`` against the unsplit model: all tiers share this process's kernels and
threads and the codecs are lossless, so a split request must equal local inference bit
for bit. Bad input and a dead tier give the project's one-line errors.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from edgesplit import Deployment, Result
from edgesplit.errors import InputError, ShapeError, TransportError
from edgesplit.plan.types import Plan, load_plan
from edgesplit.runtime.engine import make_hops
from edgesplit.runtime.server import BackgroundServer, ServerConfig, create_app
from edgesplit.runtime.store import ModelStore
from edgesplit.system.topology import Topology, load_topology

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "examples" / "plan-resnet50-3tier.json"
TOPOLOGY = ROOT / "examples" / "topology-3tier.yaml"


def _snippet() -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- python-api-snippet[^>]*-->\n```python\n(.*?)```", text, re.S)
    assert found, "README lost its Python API snippet"
    return found.group(1)


@pytest.fixture(scope="module")
def three_tier(tmp_path_factory) -> Iterator[Path]:
    """Edge and cloud: real uvicorn servers on free ports sharing one resnet50 store.

    Each relays along its own topology (``serve --topology FILE --as NAME``); the ports are
    known once the servers bind, so the next hops are rebuilt from the rewritten file.
    """
    store = ModelStore(("resnet50",))
    example = load_topology(TOPOLOGY)
    apps = {
        name: create_app(
            ServerConfig(models=("resnet50",), topology=example, name=name), store=store
        )
        for name in ("edge", "cloud")
    }
    with BackgroundServer(apps["edge"]) as edge, BackgroundServer(apps["cloud"]) as cloud:
        text = TOPOLOGY.read_text()
        text = text.replace("http://127.0.0.1:8101", edge.url)
        text = text.replace("http://127.0.0.1:8102", cloud.url)
        path = tmp_path_factory.mktemp("topo") / "topology-3tier.yaml"
        path.write_text(text)
        topo = load_topology(path)
        for name, app in apps.items():
            # A request relays on the transport it came by (HTTP or WebSockets).
            app.state.hops = make_hops(topo, name, None, transport="http")
            app.state.wire_hops = make_hops(topo, name, None, transport="ws")
        yield path


@pytest.mark.slow
def test_readme_snippet_runs_and_matches_the_unsplit_model(three_tier, monkeypatch) -> None:
    code = _snippet().replace("examples/topology-3tier.yaml", str(three_tier))
    code = code.replace("examples/plan-resnet50-3tier.json", str(PLAN))
    seen: list[torch.Tensor] = []
    real_infer = Deployment.infer

    def infer(self: Deployment, *args: Any, **kwargs: Any) -> Result:
        seen.append(args[0])
        return real_infer(self, *args, **kwargs)

    monkeypatch.setattr(Deployment, "infer", infer)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == ["0", "1", "2"]
    # The edge forwarded to the cloud itself: both hops appear on every request.
    assert all("device->edge" in line and "edge->cloud" in line for line in lines)
    monkeypatch.undo()
    # Oracle: the printed top-1 class is the unsplit model's on the same inputs.
    with Deployment(PLAN, three_tier) as dep:
        for line, x in zip(lines, seen, strict=True):
            with torch.inference_mode():
                ref = dep.module(x)
            assert int(line.split()[1]) == int(ref.argmax(1))


@pytest.mark.slow
def test_infer_is_bitwise_equal_and_takes_plan_and_topology_objects(three_tier) -> None:
    plan: Plan = load_plan(PLAN)
    topo: Topology = load_topology(three_tier)
    with Deployment(plan, topo, codecs={"device-edge": "zstd"}) as dep:
        x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
        result = dep.infer(x)
        assert isinstance(result, Result)
        with torch.inference_mode():
            ref = dep.module(x)
        assert torch.equal(result.output, ref)
        assert list(result.outputs) == list(dep.graph.output_names)
        record = result.record
        assert record["failover"] is False
        assert {(h["src"], h["dst"], h["codec"]) for h in record["hops"]} == {
            ("device", "edge", "zstd"),
            ("edge", "cloud", "none"),
        }
        assert {s["device"] for s in record["stages"]} == {"device", "edge", "cloud"}
        # Bad input: one line naming the input, the shape it needs.
        with pytest.raises(ShapeError, match=r"input 'x' is float32\[1, 3, 32, 32\]") as err:
            dep.infer(torch.zeros(1, 3, 32, 32))
        assert "\n" not in str(err.value)
        with pytest.raises(ShapeError, match="int64"):
            dep.infer(torch.zeros(1, 3, 224, 224, dtype=torch.int64))
        with pytest.raises(InputError, match="no inputs"):
            dep.infer()
    with pytest.raises(InputError, match="closed"):
        dep.infer(x)
    # The codec the plan recorded (plan --codec) is used; HTTP works as the WebSockets do.
    recorded = Plan.from_dict(
        {**plan.to_dict(), "meta": {**plan.meta, "codecs": {"edge|cloud": "zstd"}}}
    )
    with Deployment(recorded, topo, transport="http") as dep:
        result = dep.infer(x)
        with torch.inference_mode():
            assert torch.equal(result.output, dep.module(x))
        assert {(h["src"], h["dst"], h["codec"]) for h in result.record["hops"]} == {
            ("device", "edge", "none"),
            ("edge", "cloud", "zstd"),
        }


@pytest.mark.slow
def test_a_dead_tier_is_a_transport_error_without_failover_and_local_with_it(
    three_tier, tmp_path
) -> None:
    dead = tmp_path / "dead.yaml"
    # A port nothing listens on (bound and closed again).
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    text = Path(three_tier).read_text()
    edge_url = re.search(r"url: (http://127\.0\.0\.1:\d+)", text)
    assert edge_url
    dead.write_text(text.replace(edge_url.group(1), f"http://127.0.0.1:{port}", 1))
    with pytest.raises(TransportError, match="unreachable") as err:
        Deployment(PLAN, dead, failover=False)
    assert "\n" not in str(err.value)
    with Deployment(PLAN, dead) as dep:
        assert dep.unreachable and "edge" in dep.unreachable[0]
        x = torch.randn(1, 3, 224, 224)
        result = dep.infer(x)
        assert result.record["failover"] is True
        with torch.inference_mode():
            assert torch.equal(result.output, dep.module(x))


def test_bad_plan_topology_and_codec_are_one_line_input_errors(tmp_path) -> None:
    from edgesplit.commands.common import load_graph

    topo = tmp_path / "t.yaml"
    topo.write_text(
        "devices:\n  - {name: device, url: local}\n  - {name: edge, url: http://127.0.0.1:9}\n"
        "links:\n  - {a: device, b: edge, bandwidth: 10mbit, codecs: [none]}\n"
    )
    n = len(load_graph("mnist_cnn")[0].nodes)
    errors = []
    wrong_count = Plan.two_tier("mnist_cnn", "manual", n - 1, 2, devices=("device", "edge"))
    with pytest.raises(InputError, match=f"assigns {n - 1} nodes") as err:
        Deployment(wrong_count, topo)
    errors.append(err)
    not_there = Plan.two_tier("mnist_cnn", "manual", n, 2, devices=("device", "cloud"))
    with pytest.raises(InputError, match="cloud") as err:
        Deployment(not_there, topo)
    errors.append(err)
    plan = Plan.two_tier("mnist_cnn", "manual", n, 2, devices=("device", "edge"))
    with pytest.raises(InputError, match="int8") as err:
        Deployment(plan, topo, codecs={"device|edge": "int8"})
    errors.append(err)
    with pytest.raises(InputError, match="codecs key"):
        Deployment(plan, topo, codecs={"deviceedge": "none"})
    exits = Plan.from_dict(
        {**plan.to_dict(), "exits": {"outputs": ["softmax"], "rule": "index", "index": 1}}
    )
    with pytest.raises(InputError, match="'exits'.*edgesplit run-plan"):
        Deployment(exits, topo)
    with pytest.raises(InputError, match="missing.yaml"):
        Deployment(plan, tmp_path / "missing.yaml")
    assert all("\n" not in str(e.value) for e in errors)
