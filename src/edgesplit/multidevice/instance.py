"""Instance files for the multi-device problem: pydantic schema and cost building.

An instance (JSON or YAML; ``edgesplit schema multidevice``) lists N devices, each with its
own model, uplink rate and delay sources, plus the server's load level. Per-layer output
sizes always come from the traced :class:`~edgesplit.graph.Graph` of the device's model
(``graph.cut(k).bytes``), or from ``cut_bytes`` for fully explicit devices.

Delay sources, per device and side (``local`` or ``server``):

* ``profile``: this machine's per-layer medians (:func:`edgesplit.predict.profile.profile_graph`:
  wall clock on ``PROFILE_THREADS`` = 1 torch thread, the count each process of ``multidevice
  run`` executes on; or a saved ``edgesplit profile`` file), multiplied by ``factor``. The mobile device is
  emulated with ``factor`` = the speed factor (default 10, see docs/multidevice.md: the
  ratio of the MAC terms of the paper's eq. 1 and eq. 2 is exactly 10).
* ``gao``: the polynomial model of eq. 1-2 (:mod:`edgesplit.predict.gao`) fitted by
  least squares on this machine's measured layers of every model in the instance; its
  held-out R² and MAE are kept in ``MecProblem.meta["gao_fit"]``. Times ``factor``.
* ``explicit``: ``seconds``, one per layer.

Server load (Fig. 4 of the paper): a level ``L`` in [0, 1) is the share of the server's
CPU taken by other tasks, so our subtasks run at ``1 - L`` of full speed: server delays
are multiplied by ``1 / (1 - L)`` (processor sharing). ``L = 0`` is the paper's 0 % load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edgesplit.errors import InputError
from edgesplit.io import read_document
from edgesplit.multidevice.problem import DeviceCosts, MecProblem
from edgesplit.system.link import Link

DEFAULT_SPEED_FACTOR = 10.0
#: Torch threads every profile here is timed on (wall clock, :mod:`edgesplit.predict.profile`):
#: each process of ``multidevice run`` executes its parts on one thread (run.py).
PROFILE_THREADS = 1


class DelaySource(BaseModel):
    """Where the per-layer delays of one side come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["profile", "gao", "explicit"] = "profile"
    factor: float = Field(1.0, gt=0, description="multiplier on measured/predicted delays")
    seconds: list[float] | None = Field(None, description="explicit per-layer delays (seconds)")
    profile: str | None = Field(None, description="saved `edgesplit profile` JSON to use")

    @model_validator(mode="before")
    @classmethod
    def _drop_timer(cls, data: Any) -> Any:
        # Files written before the one profiler may carry `timer: cpu|wall`, which was never
        # honoured; every profile now times by wall clock on PROFILE_THREADS torch threads.
        if isinstance(data, dict) and "timer" in data:
            return {k: v for k, v in data.items() if k != "timer"}
        return data

    @field_validator("seconds")
    @classmethod
    def _nonnegative(cls, v: list[float] | None) -> list[float] | None:
        if v is not None:
            bad = [i for i, s in enumerate(v) if s < 0]
            if bad:
                raise ValueError(f"delay of layer {bad[0]} is {v[bad[0]]}; delays must be >= 0")
        return v


class DeviceSpec(BaseModel):
    """One mobile device (``count`` > 1 replicates it as name-0, name-1, ...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "device"
    model: str | None = Field(None, description="zoo name or package.module:callable")
    input_shape: list[int] | None = Field(None, description="input shape for module:callable")
    uplink_mbps: float = Field(..., description="uplink rate in Mbit/s (> 0)")
    local: DelaySource = DelaySource(
        source="profile", factor=DEFAULT_SPEED_FACTOR, seconds=None, profile=None
    )
    server: DelaySource = DelaySource(source="profile", factor=1.0, seconds=None, profile=None)
    layers: list[str] | None = Field(None, description="layer names for explicit devices")
    cut_bytes: list[int] | None = Field(None, description="bytes sent at cut 0..M (explicit)")
    count: int = Field(1, ge=1, le=1000)

    @field_validator("uplink_mbps")
    @classmethod
    def _positive_rate(cls, v: float) -> float:
        if not v > 0:
            raise ValueError(f"uplink rate must be > 0 Mbit/s, got {v}; e.g. uplink_mbps: 2.5")
        return v


class MultiDeviceInstance(BaseModel):
    """N devices around one MEC server (Gao et al. 2019)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    devices: list[DeviceSpec] = Field(..., min_length=1)
    server_load: float = Field(0.0, ge=0.0, lt=1.0, description="share of server CPU taken")
    profile_repeats: int = Field(5, ge=1, description="repeats when profiling on this host")
    gao_samples: int = Field(
        40, ge=0, description="random single-layer blocks measured to fit the 'gao' source"
    )


