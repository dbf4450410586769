"""BranchyNet early-exit networks (Teerapittayanon et al., ICPR 2016) as used by Pre-DNNOff.

A :class:`BranchyNet` is a *main branch* cut into ``P`` trunk segments ``S_1..S_P`` and
``P - 1`` *side branches* ``B_1..B_{P-1}``; side branch ``B_k`` reads the output of
``S_k`` and ends in exit ``k``; the last trunk segment ends in exit ``P`` (Zuo 2024, §3.3:
"a branch is a subset of the network that comprises consecutive layers that do not overlap
with other branches, followed by an exit point"). Exit ``k``'s chain is therefore
``S_1 .. S_k`` followed by ``B_k`` (or nothing more for ``k = P``).

* :func:`zuo_alexnet` builds the paper's AlexNet-style network for 32x32 inputs
  (Fig. 3.3, Table 4.1): five exits, side branches of 7, 7, 8 and 8 layers (conv, ReLU,
  pooling, LRN, dropout and FC layers) and a 22-layer main branch. A layer here is what
  :func:`edgesplit.graph.trace` calls a layer: the reshape in front of an FC layer is fused
  into the layer before it, as Table 4.2 has no latency model for it.
* :func:`branchy_from_backbone` adds exits to any ``nn.Sequential`` backbone.
* :func:`joint_loss` is BranchyNet's training objective ``sum_n w_n * CE(y_hat_n, y)``.
* :func:`entropy` / :meth:`BranchyNet.infer_entropy` implement entropy-threshold exiting:
  exit ``n`` fires when ``entropy(softmax(y_hat_n)) < T_n`` (BranchyNet, Algorithm 1).
* :func:`digits_split` is the offline data set: scikit-learn's ``load_digits`` (1,797 real
  8x8 handwritten digits) upsampled bilinearly to 32x32 and repeated over three channels,
  split 70/30 stratified with seed 0. :func:`cifar10` loads real CIFAR-10 from a local
  root (torchvision's on-disk format); nothing is ever downloaded.

Training is O(epochs * samples * FLOPs); everything else is O(forward).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from edgesplit.errors import InputError

SEED = 0


class FlattenLinear(nn.Module):
    """An FC layer that flattens its input first (the reshape is no layer of its own)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(x, 1))


class BranchyNet(nn.Module):
    """Trunk segments ``S_1..S_P`` and side branches ``B_1..B_{P-1}`` (exits 1..P).

    ``forward`` returns the logits of every exit (for training and for tracing the whole
    tree); :meth:`forward_exit` computes only exit ``k``'s chain.
    """

    def __init__(self, trunk: Sequence[nn.Module], branches: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(trunk) < 1:
            raise InputError("BranchyNet needs at least one trunk segment; pass trunk=[...]")
        if len(branches) != len(trunk) - 1:
            raise InputError(
                f"BranchyNet with {len(trunk)} trunk segments needs {len(trunk) - 1} side "
                f"branches, got {len(branches)}; one branch per exit point except the last"
            )
        for kind, mods in (("trunk segment", trunk), ("side branch", branches)):
            for i, m in enumerate(mods, start=1):
                if isinstance(m, nn.Sequential) and len(m) == 0:
                    raise InputError(f"{kind} {i} is empty; give it at least one layer")
        self.trunk = nn.ModuleList(trunk)
        self.branches = nn.ModuleList(branches)

    @property
    def n_exits(self) -> int:
        return len(self.trunk)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs: list[torch.Tensor] = []
        h = x
        for k, seg in enumerate(self.trunk):
            h = seg(h)
            if k < len(self.branches):
                outs.append(self.branches[k](h))
        outs.append(h)
        return tuple(outs)

    def forward_exit(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Logits of exit ``k`` (1-based), computing nothing past it."""
        if not 1 <= k <= self.n_exits:
            raise InputError(f"exit {k} does not exist; choose 1..{self.n_exits}")
        h = x
        for seg in self.trunk[:k]:
            h = seg(h)
        return self.branches[k - 1](h) if k < self.n_exits else h

    @torch.no_grad()
    def infer_entropy(
        self, x: torch.Tensor, thresholds: Sequence[float]
    ) -> tuple[int, torch.Tensor]:
        """BranchyNet Algorithm 1 for one sample: the first exit whose entropy is below T."""
        if len(thresholds) != self.n_exits - 1:
            raise InputError(
                f"give {self.n_exits - 1} entropy thresholds (one per side exit), "
                f"not {len(thresholds)}"
            )
        h = x
        for k, seg in enumerate(self.trunk, start=1):
            h = seg(h)
            if k < self.n_exits:
                logits = self.branches[k - 1](h)
                if float(entropy(logits).max()) < thresholds[k - 1]:
                    return k, logits
        return self.n_exits, h


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of ``softmax(logits)`` per row (nats), BranchyNet's exit criterion."""
    logp = F.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def joint_loss(
    outputs: Sequence[torch.Tensor], target: torch.Tensor, weights: Sequence[float] | None = None
) -> torch.Tensor:
    """BranchyNet's joint objective: weighted sum of the exits' cross-entropy losses."""
    w = list(weights) if weights is not None else [1.0] * len(outputs)
    if len(w) != len(outputs):
        raise InputError(f"give one loss weight per exit ({len(outputs)}), not {len(w)}")
    return sum((wi * F.cross_entropy(o, target) for wi, o in zip(w, outputs)), torch.zeros(()))


def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2)


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, stride=2, padding=1)


