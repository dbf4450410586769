"""A Gao schedule as a :class:`~edgesplit.plan.types.Plan` that ``run-plan`` runs.

A :class:`~edgesplit.multidevice.problem.Schedule` (Gao et al. 2019, eq. 10-16: a split
per device and the server's order of subtasks) becomes a plan with a ``schedule``: per
device its model (and model options), its split ``cut`` and the server's node ranges
(``segments``, the schedule's :class:`~edgesplit.multidevice.problem.Segment` runs of one
device), and ``order``: every ``(device, segment)`` in the order the server runs them.
The plan's devices are the requesting role (``device``, where each request starts) and
the server (``mec``); its ``model``/``assignment``/``cut`` are the first device's split,
so a reader that knows only two-tier plans still sees a valid one. Layers are the traced
graph's nodes (:mod:`edgesplit.multidevice.instance`), so node ranges are layer ranges.
"""

from __future__ import annotations

from typing import Any

from edgesplit.errors import InputError
from edgesplit.multidevice.problem import MecProblem, Schedule
from edgesplit.plan.types import Plan

#: The plan's device names: where each request starts, and the shared server.
REQUESTER, SERVER = "device", "mec"


def model_options(problem: MecProblem, name: str) -> dict[str, Any]:
    """The model options a device's model was built with (its input shape, if any)."""
    from edgesplit.models import ModelRequest

    shape = problem.meta.get("input_shapes", {}).get(name)
    if not shape:
        return {}
    return ModelRequest.from_options(name, input_shape=",".join(map(str, shape))).describe()


def to_plan(
    problem: MecProblem,
    schedule: Schedule,
    fingerprints: dict[str, dict[str, str]] | None = None,
    timeout_s: float = 5.0,
) -> Plan:
    """The plan of ``schedule`` (see the module docstring); InputError for explicit devices.

    ``fingerprints``: model name -> its fingerprint (:func:`edgesplit.runtime.stages.fingerprint`),
    recorded per request so servers refuse another model.
    """
    explicit = [d.name for d in problem.devices if d.model == "explicit"]
    if explicit:
        raise InputError(
            f"device {explicit[0]!r} has no 'model' (explicit delays); a plan that runs for "
            "real needs a model per device"
        )
    segments: dict[int, list[list[int]]] = {}
    order: list[list[Any]] = []
    for seg in schedule.segments:
        runs = segments.setdefault(seg.device, [])
        order.append([problem.devices[seg.device].name, len(runs)])
        runs.append([seg.first, seg.stop])
    requests = [
        {
            "name": d.name,
            "model": d.model,
            "model_options": model_options(problem, d.model),
            "fingerprint": (fingerprints or {}).get(d.model, {}),
            "cut": r.split,
            "segments": segments.get(i, []),
        }
        for i, (d, r) in enumerate(zip(problem.devices, schedule.devices))
    ]
    first = problem.devices[0]
    cut = schedule.devices[0].split
    predicted = {"average_s": schedule.average_s}
    predicted.update({f"completion_{d.name}_s": d.completion_s for d in schedule.devices})
    return Plan.two_tier(
        first.model,
        f"gao-{schedule.algorithm}",
        first.m,
        cut,
        devices=(REQUESTER, SERVER),
        predicted=predicted,
        objective="average_completion",
        meta={
            "status": schedule.status,
            "gap": schedule.gap,
            "server_load": problem.server_load,
            "model_options": requests[0]["model_options"],
            "fingerprint": requests[0]["fingerprint"],
            "factors": {
                "local": problem.meta.get("local_factor"),
                "server": problem.meta.get("server_factor"),
            },
            "uplink_bps": {d.name: d.uplink.rate_bps for d in problem.devices},
        },
        schedule={"server": SERVER, "requests": requests, "order": order, "timeout_s": timeout_s},
    )
