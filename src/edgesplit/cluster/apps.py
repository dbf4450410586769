"""Applications and their split fragments, sized from real traced networks (Tuli 2021, Fig. 1).

An application is a zoo model family (the paper's §4 "Workloads": ResNet50, MobileNetV2,
InceptionV3) or the small SplitNet-style CNN ``splitnet`` (used by ``ray-run``, which
executes it). Its variants, each a tuple of fragments (one container each):

- **layer split** ("layer"): the full network traced by :func:`edgesplit.graph.trace` and
  cut into ``k`` contiguous parts by :func:`edgesplit.graph.partition.split_at`, the cuts
  balancing FLOPs; fragment ``j+1`` needs fragment ``j``'s output (the cut tensors).
  ``"layer:m"`` (m = 1..k-1) is the same with ``m`` parts (Gillis chooses m per task);
- **semantic split** ("semantic"), the paper's "parallel disjoint models that produce a part
  of the result" (§2), built as SplitNet (Kim et al. 2017, the paper's [12]) does: the lower
  layers stay whole and the upper layers are split into ``k`` class groups whose weights
  are block-diagonal. Semantic containers have no precedence (eq. 1), so each fragment
  carries its own copy of the shared trunk. For a zoo model with FLOPs F, trunk share
  ``s`` (``workload.semantic_shared``, the first nodes up to ``s`` F) and the rest split,
  one fragment costs (our derivation)

      F_frag = F_trunk + sum_{conv/linear n above} F_n / k^2 + sum_{other n above} F_n / k

  (a block-diagonal conv/linear keeps 1/k of the inputs and 1/k of the outputs per group;
  depthwise convs, norms, activations and pools keep 1/k of their channels), so with
  s = 0.5 and k = 4 a fragment costs ~0.53 F and the split ~2.1 F in all: faster than the
  layer chain on idle hosts, heavier on a loaded cluster. Parameters scale the same way,
  activations above the trunk by 1/k; each fragment returns 1/k of the scores.
  For ``splitnet`` the semantic fragments are the k real width/k networks (``s`` = 0);
- **compressed** ("compressed", the MC baseline): one half-width network standing in for
  BottleNet++'s compressed model (zoo: the width-halving rule above with 2 groups of one
  kept, F_n / 4 for conv/linear and F_n / 2 otherwise; ``splitnet``: the real network).

Container RAM = ``container_overhead_mb`` + parameters + ``chunk`` inputs' largest
activation (+ input). Accuracy comes from ``data/accuracy.json`` (per application) or the
app's ``accuracy`` field. Building a profile traces the model (a few seconds for a zoo
model) and is cached per (app, workload).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import torch
from torch import nn

from edgesplit.cluster.config import AppSpec, WorkloadSpec, kind
from edgesplit.errors import InputError
from edgesplit.graph import Graph, trace
from edgesplit.graph.partition import SplitModel, split_at

Decision = Literal["layer", "semantic", "compressed"]
DECISIONS: tuple[Decision, ...] = ("layer", "semantic", "compressed")


class SplitNetCNN(nn.Module):
    """Conv blocks (3x3 conv, ReLU, 2x2 max-pool every second block), global pool, linear."""

    def __init__(self, in_channels: int, num_classes: int, width: int, depth: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for i in range(depth):
            c_out = width * 2 ** (i // 2)
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]
            if i % 2 == 1:
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))


def class_groups(num_classes: int, k: int) -> list[list[int]]:
    """Disjoint, near-equal class subsets for the ``k`` semantic fragments."""
    return [list(range(num_classes))[j::k] for j in range(k)]


def build_variant(app: AppSpec, decision: Decision, k: int) -> list[nn.Module]:
    """The ``splitnet`` networks of one variant, seeded: one for layer/compressed, ``k``
    for semantic."""
    torch.manual_seed(0)
    c = app.shape[0]
    if decision == "layer":
        return [SplitNetCNN(c, app.num_classes, app.width, app.depth)]
    if decision == "compressed":
        return [SplitNetCNN(c, app.num_classes, max(2, app.width // 2), app.depth)]
    groups = class_groups(app.num_classes, k)
    return [SplitNetCNN(c, len(g), max(2, app.width // k), app.depth) for g in groups]


@dataclass(frozen=True)
class Fragment:
    """One container's work, per input of the batch (bytes are float32 per input)."""

    index: int
    instructions: float  # per input
    ram_mb: float  # container overhead + parameters + one chunk of activations
    in_bytes: int  # per input, received before it can start
    out_bytes: int  # per input, sent to the successor (or the broker)


@dataclass(frozen=True)
class AppProfile:
    """Fragments and accuracy of one application for each decision."""

    name: str
    input_shape: tuple[int, int, int]
    batch_range: tuple[int, int]
    fragments: dict[str, tuple[Fragment, ...]]
    accuracy: dict[str, float]

    def total_instructions(self, decision: str) -> float:
        return sum(f.instructions for f in self.fragments[decision])

    def accuracy_of(self, decision: str) -> float:
        return self.accuracy[kind(decision)]


def balanced_cuts(graph: Graph, k: int) -> list[int]:
    """Cut indices giving ``k`` non-empty contiguous parts of near-equal FLOPs; O(n)."""
    n = len(graph.nodes)
    if n < k:
        raise InputError(f"graph {graph.name!r} has {n} nodes, fewer than k={k} fragments")
    total = sum(nd.flops for nd in graph.nodes) or 1
    cuts: list[int] = []
    acc = 0
    for i, nd in enumerate(graph.nodes):
        acc += nd.flops
        target = total * (len(cuts) + 1) / k
        # keep room for the remaining parts: at least one node each
        if acc >= target and len(cuts) < k - 1 and i + 1 <= n - (k - 1 - len(cuts)):
            cuts.append(i + 1)
    while len(cuts) < k - 1:  # degenerate FLOP profiles: fill with the last free indices
        cuts.append(max(cuts[-1] + 1 if cuts else 1, n - (k - 1 - len(cuts))))
    return cuts


