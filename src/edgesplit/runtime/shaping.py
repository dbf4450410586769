"""In-process link emulation: a token-bucket rate limiter and a user-space RTT delay.

This is the portable shaper that is always available (no root, no kernel support).
It paces the request body through a token bucket of ``rate`` bytes/s, like the kernel's
``tbf`` qdisc (Linux ``tc-tbf(8)``): a chunk starts once the bytes before it are through
and leaves a debt of its own size; the body ends when the last byte is through. A message
starts with no credit saved up while the link was idle, so it takes size/rate; during a
message the bucket may bank up to ``burst`` bytes, which absorbs the oversleeping of
``time.sleep`` on a busy machine instead of losing that link time. It
adds ``rtt/2`` before the request and ``rtt/2`` after the answer, since the kernel here
has no ``netem`` to delay packets. The answer is paced at the same rate (the link is
symmetric), so Luger eq. 3.3's ``response_size/bandwidth`` term is real.

Expected transfer time of ``s`` bytes: ``s·8/bw + rtt/2`` (eq. 4.3,
:meth:`edgesplit.system.link.Link.seconds`); O(s / chunk) sleeps. The link can change at
any moment with :meth:`TokenBucketShaper.set`; the next chunk uses the new rate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from edgesplit.system.link import Link


class TokenBucketShaper:
    """Paces bytes at the link's rate with a ``burst_bytes`` bucket; thread-safe."""

    def __init__(
        self, link: Link, burst_bytes: int = 16 * 1024, chunk_bytes: int = 16 * 1024
    ) -> None:
        self._lock = threading.Lock()
        self._link = link
        self.burst_bytes = burst_bytes
        self.chunk_bytes = chunk_bytes
        self._tokens = float(burst_bytes)
        self._stamp = time.monotonic()
        #: When the bytes :meth:`transmit` took so far are through (``perf_counter``).
        self._free_at = 0.0

    @property
    def link(self) -> Link:
        return self._link

    def set(self, link: Link) -> None:
        """Shape like ``link`` from now on; the next chunk uses its rate."""
        with self._lock:
            self._refill()
            self._link = link

    def _refill(self) -> None:
        now = time.monotonic()
        rate = self._link.rate_bps / 8
        self._tokens = min(self.burst_bytes, self._tokens + (now - self._stamp) * rate)
        self._stamp = now

    def take(self, n: int) -> None:
        """Block until the previous bytes are through, then let ``n`` bytes start (debt)."""
        while True:
            with self._lock:
                self._refill()
                if self._tokens >= 0:
                    self._tokens -= n
                    return
                wait = -self._tokens / (self._link.rate_bps / 8)
            time.sleep(max(wait, 1e-4))

    def drain(self) -> None:
        """Block until every byte taken so far has left the link (the debt is repaid)."""
        while True:
            with self._lock:
                self._refill()
                if self._tokens >= 0:
                    return
                wait = -self._tokens / (self._link.rate_bps / 8)
            time.sleep(max(wait, 1e-4))

    def pace(self, data: bytes) -> Iterator[bytes]:
        """Yield ``data`` in chunks at the link rate; ends once the last byte is through."""
        with self._lock:
            # A message starts on an idle link with no saved-up credit: its time is size/rate.
            self._refill()
            self._tokens = min(self._tokens, 0.0)
        view = memoryview(data)
        for i in range(0, len(data), self.chunk_bytes):
            chunk = view[i : i + self.chunk_bytes]
            self.take(len(chunk))
            yield bytes(chunk)
        self.drain()

    def transmit(self, n: int, since: float | None = None) -> float:
        """Carry one ``n``-byte message across the link; returns the seconds it took.

        The message queues behind the messages already taken (one bucket shared by every
        request in flight, first come first served), starts with no saved-up credit (the
        bucket of :meth:`pace` with no burst: a virtual clock of when the link is next
        free), and arrives ``rtt/2`` after its last byte is through: eq. 4.3,
        ``n·8/bw + rtt/2``, on an idle link. ``since`` (a ``time.perf_counter()`` stamp,
        at most now): when the bytes really arrived, so that the time a receiver took to
        pick them up counts as link time instead of adding to it. One sleep to an absolute
        deadline, so
        ``time.sleep``'s oversleep is paid once per message, not once per chunk (the
        chunked :meth:`pace` of a streamed body paid it per 16 KB).
        """
        now = time.perf_counter()
        start = now if since is None else min(since, now)
        rate = self._link.rate_bps / 8
        with self._lock:
            end = max(self._free_at, start) + n / rate
            self._free_at = end
            deadline = end + self._link.rtt / 2
        while (left := deadline - time.perf_counter()) > 0:
            time.sleep(left)
        return time.perf_counter() - start

    def half_rtt(self) -> None:
        if self._link.rtt > 0:
            time.sleep(self._link.rtt / 2)
