"""The ``Plan``: what every solver returns and what the runtime executes.

A plan is an *assignment* only (policy); :mod:`edgesplit.graph.partition` turns it into
executable parts (mechanism). ``assignment[i]`` is the index into ``devices`` of the
device that runs node ``i`` of the graph. ``predicted`` holds the solver's own figures
(seconds, currency, joules); an independent evaluator must be able to recompute them from
the assignment alone, which the tests do.

Two planners decide more than an assignment; the plan then holds it as plain data, which
the runtime reads without importing the planner's package:

``schedule`` (Gao et al. 2019, eq. 10-16)
    N requesting devices share one server. Each entry of ``requests`` is one device's
    model, its split ``cut`` (nodes ``[0, cut)`` run on the requesting device, the plan's
    ``devices[0]``) and the server's node ranges ``segments`` (``[first, stop)``, together
    ``[cut, nodes)``); ``order`` lists ``(request, segment)`` in the order the server
    ``schedule.server`` serves them, and ``timeout_s`` how long a turn waits for a
    request that has not come (then the server moves on; the record marks it).
``exits`` (Zuo 2024, Pre-DNNOff, eq. 4.8; BranchyNet)
    ``outputs`` names the model output of each exit, shallow to deep; ``rule`` chooses
    the exit per request: ``index`` (always exit ``index``), ``requirement`` (the
    shallowest exit whose ``accuracies`` entry meets ``requirement``, as eq. 4.8 assumes)
    or ``entropy`` (BranchyNet: exit ``k`` fires when the entropy of its softmax is below
    ``thresholds[k-1]``, trying exits shallow to deep).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgesplit.errors import InputError
from edgesplit.io import read_document


@dataclass(frozen=True)
class Plan:
    """An assignment of graph nodes to devices, with the solver's predicted figures.

    ``cut`` is set for contiguous two-tier splits: nodes ``[0, cut)`` on ``devices[0]``.
    """

    model: str
    algorithm: str
    devices: tuple[str, ...]
    assignment: tuple[int, ...]
    predicted: dict[str, float] = field(default_factory=dict)
    objective: str = "latency"
    cut: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    schedule: dict[str, Any] | None = None
    exits: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for i, d in enumerate(self.assignment):
            if not 0 <= d < len(self.devices):
                raise InputError(
                    f"plan assigns node {i} to device {d}; it has devices 0..{len(self.devices) - 1}"
                )
        if self.schedule is not None:
            spec = check_spec(ScheduleSpec, self.schedule, "schedule")
            if spec.server not in self.devices:
                raise InputError(
                    f"schedule.server {spec.server!r} is not a plan device "
                    f"({', '.join(self.devices)}); name the shared server"
                )
            object.__setattr__(self, "schedule", spec.model_dump(mode="json"))
        if self.exits is not None:
            object.__setattr__(
                self, "exits", check_spec(ExitSpec, self.exits, "exits").model_dump(mode="json")
            )

    @classmethod
    def two_tier(
        cls,
        model: str,
        algorithm: str,
        n_nodes: int,
        cut: int,
        devices: tuple[str, str] = ("edge", "cloud"),
        **kwargs: Any,
    ) -> Plan:
        """Nodes ``[0, cut)`` on ``devices[0]``, the rest on ``devices[1]``."""
        if not 0 <= cut <= n_nodes:
            raise InputError(f"cut {cut} is out of range 0..{n_nodes}")
        assignment = tuple(0 if i < cut else 1 for i in range(n_nodes))
        return cls(model, algorithm, devices, assignment, cut=cut, **kwargs)

    def nodes_on(self, device: str) -> tuple[int, ...]:
        d = self.devices.index(device)
        return tuple(i for i, a in enumerate(self.assignment) if a == d)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["devices"] = list(self.devices)
        doc["assignment"] = list(self.assignment)
        for key in ("schedule", "exits"):
            if doc[key] is None:
                del doc[key]
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Plan:
        try:
            return cls(
                model=doc["model"],
                algorithm=doc["algorithm"],
                devices=tuple(doc["devices"]),
                assignment=tuple(int(a) for a in doc["assignment"]),
                predicted={k: float(v) for k, v in doc.get("predicted", {}).items()},
                objective=doc.get("objective", "latency"),
                cut=doc.get("cut"),
                meta=dict(doc.get("meta", {})),
                schedule=doc.get("schedule"),
                exits=doc.get("exits"),
            )
        except KeyError as err:
            raise InputError(f"plan document lacks field {err.args[0]!r}") from None


class ScheduledRequest(BaseModel):
    """One requesting device of a Gao schedule: its model, split and server segments."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="the requesting device (Gao's mobile device i)")
    model: str = Field(min_length=1, description="zoo name or package.module:callable")
    model_options: dict[str, Any] = Field(default_factory=dict)
    fingerprint: dict[str, str] = Field(default_factory=dict)
    cut: int = Field(ge=0, description="nodes [0, cut) run on the requesting device")
    segments: list[tuple[int, int]] = Field(
        default_factory=list, description="the server's node ranges [first, stop), in order"
    )

    @model_validator(mode="after")
    def _contiguous(self) -> ScheduledRequest:
        at = self.cut
        for first, stop in self.segments:
            if first != at or stop <= first:
                raise ValueError(
                    f"request {self.name!r}: segments must be non-empty [first, stop) ranges "
                    f"that continue from cut {self.cut} without gaps; got {self.segments}"
                )
            at = stop
        return self


class ScheduleSpec(BaseModel):
    """Gao's schedule: who sends what, and the order the shared server serves it in."""

    model_config = ConfigDict(extra="forbid")

    server: str = Field(min_length=1, description="the plan device all requests share")
    requests: list[ScheduledRequest] = Field(min_length=1)
    order: list[tuple[str, int]] = Field(
        default_factory=list, description="(request name, segment index) in serving order"
    )
    timeout_s: float = Field(
        5.0, gt=0, le=60, description="longest wait for a turn whose request has not come"
    )

    @model_validator(mode="after")
    def _order(self) -> ScheduleSpec:
        names = [r.name for r in self.requests]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"request name {dup[0]!r} appears twice; names must be unique")
        want = {(r.name, j) for r in self.requests for j in range(len(r.segments))}
        got = [(str(n), int(j)) for n, j in self.order]
        if len(got) != len(want) or set(got) != want:
            raise ValueError(
                "order must list every (request, segment index) exactly once; "
                f"it has {len(got)} entries for {len(want)} segments"
            )
        for name in names:
            seq = [j for n, j in got if n == name]
            if seq != sorted(seq):
                raise ValueError(f"order serves request {name!r}'s segments out of order: {seq}")
        return self


