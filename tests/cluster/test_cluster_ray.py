"""One small real run on Ray: simulated decisions replayed with real fragment networks."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_ray_replay_runs_real_fragments_and_matches_local_networks() -> None:
    from edgesplit.cluster.ray_backend import run_on_ray

    doc = run_on_ray(
        "random",
        hosts=2,
        intervals=3,
        interval_s=0.5,
        arrival_rate=2.0,
        seed=1,
        epochs=1,
        num_cpus=2,
    )
    assert doc["tasks"] >= 1
    # every fragment ran where the simulator placed it, and the split/parallel results equal
    # the unsplit networks' predictions on the same inputs
    assert doc["all_match_local"]
    for t in doc["per_task"]:
        assert len(t["hosts"]) == {"layer": 4, "semantic": 4, "compressed": 1}[t["decision"]]
        assert t["measured_s"] > 0 and t["simulated_s"] > 0
    assert 0.0 <= doc["measured_accuracy"] <= 100.0
