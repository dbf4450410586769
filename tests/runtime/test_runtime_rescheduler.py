"""Rescheduler triggers, planner adapter against the planner's table, no-loss switching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgesplit.errors import InputError
from edgesplit.plan.planner import choose
from edgesplit.plan.two_tier import candidate_table
from edgesplit.plan.types import Plan
from edgesplit.runtime.agent import AgentConfig, EdgeAgent
from edgesplit.runtime.conditions import ConditionSchedule, ConditionStep, LinkMonitor
from edgesplit.runtime.planning import PlannerSettings, TwoTierPlanner
from edgesplit.runtime.rescheduler import Observation, Rescheduler
from edgesplit.runtime.session import Session
from edgesplit.runtime.shaping import TokenBucketShaper
from edgesplit.runtime.transport import in_process
from edgesplit.system.link import Link


def cut_planner(cuts: dict[float, int], n: int = 9):  # type: ignore[no-untyped-def]
    """A planner whose cut depends only on bandwidth (a stand-in policy)."""

    def plan(obs: Observation) -> Plan:
        return Plan.two_tier("mnist_cnn", "fixed", n, cuts[obs.bandwidth_mbit])

    return plan


def test_triggers_initial_threshold_and_not_below() -> None:
    r = Rescheduler(cut_planner({10.0: 2, 10.5: 2, 20.0: 7}), threshold=0.2)
    assert r.plan_for_request(Observation(10.0, 0.01, 1.5), 0).cut == 2
    assert r.plan_for_request(Observation(10.5, 0.01, 1.5), 1).cut == 2
    assert r.plan_for_request(Observation(20.0, 0.01, 1.5), 2).cut == 7
    assert [e.reason.split()[0] for e in r.events] == ["initial", "bandwidth"]
    assert [e.at_request for e in r.events] == [0, 2]


def test_clock_and_rtt_triggers_and_timer() -> None:
    r = Rescheduler(cut_planner({5.0: 1}), threshold=0.1, rtt_floor_s=0.005)
    r.plan_for_request(Observation(5.0, 0.001, 2.0), 0)
    r.plan_for_request(Observation(5.0, 0.004, 2.0), 1)  # big ratio, below the RTT floor
    r.plan_for_request(Observation(5.0, 0.050, 2.0), 2)
    r.plan_for_request(Observation(5.0, 0.050, 1.0), 3)
    assert [e.reason.split()[0] for e in r.events] == ["initial", "rtt", "clock"]
    t = Rescheduler(cut_planner({5.0: 1}), interval_s=1e-9)
    t.plan_for_request(Observation(5.0, 0.0, 1.0), 0)
    t.plan_for_request(Observation(5.0, 0.0, 1.0), 1)
    assert [e.reason for e in t.events] == ["initial", "timer"]
    with pytest.raises(InputError):
        Rescheduler(cut_planner({}), threshold=-1)


def test_planner_adapter_matches_the_planners_own_table(store) -> None:  # type: ignore[no-untyped-def]
    graph = store.model("alexnet").graph
    secs = np.linspace(1e-3, 5e-3, len(graph.nodes))
    for objective in ("latency", "cost", "weighted"):
        settings = PlannerSettings(objective=objective, strategy="rent", ref_ghz=2.0)
        planner = TwoTierPlanner.from_seconds(graph, secs, settings)
        for bw, clock in ((2.0, 1.0), (20.0, 2.0), (7.2, 1.5)):
            plan = planner(Observation(bw, 0.02, clock))
            table = candidate_table(
                planner.inputs,
                bandwidth_bps=bw * 1e6,
                rtt_s=0.02,
                edge_price_per_s=0.224 / 3600,
                cloud_price_per_s=0.1664 / 3600,
                edge_scale=2.0 / clock,
            )
            assert plan.cut == choose(table, objective, 0.5)
            assert plan.predicted["latency_s"] == pytest.approx(table.latency_s[plan.cut])


def test_no_request_lost_or_duplicated_across_switches(app, store) -> None:  # type: ignore[no-untyped-def]
    graph = store.model("mnist_cnn").graph
    schedule = ConditionSchedule(
        unit="requests",
        steps=[
            ConditionStep(at=0, bandwidth_mbit=1.0, rtt_ms=0, clock_ghz=2.0),
            ConditionStep(at=4, bandwidth_mbit=2.0),
            ConditionStep(at=8, bandwidth_mbit=3.0, clock_ghz=1.0),
            ConditionStep(at=12, bandwidth_mbit=1.0),
        ],
    )
    resched = Rescheduler(cut_planner({1.0: 0, 2.0: 5, 3.0: 9}), threshold=0.1)
    shaper = TokenBucketShaper(Link.of(1e9))
    agent = EdgeAgent(graph, in_process(app), config=AgentConfig(check=True))
    # The monitor never measures (huge min_bytes), so the plan follows the schedule.
    session = Session(
        agent, resched, schedule, shaper=shaper, monitor=LinkMonitor(min_bytes=10**12)
    )
    steps = [session.step() for _ in range(16)]
    ids = [s.measurement.id for s in steps]
    assert ids == list(range(16)) and [m.id for m in session.recorder.rows] == ids
    assert [s.measurement.SP for s in steps] == [0] * 4 + [5] * 4 + [9] * 4 + [0] * 4
    assert all(s.measurement.correct for s in steps)
    for i, s in enumerate(steps):
        x = torch.randn((1, 1, 28, 28), generator=torch.Generator().manual_seed(i))
        with torch.inference_mode():
            assert torch.equal(s.output, graph.module(x))
    assert [e.at_request for e in resched.events] == [0, 4, 8, 12]
    assert steps[9].measurement.CS == 1.0 and shaper.link.rate_bps == 1e6


def test_schedule_validation_and_carry_over(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.yaml"
    path.write_text(
        "steps:\n  - {at: 0, bandwidth_mbit: 2, rtt_ms: 20, clock_ghz: 1.5}\n  - {at: 20, bandwidth_mbit: 20}\n"
    )
    s = ConditionSchedule.load(path)
    assert (
        s.at(25).bandwidth_mbit == 20 and s.at(25).clock_ghz == 1.5 and s.at(5).bandwidth_mbit == 2
    )
    path.write_text("steps:\n  - {at: 5, bandwidth_mbit: 2, clock_ghz: 1}\n")
    with pytest.raises(ValueError, match="start at 0"):
        ConditionSchedule.load(path)
    with pytest.raises(InputError, match="does not exist"):
        ConditionSchedule.load(tmp_path / "missing.yaml")


def test_monitor_estimates_bandwidth_from_transfers() -> None:
    m = LinkMonitor(alpha=1.0, min_bytes=1000)
    assert m.bandwidth(7.0) == (7.0, "sensor")
    m.observe_transfer(1_000_000, 0.8 + 0.01, 0.02)  # 8 Mbit in 0.8 s + rtt/2
    bw, source = m.bandwidth(7.0)
    assert source == "measured" and bw == pytest.approx(10.0)
    m.observe_transfer(10, 1.0, 0.0)  # too small to measure: unchanged
    assert m.bandwidth(7.0)[0] == pytest.approx(10.0)


def test_shaper_passes_every_byte_in_order() -> None:
    data = bytes(range(256)) * 300
    shaper = TokenBucketShaper(Link.of(1e9), burst_bytes=4096, chunk_bytes=1000)
    chunks = list(shaper.pace(data))
    assert b"".join(chunks) == data and max(len(c) for c in chunks) == 1000
    assert Link.of(8e6, rtt_s=0.02).seconds(1_000_000) == pytest.approx(1.01)
    with pytest.raises(InputError):
        Link.of(0.0)


def test_compute_feedback_scales_predictions_and_triggers_replans(store) -> None:  # type: ignore[no-untyped-def]
    from edgesplit.runtime.conditions import ComputeMonitor

    graph = store.model("alexnet").graph
    secs = np.full(len(graph.nodes), 2e-3)
    planner = TwoTierPlanner.from_seconds(
        graph, secs, PlannerSettings(objective="latency", ref_ghz=2.0)
    )
    base = planner.table(Observation(10.0, 0.02, 2.0))
    slow = planner.table(Observation(10.0, 0.02, 2.0, edge_factor=3.0, cloud_factor=0.5))
    assert np.allclose(slow.edge_s, base.edge_s * 3.0)
    assert np.allclose(slow.cloud_s, base.cloud_s * 0.5)
    monitor = ComputeMonitor(alpha=1.0)
    monitor.observe(edge_lat=0.03, cloud_lat=0.01, predicted_edge=0.01, predicted_cloud=0.02)
    assert (monitor.edge_factor, monitor.cloud_factor) == pytest.approx((3.0, 0.5))
    monitor.observe(edge_lat=1.0, cloud_lat=1.0, predicted_edge=1e-6, predicted_cloud=None)
    assert (monitor.edge_factor, monitor.cloud_factor) == pytest.approx((3.0, 0.5))
    r = Rescheduler(cut_planner({10.0: 3}), threshold=0.2)
    r.plan_for_request(Observation(10.0, 0.0, 1.0), 0)
    r.plan_for_request(Observation(10.0, 0.0, 1.0, edge_factor=1.1), 1)
    r.plan_for_request(Observation(10.0, 0.0, 1.0, edge_factor=2.0), 2)
    assert [e.reason.split()[0] for e in r.events] == ["initial", "edge"]
