"""Choosing the wire codec per link together with the cut or placement (issue 13, point 3).

A codec changes what a message costs. For a message of raw tensors ``T`` from device
``s`` to device ``d`` over link ``L`` under codec ``c``:

    seconds = L.seconds(Σ_{t∈T} wire(t, c))                      (Luger eq. 4.3)
            + Σ_{t∈T} nbytes(t) · (encode_c[s] + decode_c[d])

``wire(t, c)`` is :func:`edgesplit.predict.codec_costs.wire_nbytes` (fp16/bf16 halve a
float32 tensor, int8 quarters it plus a scale and zero point per channel, zstd uses the
ratio measured on that tensor), and ``encode_c``/``decode_c`` are the per-byte seconds
measured on the profiling host (:class:`~edgesplit.predict.codec_costs.CodecRecord`),
scaled to each device by its speed: a device whose node seconds add up to ``S_d`` runs
the codec ``S_d / compute_s`` times as long as the host whose compute was ``compute_s``.
Everything else follows :mod:`edgesplit.plan.problem` (``comm="message"``, sequential):
latency = compute + communication, codec seconds included; cost bills compute only.

Choices (``plan --codec``): a codec name sends every link under it (refused on a link
that does not allow it); ``auto`` picks per link among the link's allowed codecs, lossy
ones included; ``auto-lossless`` only among ``none`` and ``zstd`` (``torch.equal``
holds). Two devices: every (codec, cut) pair is a row of one joint candidate table and
the objective's rule (:func:`edgesplit.plan.planner.choose`) picks a row, so the choice
is exact; ties go to ``none``, then the earlier cut. More devices: every combination of
per-link codecs is solved by the named solver on links whose rate folds the codec in
(mean bytes ratio and per-byte seconds), and each placement is then priced exactly by
:func:`evaluate_codecs`; the best priced one wins. O(#codecs · n) for two devices,
O(Π_links #codecs · solver) otherwise.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from edgesplit.errors import InputError
from edgesplit.plan.evaluate import evaluate
from edgesplit.plan.problem import Problem
from edgesplit.plan.two_tier import Candidates, TwoTierInputs, problem_table
from edgesplit.plan.types import Plan
from edgesplit.predict.codec_costs import CodecRecord, wire_nbytes
from edgesplit.system.codecs import LOSSLESS, link_key
from edgesplit.system.link import CODECS, Link

CHOICES = (*CODECS, "auto", "auto-lossless")
"""What ``plan --codec`` accepts."""

MAX_COMBINATIONS = 256
"""Per-link codec combinations tried for more than two devices."""


@dataclass(frozen=True)
class CodecModel:
    """Per device and codec, encode and decode seconds per raw byte; wire bytes per tensor.

    ``wire[c][j]`` is the bytes graph tensor ``j`` puts on the wire under codec ``c``.
    """

    encode: tuple[dict[str, float], ...]
    decode: tuple[dict[str, float], ...]
    wire: dict[str, tuple[float, ...]]

    @classmethod
    def from_record(cls, record: CodecRecord, problem: Problem) -> CodecModel:
        """Scale the host's rates to each device by its compute (module docstring)."""
        missing = [c for c in CODECS if c not in record.rates]
        if missing:
            raise InputError(
                f"the codec record has no timing for {missing[0]!r}; re-record it with "
                "`edgesplit profile --codecs`"
            )
        encode, decode = [], []
        for d in range(problem.n_devices):
            row = problem.seconds[d]
            scale = float(row[np.isfinite(row)].sum()) / record.compute_s
            encode.append({c: r.encode_s_per_byte * scale for c, r in record.rates.items()})
            decode.append({c: r.decode_s_per_byte * scale for c, r in record.rates.items()})
        wire = {
            c: tuple(
                wire_nbytes(t.shape, t.dtype, t.nbytes, c, record.zstd_ratio.get(t.name, 1.0))
                for t in problem.graph.tensors
            )
            for c in CODECS
        }
        return cls(tuple(encode), tuple(decode), wire)

    def ratio(self, codec: str, nbytes: Sequence[float]) -> float:
        """Wire over raw bytes of all tensors together (1 when there are none)."""
        raw = float(sum(nbytes))
        return sum(self.wire[codec]) / raw if raw > 0 else 1.0


