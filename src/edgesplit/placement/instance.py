"""The k-processor placement instance shared by every placement solver.

The model is the latency setting of Tarnawski et al., "Efficient Algorithms for Device
Placement of DNN Graph Operators" (NeurIPS 2020), which Samadi and Mohammadi build on:
one *host* (their CPU; our user device) and ``A`` accelerators (their FPGAs/GPUs; our edge
servers or the cloud). Each accelerator runs one contiguous subgraph as a single call, and
moving node ``u``'s output between accelerator ``a`` and host memory costs ``cost[a][u]``.
We generalise their identical accelerators to heterogeneous ones (own per-node times, own
transfer costs, own memory), which is what a user device plus several edge servers needs.

Nodes are re-indexed into one topological order at construction (``ids`` keeps the
caller's ids), so every solver may assume ``u < v`` for every edge ``(u, v)``. An
assignment is a tuple with one entry per node: ``HOST`` (0) or ``a + 1`` for accelerator
``a``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from edgesplit.errors import InputError

HOST = 0


@dataclass(frozen=True)
class Instance:
    """A placement instance; validated and topologically ordered on construction.

    ``acc_time[a][v]`` is ``math.inf`` where node ``v`` cannot run on accelerator ``a``.
    ``colour[v]`` names a colour class: nodes sharing one must share a device.
    """

    name: str
    ids: tuple[int, ...]
    edges: tuple[tuple[int, int], ...]
    host_time: tuple[float, ...]
    acc_time: tuple[tuple[float, ...], ...]
    acc_cost: tuple[tuple[float, ...], ...]
    size: tuple[float, ...]
    acc_memory: tuple[float, ...]
    colour: tuple[int, ...]
    identical: bool = False
    device_names: tuple[str, ...] = ()
    succ: tuple[tuple[int, ...], ...] = field(init=False, repr=False, compare=False)
    pred: tuple[tuple[int, ...], ...] = field(init=False, repr=False, compare=False)
    groups: dict[int, tuple[int, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n, k = len(self.ids), len(self.acc_time)
        for label, seq in (("host_time", self.host_time), ("size", self.size)):
            if len(seq) != n:
                raise InputError(f"instance {self.name!r}: {label} has {len(seq)} entries, not {n}")
        if len(self.colour) != n:
            raise InputError(f"instance {self.name!r}: colour has {len(self.colour)} entries")
        if len(self.acc_cost) != k or len(self.acc_memory) != k:
            raise InputError(f"instance {self.name!r}: acc_cost/acc_memory need {k} rows")
        for a in range(k):
            if len(self.acc_time[a]) != n or len(self.acc_cost[a]) != n:
                raise InputError(f"instance {self.name!r}: accelerator {a} rows need {n} entries")
        succ: list[list[int]] = [[] for _ in range(n)]
        pred: list[list[int]] = [[] for _ in range(n)]
        for u, v in self.edges:
            if not (0 <= u < v < n):
                raise InputError(
                    f"instance {self.name!r}: edge ({u}, {v}) is not forward in topological order;"
                    " build instances with Instance.create"
                )
            succ[u].append(v)
            pred[v].append(u)
        if not self.device_names:
            names = ("host", *tuple(f"acc{a}" for a in range(k)))
            object.__setattr__(self, "device_names", names)
        object.__setattr__(self, "succ", tuple(tuple(s) for s in succ))
        object.__setattr__(self, "pred", tuple(tuple(p) for p in pred))
        groups: dict[int, list[int]] = {}
        for v, c in enumerate(self.colour):
            groups.setdefault(c, []).append(v)
        object.__setattr__(self, "groups", {c: tuple(g) for c, g in groups.items()})

    # -- construction ----------------------------------------------------------
    @classmethod
    def create(
        cls,
        name: str,
        ids: Sequence[int],
        edges: Sequence[tuple[int, int]],
        host_time: Sequence[float],
        acc_time: Sequence[Sequence[float]],
        acc_cost: Sequence[Sequence[float]],
        size: Sequence[float],
        acc_memory: Sequence[float],
        colour: Sequence[int] | None = None,
        identical: bool = False,
        device_names: Sequence[str] = (),
    ) -> Instance:
        """Build from per-node lists in any order; ``edges`` use the caller's ``ids``.

        The order chosen keeps each predecessor-free node (a weight, a constant) right before
        its first consumer, so colour classes that tie a weight to its operator stay close
        together in the order; the interval heuristic depends on that. O(n log n + m).
        """
        pos_of = {nid: i for i, nid in enumerate(ids)}
        if len(pos_of) != len(ids):
            raise InputError(f"instance {name!r}: node ids are not unique")
        n = len(ids)
        succ: list[list[int]] = [[] for _ in range(n)]
        indeg = [0] * n
        seen: set[tuple[int, int]] = set()
        for s, d in edges:
            if s not in pos_of or d not in pos_of:
                bad = s if s not in pos_of else d
                raise InputError(f"instance {name!r}: edge names unknown node id {bad}")
            if (s, d) in seen:
                continue
            seen.add((s, d))
            succ[pos_of[s]].append(pos_of[d])
            indeg[pos_of[d]] += 1
        order = _topological(n, succ, indeg, name)
        rank = {old: new for new, old in enumerate(order)}

        def perm(seq: Sequence[float]) -> tuple[float, ...]:
            return tuple(float(seq[old]) for old in order)

        cols = list(colour) if colour is not None else list(range(n))
        return cls(
            name=name,
            ids=tuple(ids[old] for old in order),
            edges=tuple(sorted((rank[pos_of[s]], rank[pos_of[d]]) for s, d in seen)),
            host_time=perm(host_time),
            acc_time=tuple(perm(row) for row in acc_time),
            acc_cost=tuple(perm(row) for row in acc_cost),
            size=perm(size),
            acc_memory=tuple(float(m) for m in acc_memory),
            colour=tuple(int(cols[old]) for old in order),
            identical=identical,
            device_names=tuple(device_names),
        )

    # -- views -----------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def accelerators(self) -> int:
        return len(self.acc_time)

    def colour_classes(self) -> list[list[int]]:
        """Classes with more than one member, each a sorted list of positions."""
        return [list(g) for g in self.groups.values() if len(g) > 1]

    def supported(self, a: int, v: int) -> bool:
        return math.isfinite(self.acc_time[a][v])

    def with_limits(self, accelerators: int | None, memory: float | None) -> Instance:
        """The same graph with another accelerator count or capacity (identical accelerators).

        Used to solve the latency graphs under the expert splits' throughput limits.
        """
        k = self.accelerators if accelerators is None else accelerators
        if k < 0:
            raise InputError(f"accelerator count must be >= 0, not {k}")
        if not self.identical and k != self.accelerators:
            raise InputError("only instances with identical accelerators can change their count")
        if self.identical and self.accelerators:
            acc_time = (self.acc_time[0],) * k
            acc_cost = (self.acc_cost[0],) * k
        else:
            acc_time, acc_cost = self.acc_time[:k], self.acc_cost[:k]
        mem = (float(memory),) * k if memory is not None else self.acc_memory[:1] * k
        names = ("host", *tuple(f"acc{a}" for a in range(k)))
        return Instance(
            self.name,
            self.ids,
            self.edges,
            self.host_time,
            acc_time,
            acc_cost,
            self.size,
            mem,
            self.colour,
            self.identical,
            names,
        )


def _topological(n: int, succ: list[list[int]], indeg: list[int], name: str) -> list[int]:
    """Kahn's algorithm by smallest id, with predecessor-free nodes placed late."""
    indeg = indeg[:]
    sources = [v for v in range(n) if indeg[v] == 0]
    free = {v for v in sources if succ[v]}
    heap = [v for v in sources if v not in free]
    heapq.heapify(heap)
    # A predecessor-free node is emitted only when one of its consumers would otherwise be
    # ready: we release it when its first consumer's other inputs are done.
    waiting: dict[int, list[int]] = {}
    for f in free:
        for d in succ[f]:
            waiting.setdefault(d, []).append(f)
    pending = {d: len(waiting.get(d, [])) for d in range(n)}
    order: list[int] = []
    emitted: set[int] = set()

    def emit(v: int) -> None:
        order.append(v)
        emitted.add(v)
        for d in succ[v]:
            indeg[d] -= 1
            if v in free:
                pending[d] -= 1
            if indeg[d] == 0:
                heapq.heappush(heap, d)
            elif indeg[d] == pending[d]:
                for f in sorted(waiting.get(d, [])):
                    if f not in emitted:
                        emit(f)

    for d in range(n):
        if indeg[d] > 0 and indeg[d] == pending[d]:
            for f in sorted(waiting.get(d, [])):
                if f not in emitted:
                    emit(f)
    while heap:
        emit(heapq.heappop(heap))
    if len(order) != n:
        raise InputError(f"instance {name!r}: the graph has a cycle; placement needs a DAG")
    return order
