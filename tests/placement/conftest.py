"""Random placement instances and a brute-force oracle shared by the placement tests."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from edgesplit.placement import Instance, evaluate


def random_instance(
    seed: int,
    n: int,
    accelerators: int,
    chain: bool = False,
    identical: bool = True,
    colours: bool = False,
    tight_memory: bool = False,
) -> Instance:
    rng = random.Random(seed)
    edges = []
    for v in range(1, n):
        if chain:
            edges.append((v - 1, v))
            continue
        parents = rng.sample(range(v), k=min(v, rng.choice([1, 1, 2])))
        edges += [(u, v) for u in parents]
    host = [rng.uniform(1, 10) for _ in range(n)]

    def acc_row() -> list[float]:
        return [h * rng.uniform(0.1, 0.6) if rng.random() > 0.1 else math.inf for h in host]

    def cost_row() -> list[float]:
        return [rng.uniform(0.2, 4.0) for _ in range(n)]

    k = accelerators
    times = [acc_row()] * k if identical else [acc_row() for _ in range(k)]
    costs = [cost_row()] * k if identical else [cost_row() for _ in range(k)]
    size = [rng.uniform(1, 3) for _ in range(n)]
    memory = [sum(size) * (0.4 if tight_memory else 2.0)] * k
    colour = list(range(n))
    if colours and n > 3:
        # tie one node to a successor, as the operator graphs tie weights to operators
        u, v = edges[rng.randrange(len(edges))]
        colour[v] = colour[u]
    ids = list(range(100, 100 + n))
    return Instance.create(
        name=f"random{seed}",
        ids=ids,
        edges=[(ids[u], ids[v]) for u, v in edges],
        host_time=host,
        acc_time=times,
        acc_cost=costs,
        size=size,
        acc_memory=memory,
        colour=colour,
        identical=identical,
    )


def brute_force(inst: Instance, semantics: str, contiguous: bool = True) -> float:
    best = math.inf
    for a in itertools.product(range(inst.accelerators + 1), repeat=inst.n):
        best = min(best, evaluate(inst, a, semantics, contiguous).latency)
    return best


@pytest.fixture(scope="session")
def make_instance():
    return random_instance


@pytest.fixture(scope="session")
def oracle():
    return brute_force
