"""Early-exit inference that really runs across agent (mobile), edge and cloud processes.

The plan's tier per layer is turned into *parts* by the project's one splitter,
:func:`edgesplit.graph.partition.partition`: walking exits 1..P, each trunk segment and
each side branch is cut into maximal runs of layers on one tier, and every run is a part.
Exit ``k`` needs only the trunk parts of segments ``1..k`` and the parts of side branch
``k``, so nothing past the exit is computed or sent. Each part runs exactly the original
fx ops on the original values, hence the exit's logits are ``torch.equal`` to
:meth:`BranchyNet.forward_exit`.

Topology follows eq. 4.5: the agent talks only to the edge server (wireless hop); the edge
server forwards cloud parts to the cloud server (wired hop) and hands the results back, so
mobile-cloud traffic crosses both links and the result returns to the mobile device.
Messages are the runtime's wire format, safetensors bodies
(:mod:`edgesplit.runtime.wire`), on ``POST /v1/earlyexit`` with headers ``x-parts``
(part indices to run, in order) and ``x-return`` (tensor names to answer). Only tensors
the receiving parts read are sent, and only those the caller still needs come back.

Exit choice: by a known requirement (the shallowest exit whose accuracy meets it, as in
eq. 4.8), by a fixed exit, or by entropy (BranchyNet: exit ``k`` fires when the entropy of
its softmax is below ``T_k``; stage by stage, stopping at the first that fires).
Per request the work is O(parts of the exit's chain) plus the tensors' bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.fx as fx

from edgesplit.earlyexit.problem import CLOUD, EDGE, MOBILE, TIER_NAMES, EarlyExitProblem
from edgesplit.errors import InputError, TransportError
from edgesplit.graph.partition import SplitModel, partition
from edgesplit.graph.types import Graph
from edgesplit.models.branchy import entropy

Values = dict[str, torch.Tensor]
#: send(tier, part indices, names to return, tensors) -> returned tensors
Send = Callable[[int, Sequence[int], Sequence[str], Mapping[str, torch.Tensor]], Values]


@dataclass(frozen=True)
class PartInfo:
    """Where a part sits: exit stage ``stage`` (1-based), ``arm`` trunk/branch, its tier."""

    stage: int
    arm: str
    tier: int


class EarlyExitExecutor:
    """The parts of one early-exit plan over the traced BranchyNet ``graph``."""

    def __init__(self, graph: Graph, problem: EarlyExitProblem, genes: Sequence[int]) -> None:
        tiers = problem.graph_assignment(genes, len(graph.nodes))
        part_of = [0] * len(graph.nodes)
        infos: list[PartInfo] = []
        for k in range(1, problem.n_exits + 1):
            arms = [("trunk", problem.trunk[k - 1])]
            if k < problem.n_exits:
                arms.append(("branch", problem.branches[k - 1]))
            for arm, genes_of_arm in arms:
                last = None
                for gene in genes_of_arm:
                    node = problem.layers[gene].node_index
                    if last != tiers[node]:
                        infos.append(PartInfo(k, arm, tiers[node]))
                        last = tiers[node]
                    part_of[node] = len(infos) - 1
        self.graph = graph
        self.problem = problem
        self.split: SplitModel = partition(graph, part_of)
        self.parts = {p.index: p for p in self.split.parts}
        self.info = {p.index: infos[p.index] for p in self.split.parts}
        out_node = next(n for n in graph.module.graph.nodes if n.op == "output")
        self.exit_names: tuple[str, ...] = tuple(
            a.name for a in out_node.args[0] if isinstance(a, fx.Node)
        )

    def stage_parts(self, k: int, with_branch: bool) -> list[int]:
        """Part indices of trunk segment ``k`` (and side branch ``k``), in data-flow order."""
        order = [p.index for p in self.split.parts]
        return [
            i
            for i in order
            if self.info[i].stage == k and (self.info[i].arm == "trunk" or with_branch)
        ]

    def exit_parts(self, k: int) -> list[int]:
        """Everything exit ``k`` needs and nothing more."""
        if not 1 <= k <= self.problem.n_exits:
            raise InputError(f"exit {k} does not exist; choose 1..{self.problem.n_exits}")
        parts = [i for s in range(1, k) for i in self.stage_parts(s, with_branch=False)]
        return parts + self.stage_parts(k, with_branch=True)

    def run_local(self, parts: Sequence[int], values: Mapping[str, torch.Tensor]) -> Values:
        """Run ``parts`` here; returns every value known afterwards."""
        vals = dict(values)
        with torch.no_grad():
            for i in parts:
                vals.update(self.parts[i](vals))
        return vals

    def needs(self, parts: Sequence[int]) -> set[str]:
        """Tensors ``parts`` read that they do not produce themselves."""
        produced: set[str] = set()
        needed: set[str] = set()
        for i in parts:
            needed |= {n for n in self.parts[i].input_names if n not in produced}
            produced |= set(self.parts[i].output_names)
        return needed


def _runs(executor: EarlyExitExecutor, parts: Sequence[int], here: int) -> list[list[int]]:
    """Split ``parts`` into maximal runs that are local to ``here`` or remote."""
    runs: list[list[int]] = []
    for i in parts:
        local = executor.info[i].tier == here
        if runs and (executor.info[runs[-1][0]].tier == here) == local:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def execute(
    executor: EarlyExitExecutor,
    here: int,
    parts: Sequence[int],
    returns: Sequence[str],
    values: Mapping[str, torch.Tensor],
    send: Send | None,
) -> Values:
    """Run ``parts`` from tier ``here``: local runs here, the rest through ``send``.

    The mobile agent sends every non-mobile run to the edge; the edge sends cloud runs to
    the cloud; the cloud runs only its own parts. Returns the tensors named ``returns``.
    """
    vals = dict(values)
    runs = _runs(executor, parts, here)
    for j, run in enumerate(runs):
        if executor.info[run[0]].tier == here:
            vals = executor.run_local(run, vals)
            continue
        if send is None:
            raise TransportError(f"tier {TIER_NAMES[here]} cannot reach part {run[0]}'s tier")
        later = [i for r in runs[j + 1 :] for i in r]
        made = {n for i in run for n in executor.parts[i].output_names}
        want = sorted((executor.needs(later) | set(returns)) & made)
        inputs = {n: vals[n] for n in executor.needs(run)}
        target = EDGE if here == MOBILE else CLOUD
        vals.update(send(target, run, want, inputs))
    missing = [n for n in returns if n not in vals]
    if missing:
        raise TransportError(f"tensors {missing} were not produced; check the plan's parts")
    return {n: vals[n] for n in returns}


@dataclass(frozen=True)
class ExitResult:
    """The exit taken, its logits and the wall time (seconds) the agent measured."""

    exit: int
    logits: torch.Tensor
    seconds: float


class EarlyExitAgent:
    """The mobile side: chooses the exit, runs its parts, sends the rest to the edge."""

    def __init__(self, executor: EarlyExitExecutor, send: Send | None) -> None:
        self.executor = executor
        self.send = send

    def exit_for(self, requirement: float) -> int:
        """The shallowest exit whose accuracy meets ``requirement`` (deepest if none)."""
        acc = self.executor.problem.accuracies
        return next((k for k, a in enumerate(acc, start=1) if a >= requirement), len(acc))

    def infer(
        self,
        x: torch.Tensor,
        *,
        exit: int | None = None,
        requirement: float | None = None,
        thresholds: Sequence[float] | None = None,
    ) -> ExitResult:
        """One inference; give exactly one of ``exit``, ``requirement``, ``thresholds``."""
        if sum(v is not None for v in (exit, requirement, thresholds)) != 1:
            raise InputError("give exactly one of exit, requirement or entropy thresholds")
        ex = self.executor
        inputs = dict(zip(ex.graph.input_names, (x,)))
        start = time.perf_counter()
        if thresholds is None:
            k = exit if exit is not None else self.exit_for(float(requirement or 0.0))
            name = ex.exit_names[k - 1]
            out = execute(ex, MOBILE, ex.exit_parts(k), [name], inputs, self.send)
            return ExitResult(k, out[name], time.perf_counter() - start)
        n = ex.problem.n_exits
        if len(thresholds) != n - 1:
            raise InputError(f"give {n - 1} entropy thresholds (one per side exit)")
        vals: Values = dict(inputs)
        for k in range(1, n + 1):
            trunk = ex.stage_parts(k, with_branch=False)
            later = ex.stage_parts(k + 1, with_branch=False) if k < n else []
            branch = [i for i in ex.stage_parts(k, with_branch=True) if i not in trunk]
            name = ex.exit_names[k - 1]
            keep = sorted(ex.needs(later) | {name})
            vals = execute(ex, MOBILE, trunk + branch, keep, vals, self.send)
            if k == n or float(entropy(vals[name]).max()) < thresholds[k - 1]:
                return ExitResult(k, vals[name], time.perf_counter() - start)
        raise AssertionError("unreachable: the last exit always fires")
