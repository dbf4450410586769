"""Luger Algorithm 1: the Figure 4.4 example by hand, its ends, and a literal transcription."""

from __future__ import annotations

import numpy as np
import pytest

from edgesplit.plan.tradeoff import luger_tradeoff

# Figure 4.4 setting: 20 layers, w = 0.55, rented edge so cost rises with the split point.
FIG44_COST = [float(i) for i in range(20)]
FIG44_LAT_ORDER = [7, 12, 1, 3, 0, 2, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19]
FIG44_LAT = [0.0] * 20
for rank, layer in enumerate(FIG44_LAT_ORDER):
    FIG44_LAT[layer] = float(rank + 1)


def test_figure_4_4_traced_by_hand() -> None:
    # adv = 20·(0.55−0.5)·2 = 2 entries of advantage for the cheapest array.
    # step 1: cost [0]    vs latency [7, 12, 1]       -> no match
    # step 2: cost [0, 1] vs latency [7, 12, 1, 3]    -> match: layer 1
    assert luger_tradeoff(FIG44_LAT, FIG44_COST, 0.55) == 1
    # w = 0.7: adv = 8, cost [0] vs latency [7, 12, 1, 3, 0, 2, 4, 5, 6] -> 0 at step 1
    assert luger_tradeoff(FIG44_LAT, FIG44_COST, 0.7) == 0
    # w = 0.45 favours latency: latency [7], [7, 12], [7, 12, 1] vs cost [0..2], [0..3],
    # [0..4] -> layer 1 at step 3
    assert luger_tradeoff(FIG44_LAT, FIG44_COST, 0.45) == 1
    # w = 0.2: adv = 12, latency [7] vs cost [0..12] -> 7 (the fastest) at step 1
    assert luger_tradeoff(FIG44_LAT, FIG44_COST, 0.2) == 7


def literal_algorithm1(lat: list[float], cost: list[float], w: float) -> int:
    """The pseudocode, read literally: grow both visited lists, test membership."""
    n = len(lat)
    by_lat = sorted(range(n), key=lambda i: (lat[i], cost[i], i))
    by_cost = sorted(range(n), key=lambda i: (cost[i], lat[i], i))
    adv = int(n * abs(w - 0.5) * 2 + 1e-9)
    for i in range(n):
        if w >= 0.5:
            visited_cost, visited_lat = by_cost[: i + 1], by_lat[: i + 1 + adv]
            matches = [c for c in visited_cost if c in visited_lat]
        else:
            visited_cost, visited_lat = by_cost[: i + 1 + adv], by_lat[: i + 1]
            matches = [c for c in visited_lat if c in visited_cost]
        if matches:
            return matches[0]
    raise AssertionError


def test_matches_the_literal_transcription() -> None:
    rng = np.random.default_rng(0)
    for trial in range(300):
        n = int(rng.integers(1, 40))
        ints = trial % 3 == 0  # ties
        lat = list(rng.integers(0, 5, n).astype(float)) if ints else list(rng.random(n))
        cost = list(rng.integers(0, 5, n).astype(float)) if ints else list(rng.random(n))
        w = float(rng.choice([0.0, 0.1, 0.3, 0.45, 0.5, 0.55, 0.6, 0.9, 1.0, rng.random()]))
        assert luger_tradeoff(lat, cost, w) == literal_algorithm1(lat, cost, w)


def test_ends_are_ol_and_oc() -> None:
    rng = np.random.default_rng(1)
    for _ in range(100):
        n = int(rng.integers(1, 30))
        lat, cost = list(rng.random(n)), list(rng.random(n))
        assert luger_tradeoff(lat, cost, 0.0) == int(np.argmin(lat))
        assert luger_tradeoff(lat, cost, 1.0) == int(np.argmin(cost))


def test_bad_weight() -> None:
    with pytest.raises(ValueError, match="weight"):
        luger_tradeoff([1.0], [1.0], 1.5)
