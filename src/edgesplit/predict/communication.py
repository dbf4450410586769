"""Communication latency: Luger eq. 4.3 (with the eq. 3.3 response) and the Shannon rate.

Luger eq. 4.3 prices one offload of ``OS(SP)`` bytes over a link of bandwidth ``BW`` and
ping latency ``PL`` as ``OS·8/BW + PL/2`` (the thesis writes BW in kbit/s and PL in ms;
here everything is SI: bytes, bit/s, seconds). The result travels back the same way:
eq. 3.3 removes ``ping/2 + response_size/bandwidth`` from the measured round trip, so the
predicted response leg is ``response·8/BW + PL/2``. Nothing is sent when nothing crosses
(all-in-edge). Pre-DNNOff eq. 4.2 gives the rate of a wireless channel of width ``W`` Hz
and signal-to-noise ratio ``SNR`` (linear) as ``W·log2(1 + SNR)`` bit/s. All O(1).

>>> transfer_seconds(900_000, bandwidth_bps=7.2e6, rtt_s=0.04)
1.02
>>> shannon_rate(1e6, snr=3.0)
2000000.0
"""

from __future__ import annotations

import math

from edgesplit.errors import InputError


def shannon_rate(width_hz: float, snr: float) -> float:
    """Pre-DNNOff eq. 4.2: ``W·log2(1 + SNR)`` in bit/s; ``snr`` is linear, not dB."""
    if width_hz <= 0 or snr < 0:
        raise InputError(f"shannon channel needs width > 0 Hz and snr >= 0, got {width_hz}, {snr}")
    return width_hz * math.log2(1.0 + snr)


def snr_from_db(db: float) -> float:
    return float(10.0 ** (db / 10.0))


def transfer_seconds(nbytes: float, *, bandwidth_bps: float, rtt_s: float) -> float:
    """Luger eq. 4.3 for one message: ``nbytes·8/bandwidth + rtt/2``; 0 when nothing is sent."""
    if nbytes <= 0:
        return 0.0
    if bandwidth_bps <= 0:
        raise InputError("link bandwidth must be positive to send data; raise 'bandwidth'")
    return nbytes * 8.0 / bandwidth_bps + rtt_s / 2.0


def offload_seconds(
    upload_bytes: float, response_bytes: float, *, bandwidth_bps: float, rtt_s: float
) -> float:
    """Eq. 4.3 upload plus the eq. 3.3 response leg; 0 when nothing is offloaded."""
    if upload_bytes <= 0:
        return 0.0
    up = transfer_seconds(upload_bytes, bandwidth_bps=bandwidth_bps, rtt_s=rtt_s)
    down = response_bytes * 8.0 / bandwidth_bps + rtt_s / 2.0
    return up + down
