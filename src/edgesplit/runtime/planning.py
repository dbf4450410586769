"""The rescheduler's planners: callables ``Observation -> Plan`` a front end hands in.

:class:`TwoTierPlanner` is Luger's (Algorithm 1 over this host's profile, below);
:class:`RegistryPlanner` re-solves a multi-device :class:`~edgesplit.plan.problem.Problem`
with any solver of :mod:`edgesplit.plan.registry` (exhaustive, mincut, ilp, relax,
heuristic, two-tier) after putting the observation into it: each link's measured
bandwidth, each device's measured speed factor, the device's emulated clock.


Per-node seconds come from the one profiler, :func:`edgesplit.predict.profile.profile_graph`
(wall clock, at the torch thread count the agent executes with; see :func:`edgesplit.runtime.loop.build_run`)
on this host at its real clock ``ref_ghz``. For an observation (bandwidth, RTT, clock) the plan is
:func:`edgesplit.plan.planner.plan_two_tier` (Luger §4: eq. 4.1 edge, eq. 4.3
communication, eq. 4.4 cost, Algorithm 1 for ``objective="weighted"``) with
``edge_scale = ref_ghz / clock``: the emulated clock stretches edge time by exactly that
factor (:mod:`edgesplit.runtime.clock`), which is Luger's eq. 4.1 with exponent −1.
The cloud tier runs on this host too, so its seconds are the same profile times
``cloud_scale`` (1 by default; < 1 models a faster cloud). Measurements feed back through
the observation's per-device ``factors`` (measured over predicted compute time), which
multiply the edge and cloud seconds.
With an ``edge_model`` (a fitted :class:`~edgesplit.predict.clock.LugerEdgeModel`, e.g.
``--edge-model FILE``) the edge seconds are instead Luger's eq. 4.1–4.2 at the observed
clock (uniform per-layer slope) and no clock ratio is applied.
One re-plan costs O(n log n) (the planner's table and sort).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from edgesplit.errors import InputError
from edgesplit.graph import Graph
from edgesplit.plan.planner import plan_two_tier
from edgesplit.plan.problem import Problem
from edgesplit.plan.two_tier import Candidates, TwoTierInputs, candidate_table
from edgesplit.plan.types import Plan
from edgesplit.runtime.rescheduler import Observation
from edgesplit.system.link import Link
from edgesplit.system.prices import Prices

if TYPE_CHECKING:  # sklearn is slow to import; the planner only calls the model
    from edgesplit.predict.clock import LugerEdgeModel


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
        edge_model: LugerEdgeModel | None = None,
    ) -> None:
        if edge_model is not None and edge_model.n_layers != inputs.n:
            raise InputError(
                f"--edge-model was fitted on {edge_model.n_layers} layers; "
                f"{inputs.model!r} has {inputs.n}: fit it on this model"
            )
        self.inputs = inputs
        self.settings = settings or PlannerSettings()
        self.edge_model = edge_model

    @classmethod
    def from_seconds(
        cls,
        graph: Graph,
        seconds: np.ndarray,
        settings: PlannerSettings | None = None,
        cloud_scale: float = 1.0,
        edge_model: LugerEdgeModel | None = None,
    ) -> TwoTierPlanner:
        inputs = TwoTierInputs.from_graph(
            graph, [float(v) for v in seconds], [float(v) * cloud_scale for v in seconds]
        )
        return cls(inputs, settings, edge_model)

    def edge_scale(self, clock_ghz: float) -> float:
        """Edge-seconds multiplier at ``clock_ghz``: the clock ratio, or 1 with an edge model."""
        if self.edge_model is not None:
            return 1.0
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
            edge_scale=self.edge_scale(obs.clock_ghz) * obs.factor(self.devices[0]),
        )

    @property
    def devices(self) -> tuple[str, str]:
        edge, cloud = self.inputs.devices
        return edge, cloud

    def inputs_at(self, clock_ghz: float) -> TwoTierInputs:
        """The inputs with the edge model's eq. 4.1 seconds at ``clock_ghz`` (if any)."""
        if self.edge_model is None:
            return self.inputs
        return replace(self.inputs, edge_seconds=self.edge_model.node_seconds(clock_ghz * 1e9))

    def _inputs(self, obs: Observation) -> TwoTierInputs:
        inputs = self.inputs_at(obs.clock_ghz)
        cloud = obs.factor(self.devices[1])
        if cloud == 1.0:
            return inputs
        return replace(inputs, cloud_seconds=inputs.cloud_seconds * cloud)

    def __call__(self, obs: Observation) -> Plan:
        s = self.settings
        return plan_two_tier(
            self._inputs(obs),
            bandwidth_bps=obs.bandwidth_mbit * 1e6,
            rtt_s=obs.rtt_s,
            weight=s.weight,
            objective=s.objective,
            strategy=s.strategy,
            edge_scale=self.edge_scale(obs.clock_ghz) * obs.factor(self.devices[0]),
            tradeoff=s.tradeoff,
        )


class RegistryPlanner:
    """``Observation -> Plan`` by a registry solver over ``problem`` (any number of devices).

    Per observation: every link in ``obs.links`` (``a|b`` -> Mbit/s) gets that bandwidth
    (its RTT and allowed codecs stay the problem's); every device's seconds row is multiplied by its
    measured factor; with ``ref_ghz`` the source device's row is stretched by
    ``ref_ghz / obs.clock_ghz`` (eq. 4.1 with exponent −1, as :class:`TwoTierPlanner`).
    Then :func:`edgesplit.plan.registry.solve` runs ``algorithm`` with ``opts``, or
    ``solver(problem)`` when the front end gives one: the codec hook, e.g. a joint
    search over placements and per-link codecs whose plan carries ``meta["codecs"]``
    (the engine's codec per link, switched in with the plan). Cost per call: the solver's.
    """

    def __init__(
        self,
        problem: Problem,
        algorithm: str = "exhaustive",
        *,
        ref_ghz: float | None = None,
        solver: Callable[[Problem], Plan] | None = None,
        **opts: Any,
    ) -> None:
        from edgesplit.plan.registry import get_solver

        get_solver(algorithm)  # an unknown name fails now, not at the first re-plan
        self.problem, self.algorithm, self.ref_ghz = problem, algorithm, ref_ghz
        self.solver, self.opts = solver, opts

    def problem_for(self, obs: Observation) -> Problem:
        p = self.problem
        for key, mbit in sorted(obs.links.items()):
            a, _, b = key.partition("|")
            if a not in p.devices or b not in p.devices:
                continue
            i, j = p.device_index(a), p.device_index(b)
            old = p.link(i, j)
            rtt, codecs = (old.rtt, old.codecs) if old else (obs.rtt_s, ("none",))
            links = {**p.links, frozenset((i, j)): Link.of(mbit * 1e6, rtt, codecs)}
            p = replace(p, links=links, tensor_seconds=None)
        scale = np.array([obs.factor(d) for d in p.devices], dtype=float)
        if self.ref_ghz is not None:
            scale[p.source] *= max(1.0, self.ref_ghz / obs.clock_ghz)
        return p.with_seconds(p.seconds * scale[:, None])

    def __call__(self, obs: Observation) -> Plan:
        from edgesplit.plan.registry import solve

        problem = self.problem_for(obs)
        if self.solver is not None:
            return self.solver(problem)
        return solve(problem, self.algorithm, **self.opts)
