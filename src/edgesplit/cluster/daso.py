"""DASO and GOBI: placement by gradient ascent over a neural QoS surrogate (Tuli 2021, eq. 9-10).

The surrogate f(S, P, D; theta) is a fully connected network predicting the interval's
objective O^P (eq. 8) from

- S: per-host state (CPU utilisation, RAM used fraction, queued work in intervals of one
  host, bandwidth / nominal, latency) - H x 5;
- P: the placement of up to ``slots`` pending containers, a slots x H matrix (one-hot rows
  once decided, relaxed to the simplex while optimising);
- D: per-container features (work in host-intervals, RAM fraction) and the split decision
  one-hot (layer, semantic, compressed) - slots x 5. GOBI (the paper's [27]) is the same
  network *without* the decision one-hot (``decision_aware=False``).

Training (eq. 9): MSE with AdamW on (x, O^P) traces produced by the simulator
(:func:`collect_traces` runs random placement to cover the space). At each interval the
placement starts from the previous one (containers still waiting keep their last proposal;
new ones start uniform), takes steps P <- P + eta grad_P f (eq. 10 with the sign flipped
because our f is a score to maximise), keeps rows on the simplex by clipping and
renormalising, and stops when ||P_new - P||_2 < tol or after ``max_steps``. The relaxed
rows are then projected to a feasible one-hot placement by
:func:`edgesplit.cluster.interface.greedy_feasible`. As in SplitPlace, each observed interval
also fine-tunes f with a few AdamW steps on the new (x, O^P) pair: the placement proposed
in that interval against that interval's reward. An interval without a placement (nothing
pending) fine-tunes nothing; a placement is used once.

More pending containers than ``slots`` are optimised in consecutive chunks. Cost per step:
one forward and backward pass, O(slots H hidden).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgesplit.cluster.config import kind
from edgesplit.cluster.interface import ClusterView, PendingContainer, greedy_feasible
from edgesplit.cluster.metrics import IntervalMetrics
from edgesplit.errors import NotFittedError

_DEC = {"layer": 0, "semantic": 1, "compressed": 2}


@dataclass(frozen=True)
class Encoding:
    """Feature layout of one surrogate input."""

    hosts: int
    slots: int
    decision_aware: bool

    @property
    def container_features(self) -> int:
        return 5 if self.decision_aware else 2

    @property
    def size(self) -> int:
        return self.hosts * 5 + self.slots * (self.container_features + self.hosts)

    def state(self, view: ClusterView, pending: Sequence[PendingContainer]) -> torch.Tensor:
        """S and D parts of x (everything but P), flattened."""
        host_rate = view.mips * 1e6 * view.interval_s
        s = np.stack(
            [
                np.minimum(view.jobs * view.fragment_cores, view.cores) / view.cores,
                view.ram_used_mb / view.ram_mb,
                view.queued_work / host_rate,
                view.bandwidth_mbps / max(float(view.bandwidth_mbps.max()), 1e-9),
                view.latency_s,
            ],
            axis=1,
        )
        d = np.zeros((self.slots, self.container_features))
        mean_rate = float(np.mean(host_rate))
        for i, c in enumerate(pending[: self.slots]):
            d[i, 0] = c.work / mean_rate
            d[i, 1] = c.ram_mb / float(np.mean(view.ram_mb))
            if self.decision_aware:
                d[i, 2 + _DEC[kind(c.decision)]] = 1.0
        return torch.tensor(np.concatenate([s.ravel(), d.ravel()]), dtype=torch.float32)


class Surrogate(nn.Module):
    """f(S, P, D): two hidden layers of ``hidden`` units with softplus (smooth gradients)."""

    def __init__(self, encoding: Encoding, hidden: int = 128) -> None:
        super().__init__()
        self.encoding = encoding
        self.net = nn.Sequential(
            nn.Linear(encoding.size, hidden),
            nn.Softplus(),
            nn.Linear(hidden, hidden),
            nn.Softplus(),
            nn.Linear(hidden, 1),
        )

    def forward(self, state: torch.Tensor, placement: torch.Tensor) -> torch.Tensor:
        x = torch.cat([state, placement.reshape(*state.shape[:-1], -1)], dim=-1)
        return self.net(x).squeeze(-1)


def fit_surrogate(
    model: Surrogate,
    states: torch.Tensor,
    placements: torch.Tensor,
    targets: torch.Tensor,
    epochs: int = 200,
    lr: float = 1e-3,
    seed: int = 0,
) -> list[float]:
    """Minimise the MSE of eq. 9 with AdamW, full batch; returns the loss curve."""
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    losses = []
    for _ in range(epochs):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(states, placements), targets)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def optimise_placement(
    model: Surrogate,
    state: torch.Tensor,
    start: torch.Tensor,
    eta: float = 0.5,
    tol: float = 1e-3,
    max_steps: int = 50,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, int]:
    """Gradient ascent of eq. 10 on the relaxed placement; returns (P, steps taken).

    ``mask`` (slots x H booleans) marks infeasible hosts, kept at zero. Rows of padding
    slots stay zero.
    """
    p = start.clone()
    live = p.sum(dim=1, keepdim=True) > 0
    for step in range(1, max_steps + 1):
        q = p.clone().requires_grad_(True)
        model(state, q).backward()
        assert q.grad is not None
        new = (p + eta * q.grad).clamp_min(0.0)
        if mask is not None:
            new = new.masked_fill(mask, 0.0)
        total = new.sum(dim=1, keepdim=True)
        new = torch.where(live & (total > 0), new / total.clamp_min(1e-12), p)
        if float(torch.linalg.norm(new - p)) < tol:
            return new, step
        p = new
    return p, max_steps


class SurrogatePlacer:
    """DASO (``decision_aware=True``) or GOBI placement with a fitted :class:`Surrogate`."""

    def __init__(
        self,
        model: Surrogate | None = None,
        eta: float = 0.5,
        tol: float = 1e-3,
        max_steps: int = 50,
        finetune_steps: int = 2,
        lr: float = 1e-3,
    ) -> None:
        self.model = model
        self.eta = eta
        self.tol = tol
        self.max_steps = max_steps
        self.finetune_steps = finetune_steps
        self.lr = lr
        self._prev: dict[int, torch.Tensor] = {}
        self._last: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.steps: list[int] = []

    @property
    def name(self) -> str:
        if self.model is None:
            return "surrogate"
        return "daso" if self.model.encoding.decision_aware else "gobi"

    def place(self, view: ClusterView, pending: Sequence[PendingContainer]) -> list[int | None]:
        if self.model is None:
            raise NotFittedError("surrogate placer has no fitted model; train it first")
        enc = self.model.encoding
        scores = np.zeros((len(pending), view.hosts))
        self._last = []
        for lo in range(0, len(pending), enc.slots):
            chunk = pending[lo : lo + enc.slots]
            state = enc.state(view, chunk)
            start = torch.zeros(enc.slots, enc.hosts)
            mask = torch.zeros(enc.slots, enc.hosts, dtype=torch.bool)
            free = torch.tensor(view.ram_free_mb)
            for i, c in enumerate(chunk):
                start[i] = self._prev.get(c.cid, torch.full((enc.hosts,), 1.0 / enc.hosts))
                mask[i] = free < c.ram_mb
            p, steps = optimise_placement(
                self.model, state, start, self.eta, self.tol, self.max_steps, mask
            )
            self.steps.append(steps)
            for i, c in enumerate(chunk):
                self._prev[c.cid] = p[i].detach()
                scores[lo + i] = p[i].detach().numpy()
            self._last.append((state, p.detach()))
        out = greedy_feasible(view, pending, scores)
        for c, h in zip(pending, out):
            if h is not None:
                self._prev.pop(c.cid, None)
        return out

    def observe(self, metrics: IntervalMetrics) -> None:
        """Fine-tune f on this interval's (x, O^P) pairs (SplitPlace's on-line adaptation).

        Only a placement made in this interval is used, and only once: with nothing pending
        :meth:`place` is not called and there is nothing to fine-tune on.
        """
        last, self._last = self._last, []
        if self.model is None or metrics.reward is None or not last or not self.finetune_steps:
            return
        states = torch.stack([s for s, _ in last])
        places = torch.stack([p for _, p in last])
        target = torch.full((len(last),), float(metrics.reward))
        fit_surrogate(self.model, states, places, target, self.finetune_steps, self.lr)