def load_instance(path: str | Path) -> MultiDeviceInstance:
    """Read and validate a JSON or YAML instance file; one-line InputError if bad."""
    return read_document(path, MultiDeviceInstance, what="multidevice file", schema="multidevice")


class _Costs:
    """Graphs, profiles and the fitted Gao model, shared by all devices of an instance."""

    def __init__(self, instance: MultiDeviceInstance, delay_model: Any = None) -> None:
        self.instance = instance
        # {"local": GaoDelayModel, "server": ...} from --delay-model (predict.gao.delay_models)
        self.delay_model: dict[str, Any] | None = delay_model
        self.graphs: dict[str, Any] = {}
        self.inputs: dict[str, Any] = {}
        self.profiles: dict[str, list[float]] = {}
        self.threads: dict[str, int] = {}  # torch threads each profile was timed on
        self.gao: Any = None
        self.gao_report: dict[str, Any] | None = None

    def graph(self, model: str, shape: list[int] | None = None) -> Any:
        if model not in self.graphs:
            from edgesplit.graph import trace
            from edgesplit.models import build

            module, x = build(model, tuple(shape) if shape else None)
            self.graphs[model] = trace(module, x, name=model)
            self.inputs[model] = x
        return self.graphs[model]

    def measured(self, model: str, saved: str | None) -> list[float]:
        key = saved or model
        if key not in self.profiles:
            graph = self.graph(model)
            from edgesplit.predict.profile import load_profile, profile_graph

            if saved:
                prof = load_profile(saved, model=model)
                source = f"profile {saved!r}"
            else:
                prof = profile_graph(
                    graph,
                    self.inputs[model],
                    threads=PROFILE_THREADS,
                    repeats=self.instance.profile_repeats,
                    warmup=2,
                )
                source = f"the profile of {model!r}"
            self.profiles[key] = prof.seconds(graph, source=source)
            self.threads[key] = prof.host.threads
        return self.profiles[key]

    def predicted(self, model: str, side: str) -> list[float]:
        if self.delay_model is not None:
            return [float(v) for v in self.delay_model[side].predict(self.graph(model).nodes)]
        if self.gao is None:
            from edgesplit.predict.gao import fit_with_holdout, sample_layers

            # Variable-controlled single layers (§II-B) plus the instance's own models.
            nodes, secs = sample_layers(
                self.instance.gao_samples,
                repeats=self.instance.profile_repeats,
                threads=PROFILE_THREADS,
            )
            for m in sorted({d.model for d in self.instance.devices if d.model}):
                nodes.extend(self.graph(m).nodes)
                secs.extend(self.measured(m, None))
            report = fit_with_holdout(nodes, secs)
            self.gao, self.gao_report = report.model, report.to_dict()
        return [float(v) for v in self.gao.predict(self.graph(model).nodes)]

    def delays(self, spec: DeviceSpec, side: DelaySource, label: str, m: int) -> list[float]:
        if side.source == "explicit":
            if side.seconds is None:
                raise InputError(
                    f"device {spec.name!r}: {label}.seconds is required for source explicit"
                )
            if len(side.seconds) != m:
                raise InputError(
                    f"device {spec.name!r}: {label}.seconds has {len(side.seconds)} entries "
                    f"but the device has {m} layers"
                )
            return [s * side.factor for s in side.seconds]
        if spec.model is None:
            raise InputError(f"device {spec.name!r}: {label}.source {side.source} needs a 'model'")
        base = (
            self.measured(spec.model, side.profile)
            if side.source == "profile"
            else self.predicted(spec.model, label)
        )
        return [s * side.factor for s in base]


