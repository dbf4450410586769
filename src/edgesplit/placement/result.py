"""What every placement solver returns on an :class:`~edgesplit.placement.Instance`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PlacementResult:
    """An assignment (``0`` host, ``a + 1`` accelerator ``a``) with the solver's figures.

    ``latency`` is the solver's own value, recomputed by the evaluator in the tests;
    ``bound`` is a proven lower bound (MILP dual bound, LP value) where the solver has one,
    and ``gap`` the relative gap ``(latency - bound) / latency``.
    """

    algorithm: str
    assignment: tuple[int, ...]
    latency: float
    solve_s: float
    status: str = "heuristic"
    bound: float | None = None
    semantics: str = "critical"
    contiguous: bool = True
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def gap(self) -> float | None:
        if self.bound is None:
            return None
        if self.latency <= 0:
            return 0.0
        return max(0.0, (self.latency - self.bound) / self.latency)

    def to_dict(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "latency": self.latency,
            "solve_s": self.solve_s,
            "status": self.status,
            "bound": self.bound,
            "gap": self.gap,
            "semantics": self.semantics,
            "contiguous": self.contiguous,
            "assignment": list(self.assignment),
            "meta": self.meta,
        }
