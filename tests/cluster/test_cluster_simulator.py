"""Simulator accounting on hand-computed scenarios: energy, sharing, precedence, waits, SLA."""

from __future__ import annotations

import pytest
from cluster_helpers import FixedHosts, host, profile, tiny_config

from edgesplit.cluster.apps import Fragment
from edgesplit.cluster.heuristics import FixedSplitter
from edgesplit.cluster.interface import Policy
from edgesplit.cluster.metrics import summarize
from edgesplit.cluster.simulator import ScriptedTask, Simulator
from edgesplit.system.power import RASPBERRY_PI_4B_4GB

G = 1e9  # instructions: 4 s on one 250-MIPS core


def run(cfg, decision, frags, script, placer):
    policy = Policy("t", FixedSplitter(decision), placer)
    sim = Simulator(cfg, policy, profile(frags), script=script)
    return sim, sim.run()


def test_power_curve_interpolates_linearly() -> None:
    assert host("a", power_w=RASPBERRY_PI_4B_4GB.curve_w).power == RASPBERRY_PI_4B_4GB
    assert RASPBERRY_PI_4B_4GB.watts(0.0) == 2.45
    assert RASPBERRY_PI_4B_4GB.watts(1.0) == 4.75
    assert RASPBERRY_PI_4B_4GB.watts(0.25) == pytest.approx((2.90 + 3.03) / 2)


def test_energy_of_two_parallel_fragments() -> None:
    # two fragments on 2 of 4 cores for 4 s (u=0.5 -> 15 W), then idle 96 s at 10 W
    frags = {"semantic": (Fragment(0, G, 100, 0, 0), Fragment(1, G, 100, 0, 0))}
    cfg = tiny_config([host("a")], intervals=1)
    _, m = run(cfg, "semantic", frags, {0: [ScriptedTask("toy", 1, 50.0)]}, FixedHosts([0]))
    assert m[0].energy_j == pytest.approx(4 * 15 + 96 * 10)
    (t,) = m[0].left
    assert t.response == pytest.approx(4.0)
    assert m[0].busy[0] == pytest.approx(0.5 * 4 / 100)


def test_processor_sharing_beyond_cores() -> None:
    # six one-core fragments on four cores: each runs at 1000/6 MIPS -> 6 s, full power
    frags = {"semantic": tuple(Fragment(i, G, 10, 0, 0) for i in range(6))}
    cfg = tiny_config([host("a")], intervals=1)
    _, m = run(cfg, "semantic", frags, {0: [ScriptedTask("toy", 1, 50.0)]}, FixedHosts([0]))
    assert m[0].left[0].response == pytest.approx(6.0)
    assert m[0].energy_j == pytest.approx(6 * 20 + 94 * 10)


def test_layer_precedence_and_transfer() -> None:
    # frag0 4 s on host a; 1 MB crosses a->b at 8 Mbit/s (1 s) + 0.1 s latency each end;
    # frag1 (0.5 G) 2 s on host b; plus 0.1 s latency for the broker's input message and
    # 0.1 s for the result back: 0.1 + 4 + 1.2 + 2 + 0.1 = 7.4 s
    hosts = [
        host("a", latency_s=0.1, bandwidth_mbps=8.0),
        host("b", latency_s=0.1, bandwidth_mbps=8.0),
    ]
    frags = {"layer": (Fragment(0, G, 10, 0, 1_000_000), Fragment(1, G / 2, 10, 1_000_000, 0))}
    cfg = tiny_config(hosts, intervals=1)
    sim, m = run(cfg, "layer", frags, {0: [ScriptedTask("toy", 1, 50.0)]}, FixedHosts([0, 1]))
    (t,) = m[0].left
    assert t.response == pytest.approx(0.1 + 4.0 + 1.2 + 2.0 + 0.1)
    assert t.start == pytest.approx(0.1)
    # host b only worked for 2 s: its energy shows one core busy for 2 s (12.5 W)
    assert sim.hosts[1].energy_j == pytest.approx(2 * 12.5 + 98 * 10)


def test_infeasible_container_waits_and_sla_is_counted() -> None:
    # RAM fits one 600 MB container at a time: the second task waits for interval 1
    frags = {"compressed": (Fragment(0, G, 600, 0, 0),)}
    cfg = tiny_config([host("a", ram_mb=1000.0)], intervals=2)
    script = {0: [ScriptedTask("toy", 1, 50.0), ScriptedTask("toy", 1, 50.0)]}
    _, m = run(cfg, "compressed", frags, script, FixedHosts([0]))
    assert [len(x.left) for x in m] == [1, 1]
    assert m[0].waiting == 1 and m[1].waiting == 0
    late = m[1].left[0]
    assert late.wait == pytest.approx(100.0)
    assert late.response == pytest.approx(104.0)
    assert not late.met and m[0].left[0].met
    s = summarize(m, 100.0)
    assert s["sla_violation"] == pytest.approx(0.5)
    assert s["accuracy"] == pytest.approx(70.0)