def _side_branch(
    cin: int, hw: int, hidden: int | None, dropout: bool, classes: int
) -> nn.Sequential:
    """conv-ReLU-pool-conv-ReLU, then dropout+FC (7 layers) or FC-ReLU-FC (8 layers)."""
    out_hw = (hw + 1) // 2
    layers: list[nn.Module] = [_conv(cin, 32, 3), nn.ReLU(), _pool(), _conv(32, 32, 3), nn.ReLU()]
    flat = 32 * out_hw * out_hw
    if hidden is None:
        layers += [nn.Dropout(0.5)] if dropout else []
        layers += [FlattenLinear(flat, classes)]
    else:
        layers += [FlattenLinear(flat, hidden), nn.ReLU(), nn.Linear(hidden, classes)]
    return nn.Sequential(*layers)


def zuo_alexnet(num_classes: int = 10) -> BranchyNet:
    """The Pre-DNNOff network: AlexNet-style, 32x32x3 input, five exits (Zuo 2024, Fig. 3.3).

    Main branch (22 layers): conv5x5-ReLU-pool-LRN, conv5x5-ReLU-pool-LRN, conv3x3-ReLU,
    conv3x3-ReLU, conv3x3-ReLU-pool-FC-ReLU-dropout-FC-ReLU-dropout-FC. Side branches of
    7, 7, 8 and 8 layers leave after the first, second, third and fourth blocks. Channel
    widths are not given in the paper; these follow BranchyNet's B-AlexNet for CIFAR-10.
    """
    torch.manual_seed(SEED)
    trunk = [
        nn.Sequential(_conv(3, 32, 5), nn.ReLU(), _pool(), nn.LocalResponseNorm(3)),
        nn.Sequential(_conv(32, 64, 5), nn.ReLU(), _pool(), nn.LocalResponseNorm(3)),
        nn.Sequential(_conv(64, 96, 3), nn.ReLU()),
        nn.Sequential(_conv(96, 96, 3), nn.ReLU()),
        nn.Sequential(
            _conv(96, 64, 3), nn.ReLU(), _pool(),
            FlattenLinear(64 * 4 * 4, 256), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(128, num_classes),
        ),
    ]  # fmt: skip
    branches = [
        _side_branch(32, 16, None, True, num_classes),
        _side_branch(64, 8, None, True, num_classes),
        _side_branch(96, 8, 64, False, num_classes),
        _side_branch(96, 8, 64, False, num_classes),
    ]
    return BranchyNet(trunk, branches).eval()


