"""Named policies of Tuli 2021 Table 1 and the training runs they need.

| name       | split decision          | placement            |
|------------|-------------------------|----------------------|
| splitplace | MAB (eq. 2-7, UCB test) | DASO (eq. 9-10)      |
| m+g        | MAB                     | GOBI                 |
| r+d        | random L/S              | DASO                 |
| l+g        | always layer            | GOBI                 |
| s+g        | always semantic         | GOBI                 |
| gillis     | Gillis: per task m-part layer or parallel, by estimate | earliest finish time |
| mc         | layer or compressed     | best-fit             |
| random     | random L/S              | random               |
| bestfit    | random L/S              | best-fit             |

Training is separate from evaluation, as in the paper: :func:`train_surrogate` collects
traces with random decisions and placements (:func:`collect_traces`) and fits the
surrogate (eq. 9); :func:`train_mab` then runs the epsilon-greedy bandit on its own seed
under DASO placement (a copy of the fitted DASO surrogate, fine-tuned as it goes: the
placement the bandit is evaluated with), and returns its state with the final layer
response estimates R^a (eq. 2) under ``"estimates"``, which the test run starts from
("Using pre-trained MAB models", §3.2). All seeded. Costs: a training run is one
simulation.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from edgesplit.cluster.apps import AppProfile
from edgesplit.cluster.config import ClusterConfig
from edgesplit.cluster.daso import Encoding, Surrogate, SurrogatePlacer, fit_surrogate
from edgesplit.cluster.heuristics import (
    BestFitPlacer,
    EFTPlacer,
    FixedSplitter,
    GillisSplitter,
    MCSplitter,
    RandomPlacer,
    RandomSplitter,
)
from edgesplit.cluster.interface import ClusterView, PendingContainer, Placer, Policy, Splitter
from edgesplit.cluster.mab import MABSplitter
from edgesplit.cluster.metrics import IntervalMetrics
from edgesplit.cluster.simulator import Simulator
from edgesplit.errors import InputError

POLICIES: dict[str, tuple[str, str]] = {
    "splitplace": ("mab", "daso"),
    "m+g": ("mab", "gobi"),
    "r+d": ("random", "daso"),
    "l+g": ("layer", "gobi"),
    "s+g": ("semantic", "gobi"),
    "gillis": ("gillis", "eft"),
    "mc": ("mc", "bestfit"),
    "random": ("random", "random"),
    "bestfit": ("random", "bestfit"),
}
TABLE1 = ("mc", "gillis", "s+g", "l+g", "r+d", "m+g", "splitplace")


@dataclass
class LearnedState:
    """Learned state shared by the learning policies of one experiment."""

    mab_state: dict[str, Any] | None = None
    surrogates: dict[str, Surrogate] = field(default_factory=dict)
    mab_history: list[dict[str, object]] = field(default_factory=list)


class _Recorder:
    """Random placement that records (state, one-hot placement) and the interval's O^P."""

    name = "recorder"

    def __init__(self, encoding: Encoding, seed: int) -> None:
        self.encoding = encoding
        self.inner = RandomPlacer(seed)
        self.pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.samples: list[tuple[torch.Tensor, torch.Tensor, float]] = []

    def place(self, view: ClusterView, pending: Sequence[PendingContainer]) -> list[int | None]:
        out = self.inner.place(view, pending)
        enc = self.encoding
        self.pending = []
        for lo in range(0, len(pending), enc.slots):
            chunk = pending[lo : lo + enc.slots]
            p = torch.zeros(enc.slots, enc.hosts)
            for i, h in enumerate(out[lo : lo + enc.slots]):
                if h is not None:
                    p[i, h] = 1.0
            self.pending.append((enc.state(view, chunk), p))
        return out

    def observe(self, metrics: IntervalMetrics) -> None:
        if metrics.reward is not None:
            self.samples += [(s, p, float(metrics.reward)) for s, p in self.pending]
        self.pending = []


def collect_traces(
    config: ClusterConfig,
    encoding: Encoding,
    profiles: dict[str, AppProfile],
    seeds: Sequence[int],
) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    """Simulator traces Lambda of eq. 9 from random split decisions and placements."""
    samples = []
    for s in seeds:
        rec = _Recorder(encoding, seed=s)
        cfg = config.model_copy(update={"seed": s})
        Simulator(cfg, Policy("trace", RandomSplitter(s), rec), profiles).run()
        samples += rec.samples
    return samples