def _part_fragments(graph: Graph, split: SplitModel, w: WorkloadSpec) -> tuple[Fragment, ...]:
    frags = []
    for j, part in enumerate(sorted(split.parts, key=lambda p: p.index)):
        nodes = [graph.node(name) for name in part.node_names]
        in_bytes = sum(graph.tensor(t).nbytes for t in part.input_names)
        out_bytes = sum(graph.tensor(t).nbytes for t in part.output_names)
        act = max((nd.output_bytes for nd in nodes), default=0) + in_bytes
        ram = w.container_overhead_mb + (sum(nd.param_bytes for nd in nodes) + act * w.chunk) / 1e6
        flops = sum(nd.flops for nd in nodes)
        frags.append(Fragment(j, flops * w.instructions_per_flop, ram, in_bytes, out_bytes))
    return tuple(frags)


def _whole_fragment(graph: Graph, index: int, w: WorkloadSpec) -> Fragment:
    return _grouped_fragment(graph, index, 0, 1, w)


def _grouped_fragment(
    graph: Graph, index: int, shared: int, groups: int, w: WorkloadSpec
) -> Fragment:
    """One of ``groups`` SplitNet groups: nodes ``[0, shared)`` whole, the rest split into
    block-diagonal groups (module docstring: conv/linear / groups^2, other ops / groups)."""
    flops = params = 0.0
    act = 0.0
    for i, nd in enumerate(graph.nodes):
        if i < shared or groups == 1:
            div_compute = div_act = 1
        else:
            dense = nd.kind in ("conv", "linear") and nd.attrs.get("groups", 1) == 1
            div_compute, div_act = (groups * groups if dense else groups), groups
        flops += nd.flops / div_compute
        params += nd.param_bytes / div_compute
        act = max(act, nd.output_bytes / div_act)
    act += graph.input_bytes
    ram = w.container_overhead_mb + (params + act * w.chunk) / 1e6
    out = graph.output_bytes // groups if shared < len(graph.nodes) else graph.output_bytes
    return Fragment(index, flops * w.instructions_per_flop, ram, graph.input_bytes, out)


def load_accuracy_table() -> dict[str, dict[str, float]]:
    """The measured table shipped in ``cluster/data/accuracy.json`` (empty if absent)."""
    path = resources.files("edgesplit.cluster") / "data" / "accuracy.json"
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text())
    return {app: dict(v["accuracy"]) for app, v in doc.get("apps", {}).items()}


def trace_variant(app: AppSpec, decision: Decision, k: int) -> list[Graph]:
    x = torch.zeros(1, *app.shape)
    return [
        trace(m.eval(), x, name=f"{app.name}-{decision}{j}")
        for j, m in enumerate(build_variant(app, decision, k))
    ]


def build_profile(app: AppSpec, workload: WorkloadSpec) -> AppProfile:
    """Trace the app's variants and size its fragments; accuracy from the field or table."""
    key = (app.model_dump_json(), workload.model_dump_json(exclude={"apps"}))
    if key not in _PROFILES:
        _PROFILES[key] = _build_profile(app, workload)
    return _PROFILES[key]


_PROFILES: dict[tuple[str, str], AppProfile] = {}


def shared_nodes(graph: Graph, share: float) -> int:
    """Number of leading nodes holding the first ``share`` of the FLOPs (the trunk)."""
    total = graph.flops or 1
    acc = 0
    for i, nd in enumerate(graph.nodes):
        if acc >= share * total:
            return i
        acc += nd.flops
    return len(graph.nodes)


def _trace_zoo(app: AppSpec) -> Graph:
    from edgesplit.models.zoo import resolve

    model, _ = resolve(app.model)
    return trace(model, torch.zeros(1, *app.shape), name=app.name)


def _build_profile(app: AppSpec, workload: WorkloadSpec) -> AppProfile:
    k = workload.fragments
    if app.model == "splitnet":
        (full,) = trace_variant(app, "layer", k)
        semantic = tuple(
            _whole_fragment(g, j, workload) for j, g in enumerate(trace_variant(app, "semantic", k))
        )
        (small,) = trace_variant(app, "compressed", k)
        compressed = _whole_fragment(small, 0, workload)
    else:
        full = _trace_zoo(app)
        trunk = shared_nodes(full, workload.semantic_shared)
        semantic = tuple(_grouped_fragment(full, j, trunk, k, workload) for j in range(k))
        compressed = _grouped_fragment(full, 0, 0, 2, workload)
    fragments: dict[str, tuple[Fragment, ...]] = {"semantic": semantic, "compressed": (compressed,)}
    for m in range(1, k + 1):
        parts = _part_fragments(full, split_at(full, balanced_cuts(full, m)), workload)
        fragments["layer" if m == k else f"layer:{m}"] = parts
    accuracy = app.accuracy or load_accuracy_table().get(app.name)
    if accuracy is None or set(accuracy) != set(DECISIONS):
        raise InputError(
            f"app {app.name!r} has no measured accuracy; set workload.apps[].accuracy with "
            "keys layer, semantic, compressed (fractions) or run python -m "
            "edgesplit.cluster.variant_accuracy"
        )
    return AppProfile(
        name=app.name,
        input_shape=app.shape,
        batch_range=(app.batch_min, app.batch_max),
        fragments=fragments,
        accuracy={d: float(accuracy[d]) for d in DECISIONS},
    )


def build_profiles(workload: WorkloadSpec) -> dict[str, AppProfile]:
    return {a.name: build_profile(a, workload) for a in workload.apps}
