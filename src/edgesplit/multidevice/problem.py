"""The multi-device problem of Gao et al. (2019) and its independent schedule evaluator.

N mobile devices share one MEC server. Device ``i`` runs a DNN of ``M_i`` layers
(subtasks, §II-A). A *split* ``k_i`` in ``0..M_i`` runs layers ``[0, k_i)`` locally, sends
the output of layer ``k_i - 1`` (the raw input when ``k_i = 0``) up the device's own
uplink (eq. 3, ``T^t = O / r``) and runs layers ``[k_i, M_i)`` on the server, which
processes one subtask at a time (eq. 9/16). ``k_i = M_i`` is local-only (nothing sent);
``k_i = 0`` is server-only. The objective is the average completion time (eq. 4)
``T = 1/N · Σ_i f_{i,M}``.

Everything a solver decides is ``(splits, server_sequence)``: the split per device and the
order of the server's subtasks ``(device, layer)``. :func:`evaluate` turns that decision
into the earliest ("semi-active") schedule. Since the objective is regular, the earliest
schedule of a given order is optimal for that order, so every solver's answer is
re-evaluated here, and the tests compare solvers by this one function. Complexity
O(Σ_i M_i).

Choices where the paper is silent, written down here once:

* Eq. 11-12 are strict (``s_{i1} < … < s_{iM}``); measured layers such as ``flatten`` take
  ~0 s, so we use ``≤`` (a zero-length subtask may start when its predecessor ends).
* The result's return trip (downlink) is not in the paper's model and is not modelled.
* A device has its own uplink; transmissions of different devices do not interfere.
* The server may interleave subtasks of different devices between layers (eq. 16 constrains
  individual subtasks, not whole tails), so a device's tail may be run in several segments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edgesplit.errors import InputError
from edgesplit.system.link import Link

Subtask = tuple[int, int]


@dataclass(frozen=True)
class DeviceCosts:
    """Per-layer costs of one device (seconds and bytes).

    ``transfer_s[k]`` is the upload time at split ``k`` over the device's ``uplink``:
    ``cut_bytes[k] · 8 / rate`` (eq. 3) plus the link's one-way delay ``rtt / 2`` (Luger
    eq. 4.3; Gao's links have none, ``rtt = 0``), with ``transfer_s[M] = 0``: a local-only
    device sends nothing.
    """

    name: str
    model: str
    layers: tuple[str, ...]
    local_s: tuple[float, ...]
    server_s: tuple[float, ...]
    cut_bytes: tuple[int, ...]
    uplink: Link

    def __post_init__(self) -> None:
        m = len(self.layers)
        if m == 0:
            raise InputError(f"device {self.name!r} has no layers; give it a non-empty model")
        if len(self.local_s) != m or len(self.server_s) != m:
            raise InputError(
                f"device {self.name!r}: {m} layers but {len(self.local_s)} local and "
                f"{len(self.server_s)} server delays; give one delay per layer"
            )
        if len(self.cut_bytes) != m + 1:
            raise InputError(
                f"device {self.name!r}: cut_bytes needs {m + 1} entries (cut 0..{m}), "
                f"got {len(self.cut_bytes)}"
            )
        for label, values in (("local", self.local_s), ("server", self.server_s)):
            bad = [j for j, v in enumerate(values) if not v >= 0]
            if bad:
                raise InputError(
                    f"device {self.name!r}: {label} delay of layer {self.layers[bad[0]]!r} is "
                    f"{values[bad[0]]}; delays must be >= 0 seconds"
                )
        if any(b < 0 for b in self.cut_bytes):
            raise InputError(f"device {self.name!r}: cut_bytes must be >= 0")

    @property
    def m(self) -> int:
        return len(self.layers)

    @property
    def transfer_s(self) -> tuple[float, ...]:
        t = [self.uplink.seconds(b) for b in self.cut_bytes]
        t[-1] = 0.0
        return tuple(t)

    def local_prefix(self, k: int) -> float:
        return float(sum(self.local_s[:k]))

    def server_suffix(self, k: int) -> float:
        return float(sum(self.server_s[k:]))

    def release(self, k: int) -> float:
        """When the server could start this device's first subtask at split ``k``."""
        return self.local_prefix(k) + self.transfer_s[k]


@dataclass(frozen=True)
class MecProblem:
    """One Gao et al. MEC instance: N devices' costs (server delays include the load slowdown)."""

    devices: tuple[DeviceCosts, ...]
    server_load: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.devices:
            raise InputError("the instance has no devices; list at least one under 'devices'")
        names = [d.name for d in self.devices]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise InputError(f"device names must be unique; {sorted(dup)[0]!r} appears twice")

    @property
    def n(self) -> int:
        return len(self.devices)

    def horizon(self) -> float:
        """An upper bound on every finish time of any earliest schedule (the big-M).

        The server is never idle once the last release has passed, so all server work ends
        by ``max_i max_k release_i(k) + Σ_i Σ_j T^s_ij``; local-only work ends by
        ``max_i Σ_j T^l_ij`` which is below the first term.
        """
        last_release = max(max(d.release(k) for k in range(d.m + 1)) for d in self.devices)
        return last_release + sum(sum(d.server_s) for d in self.devices)


@dataclass(frozen=True)
class Segment:
    """A maximal run of consecutive server subtasks of one device: layers ``[first, stop)``."""

    device: int
    first: int
    stop: int
    start_s: float
    finish_s: float


