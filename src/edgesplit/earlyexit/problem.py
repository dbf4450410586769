"""The Pre-DNNOff problem and its independent evaluator (Zuo 2024, §4.3, eq. 4.4-4.9).

Tiers are Zuo's ``Stype``: 0 mobile, 1 edge, 2 cloud. The wireless link joins mobile and
edge (rate ``W log2(1 + SNR)``, eq. 4.2, or given); a wired link joins edge and cloud, so
mobile-cloud traffic pays both (eq. 4.5). An *assignment* gives one tier per layer, in
the GA's gene order: the main branch first, then side branches 1..P-1 (Fig. 4.2). A layer
of the trunk is one variable shared by every exit whose chain contains it (a layer runs in
one place), which couples the exits.

Latency of exit ``k`` (eq. 4.4-4.6) over its chain ``l_k^0 .. l_k^{N_k-1}``::

    sum_i T_{a(l_i)}(l_i) + sum_{i=0}^{N_k} comm(a(l_{i-1}), a(l_i), Output(l_{i-1}))
        + loading + parsing

with a virtual layer ``l_{-1}`` on the mobile device whose output is the raw input (the
input is born there; eq. 4.5 leaves this term implicit) and ``l_{N_k}`` pinned to the
mobile device (``Sel_0^{N_k} = 1``: the result returns to it). ``comm(a, b, x) =
x (|[a=0]-[b=0]| / v_wireless + |[a=2]-[b=2]| / v_wired)``. Loading (Table 4.2): each tier
that runs a layer of the chain pays its loading regression on the bytes of the parameters
it holds (intercept once per tier, slope per layer); parsing: the mobile device's parsing
regression on the chain's parameter bytes.

Expected latency (eq. 4.8): ``sum_k Latency(k) * P(Acc(k-1) < ac <= Acc(k))`` with
``Acc(0) = 0``. The requirement is an accuracy, so its distribution is conditioned on
``[0, 1]``; requirements above ``Acc(P)`` cannot be met by any exit and are served by the
deepest exit (the paper's ``Acc(P+1) = 1`` term, whose latency it leaves undefined).
Evaluating one assignment is O(sum_k N_k).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgesplit.errors import InputError
from edgesplit.plan.types import Plan

TIER_NAMES = ("mobile", "edge", "cloud")
MOBILE, EDGE, CLOUD = 0, 1, 2


class Requirement:
    """An accuracy-requirement distribution: a scipy.stats one or an empirical sample."""

    def __init__(self, dist: Any = None, samples: Sequence[float] | None = None) -> None:
        if (dist is None) == (samples is None):
            raise InputError("requirement: give exactly one of a distribution or samples")
        self.dist = dist
        self.samples = None if samples is None else np.sort(np.asarray(samples, dtype=float))
        if self.samples is not None and self.samples.size == 0:
            raise InputError("requirement.samples is empty; give past accuracy requirements")

    @classmethod
    def normal(cls, mean: float = 0.625, std: float = 0.053) -> Requirement:
        """The paper's default N(0.625, 0.053) (§5.2)."""
        from scipy import stats

        return cls(stats.norm(loc=mean, scale=std))

    def cdf(self, x: float) -> float:
        """P(ac <= x)."""
        if self.samples is not None:
            return float(np.searchsorted(self.samples, x, side="right")) / self.samples.size
        return float(self.dist.cdf(x))

    def below(self, x: float) -> float:
        """P(ac < x)."""
        if self.samples is not None:
            return float(np.searchsorted(self.samples, x, side="left")) / self.samples.size
        return float(self.dist.cdf(x)) - float(getattr(self.dist, "pmf", lambda _: 0.0)(x))

    def mean(self) -> float:
        if self.samples is not None:
            return float(self.samples.mean())
        return float(self.dist.mean())

    def describe(self) -> str:
        if self.samples is not None:
            return f"empirical ({self.samples.size} samples)"
        name = getattr(getattr(self.dist, "dist", None), "name", type(self.dist).__name__)
        return f"{name}{tuple(getattr(self.dist, 'args', ()))}{getattr(self.dist, 'kwds', {})}"


