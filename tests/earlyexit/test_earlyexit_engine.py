"""Early exits on the engine: real edge and cloud servers, nothing computed or sent past the exit.

A hand-made plan puts exit 1's chain on the mobile device, trunk segments 2-3 with their
branches on the edge and the rest on the cloud, so each exit stops at a different tier.
Oracles: the exit's logits are ``torch.equal`` to ``BranchyNet.forward_exit`` (servers in
this process: same kernels and threads); the stages of exit ``k`` hold exactly the nodes
of its chain (Zuo 2024, eq. 4.4); a link only deeper exits use carries 0 bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from edgesplit.earlyexit.instance import EarlyExitInstance, load_instance_problem
from edgesplit.earlyexit.problem import CLOUD, EDGE, MOBILE, to_plan
from edgesplit.earlyexit.run import INPUT_SHAPE, runnable_plan
from edgesplit.models import ModelRequest
from edgesplit.plan.types import Plan
from edgesplit.runtime.exits import exit_stages, link_bytes, open_exits, with_rule
from edgesplit.runtime.server import BackgroundServer, ServerConfig, ServerProcess, create_app
from edgesplit.runtime.stages import fingerprint
from edgesplit.system.topology import Topology

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def setup() -> Any:
    inst = EarlyExitInstance.model_validate(
        {"model": "zuo_alexnet", "accuracies": [0.5, 0.6, 0.7, 0.8, 0.9],
         "tiers": ["mobile", "edge", "cloud"], "wireless": {"rate_mbps": 50},
         "wired": {"rate_mbps": 1000}, "predictors": "table4.2"}
    )  # fmt: skip
    problem, graph, net, x = load_instance_problem(inst)
    genes = [MOBILE] * problem.n_layers
    for k, tier in ((2, EDGE), (3, EDGE), (4, CLOUD), (5, CLOUD)):
        for i in problem.trunk[k - 1] + (problem.branches[k - 1] if k < 5 else ()):
            genes[i] = tier
    plan = runnable_plan(to_plan(problem, genes, "hand"), problem, graph, None, 0.65)
    return problem, graph, net, x, plan


@pytest.fixture(scope="module")
def tiers(setup: Any) -> Iterator[Topology]:
    plan = setup[4]
    model = ModelRequest.from_options(plan.model, input_shape=INPUT_SHAPE)
    with BackgroundServer(create_app(ServerConfig(models=(model,)))) as cloud:
        doc = {
            "devices": [
                {"name": "mobile", "url": "local"},
                {"name": "edge", "url": "http://127.0.0.1:1"},
                {"name": "cloud", "url": cloud.url},
            ],
            "links": [
                {"a": "mobile", "b": "edge", "bandwidth": 1e9},
                {"a": "edge", "b": "cloud", "bandwidth": 1e9},
            ],
        }
        edge_app = create_app(
            ServerConfig(models=(model,), topology=Topology.model_validate(doc), name="edge")
        )
        with BackgroundServer(edge_app) as edge:
            doc["devices"][1]["url"] = edge.url
            yield Topology.model_validate(doc)


def runner(setup: Any, topo: Topology, **rule: Any) -> Any:
    _problem, graph, _net, _x, plan = setup
    spec = with_rule(plan.exits, **rule)
    return open_exits(plan, graph, fingerprint(graph), topo, spec=spec, failover=False)


def test_plan_file_round_trip_keeps_the_exits(setup: Any) -> None:
    plan = setup[4]
    assert plan.exits["rule"] == "requirement" and len(plan.exits["outputs"]) == 5
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


def test_each_exit_computes_exactly_its_chain(setup: Any) -> None:
    problem, graph, _net, _x, plan = setup
    for k, stages in enumerate(
        exit_stages(graph, plan.devices, plan.assignment, plan.exits["outputs"]), 1
    ):
        ran = {n for st in stages.stages for n in st.part.node_names}
        chain = {graph.nodes[problem.layers[i].node_index].name for i in problem.chain(k)}
        assert ran == chain
        assert stages.output_names == (plan.exits["outputs"][k - 1],)


def test_exit_by_index_sends_nothing_past_the_exit(setup: Any, tiers: Topology) -> None:
    _problem, _graph, net, x, plan = setup
    expected_links = {
        1: set(),
        2: {"edge|mobile"},
        3: {"edge|mobile"},
        4: {"edge|mobile", "cloud|edge"},
    }
    for k, links in expected_links.items():
        run = runner(setup, tiers, index=k)
        try:
            outs, record = run.infer([x])
        finally:
            run.close()
        assert record["exit"] == k and record["attempts"] == [
            {"exit": k, "total_s": record["total_s"]}
        ]
        assert torch.equal(outs[plan.exits["outputs"][k - 1]], net.forward_exit(x, k))
        sent = link_bytes(record)
        assert set(sent) == links and all(v > 0 for v in sent.values())
        assert {s["device"] for s in record["stages"]} <= {"mobile", "edge", "cloud"}


def test_requirement_and_entropy_rules(setup: Any, tiers: Topology) -> None:
    _problem, _graph, net, x, plan = setup
    run = runner(setup, tiers, requirement=0.65)  # accuracies 0.5..0.9: exit 3 is the first >= 0.65
    try:
        outs, record = run.infer([x])
    finally:
        run.close()
    assert record["exit"] == 3 and torch.equal(
        outs[plan.exits["outputs"][2]], net.forward_exit(x, 3)
    )
    # Entropy is >= 0: thresholds 0 never fire, a huge one always does.
    run = runner(setup, tiers, thresholds=[0.0, 0.0, 1e9, 1e9])
    try:
        outs, record = run.infer([x])
    finally:
        run.close()
    assert [a["exit"] for a in record["attempts"]] == [1, 2, 3] and record["exit"] == 3
    assert all(a["entropy"] >= 0 for a in record["attempts"])
    assert torch.equal(outs[plan.exits["outputs"][2]], net.forward_exit(x, 3))


@pytest.mark.slow
def test_earlyexit_example_runs_under_run_plan(
    cli_subprocess: Callable[..., Any], tmp_path: Path
) -> None:
    args = ("--input-shape", INPUT_SHAPE, "--threads", "1")
    model = "edgesplit.models.branchy:zuo_alexnet"
    cloud = ServerProcess((model,), args=args).start()
    edge = ServerProcess((model,), args=args)
    try:
        doc = yaml.safe_load((ROOT / "examples/topology-earlyexit.yaml").read_text())
        urls = {"edge": edge.url, "cloud": cloud.url}
        for dev in doc["devices"]:
            dev["url"] = urls.get(dev["name"], dev["url"])
        topo = tmp_path / "topology.yaml"
        topo.write_text(yaml.safe_dump(doc))
        edge.args = (*args, "--topology", str(topo), "--as", "edge")
        edge.start()
        out = cli_subprocess(
            "run-plan", ROOT / "examples/plan-earlyexit.json", "--topology", topo,
            "-n", "3", "--check", "--threads", "1", "--trust-model-code",
            "--jsonl", tmp_path / "records.jsonl", "--json",
        )  # fmt: skip
    finally:
        edge.kill()
        cloud.kill()
    assert out.code == 0, out.stderr
    result = out.json()
    assert result["bitwise_expected"] and result["equal_to_local"] and result["checked"] == 3
    assert result["rule"]["rule"] == "requirement" and result["requests"] == 3
    rows = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [0, 1, 2] and all(r["equal"] for r in rows)
    assert all(r["exit"] == rows[0]["exit"] for r in rows)
