"""The ``edgesplit`` command line: one typer app; each area registers its commands.

Errors raised on purpose (:class:`~edgesplit.errors.EdgesplitError`, pydantic validation
errors) print one line on stderr and exit with status 2, never a traceback.
"""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError

from edgesplit.commands import cluster as cluster_commands
from edgesplit.commands import earlyexit as earlyexit_commands
from edgesplit.commands import graph as graph_commands
from edgesplit.commands import multidevice as multidevice_commands
from edgesplit.commands import placement as placement_commands
from edgesplit.commands import plan as plan_commands
from edgesplit.commands import runtime as runtime_commands
from edgesplit.commands.reproduce import reproduce_app
from edgesplit.errors import EdgesplitError

app = typer.Typer(
    name="edgesplit",
    help="Split DNNs and place the parts across device, edge and cloud; run them for real.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# One entry per area; each module exposes register(app) and may add to reproduce_app.
for _area in (
    graph_commands,
    plan_commands,
    runtime_commands,
    placement_commands,
    multidevice_commands,
    earlyexit_commands,
    cluster_commands,
):
    _area.register(app)
app.add_typer(reproduce_app, name="reproduce")


def validation_line(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    return f"invalid {err.title}: field {loc!r}: {first['msg']}"


def main() -> None:
    try:
        app()
    except EdgesplitError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except ValidationError as err:
        print(f"error: {validation_line(err)}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
