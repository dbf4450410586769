"""Turn each device's ``compute`` spec (:class:`edgesplit.system.ComputeSpec`) into per-node
seconds for one graph.

A profile gives measured medians (matched by node name; the profile must come from the
same model and granularity). A predictor file gives predicted seconds. ``relative_to``
reuses another device's seconds. Then the speed factor and the clock ratio apply
(the profile predictor of :mod:`edgesplit.predict.profile_predictor`). O(k·n).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from edgesplit.errors import InputError
from edgesplit.graph.types import Graph
from edgesplit.predict.profile import saved_seconds
from edgesplit.system.model import Device, System


def _scale(device: Device) -> float:
    spec = device.compute
    factor = 1.0 / spec.speed_factor
    if spec.reference_clock is not None and device.clock is not None:
        factor *= spec.reference_clock / device.clock
    return factor


def device_seconds(
    system: System,
    graph: Graph,
    names: Sequence[str],
    given: Mapping[str, Sequence[float]],
) -> dict[str, list[float]]:
    """Seconds per node for every device in ``names`` (``given`` wins over the file)."""
    n = len(graph.nodes)
    for name, vals in given.items():
        if len(vals) != n:
            raise InputError(
                f"seconds for device {name!r} has {len(vals)} entries; graph has {n} nodes"
            )
    out: dict[str, list[float]] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> list[float]:
        if name in out:
            return out[name]
        if name in chain:
            raise InputError(f"compute.relative_to forms a cycle: {' -> '.join((*chain, name))}")
        device = system.device(name)
        spec = device.compute
        if name in given:
            base = [float(v) for v in given[name]]
            factor = 1.0
        elif spec.profile:
            base = saved_seconds(spec.profile, graph, calibrate=spec.calibrate)
            factor = _scale(device)
        elif spec.predictor:
            from edgesplit.predict.store import load_predictor

            base = [float(v) for v in load_predictor(spec.predictor).predict_graph(graph)]
            factor = _scale(device)
        elif spec.relative_to:
            base, factor = resolve(spec.relative_to, (*chain, name)), _scale(device)
        else:
            raise InputError(
                f"device {name!r} has no compute source; set compute.profile, "
                f"compute.predictor or compute.relative_to (or pass --edge-profile/--cloud-profile)"
            )
        out[name] = [v * factor for v in base]
        return out[name]

    for name in names:
        resolve(name, ())
    return out
