"""Edge clock-speed emulation by time dilation (Luger 2023 §4.1 varies the ES clock).

cpufreq does not exist on these machines, so the clock cannot really be set. The method
used here, and named in every output as ``clock_method = "time-dilation"``, is: run the
edge part at the host's real speed, measure its wall time ``t``, then sleep
``t·(f_ref/f − 1)`` so that the edge latency is ``t·f_ref/f``. This is the first-order
model Luger's own fit assumes (latency ∝ 1/clock, eq. 4.1 with b ≈ −1), it is
deterministic, and it slows only the edge part, never the cloud tier running in the
same process.

Why not a cgroup v1 CPU quota: ``/sys/fs/cgroup/cpu`` is writable here, but CFS quotas
act in whole periods (≥ 1 ms, default 100 ms), so an AlexNet head of a few
milliseconds either runs at full speed or stalls a whole period; the emulated latency
would be a step function of the clock. Asking for a clock above ``f_ref`` cannot speed
the host up: the factor is clamped to 1 and :attr:`ClockEmulator.clamped` says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from edgesplit.errors import InputError

T = TypeVar("T")

CLOCK_METHOD = "time-dilation"


class ClockEmulator:
    """Runs callables as if the CPU ran at ``clock_ghz`` instead of ``ref_ghz``."""

    def __init__(self, ref_ghz: float = 2.6, clock_ghz: float | None = None) -> None:
        if ref_ghz <= 0:
            raise InputError(f"ref_ghz is {ref_ghz}; give the host's clock in GHz (> 0)")
        self.ref_ghz = ref_ghz
        self.clock_ghz = ref_ghz
        self.method = CLOCK_METHOD
        self.set(clock_ghz if clock_ghz is not None else ref_ghz)

    def set(self, clock_ghz: float) -> None:
        if not clock_ghz > 0:
            raise InputError(f"clock is {clock_ghz} GHz; give a positive clock speed")
        self.clock_ghz = clock_ghz

    @property
    def factor(self) -> float:
        """Slow-down factor ``f_ref/f``, at least 1."""
        return max(1.0, self.ref_ghz / self.clock_ghz)

    @property
    def clamped(self) -> bool:
        return self.clock_ghz > self.ref_ghz

    def run(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` and stretch its wall time by :attr:`factor`."""
        t0 = time.perf_counter()
        out = fn()
        elapsed = time.perf_counter() - t0
        extra = elapsed * (self.factor - 1.0)
        if extra > 0:
            time.sleep(extra)
        return out
