"""The ``skyframe`` command line. Each group of commands lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="skyframe",
    help="SkyFrame: make drone footage look better. Serve the web app, run workers, enhance clips.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """SkyFrame: make drone footage look better."""


# Importing the modules registers their commands on ``app``.
from skyframe.cli import enhance, service, users  # noqa: E402, F401
