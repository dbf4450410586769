"""The ``Problem``: everything a planner needs, in one immutable record.

A problem is a traced :class:`~edgesplit.graph.types.Graph` plus, for ``k`` ordered
devices, the seconds each device needs for each node (``seconds[d, i]``; ``inf`` means
node ``i`` cannot run on device ``d``), each device's memory capacity, the links between
device pairs, each device's billing rate and power model, the device that holds the input
and must receive the output (``source``), and the objective.

Cost semantics, shared by every solver and by the evaluator (:mod:`edgesplit.plan.evaluate`),
for one request:

* compute: device ``d`` is busy for ``sum(seconds[d, i] for i assigned to d)``;
* communication, ``comm="message"`` (Luger, default): every tensor is sent once from its
  producer's device (the ``source`` for model inputs) to each other device that reads it,
  and model outputs go back to ``source``. All tensors between one ordered device pair
  form one message, priced by Luger eq. 4.3: ``bytes·8/bandwidth + rtt/2``. For a
  two-tier split this is eq. 4.3 for the upload plus the eq. 3.3 response leg;
* communication, ``comm="tensor"`` (Tarnawski et al. 2020, the model Samadi and
  Mohammadi build on): the ``source`` is the *host* and every other device exchanges
  data through its memory. A tensor whose readers (``source`` for model outputs) are not
  all on its producer's device costs ``tensor_seconds[d, t]`` for every non-source device
  ``d`` whose boundary it crosses (leaving the producer's device, entering a reader's),
  once per device. By default ``tensor_seconds[d, t]`` is eq. 4.3 for ``t`` alone over
  the ``source``–``d`` link; Tarnawski files give it directly;
* ``semantics="sequential"`` (default): latency = total compute + total communication
  (no overlap within one request);
* ``semantics="critical"`` (Tarnawski, needs ``comm="tensor"``): source nodes run as soon
  as their inputs are ready, with unbounded parallelism; every other device runs its nodes
  as one call that starts when all its outside inputs are ready and lasts its busy
  seconds plus the transfers charged to it; latency is the largest ready time;
* ``contiguous`` (default): every device that runs its nodes as one part (all devices for
  ``comm="message"``, all but the host for ``comm="tensor"``) holds a contiguous set: no
  path leaves it and comes back. ``colour`` classes (Tarnawski's ``colorClass``) must
  share a device;
* cost (Luger eq. 4.4) = sum over devices of busy seconds × price per second (0 for an
  owned edge server, so "own" bills only the cloud);
* energy = busy seconds × power at ``busy_utilisation`` for every device with a power
  model, plus the source device's power at ``idle_utilisation`` while it waits;
* memory: parameters plus output bytes of the nodes on a device must fit its capacity.

Build one with :meth:`Problem.from_system` (from a system file and profiles/predictors),
or :meth:`Problem.two_tier` (edge/cloud seconds and one link). Complexity of building:
O(k·n) plus the predictors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Literal

import numpy as np

from edgesplit.errors import InputError
from edgesplit.graph.types import Graph
from edgesplit.system.link import Link
from edgesplit.system.power import PowerModel

if TYPE_CHECKING:
    from edgesplit.system.model import System

Objective = Literal["latency", "cost", "energy", "weighted"]
OBJECTIVES: tuple[str, ...] = ("latency", "cost", "energy", "weighted")
Semantics = Literal["sequential", "critical"]
SEMANTICS: tuple[str, ...] = ("sequential", "critical")
Comm = Literal["message", "tensor"]
COMMS: tuple[str, ...] = ("message", "tensor")


@dataclass(frozen=True)
class Structure:
    """Index form of a graph's data flow, built once per problem. O(n + |tensors|)."""

    succ: tuple[tuple[int, ...], ...]
    pred: tuple[tuple[int, ...], ...]
    producer: tuple[int, ...]  # per tensor: node index, -1 for a model input
    consumers: tuple[tuple[int, ...], ...]
    is_output: tuple[bool, ...]
    node_tensors: tuple[tuple[int, ...], ...]  # per node: the tensors it produces

    @classmethod
    def of(cls, graph: Graph) -> Structure:
        n = len(graph.nodes)
        succ: list[set[int]] = [set() for _ in range(n)]
        pred: list[set[int]] = [set() for _ in range(n)]
        producer, consumers, outputs = [], [], []
        made: list[list[int]] = [[] for _ in range(n)]
        for j, t in enumerate(graph.tensors):
            p = -1 if t.producer is None else graph.index(t.producer)
            cs = tuple(graph.index(c) for c in t.consumers)
            producer.append(p)
            consumers.append(cs)
            outputs.append(bool(t.is_output))
            if p >= 0:
                made[p].append(j)
                for c in cs:
                    if c != p:
                        succ[p].add(c)
                        pred[c].add(p)
        return cls(
            succ=tuple(tuple(sorted(s)) for s in succ),
            pred=tuple(tuple(sorted(p)) for p in pred),
            producer=tuple(producer),
            consumers=tuple(consumers),
            is_output=tuple(outputs),
            node_tensors=tuple(tuple(m) for m in made),
        )

    @cached_property
    def edges(self) -> list[tuple[int, int]]:
        """Producer -> consumer node pairs, each once, sorted."""
        return [(u, v) for u, vs in enumerate(self.succ) for v in vs]