def build_problem(
    instance: MultiDeviceInstance, delay_model: tuple[dict[str, Any], str] | None = None
) -> MecProblem:
    """Turn an instance into per-layer costs (profiling or fitting on this host if asked).

    ``delay_model`` (:func:`edgesplit.predict.gao.delay_models`) replaces the on-the-spot
    fit of every ``gao`` source by a saved or the paper's built-in model.
    """
    if delay_model is not None and not any(
        side.source == "gao" for d in instance.devices for side in (d.local, d.server)
    ):
        raise InputError(
            "--delay-model applies to 'gao' delay sources, and no device has one; "
            "set local.source (or server.source) to gao in the instance"
        )
    costs = _Costs(instance, delay_model[0] if delay_model else None)
    slowdown = 1.0 / (1.0 - instance.server_load)
    devices = []
    local_factor: list[float] = []
    server_factor: list[float] = []
    for spec in instance.devices:
        if spec.model is not None:
            graph = costs.graph(spec.model, spec.input_shape)
            layers = [n.name for n in graph.nodes]
            cut_bytes = [c.bytes for c in graph.cuts()] if layers else []
        else:
            n_explicit = len(spec.local.seconds or [])
            layers = spec.layers or [f"layer{j}" for j in range(n_explicit)]
            if not layers:
                raise InputError(
                    f"device {spec.name!r} has no layers; give a 'model' or explicit local.seconds"
                )
            if spec.cut_bytes is None:
                raise InputError(
                    f"device {spec.name!r}: cut_bytes (cut 0..M) is required without a model"
                )
            cut_bytes = list(spec.cut_bytes)
        if not layers:
            raise InputError(f"device {spec.name!r}: model {spec.model!r} has no layers to split")
        local = costs.delays(spec, spec.local, "local", len(layers))
        server = [s * slowdown for s in costs.delays(spec, spec.server, "server", len(layers))]
        for c in range(spec.count):
            local_factor.append(spec.local.factor if spec.local.source != "explicit" else 1.0)
            server_factor.append(spec.server.factor if spec.server.source != "explicit" else 1.0)
            devices.append(
                DeviceCosts(
                    name=spec.name if spec.count == 1 else f"{spec.name}-{c}",
                    model=spec.model or "explicit",
                    layers=tuple(layers),
                    local_s=tuple(local),
                    server_s=tuple(server),
                    cut_bytes=tuple(cut_bytes),
                    uplink=Link.of(spec.uplink_mbps * 1e6),
                )
            )
    # The local factors set each device's emulated speed in `multidevice run` (see run.py).
    meta: dict[str, Any] = {
        "server_slowdown": slowdown,
        "local_factor": local_factor,
        "server_factor": server_factor,
    }
    shapes = {d.model: d.input_shape for d in instance.devices if d.model and d.input_shape}
    if shapes:
        meta["input_shapes"] = shapes
    if costs.gao_report is not None:
        meta["gao_fit"] = costs.gao_report
    if delay_model is not None:
        meta["delay_model"] = delay_model[1]
    if costs.threads:
        meta["profiling"] = {"timer": "wall clock", "torch_threads": costs.threads}
    return MecProblem(tuple(devices), server_load=instance.server_load, meta=meta)


def load_problem(
    path: str | Path,
    trust_model_code: bool = False,
    delay_model: tuple[dict[str, Any], str] | None = None,
) -> MecProblem:
    """:func:`load_instance` then :func:`build_problem` (``delay_model``: see there).

    A device's ``package.module:callable`` model is code and is refused unless
    ``trust_model_code`` (data files are data).
    """
    from edgesplit.models import check_trusted

    instance = load_instance(path)
    for d in instance.devices:
        if d.model:
            check_trusted(d.model, f"multidevice file {str(path)!r}", trust_model_code)
    return build_problem(instance, delay_model)


def explicit_instance(problem: MecProblem) -> dict[str, Any]:
    """Freeze a problem's costs as an explicit instance document (no profiling needed).

    Server delays are written *with* the load slowdown applied and ``server_load: 0``, so
    solving the frozen file gives the same schedule as the original.
    """
    return {
        "server_load": 0.0,
        "devices": [
            {
                "name": d.name,
                "uplink_mbps": d.uplink.rate_bps / 1e6,
                **(
                    {"model": d.model}
                    if d.model != "explicit"
                    else {"layers": list(d.layers), "cut_bytes": list(d.cut_bytes)}
                ),
                "local": {"source": "explicit", "seconds": list(d.local_s)},
                "server": {"source": "explicit", "seconds": list(d.server_s)},
            }
            for d in problem.devices
        ],
    }
