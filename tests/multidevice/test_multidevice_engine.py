"""Gao schedules on the engine: real server on loopback, the planned order honoured.

Oracles: every output ``torch.equal`` to the device's unsplit forward pass (server and
devices in one process: same kernels and threads); the served order read back from the
server's own records equals the plan's order, also when the first ticket's request is
the last to arrive; a device that never sends cannot stall the others (its turn times out
and the record says so).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgesplit.multidevice.instance import MultiDeviceInstance, build_problem
from edgesplit.multidevice.plan import to_plan
from edgesplit.multidevice.problem import MecProblem, evaluate
from edgesplit.multidevice.run import outputs_equal, summarise
from edgesplit.plan.types import Plan
from edgesplit.runtime.scheduled import new_run_id, open_device, run_threads, served_order
from edgesplit.runtime.server import BackgroundServer, ServerConfig, create_app
from edgesplit.system.topology import Topology


@pytest.fixture(scope="module")
def problem() -> MecProblem:
    doc = {
        "profile_repeats": 1,
        "devices": [
            {"name": "a", "model": "lenet", "uplink_mbps": 1.0, "local": {"factor": 5}},
            {"name": "b", "model": "lenet", "uplink_mbps": 4.0, "local": {"factor": 5}},
        ],
    }
    return build_problem(MultiDeviceInstance.model_validate(doc))


def interleaved(problem: MecProblem, timeout_s: float = 5.0) -> Plan:
    """a offloads from layer 2, b from 5; the server interleaves: a, b, a, b."""
    seq = [(0, 2), (0, 3), (1, 5), (1, 6)] + [(0, j) for j in range(4, 11)]
    seq += [(1, j) for j in range(7, 11)]
    schedule = evaluate(problem, [2, 5], seq, algorithm="hand")
    return to_plan(problem, schedule, timeout_s=timeout_s)


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    app = create_app(ServerConfig(models=("lenet",), max_concurrency=4))
    with BackgroundServer(app) as srv:
        yield srv


def topology(url: str) -> Topology:
    return Topology.model_validate(
        {
            "devices": [{"name": "device", "url": "local"}, {"name": "mec", "url": url}],
            "links": [{"a": "device", "b": "mec", "bandwidth": 1e9}],
        }
    )


def _late(infer: Any, seconds: float) -> Any:
    def late(xs: Any) -> Any:
        time.sleep(seconds)
        return infer(xs)

    return late


def run(plan: Plan, url: str, rounds: int, names: list[str], delay: dict[str, float]) -> Any:
    run_id = new_run_id()
    devices, refs, inputs = [], {}, {}
    for name in names:
        dev, module, xs = open_device(plan, name, topology(url), run_id)
        devices.append(dev)
        refs[name], inputs[name] = module(*xs), xs
    for dev in devices:
        if dev.name in delay:  # sends late after each round's start: arrival is not order
            dev.engine.infer = _late(dev.engine.infer, delay[dev.name])
    records: list[dict[str, Any]] = []

    def done(dev: Any, r: int, outs: Any, record: dict[str, Any]) -> None:
        records.append({**record, "equal": outputs_equal(dev, outs, refs[dev.name])})

    try:
        run_threads(devices, rounds, lambda dev, r: inputs[dev.name], done)
    finally:
        for d in devices:
            d.close()
    return records


def test_plan_round_trips_and_keeps_the_order(problem: MecProblem) -> None:
    plan = interleaved(problem)
    assert plan.schedule is not None
    assert plan.schedule["order"] == [["a", 0], ["b", 0], ["a", 1], ["b", 1]]
    assert [r["segments"] for r in plan.schedule["requests"]] == [
        [[2, 4], [4, 11]],
        [[5, 7], [7, 11]],
    ]
    assert Plan.from_dict(plan.to_dict()) == plan


def test_server_serves_segments_in_planned_order_with_exact_outputs(
    problem: MecProblem, server: BackgroundServer
) -> None:
    plan = interleaved(problem)
    # Device a holds tickets 0 and 2 but sends last: the server must still serve it first.
    records = run(plan, server.url, 3, ["a", "b"], {"a": 0.3})
    assert len(records) == 6 and all(r["equal"] for r in records)
    planned = [(n, t) for t, (n, _) in enumerate(plan.schedule["order"])]
    served = served_order(records)
    assert sorted(served) == [0, 1, 2]
    for turns in served.values():
        assert turns == planned
    assert not any(t["timed_out"] for r in records for t in r["turns"])
    summary = summarise(plan, records, 3)
    assert summary["order_honoured"] and summary["outputs_equal"]
    assert summary["rounds_in_order"] == 3


def test_a_device_that_never_sends_cannot_stall_the_server(
    problem: MecProblem, server: BackgroundServer
) -> None:
    plan = interleaved(problem, timeout_s=0.3)
    records = run(plan, server.url, 1, ["b"], {})  # device a is dead
    (record,) = records
    assert record["equal"]
    turns = record["turns"]
    assert [t["ticket"] for t in turns] == [1, 3]
    assert turns[0]["timed_out"] and turns[1]["timed_out"]


def test_solve_plan_refuses_devices_without_a_model(
    cli: Any, assert_input_error: Any, tmp_path: Path
) -> None:
    instance = tmp_path / "explicit.yaml"
    instance.write_text(
        "devices:\n  - name: sensor\n    uplink_mbps: 1\n    layers: [a, b]\n"
        "    cut_bytes: [8, 4, 2]\n    local: {source: explicit, seconds: [0.1, 0.1]}\n"
        "    server: {source: explicit, seconds: [0.01, 0.01]}\n"
    )
    out = tmp_path / "plan.json"
    assert_input_error(cli("multidevice", "solve", instance, "--plan", out), "sensor")
    assert not out.exists()


def test_a_schedule_whose_order_misses_a_segment_is_bad_input(
    problem: MecProblem, cli: Any, assert_input_error: Any, tmp_path: Path
) -> None:
    doc = interleaved(problem).to_dict()
    doc["schedule"]["order"] = doc["schedule"]["order"][:-1]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(doc))
    topo = Path(__file__).resolve().parents[2] / "examples/topology-gao.yaml"
    assert_input_error(cli("run-plan", path, "--topology", topo), "schedule", "order")


@pytest.mark.slow
def test_multidevice_run_cli_devices_in_processes(cli_subprocess: Any, tmp_path: Path) -> None:
    """`multidevice run`: one edgesplit serve, one process per device, bitwise outputs."""
    instance = tmp_path / "two.yaml"
    instance.write_text(
        "profile_repeats: 1\ndevices:\n"
        "  - {name: a, model: lenet, uplink_mbps: 1, local: {factor: 5}}\n"
        "  - {name: b, model: lenet, uplink_mbps: 4, local: {factor: 5}}\n"
    )
    out = cli_subprocess(
        "multidevice", "run", instance, "--solver", "heuristic", "-n", "2", "--json"
    )
    assert out.code == 0, out.stderr
    doc = out.json()
    assert doc["outputs_equal"] and doc["order_honoured"] and doc["rounds"] == 2
    assert [d["name"] for d in doc["devices"]] == ["a", "b"]
    assert doc["plan"]["schedule"]["server"] == "mec"
