"""Contextual multi-armed bandit deciding layer vs semantic split (Tuli 2021, eq. 2-7).

Two contexts per task: ``h`` when its SLA is at least the layer response estimate R^a of
its application (eq. 2, an EMA with phi = 0.9 kept by the simulator), ``l`` otherwise. For
each context c and decision d the bandit keeps a count N^{c,d} and a reward estimate
Q^{c,d}, updated once per interval from the leaving tasks' reward O^{c,d} (eq. 3-4) by
Q <- Q + gamma (O - Q) (eq. 5).

- **Training** (``mode="train"``): epsilon-greedy (eq. 6). epsilon starts at 1; whenever
  O^MAB (mean of the defined O^{c,d}) exceeds the threshold rho (initially k), epsilon <-
  (1 - k) epsilon and rho <- (1 + k) rho.
- **Test** (``mode="test"``): UCB (eq. 7), argmax_d Q^{c,d} + c sqrt(log t / N^{c,d}), with
  c = 0.5 and t the interval count (t >= 1); an untried arm is taken first. Q and N keep
  adapting at test time, as the paper does.

The state is saved and loaded as JSON (``save``/``load``) so that training and evaluation
are separate runs; it includes ``estimates``, the R^a per application at the end of
training (the simulator keeps R^a; :func:`edgesplit.cluster.policies.train_mab` copies it
here and the test run starts from it). Each decision and update is O(1).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgesplit.cluster.interface import NewTask
from edgesplit.cluster.metrics import TaskRecord, context_rewards
from edgesplit.errors import InputError
from edgesplit.io import write_json

ARMS = ("layer", "semantic")
CONTEXTS = ("h", "l")


class MABSplitter:
    """eq. 2-7; ``history`` records (interval, epsilon, O^MAB, Q) for training curves."""

    name = "mab"

    def __init__(
        self,
        mode: str = "train",
        k: float = 0.05,
        gamma: float = 0.2,
        c: float = 0.5,
        seed: int = 0,
    ) -> None:
        if mode not in ("train", "test"):
            raise InputError(f"MAB mode must be 'train' or 'test', not {mode!r}")
        if not 0 < k < 1:
            raise InputError(f"MAB k must lie in (0, 1), got {k}")
        self.mode = mode
        self.k = k
        self.gamma = gamma
        self.c = c
        self.rng = np.random.default_rng(seed)
        self.q = {(cx, d): 0.0 for cx in CONTEXTS for d in ARMS}
        self.n = {(cx, d): 0 for cx in CONTEXTS for d in ARMS}
        self.epsilon = 1.0
        self.rho = k
        self.estimates: dict[str, float] = {}  # R^a (eq. 2) carried from training
        self.history: list[dict[str, Any]] = []

    def decide(self, task: NewTask) -> str:
        cx = task.context
        if self.mode == "train":
            if self.rng.random() < self.epsilon:
                d = ARMS[int(self.rng.integers(2))]
            else:
                d = max(ARMS, key=lambda a: self.q[(cx, a)])
        else:
            untried = [a for a in ARMS if self.n[(cx, a)] == 0]
            if untried:
                d = untried[0]
            else:
                t = max(task.interval, 1)
                d = max(
                    ARMS,
                    key=lambda a: (
                        self.q[(cx, a)] + self.c * math.sqrt(math.log(t) / self.n[(cx, a)])
                    ),
                )
        self.n[(cx, d)] += 1
        return d

    def observe(self, interval: int, left: Sequence[TaskRecord]) -> None:
        rewards = {k: v for k, v in context_rewards(left).items() if k in self.q}
        for key, o in rewards.items():  # eq. 5
            self.q[key] += self.gamma * (o - self.q[key])
        o_mab = float(np.mean(list(rewards.values()))) if rewards else None
        if self.mode == "train" and o_mab is not None and o_mab > self.rho:
            self.epsilon *= 1 - self.k
            self.rho *= 1 + self.k
        self.history.append(
            {
                "interval": interval,
                "epsilon": self.epsilon,
                "rho": self.rho,
                "o_mab": o_mab,
                "q": {f"{c}/{d}": v for (c, d), v in self.q.items()},
            }
        )

    def state(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "gamma": self.gamma,
            "c": self.c,
            "epsilon": self.epsilon,
            "rho": self.rho,
            "q": {f"{c}/{d}": v for (c, d), v in self.q.items()},
            "n": {f"{c}/{d}": v for (c, d), v in self.n.items()},
            "estimates": dict(self.estimates),
        }

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.state())

    @classmethod
    def from_state(cls, doc: dict[str, Any], mode: str = "test", seed: int = 0) -> MABSplitter:
        """Rebuild a bandit from :meth:`state` (Q, N, epsilon, rho and hyper-parameters)."""
        mab = cls(mode=mode, k=doc["k"], gamma=doc["gamma"], c=doc["c"], seed=seed)
        mab.epsilon, mab.rho = float(doc["epsilon"]), float(doc["rho"])
        for key in mab.q:
            name = f"{key[0]}/{key[1]}"
            mab.q[key] = float(doc["q"][name])
            mab.n[key] = int(doc["n"][name])
        mab.estimates = {str(a): float(r) for a, r in doc.get("estimates", {}).items()}
        return mab

    @classmethod
    def load(cls, path: str | Path, mode: str = "test", seed: int = 0) -> MABSplitter:
        try:
            return cls.from_state(json.loads(Path(path).read_text()), mode, seed)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise InputError(
                f"MAB state {str(path)!r} is unreadable ({err}); delete it to retrain"
            ) from None
