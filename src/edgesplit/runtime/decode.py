"""Decoder LLMs across processes: the client side of decode sessions.

A decoder cut at block boundaries (:mod:`edgesplit.graph.decoder`) runs part ``i`` on tier
``i``. Each remote tier holds a *decode session* (:mod:`edgesplit.runtime.decode_sessions`)
with its part and that part's KV cache, so per generated token only the new token's hidden
state (``batch x 1 x hidden``) crosses each link, and the tier holding the LM head answers
the greedy token id (8 bytes per row) rather than ``vocab`` logits. The argmax on that tier
is the same ``logits[:, -1, :].argmax(-1)`` the in-process oracle takes, so greedy output is
unchanged; the client keeps the loop (which token feeds the next step).

Relay, as the engine's stages (:mod:`edgesplit.runtime.engine`): a session opened with a
*chain* of later devices opens the next one itself when its own topology (``serve
--topology F --as NAME``) links it there, so device → edge → cloud carries each hidden
state once per link. A tier that cannot relay answers ``covers: 1`` and the client opens
the next part itself (a star through the client).

Failover (on by default, as the engine's): a tier that is unreachable, times out, answers
5xx, or no longer knows the session (expired, restarted) fails the step. The client then
rebuilds every part's session — on the same tier when its ``/healthz`` answers, else here
from the client's own copy of the model — and replays the prompt and the tokens generated
so far, one step per original step. A replay repeats the original computations in their
order, so the rebuilt KV caches are bit-for-bit those the failed run held, and the output
stays the greedy output; each replayed token is checked against the one generated before.
The step's record is marked (``rebuilt``, ``failed_device``, ``replayed_steps``).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import torch
from torch import nn

from edgesplit.errors import InputError, TransportError
from edgesplit.graph.decoder import DecoderPart, check_length, decoder_part, describe
from edgesplit.runtime import wire
from edgesplit.runtime.security import client_context
from edgesplit.runtime.stages import weights_digest
from edgesplit.runtime.transport import ServerRejected

#: Header carrying the session id (kept out of URLs, so out of access logs).
SESSION_HEADER = "x-edgesplit-session"
#: Header of a relay's 502 naming the device past it that failed.
FAILED_HEADER = "x-edgesplit-failed-device"
#: Metadata key of a step reply's report (processing seconds, the relay's links).
REPORT = "edgesplit.decode"


class TierFailed(TransportError):
    """A decode tier (or one past it) is unreachable, timed out, answered 5xx, is at its
    session bounds (429), or lost the session (404: expired or restarted): the session must
    be rebuilt."""

    def __init__(self, device: str, message: str) -> None:
        super().__init__(message)
        self.device = device


def payload_bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class DecodeLink(Protocol):
    """Moves decode-session calls to one device (HTTP here; any transport with these four)."""

    dst: str

    def open(self, doc: Mapping[str, Any]) -> dict[str, Any]: ...

    def step(self, session: str, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any], int]:
        """The part's output, the tier's report, and the reply's wire bytes."""
        ...

    def close(self, session: str) -> None: ...

    def healthy(self) -> bool: ...


class HTTPDecodeLink:
    """``/v1/decode/{open,step,close}`` over one persistent httpx client (safetensors steps)."""

    def __init__(
        self,
        dst: str,
        url: str,
        token: str | None = None,
        timeout_s: float = 60.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.dst, self.url = dst, url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = client or httpx.Client(
            timeout=timeout_s, headers=headers, verify=client_context()
        )

    def _post(self, path: str, session: str | None, **kw: Any) -> httpx.Response:
        headers = {SESSION_HEADER: session} if session else {}
        try:
            resp = self._client.post(f"{self.url}{path}", headers=headers, **kw)
        except httpx.HTTPError as err:
            msg = f"{self.dst} at {self.url}: {type(err).__name__}: {err}"
            raise TierFailed(self.dst, msg) from None
        if resp.status_code == 200:
            return resp
        try:
            msg = str(resp.json().get("error", resp.text))
        except ValueError:
            msg = resp.text[:200]
        # 5xx, a lost session (404 on a step) and a tier at its session bounds (429) fail
        # over; any other 4xx is a request this client got wrong.
        lost = resp.status_code == 404 and session is not None
        if resp.status_code >= 500 or resp.status_code == 429 or lost:
            failed = resp.headers.get(FAILED_HEADER, self.dst)
            raise TierFailed(failed, f"{self.dst} at {self.url} answered {resp.status_code}: {msg}")
        raise ServerRejected(resp.status_code, f"{self.dst} at {self.url}: {msg}")

    def open(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self._post("/v1/decode/open", None, json=dict(doc)).json())

    def step(self, session: str, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any], int]:
        resp = self._post("/v1/decode/step", session, content=wire.encode_tensors({"x": x}))
        y = wire.decode_tensors(resp.content)["y"]
        report = json.loads(wire.decode_metadata(resp.content).get(REPORT, "{}"))
        return y, report, len(resp.content)

    def close(self, session: str) -> None:
        # A tier that is gone, or a session that expired, holds nothing to close.
        with contextlib.suppress(TransportError):
            self._post("/v1/decode/close", session)

    def healthy(self) -> bool:
        try:
            return self._client.get(f"{self.url}/healthz", timeout=5.0).status_code == 200
        except httpx.HTTPError:
            return False

    def shutdown(self) -> None:
        self._client.close()


