"""Graphs and random two-tier problems shared by the planning tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgesplit.graph import Graph, trace
from edgesplit.models import build
from edgesplit.plan.problem import Problem
from edgesplit.system import PowerModel, Prices


class TinyResidual(nn.Module):
    """A DAG: two cuts cross two tensors (the skip and the main path)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, padding=1)
        self.r1 = nn.ReLU()
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.r2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.r1(self.c1(x))
        z = self.r2(self.c2(y)) + y
        return self.fc(self.flat(self.pool(z)))


@pytest.fixture(scope="session")
def mnist_graph() -> Graph:
    module, x = build("mnist_cnn")
    return trace(module, x, name="mnist_cnn")


@pytest.fixture(scope="session")
def alexnet_graph() -> Graph:
    module, x = build("alexnet")
    return trace(module, x, name="alexnet")


@pytest.fixture(scope="session")
def dag_graph() -> Graph:
    torch.manual_seed(0)
    return trace(TinyResidual(), torch.randn(1, 3, 8, 8), name="tiny_residual")


def random_problem(graph: Graph, seed: int, **kwargs: object) -> Problem:
    rng = np.random.default_rng(seed)
    n = len(graph.nodes)
    return Problem.two_tier(
        graph,
        rng.uniform(1e-4, 2e-2, n),
        rng.uniform(1e-5, 2e-3, n),
        bandwidth_bps=float(rng.uniform(1e5, 1e8)),
        rtt_s=float(rng.uniform(0, 0.1)),
        edge_price_per_hour=Prices().edge_per_hour,
        cloud_price_per_hour=Prices().cloud_per_hour,
        edge_power=PowerModel(constant_w=float(rng.uniform(1, 5))),
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
def make_problem() -> object:
    """``make_problem(graph, seed, **kwargs)``: a random two-tier problem."""
    return random_problem