def train_surrogate(
    config: ClusterConfig,
    profiles: dict[str, AppProfile],
    decision_aware: bool,
    seeds: Sequence[int] = (1001, 1002),
    slots: int = 32,
    epochs: int = 300,
) -> tuple[Surrogate, list[float]]:
    """Fit f (eq. 9) on traces from ``seeds`` (kept apart from evaluation seeds)."""
    enc = Encoding(len(config.hosts), slots, decision_aware)
    samples = collect_traces(config, enc, profiles, seeds)
    if not samples:
        raise InputError("surrogate training produced no traces; raise --intervals")
    model = Surrogate(enc)
    states = torch.stack([s for s, _, _ in samples])
    places = torch.stack([p for _, p, _ in samples])
    targets = torch.tensor([y for _, _, y in samples], dtype=torch.float32)
    losses = fit_surrogate(model, states, places, targets, epochs=epochs)
    return model, losses


def train_mab(
    config: ClusterConfig,
    profiles: dict[str, AppProfile],
    placer: Placer | None = None,
    seed: int = 2001,
) -> MABSplitter:
    """epsilon-greedy training run (eq. 6) on its own seed under ``placer`` (DASO in
    :func:`prepare`; best-fit if None); R^a at its end goes to ``mab.estimates``."""
    mab = MABSplitter(mode="train", seed=seed)
    cfg = config.model_copy(update={"seed": seed})
    sim = Simulator(cfg, Policy("mab-train", mab, placer or BestFitPlacer()), profiles)
    sim.run()
    mab.estimates = dict(sim.estimates)
    return mab


def make_policy(
    name: str,
    seed: int = 0,
    trained: LearnedState | None = None,
    profiles: dict[str, AppProfile] | None = None,
) -> Policy:
    """Build a named policy; learning parts come from ``trained`` (see :func:`prepare`);
    Gillis needs the apps' ``profiles``."""
    if name not in POLICIES:
        raise InputError(f"unknown policy {name!r}; choose one of {', '.join(POLICIES)}")
    split_name, place_name = POLICIES[name]
    trained = trained or LearnedState()
    splitter: Splitter
    if split_name == "mab":
        if trained.mab_state is None:
            raise InputError(f"policy {name!r} needs a trained MAB state")
        splitter = MABSplitter.from_state(trained.mab_state, mode="test", seed=seed)
    elif split_name == "random":
        splitter = RandomSplitter(seed)
    elif split_name == "mc":
        splitter = MCSplitter()
    elif split_name == "gillis":
        if profiles is None:
            raise InputError(f"policy {name!r} needs the applications' profiles")
        splitter = GillisSplitter(profiles)
    else:
        splitter = FixedSplitter(split_name)
    placer: Placer
    if place_name in ("daso", "gobi"):
        if place_name not in trained.surrogates:
            raise InputError(f"policy {name!r} needs a trained {place_name} surrogate")
        placer = SurrogatePlacer(copy.deepcopy(trained.surrogates[place_name]))
    elif place_name == "eft":
        placer = EFTPlacer()
    elif place_name == "bestfit":
        placer = BestFitPlacer()
    else:
        placer = RandomPlacer(seed)
    return Policy(name, splitter, placer)


def prepare(
    config: ClusterConfig,
    profiles: dict[str, AppProfile],
    names: Sequence[str],
    mab_state: dict[str, Any] | None = None,
) -> LearnedState:
    """Train what ``names`` need: the DASO/GOBI surrogates, then the MAB (unless given)
    under DASO."""
    for name in names:
        if name not in POLICIES:
            raise InputError(f"unknown policy {name!r}; choose one of {', '.join(POLICIES)}")
    parts = {p for n in names for p in POLICIES[n]}
    trained = LearnedState(mab_state=mab_state)
    needs_mab = "mab" in parts and mab_state is None
    for kind in ("daso", "gobi"):
        if kind in parts or (kind == "daso" and needs_mab):
            torch.manual_seed(int(np.uint32(config.seed)))
            trained.surrogates[kind], _ = train_surrogate(config, profiles, kind == "daso")
    if needs_mab:
        placer = SurrogatePlacer(copy.deepcopy(trained.surrogates["daso"]))
        mab = train_mab(config, profiles, placer)
        trained.mab_state = mab.state()
        trained.mab_history = mab.history
    return trained


def run_policy(
    config: ClusterConfig,
    name: str,
    profiles: dict[str, AppProfile],
    trained: LearnedState,
    seed: int | None = None,
    on_interval: Callable[[IntervalMetrics], None] | None = None,
) -> tuple[list[IntervalMetrics], Policy]:
    """Evaluate one named policy on ``config`` (seed overrides ``config.seed``)."""
    cfg = config if seed is None else config.model_copy(update={"seed": seed})
    policy = make_policy(name, cfg.seed, trained, profiles)
    carried = trained.mab_state.get("estimates") if trained.mab_state else None
    estimates = carried if POLICIES[name][0] == "mab" else None
    sim = Simulator(cfg, policy, profiles, on_interval=on_interval, estimates=estimates)
    return sim.run(), policy