@dataclass(frozen=True)
class Tier:
    """The device holding one part: ``url`` None means this process."""

    name: str
    url: str | None = None


@dataclass
class _Segment:
    """A run of parts ``[first, first + covers)``: local (one part) or one remote session."""

    first: int
    covers: int
    device: str
    part: DecoderPart | None = None
    link: Any = None
    session: str = ""


@dataclass(frozen=True)
class DecodeStep:
    """One step of a generation across tiers (step 0 is the prefill)."""

    step: int
    position: int
    tokens: tuple[int, ...]
    seconds: float
    where: tuple[str, ...]  # the device that ran each part
    links: tuple[dict[str, Any], ...]  # src, dst, sent_bytes, back_bytes (payload), wire_bytes
    local_seconds: tuple[float, ...]  # compute of the parts run here
    rebuilt: bool = False
    failed_device: str | None = None
    replayed_steps: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "position": self.position,
            "tokens": list(self.tokens),
            "seconds": self.seconds,
            "where": list(self.where),
            "links": list(self.links),
            "local_seconds": list(self.local_seconds),
            "rebuilt": self.rebuilt,
            "failed_device": self.failed_device,
            "replayed_steps": self.replayed_steps,
        }


@dataclass(frozen=True)
class DecodeRun:
    """Greedy tokens ``(batch, tokens)`` and one record per step."""

    tokens: torch.Tensor
    records: tuple[DecodeStep, ...] = field(default_factory=tuple)


