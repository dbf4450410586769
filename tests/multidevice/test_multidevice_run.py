"""Real execution on loopback: server process + shaped agents, exact outputs."""

from __future__ import annotations

import pytest

from edgesplit.errors import InputError
from edgesplit.multidevice.cpsat import solve_cpsat
from edgesplit.multidevice.execute import run_schedule
from edgesplit.multidevice.instance import MultiDeviceInstance, build_problem


@pytest.mark.slow
def test_run_executes_interleaved_plan_with_exact_outputs() -> None:
    doc = {
        "profile_repeats": 2,
        "devices": [
            {"name": "a", "model": "lenet", "uplink_mbps": 1.0, "local": {"factor": 5}},
            {"name": "b", "model": "lenet", "uplink_mbps": 4.0, "local": {"factor": 5}},
        ],
    }
    problem = build_problem(MultiDeviceInstance.model_validate(doc))
    # Force both devices to offload from different layers so the server runs two tails.
    plan = solve_cpsat(problem, time_limit=10, fixed_splits=[2, 5])
    result = run_schedule(problem, plan)
    assert result.outputs_equal
    assert [d["split"] for d in result.devices] == [2, 5]
    expected_bytes = [problem.devices[i].cut_bytes[k] for i, k in enumerate((2, 5))]
    # safetensors adds a small JSON header to the raw tensor bytes.
    for d, raw in zip(result.devices, expected_bytes):
        assert raw <= d["sent_bytes"] <= raw + 512
    ran = [(s["device"], tuple(s["layers"])) for s in result.server]
    assert ran == [(s.device, (s.first, s.stop)) for s in plan.segments]
    for seg in result.server:
        assert (
            seg["start_s"] >= seg["arrival_s"] - 1e-6
            or seg["layers"][0] != plan.splits[seg["device"]]
        )
    assert result.measured_average_s > 0


def test_run_refuses_devices_without_a_model() -> None:
    doc = {
        "devices": [
            {
                "uplink_mbps": 1.0,
                "layers": ["x"],
                "cut_bytes": [4, 4],
                "local": {"source": "explicit", "seconds": [0.1]},
                "server": {"source": "explicit", "seconds": [0.01]},
            }
        ]
    }
    problem = build_problem(MultiDeviceInstance.model_validate(doc))
    with pytest.raises(InputError, match="needs a 'model'"):
        run_schedule(problem, solve_cpsat(problem, time_limit=5))
