"""The engine: run a plan's stages across real tiers, relaying tensors device to device.

Stages come from :mod:`edgesplit.runtime.stages`. A request walks them in order. The
walk is a call stack of devices: the device holding the cursor runs its own stages; when
the next stage belongs to another device it either *sends* (``POST /v1/stage``) to that
device, when its own topology links it there, or *returns* to its caller, when that
device is already on the stack or not reachable from here. So device → edge → cloud is a
relay chain (the edge forwards to the cloud itself, never back through the device), the
cloud's answer comes back down the chain, and the final outputs reach the device the run
started on. A server learns its next hops only from its own topology (``serve --topology
FILE --as NAME``); the request carries the plan's identity (model, devices, assignment,
fingerprint), the cursor, the stack, the codec per link and the tensors.

What a message carries (the relay rule, each tensor once per message)
    send X → Y at cursor c: the values X holds that stages ``c..e-1`` read, where ``e``
    is the first later stage on a device already on the stack (the walk must return
    before ``e``); X keeps the rest.
    reply Y → X at cursor c': the values Y holds that did not come from X and that a
    stage at or after c' reads, or that are model outputs.
A tensor read by several later stages on one device crosses each link once. A value
needed again by a device after the walk has left it is sent again (documented limit).

Times come from one clock per machine: a hop's transfer seconds are the sender's round
trip minus the receiver's reported processing seconds; clocks are never compared. This is
Luger 2023's split of a request's latency (eq. 3.1–3.4: edge, communication and cloud
time, the communication time being the round trip less the cloud's own), applied per
stage and per hop; unlike eq. 3.2 it subtracts a duration the receiver measured itself,
never the receiver's wall-clock stamps.
The transport is a seam (:class:`StageTransport`): WebSocket messages by default
(:mod:`.binwire`), or ``POST /v1/stage`` with safetensors bodies.

Failover (on by default). A hop that cannot be reached, times out, or answers 5xx (a
relay's 502 when a tier past it died) raises :class:`HopFailed` naming the device that
failed. The engine then runs the request's remaining stages here, from the cursor the
failed hop was sent at and the tensors this device holds (it holds every value a stage at
or after that cursor reads: model inputs, its own outputs, and what replies carried back);
the parts are the same partition parts, so the output is still ``torch.equal`` to the
unsplit model. The record is marked (``failover``, ``failed_device``, ``failover_stage``)
and later requests run here too until a health probe of the first hops succeeds, probed
at most once per ``probe_every_s`` and only between requests.

Emulation and pipelining. Each process emulates, from its own topology, the links and
clocks of the devices it runs (:mod:`.emulation`): a shaped link's message is paced by
its receiver on one token bucket per direction, a device's stages run under its clock in
one compute slot. ``Engine.infer`` is safe to call from several threads, which is how
``run-plan --concurrency K`` keeps K requests in flight (:mod:`.pipeline`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import httpx
import torch

from edgesplit.errors import InputError, ShapeError, TransportError
from edgesplit.runtime import codecs, order, wire
from edgesplit.runtime.emulation import Emulation
from edgesplit.runtime.security import client_context, hop_token
from edgesplit.runtime.stages import SKIP, Stages, fingerprint_mismatch
from edgesplit.runtime.transport import ServerRejected
from edgesplit.system.codecs import link_key

#: Metadata key of a stage request's control document, and of a reply's report.
CONTROL = "edgesplit.stage"
REPORT = "edgesplit.reply"


class HopFailed(TransportError):
    """A hop's device (or one past it) is unreachable, timed out or answered 5xx."""

    def __init__(self, device: str, message: str) -> None:
        super().__init__(message)
        self.device = device
        #: The stage the failed hop was sent at (set by :func:`walk`).
        self.cursor = -1
        #: Retries made before giving up (set by :class:`edgesplit.runtime.loop.RetryingHop`).
        self.retries = 0


#: Header of a relay's 502 naming the device past it that failed.
FAILED_HEADER = "x-edgesplit-failed-device"


