"""BranchyNet models, data loaders, exit probabilities and the clear errors on bad instances."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from edgesplit.earlyexit.instance import EarlyExitInstance, build_problem
from edgesplit.earlyexit.problem import Requirement, check_accuracies, exit_probabilities
from edgesplit.errors import InputError
from edgesplit.models.branchy import (
    BranchyNet,
    Split,
    cifar10,
    entropy,
    exit_accuracies,
    joint_loss,
    train,
    zuo_alexnet,
)


def test_zuo_alexnet_structure() -> None:
    from edgesplit.earlyexit.instance import classify
    from edgesplit.graph import trace

    net = zuo_alexnet()
    graph = trace(net, torch.randn(1, 3, 32, 32))
    trunk, branches = classify(graph, net.n_exits)
    assert [len(b) for b in branches] == [7, 7, 8, 8]
    assert sum(len(s) for s in trunk) == 22
    kinds = {graph.nodes[i].kind for s in trunk for i in s}
    assert kinds == {"conv", "activation", "pool", "lrn", "dropout", "linear"}


def test_forward_exit_matches_full_forward(tiny) -> None:
    net, x = tiny
    outs = net(x)
    for k in range(1, net.n_exits + 1):
        assert torch.equal(net.forward_exit(x, k), outs[k - 1])


def test_entropy_exit_rule(tiny) -> None:
    net, x = tiny
    k, logits = net.infer_entropy(x, [1e9, 1e9])
    assert k == 1 and torch.equal(logits, net.forward_exit(x, 1))
    k, logits = net.infer_entropy(x, [-1.0, -1.0])
    assert k == 3 and torch.equal(logits, net.forward_exit(x, 3))
    uniform = torch.zeros(1, 10)
    assert float(entropy(uniform)[0]) == pytest.approx(np.log(10))


def test_joint_loss_trains_every_exit(tiny) -> None:
    net, _ = tiny
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, 3, 8, 8, generator=gen)
    y = torch.randint(0, 10, (64,), generator=gen)
    before = float(joint_loss(net(x), y).detach())
    model = BranchyNet(list(net.trunk), list(net.branches))
    history = train(model, Split(x, y, x, y), epochs=4, batch_size=32, lr=1e-2)
    assert history[-1] < before
    acc = exit_accuracies(model, x, y)
    assert len(acc) == 3 and all(0 <= a <= 1 for a in acc)


def _write_fake_cifar(root: Path, n: int) -> None:
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            "labels": [int(v) for v in rng.integers(0, 10, n)],
        }
        (base / name).write_bytes(pickle.dumps(batch))
    meta = {"label_names": [f"c{i}" for i in range(10)]}
    (base / "batches.meta").write_bytes(pickle.dumps(meta))


def test_cifar10_loader_on_fake_data(tmp_path: Path) -> None:
    _write_fake_cifar(tmp_path, 4)
    split = cifar10(tmp_path, verify=False)
    assert split.x_train.shape == (20, 3, 32, 32) and split.x_test.shape == (4, 3, 32, 32)
    assert split.x_train.min() >= -1 and split.x_train.max() <= 1
    with pytest.raises(InputError, match="CIFAR-10 not found"):
        cifar10(tmp_path / "nowhere")


def test_exit_probabilities_sum_to_one_and_match_cdf() -> None:
    acc = [0.524, 0.589, 0.654, 0.719, 0.784]
    p = exit_probabilities(acc, Requirement.normal())
    assert sum(p) == pytest.approx(1.0)
    dist = stats.norm(0.625, 0.053)
    mass = dist.cdf(1) - dist.cdf(0)
    assert p[2] == pytest.approx((dist.cdf(0.654) - dist.cdf(0.589)) / mass)
    emp = exit_probabilities([0.5, 0.8], Requirement(samples=[0.1, 0.5, 0.6, 0.9]))
    assert emp == pytest.approx((0.5, 0.5))  # 0.9 is above every exit: served by the last


def test_error_accuracies_decreasing() -> None:
    with pytest.raises(InputError, match="must not decrease with depth: exit 2"):
        check_accuracies([0.9, 0.8, 0.95], 3)


def test_error_distribution_without_support() -> None:
    with pytest.raises(InputError, match="no probability in \\[0, 1\\]"):
        exit_probabilities([0.5, 0.7], Requirement(stats.uniform(loc=2.0, scale=1.0)))


def test_error_empty_branch() -> None:
    with pytest.raises(InputError, match="side branch 1 is empty"):
        BranchyNet([nn.Sequential(nn.ReLU()), nn.Sequential(nn.ReLU())], [nn.Sequential()])


def test_error_unknown_distribution_and_bad_link() -> None:
    with pytest.raises(InputError, match="not a scipy.stats distribution"):
        EarlyExitInstance.model_validate(
            {"requirement": {"distribution": "nope"}}
        ).requirement.build()
    with pytest.raises(ValueError, match="rate_mbps"):
        EarlyExitInstance.model_validate(
            {"wireless": {"rate_mbps": 5, "width_hz": 1e6, "snr_db": 3}}
        )


def test_shannon_rate_link() -> None:
    inst = EarlyExitInstance.model_validate({"wireless": {"width_hz": 20e6, "snr_db": 10}})
    assert inst.wireless.rate_bps == pytest.approx(20e6 * np.log2(11.0))
    # The short forms and a system-file link are the same Link.
    short = EarlyExitInstance.model_validate({"wired": {"rate_mbps": 1000}})
    long = EarlyExitInstance.model_validate({"wired": {"bandwidth": "1Gbit"}})
    assert short.wired == long.wired and short.wired.rate_bps == 1e9
    with pytest.raises(ValueError, match="wired.rtt"):
        EarlyExitInstance.model_validate({"wired": {"bandwidth": "1Gbit", "rtt": "5ms"}})


def test_problem_evaluator_by_hand(tiny, tiny_problem) -> None:
    """Recompute exit 1's latency from the formulas for an all-edge assignment."""
    problem, _graph = tiny_problem
    genes = [1] * problem.n_layers
    chain = problem.chain(1)
    execution = sum(problem.layers[i].seconds[1] for i in chain)
    up = problem.input_bytes * 8 / problem.wireless_bps
    down = problem.layers[chain[-1]].output_bytes * 8 / problem.wireless_bps
    fixed = problem.loading[1] + problem.parsing[0]
    got = problem.latency(1, genes)
    assert got["total_s"] == pytest.approx(execution + up + down + fixed)


