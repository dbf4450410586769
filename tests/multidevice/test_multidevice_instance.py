"""Instance files, bad input (one line, exit 2), the Gao delay model and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from edgesplit.errors import InputError, NotFittedError
from edgesplit.graph import trace
from edgesplit.models import build
from edgesplit.multidevice.instance import (
    MultiDeviceInstance,
    build_problem,
    explicit_instance,
    load_problem,
)
from edgesplit.predict.gao import GaoDelayModel, features, fit_with_holdout

EXPLICIT = {
    "server_load": 0.5,
    "devices": [
        {
            "name": "a",
            "uplink_mbps": 1.0,
            "layers": ["conv", "fc"],
            "cut_bytes": [1000, 500, 10],
            "local": {"source": "explicit", "seconds": [0.2, 0.1]},
            "server": {"source": "explicit", "seconds": [0.02, 0.01]},
            "count": 2,
        }
    ],
}


def test_explicit_instance_builds_costs_with_load_slowdown() -> None:
    problem = build_problem(MultiDeviceInstance.model_validate(EXPLICIT))
    assert [d.name for d in problem.devices] == ["a-0", "a-1"]
    d = problem.devices[0]
    assert d.server_s == pytest.approx((0.04, 0.02))  # 1 / (1 - 0.5) slowdown
    assert d.transfer_s == pytest.approx((1000 * 8 / 1e6, 500 * 8 / 1e6, 0.0))
    frozen = build_problem(MultiDeviceInstance.model_validate(explicit_instance(problem)))
    assert frozen.devices == problem.devices


def test_model_instance_takes_cut_bytes_from_the_traced_graph() -> None:
    doc = {
        "devices": [
            {
                "model": "lenet",
                "uplink_mbps": 2.5,
                "local": {"source": "profile", "factor": 10},
                "server": {"source": "gao"},
            }
        ],
        "profile_repeats": 1,
        "gao_samples": 2,
    }
    problem = build_problem(MultiDeviceInstance.model_validate(doc))
    graph = trace(*build("lenet"), name="lenet")
    d = problem.devices[0]
    assert d.cut_bytes == tuple(c.bytes for c in graph.cuts())
    assert d.layers == tuple(n.name for n in graph.nodes)
    assert all(t > 0 for t in d.local_s)
    assert "r2" in problem.meta["gao_fit"]


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"uplink_mbps": -1.0}, "uplink rate must be > 0"),
        ({"uplink_mbps": 0.0}, "uplink rate must be > 0"),
        ({"local": {"source": "explicit", "seconds": [-0.1, 0.1]}}, "delays must be >= 0"),
        ({"count": 0}, "greater than or equal to 1"),
    ],
)
def test_malformed_devices_are_rejected_by_the_schema(patch: dict, needle: str) -> None:
    doc = json.loads(json.dumps(EXPLICIT))
    doc["devices"][0].update(patch)
    with pytest.raises(ValidationError, match=needle):
        MultiDeviceInstance.model_validate(doc)


def test_device_without_layers_and_empty_model_are_clear_errors() -> None:
    doc = json.loads(json.dumps(EXPLICIT))
    dev = doc["devices"][0]
    dev.update(layers=None, local={"source": "explicit", "seconds": []})
    with pytest.raises(InputError, match="has no layers"):
        build_problem(MultiDeviceInstance.model_validate(doc))
    empty = {
        "devices": [
            {"name": "e", "model": "torch.nn:Identity", "input_shape": [1, 4], "uplink_mbps": 1}
        ]
    }
    with pytest.raises(InputError, match="no layers"):
        build_problem(MultiDeviceInstance.model_validate(empty))
    with pytest.raises(ValidationError, match="at least 1"):
        MultiDeviceInstance.model_validate({"devices": []})
    short = json.loads(json.dumps(EXPLICIT))
    short["devices"][0]["server"]["seconds"] = [0.1]
    with pytest.raises(InputError, match="has 1 entries but the device has 2 layers"):
        build_problem(MultiDeviceInstance.model_validate(short))


def test_gao_model_fits_its_own_polynomial_exactly() -> None:
    graph = trace(*build("alexnet"), name="alexnet")
    nodes = list(graph.nodes) * 3
    truth = {"conv": np.array([2e-11, 3e-10, 4e-9])}
    y = []
    for n in nodes:
        fam, f = features(n)
        y.append(float(truth[fam] @ f) if fam == "conv" else 1e-5 + 1e-10 * f[0])
    model = GaoDelayModel().fit(nodes, y)
    assert model.coef_["conv"] == pytest.approx(truth["conv"], rel=1e-6)
    assert model.score(nodes, y) == pytest.approx(1.0)
    report = fit_with_holdout(nodes, y)
    assert report.r2 == pytest.approx(1.0, abs=1e-9) and report.mae_s < 1e-9
    with pytest.raises(NotFittedError):
        GaoDelayModel().predict(nodes)
    with pytest.raises(InputError):
        GaoDelayModel().fit(nodes, y[:-1])


def _write(tmp_path: Path, doc: dict) -> str:
    path = tmp_path / "inst.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_cli_solve_json_and_gantt(cli, tmp_path: Path) -> None:
    inst = _write(tmp_path, EXPLICIT)
    png = tmp_path / "g.png"
    doc = cli("multidevice", "solve", inst, "--solver", "milp", "--json", "--gantt", png).json()
    assert doc["status"] == "optimal" and len(doc["devices"]) == 2
    assert png.read_bytes()[:4] == b"\x89PNG"
    again = load_problem(inst)
    assert doc["average_s"] == pytest.approx(
        sum(d["completion_s"] for d in doc["devices"]) / again.n
    )


def test_cli_bad_input_is_one_line_and_exit_2(cli, assert_input_error, tmp_path: Path) -> None:
    doc = json.loads(json.dumps(EXPLICIT))
    doc["devices"][0]["uplink_mbps"] = -2
    inst = _write(tmp_path, doc)
    assert_input_error(cli("multidevice", "solve", inst), "uplink")
    assert_input_error(
        cli("multidevice", "solve", _write(tmp_path, EXPLICIT), "--solver", "nope"), "'nope'"
    )
    missing = tmp_path / "none.yaml"
    assert_input_error(cli("multidevice", "solve", missing), missing, "does not exist")
