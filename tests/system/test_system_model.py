"""System files: validation, price rules (Luger eq. 4.4, Table 4.1), links and power."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from edgesplit.errors import InputError
from edgesplit.schemas import schema
from edgesplit.system import (
    LUGER_CLOUD_PER_HOUR,
    LUGER_EDGE_PER_HOUR,
    PowerModel,
    System,
    load_system,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _doc(**links: object) -> dict[str, object]:
    return {
        "devices": [
            {"name": "edge", "tier": "edge", "clock": "1.2GHz", "memory": "4GiB"},
            {"name": "cloud", "tier": "cloud"},
        ],
        "links": [{"a": "edge", "b": "cloud", "bandwidth": "7.2mbit", "rtt": "40ms", **links}],
    }


def test_examples_load() -> None:
    s = load_system(EXAMPLES / "system.yaml")
    assert s.device("edge").clock == 1.2e9
    assert s.link("cloud", "edge").rate_bps == 7.2e6  # type: ignore[union-attr]
    assert s.devices[0].compute.profile == str(EXAMPLES / "profiles" / "alexnet.json")
    three = load_system(EXAMPLES / "system-shannon.yaml")
    assert three.link("phone", "edge").rate_bps == pytest.approx(10e6 * math.log2(101))  # type: ignore[union-attr]


def test_json_file_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(_doc()))
    assert load_system(path).link("edge", "cloud").rtt == pytest.approx(0.04)  # type: ignore[union-attr]
    assert "devices" in schema("system")["properties"]


def test_luger_prices_and_strategy() -> None:
    s = System.model_validate(_doc())
    assert s.price_per_hour("edge", "rent") == LUGER_EDGE_PER_HOUR == 0.224
    assert s.price_per_hour("edge", "own") == 0.0
    assert s.price_per_hour("cloud", "own") == LUGER_CLOUD_PER_HOUR == 0.1664
    custom = System.model_validate({**_doc(), "prices": {"cloud_per_hour": 1.0}})
    assert custom.price_per_hour("cloud") == 1.0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"links": [{"a": "edge", "b": "moon", "bandwidth": "1mbit"}]}, "moon"),
        ({"links": [{"a": "edge", "b": "cloud", "bandwidth": "fast"}]}, "links.0.bandwidth"),
        ({"links": [{"a": "edge", "b": "cloud"}]}, "exactly one of bandwidth or shannon"),
        ({"devices": [{"name": "x", "tier": "fog"}]}, "devices.0.tier"),
    ],
)
def test_bad_files_name_the_field(tmp_path: Path, change: dict[str, object], field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps({**_doc(), **change}))
    with pytest.raises(InputError, match=field.replace(".", r"\.")):
        load_system(path)


def test_missing_and_unparsable(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_system(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("devices: [\n")
    with pytest.raises(InputError, match="not valid YAML: line 2"):
        load_system(bad)


def test_shannon_link_and_power_curve() -> None:
    s = System.model_validate(_doc(bandwidth=None, shannon={"width": "1MHz", "snr": 3}))
    assert s.link("edge", "cloud").rate_bps == pytest.approx(2e6)  # type: ignore[union-attr]
    curve = PowerModel(curve_w=[float(10 * i) for i in range(11)])
    assert curve.watts(0.0) == 0.0
    assert curve.watts(1.0) == 100.0
    assert curve.watts(0.55) == pytest.approx(55.0)
    with pytest.raises(ValueError, match="11 values"):
        PowerModel(curve_w=[1.0, 2.0])
