"""The rescheduler's planner: this host's profile + the planning issue's two-tier planner.

Per-node seconds come from the one profiler, :func:`edgesplit.predict.profile.profile_graph`
(wall clock, at the torch thread count the agent executes with; see :func:`edgesplit.runtime.loop.build_run`)
on this host at its real clock ``ref_ghz``. For an observation (bandwidth, RTT, clock) the plan is
:func:`edgesplit.plan.planner.plan_two_tier` (Luger §4: eq. 4.1 edge, eq. 4.3
communication, eq. 4.4 cost, Algorithm 1 for ``objective="weighted"``) with
``edge_scale = ref_ghz / clock``: the emulated clock stretches edge time by exactly that
factor (:mod:`edgesplit.runtime.clock`), which is Luger's eq. 4.1 with exponent −1.
The cloud tier runs on this host too, so its seconds are the same profile times
``cloud_scale`` (1 by default; < 1 models a faster cloud). Measurements feed back through
the observation's ``edge_factor``/``cloud_factor`` (measured over predicted compute time),
which multiply the edge and cloud seconds.
One re-plan costs O(n log n) (the planner's table and sort).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from edgesplit.errors import InputError
from edgesplit.graph import Graph
from edgesplit.plan.planner import plan_two_tier
from edgesplit.plan.two_tier import Candidates, TwoTierInputs, candidate_table
from edgesplit.plan.types import Plan
from edgesplit.runtime.rescheduler import Observation
from edgesplit.system.prices import Prices


@dataclass(frozen=True)
class PlannerSettings:
    """What to optimise (Luger: w = 0.5, own or rent, Algorithm 1)."""

    objective: str = "weighted"
    weight: float = 0.5
    strategy: str = "rent"
    tradeoff: str = "luger"
    ref_ghz: float = 2.6

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= 1:
            raise InputError(f"--weight must lie in [0, 1], not {self.weight}")
        if self.strategy not in ("own", "rent"):
            raise InputError(f"--strategy must be own or rent, not {self.strategy!r}")


class TwoTierPlanner:
    """``Observation -> Plan`` for one model; cheap enough to call on every trigger."""

    def __init__(
        self,
        inputs: TwoTierInputs,
        settings: PlannerSettings | None = None,
    ) -> None:
        self.inputs = inputs
        self.settings = settings or PlannerSettings()

    @classmethod
    def from_seconds(
        cls,
        graph: Graph,
        seconds: np.ndarray,
        settings: PlannerSettings | None = None,
        cloud_scale: float = 1.0,
    ) -> TwoTierPlanner:
        inputs = TwoTierInputs.from_graph(
            graph, [float(v) for v in seconds], [float(v) * cloud_scale for v in seconds]
        )
        return cls(inputs, settings)

    def edge_scale(self, clock_ghz: float) -> float:
        return max(1.0, self.settings.ref_ghz / clock_ghz)

    def table(self, obs: Observation) -> Candidates:
        """The candidate table the planner chooses from for ``obs`` (plots, fixed splits)."""
        s = self.settings
        return candidate_table(
            self._inputs(obs),
            bandwidth_bps=obs.bandwidth_mbit * 1e6,
            rtt_s=obs.rtt_s,
            edge_price_per_s=Prices().per_second("edge", s.strategy),
            cloud_price_per_s=Prices().per_second("cloud", s.strategy),
            edge_scale=self.edge_scale(obs.clock_ghz) * obs.edge_factor,
        )

    def _inputs(self, obs: Observation) -> TwoTierInputs:
        if obs.cloud_factor == 1.0:
            return self.inputs
        return replace(self.inputs, cloud_seconds=self.inputs.cloud_seconds * obs.cloud_factor)

    def __call__(self, obs: Observation) -> Plan:
        s = self.settings
        return plan_two_tier(
            self._inputs(obs),
            bandwidth_bps=obs.bandwidth_mbit * 1e6,
            rtt_s=obs.rtt_s,
            weight=s.weight,
            objective=s.objective,
            strategy=s.strategy,
            edge_scale=self.edge_scale(obs.clock_ghz) * obs.edge_factor,
            tradeoff=s.tradeoff,
        )
