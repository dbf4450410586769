"""Run ``edgesplit`` in its own process and press Ctrl-C on it once it is ready (shared by
the progress/interrupt tests and the placement solver's Ctrl-C test)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sigint_default() -> None:
    # A shell's background job starts with SIGINT ignored, and that survives exec: give
    # the command Python's usual Ctrl-C whatever the runner's own setting.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_when(
    argv: list[str], ready: Callable[[list[str]], bool], timeout: float = 240
) -> tuple[int, str, str]:
    """Run ``edgesplit ARGV``; send SIGINT once ``ready(stderr lines so far)``; return
    (exit status, stdout, stderr). Fails if it ends or times out before it is ready."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgesplit.cli", *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_default,
    )
    lines: list[str] = []
    assert proc.stderr is not None and proc.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")))
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while not ready(lines):
            assert proc.poll() is None, f"ended before it was interrupted: {''.join(lines)}"
            assert time.monotonic() < deadline, f"not ready in {timeout} s: {''.join(lines)}"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out = proc.stdout.read()
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(timeout=10)
    return code, out, "".join(lines)
