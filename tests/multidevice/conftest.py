"""Fixtures for the multi-device tests: small random instances with integer delays."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from edgesplit.multidevice import DeviceCosts, MecProblem
from edgesplit.system.link import Link


def random_problem(seed: int, n: int, m_range: tuple[int, int]) -> MecProblem:
    """Integer delays and bytes so that the solvers' rounding is exact."""
    rng = random.Random(seed)
    devices = []
    for i in range(n):
        m = rng.randint(*m_range)
        devices.append(
            DeviceCosts(
                name=f"d{i}",
                model="explicit",
                layers=tuple(f"l{j}" for j in range(m)),
                local_s=tuple(float(rng.randint(1, 9)) for _ in range(m)),
                server_s=tuple(float(rng.randint(0, 3)) for _ in range(m)),
                cut_bytes=tuple(rng.randint(0, 5) for _ in range(m + 1)),
                uplink=Link.of(8.0),  # one byte per second
            )
        )
    return MecProblem(tuple(devices))


@pytest.fixture
def make_problem() -> Callable[[int, int, tuple[int, int]], MecProblem]:
    return random_problem
