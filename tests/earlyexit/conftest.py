"""Small BranchyNets and problems shared by the early-exit tests."""

from __future__ import annotations

import itertools
import random

import pytest
import torch
from torch import nn

from edgesplit.earlyexit.instance import EarlyExitInstance, build_problem
from edgesplit.earlyexit.problem import EarlyExitProblem, Layer, Requirement
from edgesplit.models.branchy import BranchyNet, FlattenLinear, branchy_from_backbone


def tiny_branchy() -> BranchyNet:
    """Three exits, 8 layers: trunk 2+2+1, side branches 2 and 1."""
    torch.manual_seed(0)
    backbone = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.LocalResponseNorm(2),
        FlattenLinear(4 * 4 * 4, 10),
    )  # fmt: skip
    branches = [
        nn.Sequential(nn.Dropout(0.5), FlattenLinear(4 * 8 * 8, 10)),
        nn.Sequential(FlattenLinear(4 * 4 * 4, 10)),
    ]
    return branchy_from_backbone(backbone, [1, 3], branches).eval()


def brute_force(problem: EarlyExitProblem) -> float:
    return min(
        problem.expected_latency(a)
        for a in itertools.product(problem.tiers, repeat=problem.n_layers)
    )


def random_problem(seed: int, loading: bool = True) -> EarlyExitProblem:
    """A 3-exit problem with random costs: trunk 2+1+2, branches 2 and 1 (8 layers)."""
    rng = random.Random(seed)
    layers = tuple(
        Layer(f"l{i}", i, "conv",
              (rng.uniform(0, 0.05), rng.uniform(0, 0.01), rng.uniform(0, 0.005)),
              rng.randint(100, 200_000), rng.randint(0, 10_000))
        for i in range(8)
    )  # fmt: skip
    probs = [rng.random() for _ in range(3)]
    return EarlyExitProblem(
        name=f"random{seed}", layers=layers, trunk=((0, 1), (2,), (3, 4)),
        branches=((5, 6), (7,)), input_bytes=rng.randint(1000, 100_000),
        wireless_bps=rng.uniform(1e6, 1e8), wired_bps=rng.uniform(1e8, 1e9),
        accuracies=(0.5, 0.6, 0.7), probabilities=tuple(p / sum(probs) for p in probs),
        loading=(0.02, 0.004, 0.003) if loading else (0.0, 0.0, 0.0),
        parsing=(0.001, 0.002, 0.003),
    )  # fmt: skip


@pytest.fixture(scope="session")
def tiny() -> tuple[BranchyNet, torch.Tensor]:
    return tiny_branchy(), torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="session")
def tiny_problem(tiny: tuple[BranchyNet, torch.Tensor]) -> tuple[EarlyExitProblem, object]:
    net, x = tiny
    problem, graph = build_problem(
        net, x, [0.5, 0.62, 0.7], Requirement.normal(), EarlyExitInstance(), name="tiny"
    )
    return problem, graph


@pytest.fixture(scope="session")
def brute():  # type: ignore[no-untyped-def]
    return brute_force


@pytest.fixture(scope="session")
def make_random():  # type: ignore[no-untyped-def]
    return random_problem
