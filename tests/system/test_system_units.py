"""Units: every accepted spelling parses to SI; everything else is one clear UnitError."""

from __future__ import annotations

import pytest

from edgesplit.errors import UnitError
from edgesplit.units import parse_bandwidth, parse_bytes, parse_duration, parse_frequency


@pytest.mark.parametrize(
    ("text", "bps"),
    [
        ("7.2mbit", 7.2e6),
        ("900kbit/s", 9e5),
        ("2.5 Mbps", 2.5e6),
        ("10Mb/s", 1e7),
        ("1MB/s", 8e6),
        ("1gbit", 1e9),
        ("100bps", 100.0),
        ("5e6", 5e6),
        (1e6, 1e6),
    ],
)
def test_bandwidth_forms(text: object, bps: float) -> None:
    assert parse_bandwidth(text) == pytest.approx(bps)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("40ms", 0.04), ("0.5s", 0.5), ("250us", 250e-6), ("250µs", 250e-6), ("2min", 120.0)],
)
def test_duration_forms(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_frequency_and_bytes() -> None:
    assert parse_frequency("1.5GHz") == 1.5e9
    assert parse_frequency("600 MHz") == 6e8
    assert parse_bytes("4GiB") == 4 * 2**30
    assert parse_bytes("512MB") == 512e6


@pytest.mark.parametrize(
    ("parser", "bad"),
    [
        (parse_bandwidth, "fast"),
        (parse_bandwidth, "7.2 mbitt"),
        (parse_bandwidth, "40ms"),
        (parse_duration, "40 parsecs"),
        (parse_duration, "-3ms"),
        (parse_frequency, "1.5GB"),
        (parse_bytes, "lots"),
        (parse_duration, True),
        (parse_duration, "inf"),
    ],
)
def test_rejects_with_value_and_forms(parser: object, bad: object) -> None:
    with pytest.raises(UnitError) as info:
        parser(bad)  # type: ignore[operator]
    msg = str(info.value)
    assert repr(bad) in msg or str(bad) in msg
    assert "e.g." in msg
