"""The one Link: Luger eq. 4.3 and the eq. 3.3 response leg, Pre-DNNOff eq. 4.2, units,
codecs, immutability; Prices (eq. 4.4, Table 4.1) and the named power curves."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from edgesplit.errors import InputError
from edgesplit.system import CODECS, Link, LinkEntry, Prices, Shannon, System
from edgesplit.system.power import RASPBERRY_PI_4B_4GB, RASPBERRY_PI_4B_8GB


def test_eq_4_3_one_message_and_the_response_leg() -> None:
    link = Link(bandwidth=7.2e6, rtt=0.04)
    # OS·8/BW + PL/2 with OS = 900 kB, BW = 7.2 Mbit/s, PL = 40 ms (written out by hand).
    assert link.seconds(900_000) == pytest.approx(900_000 * 8 / 7.2e6 + 0.02)
    assert link.seconds(0) == 0.0  # nothing crosses: nothing is sent
    assert link.response_seconds(4_000) == pytest.approx(4_000 * 8 / 7.2e6 + 0.02)
    assert link.offload_seconds(900_000, 4_000) == pytest.approx(
        link.seconds(900_000) + link.response_seconds(4_000)
    )
    assert link.offload_seconds(0, 4_000) == 0.0  # all-in-edge: no upload, no response


def test_units_and_plain_numbers_agree() -> None:
    written = Link(bandwidth="7.2mbit", rtt="40ms")
    assert written == Link(bandwidth=7.2e6, rtt=0.04) == Link.of(7.2e6, rtt_s=0.04)
    assert Link(bandwidth="1MB/s").rate_bps == 8e6  # upper-case B means bytes
    assert Link(shannon={"width": "20MHz", "snr_db": 10}).shannon == Shannon(width=20e6, snr_db=10)


def test_shannon_rate_eq_4_2() -> None:
    linear = Link(shannon={"width": 1e6, "snr": 3.0})
    assert linear.rate_bps == pytest.approx(1e6 * math.log2(4.0))
    in_db = Link(shannon={"width": 20e6, "snr_db": 10.0}, rtt=0.01)
    assert in_db.rate_bps == pytest.approx(20e6 * math.log2(1 + 10.0))
    nbytes = 250_000
    assert in_db.seconds(nbytes) == pytest.approx(nbytes * 8 / in_db.rate_bps + 0.005)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({}, "exactly one of bandwidth or shannon"),
        ({"bandwidth": 1e6, "shannon": {"width": 1e6, "snr": 1}}, "exactly one"),
        ({"bandwidth": 0}, "greater than 0"),
        ({"bandwidth": "fast"}, "not understood"),
        ({"bandwidth": 1e6, "rtt": "-5ms"}, "non-negative"),
        ({"shannon": {"width": 1e6}}, "snr"),
        ({"bandwidth": 1e6, "codecs": ["gzip"]}, "unknown codec 'gzip'"),
        ({"bandwidth": 1e6, "codecs": []}, "at least 1"),
        ({"bandwidth": 1e6, "codecs": ["zstd", "zstd"]}, "repeat"),
        ({"bandwidth": 1e6, "a": "edge"}, "Extra inputs"),
    ],
)
def test_bad_links_are_refused(fields: dict[str, object], match: str) -> None:
    with pytest.raises((ValidationError, InputError), match=match):
        Link.model_validate(fields)


def test_codecs_default_and_known_names() -> None:
    assert Link.of(1e6).codecs == ("none",)
    assert Link.of(1e6, codecs=CODECS).codecs == ("none", "zstd", "fp16", "bf16", "int8")


def test_link_is_frozen_and_hashable() -> None:
    link = Link.of(1e6, rtt_s=0.01)
    with pytest.raises(ValidationError, match="frozen"):
        link.rtt = 0.5  # type: ignore[misc]
    assert {link: 1}[Link.of(1e6, rtt_s=0.01)] == 1


def test_of_gives_one_line_input_errors() -> None:
    with pytest.raises(InputError, match="bandwidth") as err:
        Link.of(-1.0)
    assert "\n" not in str(err.value)


def test_system_file_keys_links_by_device_pair() -> None:
    doc = {
        "devices": [{"name": "edge", "tier": "edge"}, {"name": "cloud", "tier": "cloud"}],
        "links": [{"a": "edge", "b": "cloud", "bandwidth": "7.2mbit", "rtt": "40ms"}],
    }
    system = System.model_validate(doc)
    assert isinstance(system.links[0], LinkEntry)
    plain = system.link("cloud", "edge")
    assert type(plain) is Link and plain == Link.of(7.2e6, rtt_s=0.04)
    faster = system.with_link("edge", "cloud", bandwidth="20mbit")
    assert faster.link("edge", "cloud") == Link.of(20e6, rtt_s=0.04)
    with pytest.raises(ValidationError, match="to itself"):
        LinkEntry(a="edge", b="edge", bandwidth=1e6)


def test_prices_eq_4_4_own_and_rent() -> None:
    prices = Prices()
    assert prices.per_hour("edge") == prices.per_hour("edge", "rent") == 0.224
    assert prices.per_hour("edge", "own") == 0.0
    assert prices.per_hour("cloud", "own") == 0.1664
    assert prices.per_hour("device") == 0.0
    # 1 h on the edge and 30 min in the cloud, rented: 0.224 + 0.0832 dollars.
    assert prices.cost({"edge": 3600.0, "cloud": 1800.0}) == pytest.approx(0.224 + 0.0832)
    assert prices.cost({"edge": 3600.0, "cloud": 1800.0}, "own") == pytest.approx(0.0832)
    with pytest.raises(InputError, match="own or rent"):
        prices.per_hour("edge", "lease")
    with pytest.raises(InputError, match="tier 'fog'"):
        prices.per_hour("fog")


def test_named_power_curves_interpolate() -> None:
    for curve in (RASPBERRY_PI_4B_4GB, RASPBERRY_PI_4B_8GB):
        assert curve.curve_w is not None and len(curve.curve_w) == 11
        assert curve.watts(0.0) == curve.curve_w[0] and curve.peak_w == curve.curve_w[-1]
        # Halfway between the 20 % and 30 % points.
        assert curve.watts(0.25) == pytest.approx((curve.curve_w[2] + curve.curve_w[3]) / 2)
