"""Real execution of a multi-device schedule on loopback: one server process, N agents.

``run_schedule(problem, schedule)`` starts

* one **server process** that accepts the N agents, gives them a common start time
  ``t0`` (``CLOCK_MONOTONIC`` is shared by all processes of one host), then runs the
  planned server segments *strictly in the planned order*, one at a time, each as a part
  of :func:`edgesplit.graph.partition.split_at` (a device's tail is split at the
  planned segment boundaries, so interleaved tails run exactly as planned); after a
  device's last segment it returns the model output;
* **N agent processes**: each runs its head (``split_at(graph, [k])``), uploads the
  crossing tensors as one safetensors document (:mod:`edgesplit.runtime.wire`, never
  pickle) through its *own* in-process token-bucket shaper at the device's uplink rate
  (:class:`edgesplit.runtime.shaping.TokenBucketShaper`, 1,500-byte bucket so the
  transfer takes ``O/r`` as in eq. 3), then waits for the output. Completion = output
  received − ``t0``. After timing, the agent checks that the output is ``torch.equal`` to
  its own unsplit forward pass.

Mobile speed is emulated by time dilation on *CPU time* (:func:`_dilate`): a head that
used ``t`` CPU seconds ends ``t · local_factor`` after it began; server segments likewise
by ``server_factor / (1 - load)`` (no dilation at factor 1). The factors come from the
instance (``MecProblem.meta``).
The downlink of the (small) output is not shaped and not in the paper's model. Each
process uses one torch thread; on a 2-core host the N + 1 processes share the cores, which
the measured times include.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import queue
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

from edgesplit.errors import InputError, TransportError
from edgesplit.multidevice.problem import MecProblem, Schedule

_START_DELAY_S = 0.5
_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class RunResult:
    """Measured against predicted completion times of one real run."""

    predicted_average_s: float
    measured_average_s: float
    devices: tuple[dict[str, Any], ...]
    server: tuple[dict[str, Any], ...]
    outputs_equal: bool
    shaping: str = "in-process token bucket per agent socket, 1500-byte bucket"
    dilation: str = (
        "time-dilation on thread CPU time: head x local_factor, server x factor/(1-load)"
    )

    @property
    def ratio(self) -> float:
        return self.measured_average_s / self.predicted_average_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "predicted_average_s": self.predicted_average_s,
            "measured_average_s": self.measured_average_s,
            "measured_over_predicted": self.ratio,
            "error": abs(self.ratio - 1.0),
            "outputs_equal": self.outputs_equal,
            "shaping": self.shaping,
            "dilation": self.dilation,
            "devices": list(self.devices),
            "server": list(self.server),
        }


def _send_frame(sock: socket.socket, data: bytes, shaper: Any = None) -> None:
    frame = struct.pack(">Q", len(data)) + data
    if shaper is None:
        sock.sendall(frame)
        return
    for chunk in shaper.pace(frame):
        sock.sendall(chunk)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        part = sock.recv(min(1 << 20, n - len(buf)))
        if not part:
            raise TransportError("peer closed the connection in the middle of a frame")
        buf += part
    return bytes(buf)


def _recv_frame(sock: socket.socket, max_bytes: int = 256 << 20) -> bytes:
    (n,) = struct.unpack(">Q", _recv_exact(sock, 8))
    if n > max_bytes:
        raise TransportError(f"frame of {n} bytes is over the {max_bytes}-byte limit")
    return _recv_exact(sock, n)


def _dilate(factor: float, fn: Any) -> Any:
    """Run ``fn`` as on a dedicated CPU ``factor`` times slower than this one.

    The emulated duration is the thread's *CPU* time times ``factor`` (we sleep the rest),
    so that N + 1 processes sharing two cores do not inflate the emulated device time the
    way wall-clock dilation would (waiting for a core is not mobile compute).
    """
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    out = fn()
    cpu = time.thread_time() - cpu0
    extra = cpu * factor - (time.perf_counter() - wall0)
    if extra > 0:
        time.sleep(extra)
    return out


def _graph(model: str) -> tuple[Any, Any]:
    import torch

    from edgesplit.graph import trace
    from edgesplit.models import build

    torch.set_num_threads(1)
    module, x = build(model)
    return trace(module, x, name=model), x


def _server_main(config: dict[str, Any], port_q: Any, result_q: Any) -> None:
    import torch

    from edgesplit.graph.partition import split_at
    from edgesplit.runtime.wire import decode_tensors, encode_tensors

    devices = config["devices"]
    graphs = {d["model"]: _graph(d["model"])[0] for d in devices if d["split"] < d["m"]}
    parts = {}
    for i, d in enumerate(devices):
        if d["split"] < d["m"]:
            bounds = sorted(
                {d["split"], *(s[2] for s in config["segments"] if s[0] == i)} - {d["m"]}
            )
            parts[i] = split_at(graphs[d["model"]], bounds).parts
    with torch.inference_mode():  # warm up every part once (first calls allocate)
        for i, d in enumerate(devices):
            if i in parts:
                graph = graphs[d["model"]]
                model_values = {graph.input_names[0]: _graph(d["model"])[1]}
                for part in parts[i]:
                    model_values.update(part(model_values))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(_TIMEOUT_S)
    port_q.put(listener.getsockname()[1])
    conns: dict[int, socket.socket] = {}
    while len(conns) < len(devices):
        conn, _ = listener.accept()
        conn.settimeout(_TIMEOUT_S)
        hello = json.loads(_recv_frame(conn))
        conns[int(hello["device"])] = conn
    arrived = {i: threading.Event() for i in conns}
    received: dict[int, tuple[dict[str, Any], float]] = {}
    t0 = time.monotonic() + _START_DELAY_S

    def reader(i: int) -> None:
        data = _recv_frame(conns[i])
        received[i] = (decode_tensors(data), time.monotonic() - t0)
        arrived[i].set()

    for i, conn in conns.items():
        _send_frame(conn, json.dumps({"t0": t0}).encode())
        if devices[i]["split"] < devices[i]["m"]:
            threading.Thread(target=reader, args=(i,), daemon=True).start()
    values: dict[int, dict[str, Any]] = {}
    log = []
    factor = config["server_factor"]
    with torch.inference_mode():
        for i, first, stop in config["segments"]:
            if i not in values:
                if not arrived[i].wait(_TIMEOUT_S):
                    raise TransportError(f"device {i} never sent its split output")
                values[i] = dict(received[i][0])
            start = time.monotonic() - t0
            for part in parts[i]:
                if (
                    part.node_names
                    and first <= graphs[devices[i]["model"]].index(part.node_names[0]) < stop
                ):
                    values[i].update(_dilate(factor[i], lambda p=part, v=values[i]: p(v)))
            finish = time.monotonic() - t0
            log.append(
                {
                    "device": i,
                    "layers": [first, stop],
                    "start_s": start,
                    "finish_s": finish,
                    "arrival_s": received[i][1],
                }
            )
            if stop == devices[i]["m"]:
                g = graphs[devices[i]["model"]]
                _send_frame(conns[i], encode_tensors({n: values[i][n] for n in g.output_names}))
    result_q.put({"server": log})
    for conn in conns.values():
        conn.close()


def _agent_main(config: dict[str, Any], i: int, port: int, result_q: Any) -> None:
    import torch

    from edgesplit.graph.partition import split_at
    from edgesplit.runtime.shaping import TokenBucketShaper
    from edgesplit.runtime.wire import decode_tensors, encode_tensors
    from edgesplit.system.link import Link

    d = config["devices"][i]
    graph, x = _graph(d["model"])
    k, m = d["split"], d["m"]
    head = split_at(graph, [k]).parts[0]
    shaper = TokenBucketShaper(Link.of(d["uplink_mbps"] * 1e6), burst_bytes=1500, chunk_bytes=1500)
    with torch.inference_mode():  # warm-up and reference output, before the clock starts
        reference = graph.module(x)
        for _ in range(3):
            head({graph.input_names[0]: x})
    sock = socket.create_connection(("127.0.0.1", port), timeout=_TIMEOUT_S)
    _send_frame(sock, json.dumps({"device": i}).encode())
    t0 = json.loads(_recv_frame(sock))["t0"]
    time.sleep(max(0.0, t0 - time.monotonic()))
    with torch.inference_mode():
        values: dict[str, Any] = {graph.input_names[0]: x}
        if k > 0:
            values.update(_dilate(d["local_factor"], lambda: head(values)))
        local_done = time.monotonic() - t0
        sent_bytes = 0
        if k < m:
            payload = encode_tensors({t.name: values[t.name] for t in graph.cut(k).tensors})
            sent_bytes = len(payload)
            _send_frame(sock, payload, shaper)
            upload_done = time.monotonic() - t0
            out = decode_tensors(_recv_frame(sock))
        else:
            upload_done = local_done
            out = {n: values[n] for n in graph.output_names}
        completion = time.monotonic() - t0
    equal = (
        torch.equal(out[graph.output_names[0]], reference)
        if isinstance(reference, torch.Tensor)
        else True
    )
    sock.close()
    result_q.put(
        {
            "device": i,
            "local_done_s": local_done,
            "upload_done_s": upload_done,
            "completion_s": completion,
            "sent_bytes": sent_bytes,
            "output_equal": bool(equal),
        }
    )


def _collect(result_q: Any, count: int, procs: list[Any], timeout_s: float) -> list[dict[str, Any]]:
    """Gather ``count`` results, failing fast when a process died instead of waiting it out."""
    deadline = time.monotonic() + timeout_s
    results: list[dict[str, Any]] = []
    while len(results) < count:
        try:
            results.append(result_q.get(timeout=0.5))
            continue
        except queue.Empty:
            pass
        dead = [p for p in procs if p.exitcode not in (None, 0)]
        if dead:
            raise TransportError(
                f"multi-device run failed: process {dead[0].name} exited with code "
                f"{dead[0].exitcode}; see its stderr"
            )
        if time.monotonic() > deadline:
            raise TransportError(f"multi-device run got no result within {timeout_s:.0f} s")
    return results


def run_schedule(
    problem: MecProblem, schedule: Schedule, *, timeout_s: float = _TIMEOUT_S
) -> RunResult:
    """Execute ``schedule`` for real (see the module docstring) and compare with its prediction."""
    if any(d.model == "explicit" for d in problem.devices):
        raise InputError("every device needs a 'model' to run for real; explicit devices have none")
    local_factor = problem.meta.get("local_factor", [1.0] * problem.n)
    server_factor = problem.meta.get("server_factor", [1.0] * problem.n)
    config = {
        "devices": [
            {
                "model": d.model,
                "split": r.split,
                "m": d.m,
                "uplink_mbps": d.uplink.rate_bps / 1e6,
                "local_factor": local_factor[i],
            }
            for i, (d, r) in enumerate(zip(problem.devices, schedule.devices))
        ],
        "segments": [(s.device, s.first, s.stop) for s in schedule.segments],
        "server_factor": [f / (1.0 - problem.server_load) for f in server_factor],
    }
    # forkserver: torch is imported once by the fork server (which never runs a torch op,
    # so forking it is safe), instead of once per spawned process.
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "torchvision", "edgesplit.multidevice.execute"])
    port_q, result_q = ctx.Queue(), ctx.Queue()
    server = ctx.Process(target=_server_main, args=(config, port_q, result_q), daemon=True)
    server.start()
    try:
        port = port_q.get(timeout=timeout_s)
        agents = [
            ctx.Process(target=_agent_main, args=(config, i, port, result_q), daemon=True)
            for i in range(problem.n)
        ]
        for a in agents:
            a.start()
        results = _collect(result_q, problem.n + 1, [server, *agents], timeout_s)
    except TransportError:
        raise
    except Exception as err:
        raise TransportError(
            f"multi-device run failed: {err!r}; see the processes' stderr"
        ) from None
    finally:
        for p in [server, *locals().get("agents", [])]:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
    server_log = next(r["server"] for r in results if "server" in r)
    per_device = sorted((r for r in results if "device" in r), key=lambda r: r["device"])
    devices = []
    for r, pred in zip(per_device, schedule.devices):
        devices.append(
            {"name": pred.name, "split": pred.split, "predicted_s": pred.completion_s, **r}
        )
    measured = sum(r["completion_s"] for r in per_device) / problem.n
    return RunResult(
        predicted_average_s=schedule.average_s,
        measured_average_s=measured,
        devices=tuple(devices),
        server=tuple(server_log),
        outputs_equal=all(r["output_equal"] for r in per_device),
    )
