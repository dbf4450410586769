"""Suite-wide settings and the one CLI harness.

Two CPU threads, as on the development and CI machines.

Every CLI test goes through ``edgesplit.cli.main``, the executable's own entry point, so
the contract for bad input (one ``error: ...`` line on stderr, exit status 2, no traceback,
nothing on stdout) is checked the same way everywhere:

* ``cli(*args)`` runs ``main(list(args))`` in-process and captures stdout, stderr and the
  ``SystemExit`` code: fast, and what most tests use;
* ``cli_subprocess(*args)`` runs ``python -m edgesplit.cli`` in a real process: for what
  only a process shows (the exit status the shell sees, that no traceback is printed,
  start-up imports);
* ``assert_input_error(result, *names)`` checks the contract and returns the one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

torch.set_num_threads(2)

ROOT = Path(__file__).resolve().parents[1]
EDGESPLIT = [sys.executable, "-m", "edgesplit.cli"]


@dataclass(frozen=True)
class CliResult:
    """What a user sees of one command: exit status, stdout and stderr."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def returncode(self) -> int:
        return self.code

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        """The one JSON document a ``--json`` command prints (and nothing else on stdout)."""
        assert self.code == 0, f"{self.args}: exit {self.code}: {self.stderr}"
        return json.loads(self.stdout)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    return 1  # SystemExit("message") prints the message and exits 1, as the interpreter does


def invoke(*args: str | os.PathLike[str], cwd: Path | None = None) -> CliResult:
    """``edgesplit ARGS`` in-process through ``edgesplit.cli.main``; the caller captures."""
    from edgesplit.cli import main

    argv = [str(a) for a in args]
    old = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    finally:
        os.chdir(old)
    return CliResult(tuple(argv), code, "", "")


def invoke_subprocess(
    *args: str | os.PathLike[str], cwd: Path | None = None, timeout: float = 300
) -> CliResult:
    """``python -m edgesplit.cli ARGS`` in a real process."""
    argv = [str(a) for a in args]
    proc = subprocess.run(
        [*EDGESPLIT, *argv], capture_output=True, text=True, cwd=cwd or ROOT, timeout=timeout
    )
    return CliResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``edgesplit ARGS`` in-process (cwd: the repository root unless ``cwd=``)."""

    def run(*args: str | os.PathLike[str], cwd: Path | None = None) -> CliResult:
        capsys.readouterr()
        result = invoke(*args, cwd=cwd or ROOT)
        out = capsys.readouterr()
        return CliResult(result.args, result.code, out.out, out.err)

    return run


@pytest.fixture(scope="session")
def cli_uncaptured() -> Callable[..., CliResult]:
    """``invoke`` for session and module fixtures (no capsys there): exit code only."""
    return invoke


@pytest.fixture
def cli_subprocess() -> Callable[..., CliResult]:
    """Run ``edgesplit ARGS`` as a real process (cwd: the repository root unless ``cwd=``)."""
    return invoke_subprocess


def assert_input_error(result: CliResult, *names: str | os.PathLike[str]) -> str:
    """Exit 2, exactly one stderr line ``error: ...`` naming each of ``names``, no traceback,
    nothing on stdout. Returns that line."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    where = f"edgesplit {' '.join(result.args)}"
    assert result.code == 2, f"{where}: exit {result.code}, stderr: {result.stderr}"
    assert "Traceback" not in result.stderr, f"{where}: {result.stderr}"
    assert len(lines) == 1, f"{where}: {len(lines)} stderr lines: {result.stderr}"
    assert lines[0].startswith("error: "), f"{where}: {lines[0]}"
    assert result.stdout == "", f"{where}: stdout not empty: {result.stdout[:200]}"
    for name in names:
        assert str(name) in lines[0], f"{where}: {name!r} not named in {lines[0]!r}"
    return lines[0]


@pytest.fixture(name="assert_input_error")
def assert_input_error_fixture() -> Callable[..., str]:
    """:func:`assert_input_error`, for tests that prefer a fixture to an import."""
    return assert_input_error
