"""The two-tier planner: candidate table + OL, OC, optimal energy, CL, weighted, Pareto.

:func:`plan_two_tier` is the fast path the runtime's rescheduler calls on every re-plan
(Luger §3: new bandwidth, RTT or clock → new split): given precomputed
:class:`~edgesplit.plan.two_tier.TwoTierInputs` it costs O(n log n) for a table of n+1
cuts. :func:`analyse` returns every choice at once (the ``plan`` command's output), and
:func:`solve` is the registry entry (``--algorithm two-tier``) over a :class:`Problem`.

Objectives: ``latency`` → OL, ``cost`` → OC, ``energy`` → optimal energy, ``weighted`` →
Luger's Algorithm 1 (``tradeoff="luger"``, default) or the normalised weighted sum
(``tradeoff="normalised"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgesplit.errors import InputError
from edgesplit.plan.problem import OBJECTIVES, Problem
from edgesplit.plan.tradeoff import (
    luger_choice,
    optimal_cost,
    optimal_energy,
    optimal_latency,
    pareto_cuts,
    weighted_sum,
)
from edgesplit.plan.two_tier import Candidates, TwoTierInputs, candidate_table, problem_table
from edgesplit.plan.types import Plan
from edgesplit.system.prices import Prices

TRADEOFFS = ("luger", "normalised")


def choose(c: Candidates, objective: str, weight: float = 0.5, tradeoff: str = "luger") -> int:
    """The cut ``objective`` picks from table ``c``."""
    if objective not in OBJECTIVES:
        raise InputError(f"--objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    if tradeoff not in TRADEOFFS:
        raise InputError(f"--tradeoff must be one of {', '.join(TRADEOFFS)}, not {tradeoff!r}")
    if objective == "latency":
        return optimal_latency(c)
    if objective == "cost":
        return optimal_cost(c)
    if objective == "energy":
        return optimal_energy(c)
    return luger_choice(c, weight) if tradeoff == "luger" else weighted_sum(c, weight)


def plan_from_table(
    c: Candidates, cut: int, *, algorithm: str, objective: str, meta: dict[str, Any]
) -> Plan:
    """A :class:`Plan` for row ``cut`` whose predicted figures the evaluator can re-check."""
    row = c.row(cut)
    edge, cloud = c.devices
    predicted = {
        "latency_s": row["latency_s"],
        "compute_s": row["edge_s"] + row["cloud_s"],
        "comm_s": row["comm_s"],
        "cost": row["cost"],
        "energy_j": row["energy_j"],
        f"compute_s:{edge}": row["edge_s"],
        f"compute_s:{cloud}": row["cloud_s"],
    }
    if "codec_s" in row:
        predicted["codec_s"] = row["codec_s"]
    return Plan.two_tier(
        c.model,
        algorithm,
        len(c) - 1,
        cut,
        devices=c.devices,
        predicted=predicted,
        objective=objective,
        meta=meta,
    )


def plan_two_tier(
    inputs: TwoTierInputs,
    *,
    bandwidth_bps: float,
    rtt_s: float,
    weight: float = 0.5,
    objective: str = "latency",
    strategy: str = "rent",
    prices: Prices | None = None,
    edge_scale: float = 1.0,
    tradeoff: str = "luger",
) -> Plan:
    """Re-plan a two-tier split for the current conditions. O(n log n).

    ``strategy`` "own" bills the edge nothing (Luger eq. 4.4); ``prices`` default to Luger
    Table 4.1 (:class:`~edgesplit.system.prices.Prices`). ``edge_scale`` multiplies the edge seconds (e.g. reference clock / clock).
    """
    if strategy not in ("own", "rent"):
        raise InputError(f"--strategy must be own or rent, not {strategy!r}")
    c = candidate_table(
        inputs,
        bandwidth_bps=bandwidth_bps,
        rtt_s=rtt_s,
        edge_price_per_s=(prices or Prices()).per_second("edge", strategy),
        cloud_price_per_s=(prices or Prices()).per_second("cloud", strategy),
        edge_scale=edge_scale,
    )
    cut = choose(c, objective, weight, tradeoff)
    meta = {"weight": weight, "strategy": strategy, "tradeoff": tradeoff}
    return plan_from_table(c, cut, algorithm="two-tier", objective=objective, meta=meta)


@dataclass(frozen=True)
class TwoTierResult:
    """Every choice over one candidate table (what ``edgesplit plan`` prints).

    ``plans`` holds a re-checkable :class:`Plan` for each choice (latency, cost, energy,
    luger_cl, normalised_weighted); ``chosen`` is the one the problem's objective picks.
    """

    candidates: Candidates
    ol: int
    oc: int
    oe: int
    cl: int
    weighted: int
    pareto: tuple[int, ...]
    chosen: Plan
    weight: float
    plans: dict[str, Plan]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.candidates.model,
            "devices": list(self.candidates.devices),
            "weight": self.weight,
            "candidates": self.candidates.rows(),
            "optimal": {
                "latency": self.ol,
                "cost": self.oc,
                "energy": self.oe,
                "luger_cl": self.cl,
                "normalised_weighted": self.weighted,
            },
            "pareto": list(self.pareto),
            "chosen": self.chosen.to_dict(),
            "plans": {k: p.to_dict() for k, p in self.plans.items()},
        }


def analyse(
    problem: Problem, tradeoff: str = "luger", table: Candidates | None = None
) -> TwoTierResult:
    """The candidate table of a two-device problem and every choice over it.

    ``table`` is the problem's table under a wire codec (:mod:`edgesplit.plan.codec_choice`).
    """
    c = problem_table(problem) if table is None else table
    cut = choose(c, problem.objective, problem.weight, tradeoff)
    meta = {"weight": problem.weight, "tradeoff": tradeoff, **problem.meta}
    chosen = plan_from_table(c, cut, algorithm="two-tier", objective=problem.objective, meta=meta)
    picks = {
        "latency": optimal_latency(c),
        "cost": optimal_cost(c),
        "energy": optimal_energy(c),
        "luger_cl": luger_choice(c, problem.weight),
        "normalised_weighted": weighted_sum(c, problem.weight),
    }
    plans = {
        name: plan_from_table(
            c, k, algorithm="two-tier", objective=name if name in OBJECTIVES else "weighted",
            meta={**meta, "choice": name},
        )
        for name, k in picks.items()
    }  # fmt: skip
    return TwoTierResult(
        candidates=c,
        ol=picks["latency"],
        oc=picks["cost"],
        oe=picks["energy"],
        cl=picks["luger_cl"],
        weighted=picks["normalised_weighted"],
        pareto=tuple(pareto_cuts(c)),
        chosen=chosen,
        weight=problem.weight,
        plans=plans,
    )


def solve(problem: Problem, *, tradeoff: str = "luger") -> Plan:
    """Registry entry ``two-tier``: the plan ``problem.objective`` picks."""
    return analyse(problem, tradeoff).chosen
