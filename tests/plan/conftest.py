"""Graphs, random problems, an independent evaluator and a brute-force oracle shared by the
planning and placement tests.

The evaluator here is written from the semantics in the docstring of
:mod:`edgesplit.plan.problem`, graph-level and with networkx, and shares no code with
:mod:`edgesplit.plan.evaluate`: it is what the solvers' figures are checked against.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import cache

import networkx as nx
import numpy as np
import pytest
import torch
from torch import nn

from edgesplit.graph import Graph, trace
from edgesplit.graph.types import Node, Tensor
from edgesplit.models import build
from edgesplit.plan.problem import Problem
from edgesplit.system import PowerModel
from edgesplit.system.link import Link


class TinyResidual(nn.Module):
    """A ResNet/GoogLeNet-like DAG small enough for exhaustive enumeration (11 nodes): a
    shared tensor read three times, a residual add, a concat; cuts cross two tensors."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.left = nn.Conv2d(8, 8, 3, padding=1)
        self.right = nn.Conv2d(8, 8, 1)
        self.mix = nn.Conv2d(8, 4, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.stem(x))
        y = self.left(h) + self.right(h)
        z = torch.cat([self.mix(y), self.mix(h)], dim=1)
        return self.fc(torch.flatten(self.pool(z[:, :4]), 1))


@pytest.fixture(scope="session")
def mnist_graph() -> Graph:
    module, x = build("mnist_cnn")
    return trace(module, x, name="mnist_cnn")


@pytest.fixture(scope="session")
def alexnet_graph() -> Graph:
    module, x = build("alexnet")
    return trace(module, x, name="alexnet")


@pytest.fixture(scope="session")
def tiny() -> tuple[nn.Module, torch.Tensor, Graph]:
    """The TinyResidual module, an input and its graph (for execution checks)."""
    model = TinyResidual().eval()
    x = torch.randn(1, 3, 8, 8)
    return model, x, trace(model, x, name="tiny_residual")


@pytest.fixture(scope="session")
def dag_graph(tiny: tuple[nn.Module, torch.Tensor, Graph]) -> Graph:
    return tiny[2]


def link(bandwidth_bps: float, rtt_s: float = 0.0) -> Link:
    return Link.of(bandwidth_bps, rtt_s)


# -- random problems ----------------------------------------------------------------------
def random_problem(graph: Graph, seed: int, **kwargs: object) -> Problem:
    """A random two-tier (edge, cloud) problem in Luger's setting."""
    rng = np.random.default_rng(seed)
    n = len(graph.nodes)
    return Problem.two_tier(
        graph,
        rng.uniform(1e-4, 2e-2, n),
        rng.uniform(1e-5, 2e-3, n),
        bandwidth_bps=float(rng.uniform(1e5, 1e8)),
        rtt_s=float(rng.uniform(0, 0.1)),
        edge_price_per_hour=0.224,
        cloud_price_per_hour=0.1664,
        edge_power=PowerModel(constant_w=float(rng.uniform(1, 5))),
        **kwargs,  # type: ignore[arg-type]
    )


def message_problem(
    graph: Graph, seed: int, k: int, rtt: float = 1e-4, objective: str = "latency"
) -> Problem:
    """k devices, per-node times drawn per device, every pair linked fast enough to split."""
    rng = np.random.default_rng(seed)
    n = len(graph.nodes)
    return Problem(
        graph=graph,
        devices=tuple(f"d{i}" for i in range(k)),
        seconds=rng.uniform(0.5e-3, 5e-3, (k, n)),
        links={
            frozenset((i, j)): link(float(rng.uniform(5e6, 5e7)), rtt)
            for i in range(k)
            for j in range(i + 1, k)
        },
        price_per_second=tuple(float(p) for p in rng.uniform(0, 1e-3, k)),
        objective=objective,  # type: ignore[arg-type]
    )


