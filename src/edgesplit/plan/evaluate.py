"""The evaluator: a plan's figures recomputed from its assignment alone.

It follows the cost semantics written in :mod:`edgesplit.plan.problem` directly, tensor
by tensor and message by message, and shares no code with any solver: every solver
scores its candidates with it, and the tests check it in turn against an evaluator of
their own. Rules (:func:`violations`): every node on a device that can run it, memory
within capacity, a link wherever data crosses between devices (:func:`unlinked`), colour
classes on one device, contiguous device sets when the problem asks for them.
Critical-path latency (Tarnawski et al. 2020) is the longest path through the quotient
graph of host nodes and one unit per device call. O(n + |tensors|·k).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from edgesplit.errors import InputError
from edgesplit.plan.problem import Problem
from edgesplit.plan.types import Plan


@dataclass(frozen=True)
class Evaluation:
    """Predicted figures of one assignment; ``problems`` lists every broken rule."""

    latency_s: float
    compute_s: tuple[float, ...]
    comm_s: float
    cost: float
    energy_j: float
    memory_ok: bool
    objective_value: float
    problems: tuple[str, ...] = ()
    calls: tuple[float, ...] = ()

    @property
    def feasible(self) -> bool:
        return not self.problems

    @property
    def score(self) -> float:
        """The objective value, ``inf`` when a rule is broken: what solvers minimise."""
        return self.objective_value if self.feasible else math.inf

    def as_predicted(self, devices: Sequence[str]) -> dict[str, float]:
        doc = {
            "latency_s": self.latency_s,
            "compute_s": sum(self.compute_s),
            "comm_s": self.comm_s,
            "cost": self.cost,
            "energy_j": self.energy_j,
            "objective_value": self.objective_value,
        }
        doc.update({f"compute_s:{d}": s for d, s in zip(devices, self.compute_s)})
        return doc


def _check(problem: Problem, assignment: Sequence[int]) -> None:
    n, k = problem.n_nodes, problem.n_devices
    if len(assignment) != n:
        raise InputError(f"assignment has {len(assignment)} entries; graph has {n} nodes")
    for i, d in enumerate(assignment):
        if not 0 <= d < k:
            raise InputError(f"assignment puts node {i} on device {d}; devices are 0..{k - 1}")


def messages(problem: Problem, assignment: Sequence[int]) -> dict[tuple[int, int], int]:
    """Bytes sent per ordered device pair: each tensor once to each other reading device."""
    st, src = problem.structure, problem.source
    sent: dict[tuple[int, int], int] = defaultdict(int)
    for j, t in enumerate(problem.graph.tensors):
        p = src if st.producer[j] < 0 else assignment[st.producer[j]]
        readers = {assignment[c] for c in st.consumers[j]}
        if st.is_output[j]:
            readers.add(src)
        for dst in readers - {p}:
            sent[(p, dst)] += t.nbytes
    return dict(sent)


def tensor_charges(problem: Problem, assignment: Sequence[int]) -> list[float]:
    """Per device: the per-tensor transfers charged to it (``comm="tensor"``)."""
    st, src, ts = problem.structure, problem.source, problem.tensor_rows
    charged = [0.0] * problem.n_devices
    for j in range(len(st.producer)):
        p = src if st.producer[j] < 0 else assignment[st.producer[j]]
        readers = {assignment[c] for c in st.consumers[j]}
        if st.is_output[j]:
            readers.add(src)
        others = readers - {p}
        if not others:
            continue
        for d in others | {p}:
            if d != src:
                charged[d] += ts[d][j]
    return charged


def over_memory(problem: Problem, assignment: Sequence[int]) -> list[int]:
    """Devices whose nodes' parameters and outputs exceed their memory."""
    mem = [0.0] * problem.n_devices
    node_mem = problem.node_memory_list
    for v, d in enumerate(assignment):
        mem[d] += node_mem[v]
    return [
        d
        for d, (used, cap) in enumerate(zip(mem, problem.memory_bytes))
        if cap is not None and used > cap * (1 + 1e-9)
    ]


def unlinked(problem: Problem, assignment: Sequence[int]) -> list[tuple[int, int]]:
    """Device pairs ``(a, b)``, ``a < b``, the assignment sends data between (either way)
    with no link joining them.

    Under ``comm="tensor"`` every transfer goes over the source–device link, so a device
    charged an infinite transfer is unlinked from the source. Without this rule an
    unlinked pair priced ``inf`` seconds would pass as a feasible plan of infinite
    latency (and, under the energy objective, of zero energy).
    """
    if problem.comm == "tensor":
        charged = tensor_charges(problem, assignment)
        return [(problem.source, d) for d, c in enumerate(charged) if math.isinf(c)]
    sent = messages(problem, assignment)
    pairs = {(min(p), max(p)) for p, nbytes in sent.items() if nbytes > 0}  # links: both ways
    return sorted(p for p in pairs if problem.link(*p) is None)


