"""``edgesplit reproduce NAME``: one sub-command per paper reproduction.

Each area's ``register(app)`` adds its paper here with ``reproduce_app.command("name")``.
"""

from __future__ import annotations

import typer

reproduce_app = typer.Typer(
    help="Reproduce a paper's evaluation with one command (tables and plots under results/).",
    no_args_is_help=True,
)
