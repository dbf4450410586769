"""Re-planning on the engine: triggers, planners from the registry, switches with no loss."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
import torch

from edgesplit.errors import InputError
from edgesplit.plan.planner import choose
from edgesplit.plan.problem import Problem
from edgesplit.plan.registry import solve
from edgesplit.plan.two_tier import candidate_table
from edgesplit.plan.types import Plan
from edgesplit.runtime.conditions import (
    ComputeMonitor,
    ConditionSchedule,
    ConditionStep,
    LinkMonitor,
)
from edgesplit.runtime.engine import Engine, link_key
from edgesplit.runtime.loop import RunOptions, RunParts, build_run
from edgesplit.runtime.planning import PlannerSettings, RegistryPlanner, TwoTierPlanner
from edgesplit.runtime.rescheduler import Observation, Rescheduler
from edgesplit.runtime.stages import build_stages, fingerprint
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


def test_clock_rtt_link_device_triggers_and_timer() -> None:
    r = Rescheduler(cut_planner({5.0: 1}), threshold=0.1, rtt_floor_s=0.005)
    r.plan_for_request(Observation(5.0, 0.001, 2.0), 0)
    r.plan_for_request(Observation(5.0, 0.004, 2.0), 1)  # big ratio, below the RTT floor
    r.plan_for_request(Observation(5.0, 0.050, 2.0), 2)
    r.plan_for_request(Observation(5.0, 0.050, 1.0), 3)
    r.plan_for_request(Observation(5.0, 0.050, 1.0, links={"cloud|edge": 9.0}), 4)
    r.plan_for_request(Observation(5.0, 0.050, 1.0, {"cloud": 2.0}, {"cloud|edge": 9.0}), 5)
    assert [e.reason.split()[0] for e in r.events] == [
        "initial", "rtt", "clock", "bandwidth", "cloud",
    ]  # fmt: skip
    t = Rescheduler(cut_planner({5.0: 1}), interval_s=1e-9)
    t.plan_for_request(Observation(5.0, 0.0, 1.0), 0)
    t.plan_for_request(Observation(5.0, 0.0, 1.0), 1)
    assert [e.reason for e in t.events] == ["initial", "timer"]
    with pytest.raises(InputError):
        Rescheduler(cut_planner({}), threshold=-1)


def test_two_tier_planner_matches_the_planners_own_table(store) -> None:  # type: ignore[no-untyped-def]
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


def test_measured_compute_scales_predictions_per_device(store) -> None:  # type: ignore[no-untyped-def]
    graph = store.model("alexnet").graph
    secs = np.full(len(graph.nodes), 2e-3)
    planner = TwoTierPlanner.from_seconds(
        graph, secs, PlannerSettings(objective="latency", ref_ghz=2.0)
    )
    base = planner.table(Observation(10.0, 0.02, 2.0))
    slow = planner.table(Observation(10.0, 0.02, 2.0, {"edge": 3.0, "cloud": 0.5}))
    assert np.allclose(slow.edge_s, base.edge_s * 3.0)
    assert np.allclose(slow.cloud_s, base.cloud_s * 0.5)
    monitor = ComputeMonitor(alpha=1.0)
    monitor.observe("edge", 0.03, 0.01)
    monitor.observe("cloud", 0.01, 0.02)
    assert monitor.factors == pytest.approx({"edge": 3.0, "cloud": 0.5})
    monitor.observe("edge", 1.0, 1e-6)  # below min_s: timer noise, ignored
    monitor.observe("cloud", 1.0, None)
    assert monitor.factors == pytest.approx({"edge": 3.0, "cloud": 0.5})


def test_link_monitor_learns_from_transfers_and_hops() -> None:
    m = LinkMonitor(alpha=1.0, min_bytes=1000)
    assert m.bandwidth(7.0) == (7.0, "sensor")
    m.observe_transfer(1_000_000, 0.8 + 0.01, 0.02)  # 8 Mbit in 0.8 s + rtt/2
    bw, source = m.bandwidth(7.0)
    assert source == "measured" and bw == pytest.approx(10.0)
    m.observe_transfer(10, 1.0, 0.0)  # too small to measure: unchanged
    assert m.bandwidth(7.0)[0] == pytest.approx(10.0)
    # A hop: both bodies (1.5 MB = 12 Mbit) in transfer_s less one RTT.
    hop = {"sent_wire_bytes": 1_000_000, "reply_wire_bytes": 500_000, "transfer_s": 0.62}
    m.observe_hop(hop, 0.02)
    assert m.bandwidth(7.0)[0] == pytest.approx(20.0)


def three_device_problem(graph, bandwidth_mbit: float) -> Problem:  # type: ignore[no-untyped-def]
    """device (slow) -> edge -> cloud, device holds the input: a placement problem."""
    n = len(graph.nodes)
    secs = np.array([np.full(n, 20e-3), np.full(n, 4e-3), np.full(n, 1e-3)])
    links = {
        frozenset((0, 1)): Link.of(bandwidth_mbit * 1e6, rtt_s=0.002),
        frozenset((1, 2)): Link.of(50e6, rtt_s=0.01),
    }
    return Problem(graph, ("device", "edge", "cloud"), secs, links, (0.0, 0.0, 0.0))


def test_a_multi_device_planner_is_re_invoked_on_a_bandwidth_step(store) -> None:  # type: ignore[no-untyped-def]
    graph = store.model("mnist_cnn").graph
    problem = three_device_problem(graph, 100.0)
    planner = RegistryPlanner(problem, "exhaustive")
    r = Rescheduler(planner, threshold=0.2)
    key = link_key("device", "edge")
    fast = r.plan_for_request(Observation(100.0, 0.002, 2.6, links={key: 100.0}), 0)
    slow = r.plan_for_request(Observation(0.01, 0.002, 2.6, links={key: 0.01}), 1)
    assert [e.reason.split()[0] for e in r.events] == ["initial", "bandwidth"]
    assert fast.assignment != slow.assignment
    # Each plan is what the registry's solver gives on the problem with that bandwidth.
    for plan, bw in ((fast, 100.0), (slow, 0.01)):
        assert plan.assignment == solve(three_device_problem(graph, bw), "exhaustive").assignment
    # At 10 kbit/s the device keeps everything; at 100 Mbit/s it offloads.
    assert set(slow.assignment) == {0} and set(fast.assignment) != {0}
    # Measured slowness of a device moves work off it.
    loaded = planner(Observation(100.0, 0.002, 2.6, {"cloud": 50.0, "edge": 50.0}, {key: 100.0}))
    assert set(loaded.assignment) == {0}
    with pytest.raises(InputError, match="--algorithm"):
        RegistryPlanner(problem, "no-such-solver")


def test_the_codec_hook_replaces_the_solver(store) -> None:  # type: ignore[no-untyped-def]
    graph = store.model("mnist_cnn").graph
    seen: list[float] = []

    def joint(problem: Problem) -> Plan:
        seen.append(problem.link(0, 1).rate_bps)
        plan = solve(problem, "exhaustive")
        return replace(plan, meta={**plan.meta, "codecs": {"device|edge": "zstd"}})

    planner = RegistryPlanner(three_device_problem(graph, 100.0), "exhaustive", solver=joint)
    plan = planner(Observation(3.0, 0.0, 2.6, links={"device|edge": 3.0}))
    assert plan.meta["codecs"] == {"device|edge": "zstd"} and seen == [3e6]


@pytest.fixture
def run_parts(live, store) -> Iterator[RunParts]:  # type: ignore[no-untyped-def]
    graph = store.model("mnist_cnn").graph
    opts = RunOptions(
        model="mnist_cnn",
        schedule=ConditionSchedule(
            unit="requests",
            steps=[
                ConditionStep(at=0, bandwidth_mbit=1.0, rtt_ms=0, clock_ghz=2.0),
                ConditionStep(at=4, bandwidth_mbit=2.0),
                ConditionStep(at=8, bandwidth_mbit=3.0, clock_ghz=1.0),
                ConditionStep(at=12, bandwidth_mbit=1.0),
            ],
        ),
        server=live.url,
        check=True,
        ref_ghz=2.0,
    )
    parts = build_run(opts, graph=graph, seconds=np.full(len(graph.nodes), 1e-4))
    yield parts
    parts.close()


def test_no_request_lost_or_duplicated_across_switches(run_parts, store) -> None:  # type: ignore[no-untyped-def]
    graph = store.model("mnist_cnn").graph
    session = run_parts.session
    session.rescheduler = resched = Rescheduler(
        cut_planner({1.0: 0, 2.0: 5, 3.0: 9}), threshold=0.1
    )
    # The monitor never measures (huge min_bytes), so the plan follows the schedule.
    session.monitors[session.link] = LinkMonitor(min_bytes=10**12)
    steps = [session.step() for _ in range(16)]
    ids = [s.measurement.id for s in steps]
    assert ids == list(range(16)) and [m.id for m in session.recorder.rows] == ids
    assert [s.measurement.SP for s in steps] == [0] * 4 + [5] * 4 + [9] * 4 + [0] * 4
    assert all(s.measurement.correct for s in steps)
    for i, s in enumerate(steps):
        # Each request ran on its own plan's stages: the edge ran exactly the cut's nodes.
        ran_here = [st for st in s.record["stages"] if st["device"] == "edge"]
        assert (s.measurement.SP > 0) == bool(ran_here)
        assert (len(graph.nodes) > s.measurement.SP) == bool(s.record["hops"])
        x = torch.randn((1, 1, 28, 28), generator=torch.Generator().manual_seed(i))
        with torch.inference_mode():
            assert torch.equal(s.output, graph.module(x))
    assert [e.at_request for e in resched.events] == [0, 4, 8, 12]
    assert steps[9].measurement.CS == 1.0
    assert all(s.link.rate_bps == 1e6 for s in run_parts.shapers)


def test_a_switch_happens_between_requests_on_the_engine(store) -> None:  # type: ignore[no-untyped-def]
    graph = store.model("mnist_cnn").graph
    n = len(graph.nodes)
    devices = ("device", "edge", "cloud")
    first = build_stages(graph, devices, [0] * n)
    engine = Engine(first, "mnist_cnn", fingerprint(graph), "device", frozenset(devices), {})
    x = torch.randn((1, 1, 28, 28), generator=torch.Generator().manual_seed(3))
    before = engine.infer([x])[1]
    engine.switch(build_stages(graph, devices, [0] * 3 + [1] * 3 + [2] * (n - 6)))
    outs, after = engine.infer([x])
    assert {s["device"] for s in before["stages"]} == {"device"}
    assert {s["device"] for s in after["stages"]} == set(devices)
    with torch.inference_mode():
        ref = graph.module(x)
    assert torch.equal(outs[graph.output_names[0]], ref)


def test_run_plan_replans_a_saved_plan_on_a_bandwidth_step(cli, live, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    n = len(store.model("mnist_cnn").graph.nodes)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(
        json.dumps(
            Plan(
                "mnist_cnn",
                "hand",
                ("device", "cloud"),
                (0,) * n,
                meta={"codec_choice": "auto-lossless"},
            ).to_dict()
        )
    )
    topology = tmp_path / "topology.yaml"
    topology.write_text(
        "devices:\n"
        "  - {name: device, url: local, speed_factor: 0.05}\n"
        f"  - {{name: cloud, url: '{live.url}'}}\n"
        "links:\n"
        "  - {a: device, b: cloud, bandwidth: 1mbit, rtt: 1ms, codecs: [none, zstd]}\n"
    )
    conditions = tmp_path / "conditions.yaml"
    conditions.write_text(
        "unit: requests\n"
        "steps:\n"
        "  - {at: 0, bandwidth_mbit: 0.001, rtt_ms: 1, clock_ghz: 0.05}\n"
        "  - {at: 3, bandwidth_mbit: 1000}\n"
    )
    res = cli(
        "run-plan", str(plan_file), "--topology", str(topology), "--transport", "http",
        "--replan", "exhaustive", "--conditions", str(conditions), "-n", "6", "--check",
        "--json",
    )  # fmt: skip
    doc = res.json()
    assert res.returncode == 0 and doc["equal_to_local"] is True
    # Later re-plans may follow from the measured compute speeds (a device's factor).
    reasons = [e["reason"].split()[0] for e in doc["replans"]]
    assert reasons[:2] == ["given", "bandwidth"] and doc["replans"][1]["at_request"] == 3
    records = doc["records"]
    assert [r["id"] for r in records] == list(range(6))
    assert all(not r["hops"] for r in records[:3])  # the saved plan: all on the device
    assert records[3]["hops"] and records[3]["plan"]["nodes"]["cloud"] > 0
    # The plan chose its codecs (auto-lossless): re-plans choose among none and zstd.
    assert all(set(r["plan"]["codecs"].values()) <= {"zstd"} for r in records)
    # Every request ran on the plan its record names.
    assert all(bool(r["hops"]) == (r["plan"]["nodes"]["cloud"] > 0) for r in records)


def test_replan_options_need_replan(cli, assert_input_error, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan_file = tmp_path / "plan.json"
    plan_file.write_text("{}")
    res = cli("run-plan", str(plan_file), "--replan-every", "5")
    assert_input_error(res, "--replan")
