"""The commands the documentation shows, and a runner that runs them as a user would.

Issue 16 ("every documented command works"): every fenced block of README.md and
docs/*.md tagged ``bash``/``sh``/``shell``/``console`` is a list of commands to run as
written; a ``text`` block holds synopses (``[--option]``, ``FILE``) whose options must
exist. ``console`` blocks run only their ``$ `` lines. A ``\\`` continues a command on
the next line; comments and blank lines are skipped; ``NAME=value`` lines set a shell
variable for the rest of the block.

Units of work: a block without a server is one unit per command; a block that starts
``edgesplit serve`` is one unit from its first server to its end, because the clients
after it need the servers (a user starts them with ``&`` or in another terminal). The
runner starts each server in the background, waits for ``/healthz``, runs the clients and
stops the servers.

The one change made to a command's text: documented ports (``--port 8101``,
``127.0.0.1:8101``) become free ports, in the commands and in the workspace's copy of
``examples/``, since other test runs on this host may hold the documented ones.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
SHELL_LANGS = frozenset(["bash", "sh", "shell", "console"])
FENCE = re.compile(r"^(\s*)```\s*([A-Za-z0-9_+-]*)\s*$")
PORT_IN_TEXT = re.compile(r"(?:(?<=--port )|(?<=127\.0\.0\.1:)|(?<=localhost:))(\d{4,5})\b")
PORT_IN_EXAMPLE = re.compile(r"(?:(?<=127\.0\.0\.1:)|(?<=localhost:))(\d{4,5})\b")


@dataclass(frozen=True)
class Command:
    """One command as the documentation shows it (continuations joined)."""

    doc: str
    line: int
    text: str
    lang: str

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    def words(self) -> list[str]:
        """The shell words, without leading ``NAME=value`` settings and a trailing ``&``."""
        words = shlex.split(self.text)
        while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
            words.pop(0)
        if words and words[-1] == "&":
            words.pop()
        return words

    @property
    def program(self) -> str:
        words = self.words()
        return words[0].rsplit("/", 1)[-1] if words else ""  # "src/edgesplit/" is no program

    @property
    def is_assignment(self) -> bool:
        return self.lang != "python" and not self.words()

    @property
    def is_server(self) -> bool:
        words = self.words()
        return self.program == "edgesplit" and len(words) > 1 and words[1] == "serve"


@dataclass(frozen=True)
class Block:
    """One fenced block: its language and commands."""

    doc: str
    line: int
    lang: str
    commands: tuple[Command, ...]


@dataclass(frozen=True)
class Unit:
    """What one test runs: a command, or servers with the clients that follow them."""

    commands: tuple[Command, ...]
    prelude: tuple[str, ...] = field(default=())

    @property
    def id(self) -> str:
        first = self.commands[0]
        if first.lang == "python":
            return f"{first.doc}:{first.line}:python"
        words = [w for w in first.words()[:3] if not w.startswith("-")]
        return f"{first.doc}:{first.line}:{'-'.join(Path(w).name for w in words)}"

    @property
    def doc(self) -> str:
        return self.commands[0].doc

    @property
    def has_server(self) -> bool:
        return any(c.is_server for c in self.commands)


def _strip_comment(line: str) -> str:
    """``line`` without a trailing ``# comment`` (a ``#`` outside quotes after a blank)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def split_commands(doc: str, start: int, lang: str, lines: list[str]) -> list[Command]:
    """The commands of a block whose first content line is ``start``."""
    if lang == "python":
        return [Command(doc, start, "\n".join(lines), lang)]
    commands: list[Command] = []
    text, first = "", 0
    for offset, raw in enumerate(lines):
        line = raw.strip()
        if lang == "console" and not text and not line.startswith("$ "):
            continue  # output
        if not text and line.startswith("$ "):
            line = line[2:]
        line = _strip_comment(line)
        if not line and not text:
            continue
        if not text:
            first = start + offset
        if line.endswith("\\"):
            text += line[:-1].rstrip() + " "
            continue
        text += line
        commands.append(Command(doc, first, text.strip(), lang))
        text = ""
    return commands


def blocks(path: Path) -> list[Block]:
    """Every fenced block of one Markdown file."""
    doc = str(path.relative_to(ROOT))
    found: list[Block] = []
    lang, start, body, inside = "", 0, [], False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = FENCE.match(line)
        if match and not inside:
            inside, lang, start, body = True, match.group(2).lower(), number + 1, []
        elif match and inside and not match.group(2):
            inside = False
            found.append(Block(doc, start - 1, lang, tuple(split_commands(doc, start, lang, body))))
        elif inside:
            body.append(line)
    return found


def all_blocks() -> list[Block]:
    return [b for path in DOCS for b in blocks(path)]


