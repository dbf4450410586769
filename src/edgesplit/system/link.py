"""The one link type: a fixed bandwidth or a Shannon channel, a round-trip time, the codecs
it allows, and the time a message takes over it.

Luger eq. 4.3 prices one offload of ``OS(SP)`` bytes over a link of bandwidth ``BW`` and
ping latency ``PL`` as ``OS·8/BW + PL/2`` (the thesis writes BW in kbit/s and PL in ms;
here everything is SI: bytes, bit/s, seconds). The result travels back the same way:
eq. 3.3 removes ``ping/2 + response_size/bandwidth`` from the measured round trip, so the
predicted response leg is ``response·8/BW + PL/2``. Nothing is sent when nothing crosses
(all-in-edge). Pre-DNNOff eq. 4.2 gives the rate of a wireless channel of width ``W`` Hz
and signal-to-noise ratio ``SNR`` (linear) as ``W·log2(1 + SNR)`` bit/s. All O(1).

A :class:`Link` carries no endpoints: containers (the system file, a planning problem)
key links by device pair. Quantities accept units (``7.2mbit``, ``40ms``, ``20MHz``).

>>> link = Link(bandwidth="7.2mbit", rtt="40ms")
>>> link.seconds(900_000)
1.02
>>> Link.of(7.2e6, rtt_s=0.04) == link
True
>>> Link(shannon={"width": "1MHz", "snr": 3}).rate_bps
2000000.0
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgesplit.errors import InputError
from edgesplit.units import Bandwidth, Duration, Frequency

CODECS = ("none", "zstd", "fp16", "bf16", "int8")
"""Wire codecs a link may allow; ``none`` sends the raw tensor bytes."""


def shannon_rate(width_hz: float, snr: float) -> float:
    """Pre-DNNOff eq. 4.2: ``W·log2(1 + SNR)`` in bit/s; ``snr`` is linear, not dB."""
    if width_hz <= 0 or snr < 0:
        raise InputError(f"shannon channel needs width > 0 Hz and snr >= 0, got {width_hz}, {snr}")
    return width_hz * math.log2(1.0 + snr)


def snr_from_db(db: float) -> float:
    """A signal-to-noise ratio in dB as a linear ratio: ``10^(dB/10)``."""
    return float(10.0 ** (db / 10.0))


def transfer_seconds(nbytes: float, *, bandwidth_bps: float, rtt_s: float) -> float:
    """Luger eq. 4.3 for one message: ``nbytes·8/bandwidth + rtt/2``; 0 when nothing is sent."""
    if nbytes <= 0:
        return 0.0
    if bandwidth_bps <= 0:
        raise InputError("link bandwidth must be positive to send data; raise 'bandwidth'")
    return nbytes * 8.0 / bandwidth_bps + rtt_s / 2.0


class Shannon(BaseModel):
    """A wireless channel whose rate is W·log2(1+SNR) (Pre-DNNOff eq. 4.2)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    width: Frequency = Field(gt=0, description="channel width W (Hz)")
    snr: float | None = Field(default=None, ge=0, description="linear signal-to-noise ratio")
    snr_db: float | None = Field(default=None, description="signal-to-noise ratio in dB")

    @model_validator(mode="after")
    def _one_snr(self) -> Shannon:
        if (self.snr is None) == (self.snr_db is None):
            raise ValueError("give exactly one of snr (linear) or snr_db")
        return self

    @property
    def rate_bps(self) -> float:
        snr = self.snr if self.snr is not None else snr_from_db(float(self.snr_db or 0.0))
        return shannon_rate(self.width, snr)


class Link(BaseModel):
    """A link: exactly one of ``bandwidth`` (bit/s) or ``shannon``, an ``rtt`` and ``codecs``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bandwidth: Bandwidth | None = Field(default=None, gt=0, description="bit/s")
    shannon: Shannon | None = None
    rtt: Duration = Field(default=0.0, description="round-trip (ping) time, seconds")
    codecs: tuple[str, ...] = Field(
        default=("none",), min_length=1, description=f"wire codecs allowed, of {list(CODECS)}"
    )

    @field_validator("codecs")
    @classmethod
    def _known_codecs(cls, codecs: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [c for c in codecs if c not in CODECS]
        if unknown:
            raise ValueError(f"unknown codec {unknown[0]!r}; choose from {', '.join(CODECS)}")
        if len(set(codecs)) != len(codecs):
            raise ValueError(f"codecs {list(codecs)} repeat a name; list each once")
        return codecs

    @model_validator(mode="after")
    def _one_rate(self) -> Link:
        if (self.bandwidth is None) == (self.shannon is None):
            raise ValueError("give exactly one of bandwidth or shannon")
        return self

    @classmethod
    def of(
        cls, bandwidth_bps: float, rtt_s: float = 0.0, codecs: tuple[str, ...] = ("none",)
    ) -> Link:
        """A link from plain SI numbers; bad values raise one-line :class:`InputError`."""
        try:
            return cls(bandwidth=bandwidth_bps, rtt=rtt_s, codecs=codecs)
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "link"
            raise InputError(f"link {field} {first.get('input')!r}: {first['msg']}") from None

    @property
    def rate_bps(self) -> float:
        """The link's rate in bit/s: its bandwidth, or the Shannon rate of its channel."""
        if self.bandwidth is not None:
            return self.bandwidth
        assert self.shannon is not None
        return self.shannon.rate_bps

    def seconds(self, nbytes: float) -> float:
        """Luger eq. 4.3 for one message over this link (0 when nothing is sent)."""
        return transfer_seconds(nbytes, bandwidth_bps=self.rate_bps, rtt_s=self.rtt)

    def response_seconds(self, nbytes: float) -> float:
        """The response leg of eq. 3.3: ``nbytes·8/BW + PL/2``, paid once a request was sent."""
        return max(nbytes, 0.0) * 8.0 / self.rate_bps + self.rtt / 2.0

    def offload_seconds(self, upload_bytes: float, response_bytes: float) -> float:
        """Eq. 4.3 upload plus the eq. 3.3 response leg; 0 when nothing is offloaded."""
        if upload_bytes <= 0:
            return 0.0
        return self.seconds(upload_bytes) + self.response_seconds(response_bytes)
