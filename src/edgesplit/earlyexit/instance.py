"""Early-exit instance files and the builder from a BranchyNet to an :class:`EarlyExitProblem`.

An instance (YAML or JSON, ``edgesplit schema earlyexit``) names the BranchyNet, the exit
accuracies (given, or ``digits`` to train on the offline digits set and measure them), the
accuracy-requirement distribution, the tiers allowed, the links and the predictors
(``table4.2``: the paper's built-in regressions; ``fitted``: per-type regressions fitted to
a profile of this machine, measured now or read from ``profile``). The cloud is the edge
predictor divided by ``cloud_speed_factor``. Building is O(trace + layers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from edgesplit.earlyexit.latency import (
    LayerLatencyModel,
    Table42Model,
    fitted_from_profile,
)
from edgesplit.earlyexit.problem import (
    TIER_NAMES,
    EarlyExitProblem,
    Layer,
    Requirement,
    check_accuracies,
    exit_probabilities,
)
from edgesplit.errors import InputError
from edgesplit.graph import Graph, trace
from edgesplit.io import read_document
from edgesplit.models.branchy import BranchyNet, build_branchy
from edgesplit.system.link import Link

Tier = Literal["mobile", "edge", "cloud"]
ALL_TIERS: tuple[Tier, ...] = ("mobile", "edge", "cloud")


_SHORT_FORM = ("rate_mbps", "width_hz", "snr_db")


def _short_link(value: Any) -> Any:
    """Early-exit files write a link as ``{rate_mbps}`` or as Shannon ``{width_hz, snr_db}``
    (Pre-DNNOff eq. 4.2); both become a :class:`~edgesplit.system.link.Link`, and a Link's
    own form (``bandwidth`` or ``shannon``) is accepted as it is."""
    if not isinstance(value, dict) or not set(_SHORT_FORM) & value.keys():
        return value
    rate, width, snr_db = (value.get(k) for k in _SHORT_FORM)
    if (rate is None) == (width is None or snr_db is None):
        raise ValueError("give rate_mbps, or width_hz and snr_db (Shannon), not both")
    rest = {k: v for k, v in value.items() if k not in _SHORT_FORM}
    if rate is None:
        return {**rest, "shannon": {"width": width, "snr_db": snr_db}}
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
        raise ValueError(f"rate_mbps {rate!r} must be a positive number of Mbit/s")
    return {**rest, "bandwidth": rate * 1e6}


#: A Pre-DNNOff link: rate only, since eq. 4.5 has no round-trip term.
RateLink = Annotated[Link, BeforeValidator(_short_link)]


class RequirementSpec(BaseModel):
    """A scipy.stats distribution by name and keyword parameters, or past ``samples``."""

    model_config = ConfigDict(extra="forbid")
    distribution: str = "norm"
    params: dict[str, float] = Field(default_factory=lambda: {"loc": 0.625, "scale": 0.053})
    samples: list[float] | None = None

    def build(self) -> Requirement:
        if self.samples is not None:
            return Requirement(samples=self.samples)
        from scipy import stats

        family = getattr(stats, self.distribution, None)
        if family is None or not hasattr(family, "cdf"):
            raise InputError(
                f"requirement.distribution {self.distribution!r} is not a scipy.stats "
                "distribution; use e.g. norm, beta, uniform, truncnorm"
            )
        try:
            return Requirement(family(**self.params))
        except TypeError as err:
            raise InputError(f"requirement.params do not fit {self.distribution}: {err}") from None


class EarlyExitInstance(BaseModel):
    """One Pre-DNNOff problem: network, accuracies, requirement, tiers, links, predictors."""

    model_config = ConfigDict(extra="forbid")
    model: str = "zuo_alexnet"
    accuracies: list[float] | Literal["digits"] = Field(
        default_factory=lambda: [0.524, 0.589, 0.654, 0.719, 0.784],
        description="per-exit accuracy, or 'digits' to train on offline digits and measure",
    )
    train_epochs: int = Field(6, ge=1)
    requirement: RequirementSpec = Field(default_factory=RequirementSpec)
    tiers: list[Tier] = Field(default_factory=lambda: list(ALL_TIERS), min_length=1)
    wireless: RateLink = Field(
        default_factory=lambda: Link.of(74e6),
        description="mobile-edge link: {rate_mbps}, {width_hz, snr_db} (eq. 4.2) or a Link",
    )
    wired: RateLink = Field(
        default_factory=lambda: Link.of(1e9), description="edge-cloud link, as wireless"
    )
    cloud_speed_factor: float = Field(4.0, gt=0)
    mobile_speed_factor: float = Field(
        1.0, gt=0, description="mobile predictor divided by this (e.g. 0.1: 10x slower)"
    )
    predictors: Literal["table4.2", "fitted"] = "table4.2"
    profile: str | None = Field(None, description="profile JSON of this model (fitted only)")
    include_loading: bool = True
    weights: str | None = Field(None, description="BranchyNet state dict (.safetensors)")

    @model_validator(mode="after")
    def _rate_only(self) -> EarlyExitInstance:
        for name in ("wireless", "wired"):
            if getattr(self, name).rtt:
                raise ValueError(
                    f"{name}.rtt: Pre-DNNOff eq. 4.5 prices a link by rate alone; drop rtt"
                )
        return self

    @classmethod
    def load(cls, path: str | Path) -> EarlyExitInstance:
        """Read and validate a YAML or JSON instance file; an empty file is an error."""
        return read_document(path, cls, what="early-exit file", schema="earlyexit")


def classify(graph: Graph, n_exits: int) -> tuple[list[list[int]], list[list[int]]]:
    """Node indices per trunk segment and per side branch, from the fx module paths."""
    targets = {n.name: str(n.target) for n in graph.module.graph.nodes if n.op == "call_module"}
    trunk: list[list[int]] = [[] for _ in range(n_exits)]
    branches: list[list[int]] = [[] for _ in range(n_exits - 1)]
    for node in graph.nodes:
        path = next((targets[m] for m in node.members if m in targets), None)
        parts = path.split(".") if path else []
        if len(parts) < 2 or parts[0] not in ("trunk", "branches"):
            raise InputError(
                f"layer {node.name!r} is outside the BranchyNet's trunk/branches modules; "
                "put every layer inside a trunk segment or side branch"
            )
        (trunk if parts[0] == "trunk" else branches)[int(parts[1])].append(node.index)
    return trunk, branches


def tier_models(inst: EarlyExitInstance, graph: Graph, x: torch.Tensor) -> list[LayerLatencyModel]:
    """Predictors for mobile, edge and cloud per ``inst.predictors``."""
    if inst.predictors == "table4.2":
        return [
            Table42Model("mobile", inst.mobile_speed_factor),
            Table42Model("edge"),
            Table42Model("edge", inst.cloud_speed_factor),
        ]
    from edgesplit.predict.profile import load_profile, profile_graph

    prof = (
        load_profile(inst.profile, model=inst.model)
        if inst.profile
        # Each early-exit tier runs on one torch thread (`earlyexit run`, earlyexit/run.py).
        else profile_graph(graph, x, threads=1, repeats=10)
    )
    seconds = prof.node_seconds()
    # This one machine is the edge; mobile and cloud differ from it by the stated factors.
    return [
        fitted_from_profile(graph.nodes, seconds, speedup=inst.mobile_speed_factor),
        fitted_from_profile(graph.nodes, seconds),
        fitted_from_profile(graph.nodes, seconds, speedup=inst.cloud_speed_factor),
    ]


def build_problem(
    model: BranchyNet,
    x: torch.Tensor,
    accuracies: list[float],
    requirement: Requirement,
    inst: EarlyExitInstance,
    graph: Graph | None = None,
    name: str = "branchy",
) -> tuple[EarlyExitProblem, Graph]:
    """Trace ``model`` and turn it, the predictors and the links into a problem."""
    graph = graph or trace(model, x, name=name)
    acc = check_accuracies(accuracies, model.n_exits)
    probs = exit_probabilities(acc, requirement)
    trunk_nodes, branch_nodes = classify(graph, model.n_exits)
    for k, b in enumerate(branch_nodes, start=1):
        if not b:
            raise InputError(f"side branch {k} has no layers; give it at least one layer")
    models = tier_models(inst, graph, x)
    order = [i for seg in trunk_nodes for i in seg] + [i for b in branch_nodes for i in b]
    pos = {node_index: gene for gene, node_index in enumerate(order)}
    layers = []
    for node_index in order:
        node = graph.nodes[node_index]
        secs = []
        for m in models:
            load_slope = 0.0
            if inst.include_loading:
                load_slope = m.loading_seconds(node.param_bytes) - m.loading_seconds(0.0)
            secs.append(m.layer_seconds(node) + load_slope)
        layers.append(
            Layer(node.name, node_index, node.kind, (secs[0], secs[1], secs[2]),
                  node.output_bytes, node.param_bytes)
        )  # fmt: skip
    trunk = tuple(tuple(pos[i] for i in seg) for seg in trunk_nodes)
    branches = tuple(tuple(pos[i] for i in b) for b in branch_nodes)
    loading = (0.0, 0.0, 0.0)
    parsing: tuple[float, ...] = (0.0,) * model.n_exits
    problem = EarlyExitProblem(
        name=name, layers=tuple(layers), trunk=trunk, branches=branches,
        input_bytes=int(x.numel() * x.element_size()),
        wireless_bps=inst.wireless.rate_bps, wired_bps=inst.wired.rate_bps,
        accuracies=acc, probabilities=probs,
        tiers=tuple(TIER_NAMES.index(t) for t in inst.tiers),
    )  # fmt: skip
    if inst.include_loading:
        loading = (
            models[0].loading_seconds(0.0),
            models[1].loading_seconds(0.0),
            models[2].loading_seconds(0.0),
        )
        parsing = tuple(
            models[0].parsing_seconds(sum(layers[i].param_bytes for i in problem.chain(k)))
            for k in range(1, model.n_exits + 1)
        )
    meta: dict[str, Any] = {"predictors": inst.predictors, "requirement": requirement.describe()}
    return (
        EarlyExitProblem(
            **{**problem.__dict__, "loading": loading, "parsing": parsing, "meta": meta}
        ),
        graph,
    )


def load_instance_problem(
    inst: EarlyExitInstance, model: BranchyNet | None = None
) -> tuple[EarlyExitProblem, Graph, BranchyNet, torch.Tensor]:
    """Build the model (training it on digits if asked) and the problem of ``inst``."""
    from edgesplit.models.branchy import digits_split, exit_accuracies, train

    net, x = build_branchy(inst.model)
    if model is not None:
        net = model
    elif inst.weights:
        from edgesplit.models.zoo import load_weights

        load_weights(net, inst.weights)
        net.eval()
    if inst.accuracies == "digits":
        split = digits_split()
        train(net, split, epochs=inst.train_epochs)
        accuracies = exit_accuracies(net, split.x_test, split.y_test)
    else:
        accuracies = list(inst.accuracies)
    problem, graph = build_problem(
        net, x, accuracies, inst.requirement.build(), inst, name=inst.model
    )
    return problem, graph, net, x