@dataclass(frozen=True)
class DeviceResult:
    name: str
    model: str
    split: int
    split_after: str | None
    local_finish_s: float
    arrival_s: float | None
    completion_s: float
    transmitted_bytes: int


@dataclass(frozen=True)
class Schedule:
    """The evaluated schedule of one decision ``(splits, server_sequence)``."""

    algorithm: str
    devices: tuple[DeviceResult, ...]
    server_sequence: tuple[Subtask, ...]
    segments: tuple[Segment, ...]
    average_s: float
    transmitted_bytes: int
    status: str = "feasible"
    solve_s: float = 0.0
    bound_s: float | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def splits(self) -> tuple[int, ...]:
        return tuple(d.split for d in self.devices)

    @property
    def gap(self) -> float | None:
        """Proven relative gap to the solver's lower bound (0 when proven optimal)."""
        if self.bound_s is None or self.average_s <= 0:
            return None
        return max(0.0, (self.average_s - self.bound_s) / self.average_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "status": self.status,
            "average_s": self.average_s,
            "bound_s": self.bound_s,
            "gap": self.gap,
            "solve_s": self.solve_s,
            "transmitted_bytes": self.transmitted_bytes,
            "devices": [vars(d) for d in self.devices],
            "server_order": [
                {
                    "device": self.devices[s.device].name,
                    "layers": [s.first, s.stop],
                    "start_s": s.start_s,
                    "finish_s": s.finish_s,
                }
                for s in self.segments
            ],
            "meta": self.meta,
        }


def job_sequence(problem: MecProblem, splits: Sequence[int], order: Sequence[int]) -> list[Subtask]:
    """Expand an order of whole tails (non-preemptive) into a subtask sequence."""
    return [(i, j) for i in order for j in range(splits[i], problem.devices[i].m)]


def evaluate(
    problem: MecProblem,
    splits: Sequence[int],
    server_sequence: Sequence[Subtask],
    algorithm: str = "evaluate",
    **extra: Any,
) -> Schedule:
    """Earliest schedule of ``splits`` and ``server_sequence`` (eq. 4-9), O(Σ M_i).

    ``server_sequence`` must list every server subtask ``(i, j)`` with ``j >= splits[i]``
    exactly once, each device's in layer order.
    """
    if len(splits) != problem.n:
        raise InputError(f"{len(splits)} splits given for {problem.n} devices")
    for d, k in zip(problem.devices, splits):
        if not 0 <= k <= d.m:
            raise InputError(f"device {d.name!r}: split {k} outside 0..{d.m}")
    expected = {(i, j) for i, d in enumerate(problem.devices) for j in range(splits[i], d.m)}
    if len(server_sequence) != len(expected) or set(server_sequence) != expected:
        raise InputError("server_sequence must list each server subtask (device, layer) once")
    ready = []
    local_finish = []
    for d, k in zip(problem.devices, splits):
        lf = d.local_prefix(k)
        local_finish.append(lf)
        ready.append(lf + d.transfer_s[k])
    next_layer = list(splits)
    completion = [
        lf if k == d.m else 0.0 for lf, k, d in zip(local_finish, splits, problem.devices)
    ]
    segments: list[Segment] = []
    t = 0.0
    for i, j in server_sequence:
        if j != next_layer[i]:
            raise InputError(f"server_sequence runs layer {j} of device {i} out of order")
        start = max(t, ready[i])
        t = start + problem.devices[i].server_s[j]
        ready[i] = t
        next_layer[i] = j + 1
        if segments and segments[-1].device == i:
            last = segments[-1]
            segments[-1] = Segment(i, last.first, j + 1, last.start_s, t)
        else:
            segments.append(Segment(i, j, j + 1, start, t))
        if j + 1 == problem.devices[i].m:
            completion[i] = t
    results = []
    sent = 0
    for i, (d, k) in enumerate(zip(problem.devices, splits)):
        nbytes = d.cut_bytes[k] if k < d.m else 0
        sent += nbytes
        results.append(
            DeviceResult(
                name=d.name,
                model=d.model,
                split=k,
                split_after=d.layers[k - 1] if k > 0 else None,
                local_finish_s=local_finish[i],
                arrival_s=local_finish[i] + d.transfer_s[k] if k < d.m else None,
                completion_s=completion[i],
                transmitted_bytes=nbytes,
            )
        )
    return Schedule(
        algorithm=algorithm,
        devices=tuple(results),
        server_sequence=tuple(server_sequence),
        segments=tuple(segments),
        average_s=sum(completion) / problem.n,
        transmitted_bytes=sent,
        **extra,
    )


def sequence_from_starts(starts: dict[Subtask, tuple[float, float]]) -> list[Subtask]:
    """Order server subtasks by the midpoints of a solver's (start, finish) intervals.

    On one server the intervals do not overlap, so midpoints order them as starts do; but
    a solver's floats carry noise (HiGHS: a zero-length subtask at 7.000000000000001 beside
    one starting at 7.0), and ordering by raw starts would put the zero-length one second
    and re-evaluate to a worse schedule than the solver found. Each device's subtasks then
    keep layer order in the places they hold.
    """
    order = sorted(starts, key=lambda st: (sum(starts[st]) / 2, st[0], st[1]))
    layers: dict[int, list[int]] = {}
    for i, j in order:
        layers.setdefault(i, []).append(j)
    queues = {i: iter(sorted(js)) for i, js in layers.items()}
    return [(i, next(queues[i])) for i, _ in order]