def check_choice(choice: str) -> None:
    """Refuse a ``--codec`` value that is neither a codec nor a choice, in one line."""
    if choice not in CHOICES:
        raise InputError(f"--codec must be one of {', '.join(CHOICES)}, not {choice!r}")


def allowed(problem: Problem, choice: str) -> dict[frozenset[int], tuple[str, ...]]:
    """The codecs each link of ``problem`` may use under ``choice`` (``none`` first)."""
    check_choice(choice)
    out: dict[frozenset[int], tuple[str, ...]] = {}
    for pair, link in problem.links.items():
        a, b = sorted(pair)
        names = f"{problem.devices[a]}–{problem.devices[b]}"
        if choice in CODECS:
            if choice not in link.codecs:
                raise InputError(
                    f"--codec {choice}: link {names} does not allow it (allowed: "
                    f"{', '.join(link.codecs)}); add it to that link's codecs or choose one"
                )
            out[pair] = (choice,)
            continue
        pool = link.codecs if choice == "auto" else [c for c in link.codecs if c in LOSSLESS]
        out[pair] = tuple(c for c in CODECS if c in pool) or ("none",)
    return out


@dataclass(frozen=True)
class CodecEvaluation:
    """A plan's figures with codecs: what :func:`edgesplit.plan.evaluate.evaluate` gives,
    with the communication priced as in the module docstring."""

    latency_s: float
    comm_s: float
    codec_s: float
    cost: float
    energy_j: float
    objective_value: float
    compute_s: tuple[float, ...]
    wire_bytes: dict[tuple[int, int], float]
    problems: tuple[str, ...]

    @property
    def score(self) -> float:
        return math.inf if self.problems else self.objective_value

    def as_predicted(self, devices: Sequence[str]) -> dict[str, float]:
        doc = {
            "latency_s": self.latency_s,
            "compute_s": sum(self.compute_s),
            "comm_s": self.comm_s,
            "codec_s": self.codec_s,
            "cost": self.cost,
            "energy_j": self.energy_j,
            "objective_value": self.objective_value,
        }
        doc.update({f"compute_s:{d}": s for d, s in zip(devices, self.compute_s)})
        return doc


def _check_rules(problem: Problem) -> None:
    if problem.comm != "message" or problem.semantics != "sequential":
        raise InputError(
            "wire codecs are priced per message (comm='message', sequential semantics); "
            "plan this problem with --codec none"
        )


def evaluate_codecs(
    problem: Problem,
    assignment: Sequence[int],
    codecs: Mapping[frozenset[int], str],
    model: CodecModel,
) -> CodecEvaluation:
    """Latency, cost and energy of ``assignment`` with ``codecs`` per link (``none`` if absent).

    Compute, cost and the broken rules come from :func:`edgesplit.plan.evaluate.evaluate`;
    each message is re-priced as in the module docstring. O(n + |tensors|).
    """
    _check_rules(problem)
    base = evaluate(problem, assignment)
    st, src = problem.structure, problem.source
    raw: dict[tuple[int, int], float] = {}
    wire: dict[tuple[int, int], float] = {}
    for j, t in enumerate(problem.graph.tensors):
        p = src if st.producer[j] < 0 else assignment[st.producer[j]]
        readers = {assignment[c] for c in st.consumers[j]}
        if st.is_output[j]:
            readers.add(src)
        for dst in readers - {p}:
            codec = codecs.get(frozenset((p, dst)), "none")
            raw[(p, dst)] = raw.get((p, dst), 0.0) + t.nbytes
            wire[(p, dst)] = wire.get((p, dst), 0.0) + model.wire[codec][j]
    comm = codec_total = 0.0
    for (s, d), nbytes in raw.items():
        codec = codecs.get(frozenset((s, d)), "none")
        spent = nbytes * (model.encode[s][codec] + model.decode[d][codec]) if nbytes > 0 else 0.0
        comm += problem.transfer_seconds(s, d, wire[(s, d)]) + spent
        codec_total += spent
    latency = sum(base.compute_s) + comm
    energy = base.energy_j
    pm = problem.power[src]
    if pm is not None and math.isfinite(latency) and math.isfinite(base.latency_s):
        energy += pm.watts(problem.idle_utilisation[src]) * (latency - base.latency_s)
    return CodecEvaluation(
        latency_s=latency,
        comm_s=comm,
        codec_s=codec_total,
        cost=base.cost,
        energy_j=energy,
        objective_value=problem.objective_value(latency, base.cost, energy),
        compute_s=base.compute_s,
        wire_bytes=wire,
        problems=base.problems,
    )