class ExitSpec(BaseModel):
    """Exit points and the exit rule of an early-exit plan (Pre-DNNOff, BranchyNet)."""

    model_config = ConfigDict(extra="forbid")

    outputs: list[str] = Field(min_length=1, description="model output of each exit, shallow first")
    accuracies: list[float] = Field(default_factory=list, description="accuracy of each exit")
    rule: Literal["index", "requirement", "entropy"] = "requirement"
    index: int | None = Field(None, ge=1, description="rule index: the exit taken (1-based)")
    requirement: float | None = Field(None, ge=0, le=1, description="rule requirement")
    thresholds: list[float] | None = Field(None, description="rule entropy: one per side exit")

    @model_validator(mode="after")
    def _rule(self) -> ExitSpec:
        n = len(self.outputs)
        if self.accuracies and len(self.accuracies) != n:
            raise ValueError(
                f"accuracies needs one entry per exit ({n}), not {len(self.accuracies)}"
            )
        if self.rule == "index" and (self.index is None or self.index > n):
            raise ValueError(f"rule index needs index in 1..{n}")
        if self.rule == "requirement" and (self.requirement is None or not self.accuracies):
            raise ValueError("rule requirement needs requirement and accuracies")
        if self.rule == "entropy" and (self.thresholds is None or len(self.thresholds) != n - 1):
            raise ValueError(f"rule entropy needs thresholds: one per side exit ({n - 1})")
        return self


def check_spec(kind: type[BaseModel], doc: Any, where: str) -> Any:
    """``doc`` checked as ``kind``; InputError naming the field on a bad value."""
    if isinstance(doc, kind):
        return doc
    try:
        return kind.model_validate(doc)
    except ValueError as err:
        errors: list[Any] = getattr(err, "errors", lambda: [])()
        if errors:
            loc = ".".join(str(p) for p in errors[0]["loc"])
            msg = str(errors[0]["msg"]).removeprefix("Value error, ")
            raise InputError(f"{where}{'.' + loc if loc else ''}: {msg}") from None
        raise InputError(f"{where}: {err}") from None


class PlanFile(BaseModel):
    """A plan file as ``Plan.to_dict`` writes it (``plan --json`` and the solvers' ``-o``)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    algorithm: str
    devices: list[str] = Field(min_length=1)
    assignment: list[int]
    predicted: dict[str, float] = Field(default_factory=dict)
    objective: str = "latency"
    cut: int | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    schedule: ScheduleSpec | None = None
    exits: ExitSpec | None = None


def load_plan(path: str | Path) -> Plan:
    """Read a plan file (JSON or YAML); one-line InputError naming the file and the field."""
    doc = read_document(path, PlanFile, what="plan file", schema="plan")
    try:
        return Plan.from_dict(doc.model_dump())
    except InputError as err:
        raise InputError(f"plan file {str(path)!r}: {err}") from None
