"""Exactness oracle: a split model's output is ``torch.equal`` to the unsplit model's.

Outputs are compared as pytrees (tuple, list, dict, Hugging Face ``ModelOutput``): the
structures must match and every tensor leaf must be ``torch.equal`` with the same dtype.

Three ways to check every cut ``k`` of a graph with ``n`` nodes:

``rebuild`` (the original method)
    For each ``k``, build ``split_at(graph, [k])`` (two freshly generated ``GraphModule``
    s) and run it on the input. Cost: ``n + 1`` part builds of O(|fx nodes|) code
    generation each, plus ``n + 1`` forwards.

``tails`` (default) and ``fast``
    1. Run the traced module once in an ``fx.Interpreter`` that copies every tensor that
       crosses any cut as it is produced (the recording).
    2. Split the graph once into one part per node (:func:`partition`), each part a
       real, generated ``GraphModule`` that reads and returns only named tensors.
    3. *Heads*: run the parts in order from the inputs. At every boundary ``k`` the
       values kept are exactly the tensors of ``graph.cut(k)`` (what the runtime sends),
       and each must be ``torch.equal`` to its recorded value. So the head of cut ``k``,
       parts ``[0, k)``, computes exactly the cut's tensors from the inputs alone.
    4. *Tails*, ``tails``: for each ``k``, feed only copies of the recorded tensors of
       cut ``k`` to parts ``[k, n)`` and compare the reassembled output with the model's
       output, leaf by leaf. About ``n / 2`` forwards in all.
       *Tails*, ``fast``: feed part ``k`` only copies of cut ``k``'s recorded tensors
       and check that it leaves exactly cut ``k + 1``'s recorded tensors; and check that
       cut ``n``'s recorded tensors reassemble to the model's output. A part is a
       function of the tensors it receives, so by induction from ``n`` down the tail of
       every cut ``k`` maps cut ``k``'s tensors to the model's output. One forward.

    A tensor that the model writes in place after producing it (an ``inplace=True``
    activation reading a tensor that a later layer also reads) crosses later cuts in
    its written state, which no single recording holds; the recorder sees the write
    through the tensor's version counter, and such cuts are checked by ``rebuild``.

    A cut passes when both its head and its tail do. Cost of ``fast``: ``n`` small part
    builds (together one model's code generation) plus three forwards, instead of
    ``n + 1`` builds of up to the whole model. Every check executes real split parts
    that see nothing but the tensors crossing a cut.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.fx as fx
import torch.utils._pytree as pytree

from edgesplit.errors import InputError, PartitionError
from edgesplit.graph.partition import assemble_output, partition, split_at
from edgesplit.graph.types import Graph

Method = Literal["fast", "tails", "rebuild"]
METHODS: tuple[str, ...] = ("fast", "tails", "rebuild")


@dataclass(frozen=True)
class CutCheck:
    """The verdict for cut ``cut``: ``equal`` is the whole split's, ``reason`` why not."""

    cut: int
    equal: bool
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"cut": self.cut, "equal": self.equal}
        if self.reason:
            doc["reason"] = self.reason
        return doc


def outputs_equal(a: Any, b: Any) -> bool:
    """Same pytree structure and every leaf equal (tensors: ``torch.equal``, same dtype)."""
    return not leaf_differences(a, b)


def leaf_differences(a: Any, b: Any) -> list[str]:
    """Paths (``['last_hidden_state']``, ``[0]``) of the leaves where ``a`` and ``b`` differ;
    ``["structure"]`` when the pytrees differ in shape."""
    la, spec_a = pytree.tree_flatten_with_path(a)
    lb, spec_b = pytree.tree_flatten_with_path(b)
    if spec_a != spec_b:
        return ["structure"]
    return [pytree.keystr(path) or "output" for (path, x), (_, y) in zip(la, lb) if not _same(x, y)]