class DecodeClient:
    """Greedy generation with part ``i`` of ``model`` cut at ``cuts`` on ``tiers[i]``.

    ``model`` is this process's copy (it runs the local parts and every part failed over
    here); servers must serve the same weights (their digest is checked at open, 409).
    ``relay`` holds the device pairs whose servers may relay to each other (topology links).
    """

    def __init__(
        self,
        model: nn.Module,
        model_name: str,
        cuts: Sequence[int],
        tiers: Sequence[Tier],
        *,
        token: str | None = None,
        relay: set[frozenset[str]] | None = None,
        failover: bool = True,
        timeout_s: float = 60.0,
        link_factory: Callable[[Tier], Any] | None = None,
        here: str | None = None,
    ) -> None:
        self.model, self.name = model.eval(), model_name
        self.shape = describe(model)
        self.cuts = tuple(cuts)
        if len(tiers) != len(self.cuts) + 1:
            raise InputError(
                f"{len(self.cuts)} cuts make {len(self.cuts) + 1} parts, "
                f"but {len(tiers)} tiers were named"
            )
        self.tiers = list(tiers)
        self.relay = relay or set()
        self.failover = failover
        self.weights = weights_digest(model)
        make = link_factory or (
            lambda t: HTTPDecodeLink(t.name, str(t.url), token, timeout_s=timeout_s)
        )
        self.links = {t.name: make(t) for t in self.tiers if t.url is not None}
        self._local: dict[int, DecoderPart] = {}
        self._gone: set[str] = set()  # remote tiers failed over here for this client
        self._segments: list[_Segment] = []
        self._failed_once: set[str] = set()
        self._bounds = (1, 1)
        #: The device this process is (the source of the hops it makes).
        self.here = here or next((t.name for t in self.tiers if t.url is None), "client")

    def _here(self, i: int) -> bool:
        return self.tiers[i].url is None or self.tiers[i].name in self._gone

    def _local_part(self, i: int) -> DecoderPart:
        if i not in self._local:
            self._local[i] = decoder_part(self.model, self.cuts, i)
        part = self._local[i]
        part.reset()
        return part

    def _open(self, max_len: int, batch: int) -> None:
        self._segments = []
        i, n = 0, len(self.tiers)
        while i < n:
            tier = self.tiers[i]
            if self._here(i):
                self._segments.append(_Segment(i, 1, tier.name, part=self._local_part(i)))
                i += 1
                continue
            chain = []
            for j in range(i + 1, n):
                pair = frozenset((self.tiers[j - 1].name, self.tiers[j].name))
                if self._here(j) or pair not in self.relay:
                    break
                chain.append(self.tiers[j].name)
            doc = {
                "model": self.name,
                "cuts": list(self.cuts),
                "part": i,
                "max_len": max_len,
                "batch": batch,
                "weights": self.weights,
                "chain": chain,
            }
            link = self.links[tier.name]
            answer = link.open(doc)
            covers = max(1, min(int(answer.get("covers", 1)), 1 + len(chain)))
            seg = _Segment(i, covers, tier.name, link=link, session=str(answer["session"]))
            self._segments.append(seg)
            i += covers

    def _close_sessions(self) -> None:
        for seg in self._segments:
            if seg.link is not None:
                seg.link.close(seg.session)
        self._segments = []

    def _where(self) -> tuple[str, ...]:
        out: list[str] = []
        for seg in self._segments:
            if seg.link is None:
                out.append(f"{seg.device} (here)" if seg.device in self._gone else seg.device)
            else:
                out.extend(self.tiers[seg.first + k].name for k in range(seg.covers))
        return tuple(out)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[dict[str, Any]], list[float]]:
        """Feed ``x`` through every segment: the next greedy token ``(batch,)``, the links
        crossed (payload bytes each way) and the seconds of the parts run here."""
        links: list[dict[str, Any]] = []
        local_s: list[float] = []
        for seg in self._segments:
            if seg.link is None:
                assert seg.part is not None
                t0 = time.perf_counter()
                x = seg.part(x)
                if seg.part.last:
                    x = x[:, -1, :].argmax(dim=-1)
                local_s.append(time.perf_counter() - t0)
                continue
            sent = payload_bytes(x)
            y, report, wire_bytes = seg.link.step(seg.session, x)
            hop = {"src": self.here, "dst": seg.device, "sent_bytes": sent}
            links.append({**hop, "back_bytes": payload_bytes(y), "wire_bytes": wire_bytes})
            links.extend(report.get("links", []))
            x = y
        return x, links, local_s

    def _rebuild(
        self, inputs: Sequence[torch.Tensor], tokens: Sequence[torch.Tensor], failed: str
    ) -> int:
        """Reopen every session (same tier if healthy, else here) and replay ``inputs``.

        A tier failing a second time in one generation stays here without a probe, so a
        step ends after at most one rebuild per remote tier.
        """
        self._close_sessions()
        if failed in self._failed_once and failed in self.links:
            self._gone.add(failed)
        self._failed_once.add(failed)
        for tier in self.tiers:
            live = tier.name in self.links and tier.name not in self._gone
            if live and not self.links[tier.name].healthy():
                self._gone.add(tier.name)
        self._open(*self._bounds)
        for k, x in enumerate(inputs):
            nxt, _, _ = self._forward(x)
            if not torch.equal(nxt, tokens[k]):
                raise TransportError(
                    f"rebuilding after {failed} failed diverged at step {k}: replayed token "
                    f"{nxt.tolist()} differs from {tokens[k].tolist()}"
                )
        return len(inputs)

    def _recover(
        self, inputs: Sequence[torch.Tensor], tokens: Sequence[torch.Tensor], failed: str
    ) -> int:
        """Rebuild until it holds (a tier failing during the rebuild starts it again)."""
        while True:
            try:
                return self._rebuild(inputs, tokens, failed)
            except TierFailed as err:
                failed = err.device

    def generate(
        self,
        prompt_ids: torch.Tensor,
        tokens: int,
        on_step: Callable[[DecodeStep], None] | None = None,
    ) -> DecodeRun:
        """Prefill ``prompt_ids`` ``(batch, N)`` then decode ``tokens`` greedy tokens."""
        if not self.shape.has_head:
            raise InputError(
                f"model {self.name} has no LM head; use its *LMHeadModel / *ForCausalLM class"
            )
        if prompt_ids.dim() != 2 or prompt_ids.dtype != torch.int64:
            raise InputError("the prompt must be int64 token ids of shape (batch, N)")
        check_length(self.shape, prompt_ids.shape[1], tokens)
        # The deepest sequence: the last generated token is never fed back.
        self._bounds = (prompt_ids.shape[1] + tokens - 1, prompt_ids.shape[0])
        inputs: list[torch.Tensor] = []
        out: list[torch.Tensor] = []
        records: list[DecodeStep] = []
        failed: str | None = None
        try:
            self._open(*self._bounds)
        except TierFailed as err:
            # Unreachable at start: with failover the run goes on without it (marked).
            if not self.failover:
                raise
            failed = err.device
            self._recover([], [], err.device)
        try:
            x, position = prompt_ids, 0
            for i in range(tokens):
                t0 = time.perf_counter()
                replayed = 0
                while True:
                    try:
                        nxt, links, local_s = self._forward(x)
                        break
                    except TierFailed as err:
                        if not self.failover:
                            raise
                        failed = err.device
                        replayed = self._recover(inputs, out, err.device)
                rec = DecodeStep(
                    step=i,
                    position=position,
                    tokens=tuple(int(t) for t in nxt.tolist()),
                    seconds=time.perf_counter() - t0,
                    where=self._where(),
                    links=tuple(links),
                    local_seconds=tuple(local_s),
                    rebuilt=failed is not None,
                    failed_device=failed,
                    replayed_steps=replayed,
                )
                records.append(rec)
                failed = None
                if on_step is not None:
                    on_step(rec)
                inputs.append(x)
                out.append(nxt)
                position += x.shape[1]
                x = nxt.unsqueeze(1)
        finally:
            self._close_sessions()
        return DecodeRun(torch.stack(out, dim=1), tuple(records))

    def close(self) -> None:
        self._close_sessions()
        for link in self.links.values():
            if hasattr(link, "shutdown"):
                link.shutdown()


