"""The ``sealroom`` command line."""

from __future__ import annotations

import typer

from sealroom import __version__

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.command()
def version() -> None:
    """Print the sealroom version."""
    typer.echo(__version__)


def main() -> None:
    app()
