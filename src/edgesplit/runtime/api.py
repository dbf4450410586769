"""The Python API of the device-side application: a plan deployed on a topology.

::

    from edgesplit.runtime.api import Deployment

    with Deployment("plan.json", "topology.yaml") as dep:
        result = dep.infer(x)              # the same call as model(x)
        result.output, result.record

:class:`Deployment` loads a plan (a path or a :class:`~edgesplit.plan.types.Plan`) and a
topology (a path or a :class:`~edgesplit.system.topology.Topology`), rebuilds the model the
plan was made for from the plan's recorded model options, checks the plan's fingerprint
against it, builds the plan's stages (:mod:`edgesplit.runtime.stages`) and the engine
(:mod:`edgesplit.runtime.engine`) that relays them across the topology's servers. Each
:meth:`Deployment.infer` is one request: the stages run here and on the servers, and the
outputs come back here with the request's record (per-stage compute, per-hop bytes before
and after the codec, encode/decode and transfer seconds; Luger 2023 eq. 3.1–3.4 applied
per hop, see :mod:`edgesplit.runtime.engine`). The parts are the one partition's parts, so
with lossless codecs the output is ``torch.equal`` to the unsplit model's.

Errors are the project's: :class:`~edgesplit.errors.InputError` (a plan, topology, codec or
input that does not fit; :class:`~edgesplit.errors.ShapeError` for an input's shape or
dtype) and :class:`~edgesplit.errors.TransportError` (a tier that cannot be reached with
failover off, or fails mid-request with failover off), each with a one-line message.
With failover on (the default) a tier that does not answer at start is logged as a warning
(``Deployment.unreachable`` lists it) and requests run here until it answers.

Requests are served one at a time per deployment (a lock); build one deployment per
thread to overlap requests. This process loads the model once (the plan's model options:
``meta.model_options``); a plan naming code (``package.module:callable``) needs
``trust_model_code=True``, as on the command line.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgesplit.errors import InputError, ShapeError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from edgesplit.graph import Graph
    from edgesplit.models import ModelRequest
    from edgesplit.plan.types import Plan
    from edgesplit.runtime.engine import Engine
    from edgesplit.system.topology import Topology

log = logging.getLogger("edgesplit")


@dataclass(frozen=True)
class Result:
    """One request's answer: the model's output, its named graph outputs, and the record."""

    output: Any
    outputs: dict[str, torch.Tensor]
    record: dict[str, Any]


def _plan_of(plan: Plan | str | Path) -> tuple[Plan, str]:
    from edgesplit.plan.types import Plan, load_plan

    if isinstance(plan, Plan):
        return plan, f"plan of {plan.model!r}"
    return load_plan(plan), f"plan file {str(plan)!r}"


def _topology_of(topology: Topology | str | Path) -> tuple[Topology, str]:
    from edgesplit.system.topology import Topology, load_topology

    if isinstance(topology, Topology):
        return topology, "topology"
    return load_topology(topology), f"topology file {str(topology)!r}"


def model_of(
    plan: Plan, source: str, trust_model_code: bool, request: ModelRequest | None = None
) -> tuple[Graph, nn.Module, tuple[torch.Tensor, ...]]:
    """The plan's model traced as the plan was made (its model options and granularity).

    Returns the graph, the module and the example inputs in ``graph.input_names`` order;
    InputError when the plan's node count or recorded fingerprint does not match.
    """
    from edgesplit.graph.trace import flat_inputs
    from edgesplit.models import ModelRequest

    if request is None:
        recorded = plan.meta.get("model_options") or {}
        if not isinstance(recorded, dict):
            raise InputError(f"{source}: meta.model_options must be a mapping; re-run plan -o")
        request = ModelRequest.from_record(plan.model, recorded, source, trust_model_code)
    graph, module, ex, _ = traced_for(plan, source, request)
    return graph, module, flat_inputs(module, graph, ex.args, ex.kwargs)


def traced_for(
    plan: Plan, source: str, request: ModelRequest
) -> tuple[Graph, nn.Module, Any, dict[str, str]]:
    """``request`` traced at the plan's granularity, checked against the plan.

    Returns the graph, the module, its example and its fingerprint; InputError (naming
    ``source``) when the plan's node count or recorded fingerprint does not match.
    """
    from edgesplit.models.loader import trace_request
    from edgesplit.runtime.stages import fingerprint, fingerprint_mismatch

    recorded_fp = plan.meta.get("fingerprint")
    granularity = (recorded_fp if isinstance(recorded_fp, dict) else plan.meta).get(
        "granularity", "layer"
    )
    graph, module, ex = trace_request(request, str(granularity))
    if len(plan.assignment) != len(graph.nodes):
        raise InputError(
            f"{source} assigns {len(plan.assignment)} nodes but {plan.model!r} has "
            f"{len(graph.nodes)}; re-plan with the same model and granularity"
        )
    mine = fingerprint(graph)
    if isinstance(recorded_fp, dict):
        mismatch = fingerprint_mismatch(mine, recorded_fp)
        if mismatch:
            raise InputError(f"{source}: {mismatch}")
    return graph, module, ex, mine


def check_inputs(graph: Graph, values: tuple[torch.Tensor, ...], where: str = "input") -> None:
    """Each value has its graph input's shape and dtype (ShapeError naming the input)."""
    import torch

    for name, arg, value in zip(graph.input_names, graph.input_args, values, strict=True):
        want = graph.tensor(name)
        if not isinstance(value, torch.Tensor):
            raise ShapeError(f"{where} {arg!r} is a {type(value).__name__}; pass a torch.Tensor")
        got = str(value.dtype).removeprefix("torch.")
        if tuple(value.shape) != tuple(want.shape) or got != want.dtype:
            raise ShapeError(
                f"{where} {arg!r} is {got}{list(value.shape)} but the plan's model takes "
                f"{want.dtype}{list(want.shape)}; pass that shape and dtype"
            )


