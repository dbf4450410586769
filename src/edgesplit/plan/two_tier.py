"""Two-tier split planning: the candidate table and the exact optima over it.

For every cut ``k`` of the topological order, from all-in-cloud (cut 0: the raw input is
offloaded) to all-in-edge (cut n), the table holds the predicted edge, communication,
cloud and total latency, cost and energy (Neurosurgeon's exhaustive search; Luger §4.1–4.4):

* edge_s[k] = Σ_{i<k} edge seconds, cloud_s[k] = Σ_{i≥k} cloud seconds (Luger eq. 4.1 and
  the cloud model when those predictors supplied the seconds);
* comm_s[k] = Luger eq. 4.3 for every tensor crossing the cut (a DAG cut sends each crossing
  tensor once, in one message) plus the eq. 3.3 response leg for the outputs; 0 at cut n;
* cost[k] = Luger eq. 4.4: edge_s·edge price + cloud_s·cloud price (edge price 0 if owned);
* energy[k] = edge busy power × edge_s + edge idle power × (latency − edge_s)
  (+ cloud busy power × cloud_s when the cloud has a power model).

The table is built in O(n + |tensors|) from prefix sums; :class:`TwoTierInputs` holds the
per-graph part so that re-planning for new bandwidth, RTT, clock or weight costs O(n)
(see :func:`plan_two_tier`). The choices over the table live in :mod:`.tradeoff`.
These are the same semantics as :mod:`edgesplit.plan.problem`; the tests check every
row against the independent evaluator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgesplit.errors import InputError
from edgesplit.graph.types import Graph
from edgesplit.plan.problem import Problem


@dataclass(frozen=True, eq=False)
class TwoTierInputs:
    """What does not change between re-plans: node seconds and the bytes of every cut.

    ``up_bytes[k]`` is what cut ``k`` uploads (each crossing tensor once);
    ``down_bytes[k]`` the model outputs produced on the cloud side (the response).
    """

    model: str
    devices: tuple[str, str]
    edge_seconds: np.ndarray
    cloud_seconds: np.ndarray
    up_bytes: np.ndarray
    down_bytes: np.ndarray
    node_memory: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.edge_seconds)

    @classmethod
    def from_graph(
        cls,
        graph: Graph,
        edge_seconds: Sequence[float],
        cloud_seconds: Sequence[float],
        devices: tuple[str, str] = ("edge", "cloud"),
        tensor_bytes: Sequence[float] | None = None,
    ) -> TwoTierInputs:
        """``tensor_bytes`` replaces each tensor's ``nbytes`` (bytes after a wire codec)."""
        n = len(graph.nodes)
        if len(edge_seconds) != n or len(cloud_seconds) != n:
            raise InputError(
                f"need {n} edge and cloud seconds for {graph.name!r}, got "
                f"{len(edge_seconds)} and {len(cloud_seconds)}"
            )
        pos = {node.name: node.index for node in graph.nodes}
        # Difference arrays: a tensor produced at p and last read at m crosses cuts p+1..m.
        up = np.zeros(n + 2)
        down = np.zeros(n + 2)
        # Crossing-tensor counts: exact zeros where float sizes would leave rounding residue.
        n_up = np.zeros(n + 2, dtype=np.int64)
        n_down = np.zeros(n + 2, dtype=np.int64)
        sizes = [t.nbytes for t in graph.tensors] if tensor_bytes is None else tensor_bytes
        for t, size in zip(graph.tensors, sizes, strict=True):
            p = -1 if t.producer is None else pos[t.producer]
            if t.consumers:
                m = max(pos[c] for c in t.consumers)
                if m > p:
                    up[p + 1] += size
                    up[m + 1] -= size
                    n_up[p + 1] += 1
                    n_up[m + 1] -= 1
            if t.is_output and p >= 0:
                down[0] += size
                down[p + 1] -= size
                n_down[0] += 1
                n_down[p + 1] -= 1
        return cls(
            model=graph.name,
            devices=devices,
            edge_seconds=np.asarray(edge_seconds, dtype=float),
            cloud_seconds=np.asarray(cloud_seconds, dtype=float),
            up_bytes=np.where(np.cumsum(n_up) > 0, np.cumsum(up), 0.0)[: n + 1],
            down_bytes=np.where(np.cumsum(n_down) > 0, np.cumsum(down), 0.0)[: n + 1],
            node_memory=np.array([x.param_bytes + x.output_bytes for x in graph.nodes], float),
        )

    @classmethod
    def from_problem(cls, problem: Problem) -> TwoTierInputs:
        if problem.n_devices != 2 or problem.source != 0:
            raise InputError(
                "two-tier planning needs exactly 2 devices with the input on the first; "
                "use another --algorithm for more devices"
            )
        if problem.comm != "message" or problem.colour_classes():
            raise InputError(
                "two-tier planning prices one message per direction (Luger eq. 4.3) without "
                "colour classes; use --algorithm ilp or heuristic for this problem"
            )
        return cls.from_graph(
            problem.graph,
            problem.seconds[0],
            problem.seconds[1],
            devices=(problem.devices[0], problem.devices[1]),
        )


