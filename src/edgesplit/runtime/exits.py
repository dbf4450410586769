"""Early exits on the engine: compute and send nothing past the exit taken.

An early-exit plan (``Plan.exits``, Zuo 2024 Pre-DNNOff over a BranchyNet; see
:mod:`edgesplit.plan.types`) names each exit's model output, shallow to deep, and the rule
that picks the exit per request:

``index``        always exit ``index``;
``requirement``  the shallowest exit whose accuracy meets the request's accuracy
                 requirement (deepest if none does), as eq. 4.8 assumes it is known;
``entropy``      BranchyNet's rule: exit ``k`` fires when the entropy of its softmax is
                 below ``thresholds[k-1]`` for every row of the batch; exits are tried
                 shallow to deep and the deepest always fires.

Exit ``k`` runs on its own stages: the plan's assignment with every node that is not an
ancestor of exit ``k``'s output put on :data:`~edgesplit.runtime.stages.SKIP`, which
:func:`~edgesplit.runtime.stages.build_stages` drops. So the nodes past the exit (the
deeper trunk, the other branches) are neither computed nor sent, on any tier; a link that
only the deeper part of the model crosses carries 0 bytes. Servers build the same stages
from the assignment each request carries, with no other message. The exit's logits are
``torch.equal`` to the unsplit model's output of that exit (same kernels and threads).

Choice made here for the entropy rule: each attempt is its own request from the input,
so an attempt that does not fire costs its own chain, and a deeper attempt recomputes the
trunk the shallower one ran (its values stay on the tiers that made them). The record
lists every attempt with its entropy; ``exit`` is the one taken. Work per request:
O(nodes of the exit's chain) compute plus its tensors' bytes, per attempt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from edgesplit.errors import InputError
from edgesplit.graph import Graph
from edgesplit.models.branchy import entropy
from edgesplit.plan.types import ExitSpec, check_spec
from edgesplit.runtime.stages import SKIP, Stages, build_stages

RULES = ("index", "requirement", "entropy")


def exit_assignment(
    graph: Graph, devices: Sequence[str], assignment: Sequence[int], output: str
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """``(devices + (SKIP,), assignment)`` with the nodes ``output`` does not need skipped."""
    if output not in graph.output_names:
        raise InputError(
            f"exit output {output!r} is not an output of {graph.name!r} "
            f"({', '.join(graph.output_names)}); re-plan with the same model"
        )
    producer = {t.name: t.producer for t in graph.tensors}
    needed: set[str] = set()
    todo = [producer.get(output)]
    while todo:
        node = todo.pop()
        if node is None or node in needed:
            continue
        needed.add(node)
        todo.extend(producer.get(t) for t in graph.node(node).inputs)
    skip = len(devices)
    out = tuple(a if n.name in needed else skip for n, a in zip(graph.nodes, assignment))
    return (*devices, SKIP), out


def exit_stages(
    graph: Graph, devices: Sequence[str], assignment: Sequence[int], outputs: Sequence[str]
) -> list[Stages]:
    """One set of stages per exit, in exit order (nothing past each exit)."""
    return [
        build_stages(graph, *exit_assignment(graph, devices, assignment, name)) for name in outputs
    ]


def with_rule(
    spec: Mapping[str, Any],
    *,
    index: int | None = None,
    requirement: float | None = None,
    thresholds: Sequence[float] | None = None,
) -> dict[str, Any]:
    """``spec`` with its rule replaced by the one given (at most one), validated as a plan's."""
    given = [(r, v) for r, v in zip(RULES, (index, requirement, thresholds)) if v is not None]
    if len(given) > 1:
        raise InputError("give one exit rule: --exit, --requirement or --entropy, not several")
    doc = dict(spec)
    if given:
        rule, value = given[0]
        doc.update(index=None, requirement=None, thresholds=None, rule=rule)
        field = {"index": "index", "requirement": "requirement", "entropy": "thresholds"}[rule]
        doc[field] = list(value) if isinstance(value, Sequence) else value
    spec_ok: dict[str, Any] = check_spec(ExitSpec, doc, "exits").model_dump(mode="json")
    return spec_ok