class FingerprintError(InputError):
    """A stage's plan was made for another model than the one served (HTTP 409)."""


@dataclass(frozen=True)
class StageRequest:
    """A stage request's identity and routing state (plain JSON in the body's metadata)."""

    model: str
    devices: tuple[str, ...]
    assignment: tuple[int, ...]
    fingerprint: dict[str, str]
    cursor: int
    to: str
    stack: tuple[str, ...]
    codecs: dict[str, str] = field(default_factory=dict)
    #: A scheduled plan's turns on a shared server (:mod:`edgesplit.runtime.order`).
    order: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "model": self.model,
                "devices": list(self.devices),
                "assignment": ",".join(map(str, self.assignment)),
                "fingerprint": self.fingerprint,
                "cursor": self.cursor,
                "to": self.to,
                "stack": list(self.stack),
                "codecs": self.codecs,
                "order": self.order,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> StageRequest:
        try:
            doc = json.loads(text)
            return cls(
                model=str(doc["model"]),
                devices=tuple(str(d) for d in doc["devices"]),
                assignment=tuple(int(a) for a in str(doc["assignment"]).split(",")),
                fingerprint={str(k): str(v) for k, v in dict(doc["fingerprint"]).items()},
                cursor=int(doc["cursor"]),
                to=str(doc["to"]),
                stack=tuple(str(d) for d in doc["stack"]),
                codecs={str(k): str(v) for k, v in dict(doc.get("codecs", {})).items()},
                order=dict(doc.get("order") or {}),
            )
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as err:
            raise InputError(
                f"metadata {CONTROL!r} must be JSON with model, devices, assignment, "
                f"fingerprint, cursor, to and stack ({type(err).__name__}: {err})"
            ) from None


@dataclass
class Log:
    """What one walk measured: stages run, hops made, tiers seen (merged up the chain)."""

    stages: list[dict[str, Any]] = field(default_factory=list)
    hops: list[dict[str, Any]] = field(default_factory=list)
    tiers: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Turns served on a shared server, in a scheduled plan (:mod:`.order`).
    turns: list[dict[str, Any]] = field(default_factory=list)

    def merge(self, doc: Mapping[str, Any]) -> None:
        self.stages.extend(doc.get("stages", []))
        self.hops.extend(doc.get("hops", []))
        self.tiers.update(doc.get("tiers", {}))
        self.turns.extend(doc.get("turns", []))

    def to_dict(self) -> dict[str, Any]:
        doc = {"stages": self.stages, "hops": self.hops, "tiers": self.tiers}
        return {**doc, "turns": self.turns} if self.turns else doc


@dataclass(frozen=True)
class StageReply:
    """A hop's answer: tensors coming back, where the walk stands, and what was measured."""

    tensors: dict[str, torch.Tensor]
    cursor: int
    log: dict[str, Any]
    hop: dict[str, Any]


class StageTransport(Protocol):
    """Moves one stage request to the next device ``dst`` and brings its reply back."""

    dst: str

    def send(self, stage: StageRequest, tensors: Mapping[str, torch.Tensor]) -> StageReply: ...

    def unreachable(self) -> str | None:
        """None when ``dst`` answers a health probe, else one line saying why not."""
        ...

    def close(self) -> None: ...