def test_fitted_predictors_build_a_problem(tiny) -> None:
    net, x = tiny
    inst = EarlyExitInstance(predictors="fitted", include_loading=False)
    problem, _ = build_problem(net, x, [0.5, 0.6, 0.7], Requirement.normal(), inst)
    assert all(t >= 0 for layer in problem.layers for t in layer.seconds)
    cloud_faster = [layer.seconds[2] <= layer.seconds[1] + 1e-15 for layer in problem.layers]
    assert all(cloud_faster)


def test_table42_layer_time_by_hand() -> None:
    """zuo_alexnet's first conv on the edge, from Table 4.2 typed in here independently."""
    from edgesplit.earlyexit.instance import load_instance_problem

    problem, _g, _n, _x = load_instance_problem(EarlyExitInstance(include_loading=False))
    conv = problem.layers[0]
    assert conv.kind == "conv"
    x1, x2 = 3 * 32 * 32 * 4, (5 / 1) ** 2 * 32 * 3  # input bytes, (K/S)^2 * K_n * C
    edge_ms = 6.03e-5 * x1 + 1.24e-4 * x2 + 1.89e-1
    mobile_ms = 6.13e-3 * x1 + 2.67e-2 * x2 - 9.909
    assert conv.seconds[1] * 1000 == pytest.approx(edge_ms)
    assert conv.seconds[0] * 1000 == pytest.approx(mobile_ms)
    assert conv.seconds[2] == pytest.approx(conv.seconds[1] / 4.0)  # cloud: edge / 4
