"""Applications and their split fragments, sized from real traced networks (Tuli 2021, Fig. 1).

Each application is a SplitNet-style CNN family (Kim et al. 2017, the paper's [12]):

- **layer split** ("L"): the full network traced by :func:`edgesplit.graph.trace` and cut
  into ``k`` contiguous parts by :func:`edgesplit.graph.partition.split_at`, the cuts
  balancing FLOPs; fragment ``j+1`` needs fragment ``j``'s output (the cut tensors);
- **semantic split** ("S"): ``k`` parallel networks of width ``width // k`` each scoring a
  disjoint subset of the classes; the answer is the argmax over their concatenated scores;
- **compressed** ("C", the MC baseline): one network of width ``width // 2`` standing in for
  BottleNet++'s compressed model (one fragment).

Fragment compute (instructions per input), memory and transfer bytes are read from the
traced graphs; nothing is invented. Accuracy comes from ``data/accuracy.json`` (written by
``python -m edgesplit.cluster.variant_accuracy``, which trains all three variants on
sklearn digits) or from the app's ``accuracy`` field. Building a profile traces ``k + 2``
small networks: O(total nodes) time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import torch
from torch import nn

from edgesplit.cluster.config import AppSpec, WorkloadSpec
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
    """The networks of one variant, seeded: one for layer/compressed, ``k`` for semantic."""
    torch.manual_seed(0)
    c = app.input_shape[0]
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
    act = max(nd.output_bytes for nd in graph.nodes) + graph.input_bytes
    ram = (
        w.container_overhead_mb + (sum(nd.param_bytes for nd in graph.nodes) + act * w.chunk) / 1e6
    )
    return Fragment(
        index, graph.flops * w.instructions_per_flop, ram, graph.input_bytes, graph.output_bytes
    )


def load_accuracy_table() -> dict[str, dict[str, float]]:
    """The measured table shipped in ``cluster/data/accuracy.json`` (empty if absent)."""
    path = resources.files("edgesplit.cluster") / "data" / "accuracy.json"
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text())
    return {app: dict(v["accuracy"]) for app, v in doc.get("apps", {}).items()}


def trace_variant(app: AppSpec, decision: Decision, k: int) -> list[Graph]:
    x = torch.zeros(1, *app.input_shape)
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


def _build_profile(app: AppSpec, workload: WorkloadSpec) -> AppProfile:
    k = workload.fragments
    (full,) = trace_variant(app, "layer", k)
    layer = _part_fragments(full, split_at(full, balanced_cuts(full, k)), workload)
    semantic = tuple(
        _whole_fragment(g, j, workload) for j, g in enumerate(trace_variant(app, "semantic", k))
    )
    (small,) = trace_variant(app, "compressed", k)
    accuracy = app.accuracy or load_accuracy_table().get(app.name)
    if accuracy is None or set(accuracy) != set(DECISIONS):
        raise InputError(
            f"app {app.name!r} has no measured accuracy; set workload.apps[].accuracy with "
            "keys layer, semantic, compressed (fractions) or run python -m "
            "edgesplit.cluster.variant_accuracy"
        )
    return AppProfile(
        name=app.name,
        input_shape=app.input_shape,
        batch_range=(app.batch_min, app.batch_max),
        fragments={
            "layer": layer,
            "semantic": semantic,
            "compressed": (_whole_fragment(small, 0, workload),),
        },
        accuracy={d: float(accuracy[d]) for d in DECISIONS},
    )


def build_profiles(workload: WorkloadSpec) -> dict[str, AppProfile]:
    return {a.name: build_profile(a, workload) for a in workload.apps}