def _raw_bytes(tensors: Mapping[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


class HTTPStageTransport:
    """``POST /v1/stage`` over one persistent httpx client; the codec comes from the request."""

    def __init__(
        self,
        src: str,
        dst: str,
        url: str,
        token: str | None = None,
        timeout_s: float = 60.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.src, self.dst, self.url = src, dst, url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # A given client (a Starlette TestClient in tests) replaces the socket one.
        self._client = client or httpx.Client(
            timeout=timeout_s, headers=headers, verify=client_context()
        )

    def send(self, stage: StageRequest, tensors: Mapping[str, torch.Tensor]) -> StageReply:
        codec = stage.codecs.get(link_key(self.src, self.dst), "none")
        t0 = time.perf_counter()
        body, _ = codecs.encode(tensors, codec, {CONTROL: stage.to_json()})
        t1 = time.perf_counter()
        try:
            resp = self._client.post(f"{self.url}/v1/stage", content=body)
        except httpx.HTTPError as err:
            msg = f"{self.dst} at {self.url}: {type(err).__name__}: {err}"
            raise HopFailed(self.dst, msg) from None
        t2 = time.perf_counter()
        if resp.status_code != 200:
            try:
                msg = str(resp.json().get("error", resp.text))
            except ValueError:
                msg = resp.text[:200]
            if resp.status_code >= 500:
                failed = resp.headers.get(FAILED_HEADER, self.dst)
                raise HopFailed(
                    failed, f"{self.dst} at {self.url} answered {resp.status_code}: {msg}"
                )
            raise ServerRejected(resp.status_code, f"{self.dst} at {self.url}: {msg}")
        back = codecs.decode(resp.content)
        t3 = time.perf_counter()
        report = json.loads(wire.decode_metadata(resp.content).get(REPORT, "{}"))
        remote_s = float(resp.headers.get("x-edgesplit-processing-s", "0"))
        hop = {
            "src": self.src,
            "dst": self.dst,
            "codec": codec,
            "tensors_sent": sorted(tensors),
            "tensors_back": sorted(back),
            "sent_raw_bytes": _raw_bytes(tensors),
            "sent_wire_bytes": len(body),
            "reply_raw_bytes": _raw_bytes(back),
            "reply_wire_bytes": len(resp.content),
            "encode_s": (t1 - t0) + float(resp.headers.get("x-edgesplit-encode-s", "0")),
            "decode_s": (t3 - t2) + float(report.get("decode_s", 0.0)),
            "round_trip_s": t2 - t1,
            "remote_s": remote_s,
            "transfer_s": (t2 - t1) - remote_s,
        }
        return StageReply(back, int(report.get("cursor", stage.cursor)), report, hop)

    def unreachable(self) -> str | None:
        try:
            status = self._client.get(f"{self.url}/healthz", timeout=5.0).status_code
        except httpx.HTTPError as err:
            return f"server of device {self.dst!r} at {self.url} is unreachable ({err})"
        if status != 200:
            return f"server of device {self.dst!r} at {self.url} answered /healthz with {status}"
        return None

    def close(self) -> None:
        self._client.close()


Runner = Callable[[int, Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]


def walk(
    stages: Stages,
    request: StageRequest,
    here: frozenset[str],
    have: dict[str, torch.Tensor],
    hops: Mapping[str, StageTransport],
    run: Runner,
    log: Log,
    emulation: Emulation | None = None,
) -> int:
    """Advance the walk from ``request.cursor`` on this device; returns the new cursor.

    ``here``: the device names this process runs (one, except the ``--remote`` star);
    ``request.stack``: the callers, bottom first. Stops at the end, at a stage whose
    device is on the stack, or at one no hop reaches (the caller then tries).
    ``emulation``: this process's compute slots, clocks and shaped links
    (:mod:`edgesplit.runtime.emulation`); each reply is paced here, on arrival.
    """
    emu = emulation or Emulation()
    cursor = request.cursor
    me = request.to
    below = set(request.stack) | here
    while cursor < len(stages):
        st = stages[cursor]
        if st.device in here:
            missing = [n for n in st.inputs if n not in have]
            if missing:
                raise ShapeError(
                    f"stage {cursor} on {st.device!r} needs tensors {missing}, which did not "
                    "arrive; send the tensors crossing into it"
                )
            values = {n: have[n] for n in st.inputs}
            outs, wait_s, compute_s = emu.compute(st.device, partial(run, cursor, values))
            log.stages.append(
                {"stage": cursor, "device": st.device, "compute_s": compute_s, "wait_s": wait_s}
            )
            have.update(outs)
            cursor += 1
            continue
        hop = hops.get(st.device)
        if st.device in below or hop is None or hop.dst in below:
            break
        end = next((j for j in range(cursor, len(stages)) if stages[j].device in below), None)
        window = stages.stages[cursor:end]
        wanted = {n for s in window for n in s.inputs}
        payload = {n: have[n] for n in have if n in wanted}
        nested = StageRequest(
            request.model,
            request.devices,
            request.assignment,
            request.fingerprint,
            cursor,
            hop.dst,
            (*request.stack, me),
            request.codecs,
            request.order,
        )
        try:
            reply = hop.send(nested, payload)
        except HopFailed as err:
            err.cursor = cursor
            raise
        if reply.cursor == cursor:
            raise TransportError(
                f"{hop.dst!r} ran no stage from stage {cursor} (on {st.device!r}); start it "
                f"with edgesplit serve --topology FILE --as {hop.dst} to relay"
            )
        if not cursor < reply.cursor <= len(stages):  # a relay only moves forward: no loop
            raise HopFailed(hop.dst, f"{hop.dst} answered stage {reply.cursor} from {cursor}")
        log.hops.append(emu.pace_hop(hop.dst, reply.hop, reply.log))
        log.merge(reply.log)
        have.update(reply.tensors)
        cursor = reply.cursor
    return cursor


def reply_values(
    stages: Stages, cursor: int, have: Mapping[str, torch.Tensor], received: set[str]
) -> dict[str, torch.Tensor]:
    """What a reply carries back: values not from the caller that a later stage or the output needs."""
    fresh = [n for n in have if n not in received]
    return {n: have[n] for n in stages.needed_from(cursor, fresh)}


def tier_info(device: str) -> dict[str, Any]:
    """The facts that decide whether floats can match bit for bit across tiers."""
    return {"threads": torch.get_num_threads(), "device": device, "torch": torch.__version__}


def check_request(stages: Stages, request: StageRequest, me: str | None) -> str:
    """The device name this server plays for ``request``; InputError if it is not this one."""
    if not 0 <= request.cursor < len(stages):
        raise InputError(f"stage {request.cursor} is not in the plan; it has 0..{len(stages) - 1}")
    if me is not None and request.to != me:
        raise InputError(
            f"request is for device {request.to!r} but this server is {me!r} (serve --as); "
            "send it to that device's server"
        )
    return request.to


#: The tier-to-tier transports ``make_hops`` builds: WebSockets (the default) or HTTP.
TRANSPORTS = ("ws", "http")


def make_hops(
    topology: Any, me: str, token: str | None, timeout_s: float = 60.0, transport: str = "ws"
) -> dict[str, StageTransport]:
    """Target device -> the transport to the first device on a shortest path to it.

    Paths follow ``me``'s topology links through servers only (breadth first, ties by
    the topology's device order); a device no path reaches has no entry. ``transport``:
    ``ws`` (:class:`edgesplit.runtime.wireclient.WireStageTransport`, persistent WebSocket
    connections, HTTP where a server has none) or ``http`` (:class:`HTTPStageTransport`).
    """
    if transport not in TRANSPORTS:
        raise InputError(f"--transport is {transport!r}; use one of {', '.join(TRANSPORTS)}")
    from edgesplit.runtime.wireclient import WireStageTransport

    kind = WireStageTransport if transport == "ws" else HTTPStageTransport
    first: dict[str, str] = {}
    frontier = [me]
    seen = {me}
    while frontier:
        nxt = []
        for a in frontier:
            for dev in topology.devices:
                if dev.name in seen or dev.local or topology.link(a, dev.name) is None:
                    continue
                seen.add(dev.name)
                first[dev.name] = dev.name if a == me else first[a]
                nxt.append(dev.name)
        frontier = nxt
    transports = {
        name: kind(
            me, name, topology.device(name).url, hop_token(topology.device(name), token), timeout_s
        )
        for name in sorted(set(first.values()))
    }
    return {target: transports[hop] for target, hop in first.items()}


def check_codecs(topology: Any, codecs_by_link: Mapping[str, str]) -> None:
    """Every codec names a link of ``topology`` that allows it (InputError naming the link)."""
    for key, codec in codecs_by_link.items():
        a, _, b = key.partition("|")
        topology.check_codec(a, b, codec)


def split_values(
    values: Mapping[str, torch.Tensor], names: Sequence[str]
) -> dict[str, torch.Tensor]:
    """The named subset of ``values`` (model outputs gathered at the end of a walk)."""
    missing = [n for n in names if n not in values]
    if missing:
        raise TransportError(f"the walk ended without outputs {missing}")
    return {n: values[n] for n in names}


def open_stage(
    store: Any, request: StageRequest, me: str | None, topology: Any
) -> tuple[Stages, str]:
    """A server's checks of a stage request before any tensor is decoded.

    Returns the plan's stages and the device this server plays. Raises
    :class:`FingerprintError` (409), UnknownModelError (404) and InputError (4xx).
    """
    store.model(request.model)  # a model not served is a 404 naming it
    mismatch = fingerprint_mismatch(store.fingerprint(request.model), request.fingerprint)
    if mismatch:
        raise FingerprintError(mismatch)
    check_stack(request, topology)
    stages = store.plan_stages(request.model, request.devices, request.assignment)
    target = check_request(stages, request, me)
    if topology is not None:
        check_codecs(topology, {k: c for k, c in request.codecs.items() if me in k.split("|")})
    return stages, target


def check_stack(request: StageRequest, topology: Any) -> None:
    """Refuse a relay chain that loops or outgrows the devices (issue 14 point 6).

    Each relay adds its own device to ``stack`` and never sends to a device on it, so a
    request causes at most one nested hop per device of the topology (the plan's devices
    without one); a stack that repeats a device, holds the target or is longer is refused.
    """
    chain = (*request.stack, request.to)
    bound = len(topology.devices) if topology is not None else len(request.devices)
    if len(set(chain)) < len(chain) or len(chain) > bound:
        raise InputError(
            f"field 'stack' {list(request.stack)} to {request.to!r} loops or is longer than "
            f"the {bound} devices; send each device at most once"
        )


def continue_stage(
    store: Any,
    stages: Stages,
    request: StageRequest,
    target: str,
    received: Mapping[str, torch.Tensor],
    hops: Mapping[str, StageTransport],
    emu: Emulation,
) -> tuple[dict[str, torch.Tensor], str, dict[str, Any]]:
    """A server's walk from the request's cursor: the reply values, their codec, the report."""
    log = Log(tiers={target: {**tier_info(str(store.device)), **emu.describe(target)}})
    have = dict(received)
    cursor = walk(
        stages,
        request,
        frozenset({target}),
        have,
        hops,
        order.take_turns(
            request.order, target, lambda i, values: store.run_stage(stages, i, values), log.turns
        ),
        log,
        emu,
    )
    back = reply_values(stages, cursor, have, set(received))
    caller = request.stack[-1] if request.stack else target
    codec = request.codecs.get(link_key(target, caller), "none")
    return back, codec, {"cursor": cursor, **log.to_dict()}


def serve_stage(
    store: Any,
    body: bytes,
    me: str | None,
    topology: Any,
    hops: Mapping[str, StageTransport],
    max_bytes: int,
    emulation: Emulation | None = None,
    arrived: float | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A server's side of ``POST /v1/stage``: decode, check, walk on, encode the reply.

    Returns the reply body and the headers carrying this server's processing seconds
    (from the body's arrival, after its pacing on a shaped link, to the reply's bytes)
    and its encode seconds. ``emulation``: this server's shaped links, clock and compute
    slots (:mod:`.emulation`); the body is paced from ``arrived`` (a perf_counter stamp
    taken when it was read) before the processing clock starts.
    Raises :class:`FingerprintError` (409) and InputError/ShapeError (4xx) on a bad request.
    """
    emu = emulation or Emulation()
    meta = wire.decode_metadata(body) if len(body) >= 8 else {}
    if CONTROL not in meta:
        raise InputError(f"body lacks the metadata {CONTROL!r}; send stages with the engine")
    request = StageRequest.from_json(meta[CONTROL])
    paced_in_s = emu.receive(request.stack[-1] if request.stack else None, len(body), arrived)
    t0 = time.perf_counter() if paced_in_s is not None or arrived is None else arrived
    stages, target = open_stage(store, request, me, topology)
    received = codecs.decode(body, max_bytes)
    decode_s = time.perf_counter() - t0
    back, codec, report = continue_stage(store, stages, request, target, received, hops, emu)
    report = {**report, "decode_s": decode_s, "paced_in_s": paced_in_s}
    t1 = time.perf_counter()
    out, _ = codecs.encode(back, codec, {REPORT: json.dumps(report)})
    t2 = time.perf_counter()
    return out, {"x-edgesplit-processing-s": repr(t2 - t0), "x-edgesplit-encode-s": repr(t2 - t1)}


class Engine:
    """The device side of a run: holds a plan's stages and its hops; ``infer`` per request.

    ``here`` are the plan devices this process runs (the topology's ``local`` device, or
    with ``--remote`` every plan device given no URL); ``hops`` its transports.
    ``failover``: a failed hop's request finishes here and offloading pauses until a
    health probe succeeds (see the module docstring); off, a failed hop raises.
    ``emulation``: this device's clock, compute slot and shaped links (from the topology,
    :mod:`.emulation`). ``infer`` may be called from several threads at once (``run-plan
    --concurrency K``, :mod:`.pipeline`): each request keeps its own values and record,
    the device computes one stage at a time, and the failover state is under a lock.
    """

    def __init__(
        self,
        stages: Stages,
        model: str,
        fingerprint: dict[str, str],
        local: str,
        here: frozenset[str],
        hops: Mapping[str, StageTransport],
        codecs_by_link: Mapping[str, str] | None = None,
        failover: bool = True,
        probe_every_s: float = 1.0,
        emulation: Emulation | None = None,
    ) -> None:
        self.stages, self.model, self.fingerprint = stages, model, fingerprint
        self.emulation = emulation or Emulation()
        self._lock = threading.Lock()
        self.local, self.here, self.hops = local, here, dict(hops)
        self.codecs = dict(codecs_by_link or {})
        self.failover, self.probe_every_s = failover, probe_every_s
        #: The device whose failure paused offloading (None: offloading).
        self.down: str | None = None
        self.failovers = 0
        self._probed_at = 0.0
        #: Sent with the next request: its turns on a shared server (:mod:`.order`).
        self.order: dict[str, Any] = {}

    def switch(self, stages: Stages, codecs_by_link: Mapping[str, str] | None = None) -> None:
        """Run later requests on ``stages`` (a re-plan); call between requests only.

        Servers build the new parts from the assignment the next request carries, so a
        switch needs no message; a request runs wholly on the old or the new plan.
        """
        if stages.graph is not self.stages.graph and stages.graph.name != self.stages.graph.name:
            raise InputError(f"a re-plan must keep the model {self.stages.graph.name!r}")
        self.stages = stages
        if codecs_by_link is not None:
            self.codecs = dict(codecs_by_link)

    @staticmethod
    def _run(stages: Stages, i: int, values: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with torch.inference_mode():
            return stages[i].part(values)

    def infer(
        self, inputs: Sequence[torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Run one request; returns the model outputs by name and its record (no ``id``)."""
        stages = self.stages  # a re-plan (switch) mid-request does not touch this one
        graph = stages.graph
        have: dict[str, torch.Tensor] = dict(zip(graph.input_names, inputs, strict=True))
        request = StageRequest(
            self.model,
            stages.devices,
            stages.assignment,
            self.fingerprint,
            0,
            self.local,
            (),
            self.codecs,
            self.order,
        )
        tier = {**tier_info("cpu"), **self.emulation.describe(self.local)}
        log = Log(tiers={self.local: tier})
        t0 = time.perf_counter()
        failed: tuple[str, int] | None = None
        retried = 0  # the failed hop's retries: its row counts them (issue 14 point 7)
        if self._offloading():
            run = partial(self._run, stages)
            try:
                cursor = walk(stages, request, self.here, have, self.hops, run, log, self.emulation)
            except HopFailed as err:
                if not self.failover:
                    raise
                self._pause(err.device)
                failed, retried = (err.device, err.cursor), err.retries
        else:
            failed = (self.down or "", 0)
        if failed is not None:
            cursor = self._finish_here(stages, failed[1], have, log)
            with self._lock:
                self.failovers += 1
        total = time.perf_counter() - t0
        if cursor < len(stages):
            dev = stages[cursor].device
            raise TransportError(
                f"no link from {self.local!r} or its next hops reaches device {dev!r} "
                f"(stage {cursor}); add a link to it in the topology, or start the server "
                "before it with `edgesplit serve --topology FILE --as NAME` so that it relays"
            )
        outs = split_values(have, stages.output_names)
        mark = {
            "failover": failed is not None,
            "failed_device": failed[0] if failed else None,
            "failover_stage": failed[1] if failed else None,
            "failover_retries": retried,
        }
        return outs, {"total_s": total, **mark, **log.to_dict()}

    def _finish_here(
        self, stages: Stages, cursor: int, have: dict[str, torch.Tensor], log: Log
    ) -> int:
        """Run stages ``cursor..`` here from the values held (failover); returns the end."""
        for i in range(cursor, len(stages)):
            st = stages[i]
            values = {n: have[n] for n in st.inputs}
            outs, wait_s, compute_s = self.emulation.compute(
                self.local, partial(self._run, stages, i, values)
            )
            have.update(outs)
            log.stages.append(
                {
                    "stage": i,
                    "device": self.local,
                    "planned": st.device,
                    "compute_s": compute_s,
                    "wait_s": wait_s,
                }
            )
        return len(stages)

    def _pause(self, device: str) -> None:
        with self._lock:
            self.down, self._probed_at = device, time.monotonic()

    def _offloading(self) -> bool:
        """Whether this request may offload: yes, or after a probe of the first hops
        succeeds (at most once per ``probe_every_s``, by one request, before its walk)."""
        with self._lock:
            if self.down is None:
                return True
            now = time.monotonic()
            if now - self._probed_at < self.probe_every_s:
                return False
            self._probed_at = now
        if self.unreachable():
            return False
        with self._lock:
            self.down = None
        return True

    def start(self) -> list[str]:
        """Probe the first hops; with failover on, one that does not answer pauses offloading."""
        dead = [(hop.dst, line) for hop in self._distinct_hops() if (line := hop.unreachable())]
        if dead and self.failover:
            self._pause(dead[0][0])
        return [line for _, line in dead]

    def unreachable(self) -> list[str]:
        """One line per first hop that does not answer its health probe."""
        lines = (hop.unreachable() for hop in self._distinct_hops())
        return [line for line in lines if line]

    def _distinct_hops(self) -> list[StageTransport]:
        return list({id(h): h for h in self.hops.values()}.values())

    def close(self) -> None:
        for hop in self._distinct_hops():
            hop.close()


def engine_for(
    stages: Stages,
    model: str,
    fingerprint: dict[str, str],
    topology: Any,
    token: str | None = None,
    codecs_by_link: Mapping[str, str] | None = None,
    here: frozenset[str] | None = None,
    failover: bool = True,
    transport: str = "ws",
) -> Engine:
    """An engine for ``stages`` on ``topology``; InputError if a plan device or codec does not fit.

    Every plan device must be a topology device, and every codec allowed on its link.
    ``transport``: the hops' transport (:data:`TRANSPORTS`, see :func:`make_hops`).
    The local device's clock and its shaped links come from the topology (:mod:`.emulation`).
    """
    for name in stages.devices:
        if name != SKIP and (here is None or name not in here):
            topology.device(name)
    check_codecs(topology, codecs_by_link or {})
    local = topology.local
    hops = make_hops(topology, local, token, transport=transport)
    here = here or frozenset({local})
    return Engine(
        stages,
        model,
        fingerprint,
        local,
        here,
        hops,
        codecs_by_link,
        failover,
        emulation=Emulation.from_topology(topology, here),
    )