def check_accuracies(accuracies: Sequence[float], n_exits: int) -> tuple[float, ...]:
    """Validate per-exit accuracies: one per exit, in [0, 1], not decreasing with depth."""
    acc = tuple(float(a) for a in accuracies)
    if len(acc) != n_exits:
        raise InputError(f"accuracies: give one per exit ({n_exits}), not {len(acc)}")
    for k, a in enumerate(acc, start=1):
        if not 0.0 <= a <= 1.0:
            raise InputError(f"accuracies[{k}] = {a} is outside [0, 1]; give fractions")
    for k in range(1, n_exits):
        if acc[k] < acc[k - 1]:
            raise InputError(
                f"accuracies must not decrease with depth: exit {k + 1} ({acc[k]:.4f}) < "
                f"exit {k} ({acc[k - 1]:.4f}); retrain or give measured per-exit accuracies"
            )
    return acc


def exit_probabilities(accuracies: Sequence[float], requirement: Requirement) -> tuple[float, ...]:
    """``P(Acc(k-1) < ac <= Acc(k))`` per exit, conditioned on ac in [0, 1] (eq. 4.8)."""
    mass = requirement.cdf(1.0) - requirement.below(0.0)
    if not mass > 1e-12:
        raise InputError(
            f"requirement distribution {requirement.describe()} puts no probability in [0, 1]; "
            "accuracy requirements are fractions, so move its support into [0, 1]"
        )
    probs = []
    lo = requirement.below(0.0)
    for a in accuracies:
        hi = requirement.cdf(a)
        probs.append(max(0.0, hi - lo) / mass)
        lo = hi
    probs[-1] += max(0.0, requirement.cdf(1.0) - lo) / mass
    return tuple(probs)


@dataclass(frozen=True)
class Layer:
    """One layer: per-tier seconds (execution plus its loading slope), bytes it outputs."""

    name: str
    node_index: int
    kind: str
    seconds: tuple[float, float, float]
    output_bytes: int
    param_bytes: int


