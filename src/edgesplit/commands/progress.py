"""Progress of long commands on stderr, and what an interrupted command kept (issue 16 item 3).

Every command that runs longer than a couple of seconds reports through one helper,
:class:`Progress`:

- on a terminal (stderr is a TTY): a rich display — spinner, label, bar and ``done/total``
  when the total is known, the last item's detail (``last 12.3 ms``) and the elapsed time;
- piped (stderr is not a TTY): plain lines ``run: 41/200 requests, last 12.3 ms``, the
  first when the first item is done, then at most one per ``interval_s`` seconds, and the
  last when it ends. Nothing is printed before the first item, so a command whose input
  is refused while it prepares still prints its one ``error: ...`` line alone.

Progress is written to stderr only, so stdout stays one JSON document with ``--json``.
:func:`stage` prints one line per stage of a multi-stage command (the reproductions).

Ctrl-C: while a long command runs it says what it keeps with :func:`keeping` (e.g. ``41 of
200 rows kept in x.csv``, read when the interrupt arrives); the one handler in
:func:`edgesplit.cli.main` prints ``interrupted: <that>`` and exits 130, without a
traceback. Record logs (CSV, JSON lines) are appended and flushed per record, so every
completed row is in the file; whole documents (a plan, ``results.json``, a profile) are
written with :func:`edgesplit.io.write_atomic`, whole or not at all.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as RichProgress
from rich.text import Text

from edgesplit.commands.common import err_console

#: What the running commands keep if interrupted now (innermost last).
_kept: list[Callable[[], str]] = []

NOTHING_KEPT = "stopped before any output was written (documents are written whole or not at all)"


@contextmanager
def keeping(describe: Callable[[], str]) -> Iterator[None]:
    """While the block runs, ``describe()`` tells what an interrupt would keep.

    The note stays registered when the block ends by an exception, so that the handler in
    :func:`edgesplit.cli.main` can read it after the stack has unwound (it then clears it).
    """
    _kept.append(describe)
    yield
    _kept.remove(describe)


def forget_kept() -> None:
    """Drop the notes of earlier commands run in this process (the CLI calls it first)."""
    _kept.clear()


def interrupted_line() -> str:
    """``interrupted: ...`` naming what the interrupted command kept; clears the notes."""
    notes = []
    for describe in _kept:
        try:
            notes.append(describe())
        except Exception:  # a note must never turn Ctrl-C into a traceback
            continue
    _kept.clear()
    return "interrupted: " + ("; ".join(notes) if notes else NOTHING_KEPT)


def rows_kept(done: int, total: int | None, paths: Sequence[object], what: str = "rows") -> str:
    """``41 of 200 rows kept in x.csv and x.jsonl`` (``41 rows`` when the total is open)."""
    if done == 1 and total is None:
        what = what.removesuffix("s")
    count = f"{done} of {total} {what}" if total is not None else f"{done} {what}"
    given = [str(p) for p in paths if p is not None]
    if not given:
        return f"{count} completed; none written (no --csv/--jsonl given)"
    return f"{count} kept in {' and '.join(given)}"


def stage(label: str, text: str) -> None:
    """One progress line ``label: text`` on stderr (a stage of a multi-stage command)."""
    if err_console.is_terminal:
        err_console.print(Text.assemble((f"{label}: ", "bold"), text), soft_wrap=True)
    else:
        print(f"{label}: {text}", file=sys.stderr, flush=True)


class Progress:
    """``with Progress("run", total=200, unit="requests") as p: p.advance(info="last 12 ms")``.

    ``total`` None shows a count without a bar (a run for a duration, a solver's progress).
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        unit: str = "",
        info: str = "",
        interval_s: float = 1.0,
        count: bool = True,
    ) -> None:
        self.label = label
        self.count = count  # False: only the detail text (a solver's incumbent and bound)
        self.total = total
        self.unit = unit
        self.interval_s = interval_s
        self.done = 0
        self.info = info  # on a terminal, shown until the first update (what it prepares)
        self._last_line = -float("inf")
        self._printed: tuple[int, str] | None = None
        self._rich: RichProgress | None = None
        self._task: object = None

    def __enter__(self) -> Progress:
        if err_console.is_terminal:
            self._rich = RichProgress(
                SpinnerColumn(),
                TextColumn(f"[bold]{self.label}[/]"),
                BarColumn() if self.total is not None else TextColumn(""),
                MofNCompleteColumn()
                if self.total is not None
                else TextColumn("{task.completed}" if self.count else ""),
                TextColumn(self.unit),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                console=err_console,
            )
            self._rich.start()
            self._task = self._rich.add_task(self.label, total=self.total, info=self.info)
        else:
            self._printed = (0, self.info)  # piped: the first line comes with the first item
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        err: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._rich is not None:
            self._rich.stop()
        elif kind is None:
            self._line(force=True)

    def advance(self, n: int = 1, info: str | None = None) -> None:
        """``n`` more items done; ``info`` is the latest item's detail."""
        self.update(self.done + n, info)

    def update(self, done: int | None = None, info: str | None = None) -> None:
        """Set the count done and/or the detail text (a solver's incumbent and bound)."""
        if done is not None:
            self.done = done
        if info is not None:
            self.info = info
        if self._rich is not None:
            self._rich.update(self._task, completed=self.done, info=self.info)  # type: ignore[arg-type]
        else:
            self._line()

    def stage(self, text: str) -> None:
        """A new stage: the live detail on a terminal, one ``label: text`` line when piped."""
        self.info = text
        if self._rich is not None:
            self._rich.update(self._task, info=text)  # type: ignore[arg-type]
        else:
            self._line(force=True)

    def _line(self, force: bool = False) -> None:
        now = time.monotonic()
        state = (self.done, self.info)
        if self._printed == state or (not force and now - self._last_line < self.interval_s):
            return
        self._last_line, self._printed = now, state
        parts = []
        if self.count:
            count = f"{self.done}/{self.total}" if self.total is not None else f"{self.done}"
            parts.append(f"{count} {self.unit}".strip())
        if self.info:
            parts.append(self.info)
        print(f"{self.label}: {', '.join(parts)}", file=sys.stderr, flush=True)
