"""Pipelining: up to K requests in flight across the tiers, results in request order.

The schedule of ``run-plan --concurrency K`` (issue 13, point 4). Request ``i+1`` starts
as soon as fewer than K are in flight, so the device computes it while the link carries
request ``i`` and the edge computes request ``i-1``. The stages are the plan's; the
tiers' concurrency comes from the engine's resources, not from here: each device computes
one stage at a time (its compute slot) and each shaped link direction is one token bucket
(:mod:`edgesplit.runtime.emulation`), so requests queue for a stage as they would in a
pipeline of real machines (torch.distributed.pipelining keeps stages, schedule and
communication apart the same way; this is its simplest schedule, fill-and-drain per
request, with no micro-batches).

Throughput bound: with K large enough, a pipeline runs at ``1 / max over stages of the
per-request stage time`` (the bottleneck stage: a device's compute per request, or a link
direction's busy time ``bytes·8/bw``); ``benchmarks/bench_engine_pipeline.py`` measures
it against that bound.

Results come back in request order: a finished request waits for the ones before it, so
records are written one per request, in order, as soon as their prefix is complete; the
next requests do not wait for that (a ``--check`` of request i runs while i+1.. are in
flight). An error in request ``i`` is raised when ``i``'s turn comes; requests not yet
started are then not started.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from edgesplit.errors import InputError

T = TypeVar("T")


def pipelined(fn: Callable[[int], T], n: int, k: int = 1) -> Iterator[tuple[int, T]]:
    """Yield ``(i, fn(i))`` for ``i`` in ``0..n-1`` in order, with up to ``k`` calls running.

    The calls start in request order on ``k`` worker threads, each as soon as one is free:
    the consumer of the results (writing and checking records) never holds a request
    back. ``k == 1`` calls ``fn`` inline, one request after the other, with no thread.

    >>> [r for _, r in pipelined(lambda i: i * i, 5, k=3)]
    [0, 1, 4, 9, 16]
    """
    if k < 1:
        raise InputError(f"--concurrency must be >= 1, not {k}")
    if k == 1:
        for i in range(n):
            yield i, fn(i)
        return
    with ThreadPoolExecutor(max_workers=k, thread_name_prefix="edgesplit-request") as pool:
        # The pool's queue is first in, first out: request i starts before request i+1.
        futures: list[Future[T]] = [pool.submit(fn, i) for i in range(n)]
        try:
            for i, future in enumerate(futures):
                yield i, future.result()
        finally:
            for future in futures:
                future.cancel()
