"""Every command in README.md and docs/*.md runs as written (issue 16, "Done when").

The extraction and the runner are in ``doc_commands.py``. Here:

* every ``bash`` block's commands run in a user's checkout (a temporary copy of
  ``examples/``, ``.venv/bin`` on ``PATH``, servers started in the background and
  stopped after their clients) and must exit 0 with no traceback; the README's Python
  snippets run too;
* every ``edgesplit`` command shown anywhere, synopses included, names only options its
  command has;
* :data:`EXEMPT` lists what is not run, each with its reason, and each exempted command is
  still checked for validity (its options, ``make -n``, the extras it installs);
* :data:`FAST` names the few units cheap enough for the normal suite; every other unit
  is marked slow (it still runs in CI).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from doc_commands import (
    ROOT,
    SHELL_LANGS,
    Command,
    Unit,
    Workspace,
    all_blocks,
    edgesplit_commands,
    runnable_units,
    split_commands,
)

#: Documented commands that are not run, keyed by a piece of their text, with the reason.
EXEMPT: dict[str, str] = {
    "make demo": "runs for about two minutes by design and installs .venv; checked with make -n",
    "make test": "the whole suite itself; checked with make -n",
    "pip install": "installs packages (needs the package store); checked: constraints.txt and the extras exist",
    "git worktree add": "builds a pre-merge checkout to benchmark it; minutes by design",
    "bench_placement_tarnawski.py": "a full benchmark, minutes by design; its options are checked",
    "with api.decoder(": "a fragment: prompt_ids is the caller's; tests/runtime runs decode sessions",
    "from edgesplit import Deployment": "run by tests/runtime/test_api.py against the servers it names",
    # Each --quick reproduction takes up to 3 minutes by design, and its own test runs it
    # through the CLI already (a second run here would double the suite's longest tests).
    "reproduce luger2023 --quick": "minutes by design; tests/runtime/test_luger_reproduce.py runs it",
    "reproduce samadi --quick": "minutes by design; tests/plan/test_samadi_reproduce.py runs it as written",
    "reproduce gao2019 --quick": "minutes by design; tests/multidevice/test_gao_reproduce.py runs it (--time-limit 2)",
    "reproduce zuo2024 --quick": "minutes by design; tests/earlyexit/test_zuo_reproduce.py runs it as written",
    "reproduce tuli2021 --quick": "minutes by design; tests/cluster/test_cluster_reproduce.py runs it (fewer seeds)",
}

#: The units cheap enough for the normal suite (each under ~5 s on two quiet cores); every
#: other unit is marked slow (it still runs in CI). Measured on a quiet 2-core host: a
#: command that builds a model takes 6-12 s (profile, plan, inspect, verify), a block with
#: servers 15-115 s; the slow set took 12 min on a quiet 2-core host.
FAST: tuple[str, ...] = (
    "edgesplit models",
    "edgesplit schema ",
    "edgesplit reproduce --list",
    "placement evaluate $B/latency-inputs/LayerGraphs/resnet50_inference.json",
)


#: Options a synopsis writes as placeholders of another command's options.
OPTION = re.compile(r"(?<![\w/.=-])(--?[A-Za-z][\w-]*)")


def exemption(command: Command) -> str | None:
    return next((why for key, why in EXEMPT.items() if key in command.text), None)


def _runnable() -> Iterator[object]:
    for unit in runnable_units():
        kept = tuple(c for c in unit.commands if exemption(c) is None)
        if not kept:
            continue
        fast = all(any(key in c.text for key in FAST) for c in kept)
        marks = [] if fast else [pytest.mark.slow]
        yield pytest.param(Unit(kept, unit.prelude), id=unit.id, marks=marks)


_WORKSPACES: dict[str, Workspace] = {}


@pytest.fixture
def workspace(tmp_path_factory: pytest.TempPathFactory, unit: Unit) -> Workspace:
    """One checkout per document, shared by its units in document order (a later command
    may read what an earlier one wrote, as in the docs)."""
    if unit.doc not in _WORKSPACES:
        _WORKSPACES[unit.doc] = Workspace(tmp_path_factory.mktemp("doc"))
    return _WORKSPACES[unit.doc]


@pytest.mark.parametrize("unit", list(_runnable()))
def test_documented_command_runs(unit: Unit, workspace: Workspace) -> None:
    failures = workspace.run(unit, timeout=600)
    assert not failures, "\n".join(failures)


def _click_root() -> object:
    import typer

    from edgesplit.cli import app

    return typer.main.get_command(app)


def resolve(command: Command) -> tuple[object, str]:
    """The click command a documented ``edgesplit ...`` line invokes, and its path."""
    node = _click_root()
    path = ["edgesplit"]
    for word in command.words()[1:]:
        subcommands = getattr(node, "commands", None)
        if subcommands is None or word not in subcommands:
            break
        node = subcommands[word]
        path.append(word)
    return node, " ".join(path)


@pytest.mark.parametrize("command", edgesplit_commands(), ids=lambda c: c.where)
def test_documented_options_exist(command: Command) -> None:
    node, path = resolve(command)
    rest = command.words()[len(path.split()) :]
    targets = [node]
    if hasattr(node, "commands"):
        if rest and rest[0].isupper():  # `reproduce NAME --quick`: every subcommand has it
            targets = list(node.commands.values())  # type: ignore[attr-defined]
        else:  # a group's own option (`reproduce --list`), never a missing subcommand
            assert rest and rest[0].startswith("-"), (
                f"{command.where}: `{command.text}` names no subcommand of `{path}`"
            )
    named = {m.split("=")[0] for m in OPTION.findall(command.text.replace("$CFG", ""))}
    for target in targets:
        known = {o for p in target.params for o in (*p.opts, *p.secondary_opts)}  # type: ignore[attr-defined]
        unknown = sorted(named - known - {"--help"})
        assert not unknown, (
            f"{command.where}: `{path}` ({target.name}) has no option {', '.join(unknown)}"
        )  # type: ignore[attr-defined]


def test_shell_fences_are_tagged() -> None:
    """A block holding a command says whether it runs (bash) or is a synopsis (text)."""
    untagged = [
        f"{b.doc}:{b.line}"
        for b in all_blocks()
        if b.lang not in SHELL_LANGS | {"text", "python", "yaml", "json", "toml"}
        and any(c.program in ("edgesplit", "make", "python", "pip") for c in b.commands)
    ]
    assert not untagged, f"fenced blocks with commands need bash or text: {untagged}"


def test_every_exemption_and_fast_mark_names_a_documented_command() -> None:
    texts = [c.text for u in runnable_units() for c in u.commands]
    stale = [key for key in (*EXEMPT, *FAST) if not any(key in t for t in texts)]
    assert not stale, f"exemptions or fast marks that match no documented command: {stale}"


def _exempt_commands() -> list[Command]:
    return [c for u in runnable_units() for c in u.commands if exemption(c) is not None]


@pytest.mark.parametrize("command", _exempt_commands(), ids=lambda c: c.where)
def test_exempt_command_is_valid(command: Command) -> None:
    """An exempted command is not run, but it must still be one that would run."""
    if command.lang == "python":
        compile(command.text, command.where, "exec")
        return
    words = command.words()
    if command.program == "make":
        done = subprocess.run(["make", "-n", *words[1:]], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, f"{command.where}: make -n {words[1:]}: {done.stderr}"
    elif command.program == "pip":
        assert (ROOT / words[words.index("-c") + 1]).is_file()
        extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
            "optional-dependencies"
        ]
        for spec in words[words.index("-c") + 2 :]:
            wanted = re.findall(r"\[(\w+)\]", spec)
            assert all(e in extras for e in wanted), f"{command.where}: no extra {wanted}"
    elif any(w.startswith("benchmarks/") for w in words):
        script = next(w for w in words if w.startswith("benchmarks/")).rstrip(")")
        done = subprocess.run(
            [sys.executable, script, "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{command.where}: {script} --help: {done.stderr}"
        named = {m for m in OPTION.findall(command.text) if m.startswith("--")}
        assert all(opt in done.stdout for opt in named), (
            f"{command.where}: {named} vs {done.stdout}"
        )
    elif command.program == "edgesplit":  # its options: test_documented_options_exist
        node, path = resolve(command)
        assert not hasattr(node, "commands"), f"{command.where}: `{path}` is a group, not a command"
    else:
        assert command.program == "git", f"{command.where}: no validity check for `{command.text}`"


def test_extraction_joins_continuations_and_skips_comments_and_output() -> None:
    bash = [
        "# a comment",
        "CFG='--model-config n_layer=4'",
        "edgesplit plan alexnet --bandwidth 5mbit \\",
        "    --rtt 10ms   # trailing comment",
        "",
        "edgesplit serve --model alexnet --port 8102 &",
    ]
    texts = [c.text for c in split_commands("X.md", 10, "bash", bash)]
    assert texts == [
        "CFG='--model-config n_layer=4'",
        "edgesplit plan alexnet --bandwidth 5mbit --rtt 10ms",
        "edgesplit serve --model alexnet --port 8102 &",
    ]
    commands = split_commands("X.md", 10, "bash", bash)
    assert [c.line for c in commands] == [11, 12, 15]
    assert commands[0].is_assignment and commands[2].is_server and not commands[1].is_server
    console = ["$ edgesplit models", "name  shape", "$ edgesplit schema profile"]
    assert [c.text for c in split_commands("X.md", 1, "console", console)] == [
        "edgesplit models",
        "edgesplit schema profile",
    ]


def test_runner_reports_a_failing_command(tmp_path: Path) -> None:
    """The checker is not vacuous: a documented command that exits 2 is a failure naming it."""
    bad = Command("X.md", 7, "edgesplit inspect no_such_model", "bash")
    failures = Workspace(tmp_path).run(Unit((bad,)), timeout=120)
    assert len(failures) == 1
    assert failures[0].startswith("X.md:7: `edgesplit inspect no_such_model` exited 2")
    assert "error:" in failures[0]
