"""Topology files: the shipped example, every field's checks, and malformed files through the
one loader (the kinds of the CLI's malformed-input table), each one line naming the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgesplit.errors import InputError
from edgesplit.schemas import schema
from edgesplit.system.topology import Topology, load_topology

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "topology-3tier.yaml"


def _doc() -> dict[str, Any]:
    return {
        "devices": [
            {"name": "phone", "url": "local", "clock": "1.5GHz"},
            {"name": "edge", "url": "http://127.0.0.1:8101", "speed_factor": 2},
            {"name": "cloud", "url": "https://cloud.example:8443/", "device": "cuda"},
        ],
        "links": [
            {"a": "phone", "b": "edge", "bandwidth": "20mbit", "rtt": "5ms", "shaping": True,
             "codecs": ["none", "zstd", "int8"]},
            {"a": "edge", "b": "cloud", "bandwidth": "50mbit", "rtt": "40ms"},
        ],
    }  # fmt: skip


def test_example_ships_three_tiers_on_loopback() -> None:
    t = load_topology(EXAMPLE)
    assert t.local == "device" and t.names == ("device", "edge", "cloud")
    assert t.device("edge").url == "http://127.0.0.1:8101"
    assert t.device("cloud").url == "http://127.0.0.1:8102"
    for a, b in (("device", "edge"), ("cloud", "edge")):
        link = t.link(a, b)
        assert link is not None and link.shaping
        assert link.codecs == ("none", "zstd", "fp16", "int8")
    assert t.link("device", "cloud") is None


def test_fields_parse_with_units_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(_doc()))
    t = load_topology(path)
    assert t.device("phone").clock == 1.5e9 and t.device("phone").device == "cpu"
    assert t.device("edge").speed_factor == 2 and t.device("cloud").device == "cuda"
    assert t.device("cloud").url == "https://cloud.example:8443"  # trailing slash dropped
    down = t.link("edge", "phone")
    assert down is not None and down.rate_bps == 20e6 and down.rtt == pytest.approx(0.005)
    up = t.link("cloud", "edge")
    assert up is not None and not up.shaping and up.codecs == ("none",)
    assert up.seconds(50e6 / 8) == pytest.approx(1.02)  # Luger eq. 4.3 through the one Link


def test_check_codec() -> None:
    t = Topology.model_validate(_doc())
    t.check_codec("edge", "phone", "int8")
    with pytest.raises(
        InputError, match=r"link edge–cloud does not allow codec 'fp16' \(allowed: none\)"
    ):
        t.check_codec("edge", "cloud", "fp16")
    with pytest.raises(InputError, match="no link between 'phone' and 'cloud'; add one"):
        t.check_codec("phone", "cloud", "none")
    with pytest.raises(InputError, match="no device 'fog'"):
        t.check_codec("phone", "fog", "none")
    with pytest.raises(InputError, match="unknown codec 'lz4'"):
        t.check_codec("phone", "edge", "lz4")


def test_schema_is_registered() -> None:
    props = schema("topology")["properties"]
    assert {"devices", "links", "format"} <= set(props)
    assert "shaping" in json.dumps(schema("topology"))


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node: Any = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is _DROP:
        del node[int(last) if isinstance(node, list) else last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return doc


_DROP = object()


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        ("links.0.b", "fog", r"field 'links': .*link 0 end b 'fog' is not a device"),
        ("links.1.b", "edge", r"field 'links.1': .*joins 'edge' to itself"),
        ("devices.2.name", "edge", r"field 'devices': .*'edge' is used twice"),
        (
            "links.1",
            {"a": "edge", "b": "phone", "bandwidth": 1e6},
            r"field 'links': .*link 1 joins 'edge' and 'phone' again",
        ),
        ("devices.1.url", "local", r"field 'devices': exactly one device .* found 2: phone, edge"),
        ("devices.0.url", "http://x:1", r"field 'devices': exactly one device .* found 0"),
        ("devices.1.url", "ftp://127.0.0.1:8101", r"field 'devices.1.url': .*neither 'local' nor"),
        ("devices.1.url", "127.0.0.1:8101", r"field 'devices.1.url': .*http\(s\) URL"),
        ("devices.1.url", "http://:8101", r"field 'devices.1.url': .*names no host"),
        ("devices.1.url", "http://h:99999", r"field 'devices.1.url': .*port outside"),
        ("devices.1.url", "http://u:pw@h:1", r"field 'devices.1.url': .*credentials"),
        ("devices.1.clock", "2GHz", r"field 'devices.1': .*clock or speed_factor, not both"),
        ("devices.1.speed_factor", 0, r"field 'devices.1.speed_factor'"),
        ("devices.2.device", "tpu", r"field 'devices.2.device'"),
        ("links.0.codecs", ["none", "lz4"], r"field 'links.0.codecs': unknown codec 'lz4'"),
        ("links.0.shaping", "sometimes", r"field 'links.0.shaping'"),
        ("devices", [], r"field 'devices'"),
        ("format", "edgesplit.system", r"field 'format'"),
    ],
)
def test_bad_topology_names_the_field(tmp_path: Path, path: str, value: Any, needle: str) -> None:
    file = tmp_path / "topology.yaml"
    file.write_text(yaml.safe_dump(_set(_doc(), path, value)))
    with pytest.raises(InputError, match=needle) as err:
        load_topology(file)
    line = str(err.value)
    assert "\n" not in line and line.startswith(f"topology file {str(file)!r}")
    assert line.endswith("see `edgesplit schema topology`")


# The kinds of the CLI's malformed-input table (benchmarks/bench_malformed_inputs.py).
GOOD = yaml.safe_dump(_doc())
KINDS = {
    "empty": ("t.yaml", b"", "is empty"),
    "binary": ("t.yaml", b"\x80\xff\x00devices", "is binary"),
    "list": ("t.yaml", yaml.safe_dump([_doc()]).encode(), "holds a list at the top level"),
    "yaml-syntax": ("t.yaml", b"devices: {name: phone\n", "is not valid YAML: line"),
    "json-syntax": ("t.json", b'{"devices": [],}', "is not valid JSON: line 1"),
    "wrong-type": ("t.yaml", yaml.safe_dump({**_doc(), "links": "phone-edge"}).encode(),
                   "field 'links': .*valid list"),
    "missing-field": ("t.yaml", yaml.safe_dump(_set(_doc(), "devices.1.url", _DROP)).encode(),
                      "field 'devices.1.url': .*required"),
    "bad-value": ("t.yaml", yaml.safe_dump(_set(_doc(), "links.0.rtt", "5 parsecs")).encode(),
                  "field 'links.0.rtt'"),
    "unknown-field": ("t.yaml", yaml.safe_dump(_set(_doc(), "links.0.shapping", True)).encode(),
                      "field 'links.0.shapping': unknown field"),
    "reference": ("t.yaml", yaml.safe_dump(_set(_doc(), "links.1.a", "fog")).encode(),
                  "link 1 end a 'fog' is not a device; devices: phone, edge, cloud"),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_malformed_topology_file_is_one_line(tmp_path: Path, kind: str) -> None:
    name, body, needle = KINDS[kind]
    file = tmp_path / name
    file.write_bytes(body)
    with pytest.raises(InputError, match=needle) as err:
        load_topology(file)
    assert "\n" not in str(err.value) and "topology file" in str(err.value)


def test_missing_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="topology file .* does not exist"):
        load_topology(tmp_path / "nowhere.yaml")