@dataclass(frozen=True)
class EarlyExitProblem:
    """Pre-DNNOff instance. ``trunk[k]``/``branches[k]`` list layer ids (gene positions).

    ``loading[t]`` is tier t's loading intercept (s), paid once per chain that uses t;
    ``parsing[k]`` the mobile parsing time for exit k's result (s).
    """

    name: str
    layers: tuple[Layer, ...]
    trunk: tuple[tuple[int, ...], ...]
    branches: tuple[tuple[int, ...], ...]
    input_bytes: int
    wireless_bps: float
    wired_bps: float
    accuracies: tuple[float, ...]
    probabilities: tuple[float, ...]
    loading: tuple[float, float, float] = (0.0, 0.0, 0.0)
    parsing: tuple[float, ...] = ()
    tiers: tuple[int, ...] = (MOBILE, EDGE, CLOUD)
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if len(self.branches) != len(self.trunk) - 1:
            raise InputError("problem: need one side branch per trunk segment except the last")
        for kind, groups in (("trunk segment", self.trunk), ("side branch", self.branches)):
            for k, g in enumerate(groups, start=1):
                if not g:
                    raise InputError(f"{kind} {k} is empty; every branch needs a layer")
        if len(self.probabilities) != self.n_exits or len(self.accuracies) != self.n_exits:
            raise InputError(f"problem: give accuracies and probabilities for {self.n_exits} exits")
        if self.wireless_bps <= 0 or self.wired_bps <= 0:
            raise InputError("link rates must be positive (wireless and wired, bit/s)")
        if not self.tiers or not set(self.tiers) <= {MOBILE, EDGE, CLOUD}:
            raise InputError("tiers must be a non-empty subset of mobile, edge, cloud")
        if not self.parsing:
            object.__setattr__(self, "parsing", (0.0,) * self.n_exits)

    @property
    def n_exits(self) -> int:
        return len(self.trunk)

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def chain(self, k: int) -> tuple[int, ...]:
        """Layer ids of exit ``k``'s chain (1-based), input to exit."""
        ids = [i for seg in self.trunk[:k] for i in seg]
        if k < self.n_exits:
            ids += list(self.branches[k - 1])
        return tuple(ids)

    def comm_seconds(self, a: int, b: int, nbytes: float) -> float:
        """Eq. 4.5's term for one hop of ``nbytes`` from tier ``a`` to tier ``b``."""
        wl = abs((a == MOBILE) - (b == MOBILE)) / self.wireless_bps
        wd = abs((a == CLOUD) - (b == CLOUD)) / self.wired_bps
        return nbytes * 8.0 * (wl + wd)

    def check_assignment(self, assignment: Sequence[int]) -> tuple[int, ...]:
        a = tuple(int(t) for t in assignment)
        if len(a) != self.n_layers:
            raise InputError(f"assignment has {len(a)} tiers; the problem has {self.n_layers}")
        for i, t in enumerate(a):
            if t not in self.tiers:
                raise InputError(f"layer {self.layers[i].name!r} is on tier {t}, not allowed")
        return a

    def latency(self, k: int, assignment: Sequence[int]) -> dict[str, float]:
        """Eq. 4.4-4.6 breakdown (seconds) of exit ``k`` under ``assignment``."""
        a = self.check_assignment(assignment)
        execution = transmission = 0.0
        prev_tier, prev_bytes = MOBILE, float(self.input_bytes)
        used: set[int] = set()
        for i in self.chain(k):
            layer, tier = self.layers[i], a[i]
            execution += layer.seconds[tier]
            transmission += self.comm_seconds(prev_tier, tier, prev_bytes)
            prev_tier, prev_bytes = tier, float(layer.output_bytes)
            used.add(tier)
        transmission += self.comm_seconds(prev_tier, MOBILE, prev_bytes)
        fixed = sum(self.loading[t] for t in used) + self.parsing[k - 1]
        return {
            "execution_s": execution,
            "transmission_s": transmission,
            "loading_parsing_s": fixed,
            "total_s": execution + transmission + fixed,
        }

    def expected_latency(self, assignment: Sequence[int]) -> float:
        """Eq. 4.8: the objective every solver minimises."""
        return sum(
            p * self.latency(k, assignment)["total_s"]
            for k, p in enumerate(self.probabilities, start=1)
            if p > 0
        )

    def graph_assignment(self, assignment: Sequence[int], n_nodes: int) -> tuple[int, ...]:
        """Tiers per graph node (for :func:`edgesplit.graph.partition.partition`)."""
        a = self.check_assignment(assignment)
        out = [0] * n_nodes
        for layer, t in zip(self.layers, a):
            out[layer.node_index] = t
        return tuple(out)


def to_plan(
    problem: EarlyExitProblem,
    assignment: Sequence[int],
    algorithm: str,
    meta: dict[str, Any] | None = None,
) -> Plan:
    """A :class:`~edgesplit.plan.types.Plan` over the graph's nodes with eq. 4.6/4.8 figures."""
    a = problem.check_assignment(assignment)
    predicted = {"expected_latency_s": problem.expected_latency(a)}
    for k in range(1, problem.n_exits + 1):
        predicted[f"latency_exit_{k}_s"] = problem.latency(k, a)["total_s"]
    info: dict[str, Any] = {
        "genes": list(a),
        "probabilities": list(problem.probabilities),
        "accuracies": list(problem.accuracies),
    }
    info.update(meta or {})
    return Plan(
        model=problem.name,
        algorithm=algorithm,
        devices=TIER_NAMES,
        assignment=problem.graph_assignment(a, problem.n_layers),
        predicted=predicted,
        objective="expected_latency",
        meta=info,
    )
