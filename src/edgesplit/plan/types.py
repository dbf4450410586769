"""The ``Plan``: what every solver returns and what the runtime executes.

A plan is an *assignment* only (policy); :mod:`edgesplit.graph.partition` turns it into
executable parts (mechanism). ``assignment[i]`` is the index into ``devices`` of the
device that runs node ``i`` of the graph. ``predicted`` holds the solver's own figures
(seconds, currency, joules); an independent evaluator must be able to recompute them from
the assignment alone, which the tests do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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

    def __post_init__(self) -> None:
        for i, d in enumerate(self.assignment):
            if not 0 <= d < len(self.devices):
                raise InputError(
                    f"plan assigns node {i} to device {d}; it has devices 0..{len(self.devices) - 1}"
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
            )
        except KeyError as err:
            raise InputError(f"plan document lacks field {err.args[0]!r}") from None


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


def load_plan(path: str | Path) -> Plan:
    """Read a plan file (JSON or YAML); one-line InputError naming the file and the field."""
    doc = read_document(path, PlanFile, what="plan file", schema="plan")
    try:
        return Plan.from_dict(doc.model_dump())
    except InputError as err:
        raise InputError(f"plan file {str(path)!r}: {err}") from None
