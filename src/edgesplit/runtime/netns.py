"""Kernel link shaping: a network namespace whose loopback is rate-limited by ``tc tbf``.

Where the kernel allows it (root, ``ip netns``, the ``tbf`` qdisc), a run can shape the
real wire instead of pacing in-process: a namespace is created, its ``lo`` is brought up
with a 1500-byte MTU (so each packet fits the bucket, as on Ethernet) and a ``tbf`` root
qdisc at the wanted rate. Server and agent then both run inside the namespace
(``ip netns exec NAME ...``) and every byte between them crosses the shaped loopback, in
both directions. ``netem`` does not exist in this kernel, so RTT still comes from the
user-space delay of :class:`~edgesplit.runtime.shaping.TokenBucketShaper` (configure it
with an unlimited rate and the RTT).

Measured on the development machine: see ``results/bench/runtime_fidelity.json``
(``mode = "kernel-tbf"`` rows). Every command is run with a list argv (no shell).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from types import TracebackType

from edgesplit.errors import EdgesplitError


def kernel_shaping_available() -> tuple[bool, str]:
    """Whether :class:`ShapedNamespace` can work here, and why not if it cannot."""
    if os.geteuid() != 0:
        return False, "not root: network namespaces need CAP_NET_ADMIN"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return False, "iproute2 (ip, tc) is not installed"
    return True, "root with ip and tc"


def _run(*argv: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise EdgesplitError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")


class ShapedNamespace:
    """``with ShapedNamespace(7.2) as ns: subprocess.run(ns.exec_prefix + [...])``."""

    def __init__(self, bandwidth_mbit: float, name: str | None = None) -> None:
        self.name = name or f"edgesplit-{uuid.uuid4().hex[:8]}"
        self.bandwidth_mbit = bandwidth_mbit

    @property
    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def _tbf(self, verb: str, bandwidth_mbit: float) -> None:
        # burst: one MTU-sized packet plus headroom; latency bounds the queue, not the delay.
        _run(
            "ip", "netns", "exec", self.name, "tc", "qdisc", verb, "dev", "lo", "root", "tbf",
            "rate", f"{bandwidth_mbit}mbit", "burst", "3000", "latency", "2s",
        )  # fmt: skip

    def set_rate(self, bandwidth_mbit: float) -> None:
        self._tbf("change", bandwidth_mbit)
        self.bandwidth_mbit = bandwidth_mbit

    def __enter__(self) -> ShapedNamespace:
        ok, why = kernel_shaping_available()
        if not ok:
            raise EdgesplitError(f"kernel shaping is unavailable: {why}; use the in-process shaper")
        _run("ip", "netns", "add", self.name)
        try:
            _run("ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "mtu", "1500")
            _run("ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up")
            self._tbf("add", self.bandwidth_mbit)
        except EdgesplitError:
            self.close()
            raise
        return self

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