def synthetic_graph(name: str, edges: Sequence[tuple[int, int]], sizes: Sequence[int]) -> Graph:
    """A cost-only graph: node ``v`` (``sizes[v]`` bytes) produces ``t{v}`` for its successors."""
    n = len(sizes)
    succ: dict[int, list[int]] = {v: [] for v in range(n)}
    pred: dict[int, list[int]] = {v: [] for v in range(n)}
    for u, v in edges:
        succ[u].append(v)
        pred[v].append(u)
    nodes = tuple(
        Node(
            name=f"v{v}",
            index=v,
            kind="other",
            target="x",
            inputs=tuple(f"t{u}" for u in pred[v]),
            outputs=(f"t{v}",),
            input_shapes=(),
            output_shape=(),
            dtype="float32",
            output_bytes=0,
            flops=0,
            params=0,
            param_bytes=int(sizes[v]),
        )
        for v in range(n)
    )
    tensors = tuple(
        Tensor(f"t{v}", (), "float32", 0, f"v{v}", tuple(f"v{w}" for w in succ[v]))
        for v in range(n)
    )
    return Graph(name, "op", nodes, tensors, (), ())


def tensor_problem(
    seed: int,
    n: int,
    accelerators: int,
    *,
    chain: bool = False,
    identical: bool = True,
    colours: bool = False,
    tight_memory: bool = False,
    semantics: str = "critical",
) -> Problem:
    """A random Tarnawski-style problem: a host plus accelerators, per-tensor costs."""
    rng = np.random.default_rng(seed)
    edges: list[tuple[int, int]] = []
    for v in range(1, n):
        if chain:
            edges.append((v - 1, v))
            continue
        parents = rng.choice(v, size=min(v, int(rng.choice([1, 1, 2]))), replace=False)
        edges += [(int(u), v) for u in parents]
    host = rng.uniform(1, 10, n)

    def acc_row() -> np.ndarray:
        return np.where(rng.random(n) > 0.1, host * rng.uniform(0.1, 0.6, n), math.inf)

    k = accelerators
    first_t, first_c = acc_row(), rng.uniform(0.2, 4.0, n)
    times = [first_t if identical or a == 0 else acc_row() for a in range(k)]
    costs = [first_c if identical or a == 0 else rng.uniform(0.2, 4.0, n) for a in range(k)]
    size = rng.integers(1, 4, n)
    graph = synthetic_graph(f"random{seed}", edges, size.tolist())
    colour = list(range(n))
    if colours and n > 3:
        # tie one node to a successor, as the operator graphs tie weights to operators
        u, v = edges[int(rng.integers(len(edges)))]
        colour[v] = colour[u]
    cap = float(size.sum()) * (0.4 if tight_memory else 2.0)
    return Problem(
        graph=graph,
        devices=("host", *(f"acc{a}" for a in range(k))),
        seconds=np.array([host, *times]),
        links={},
        price_per_second=(0.0,) * (k + 1),
        memory_bytes=(None, *([cap] * k)),
        semantics=semantics,  # type: ignore[arg-type]
        comm="tensor",
        colour=tuple(colour),
        tensor_seconds=np.array([np.zeros(n), *costs]),
    )


# -- the independent evaluator -------------------------------------------------------------
@cache
def _descendants(graph: Graph) -> dict[str, set[str]]:
    g = nx.DiGraph()
    g.add_nodes_from(n.name for n in graph.nodes)
    for t in graph.tensors:
        if t.producer is not None:
            g.add_edges_from((t.producer, c) for c in t.consumers if c != t.producer)
    return {v: nx.descendants(g, v) for v in g.nodes}


def _per_tensor_seconds(problem: Problem, d: int, j: int) -> float:
    if not problem.links:  # costs given directly (Tarnawski files, synthetic problems)
        assert problem.tensor_seconds is not None
        return float(problem.tensor_seconds[d][j])
    lk = problem.links.get(frozenset((problem.source, d)))
    nbytes = problem.graph.tensors[j].nbytes
    if nbytes == 0:
        return 0.0
    return math.inf if lk is None else nbytes * 8 / lk.rate_bps + lk.rtt / 2


