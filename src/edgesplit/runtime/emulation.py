"""What one engine process emulates for the devices it plays: shaped links and slower clocks.

Built from the topology file, on both ends of a hop: the ``local`` device's in the client
(``run-plan``), a server's own in ``edgesplit serve --topology FILE --as NAME``.

Links (``shaping: true``). One :class:`~edgesplit.runtime.shaping.TokenBucketShaper` per
link per direction, shared by every request in flight, so pipelined requests queue for the
link as they would on a real one. A message is paced by its *receiver*: when the bytes
have arrived, the receiver holds them for ``rtt/2 + n·8/bw`` on the bucket of the
direction they came (eq. 4.3, Luger 2023, queueing behind the bytes before them) before it
touches them. So the edge paces the device's request before its processing clock starts,
and the device paces the edge's reply before the round trip ends: in the record both fall
in the hop's ``transfer_s`` (round trip less the receiver's processing), the pacing is
independent of the transport that carried the bytes, and no byte is timed twice. A
receiver that does not shape (a plain ``edgesplit serve`` with no topology) says so in its
reply, and the sender then paces that direction itself, on its own bucket, once the reply
is back: the same seconds, only later.

Clocks (``clock`` or ``speed_factor``). A device's stages run under the time-dilation
:class:`~edgesplit.runtime.clock.ClockEmulator` (latency ∝ 1/clock, Luger eq. 4.1 with
b ≈ −1): ``speed_factor`` s stretches compute by 1/s; ``clock`` f by ``REF_GHZ``/f, against
this host's reference clock (``run --ref-clock``'s default). A device computes one stage at
a time (``slots``, 1 for the client's device; a server's ``--max-concurrency``), so a
pipelined run overlaps compute with links, never a device with itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from edgesplit.runtime.clock import ClockEmulator
from edgesplit.runtime.shaping import TokenBucketShaper
from edgesplit.system.link import Link

T = TypeVar("T")

#: This host's reference clock for a topology ``clock`` (GHz), as ``run --ref-clock``.
REF_GHZ = 2.6


def clock_for(device: Any, ref_ghz: float = REF_GHZ) -> ClockEmulator | None:
    """The emulator of a topology device's ``clock``/``speed_factor``, None at host speed."""
    if device.speed_factor is not None:
        return ClockEmulator(ref_ghz=1.0, clock_ghz=float(device.speed_factor))
    if device.clock is not None:
        return ClockEmulator(ref_ghz=ref_ghz, clock_ghz=float(device.clock) / 1e9)
    return None


@dataclass
class Emulation:
    """One process's shaped links (by peer) and clocks (by device), and its compute slots.

    ``inbound[peer]``: the bucket of the direction peer → this device; ``outbound[peer]``:
    this device → peer, used only when ``peer`` does not shape what it receives.
    """

    inbound: dict[str, TokenBucketShaper] = field(default_factory=dict)
    outbound: dict[str, TokenBucketShaper] = field(default_factory=dict)
    clocks: dict[str, ClockEmulator] = field(default_factory=dict)
    slots: int = 1

    def __post_init__(self) -> None:
        self._slots = threading.BoundedSemaphore(self.slots)

    @classmethod
    def from_topology(
        cls, topology: Any, names: frozenset[str] | set[str], slots: int = 1
    ) -> Emulation:
        """The emulation of the devices ``names`` (the ones this process runs)."""
        if topology is None:
            return cls(slots=slots)
        inbound: dict[str, TokenBucketShaper] = {}
        outbound: dict[str, TokenBucketShaper] = {}
        for link in topology.links:
            if not link.shaping:
                continue
            for me, peer in ((link.a, link.b), (link.b, link.a)):
                if me in names and peer not in names:
                    emulated = Link.of(link.rate_bps, rtt_s=link.rtt)
                    inbound[peer] = TokenBucketShaper(emulated)
                    outbound[peer] = TokenBucketShaper(emulated)
        clocks = {}
        for dev in topology.devices:
            clock = clock_for(dev) if dev.name in names else None
            if clock is not None:
                clocks[dev.name] = clock
        return cls(inbound, outbound, clocks, slots)

    def receive(self, peer: str | None, nbytes: int, since: float | None = None) -> float | None:
        """Pace ``nbytes`` that came from ``peer`` (arrived at ``since``, a perf_counter
        stamp); seconds paced from their arrival, None when not shaped."""
        shaper = self.inbound.get(peer) if peer is not None else None
        return None if shaper is None else shaper.transmit(nbytes, since)

    def send_late(self, peer: str, nbytes: int) -> float | None:
        """Pace ``nbytes`` sent to a ``peer`` that did not shape them; None when not shaped."""
        shaper = self.outbound.get(peer)
        return None if shaper is None else shaper.transmit(nbytes)

    def pace_hop(
        self, peer: str, hop: Mapping[str, Any], report: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A hop's record once its shaped directions are paced: ``shaped``, ``paced_out_s``
        and ``paced_back_s`` added, the pacing done here added to ``round_trip_s`` and
        ``transfer_s``.

        The receiver paced the request (``paced_in_s`` in its ``report``) or, where it
        does not shape, this end paces it now; the reply is paced here, on arrival.
        """
        out = dict(hop)
        out_s = report.get("paced_in_s")
        late = self.send_late(peer, int(out["sent_wire_bytes"])) if out_s is None else None
        back_s = self.receive(peer, int(out["reply_wire_bytes"]))
        extra = (late or 0.0) + (back_s or 0.0)
        out["round_trip_s"] += extra
        out["transfer_s"] += extra
        out_s = out_s if out_s is not None else late
        out.update(shaped=out_s is not None or back_s is not None, paced_out_s=out_s,
                   paced_back_s=back_s)  # fmt: skip
        return out

    def compute(self, device: str, fn: Callable[[], T]) -> tuple[T, float, float]:
        """Run ``fn`` as ``device`` in one of this process's compute slots.

        Returns the result, the seconds waited for a slot (queueing) and the compute
        seconds, stretched by the device's clock.
        """
        t0 = time.perf_counter()
        with self._slots:
            t1 = time.perf_counter()
            clock = self.clocks.get(device)
            out = fn() if clock is None else clock.run(fn)
            t2 = time.perf_counter()
        return out, t1 - t0, t2 - t1

    def describe(self, device: str) -> dict[str, Any]:
        """The clock facts of ``device`` for a record's ``tiers`` entry."""
        clock = self.clocks.get(device)
        if clock is None:
            return {"clock_factor": 1.0}
        return {"clock_factor": clock.factor, "clock_method": clock.method}