def check_every_cut(
    graph: Graph,
    inputs: Sequence[torch.Tensor],
    reference: Any,
    *,
    method: Method = "tails",
    cuts: Sequence[int] | None = None,
    on_cut: Callable[[CutCheck], None] | None = None,
) -> list[CutCheck]:
    """Check the cuts ``cuts`` (default: all ``0..n``) of ``graph`` against ``reference``.

    ``inputs`` are the graph's input tensors in ``graph.input_names`` order and
    ``reference`` the unsplit model's output on them. See the module doc for methods.
    ``on_cut`` receives each cut's verdict as it is reached (progress).
    """
    n = len(graph.nodes)
    wanted = list(range(n + 1)) if cuts is None else list(cuts)
    bad = [k for k in wanted if not 0 <= k <= n]
    if bad:
        raise InputError(f"cuts {bad} are out of range for {graph.name!r}; use 0..{n}")
    if len(inputs) != len(graph.input_names):
        raise InputError(
            f"{graph.name!r} takes {len(graph.input_names)} inputs "
            f"({', '.join(graph.input_args)}), not {len(inputs)}"
        )
    # no_grad, not inference_mode: the recorder reads version counters, which inference
    # tensors do not keep.
    with torch.no_grad():
        if method not in METHODS:
            raise InputError(f"verify method must be one of {', '.join(METHODS)}, not {method!r}")
        report = on_cut or (lambda check: None)
        if method == "rebuild":
            checks = []
            for k in wanted:
                checks.append(_rebuild(graph, inputs, reference, k))
                report(checks[-1])
            return checks
        return _fast(graph, tuple(inputs), reference, wanted, method == "tails", report)


def record_values(graph: Graph, inputs: Sequence[torch.Tensor]) -> Recording:
    """One run of ``graph.module``: each tensor of ``graph`` as produced, and where any of
    them is later modified in place."""
    recorder = _Recorder(graph)
    recorder.run(*_fresh(inputs))
    return Recording(recorder.values, recorder.mutated)


@dataclass(frozen=True)
class Recording:
    """``values``: every Graph tensor as its producer returned it (a copy). ``mutated``:
    tensor name -> index of the first Graph node that modified it in place afterwards."""

    values: dict[str, Any]
    mutated: dict[str, int]


class _Recorder(fx.Interpreter):
    """Copies each Graph tensor when produced and watches version counters (shared by
    views) to see in-place writes, e.g. an ``inplace=True`` activation after a norm."""

    def __init__(self, graph: Graph) -> None:
        super().__init__(graph.module)
        self.keep = {t.name for t in graph.tensors}
        self.owner = {m: node.index for node in graph.nodes for m in node.members}
        self.values: dict[str, Any] = {}
        self.mutated: dict[str, int] = {}
        self.live: dict[str, tuple[torch.Tensor, int]] = {}

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        index = self.owner.get(n.name)
        if index is not None:
            for name, (t, version) in self.live.items():
                if t._version != version and name not in self.mutated:
                    self.mutated[name] = index
        if n.name in self.keep:
            if isinstance(out, torch.Tensor):
                self.values[n.name] = out.clone()
                self.live[n.name] = (out, out._version)
            else:
                self.values[n.name] = out
        return out


def _rebuild(graph: Graph, inputs: Sequence[torch.Tensor], reference: Any, k: int) -> CutCheck:
    try:
        out = split_at(graph, [k])(*_fresh(inputs))
    except PartitionError as err:
        return CutCheck(k, False, str(err))
    diff = leaf_differences(out, reference)
    return CutCheck(k, not diff, _differs(diff))


def _fast(
    graph: Graph,
    inputs: tuple[torch.Tensor, ...],
    reference: Any,
    wanted: list[int],
    whole_tails: bool,
    report: Callable[[CutCheck], None],
) -> list[CutCheck]:
    n = len(graph.nodes)
    recording = record_values(graph, inputs)
    recorded = recording.values
    split = partition(graph, list(range(n)))
    parts = split.parts
    crossing = [c.tensor_names for c in graph.cuts()]
    heads = _heads(graph, inputs, recorded, parts, crossing)
    # A tensor written in place after Graph node j crosses the later cuts in its written
    # state, which no single recording holds: those cuts are checked by rebuilding.
    stale = {
        k
        for name, j in recording.mutated.items()
        for k in range(j + 1, n + 1)
        if name in crossing[k]
    }
    if not whole_tails:
        # A step whose part writes a tensor that crosses on has no recorded result to
        # match: every tail through that step is rebuilt too.
        stale |= {
            k
            for name, j in recording.mutated.items()
            if name in crossing[j + 1]
            for k in range(j + 1)
        }
    tails = [""] * (n + 1) if whole_tails else _tails_by_steps(graph, recorded, parts, crossing)
    if not whole_tails:
        diff = leaf_differences(assemble_output(graph, recorded), reference)
        tails = [t or _differs(diff) for t in tails]
    checks = []
    for k in wanted:
        if k in stale:
            checks.append(_rebuild(graph, inputs, reference, k))
        elif heads[k] or tails[k]:
            checks.append(CutCheck(k, False, heads[k] or tails[k]))
        elif whole_tails:
            checks.append(_whole_tail(graph, split, recorded, crossing, reference, k))
        else:
            checks.append(CutCheck(k, True))
        report(checks[-1])
    return checks


