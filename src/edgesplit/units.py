"""Quantities written the way people write them, parsed into SI floats.

Bandwidth becomes bit/s, durations seconds, frequencies Hz and sizes bytes. A lower-case
``b`` (or ``bit``) means bits and an upper-case ``B`` means bytes, so ``7.2mbit``,
``7.2Mbps`` and ``7.2 Mb/s`` are all 7.2e6 bit/s while ``1MB/s`` is 8e6 bit/s (the
common networking reading; ``tc``'s ``mbps`` = megabytes is deliberately *not* followed,
since "Mbps" means megabits to nearly everyone). Decimal prefixes are powers of 1000;
``Ki``/``Mi``/``Gi`` are powers of 1024 and only make sense for sizes.

A bare number is taken as already being in the SI unit (bit/s, s, Hz, bytes); this is
what YAML gives for ``bandwidth: 7200000``. Anything else raises
:class:`~edgesplit.errors.UnitError` naming the value and the accepted forms.

>>> parse_bandwidth("7.2mbit")
7200000.0
>>> parse_bandwidth("900kbit/s")
900000.0
>>> parse_duration("40ms")
0.04
>>> parse_frequency("1.5GHz")
1500000000.0
>>> parse_bytes("16 GiB")
17179869184.0
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator

from edgesplit.errors import UnitError

_NUMBER = r"(?P<num>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*"

_DECIMAL = {
    "": 1.0,
    "k": 1e3,
    "K": 1e3,
    "m": 1e6,
    "M": 1e6,
    "g": 1e9,
    "G": 1e9,
    "t": 1e12,
    "T": 1e12,
}
_BINARY = {"ki": 2.0**10, "mi": 2.0**20, "gi": 2.0**30, "ti": 2.0**40}

_BANDWIDTH = re.compile(
    _NUMBER + r"(?P<prefix>[kKmMgGtT]?)(?P<unit>bit|bits|bps|b|Bps|B|byte|bytes)(?:/s|ps)?$"
)
_DURATION = {
    "s": 1.0,
    "sec": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,
    "ns": 1e-9,
    "min": 60.0,
    "h": 3600.0,
}
_FREQUENCY = {"hz": 1.0, "khz": 1e3, "mhz": 1e6, "ghz": 1e9}

BANDWIDTH_FORMS = "e.g. 7.2mbit, 900kbit/s, 2.5 Mbps, 10Mb/s, 1MB/s (bytes), or a number in bit/s"
DURATION_FORMS = "e.g. 40ms, 0.5s, 250us, 2min, or a number in seconds"
FREQUENCY_FORMS = "e.g. 1.5GHz, 600MHz, or a number in Hz"
BYTES_FORMS = "e.g. 4GiB, 512MB, 64kB, or a number of bytes"


def _number_only(value: object, what: str, forms: str) -> float | None:
    """A plain int/float (or numeric string) is already in SI units."""
    if isinstance(value, bool):
        raise UnitError(f"{what} {value!r} is not a quantity; write it {forms}")
    if isinstance(value, int | float):
        return _finite(float(value), value, what, forms)
    if not isinstance(value, str):
        raise UnitError(f"{what} {value!r} is not a quantity; write it {forms}")
    try:
        x = float(value.strip())
    except ValueError:
        return None
    return _finite(x, value, what, forms)


def _finite(x: float, raw: object, what: str, forms: str) -> float:
    if not math.isfinite(x) or x < 0:
        raise UnitError(f"{what} {raw!r} must be a finite, non-negative quantity; write it {forms}")
    return x


def parse_bandwidth(value: object) -> float:
    """Parse a bandwidth into bit/s (``b``/``bit`` = bits, ``B``/``byte`` = bytes)."""
    number = _number_only(value, "bandwidth", BANDWIDTH_FORMS)
    if number is not None:
        return number
    text = str(value).strip()
    m = _BANDWIDTH.match(text)
    if m is None:
        raise UnitError(f"bandwidth {text!r} is not understood; write it {BANDWIDTH_FORMS}")
    unit = m["unit"]
    per_unit = 8.0 if unit in ("B", "Bps", "byte", "bytes") else 1.0
    x = float(m["num"]) * _DECIMAL[m["prefix"]] * per_unit
    return _finite(x, text, "bandwidth", BANDWIDTH_FORMS)


def _scaled(value: object, what: str, forms: str, units: dict[str, float], fold: bool) -> float:
    number = _number_only(value, what, forms)
    if number is not None:
        return number
    text = str(value).strip()
    m = re.match(_NUMBER + r"(?P<unit>[A-Za-zµ]+)$", text)
    unit = m["unit"].lower() if (m and fold) else (m["unit"] if m else "")
    if m is None or unit not in units:
        raise UnitError(f"{what} {text!r} is not understood; write it {forms}")
    return _finite(float(m["num"]) * units[unit], text, what, forms)


def parse_duration(value: object) -> float:
    """Parse a duration into seconds (s, ms, us/µs, ns, min, h)."""
    return _scaled(value, "duration", DURATION_FORMS, _DURATION, fold=False)


def parse_frequency(value: object) -> float:
    """Parse a clock frequency into Hz (Hz, kHz, MHz, GHz; case-insensitive)."""
    return _scaled(value, "frequency", FREQUENCY_FORMS, _FREQUENCY, fold=True)


def parse_bytes(value: object) -> float:
    """Parse a size into bytes (B, kB, MB, GB, TB decimal; KiB, MiB, GiB, TiB binary)."""
    units = {
        **{f"{p}b": f for p, f in _BINARY.items()},
        **{f"{p.lower()}b": f for p, f in _DECIMAL.items()},
        "byte": 1.0,
        "bytes": 1.0,
    }
    return _scaled(value, "size", BYTES_FORMS, units, fold=True)


# Pydantic field types: accept "7.2mbit" or a number already in SI units.
Bandwidth = Annotated[float, BeforeValidator(parse_bandwidth)]
Duration = Annotated[float, BeforeValidator(parse_duration)]
Frequency = Annotated[float, BeforeValidator(parse_frequency)]
Bytes = Annotated[float, BeforeValidator(parse_bytes)]

__all__ = [
    "Bandwidth",
    "Bytes",
    "Duration",
    "Frequency",
    "parse_bandwidth",
    "parse_bytes",
    "parse_duration",
    "parse_frequency",
]