def codecs_meta(
    problem: Problem, assignment: Sequence[int], codecs: Mapping[frozenset[int], str]
) -> dict[str, str]:
    """The plan's ``meta["codecs"]``: link key → codec for each link that carries data under
    a codec other than ``none`` (what ``run-plan`` sends with; absent links send ``none``)."""
    st, src = problem.structure, problem.source
    used: set[frozenset[int]] = set()
    for j in range(len(problem.graph.tensors)):
        p = src if st.producer[j] < 0 else assignment[st.producer[j]]
        readers = {assignment[c] for c in st.consumers[j]}
        if st.is_output[j]:
            readers.add(src)
        used.update(frozenset((p, d)) for d in readers - {p})
    out = {}
    for pair in sorted(used, key=sorted):
        codec = codecs.get(pair, "none")
        if codec != "none":
            a, b = sorted(pair)
            out[link_key(problem.devices[a], problem.devices[b])] = codec
    return out


# -- two devices: the joint (codec, cut) table ---------------------------------------------


def two_tier_tables(
    problem: Problem, model: CodecModel, codecs: Sequence[str]
) -> dict[str, Candidates]:
    """The candidate table of a two-device problem under each codec (module docstring)."""
    _check_rules(problem)
    raw = TwoTierInputs.from_problem(problem)
    tables = {}
    for c in codecs:
        inputs = TwoTierInputs.from_graph(
            problem.graph,
            problem.seconds[0],
            problem.seconds[1],
            devices=(problem.devices[0], problem.devices[1]),
            tensor_bytes=model.wire[c],
        )
        codec_s = raw.up_bytes * (model.encode[0][c] + model.decode[1][c]) + raw.down_bytes * (
            model.encode[1][c] + model.decode[0][c]
        )
        tables[c] = problem_table(problem, inputs, codec_s if c != "none" else None)
    return tables


def joint_table(tables: Mapping[str, Candidates]) -> Candidates:
    """All tables' rows in one table, codec by codec in the given order."""
    first = next(iter(tables.values()))

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(t, name) for t in tables.values()])

    codec_s = np.concatenate(
        [t.codec_s if t.codec_s is not None else np.zeros(len(t)) for t in tables.values()]
    )
    return Candidates(
        model=first.model,
        devices=first.devices,
        edge_s=cat("edge_s"),
        comm_s=cat("comm_s"),
        cloud_s=cat("cloud_s"),
        latency_s=cat("latency_s"),
        cost=cat("cost"),
        energy_j=cat("energy_j"),
        bytes=cat("bytes"),
        feasible=cat("feasible"),
        codec_s=codec_s,
    )


