"""Scheduled plans on the engine: N requesting devices, one shared server, the planned order.

A plan with a ``schedule`` (Gao et al. 2019; :mod:`edgesplit.plan.types`) names, per
requesting device, its model, its split ``cut`` and the server's node ranges
(``segments``), and the order in which the server serves all segments of a round. Here:

* each requesting device is one :class:`ScheduledDevice`: its own stages (nodes
  ``[0, cut)`` on the plan's first device, here; segment ``j`` a stage of its own on the
  server, so the server can serve another device's segment between two of this one's),
  its own engine (its own link and clock emulation from the topology) and, per round, the
  tickets of its server stages (its segments' places in the planned order) in the
  request's ``order`` (:mod:`edgesplit.runtime.order`), under a key shared by the run's
  devices for that round;
* :func:`run_threads` runs all requesting devices in this process, one thread each, round
  by round (a barrier starts every round together, as Gao's requests all arrive at t=0);
  ``multidevice run`` runs each in its own process instead (same :class:`ScheduledDevice`).

The server honours the order whatever the arrival order, and its records say in which
place it served each segment (``turns``, ``served``). Outputs are ``torch.equal`` to the
unsplit model's (same kernels and thread counts). Per round: O(nodes) compute per device.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from edgesplit.errors import InputError
from edgesplit.graph import Graph
from edgesplit.runtime.stages import Stages, build_stages


def request_stages(graph: Graph, request: Mapping[str, Any], local: str, server: str) -> Stages:
    """One requesting device's stages: ``[0, cut)`` on ``local``, each segment on ``server``."""
    n = len(graph.nodes)
    cut, segments = int(request["cut"]), [tuple(s) for s in request["segments"]]
    end = segments[-1][1] if segments else cut
    if end != n:
        raise InputError(
            f"schedule request {request['name']!r} covers nodes 0..{end} but "
            f"{graph.name!r} has {n}; re-plan with the same model"
        )
    assignment = [0] * cut
    for j, (first, stop) in enumerate(segments):
        assignment += [j + 1] * (stop - first)
    return build_stages(graph, (local, *[server] * len(segments)), assignment)


def tickets(
    schedule: Mapping[str, Any], request: Mapping[str, Any], stages: Stages
) -> dict[str, int]:
    """Stage index (as text) -> its place in the planned order, for one requesting device."""
    place = {(str(n), int(j)): t for t, (n, j) in enumerate(schedule["order"])}
    graph = stages.graph
    out: dict[str, int] = {}
    for j, (first, _stop) in enumerate(request["segments"]):
        node = graph.nodes[int(first)].name
        stage = next(st.index for st in stages.stages if node in st.part.node_names)
        out[str(stage)] = place[(str(request["name"]), j)]
    return out


