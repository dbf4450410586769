"""Measured accuracy of the layer, semantic and compressed variants (Tuli 2021 §4, Fig. 4).

The only image data available offline is sklearn's ``load_digits`` (1797 real 8x8
handwritten digits), so the MNIST-like application's three variants are trained on it,
with the app's own width, depth and class count, at 8x8 resolution (the simulator sizes
compute at the app's 28x28 input; the architecture family is the same):

- layer split: the full network (splitting it does not change its output: the fragments
  are exact parts of it, see :func:`edgesplit.graph.partition.split_at`);
- semantic split: ``k`` narrower networks, one per class subset, trained jointly on the
  concatenation of their class scores (SplitNet-style disjoint parameter groups); at
  inference each fragment runs alone and the broker takes the argmax of the concatenation;
- compressed: one half-width network (MC baseline).

The default mnist application runs MobileNetV2 (:mod:`edgesplit.cluster.config`), which
cannot be trained here; the row measured on this stand-in is used for it (docs/cluster.md).

Training: Adam (lr 3e-3), 40 epochs, batch 64, 70/30 stratified split, seed 0; about ten
seconds on two cores. FashionMNIST and CIFAR100 have no offline data here: their rows in the
JSON are *assumed* values, marked as such, and every app's ``accuracy`` field replaces them.

Regenerate the shipped table with ``python -m edgesplit.cluster.variant_accuracy``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgesplit.cluster.apps import build_variant, class_groups
from edgesplit.cluster.config import AppSpec, WorkloadSpec
from edgesplit.io import write_json

ASSUMED = {
    "fashionmnist": {"layer": 0.91, "semantic": 0.87, "compressed": 0.89},
    "cifar100": {"layer": 0.74, "semantic": 0.66, "compressed": 0.69},
}
ASSUMED_NOTE = (
    "assumed round values in the range published for small CNNs on these datasets "
    "(no offline data to measure them); replace via workload.apps[].accuracy"
)


class SemanticEnsemble(nn.Module):
    """k class-subset networks whose scores are scattered back into class order."""

    def __init__(self, nets: list[nn.Module], groups: list[list[int]], num_classes: int):
        super().__init__()
        self.nets = nn.ModuleList(nets)
        order = [c for g in groups for c in g]
        self.inverse: torch.Tensor
        self.register_buffer("inverse", torch.argsort(torch.tensor(order)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = torch.cat([net(x) for net in self.nets], dim=1)
        return scores[:, self.inverse]


@dataclass(frozen=True)
class TrainedVariants:
    """TrainedVariants networks of one app: modules per variant, accuracy and held-out data."""

    modules: dict[str, nn.Module]
    accuracy: dict[str, float]
    x_test: torch.Tensor
    y_test: torch.Tensor


def digits_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    xa, xb, ya, yb = train_test_split(
        x, d.target, test_size=0.3, random_state=seed, stratify=d.target
    )
    return torch.tensor(xa), torch.tensor(ya), torch.tensor(xb), torch.tensor(yb)


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()


def train_digits(app: AppSpec, k: int, epochs: int = 40, seed: int = 0) -> TrainedVariants:
    """Train the three variants of ``app`` (10 classes, 1 channel) on digits; O(epochs n)."""
    xa, ya, xb, yb = digits_data(seed)
    modules: dict[str, nn.Module] = {
        "layer": build_variant(app, "layer", k)[0],
        "compressed": build_variant(app, "compressed", k)[0],
        "semantic": SemanticEnsemble(
            build_variant(app, "semantic", k), class_groups(app.num_classes, k), app.num_classes
        ),
    }
    accuracy = {}
    for name, m in modules.items():
        torch.manual_seed(seed)
        _fit(m, xa, ya, epochs, seed)
        with torch.no_grad():
            accuracy[name] = float((m(xb).argmax(1) == yb).float().mean())
    return TrainedVariants(modules, accuracy, xb, yb)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else Path(__file__).parent / "data" / "accuracy.json"
    torch.set_num_threads(2)
    w = WorkloadSpec()
    # the small stand-in CNN: the zoo families of the default apps cannot be trained here
    mnist = AppSpec(name="mnist", model="splitnet", width=32, depth=4)
    trained = train_digits(mnist, w.fragments)
    doc = {
        "generated_by": "python -m edgesplit.cluster.variant_accuracy",
        "apps": {
            "mnist": {
                "accuracy": trained.accuracy,
                "source": f"measured on the splitnet stand-in CNN: sklearn digits, 30% held "
                f"out ({len(trained.y_test)} images), k={w.fragments}, width={mnist.width}, "
                f"depth={mnist.depth}",
            },
            **{a: {"accuracy": v, "source": ASSUMED_NOTE} for a, v in ASSUMED.items()},
        },
    }
    write_json(out, doc)
    print(f"wrote {out}: mnist {trained.accuracy}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