def _whole_tail(
    graph: Graph,
    split: Any,
    recorded: dict[str, Any],
    crossing: list[tuple[str, ...]],
    reference: Any,
    k: int,
) -> CutCheck:
    """Parts ``[k, n)`` fed copies of cut ``k``'s recorded tensors, to the output."""
    values = dict(zip(crossing[k], _fresh([recorded[name] for name in crossing[k]])))
    try:
        for part, done in zip(split.parts[k:], split.release_after[k:]):
            values.update(part(values))
            for name in done:
                values.pop(name, None)
    except PartitionError as err:
        return CutCheck(k, False, f"tail: {err}")
    diff = leaf_differences(assemble_output(graph, values), reference)
    return CutCheck(k, not diff, _differs(diff))


def _tails_by_steps(
    graph: Graph, recorded: dict[str, Any], parts: Sequence[Any], crossing: list[tuple[str, ...]]
) -> list[str]:
    """Per cut, why its tail is wrong ('' when right), one part at a time.

    Part ``k`` is fed copies of cut ``k``'s recorded tensors only; what it returns, with
    the tensors it passes through, must be cut ``k + 1``'s recorded tensors. Parts are
    functions of the tensors they receive (in-place writes were ruled out by the
    recorder), so when every step from ``k`` on holds, the tail of cut ``k`` maps cut
    ``k``'s tensors to the recorded output: the caller compares that with the model's.
    """
    n = len(graph.nodes)
    steps = [""] * n
    for k in range(n):
        values = dict(zip(crossing[k], _fresh([recorded[name] for name in crossing[k]])))
        try:
            values.update(parts[k](values))
        except PartitionError as err:
            steps[k] = f"tail: {err}"
            continue
        missing = [name for name in crossing[k + 1] if name not in values]
        wrong = [
            name
            for name in crossing[k + 1]
            if name in values and not _same(values[name], recorded[name])
        ]
        if missing or wrong:
            steps[k] = f"tail: part {k} leaves tensors {missing + wrong} unlike the unsplit model's"
    verdicts = [""] * (n + 1)
    for k in range(n - 1, -1, -1):
        verdicts[k] = steps[k] or verdicts[k + 1]
    return verdicts


def _heads(
    graph: Graph,
    inputs: tuple[torch.Tensor, ...],
    recorded: dict[str, Any],
    parts: Sequence[Any],
    crossing: list[tuple[str, ...]],
) -> list[str]:
    """Per cut, why its head is wrong ('' when it is right); one pass, see module doc."""
    n = len(graph.nodes)
    verdicts = [""] * (n + 1)
    values: dict[str, Any] = dict(zip(graph.input_names, _fresh(inputs)))
    for k in range(n + 1):
        names = crossing[k]
        missing = [name for name in names if name not in values]
        if missing:
            reason = f"head: cut tensors {missing} were not computed"
            verdicts[k:] = [reason] * (n + 1 - k)
            return verdicts
        values = {name: values[name] for name in names}
        wrong = [name for name in names if not _same(values[name], recorded[name])]
        if wrong:
            verdicts[k] = f"head: tensors {wrong} differ from the unsplit model's"
        if k < n:
            try:
                values.update(parts[k](values))
            except PartitionError as err:
                verdicts[k + 1 :] = [f"head: {err}"] * (n - k)
                return verdicts
    return verdicts


def _fresh(values: Sequence[Any]) -> list[Any]:
    """Copies, so that a part writing its inputs in place cannot spoil the next check."""
    return [v.clone() if isinstance(v, torch.Tensor) else v for v in values]


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
        return (
            isinstance(x, torch.Tensor)
            and isinstance(y, torch.Tensor)
            and x.dtype == y.dtype
            and x.shape == y.shape
            and torch.equal(x, y)
        )
    return bool(x == y)


def _differs(diff: list[str]) -> str:
    return f"output leaves {diff} differ from the unsplit model's" if diff else ""
