"""A shared server's serving order: a turnstile per round of a planned schedule.

Gao et al. 2019 (eq. 9 and 16) let one MEC server run one subtask at a time, in an order
the MILP chooses. A plan that carries that order (``Plan.schedule``, see
:mod:`edgesplit.plan.types`) is run by N requesting devices at once; each request names,
for every server stage it asks for, its *ticket*: the stage's place in the planned order.
The server keeps one counter per round (``key``: the run's id and the round number) and
runs a ticketed stage only when the counter reaches its ticket, one stage at a time; then
the counter moves past it and the next ticket runs. Stages without a ticket (any other
plan) run as before.

A device that dies, or a request lost on the way, must not stall the others: a turn waits
at most ``timeout_s`` (the plan's, capped at :data:`MAX_WAIT_S` here), then runs anyway
and the counter jumps past it; a late ticket whose turn has passed runs at once. The
record marks both (``timed_out``, and ``served`` differs from ``ticket``). Each served
turn is recorded with ``served``: the place in which this server actually ran it, counted
by the server itself, so a test reads the served order from the records alone.

Waiting happens in the server's worker thread and holds one of its ``--max-concurrency``
slots, so a server shared by N devices needs at least N slots (``multidevice run`` starts
it so); with fewer, a turn can wait for a request that cannot get a slot, and it times out.
Memory: at most :data:`MAX_KEYS` rounds are remembered (the oldest are forgotten first).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch

from edgesplit.errors import InputError

#: The longest a turn waits for the tickets before it, whatever a request asks for.
MAX_WAIT_S = 60.0
#: Rounds remembered per process (oldest forgotten first).
MAX_KEYS = 1024
#: The largest ticket a request may name.
MAX_TICKET = 100_000

Runner = Callable[[int, Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]


class Turnstile:
    """One counter per round ``key``: ticket ``t`` runs when the counter reaches ``t``."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self._cond = threading.Condition()
        self._next: OrderedDict[str, int] = OrderedDict()
        self._served: dict[str, int] = {}
        self.max_keys = max_keys

    @contextmanager
    def turn(self, key: str, ticket: int, timeout_s: float) -> Iterator[dict[str, Any]]:
        """Wait for ``ticket``'s turn (at most ``timeout_s``), hold it while the body runs."""
        t0 = time.perf_counter()
        deadline = time.monotonic() + min(timeout_s, MAX_WAIT_S)
        timed_out = False
        with self._cond:
            self._remember(key)
            while self._next[key] < ticket:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                self._cond.wait(left)
                self._remember(key)
            served = self._served.get(key, 0)
            self._served[key] = served + 1
        info = {"served": served, "waited_s": time.perf_counter() - t0, "timed_out": timed_out}
        try:
            yield info
        finally:
            with self._cond:
                self._remember(key)
                self._next[key] = max(self._next[key], ticket + 1)
                self._cond.notify_all()

    def _remember(self, key: str) -> None:
        if key not in self._next:
            self._next[key] = 0
            while len(self._next) > self.max_keys:
                old, _ = self._next.popitem(last=False)
                self._served.pop(old, None)
        self._next.move_to_end(key)


#: This process's turnstile (keys name the server device, so servers in one process differ).
TURNSTILE = Turnstile()


def check_order(order: Mapping[str, Any]) -> tuple[str, dict[int, int], float, str]:
    """A request's order document as (key, stage -> ticket, timeout, device); InputError if bad."""
    try:
        key = str(order["key"])
        tickets = {int(s): int(t) for s, t in dict(order["tickets"]).items()}
        timeout_s = float(order.get("timeout_s", 5.0))
        device = str(order.get("device", ""))
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(
            f"the stage request's order must hold key, tickets (stage -> ticket) and "
            f"timeout_s ({type(err).__name__}: {err})"
        ) from None
    if not 0 < len(key) <= 200:
        raise InputError("the stage request's order.key must be 1-200 characters")
    if any(not 0 <= t <= MAX_TICKET for t in tickets.values()):
        raise InputError(f"order.tickets must be in 0..{MAX_TICKET}")
    if not 0 < timeout_s <= MAX_WAIT_S:
        raise InputError(f"order.timeout_s must be in (0, {MAX_WAIT_S}] seconds")
    return key, tickets, timeout_s, device


def take_turns(
    order: Mapping[str, Any], me: str, run: Runner, turns: list[dict[str, Any]]
) -> Runner:
    """``run`` wrapped so that each ticketed stage waits for its turn on server ``me``.

    Each served turn appends ``{server, device, stage, ticket, served, waited_s,
    timed_out}`` to ``turns`` (the record's ``turns``). No order: ``run`` itself.
    """
    if not order:
        return run
    key, tickets, timeout_s, device = check_order(order)

    def runner(i: int, values: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ticket = tickets.get(i)
        if ticket is None:
            return run(i, values)
        with TURNSTILE.turn(f"{me}|{key}", ticket, timeout_s) as info:
            outs = run(i, values)
        turns.append({"server": me, "device": device, "stage": i, "ticket": ticket, **info})
        return outs

    return runner
