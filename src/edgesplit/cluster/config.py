"""Cluster description for the SplitPlace simulator (Tuli 2021, §3.1 and §4 "Setup").

One YAML/JSON file describes the hosts, the mobility model and the workload; ``edgesplit
schema cluster`` prints its JSON schema. Every field has the paper's default, so an empty
file means the paper's cluster: 16 Raspberry Pi 4B (8 x 4 GB, 8 x 8 GB), 4029 MIPS,
5000 Mbit/s links, SPEC-style 11-point power curves, 5-minute intervals, Poisson(6) tasks.

Choices the paper leaves open (documented in docs/cluster.md):

- half of the hosts (every second one) are mobile and move by random waypoint on a city
  grid (:mod:`edgesplit.cluster.mobility`); the paper replays SUMO traces instead;
- SLA deadlines are ``Uniform(sla_min, sla_max)`` scheduling intervals after arrival;
- the three applications run the paper's model families from the zoo (§4 "Workloads":
  MNIST on MobileNetV2, FashionMNIST on ResNet50, CIFAR100 on InceptionV3, our pairing);
- batches are ``Uniform{batch_min..batch_max}`` inputs per task, sized so that the unsplit
  model takes 0.5-1.5 intervals on one idle Pi 4B (our choice, stated in docs/cluster.md);
- one DNN instruction per FLOP (``instructions_per_flop``); a fragment uses up to
  ``fragment_cores`` cores of its host (intra-op threads), co-located fragments share them.
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
    cores: int = Field(
        default=4, ge=1, description="a fragment uses up to workload.fragment_cores of them"
    )
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


def kind(decision: str) -> str:
    """The variant of a split decision: ``"layer:2"`` (a 2-part layer split) is ``"layer"``."""
    return decision.split(":", 1)[0]


class AppSpec(_Strict):
    """A DNN application: a zoo model family or the small SplitNet-style CNN (``splitnet``),
    traced by edgesplit.graph.trace.

    ``input_shape`` defaults to the zoo model's own (224x224, Inception 299x299) and to
    1x28x28 for ``splitnet``; ``width``/``depth`` apply to ``splitnet`` only. ``accuracy``
    (fractions per variant) overrides the table in ``cluster/data/accuracy.json``; apps
    absent there need it.
    """

    name: str
    model: str = Field(
        default="splitnet", description="splitnet, or a zoo name (resnet50, mobilenet_v2, ...)"
    )
    input_shape: tuple[int, int, int] = (1, 28, 28)
    num_classes: int = Field(default=10, ge=2)
    width: int = Field(default=32, ge=4, description="channels of the first conv block")
    depth: int = Field(default=4, ge=2, description="conv blocks")
    batch_min: int = Field(default=10000, ge=1)
    batch_max: int = Field(default=30000, ge=1)
    accuracy: dict[Literal["layer", "semantic", "compressed"], float] | None = None

    @model_validator(mode="after")
    def _check(self) -> AppSpec:
        from edgesplit.models.zoo import ZOO

        if self.batch_max < self.batch_min:
            raise ValueError(f"app {self.name!r}: batch_max must be >= batch_min")
        if self.model != "splitnet" and self.model not in ZOO:
            raise ValueError(
                f"app {self.name!r}: model {self.model!r} is unknown; use splitnet or one of "
                f"{', '.join(ZOO)}"
            )
        return self

    @property
    def shape(self) -> tuple[int, int, int]:
        """The input shape traced: ``input_shape`` if set, else the zoo model's own."""
        if self.model == "splitnet" or "input_shape" in self.model_fields_set:
            return self.input_shape
        from edgesplit.models.zoo import ZOO

        c, h, w = ZOO[self.model].input_shape[1:]
        return (c, h, w)


def _default_apps() -> list[AppSpec]:
    """The paper's three applications on its three model families (pairing ours).

    Batches: one idle Pi 4B (4029 MIPS, 1 instruction per FLOP) runs the unsplit model on
    ``300 s x 4029e6 / FLOPs`` inputs per interval (mobilenet_v2 0.61 GFLOP: ~1970,
    resnet50 8.2: ~147, inception_v3 11.5: ~106); the batch range is 0.5-1.5 times that.
    """
    return [
        AppSpec(name="mnist", model="mobilenet_v2", batch_min=985, batch_max=2955),
        AppSpec(name="fashionmnist", model="resnet50", batch_min=74, batch_max=221),
        AppSpec(
            name="cifar100", model="inception_v3", num_classes=100, batch_min=53, batch_max=159
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
    fragment_cores: int = Field(
        default=4, ge=1, description="cores one fragment can use (intra-op threads)"
    )
    semantic_shared: float = Field(
        default=0.5,
        ge=0,
        lt=1,
        description="FLOP share of the zoo model kept whole in every semantic fragment",
    )
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