def test_placer_returning_none_keeps_container_queued() -> None:
    frags = {"compressed": (Fragment(0, G, 10, 0, 0),)}
    cfg = tiny_config([host("a")], intervals=3)
    _, m = run(cfg, "compressed", frags, {0: [ScriptedTask("toy", 1, 50.0)]}, FixedHosts([None]))
    assert all(not x.left for x in m) and m[-1].waiting == 1


def test_seeded_runs_repeat_and_seeds_differ() -> None:
    from edgesplit.cluster.config import ClusterConfig, WorkloadSpec
    from edgesplit.cluster.heuristics import BestFitPlacer, RandomSplitter

    frags = {
        "layer": (Fragment(0, G, 10, 0, 0), Fragment(1, G, 10, 0, 0)),
        "semantic": (Fragment(0, G / 4, 10, 0, 0), Fragment(1, G / 4, 10, 0, 0)),
    }
    base = ClusterConfig(
        intervals=5,
        interval_s=10.0,
        hosts=[host("a"), host("b", mobile=True)],
        workload=WorkloadSpec(arrival_rate=3.0),
    )

    def one(seed: int) -> list[tuple[float, int]]:
        cfg = base.model_copy(update={"seed": seed})
        pol = Policy("r", RandomSplitter(seed), BestFitPlacer())
        return [(x.energy_j, len(x.left)) for x in Simulator(cfg, pol, profile(frags)).run()]

    assert one(1) == one(1)
    assert one(1) != one(2)


def test_a_fragment_uses_several_cores_and_shares_them() -> None:
    # fragment_cores = 4: one fragment alone gets all 4 cores (1000 MIPS): 1 s at full
    # power; two co-located fragments get 2 cores each (500 MIPS): 2 s, still full power
    from edgesplit.cluster.config import WorkloadSpec

    cfg = tiny_config([host("a")], intervals=1)
    cfg = cfg.model_copy(update={"workload": WorkloadSpec(sla_min=1.0, sla_max=2.0)})
    one = {"compressed": (Fragment(0, G, 10, 0, 0),)}
    _, m = run(cfg, "compressed", one, {0: [ScriptedTask("toy", 1, 50.0)]}, FixedHosts([0]))
    assert m[0].left[0].response == pytest.approx(1.0)
    assert m[0].energy_j == pytest.approx(1 * 20 + 99 * 10)
    two = {"semantic": (Fragment(0, G, 10, 0, 0), Fragment(1, G, 10, 0, 0))}
    _, m = run(cfg, "semantic", two, {0: [ScriptedTask("toy", 1, 50.0)]}, FixedHosts([0]))
    assert m[0].left[0].response == pytest.approx(2.0)
    assert m[0].energy_j == pytest.approx(2 * 20 + 98 * 10)


def test_partial_layer_split_keeps_precedence_and_layer_accuracy() -> None:
    # "layer:2" (Gillis's 2-part chain) runs as a chain: 4 s + 4 s on one 250-MIPS core
    frags = {"layer:2": (Fragment(0, G, 10, 0, 0), Fragment(1, G, 10, 0, 0))}
    cfg = tiny_config([host("a"), host("b")], intervals=1)
    _, m = run(cfg, "layer:2", frags, {0: [ScriptedTask("toy", 1, 50.0)]}, FixedHosts([0, 1]))
    (t,) = m[0].left
    assert t.response == pytest.approx(8.0) and t.accuracy == 0.9
    assert summarize(m, 100.0)["layer_fraction"] == 1.0


def test_layer_estimate_is_carried_in() -> None:
    # R^a starts from the given value (eq. 2 carried from training), then follows the EMA
    frags = {"layer": (Fragment(0, G, 10, 0, 0),)}
    cfg = tiny_config([host("a")], intervals=1)
    policy = Policy("t", FixedSplitter("layer"), FixedHosts([0]))
    script = {0: [ScriptedTask("toy", 1, 50.0)]}
    sim = Simulator(cfg, policy, profile(frags), script=script, estimates={"toy": 100.0})
    assert sim.estimates["toy"] == 100.0
    sim.run()
    assert sim.estimates["toy"] == pytest.approx(0.9 * 4.0 + 0.1 * 100.0)