class ScheduledDevice:
    """One requesting device of a scheduled plan: its engine and its tickets per round.

    ``make_engine(stages, model)`` builds the engine (the caller's topology, token,
    codecs, failover); ``run_id`` is shared by every device of one run.
    """

    def __init__(
        self,
        schedule: Mapping[str, Any],
        name: str,
        graph: Graph,
        local: str,
        make_engine: Callable[[Stages, str], Any],
        run_id: str,
    ) -> None:
        found = [r for r in schedule["requests"] if r["name"] == name]
        if not found:
            names = ", ".join(r["name"] for r in schedule["requests"])
            raise InputError(f"schedule has no request {name!r}; it has {names}")
        self.request, self.name, self.run_id = found[0], name, run_id
        self.stages = request_stages(graph, self.request, local, schedule["server"])
        self.tickets = tickets(schedule, self.request, self.stages)
        self.timeout_s = float(schedule.get("timeout_s", 5.0))
        self.engine = make_engine(self.stages, self.request["model"])

    def infer(
        self, inputs: Sequence[torch.Tensor], round_: int
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Run round ``round_`` of this device's request; the record names device and round."""
        self.engine.order = (
            {
                "key": f"{self.run_id}:{round_}",
                "tickets": self.tickets,
                "timeout_s": self.timeout_s,
                "device": self.name,
            }
            if self.tickets
            else {}
        )
        outs, record = self.engine.infer(inputs)
        return outs, {"device": self.name, "round": round_, **record}

    def close(self) -> None:
        self.engine.close()


def new_run_id() -> str:
    """A run's id: rounds of two runs on one server never share a turnstile."""
    return uuid.uuid4().hex[:12]


def run_threads(
    devices: Sequence[ScheduledDevice],
    rounds: int,
    inputs: Callable[[ScheduledDevice, int], Sequence[torch.Tensor]],
    on_result: Callable[[ScheduledDevice, int, dict[str, torch.Tensor], dict[str, Any]], None],
) -> None:
    """Every device in its own thread, ``rounds`` rounds, each round started together.

    ``inputs(device, round)`` gives a request's inputs; ``on_result`` receives each
    output and record (called from the device's thread). The first error is re-raised
    after every thread has stopped.
    """
    barrier = threading.Barrier(len(devices))
    errors: list[BaseException] = []

    def work(dev: ScheduledDevice) -> None:
        try:
            for r in range(rounds):
                xs = inputs(dev, r)
                barrier.wait()
                outs, record = dev.infer(xs, r)
                on_result(dev, r, outs, record)
        except threading.BrokenBarrierError:
            return
        except BaseException as err:  # re-raised in the caller's thread below
            errors.append(err)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(d,), daemon=True) for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def served_order(records: Sequence[Mapping[str, Any]]) -> dict[int, list[tuple[str, int]]]:
    """Per round: (device, ticket) of every served turn, in the order the server served them."""
    by_round: dict[int, list[tuple[int, str, int]]] = {}
    for rec in records:
        for turn in rec.get("turns", []):
            by_round.setdefault(int(rec["round"]), []).append(
                (int(turn["served"]), str(turn["device"]), int(turn["ticket"]))
            )
    return {r: [(d, t) for _, d, t in sorted(v)] for r, v in by_round.items()}


def open_device(
    plan: Any,
    name: str,
    topology: Any,
    run_id: str,
    *,
    token: str | None = None,
    failover: bool = True,
    trust_model_code: bool = False,
) -> tuple[ScheduledDevice, Any, tuple[torch.Tensor, ...]]:
    """Requesting device ``name`` of ``plan`` on ``topology``: (device, module, example inputs).

    Builds and traces the request's model from its recorded options, checks the recorded
    fingerprint, and gives it an engine from the topology's local device (its clock and
    shaped links). InputError when the model, the fingerprint or the topology do not fit.
    """
    from edgesplit.graph.trace import flat_inputs
    from edgesplit.models import ModelRequest
    from edgesplit.models.loader import trace_request
    from edgesplit.runtime.engine import engine_for
    from edgesplit.runtime.stages import fingerprint, fingerprint_mismatch

    schedule = plan.schedule
    request = next((r for r in schedule["requests"] if r["name"] == name), None)
    if request is None:
        names = ", ".join(r["name"] for r in schedule["requests"])
        raise InputError(f"schedule has no request {name!r}; it has {names}")
    source = f"schedule request {name!r}"
    model = ModelRequest.from_record(
        request["model"], request["model_options"], source, trust_model_code
    )
    graph, module, example = trace_request(model, "layer")
    mine = fingerprint(graph)
    if request["fingerprint"]:
        mismatch = fingerprint_mismatch(mine, request["fingerprint"])
        if mismatch:
            raise InputError(f"{source}: {mismatch}")
    if plan.devices[0] != topology.local:
        raise InputError(
            f"a scheduled plan's requests start on its device {plan.devices[0]!r}, but the "
            f"topology's local device is {topology.local!r}; name them alike"
        )

    def make_engine(stages: Stages, model_name: str) -> Any:
        return engine_for(stages, model_name, mine, topology, token, None, None, failover)

    device = ScheduledDevice(schedule, name, graph, topology.local, make_engine, run_id)
    return device, module, flat_inputs(module, graph, example.args, example.kwargs)
