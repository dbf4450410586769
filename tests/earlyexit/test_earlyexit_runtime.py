"""Early-exit execution is torch.equal to the unsplit BranchyNet up to the same exit."""

from __future__ import annotations

import itertools
import random

import pytest
import torch
from fastapi.testclient import TestClient

from edgesplit.earlyexit.instance import EarlyExitInstance
from edgesplit.earlyexit.problem import CLOUD, EDGE
from edgesplit.earlyexit.runtime import EarlyExitAgent, EarlyExitExecutor, execute
from edgesplit.earlyexit.server import PATH, launch, make_app, write_spec
from edgesplit.runtime.wire import decode_tensors, encode_tensors


def _in_process(ex: EarlyExitExecutor, log: list[tuple[int, list[int], list[str]]]):  # type: ignore[no-untyped-def]
    def send(tier, parts, returns, tensors):  # type: ignore[no-untyped-def]
        log.append((tier, list(parts), sorted(tensors)))
        return execute(ex, tier, parts, returns, tensors, send)

    return send


@pytest.mark.parametrize("seed", range(4))
def test_every_exit_equal_to_unsplit(seed: int, tiny, tiny_problem) -> None:
    net, x = tiny
    problem, graph = tiny_problem
    rng = random.Random(seed)
    genes = [rng.choice([0, 1, 2]) for _ in range(problem.n_layers)]
    ex = EarlyExitExecutor(graph, problem, genes)
    log: list[tuple[int, list[int], list[str]]] = []
    agent = EarlyExitAgent(ex, _in_process(ex, log))
    for k in range(1, problem.n_exits + 1):
        log.clear()
        result = agent.infer(x, exit=k)
        assert result.exit == k
        assert torch.equal(result.logits, net.forward_exit(x, k))
        # Nothing past the exit is computed or sent.
        allowed = set(ex.exit_parts(k))
        assert all(set(parts) <= allowed for _t, parts, _n in log)


def test_exit_by_requirement_and_entropy(tiny, tiny_problem) -> None:
    net, x = tiny
    problem, graph = tiny_problem
    ex = EarlyExitExecutor(graph, problem, [1] * problem.n_layers)
    agent = EarlyExitAgent(ex, _in_process(ex, []))
    assert agent.infer(x, requirement=0.6).exit == 2  # accuracies 0.5, 0.62, 0.7
    assert agent.infer(x, requirement=0.99).exit == 3
    k_ref, ref = net.infer_entropy(x, [2.0, 2.2])
    got = agent.infer(x, thresholds=[2.0, 2.2])
    assert got.exit == k_ref and torch.equal(got.logits, ref)


def test_tier_patterns_sample_on_tiny_net(tiny, tiny_problem) -> None:
    net, x = tiny
    problem, graph = tiny_problem
    for genes in itertools.islice(
        itertools.product((0, 1, 2), repeat=problem.n_layers), 0, None, 331
    ):
        ex = EarlyExitExecutor(graph, problem, list(genes))
        agent = EarlyExitAgent(ex, _in_process(ex, []))
        assert torch.equal(agent.infer(x, exit=3).logits, net.forward_exit(x, 3))


def test_server_app_rejects_bad_parts(tiny_problem) -> None:
    problem, graph = tiny_problem
    ex = EarlyExitExecutor(graph, problem, [EDGE] * problem.n_layers)
    client = TestClient(make_app(ex, EDGE))
    body = encode_tensors({"x": torch.zeros(1, 3, 8, 8)})
    r = client.post(PATH, content=body, headers={"x-parts": "999", "x-return": ""})
    assert r.status_code == 400 and "x-parts" in r.text
    r = client.post(PATH, content=b"junk", headers={"x-parts": "0", "x-return": ""})
    assert r.status_code == 400


@pytest.mark.slow
def test_three_processes_equal_to_unsplit(tmp_path) -> None:
    """Agent here, edge and cloud as real server processes on loopback."""
    from edgesplit.earlyexit.instance import load_instance_problem
    from edgesplit.earlyexit.server import http_send

    inst = EarlyExitInstance()
    problem, graph, net, x = load_instance_problem(inst)
    rng = random.Random(3)
    genes = [rng.choice([0, EDGE, CLOUD]) for _ in range(problem.n_layers)]
    spec = {"instance": inst.model_dump(), "accuracies": list(problem.accuracies),
            "genes": genes, "weights": None}  # fmt: skip
    path = write_spec(tmp_path / "spec.json", spec)
    ex = EarlyExitExecutor(graph, problem, genes)
    with launch(path) as urls:
        agent = EarlyExitAgent(ex, http_send(urls))
        for k in range(1, problem.n_exits + 1):
            assert torch.equal(agent.infer(x, exit=k).logits, net.forward_exit(x, k))
    assert decode_tensors(encode_tensors({"a": torch.ones(2)}))["a"].sum() == 2