def branchy_from_backbone(
    backbone: nn.Sequential, exit_points: Sequence[int], branches: Sequence[nn.Module]
) -> BranchyNet:
    """Add side exits to ``backbone`` after layers ``exit_points`` (0-based, increasing).

    ``branches[i]`` reads the output of layer ``exit_points[i]``; the backbone's own end is
    the last exit. O(len(backbone)).
    """
    layers = list(backbone)
    points = list(exit_points)
    if len(points) != len(branches):
        raise InputError(f"give one branch per exit point: {len(points)} points, {len(branches)}")
    if points != sorted(set(points)) or (
        points and not 0 <= points[0] <= points[-1] < len(layers) - 1
    ):
        raise InputError(
            f"exit_points must be strictly increasing in 0..{len(layers) - 2}, got {points}"
        )
    bounds = [0] + [p + 1 for p in points] + [len(layers)]
    trunk = [nn.Sequential(*layers[a:b]) for a, b in zip(bounds, bounds[1:])]
    return BranchyNet(trunk, branches)


BRANCHY_ZOO = {"zuo_alexnet": zuo_alexnet}


def build_branchy(name: str) -> tuple[BranchyNet, torch.Tensor]:
    """A named BranchyNet and a seeded 1x3x32x32 example input."""
    if name not in BRANCHY_ZOO:
        raise InputError(f"unknown BranchyNet {name!r}; choose one of {', '.join(BRANCHY_ZOO)}")
    model = BRANCHY_ZOO[name]()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(SEED))
    return model, x


# -- data -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """A train/test split of images ``(N, 3, H, W)`` float32 and int64 labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def digits_split(size: int = 32, test_fraction: float = 0.3, seed: int = SEED) -> Split:
    """scikit-learn ``load_digits`` upsampled to ``size`` x ``size`` x 3, split stratified."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = ((x - 0.5) / 0.5).repeat(1, 3, 1, 1)
    y = torch.tensor(digits.target, dtype=torch.int64)
    idx = list(range(len(y)))
    tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=y.numpy())
    return Split(x[tr], y[tr], x[te], y[te])


def cifar10(root: str | Path, *, verify: bool = True, limit: int | None = None) -> Split:
    """Real CIFAR-10 from ``root`` (the ``cifar-10-batches-py`` folder's parent); never downloads.

    ``verify=False`` skips torchvision's MD5 check so that a partial copy (or a test's small
    stand-in in the same on-disk format) loads; the files are still required.
    """
    import torchvision

    class _Cifar(torchvision.datasets.CIFAR10):
        if not verify:
            # torchvision skips the MD5 check when the expected digest is None.
            train_list = [[f, None] for f, _ in torchvision.datasets.CIFAR10.train_list]
            test_list = [[f, None] for f, _ in torchvision.datasets.CIFAR10.test_list]
            meta = {**torchvision.datasets.CIFAR10.meta, "md5": None}

    parts = []
    for train in (True, False):
        try:
            ds = _Cifar(str(root), train=train, download=False)
        except RuntimeError as err:
            raise InputError(
                f"CIFAR-10 not found under {str(root)!r} ({err}); put cifar-10-batches-py there"
            ) from None
        data = torch.tensor(ds.data[:limit]).permute(0, 3, 1, 2).float() / 255.0
        parts.append(((data - 0.5) / 0.5, torch.tensor(ds.targets[:limit], dtype=torch.int64)))
    (xtr, ytr), (xte, yte) = parts
    return Split(xtr, ytr, xte, yte)


# -- training and accuracy ----------------------------------------------------------------


def train(
    model: BranchyNet,
    split: Split,
    *,
    epochs: int = 8,
    batch_size: int = 64,
    lr: float = 1e-3,
    weights: Sequence[float] | None = None,
    seed: int = SEED,
) -> list[float]:
    """Train with the joint loss (Adam); returns the mean loss per epoch. Leaves eval mode."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history: list[float] = []
    model.train()
    n = len(split.y_train)
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            opt.zero_grad()
            loss = joint_loss(model(split.x_train[idx]), split.y_train[idx], weights)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        history.append(total / n)
    model.eval()
    return history


@torch.no_grad()
def exit_accuracies(model: BranchyNet, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Top-1 accuracy of every exit on ``(x, y)`` (the paper's Table 5.1 quantity)."""
    model.eval()
    outs = model(x)
    return [float((o.argmax(dim=1) == y).float().mean()) for o in outs]