def choose_two_tier(
    problem: Problem, model: CodecModel, choice: str, tradeoff: str = "luger"
) -> tuple[str, int, dict[str, Candidates]]:
    """The (codec, cut) the problem's objective picks among ``choice``'s codecs, and the tables."""
    from edgesplit.plan.planner import choose

    pools = list(allowed(problem, choice).values())
    pool = pools[0] if pools else ("none",)
    tables = two_tier_tables(problem, model, pool)
    row = choose(joint_table(tables), problem.objective, problem.weight, tradeoff)
    size = problem.n_nodes + 1
    return pool[row // size], row % size, tables


def two_tier_plan(
    problem: Problem, model: CodecModel, choice: str, tradeoff: str = "luger"
) -> tuple[Plan, dict[str, Candidates]]:
    """The jointly chosen two-tier plan, carrying its codec, and every codec's table."""
    from edgesplit.plan.planner import plan_from_table

    codec, cut, tables = choose_two_tier(problem, model, choice, tradeoff)
    assignment = [0 if i < cut else 1 for i in range(problem.n_nodes)]
    meta = {
        "weight": problem.weight,
        "tradeoff": tradeoff,
        **problem.meta,
        "codec_choice": choice,
        "codecs": codecs_meta(problem, assignment, dict.fromkeys(problem.links, codec)),
    }
    plan = plan_from_table(
        tables[codec], cut, algorithm="two-tier", objective=problem.objective, meta=meta
    )
    return plan, tables


def codec_solver(
    record: CodecRecord, choice: str = "auto", algorithm: str = "", tradeoff: str = "luger"
) -> Callable[[Problem], Plan]:
    """``problem -> Plan`` with the codecs chosen: the re-planner's codec hook
    (:class:`edgesplit.runtime.planning.RegistryPlanner`'s ``solver``) and ``plan --codec``.

    Two devices with the input on the first and ``algorithm`` "" or "two-tier": the exact
    joint table; otherwise :func:`solve_with_codecs` with ``algorithm`` (default exhaustive).
    The codec seconds follow each problem's device seconds (module docstring).
    """
    check_choice(choice)  # an unknown choice fails now, not at the first re-plan

    def solver(problem: Problem) -> Plan:
        model = CodecModel.from_record(record, problem)
        if problem.n_devices == 2 and problem.source == 0 and algorithm in ("", "two-tier"):
            return two_tier_plan(problem, model, choice, tradeoff)[0]
        return solve_with_codecs(problem, algorithm or "exhaustive", model, choice)[0]

    return solver


# -- more devices: a placement per codec combination, priced exactly -----------------------


def _folded(problem: Problem, model: CodecModel, codecs: Mapping[frozenset[int], str]) -> Problem:
    """``problem`` with each link's rate lowered to fold its codec in (for the search only)."""
    nbytes = [t.nbytes for t in problem.graph.tensors]
    links = {}
    for pair, link in problem.links.items():
        c = codecs[pair]
        if c == "none":
            links[pair] = link
            continue
        a, b = sorted(pair)
        per_byte = max(
            model.encode[a][c] + model.decode[b][c], model.encode[b][c] + model.decode[a][c]
        )
        rate = 8.0 / (model.ratio(c, nbytes) * 8.0 / link.rate_bps + per_byte)
        links[pair] = Link.of(rate, link.rtt, link.codecs)
    return replace(problem, links=links, tensor_seconds=None)


def solve_with_codecs(
    problem: Problem, algorithm: str, model: CodecModel, choice: str, **opts: Any
) -> tuple[Plan, dict[frozenset[int], str]]:
    """The best placement and per-link codecs: each combination solved, then priced exactly."""
    from edgesplit.plan.registry import solve

    _check_rules(problem)
    pools = allowed(problem, choice)
    pairs = sorted(pools, key=sorted)
    combos = list(itertools.islice(itertools.product(*(pools[p] for p in pairs)), MAX_COMBINATIONS))
    best: tuple[float, Plan, dict[frozenset[int], str], CodecEvaluation] | None = None
    for combo in combos:
        codecs = dict(zip(pairs, combo, strict=True))
        plan = solve(_folded(problem, model, codecs), algorithm, **opts)
        ev = evaluate_codecs(problem, plan.assignment, codecs, model)
        if best is None or ev.score < best[0]:
            best = (ev.score, plan, codecs, ev)
    assert best is not None
    _, plan, codecs, ev = best
    return with_codecs(problem, plan, codecs, ev, choice), codecs


def with_codecs(
    problem: Problem,
    plan: Plan,
    codecs: Mapping[frozenset[int], str],
    ev: CodecEvaluation,
    choice: str,
) -> Plan:
    """``plan`` carrying its codecs (``meta["codecs"]``) and the figures priced with them."""
    meta = {
        **plan.meta,
        "codec_choice": choice,
        "codecs": codecs_meta(problem, plan.assignment, codecs),
    }
    return replace(plan, predicted=ev.as_predicted(problem.devices), meta=meta)
