"""The edge agent: run the head, offload the crossing tensors, measure (Luger 2023 §3.1, §3.4).

One request: run nodes ``[0, cut)`` here (slowed to the emulated clock), send the tensors
crossing cut ``cut`` through a :class:`~edgesplit.runtime.transport.Transport`, receive
the outputs with the cloud's stamps, and derive eq. 3.1–3.4
(:mod:`edgesplit.runtime.measure`).

Faults: a failed send is retried with exponential backoff (honouring ``Retry-After``);
when every try fails the agent runs the tail itself through the same
:class:`~edgesplit.graph.partition.SplitModel` and marks the row ``fallback``, so every
request gets its result. After such a failure the cloud is considered down and is
skipped (no waiting on timeouts) until a health probe, at most every
``resume_after_s``, finds it back; offloading then resumes. A 4xx answer says the
request itself is wrong: it is not retried, the tail runs locally, and the cloud stays up.
The server is stateless, so a retry after a lost answer recomputes the same values and
the agent still records the request exactly once.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, replace
from typing import Any

import torch

from edgesplit.errors import InputError, TransportError
from edgesplit.graph import Graph
from edgesplit.graph.partition import SplitModel, split_at
from edgesplit.runtime.clock import ClockEmulator
from edgesplit.runtime.measure import Measurement, comm_latency
from edgesplit.runtime.store import run_timed
from edgesplit.runtime.transport import InferReply, ServerRejected, Transport


@dataclass(frozen=True)
class AgentConfig:
    """Fault handling and what to record."""

    retries: int = 2
    backoff_s: float = 0.05
    backoff_max_s: float = 1.0
    resume_after_s: float = 1.0
    check: bool = False
    node_times: bool = False

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff_s < 0 or self.resume_after_s < 0:
            raise InputError("--retries, --backoff and --resume-after must be >= 0")


@dataclass(frozen=True)
class RequestContext:
    """What the agent knows when a request starts: link sensor, probe, plan."""

    bandwidth_mbit: float
    rtt_s: float = 0.0
    predicted_lat: float | None = None
    cost: float | None = None
    plan: str = ""


class EdgeAgent:
    """Executes split inferences of one model against one remote tier."""

    def __init__(
        self,
        graph: Graph,
        transport: Transport,
        *,
        model: str | None = None,
        clock: ClockEmulator | None = None,
        config: AgentConfig | None = None,
    ) -> None:
        self.graph = graph
        self.model = model or graph.name
        self.transport = transport
        self.clock = clock or ClockEmulator()
        self.config = config or AgentConfig()
        self.cloud_up = True
        self._last_failure = 0.0
        self._splits: dict[int, SplitModel] = {}

    @property
    def n_nodes(self) -> int:
        return len(self.graph.nodes)

    def split(self, cut: int) -> SplitModel:
        if not 0 <= cut <= self.n_nodes:
            raise InputError(f"cut {cut} is out of range for {self.model!r}; use 0..{self.n_nodes}")
        if cut not in self._splits:
            self._splits[cut] = split_at(self.graph, [cut])
        return self._splits[cut]

    def _maybe_resume(self) -> None:
        if self.cloud_up or time.monotonic() - self._last_failure < self.config.resume_after_s:
            return
        try:
            self.transport.probe()
        except TransportError:
            self._last_failure = time.monotonic()
            return
        self.cloud_up = True

    def _send(self, cut: int, tensors: dict[str, torch.Tensor]) -> tuple[InferReply, int]:
        """Send with retries; returns the reply and the number of retries used."""
        last: TransportError | None = None
        for attempt in range(self.config.retries + 1):
            try:
                reply = self.transport.infer(
                    self.model, cut, tensors, timings=self.config.node_times
                )
                return reply, attempt
            except ServerRejected as err:
                if not err.retryable:
                    raise
                last = err
                wait = err.retry_after_s
            except TransportError as err:
                last = err
                wait = None
            if attempt < self.config.retries:
                backoff = self.config.backoff_s * 2**attempt
                time.sleep(min(self.config.backoff_max_s, wait if wait is not None else backoff))
        assert last is not None
        raise last

    def infer(
        self, x: torch.Tensor, cut: int, request_id: int, ctx: RequestContext
    ) -> tuple[Any, Measurement]:
        """Run one request at ``cut``; always returns the model output and its measurement."""
        split = self.split(cut)
        head, tail = split.parts[0], split.parts[1]
        values: dict[str, Any] = {self.graph.input_names[0]: x}
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        overall_start = time.time()
        edge_times: dict[str, float] = {}
        with torch.inference_mode():
            if self.config.node_times:
                values.update(
                    self.clock.run(lambda: run_timed(head, self.graph, values, edge_times, "cpu"))
                )
            else:
                values.update(self.clock.run(lambda: head(values)))
        edge_stop = time.time()
        crossing = {t.name: values[t.name] for t in self.graph.cut(cut).tensors}
        size = sum(v.numel() * v.element_size() for v in crossing.values())
        reply: InferReply | None = None
        retries, error, fallback, local_tail = 0, "", False, 0.0
        if cut < self.n_nodes:
            self._maybe_resume()
            if self.cloud_up:
                try:
                    reply, retries = self._send(cut, crossing)
                except ServerRejected as err:
                    error = str(err)
                    if err.retryable:
                        self._mark_down()
                except TransportError as err:
                    error = str(err)
                    self._mark_down()
            else:
                error = "cloud down; offloading resumes after a successful probe"
            if reply is None:
                fallback = True
                t0 = time.time()
                with torch.inference_mode():
                    values.update(tail(values))
                local_tail = time.time() - t0
            else:
                values.update(reply.tensors)
        overall_stop = time.time()
        output = split.assemble_output(values)
        m = self._measurement(
            request_id,
            stamp,
            cut,
            size,
            ctx,
            overall_start,
            edge_stop,
            overall_stop,
            reply,
            fallback,
            local_tail,
            retries,
            error,
        )
        if edge_times:
            # Per-layer seconds at host speed, stretched like the edge part they belong to.
            f = self.clock.factor
            m = replace(m, layers={**{k: v * f for k, v in edge_times.items()}, **m.layers})
        if self.config.check:
            m = _with_check(m, output, self.graph, x)
        return output, m

    def _mark_down(self) -> None:
        self.cloud_up = False
        self._last_failure = time.monotonic()

    def _measurement(
        self,
        request_id: int,
        stamp: str,
        cut: int,
        size: int,
        ctx: RequestContext,
        overall_start: float,
        edge_stop: float,
        overall_stop: float,
        reply: InferReply | None,
        fallback: bool,
        local_tail: float,
        retries: int,
        error: str,
    ) -> Measurement:
        edge = edge_stop - overall_start  # eq. 3.1
        overall = overall_stop - overall_start  # eq. 3.4
        if reply is not None:
            cloud = reply.cloud_lat  # eq. 3.2
            comm = comm_latency(
                overall, cloud, edge, ctx.rtt_s, reply.response_bytes, ctx.bandwidth_mbit
            )  # eq. 3.3
            response, layers = reply.response_bytes, reply.node_times
        else:
            cloud, comm, response, layers = local_tail, 0.0, 0, {}
        return Measurement(
            id=request_id,
            datetime=stamp,
            start=overall_start,
            stop=overall_stop,
            size=size if reply is not None else 0,
            SP=cut,
            BW=ctx.bandwidth_mbit,
            CS=self.clock.clock_ghz,
            model=self.model,
            edge_lat=edge,
            comm_lat=comm,
            cloud_lat=cloud,
            overall_lat=overall,
            rtt=ctx.rtt_s,
            response_size=response,
            fallback=fallback,
            retries=retries,
            predicted_lat=ctx.predicted_lat,
            cost=ctx.cost,
            plan=ctx.plan,
            error=error,
            clock_method=self.clock.method,
            layers=layers,
        )


def _with_check(m: Measurement, output: Any, graph: Graph, x: torch.Tensor) -> Measurement:
    if graph.module is None:
        return m
    with torch.inference_mode():
        ref = graph.module(x)
    # Bit-equal on one CPU; a GPU cloud tier may differ in the last bits.
    ok = torch.equal(output, ref) or torch.allclose(output, ref, rtol=1e-4, atol=1e-5)
    return replace(m, correct=bool(ok))