def runnable_units() -> list[Unit]:
    """The units of every shell and Python block, in document order."""
    units: list[Unit] = []
    for block in all_blocks():
        if block.lang not in SHELL_LANGS | {"python"}:
            continue
        prelude: list[str] = []
        commands = block.commands
        i = 0
        while i < len(commands):
            command = commands[i]
            if command.is_assignment:
                prelude.append(command.text)
                i += 1
            elif command.is_server:
                end = max(j for j in range(i, len(commands)) if _uses_server(commands[j]))
                units.append(Unit(commands[i : end + 1], tuple(prelude)))
                i = end + 1
            else:
                units.append(Unit((command,), tuple(prelude)))
                i += 1
    return units


def _uses_server(command: Command) -> bool:
    """A server, or a client of one (its address or a topology naming the servers)."""
    return command.is_server or any(
        mark in command.text for mark in ("--server", "--remote", "--topology", "127.0.0.1")
    )


def edgesplit_commands() -> list[Command]:
    """Every ``edgesplit ...`` command in any block (synopses included)."""
    return [
        c for b in all_blocks() for c in b.commands if c.lang != "python" and _names_edgesplit(c)
    ]


def _names_edgesplit(command: Command) -> bool:
    try:
        return command.program == "edgesplit"
    except ValueError:  # an unbalanced quote in a synopsis
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Workspace:
    """A user's checkout: a copy of ``examples/``, the venv and ``../shared`` linked.

    Documented ports map to free ones, the same map for the commands and the copied
    example files.
    """

    def __init__(self, base: Path) -> None:
        self.repo = base / "edgesplit"
        self.repo.mkdir(parents=True)
        self.ports: dict[str, str] = {}
        shutil.copytree(ROOT / "examples", self.repo / "examples")
        (self.repo / ".venv").symlink_to(ROOT / ".venv")
        shared = ROOT.parent / "shared"
        if shared.exists():
            (base / "shared").symlink_to(shared)
        for doc in DOCS:
            for port in PORT_IN_TEXT.findall(doc.read_text()):
                self._port(port)
        for path in (self.repo / "examples").rglob("*.y*ml"):
            path.write_text(PORT_IN_EXAMPLE.sub(lambda m: self._port(m.group(1)), path.read_text()))
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_", "OMP_"))
        }
        self.env.update(
            PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            COLUMNS="100",
            HF_HUB_OFFLINE="1",
            MPLBACKEND="Agg",
        )

    def _port(self, port: str) -> str:
        if port not in self.ports:
            self.ports[port] = str(free_port())
        return self.ports[port]

    def localise(self, text: str) -> str:
        return PORT_IN_TEXT.sub(lambda m: self._port(m.group(1)), text)

    def run(self, unit: Unit, timeout: float) -> list[str]:
        """Run ``unit``; a list of failures (empty when every command did what it says)."""
        servers: list[tuple[Command, subprocess.Popen[str], int]] = []
        failures: list[str] = []
        prelude = "".join(f"{line}; " for line in unit.prelude)
        try:
            for command in unit.commands:
                if command.is_assignment:
                    prelude += f"{command.text}; "
                    continue
                if command.is_server:
                    failure = self._start_server(command, prelude, servers)
                else:
                    failure = self._run_one(command, prelude, timeout)
                if failure:
                    failures.append(failure)
                    break
        finally:
            for command, proc, port in servers:
                stop(proc)
                err = (self.repo / f"server-{port}.log").read_text()
                if "Traceback" in err and not failures:
                    failures.append(
                        f"{command.where}: `{command.text}` printed a traceback:\n{tail(err)}"
                    )
        return failures

    def _run_one(self, command: Command, prelude: str, timeout: float) -> str:
        if command.lang == "python":
            argv = [str(ROOT / ".venv" / "bin" / "python"), "-c", command.text]
        else:
            argv = ["bash", "-c", prelude + self.localise(command.text)]
        try:
            proc = subprocess.run(
                argv, cwd=self.repo, env=self.env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return f"{command.where}: `{command.text}` ran past {timeout:.0f} s"
        if proc.returncode != 0:
            return (
                f"{command.where}: `{command.text}` exited {proc.returncode}:\n"
                f"{tail(proc.stderr or proc.stdout)}"
            )
        if "Traceback" in proc.stderr:
            return f"{command.where}: `{command.text}` printed a traceback:\n{tail(proc.stderr)}"
        return ""

    def _start_server(
        self,
        command: Command,
        prelude: str,
        servers: list[tuple[Command, subprocess.Popen[str], int]],
    ) -> str:
        text = self.localise(command.text).rstrip().removesuffix("&").rstrip()
        words = shlex.split(text)
        port = int(words[words.index("--port") + 1]) if "--port" in words else 8000
        log = self.repo / f"server-{port}.log"
        with log.open("w") as sink:  # a file, not a pipe: a chatty server never blocks on it
            proc = subprocess.Popen(
                ["bash", "-c", f"{prelude}exec {text}"],
                cwd=self.repo,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        servers.append((command, proc, port))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return f"{command.where}: `{command.text}` exited {proc.returncode}:\n{tail(log.read_text())}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    return ""
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        return f"{command.where}: `{command.text}` did not answer /healthz within 120 s"


def stop(proc: subprocess.Popen[str]) -> None:
    """Stop a server as Ctrl-C would, then for good."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