class ExitRunner:
    """Runs one request of an early-exit plan: picks the exit by the rule, runs its chain.

    ``engines[k-1]`` runs exit ``k``'s stages (:func:`exit_stages`); any object with the
    engine's ``infer(inputs) -> (outputs, record)`` works.
    """

    def __init__(self, engines: Sequence[Any], spec: Mapping[str, Any]) -> None:
        if len(engines) != len(spec["outputs"]):
            raise InputError(f"give one engine per exit ({len(spec['outputs'])})")
        self.engines, self.spec = list(engines), dict(spec)

    @property
    def n_exits(self) -> int:
        return len(self.engines)

    def start(self) -> list[str]:
        """Probe every exit's first hops; one line per hop that does not answer."""
        return sorted({line for e in self.engines for line in e.start()})

    def close(self) -> None:
        for e in self.engines:
            e.close()

    def planned_exit(self) -> int | None:
        """The exit the rule takes before any output is seen (None: the entropy rule)."""
        rule = self.spec["rule"]
        if rule == "index":
            return int(self.spec["index"])
        if rule == "requirement":
            need = float(self.spec["requirement"])
            acc = self.spec["accuracies"]
            return next((k for k, a in enumerate(acc, start=1) if a >= need), len(acc))
        return None

    def infer(
        self, inputs: Sequence[torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The exit's output by name and the record (``exit``, ``rule``, ``attempts``)."""
        planned = self.planned_exit()
        tries = [planned] if planned is not None else list(range(1, self.n_exits + 1))
        attempts: list[dict[str, Any]] = []
        merged: dict[str, Any] = {}
        outs: dict[str, torch.Tensor] = {}
        for k in tries:
            outs, record = self.engines[k - 1].infer(inputs)
            name = self.spec["outputs"][k - 1]
            attempt = {"exit": k, "total_s": record["total_s"]}
            merged = _merge(merged, record)
            if planned is None:
                h = float(entropy(outs[name]).max())
                attempt["entropy"] = h
                attempts.append(attempt)
                if k == self.n_exits or h < float(self.spec["thresholds"][k - 1]):
                    break
            else:
                attempts.append(attempt)
        k = attempts[-1]["exit"]
        return outs, {**merged, "exit": k, "rule": self.spec["rule"], "attempts": attempts}


def _merge(into: dict[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    """Records of successive attempts of one request as one: times add, logs concatenate."""
    if not into:
        return dict(record)
    out = dict(record)
    out["total_s"] = into["total_s"] + record["total_s"]
    for key in ("stages", "hops", "turns"):
        if key in into or key in record:
            out[key] = [*into.get(key, []), *record.get(key, [])]
    out["tiers"] = {**into.get("tiers", {}), **record.get("tiers", {})}
    out["failover"] = bool(into.get("failover")) or bool(record.get("failover"))
    return out


EngineFactory = Callable[[Stages], Any]


def exit_runner(
    graph: Graph,
    devices: Sequence[str],
    assignment: Sequence[int],
    spec: Mapping[str, Any],
    make_engine: EngineFactory,
) -> ExitRunner:
    """An :class:`ExitRunner` whose engines ``make_engine`` builds, one per exit's stages."""
    stages = exit_stages(graph, devices, assignment, spec["outputs"])
    return ExitRunner([make_engine(s) for s in stages], spec)


def open_exits(
    plan: Any,
    graph: Graph,
    fingerprint: dict[str, str],
    topology: Any,
    *,
    token: str | None = None,
    codecs_by_link: Mapping[str, str] | None = None,
    here: frozenset[str] | None = None,
    failover: bool = True,
    spec: Mapping[str, Any] | None = None,
) -> ExitRunner:
    """The :class:`ExitRunner` of an early-exit ``plan`` on ``topology`` (``spec``: another rule)."""
    from edgesplit.runtime.engine import engine_for

    exits = dict(spec or plan.exits)

    def make_engine(stages: Stages) -> Any:
        return engine_for(
            stages, plan.model, fingerprint, topology, token, codecs_by_link, here, failover
        )

    return exit_runner(graph, plan.devices, plan.assignment, exits, make_engine)


def link_bytes(record: Mapping[str, Any]) -> dict[str, int]:
    """Wire bytes per link (``a|b``, both directions) in one request's record."""
    out: dict[str, int] = {}
    for hop in record.get("hops", []):
        key = "|".join(sorted((hop["src"], hop["dst"])))
        out[key] = out.get(key, 0) + int(hop["sent_wire_bytes"]) + int(hop["reply_wire_bytes"])
    return out