@dataclass(frozen=True, eq=False)
class Candidates:
    """One row per cut 0..n: latency parts, cost and energy."""

    model: str
    devices: tuple[str, str]
    edge_s: np.ndarray
    comm_s: np.ndarray
    cloud_s: np.ndarray
    latency_s: np.ndarray
    cost: np.ndarray
    energy_j: np.ndarray
    bytes: np.ndarray
    feasible: np.ndarray
    codec_s: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.latency_s)

    def row(self, k: int) -> dict[str, float]:
        codec = {} if self.codec_s is None else {"codec_s": float(self.codec_s[k])}
        return {
            **codec,
            "cut": k,
            "edge_s": float(self.edge_s[k]),
            "comm_s": float(self.comm_s[k]),
            "cloud_s": float(self.cloud_s[k]),
            "latency_s": float(self.latency_s[k]),
            "cost": float(self.cost[k]),
            "energy_j": float(self.energy_j[k]),
            "bytes": float(self.bytes[k]),
            "feasible": bool(self.feasible[k]),
        }

    def rows(self) -> list[dict[str, Any]]:
        return [self.row(k) for k in range(len(self))]


def candidate_table(
    inputs: TwoTierInputs,
    *,
    bandwidth_bps: float,
    rtt_s: float,
    edge_price_per_s: float = 0.0,
    cloud_price_per_s: float = 0.0,
    edge_busy_w: float = 0.0,
    edge_idle_w: float = 0.0,
    cloud_busy_w: float = 0.0,
    edge_scale: float = 1.0,
    edge_memory: float | None = None,
    cloud_memory: float | None = None,
    codec_s: np.ndarray | None = None,
) -> Candidates:
    """The full table in O(n). ``edge_scale`` multiplies edge seconds (e.g. a clock ratio).

    ``codec_s[k]``, a wire codec's encode and decode seconds at cut ``k``
    (:mod:`edgesplit.plan.codec_choice`), is part of the communication time.

    A cut is infeasible when the nodes on a side (parameters + outputs) exceed that side's
    memory; the choices in :mod:`.tradeoff` skip infeasible rows.
    """
    if not bandwidth_bps > 0:
        raise InputError(f"bandwidth must be positive, got {bandwidth_bps} bit/s")
    if rtt_s < 0:
        raise InputError(f"rtt must be non-negative, got {rtt_s} s")
    n = inputs.n
    edge = np.zeros(n + 1)
    np.cumsum(inputs.edge_seconds * edge_scale, out=edge[1:])
    cloud = np.zeros(n + 1)
    cloud[:n] = np.cumsum(inputs.cloud_seconds[::-1])[::-1]
    up, down = inputs.up_bytes, inputs.down_bytes
    # eq. 4.3 upload + eq. 3.3 response, only where something is offloaded
    comm = np.where(
        up > 0,
        up * 8.0 / bandwidth_bps + rtt_s / 2.0 + down * 8.0 / bandwidth_bps + rtt_s / 2.0,
        0.0,
    )
    if codec_s is not None:
        comm = comm + np.where(up > 0, codec_s, 0.0)
    latency = edge + comm + cloud
    cost = edge * edge_price_per_s + cloud * cloud_price_per_s
    energy = edge_busy_w * edge + edge_idle_w * (latency - edge) + cloud_busy_w * cloud
    feasible = np.ones(n + 1, dtype=bool)
    if inputs.node_memory is not None and (edge_memory is not None or cloud_memory is not None):
        mem_edge = np.zeros(n + 1)
        np.cumsum(inputs.node_memory, out=mem_edge[1:])
        mem_cloud = mem_edge[-1] - mem_edge
        if edge_memory is not None:
            feasible &= mem_edge <= edge_memory
        if cloud_memory is not None:
            feasible &= mem_cloud <= cloud_memory
    return Candidates(
        model=inputs.model,
        devices=inputs.devices,
        edge_s=edge,
        comm_s=comm,
        cloud_s=cloud,
        latency_s=latency,
        cost=cost,
        energy_j=energy,
        bytes=up,
        feasible=feasible,
        codec_s=None if codec_s is None else np.where(up > 0, codec_s, 0.0),
    )


def problem_table(
    problem: Problem, inputs: TwoTierInputs | None = None, codec_s: np.ndarray | None = None
) -> Candidates:
    """The candidate table of a two-device :class:`Problem` (source = device 0)."""
    inputs = inputs or TwoTierInputs.from_problem(problem)
    link = problem.link(0, 1)
    if link is None:
        a, b = problem.devices
        raise InputError(
            f"no link joins {a!r} and {b!r}: add a {a}–{b} link to the system file, or plan "
            "over devices that are linked (--devices)"
        )
    edge_pm, cloud_pm = problem.power
    return candidate_table(
        inputs,
        bandwidth_bps=link.rate_bps,
        rtt_s=link.rtt,
        edge_price_per_s=problem.price_per_second[0],
        cloud_price_per_s=problem.price_per_second[1],
        edge_busy_w=edge_pm.watts(problem.busy_utilisation[0]) if edge_pm else 0.0,
        edge_idle_w=edge_pm.watts(problem.idle_utilisation[0]) if edge_pm else 0.0,
        cloud_busy_w=cloud_pm.watts(problem.busy_utilisation[1]) if cloud_pm else 0.0,
        edge_memory=problem.memory_bytes[0],
        cloud_memory=problem.memory_bytes[1],
        codec_s=codec_s,
    )