def independent(problem: Problem, assignment: Sequence[int]) -> tuple[bool, float, float]:
    """``(feasible, latency, objective)`` of ``assignment``, from the written semantics."""
    g, src, k = problem.graph, problem.source, len(problem.devices)
    on = {nd.name: assignment[nd.index] for nd in g.nodes}
    feasible = all(math.isfinite(problem.seconds[on[v.name], v.index]) for v in g.nodes)
    for d in range(k):
        held = sum(v.param_bytes + v.output_bytes for v in g.nodes if on[v.name] == d)
        cap = problem.memory_bytes[d]
        feasible &= cap is None or held <= cap * (1 + 1e-9)
    for c in set(problem.colour):
        feasible &= len({assignment[v] for v in range(len(g.nodes)) if problem.colour[v] == c}) == 1
    if problem.contiguous:
        desc = _descendants(g)
        for d in range(k):
            if problem.comm == "tensor" and d == src:
                continue  # the host runs nodes one by one
            members = {v for v in on if on[v] == d}
            for u in members:
                for w in desc[u] - members:
                    feasible &= not (desc[w] & members)
    busy = [0.0] * k
    for v in g.nodes:
        busy[on[v.name]] += float(problem.seconds[on[v.name], v.index])
    charged = [0.0] * k
    if problem.comm == "message":
        volume: dict[tuple[int, int], int] = {}
        for t in g.tensors:
            p = src if t.producer is None else on[t.producer]
            for r in {on[c] for c in t.consumers} | ({src} if t.is_output else set()):
                if r != p:
                    volume[(p, r)] = volume.get((p, r), 0) + t.nbytes
        comm = 0.0
        for (p, r), nbytes in volume.items():
            lk = problem.links.get(frozenset((p, r)))
            comm += math.inf if lk is None else nbytes * 8 / lk.rate_bps + lk.rtt / 2
    else:
        for j, t in enumerate(g.tensors):
            p = src if t.producer is None else on[t.producer]
            readers = {on[c] for c in t.consumers} | ({src} if t.is_output else set())
            if readers - {p}:
                for d in (readers | {p}) - {src}:
                    charged[d] += _per_tensor_seconds(problem, d, j)
        comm = sum(charged)
    if problem.semantics == "sequential":
        latency = sum(busy) + comm
    else:
        units = nx.DiGraph()

        def unit(name: str) -> str:
            return f"node:{name}" if on[name] == src else f"dev:{on[name]}"

        for v in g.nodes:
            units.add_node(unit(v.name))
        for t in g.tensors:
            for c in t.consumers:
                if t.producer is not None and unit(t.producer) != unit(c):
                    units.add_edge(unit(t.producer), unit(c))
        if not nx.is_directed_acyclic_graph(units):
            return False, math.inf, math.inf
        ready: dict[str, float] = {}
        for x in nx.topological_sort(units):
            if x.startswith("node:"):
                own = float(problem.seconds[src, g.index(x[5:])])
            else:
                own = busy[int(x[4:])] + charged[int(x[4:])]
            ready[x] = max((ready[p] for p in units.predecessors(x)), default=0.0) + own
        latency = max(ready.values())
    cost = sum(b * p for b, p in zip(busy, problem.price_per_second))
    energy = 0.0
    for d, pm in enumerate(problem.power):
        if pm is not None:
            energy += pm.watts(problem.busy_utilisation[d]) * busy[d]
            if d == src:
                energy += pm.watts(problem.idle_utilisation[d]) * (latency - busy[d])
    objective = {"latency": latency, "cost": cost, "energy": energy}.get(
        problem.objective,
        (1 - problem.weight) * latency / problem.latency_scale
        + problem.weight * cost / problem.cost_scale,
    )
    return feasible, latency, objective


def brute_force(problem: Problem) -> float:
    """The optimum over all kⁿ assignments under the independent evaluator."""
    best = math.inf
    for a in itertools.product(range(problem.n_devices), repeat=problem.n_nodes):
        ok, _, value = independent(problem, a)
        if ok:
            best = min(best, value)
    return best


@pytest.fixture(scope="session")
def make_problem() -> object:
    """``make_problem(graph, seed, **kwargs)``: a random two-tier problem."""
    return random_problem
