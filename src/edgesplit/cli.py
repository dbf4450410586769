"""The ``edgesplit`` command line: one typer app; each area registers its commands.

Bad input prints one line ``error: ...`` on stderr and exits with status 2, never a
traceback: errors raised on purpose (:class:`~edgesplit.errors.EdgesplitError`), a pydantic
validation error that escaped a loader, a YAML or JSON syntax error, and a path given on
the command line that is missing, a directory or unreadable.
"""

from __future__ import annotations

import json
import sys

import typer
import yaml
from pydantic import ValidationError

from edgesplit.commands import cluster as cluster_commands
from edgesplit.commands import earlyexit as earlyexit_commands
from edgesplit.commands import generate as generate_commands
from edgesplit.commands import graph as graph_commands
from edgesplit.commands import multidevice as multidevice_commands
from edgesplit.commands import placement as placement_commands
from edgesplit.commands import plan as plan_commands
from edgesplit.commands import runtime as runtime_commands
from edgesplit.commands.progress import forget_kept, interrupted_line
from edgesplit.commands.reproduce import reproduce_app
from edgesplit.errors import EdgesplitError
from edgesplit.io import validation_line

try:  # typer >= 0.25 vendors click; its usage errors live there
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover - typer on the click package
    from click import exceptions as _click_errors  # type: ignore[no-redef]

app = typer.Typer(
    name="edgesplit",
    help="Split DNNs and place the parts across device, edge and cloud; run them for real.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# One entry per area; each module exposes register(app). The reproductions live in one
# place, commands/reproduce.py.
for _area in (
    graph_commands,
    plan_commands,
    runtime_commands,
    placement_commands,
    multidevice_commands,
    earlyexit_commands,
    cluster_commands,
    generate_commands,
):
    _area.register(app)
app.add_typer(reproduce_app, name="reproduce")


#: Modules of the ``full`` extra (pyproject.toml): absent from the lean device install.
FULL_ONLY = frozenset(
    [
        "networkx",
        "scipy",
        "highspy",
        "ortools",
        "cvxpy",
        "sklearn",
        "simpy",
        "deap",
        "ray",
        "matplotlib",
    ]
)


def error_line(err: BaseException) -> str | None:
    """The one line printed for an input error, or None for a bug (which keeps its traceback)."""
    if isinstance(err, EdgesplitError):
        text = str(err)
    elif isinstance(err, ValidationError):
        text = f"invalid {err.title}: {validation_line(err)}"
    elif isinstance(err, json.JSONDecodeError):
        text = f"not valid JSON: line {err.lineno} column {err.colno}: {err.msg}"
    elif isinstance(err, yaml.YAMLError):
        text = f"not valid YAML: {err}"
    elif isinstance(err, (FileNotFoundError, IsADirectoryError, PermissionError)):
        text = f"{err.strerror}: {str(err.filename)!r}; check the path"
    elif isinstance(err, ModuleNotFoundError) and (err.name or "").split(".")[0] in FULL_ONLY:
        text = (
            f"this command needs {err.name!r}, which the lean (device) install leaves out; "
            "install it with: pip install 'edgesplit[full]'"
        )
    else:
        return None
    return "error: " + " ".join(text.split())


def main(argv: list[str] | None = None) -> None:
    """Run the app on ``argv`` (default ``sys.argv[1:]``); input errors exit 2 with one line.

    Usage errors too (a missing argument, an unknown option): one line naming the command's
    ``--help``, where click would draw a box of five. A bare group still prints its help.
    Ctrl-C prints one line ``interrupted: ...`` saying what the command kept
    (:mod:`edgesplit.commands.progress`) and exits 130, without a traceback.
    """
    forget_kept()  # notes left by an earlier command that failed in this process
    try:
        code = app(args=argv, prog_name="edgesplit", standalone_mode=False)
    except _click_errors.NoArgsIsHelpError as err:
        err.show()
        raise SystemExit(2) from None
    except _click_errors.UsageError as err:
        where = err.ctx.command_path if err.ctx is not None else "edgesplit"
        message = " ".join(err.format_message().split())
        print(f"error: {message} (see `{where} --help`)", file=sys.stderr)
        raise SystemExit(2) from None
    except typer.Abort:
        print("Aborted!", file=sys.stderr)
        raise SystemExit(130) from None
    except KeyboardInterrupt:  # Ctrl-C outside typer's own handler (which gives 130)
        print(interrupted_line(), file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as err:
        line = error_line(err)
        if line is None:
            raise
        print(line, file=sys.stderr)
        raise SystemExit(2) from None
    if code == 130:  # typer turns Ctrl-C (KeyboardInterrupt) into exit status 130
        print(interrupted_line(), file=sys.stderr)
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
