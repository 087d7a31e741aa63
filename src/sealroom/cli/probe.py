"""``sealroom probe URL``: the healthcheck command of the container image (which has no curl).

Orchestrators run it every few seconds, so it must not pay for the whole CLI: the
``sealroom`` entry point (:mod:`sealroom.cli.entry`) runs it after importing only this
module, typer and httpx (a tenth of a second, where the full CLI takes seconds).
"""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["probe", "run"]


def probe(
    url: Annotated[str, typer.Argument(help="The URL to GET, e.g. http://127.0.0.1:8470/readyz.")],
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, max=300.0, help="Seconds to wait.")
    ] = 5.0,
) -> None:
    """Exit 0 if GET URL answers 2xx, 1 otherwise: the healthcheck for /readyz, /healthz and a
    witness's /healthz."""
    import httpx

    try:
        response = httpx.get(url, timeout=timeout)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        typer.echo(f"{url}: {type(exc).__name__}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{url}: {response.status_code}", err=response.is_error)
    if not response.is_success:
        raise typer.Exit(1)


def run(args: list[str]) -> None:
    """Run ``probe`` alone, as ``sealroom probe ARGS`` would."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command("probe")(probe)
    app(args=args, prog_name="sealroom probe")
