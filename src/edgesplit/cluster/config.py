"""Cluster description for the SplitPlace simulator (Tuli 2021, §3.1 and §4 "Setup").

One YAML/JSON file describes the hosts, the mobility model and the workload; ``edgesplit
schema cluster`` prints its JSON schema. Every field has the paper's default, so an empty
file means the paper's cluster: 16 Raspberry Pi 4B (8 x 4 GB, 8 x 8 GB), 4029 MIPS,
5000 Mbit/s links, SPEC-style 11-point power curves, 5-minute intervals, Poisson(6) tasks.

Choices the paper leaves open (documented in docs/cluster.md):

- half of the hosts (every second one) are mobile and move by random waypoint on a city
  grid (:mod:`edgesplit.cluster.mobility`); the paper replays SUMO traces instead;
- SLA deadlines are ``Uniform(sla_min, sla_max)`` scheduling intervals after arrival;
- batches are ``Uniform{batch_min..batch_max}`` inputs per task;
- one DNN instruction per FLOP (``instructions_per_flop``), one fragment uses one core.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from edgesplit.io import read_document
from edgesplit.system.link import Link
from edgesplit.system.power import RASPBERRY_PI_4B_4GB, RASPBERRY_PI_4B_8GB, PowerModel


def _curve(value: Any) -> Any:
    """A bare list of 11 watts (the ``power_w`` form) is a :class:`PowerModel` curve."""
    return {"curve_w": list(value)} if isinstance(value, list | tuple) else value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HostSpec(_Strict):
    """One edge worker; its link to the broker; its power (a :class:`PowerModel`: 11 watts
    at 0, 10, ..., 100 % CPU, linear between, written ``power_w: [...]``, or a constant)."""

    name: str
    mips: float = Field(default=4029.0, gt=0, description="million instructions per second")
    cores: int = Field(default=4, ge=1, description="a fragment uses at most one core")
    ram_mb: float = Field(gt=0)
    disk_mb: float = Field(default=32000.0, gt=0)
    bandwidth_mbps: float = Field(
        default=5000.0, gt=0, description="link to the broker at distance 0"
    )
    latency_s: float = Field(default=0.001, ge=0, description="one-way latency at distance 0")
    power: Annotated[
        PowerModel, BeforeValidator(_curve, json_schema_input_type=list[float] | PowerModel)
    ] = Field(
        validation_alias=AliasChoices("power_w", "power"),
        description="power_w: [11 watts at 0,10,...,100 % CPU], or a PowerModel",
    )
    position_km: tuple[float, float] = (0.0, 0.0)
    mobile: bool = False

    @model_validator(mode="after")
    def _check_power(self) -> HostSpec:
        curve = self.power.curve_w or []
        if any(b < a for a, b in zip(curve, curve[1:])):
            raise ValueError(f"power_w of host {self.name!r} must not decrease with load")
        return self

    @property
    def link(self) -> Link:
        """The link to the broker at distance 0 (``latency_s`` is one way: rtt/2)."""
        return Link.of(self.bandwidth_mbps * 1e6, rtt_s=2.0 * self.latency_s)


class MobilitySpec(_Strict):
    """Random waypoint on a Manhattan grid; link quality decays with distance to the broker.

    bandwidth = bandwidth_mbps / (1 + (d / range_km)^2), latency = latency_s + d * latency_per_km_s.
    """

    grid_km: float = Field(default=4.0, gt=0, description="side of the square city")
    block_km: float = Field(
        default=0.5, gt=0, description="street spacing; waypoints lie on streets"
    )
    speed_kmh: tuple[float, float] = (5.0, 40.0)
    pause_s: float = Field(default=60.0, ge=0)
    range_km: float = Field(default=1.0, gt=0)
    latency_per_km_s: float = Field(default=0.01, ge=0)
    broker_km: tuple[float, float] = (2.0, 2.0)


class AppSpec(_Strict):
    """A DNN application: a SplitNet-style CNN family traced by edgesplit.graph.trace.

    ``accuracy`` (fractions per variant) overrides the measured table in
    ``cluster/data/accuracy.json``; apps absent there need it.
    """

    name: str
    input_shape: tuple[int, int, int] = (1, 28, 28)
    num_classes: int = Field(default=10, ge=2)
    width: int = Field(default=32, ge=4, description="channels of the first conv block")
    depth: int = Field(default=4, ge=2, description="conv blocks")
    batch_min: int = Field(default=10000, ge=1)
    batch_max: int = Field(default=30000, ge=1)
    accuracy: dict[Literal["layer", "semantic", "compressed"], float] | None = None

    @model_validator(mode="after")
    def _check(self) -> AppSpec:
        if self.batch_max < self.batch_min:
            raise ValueError(f"app {self.name!r}: batch_max must be >= batch_min")
        return self


def _default_apps() -> list[AppSpec]:
    return [
        AppSpec(name="mnist", input_shape=(1, 28, 28), num_classes=10, width=32, depth=4),
        AppSpec(
            name="fashionmnist",
            input_shape=(1, 28, 28),
            num_classes=10,
            width=48,
            depth=4,
            batch_min=8000,
            batch_max=24000,
        ),
        AppSpec(
            name="cifar100",
            input_shape=(3, 32, 32),
            num_classes=100,
            width=64,
            depth=6,
            batch_min=3000,
            batch_max=9000,
        ),
    ]


class WorkloadSpec(_Strict):
    """Poisson(arrival_rate) tasks per interval, application drawn uniformly (paper §4)."""

    arrival_rate: float = Field(
        default=6.0, ge=0, description="lambda: mean new tasks per interval"
    )
    sla_min: float = Field(default=1.0, gt=0, description="deadline, in intervals after arrival")
    sla_max: float = Field(default=8.0, gt=0)
    fragments: int = Field(default=4, ge=2, description="k: fragments per layer or semantic split")
    instructions_per_flop: float = Field(default=1.0, gt=0)
    container_overhead_mb: float = Field(
        default=300.0, ge=0, description="runtime of one container"
    )
    chunk: int = Field(default=64, ge=1, description="inputs held in memory at once by a fragment")
    apps: list[AppSpec] = Field(default_factory=_default_apps, min_length=1)

    @model_validator(mode="after")
    def _check(self) -> WorkloadSpec:
        if self.sla_max < self.sla_min:
            raise ValueError("sla_max must be >= sla_min")
        names = [a.name for a in self.apps]
        if len(set(names)) != len(names):
            raise ValueError(f"app names must be unique, got {names}")
        return self


def raspberry_pi_cluster(n: int = 16, grid_km: float = 4.0) -> list[HostSpec]:
    """The paper's cluster: first half 4 GB, second half 8 GB; every second host mobile."""
    hosts = []
    side = max(1, int(n**0.5))
    for i in range(n):
        big = i >= n // 2
        x = (i % side + 0.5) * grid_km / side
        y = (i // side % side + 0.5) * grid_km / side
        hosts.append(
            HostSpec(
                name=f"rpi{i}",
                ram_mb=8192.0 if big else 4096.0,
                power=RASPBERRY_PI_4B_8GB if big else RASPBERRY_PI_4B_4GB,
                position_km=(x, y),
                mobile=i % 2 == 1,
            )
        )
    return hosts


class ClusterConfig(_Strict):
    """The whole simulated environment (validated; ``edgesplit schema cluster``)."""

    interval_s: float = Field(default=300.0, gt=0)
    intervals: int = Field(default=100, ge=1)
    seed: int = 0
    hosts: list[HostSpec] = Field(default_factory=raspberry_pi_cluster, min_length=1)
    mobility: MobilitySpec = Field(default_factory=lambda: MobilitySpec())
    workload: WorkloadSpec = Field(default_factory=lambda: WorkloadSpec())

    @model_validator(mode="after")
    def _unique(self) -> ClusterConfig:
        names = [h.name for h in self.hosts]
        if len(set(names)) != len(names):
            raise ValueError(f"host names must be unique, got {names}")
        return self


def load_cluster(path: str | Path) -> ClusterConfig:
    """Read and validate a cluster file (YAML or JSON); one-line InputError on bad input."""
    return read_document(path, ClusterConfig, what="cluster file", schema="cluster")
