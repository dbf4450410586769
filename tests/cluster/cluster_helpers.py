"""Tiny hand-made clusters whose outcomes can be computed by hand (imported by tests)."""

from __future__ import annotations

from collections.abc import Sequence

from edgesplit.cluster.apps import AppProfile, Fragment
from edgesplit.cluster.config import ClusterConfig, HostSpec, WorkloadSpec
from edgesplit.cluster.interface import ClusterView, PendingContainer

LINEAR = tuple(10.0 + i for i in range(11))  # 10 W idle, 20 W at full load


def host(name: str, ram_mb: float = 4000.0, **kw: object) -> HostSpec:
    """1000 MIPS, 4 cores (250 MIPS per fragment), linear 10..20 W, no latency."""
    args: dict[str, object] = dict(
        name=name, mips=1000.0, cores=4, ram_mb=ram_mb, power_w=LINEAR, latency_s=0.0
    )
    args.update(kw)
    return HostSpec(**args)  # type: ignore[arg-type]


def tiny_config(hosts: list[HostSpec], intervals: int = 2) -> ClusterConfig:
    return ClusterConfig(
        interval_s=100.0,
        intervals=intervals,
        seed=0,
        hosts=hosts,
        workload=WorkloadSpec(sla_min=1.0, sla_max=2.0, fragment_cores=1),
    )


def profile(fragments: dict[str, tuple[Fragment, ...]]) -> dict[str, AppProfile]:
    """One app 'toy'; decisions not given get one 1e9-instruction fragment."""
    one = (Fragment(0, 1e9, 10.0, 0, 0),)
    fragments = {**{d: one for d in ("layer", "semantic", "compressed")}, **fragments}
    return {
        "toy": AppProfile(
            name="toy",
            input_shape=(1, 1, 1),
            batch_range=(1, 1),
            fragments=fragments,
            accuracy={"layer": 0.9, "semantic": 0.8, "compressed": 0.7},
        )
    }


class FixedHosts:
    """Placer putting the i-th pending container on ``hosts[i % len]``."""

    name = "fixed"

    def __init__(self, hosts: Sequence[int | None]) -> None:
        self.hosts = list(hosts)

    def place(self, view: ClusterView, pending: Sequence[PendingContainer]) -> list[int | None]:
        return [self.hosts[i % len(self.hosts)] for i in range(len(pending))]

    def observe(self, metrics: object) -> None:
        return None