class Deployment:
    """A plan running on a topology, from the device's side (see the module docstring).

    ``plan``: a plan file or :class:`~edgesplit.plan.types.Plan`; ``topology``: a topology
    file or :class:`~edgesplit.system.topology.Topology` whose ``local`` device is this
    process. ``codecs``: link ``"a|b"`` (or ``"a-b"``) -> codec, over the codecs the plan
    recorded (``plan --codec``), default ``none``; ``token``: the servers' bearer token;
    ``failover``: finish a failed hop's request here (default) instead of raising
    :class:`~edgesplit.errors.TransportError`; ``model``: a
    :class:`~edgesplit.models.ModelRequest` replacing the plan's recorded model options;
    ``transport``: the hops' transport (``ws`` or ``http``, default the engine's).
    """

    def __init__(
        self,
        plan: Plan | str | Path,
        topology: Topology | str | Path,
        *,
        codecs: Mapping[str, str] | None = None,
        token: str | None = None,
        failover: bool = True,
        trust_model_code: bool = False,
        model: ModelRequest | None = None,
        transport: str | None = None,
    ) -> None:
        from edgesplit.errors import TransportError
        from edgesplit.runtime.engine import engine_for, link_key
        from edgesplit.runtime.stages import build_stages, fingerprint

        self.plan, source = _plan_of(plan)
        for field in ("schedule", "exits"):
            if getattr(self.plan, field, None) is not None:
                raise InputError(
                    f"{source} has {field!r} (a Gao schedule or early-exit rules); run it with "
                    "`edgesplit run-plan`, a Deployment runs cuts and placements"
                )
        self.topology, where = _topology_of(topology)
        self.graph, self.module, self.example = model_of(self.plan, source, trust_model_code, model)
        recorded = self.plan.meta.get("codecs") or {}
        if not isinstance(recorded, dict):
            raise InputError(f"{source}: meta.codecs must map links to codecs; re-run plan -o")
        links: dict[str, str] = {}
        for key, codec in [*recorded.items(), *(codecs or {}).items()]:
            a, sep, b = str(key).partition("|") if "|" in str(key) else str(key).partition("-")
            if not sep:
                raise InputError(f"codecs key {key!r}: write 'A|B' or 'A-B' with two devices")
            links[link_key(a, b)] = str(codec)
        self.stages = build_stages(self.graph, self.plan.devices, self.plan.assignment)
        chosen: dict[str, Any] = {} if transport is None else {"transport": transport}
        try:
            self.engine: Engine = engine_for(
                self.stages,
                self.plan.model,
                fingerprint(self.graph),
                self.topology,
                token=token,
                codecs_by_link=links,
                failover=failover,
                **chosen,
            )
        except InputError as err:
            raise InputError(f"{source} on {where}: {err}") from None
        self._lock = threading.Lock()
        self._closed = False
        #: One line per first-hop server that did not answer ``/healthz`` at start.
        self.unreachable = self.engine.start()
        if self.unreachable and not failover:
            self.engine.close()
            raise TransportError(
                f"{self.unreachable[0]}; start it with `edgesplit serve --model "
                f"{self.plan.model}`, or keep failover on to run here until it answers"
            )
        for line in self.unreachable:
            log.warning("%s; running locally until it answers /healthz", line)

    def inputs(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, ...]:
        """The model's call ``model(*args, **kwargs)`` as graph inputs, shapes checked."""
        from edgesplit.graph.trace import flat_inputs

        if not args and not kwargs:
            raise InputError("infer() got no inputs; pass them as you would call the model")
        values = flat_inputs(self.module, self.graph, args, kwargs)
        check_inputs(self.graph, values)
        return values

    def infer(self, *args: Any, **kwargs: Any) -> Result:
        """One request with the model's own call signature; returns its :class:`Result`."""
        from edgesplit.graph.partition import assemble_output

        values = self.inputs(*args, **kwargs)
        with self._lock:
            if self._closed:
                raise InputError("this deployment is closed; create a new Deployment")
            outputs, record = self.engine.infer(values)
        return Result(assemble_output(self.graph, outputs), outputs, record)

    def close(self) -> None:
        """Close the connections to the servers (idempotent)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self.engine.close()

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def decoder(plan: Any, topology: Any, **options: Any) -> Any:
    """A decoder plan (``generate --save-plan``) on a topology: ``generate(prompt_ids,
    tokens)`` per generation, then ``close()``; options as
    :class:`edgesplit.runtime.decode.DecoderDeployment` (token, failover, model)."""
    from edgesplit.runtime.decode import DecoderDeployment

    return DecoderDeployment(plan, topology, **options)
