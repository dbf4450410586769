"""The independent evaluator: recompute a plan's figures from its assignment alone.

It follows the cost semantics written in :mod:`edgesplit.plan.problem` directly, tensor
by tensor and message by message, sharing no code with any solver, so the tests can use
it as the oracle for every planner. O(n + |tensors|·k).
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
    """Predicted figures of one assignment."""

    latency_s: float
    compute_s: tuple[float, ...]
    comm_s: float
    cost: float
    energy_j: float
    memory_ok: bool
    objective_value: float

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


def messages(problem: Problem, assignment: Sequence[int]) -> dict[tuple[int, int], int]:
    """Bytes sent per ordered device pair: each tensor once to each other reading device."""
    g = problem.graph
    if len(assignment) != len(g.nodes):
        raise InputError(f"assignment has {len(assignment)} entries; graph has {len(g.nodes)}")
    where = {n.name: assignment[n.index] for n in g.nodes}
    sent: dict[tuple[int, int], int] = defaultdict(int)
    for t in g.tensors:
        src = problem.source if t.producer is None else where[t.producer]
        readers = {where[c] for c in t.consumers}
        if t.is_output:
            readers.add(problem.source)
        for dst in readers - {src}:
            sent[(src, dst)] += t.nbytes
    return dict(sent)


def evaluate(problem: Problem, assignment: Sequence[int]) -> Evaluation:
    """Latency, cost, energy and memory feasibility of ``assignment`` on ``problem``."""
    k = problem.n_devices
    busy = [0.0] * k
    mem = [0.0] * k
    node_mem = problem.node_memory_bytes
    for i, d in enumerate(assignment):
        if not 0 <= d < k:
            raise InputError(f"assignment puts node {i} on device {d}; devices are 0..{k - 1}")
        busy[d] += float(problem.seconds[d, i])
        mem[d] += float(node_mem[i])
    comm = 0.0
    for (src, dst), nbytes in messages(problem, assignment).items():
        comm += problem.transfer_seconds(src, dst, nbytes)
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
    memory_ok = all(cap is None or used <= cap for used, cap in zip(mem, problem.memory_bytes))
    return Evaluation(
        latency_s=latency,
        compute_s=tuple(busy),
        comm_s=comm,
        cost=cost,
        energy_j=energy,
        memory_ok=memory_ok,
        objective_value=problem.objective_value(latency, cost, energy),
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