def violations(problem: Problem, assignment: Sequence[int]) -> list[str]:
    """Every broken rule of ``assignment``, one line each, naming nodes and devices."""
    _check(problem, assignment)
    g, names = problem.graph, problem.devices
    out: list[str] = []
    unsupported: dict[int, list[str]] = {}
    secs = problem.seconds_rows
    for v, d in enumerate(assignment):
        if secs[d][v] == math.inf:
            unsupported.setdefault(d, []).append(g.nodes[v].name)
    for d, bad in sorted(unsupported.items()):
        out.append(f"{names[d]}: nodes {bad[:5]} cannot run there")
    for d in over_memory(problem, assignment):
        out.append(f"{names[d]}: its nodes exceed its {problem.memory_bytes[d]:.6g} bytes")
    for a, b in unlinked(problem, assignment):
        out.append(
            f"no link joins {names[a]!r} and {names[b]!r}, yet the assignment sends data "
            f"between them: add a {names[a]}–{names[b]} link to the system file, or keep "
            "those nodes on linked devices"
        )
    if problem.contiguous:
        hub = problem.hub
        succ = problem.structure.succ
        left = [0] * problem.n_nodes
        reported: set[int] = set()
        for u in range(problem.n_nodes):  # graph nodes are in topological order
            du = assignment[u]
            bound = du != hub
            if bound and left[u] >> du & 1 and du not in reported:
                reported.add(du)
                out.append(
                    f"{names[du]}: its nodes are not contiguous (node {g.nodes[u].name!r} is "
                    "reached again after leaving it)"
                )
            for v in succ[u]:
                bits = left[u]
                if bound and assignment[v] != du:
                    bits |= 1 << du
                left[v] |= bits
    for cls in problem.colour_classes():
        devices = {assignment[v] for v in cls}
        if len(devices) > 1:
            out.append(
                f"colour class of node {g.nodes[cls[0]].name!r} is split over devices "
                f"{sorted(names[d] for d in devices)}"
            )
    return out


def critical_path(problem: Problem, assignment: Sequence[int], calls: Sequence[float]) -> float:
    """Largest ready time over host nodes and one unit per device call; ``inf`` on a cycle.

    Kahn's algorithm over the quotient graph, pushing finish times to successors.
    """
    n, k, hub = problem.n_nodes, problem.n_devices, problem.source
    unit = [v if d == hub else n + d for v, d in enumerate(assignment)]
    size = n + k
    succs: list[list[int]] = [[] for _ in range(size)]
    indeg = [0] * size
    seen: set[int] = set()
    for u, v in problem.structure.edges:
        a, b = unit[u], unit[v]
        if a != b and a * size + b not in seen:
            seen.add(a * size + b)
            succs[a].append(b)
            indeg[b] += 1
    duration = [*problem.seconds_rows[hub], *calls]
    start = [0.0] * size
    ready = [0.0] * size
    stack = [x for x in range(size) if indeg[x] == 0]
    done = 0
    while stack:
        x = stack.pop()
        done += 1
        ready[x] = finish = start[x] + duration[x]
        for y in succs[x]:
            if finish > start[y]:
                start[y] = finish
            indeg[y] -= 1
            if indeg[y] == 0:
                stack.append(y)
    if done != size:
        return math.inf
    return max((ready[x] for x in set(unit)), default=0.0)


def score(problem: Problem, assignment: Sequence[int]) -> float:
    """What solvers minimise: the objective value, ``inf`` as soon as a rule is broken
    (without computing the figures of an infeasible assignment)."""
    problems = violations(problem, assignment)
    return math.inf if problems else _evaluate(problem, assignment, problems).score


def evaluate(problem: Problem, assignment: Sequence[int]) -> Evaluation:
    """Latency, cost, energy and every broken rule of ``assignment`` on ``problem``."""
    return _evaluate(problem, assignment, violations(problem, assignment))


def _evaluate(problem: Problem, assignment: Sequence[int], problems: list[str]) -> Evaluation:
    k = problem.n_devices
    busy = [0.0] * k
    secs = problem.seconds_rows
    for i, d in enumerate(assignment):
        busy[d] += secs[d][i]
    calls: tuple[float, ...] = ()
    if problem.comm == "tensor":
        charged = tensor_charges(problem, assignment)
        comm = sum(charged)
        calls = tuple(
            b + c if d != problem.source else 0.0 for d, (b, c) in enumerate(zip(busy, charged))
        )
    else:
        comm = 0.0
        for (src, dst), nbytes in messages(problem, assignment).items():
            comm += problem.transfer_seconds(src, dst, nbytes)
    if problem.semantics == "critical":
        latency = critical_path(problem, assignment, calls)
        if math.isinf(latency) and math.isfinite(sum(busy) + comm):
            problems.append("device calls depend on each other in a cycle")
    else:
        latency = sum(busy) + comm
    cost = sum(b * p for b, p in zip(busy, problem.price_per_second))
    energy = 0.0
    for d in range(k):
        pm = problem.power[d]
        if pm is None:
            continue
        energy += pm.watts(problem.busy_utilisation[d]) * busy[d]
        if d == problem.source and math.isfinite(latency):
            energy += pm.watts(problem.idle_utilisation[d]) * (latency - busy[d])
    return Evaluation(
        latency_s=latency,
        compute_s=tuple(busy),
        comm_s=comm,
        cost=cost,
        energy_j=energy,
        memory_ok=not problems or not over_memory(problem, assignment),
        objective_value=problem.objective_value(latency, cost, energy),
        problems=tuple(problems),
        calls=calls,
    )


def check_plan(problem: Problem, plan: Plan, rel_tol: float = 1e-9) -> Evaluation:
    """Re-evaluate ``plan`` and raise if its predicted figures disagree with the evaluator."""
    if tuple(plan.devices) != problem.devices:
        raise InputError(f"plan devices {plan.devices} differ from problem's {problem.devices}")
    ev = evaluate(problem, plan.assignment)
    for key, value in ev.as_predicted(problem.devices).items():
        if key == "objective_value" or key not in plan.predicted:
            continue
        mine = plan.predicted[key]
        if not math.isclose(mine, value, rel_tol=rel_tol, abs_tol=1e-15):
            raise InputError(
                f"plan {plan.algorithm!r} predicts {key}={mine!r}; the evaluator finds {value!r}"
            )
    return ev