@dataclass(frozen=True, eq=False)
class Problem:
    """A planning problem over ``graph`` and ``devices`` (see the module docstring)."""

    graph: Graph
    devices: tuple[str, ...]
    seconds: np.ndarray
    links: Mapping[frozenset[int], Link]
    price_per_second: tuple[float, ...]
    memory_bytes: tuple[float | None, ...] = ()
    power: tuple[PowerModel | None, ...] = ()
    busy_utilisation: tuple[float, ...] = ()
    idle_utilisation: tuple[float, ...] = ()
    tiers: tuple[str, ...] = ()
    source: int = 0
    objective: Objective = "latency"
    weight: float = 0.5
    latency_scale: float = 1.0
    cost_scale: float = 1.0
    semantics: Semantics = "sequential"
    comm: Comm = "message"
    contiguous: bool = True
    colour: tuple[int, ...] = ()
    tensor_seconds: np.ndarray | None = None
    meta: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        k, n = len(self.devices), len(self.graph.nodes)
        secs = np.asarray(self.seconds, dtype=float)
        if secs.shape != (k, n):
            raise InputError(
                f"seconds has shape {secs.shape}; expected (devices={k}, nodes={n}) for "
                f"{self.graph.name!r}"
            )
        if np.isnan(secs).any() or (secs < 0).any():
            bad = np.argwhere(np.isnan(secs) | (secs < 0))[0]
            raise InputError(
                f"seconds of node {self.graph.nodes[bad[1]].name!r} on device "
                f"{self.devices[bad[0]]!r} is {secs[bad[0], bad[1]]}; use a value >= 0 or inf"
            )
        secs.setflags(write=False)
        object.__setattr__(self, "seconds", secs)
        defaults = {
            "memory_bytes": (None,) * k,
            "power": (None,) * k,
            "busy_utilisation": (1.0,) * k,
            "idle_utilisation": (0.0,) * k,
            "tiers": ("edge",) * k,
        }
        for name, default in defaults.items():
            if not getattr(self, name):
                object.__setattr__(self, name, default)
        for name in ("price_per_second", *defaults):
            if len(getattr(self, name)) != k:
                raise InputError(f"Problem.{name} needs one entry per device ({k})")
        if len(set(self.devices)) != k:
            raise InputError(f"device names must be unique: {self.devices}")
        if not 0 <= self.source < k:
            raise InputError(f"source device index {self.source} is out of range 0..{k - 1}")
        if self.objective not in OBJECTIVES:
            raise InputError(f"objective must be one of {', '.join(OBJECTIVES)}")
        if not 0.0 <= self.weight <= 1.0:
            raise InputError(f"--weight must lie in [0, 1], not {self.weight}")
        self._check_placement_fields()

    def _check_placement_fields(self) -> None:
        k, n = len(self.devices), len(self.graph.nodes)
        if self.semantics not in SEMANTICS:
            raise InputError(f"semantics must be one of {', '.join(SEMANTICS)}")
        if self.comm not in COMMS:
            raise InputError(f"comm must be one of {', '.join(COMMS)}")
        if self.semantics == "critical" and self.comm != "tensor":
            raise InputError(
                "critical-path semantics is Tarnawski's host model; use comm='tensor' with it"
            )
        if not self.colour:
            object.__setattr__(self, "colour", tuple(range(n)))
        if len(self.colour) != n:
            raise InputError(f"colour needs one class per node ({n}), not {len(self.colour)}")
        if self.comm != "tensor":
            object.__setattr__(self, "tensor_seconds", None)
            return
        ts = self.tensor_seconds
        if ts is None:
            ts = self._derived_tensor_seconds()
        ts = np.array(ts, dtype=float)
        if ts.shape != (k, len(self.graph.tensors)):
            raise InputError(
                f"tensor_seconds has shape {ts.shape}; expected "
                f"(devices={k}, tensors={len(self.graph.tensors)})"
            )
        if np.isnan(ts).any() or (ts < 0).any():
            raise InputError("tensor_seconds must be >= 0 (inf: no link)")
        ts[self.source] = 0.0
        ts.setflags(write=False)
        object.__setattr__(self, "tensor_seconds", ts)

    def _derived_tensor_seconds(self) -> np.ndarray:
        """Eq. 4.3 for each tensor alone over the source–device link (``inf``: no link)."""
        out = np.zeros((len(self.devices), len(self.graph.tensors)))
        for d in range(len(self.devices)):
            if d == self.source:
                continue
            link = self.link(self.source, d)
            for j, t in enumerate(self.graph.tensors):
                out[d, j] = math.inf if link is None else link.seconds(float(t.nbytes))
        return out

    # -- sizes ----------------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        return len(self.graph.nodes)

    @property
    def n_devices(self) -> int:
        return len(self.devices)

    def device_index(self, name: str) -> int:
        try:
            return self.devices.index(name)
        except ValueError:
            raise InputError(
                f"problem has no device {name!r}; devices: {', '.join(self.devices)}"
            ) from None

    # -- costs ----------------------------------------------------------------------
    def link(self, a: int, b: int) -> Link | None:
        return self.links.get(frozenset((a, b)))

    def transfer_seconds(self, src: int, dst: int, nbytes: float) -> float:
        """Seconds for one message of ``nbytes`` from device ``src`` to ``dst``.

        0 on the same device or for an empty message, ``inf`` when no link joins them.
        """
        if src == dst or nbytes <= 0:
            return 0.0
        link = self.link(src, dst)
        return math.inf if link is None else link.seconds(nbytes)

    @cached_property
    def structure(self) -> Structure:
        return Structure.of(self.graph)

    def colour_classes(self) -> list[list[int]]:
        """Colour classes with more than one member, each a sorted list of node indices."""
        return [list(g) for g in self._colour_classes]

    @cached_property
    def _colour_classes(self) -> tuple[tuple[int, ...], ...]:
        groups: dict[int, list[int]] = {}
        for v, c in enumerate(self.colour):
            groups.setdefault(c, []).append(v)
        return tuple(tuple(g) for g in groups.values() if len(g) > 1)

    @cached_property
    def seconds_rows(self) -> list[list[float]]:
        """``seconds`` as Python lists (per-node reads in the evaluator's loops)."""
        rows: list[list[float]] = self.seconds.tolist()
        return rows

    @cached_property
    def tensor_rows(self) -> list[list[float]]:
        """``tensor_seconds`` as Python lists (empty under ``comm="message"``)."""
        if self.tensor_seconds is None:
            return []
        rows: list[list[float]] = self.tensor_seconds.tolist()
        return rows

    @property
    def hub(self) -> int | None:
        """Tarnawski's host (the source, under ``comm="tensor"``): no contiguity, no call."""
        return self.source if self.comm == "tensor" else None

    @property
    def identical_servers(self) -> bool:
        """Whether the non-source devices are interchangeable (Tarnawski's identical FPGAs).

        Only under ``comm="tensor"``, where devices meet only through the host; used by
        solvers to break symmetry.
        """
        others = [d for d in range(self.n_devices) if d != self.source]
        if self.comm != "tensor" or len(others) < 2:
            return False
        assert self.tensor_seconds is not None
        first = others[0]

        def same(d: int) -> bool:
            return (
                np.array_equal(self.seconds[d], self.seconds[first])
                and np.array_equal(self.tensor_seconds[d], self.tensor_seconds[first])  # type: ignore[index]
                and self.memory_bytes[d] == self.memory_bytes[first]
                and self.price_per_second[d] == self.price_per_second[first]
                and self.power[d] == self.power[first]
                and self.busy_utilisation[d] == self.busy_utilisation[first]
            )

        return all(same(d) for d in others[1:])

    @cached_property
    def node_memory_bytes(self) -> np.ndarray:
        """Parameter bytes plus output bytes per node (what a device must hold)."""
        out = np.array([n.param_bytes + n.output_bytes for n in self.graph.nodes], dtype=float)
        out.setflags(write=False)
        return out

    @cached_property
    def node_memory_list(self) -> list[float]:
        rows: list[float] = self.node_memory_bytes.tolist()
        return rows

    def objective_value(self, latency_s: float, cost: float, energy_j: float) -> float:
        """The scalar a solver minimises; ``weighted`` is (1−w)·L/L₀ + w·C/C₀."""
        if self.objective == "latency":
            return latency_s
        if self.objective == "cost":
            return cost
        if self.objective == "energy":
            return energy_j
        return (1.0 - self.weight) * latency_s / self.latency_scale + self.weight * (
            cost / self.cost_scale
        )

    # -- variants (for re-planning) --------------------------------------------------
    def with_link(self, a: int, b: int, *, bandwidth_bps: float, rtt_s: float) -> Problem:
        """A copy with the link between devices ``a`` and ``b`` replaced."""
        links = dict(self.links)
        links[frozenset((a, b))] = Link.of(bandwidth_bps, rtt_s)
        return replace(self, links=links, tensor_seconds=None)

    def with_seconds(self, seconds: np.ndarray) -> Problem:
        return replace(self, seconds=np.array(seconds, dtype=float))

    def with_objective(self, objective: Objective, weight: float | None = None) -> Problem:
        return replace(self, objective=objective, weight=self.weight if weight is None else weight)

    def with_rules(
        self,
        *,
        semantics: Semantics | None = None,
        comm: Comm | None = None,
        contiguous: bool | None = None,
    ) -> Problem:
        """A copy under other placement rules; per-tensor costs are re-derived from links
        unless the problem keeps ``comm="tensor"`` (then its own costs stay)."""
        new_comm = self.comm if comm is None else comm
        return replace(
            self,
            semantics=self.semantics if semantics is None else semantics,
            comm=new_comm,
            contiguous=self.contiguous if contiguous is None else contiguous,
            tensor_seconds=self.tensor_seconds if new_comm == self.comm else None,
        )

    # -- constructors ---------------------------------------------------------------
    @classmethod
    def two_tier(
        cls,
        graph: Graph,
        edge_seconds: Sequence[float],
        cloud_seconds: Sequence[float],
        *,
        bandwidth_bps: float,
        rtt_s: float,
        edge_price_per_hour: float = 0.0,
        cloud_price_per_hour: float = 0.0,
        edge_power: PowerModel | None = None,
        devices: tuple[str, str] = ("edge", "cloud"),
        objective: Objective = "latency",
        weight: float = 0.5,
    ) -> Problem:
        """Luger's setting: the edge holds the input, the cloud runs the rest."""
        return cls(
            graph=graph,
            devices=devices,
            seconds=np.array([list(edge_seconds), list(cloud_seconds)], dtype=float),
            links={frozenset((0, 1)): Link.of(bandwidth_bps, rtt_s)},
            price_per_second=(edge_price_per_hour / 3600.0, cloud_price_per_hour / 3600.0),
            power=(edge_power, None),
            tiers=("edge", "cloud"),
            objective=objective,
            weight=weight,
        )

    @classmethod
    def from_system(
        cls,
        system: System,
        graph: Graph,
        *,
        devices: Sequence[str] | None = None,
        seconds: Mapping[str, Sequence[float]] | None = None,
        strategy: str | None = None,
        source: str | None = None,
        objective: Objective = "latency",
        weight: float = 0.5,
    ) -> Problem:
        """Build a problem from a :class:`~edgesplit.system.System`.

        ``devices`` orders (and may subset) the system's devices; by default all, in file
        order. ``seconds`` gives per-node seconds for some devices directly; the others
        come from their ``compute`` spec (profile, predictor, or another device scaled).
        ``strategy`` is Luger's own/rent switch for edge servers. ``source`` (default: the
        first device of the lowest tier) holds the input and receives the output.
        """
        from edgesplit.predict.device_seconds import device_seconds

        names = tuple(devices) if devices is not None else system.names
        for name in names:
            system.device(name)
        given = {k: [float(v) for v in vals] for k, vals in (seconds or {}).items()}
        table = device_seconds(system, graph, names, given)
        links = {}
        for i, a in enumerate(names):
            for j in range(i + 1, len(names)):
                link = system.link(a, names[j])
                if link is not None:
                    links[frozenset((i, j))] = link
        devs = [system.device(n) for n in names]
        if source is None:
            order = {"device": 0, "edge": 1, "cloud": 2}
            src = min(range(len(devs)), key=lambda i: (order[devs[i].tier], i))
        else:
            src = names.index(system.device(source).name) if source in names else -1
            if src < 0:
                raise InputError(f"source device {source!r} is not among the planned devices")
        return cls(
            graph=graph,
            devices=names,
            seconds=np.array([table[n] for n in names], dtype=float),
            links=links,
            price_per_second=tuple(system.price_per_hour(n, strategy) / 3600.0 for n in names),
            memory_bytes=tuple(d.memory for d in devs),
            power=tuple(d.power for d in devs),
            busy_utilisation=tuple(d.busy_utilisation for d in devs),
            idle_utilisation=tuple(d.idle_utilisation for d in devs),
            tiers=tuple(d.tier for d in devs),
            source=src,
            objective=objective,
            weight=weight,
            meta={"strategy": strategy or "default", "currency": system.prices.currency},
        )