class DecoderDeployment:
    """A decoder plan (``edgesplit generate --save-plan``) on a topology, device side.

    ::

        with DecoderDeployment("decoder-plan.json", "topology.yaml") as dep:
            run = dep.generate(prompt_ids, 32)     # run.tokens: (batch, 32) greedy ids

    The plan names the tier of each part and records the model's options, from which this
    process rebuilds the model (``model=`` replaces them; code needs ``trust_model_code``).
    Tier ``i`` of the plan must be a device of the topology; its ``local`` device is this
    process. ``failover`` and ``token`` are :class:`DecodeClient`'s.
    """

    def __init__(
        self,
        plan: Any,
        topology: Any,
        *,
        token: str | None = None,
        failover: bool = True,
        trust_model_code: bool = False,
        model: Any = None,
    ) -> None:
        import threading

        from edgesplit.models import ModelRequest
        from edgesplit.plan.decoder import DecoderPlan, load_decoder_plan
        from edgesplit.system.topology import Topology, load_topology

        self.plan = plan if isinstance(plan, DecoderPlan) else load_decoder_plan(plan)
        topo = topology if isinstance(topology, Topology) else load_topology(topology)
        source = "decoder plan" if isinstance(plan, DecoderPlan) else f"plan file {str(plan)!r}"
        request = model or ModelRequest.from_record(
            self.plan.model, self.plan.model_options, source, trust_model_code
        )
        module = request.load()[0]
        shape = describe(module)
        if (shape.family, shape.layers) != (self.plan.family, self.plan.layers):
            raise InputError(
                f"{source} is for a {self.plan.layers}-block {self.plan.family} model, but "
                f"{self.plan.model!r} builds a {shape.layers}-block {shape.family}; re-plan it"
            )
        devices = [topo.device(t.name) for t in self.plan.tiers]
        self.client = DecodeClient(
            module,
            self.plan.model,
            self.plan.cuts,
            [Tier(d.name, None if d.local else d.url) for d in devices],
            token=token,
            relay={frozenset((link.a, link.b)) for link in topo.links},
            failover=failover,
            here=topo.local,
        )
        self._lock = threading.Lock()

    def generate(self, prompt_ids: torch.Tensor, tokens: int) -> DecodeRun:
        """Greedy ``tokens`` after ``prompt_ids`` ``(batch, N)`` int64, across the tiers."""
        with self._lock:
            return self.client.generate(prompt_ids, tokens)

    def close(self) -> None:
        with self._lock:
            self.client.close()

    def __enter__(self) -> DecoderDeployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
