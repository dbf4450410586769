"""Early-exit plans on the engine: a runnable plan, and ``earlyexit run``'s tiers.

:func:`runnable_plan` turns a solver's :class:`~edgesplit.plan.types.Plan` (Zuo 2024,
eq. 4.8; devices ``mobile``, ``edge``, ``cloud``) into one that ``run-plan`` runs: the
model by the import path every process builds it from (``edgesplit.models.branchy:NAME``,
seeded, or with the instance's trained ``weights``), its input, its fingerprint, and
``exits``: each exit's graph output, the exits' accuracies and the exit rule (by default
the accuracy requirement's mean, as Edgent's comparison uses it; ``earlyexit run`` and
the plan file can name another).

:func:`launch` starts the remote tiers as ``edgesplit serve`` processes (the one server
app, one torch thread each, like the mobile side here): the cloud, then the edge with a
topology that makes it relay the cloud's stages (mobile → edge → cloud, eq. 4.5: the
mobile device talks only to the edge). Servers bind 127.0.0.1 on free ports.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgesplit.earlyexit.problem import TIER_NAMES, EarlyExitProblem
from edgesplit.plan.types import Plan

#: The import path of a BranchyNet of the zoo, as every tier builds it.
BRANCHY_PATH = "edgesplit.models.branchy:{name}"
#: The BranchyNets' input (Zuo 2024: 32x32x3 images).
INPUT_SHAPE = "1,3,32,32"


def model_options(weights: str | None) -> dict[str, Any]:
    """Model options of a zoo BranchyNet: its input, and trained weights if any."""
    from edgesplit.models import ModelRequest

    request = ModelRequest.from_options("x", input_shape=INPUT_SHAPE, weights=weights)
    return request.describe()


def runnable_plan(
    plan: Plan,
    problem: EarlyExitProblem,
    graph: Any,
    weights: str | None,
    requirement: float,
) -> Plan:
    """``plan`` with the model path, options, fingerprint and ``exits`` ``run-plan`` needs."""
    from edgesplit.runtime.stages import fingerprint

    options = model_options(weights)
    exits = {
        "outputs": list(graph.output_names),
        "accuracies": list(problem.accuracies),
        "rule": "requirement",
        "requirement": requirement,
    }
    meta = {**plan.meta, "model_options": options, "fingerprint": fingerprint(graph)}
    return dataclasses.replace(
        plan, model=BRANCHY_PATH.format(name=graph.name), meta=meta, exits=exits
    )


def topology(
    edge_url: str, cloud_url: str, wireless_bps: float, wired_bps: float
) -> dict[str, Any]:
    """mobile (local) — edge — cloud, with the instance's link rates (not shaped)."""
    mobile, edge, cloud = TIER_NAMES
    return {
        "devices": [
            {"name": mobile, "url": "local"},
            {"name": edge, "url": edge_url},
            {"name": cloud, "url": cloud_url},
        ],
        "links": [
            {"a": mobile, "b": edge, "bandwidth": wireless_bps, "codecs": ["none"]},
            {"a": edge, "b": cloud, "bandwidth": wired_bps, "codecs": ["none"]},
        ],
    }


@contextlib.contextmanager
def launch(
    plan: Plan, workdir: Path, wireless_bps: float, wired_bps: float
) -> Iterator[dict[str, Any]]:
    """Start cloud and edge ``edgesplit serve`` processes; yields the mobile's topology doc."""
    from edgesplit.io import write_json
    from edgesplit.runtime.server import ServerProcess

    options = plan.meta["model_options"]
    args = ["--input-shape", INPUT_SHAPE, "--threads", "1", "--trust-model-code"]
    if options.get("weights"):
        args += ["--weights", str(options["weights"])]
    cloud = ServerProcess((plan.model,), args=tuple(args))
    edge = ServerProcess((plan.model,), args=tuple(args))
    doc = topology(edge.url, cloud.url, wireless_bps, wired_bps)
    path = write_json(workdir / "topology-earlyexit.json", doc)
    edge.args = (*edge.args, "--topology", str(path), "--as", TIER_NAMES[1])
    servers = []
    try:
        for server in (cloud, edge):
            servers.append(server.start())
        yield doc
    finally:
        for server in servers:
            server.stop()
