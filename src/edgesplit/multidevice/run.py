"""``multidevice run``: N device processes and one ``edgesplit serve`` honouring Gao's order.

The plan (:mod:`edgesplit.multidevice.plan`) runs on the engine
(:mod:`edgesplit.runtime.scheduled`): one server process (``edgesplit serve``, the same
app as every tier, ``--threads 1`` and one slot per device so that waiting turns never
starve the turn they wait for) and one process per requesting device. Each device process
runs its own engine on one torch thread, with its own topology: the local device at the
instance's speed (``speed_factor`` = 1 / the local delay factor: the engine's clock
emulation) and its own uplink shaped at the device's rate (the engine's token bucket,
eq. 3 ``O/r``). Every round starts together (a process barrier, as all of Gao's requests
arrive at t = 0); the server runs the segments of the round in the planned order
(:mod:`edgesplit.runtime.order`). A device's completion time is its request's total on
its own clock. Each output is compared with the device's own unsplit forward pass, on the
same thread count as the server (bitwise).

What is not emulated: the server's delay factor and load (the server runs at host speed;
the JSON says so when the instance asks for another), and the downlink of the result
(not in the paper's model, not shaped).
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

from edgesplit.errors import TransportError

_TIMEOUT_S = 300.0


def device_topology(plan: Any, name: str, server_url: str) -> dict[str, Any]:
    """The topology one device process runs on: itself (local, its speed) and the server."""
    schedule = plan.schedule
    names = [r["name"] for r in schedule["requests"]]
    factors = plan.meta.get("factors", {}).get("local") or [1.0] * len(names)
    uplink = plan.meta.get("uplink_bps", {}).get(name)
    local: dict[str, Any] = {"name": plan.devices[0], "url": "local"}
    factor = float(factors[names.index(name)])
    if factor != 1.0:
        local["speed_factor"] = 1.0 / factor
    link: dict[str, Any] = {"a": plan.devices[0], "b": schedule["server"], "codecs": ["none"]}
    link.update({"bandwidth": float(uplink), "shaping": True} if uplink else {"bandwidth": 1e9})
    return {
        "devices": [local, {"name": schedule["server"], "url": server_url}],
        "links": [link],
    }


def device_main(
    plan_doc: dict[str, Any],
    name: str,
    server_url: str,
    rounds: int,
    run_id: str,
    barrier: Any,
    results: Any,
) -> None:
    """One device process: ``rounds`` requests, each after the barrier; records to ``results``."""
    import torch

    from edgesplit.plan.types import Plan
    from edgesplit.runtime.scheduled import open_device
    from edgesplit.system.topology import Topology

    torch.set_num_threads(1)
    plan = Plan.from_dict(plan_doc)
    topo = Topology.model_validate(device_topology(plan, name, server_url))
    try:
        device, module, inputs = open_device(plan, name, topo, run_id, trust_model_code=True)
        with torch.inference_mode():
            reference = module(*inputs)
        records = []
        for r in range(rounds):
            barrier.wait(timeout=_TIMEOUT_S)
            outs, record = device.infer(inputs, r)
            record["equal"] = outputs_equal(device, outs, reference)
            records.append(record)
        device.close()
        results.put({"device": name, "records": records})
    except BaseException as err:
        barrier.abort()
        results.put({"device": name, "error": f"{type(err).__name__}: {err}"})


def outputs_equal(device: Any, outs: Mapping[str, Any], reference: Any) -> bool:
    import torch
    import torch.utils._pytree as pytree

    from edgesplit.graph.partition import assemble_output

    got = pytree.tree_leaves(assemble_output(device.stages.graph, outs))
    ref = pytree.tree_leaves(reference)
    return len(got) == len(ref) and all(torch.equal(a, b) for a, b in zip(got, ref))


def run_processes(
    plan: Any, server_url: str, rounds: int, run_id: str, timeout_s: float = _TIMEOUT_S
) -> list[dict[str, Any]]:
    """Start one process per requesting device against ``server_url``; their records."""
    names = [r["name"] for r in plan.schedule["requests"]]
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "torchvision", "edgesplit.multidevice.run"])
    barrier, results = ctx.Barrier(len(names)), ctx.Queue()
    procs = [
        ctx.Process(
            target=device_main,
            args=(plan.to_dict(), n, server_url, rounds, run_id, barrier, results),
            daemon=True,
            name=f"device {n}",
        )
        for n in names
    ]
    for p in procs:
        p.start()
    try:
        got = _collect(results, len(names), procs, timeout_s)
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
    failed = [g for g in got if "error" in g]
    if failed:
        raise TransportError(f"device {failed[0]['device']!r} failed: {failed[0]['error']}")
    return [rec for g in got for rec in g["records"]]


def _collect(results: Any, count: int, procs: list[Any], timeout_s: float) -> list[dict[str, Any]]:
    """Gather ``count`` results, failing fast when a process died instead of waiting it out."""
    deadline = time.monotonic() + timeout_s
    got: list[dict[str, Any]] = []
    while len(got) < count:
        try:
            got.append(results.get(timeout=0.5))
            continue
        except queue.Empty:
            pass
        dead = [p for p in procs if p.exitcode not in (None, 0)]
        if dead:
            raise TransportError(f"{dead[0].name} exited with code {dead[0].exitcode}")
        if time.monotonic() > deadline:
            raise TransportError(f"multi-device run got no result within {timeout_s:.0f} s")
    return got


def summarise(plan: Any, records: Sequence[Mapping[str, Any]], rounds: int) -> dict[str, Any]:
    """Measured against predicted completion per device, and served against planned order.

    Completion is the median of a device's rounds after the first (the first warms up
    connections and allocators) when there are several.
    """
    from edgesplit.runtime.scheduled import served_order

    schedule = plan.schedule
    planned = [(str(n), int(j)) for n, j in schedule["order"]]
    devices = []
    for req in schedule["requests"]:
        mine = sorted((r for r in records if r["device"] == req["name"]), key=lambda r: r["round"])
        timed = mine[1:] if len(mine) > 1 else mine
        devices.append(
            {
                "name": req["name"],
                "model": req["model"],
                "split": req["cut"],
                "predicted_s": plan.predicted.get(f"completion_{req['name']}_s"),
                "measured_s": statistics.median(r["total_s"] for r in timed),
                "equal": all(r.get("equal", True) for r in mine),
            }
        )
    served = served_order(records)
    ticket_of = {t: entry for t, entry in enumerate(planned)}
    in_order = {r: [ticket_of[t] for _, t in turns] == planned for r, turns in served.items()}
    if not planned:  # nothing offloaded: no turn to serve, every round trivially in order
        in_order = dict.fromkeys(range(rounds), True)
    measured = statistics.mean(d["measured_s"] for d in devices)
    predicted = plan.predicted.get("average_s")
    return {
        "rounds": rounds,
        "predicted_average_s": predicted,
        "measured_average_s": measured,
        "measured_over_predicted": measured / predicted if predicted else None,
        "outputs_equal": all(d["equal"] for d in devices),
        "planned_order": [list(e) for e in planned],
        "order_honoured": len(in_order) == rounds and all(in_order.values()),
        "rounds_in_order": sum(in_order.values()),
        "timed_out_turns": sum(
            t["timed_out"] for r in records for t in r.get("turns", []) if t.get("timed_out")
        ),
        "devices": devices,
    }
