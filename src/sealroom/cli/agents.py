"""``sealroom mcp``: this party's flows as an MCP server for an agent (stdio or streamable HTTP)."""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Literal

import typer

from sealroom.cli.common import (
    DEFAULT_URL_VALUE,
    HomeOpt,
    PccsUrlOpt,
    UrlOpt,
    handle_errors,
    passphrase_source,
    warn_keystore,
    warn_simulated,
)
from sealroom.errors import BackendUnavailable

__all__ = ["register"]


def mcp(
    pccs_url: PccsUrlOpt = None,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    transport: Annotated[
        str,
        typer.Option(
            "--transport",
            help="stdio (the client starts this command) or http (streamable HTTP at /mcp).",
        ),
    ] = "stdio",
    host: Annotated[str, typer.Option("--host", help="HTTP: address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="HTTP: port.")] = 8765,
    results: Annotated[
        Path | None,
        typer.Option("--results", help="Where fetched results go (default: <home>/results)."),
    ] = None,
    allow_simulated: Annotated[
        bool,
        typer.Option(
            "--allow-simulated",
            help="Let the agent seal data to, and accept results from, a SIMULATED enclave.",
        ),
    ] = False,
    allow_publish: Annotated[
        bool,
        typer.Option(
            "--allow-publish",
            help="Let the agent publish signed cards in your name (refused otherwise).",
        ),
    ] = False,
    allow_protocols: Annotated[
        bool,
        typer.Option(
            "--allow-protocols",
            help="Let the agent run psi/pjc with a peer it names (they disclose set sizes, a "
            "count or a sum outside any dataset policy; refused otherwise).",
        ),
    ] = False,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Errors as one JSON document on stdout (before the server starts; with stdio "
            "transport stdout then carries the MCP protocol only).",
        ),
    ] = False,
) -> None:
    """Serve your party's flows to an agent over MCP, within your policies.

    The agent approves only what your dataset policies approve automatically; anything
    they leave to a person is refused with the command you run yourself.
    """
    from sealroom.attestation.collateral import collateral_source
    from sealroom.client import Party
    from sealroom.crypto.keystore import resolve_home

    if allow_simulated:
        warn_simulated()
    with handle_errors(json_output):
        chosen: Literal["stdio", "http"]
        if transport not in ("stdio", "http"):
            raise typer.BadParameter("--transport must be stdio or http")
        chosen = "stdio" if transport == "stdio" else "http"
        if find_spec("mcp") is None:
            raise BackendUnavailable(
                "the MCP server needs the `mcp` package: pip install 'sealroom[mcp]'"
            )
        from sealroom.mcp.server import AgentLimits, serve

        party_home = resolve_home(home, os.environ)
        warn_keystore(party_home)
        # Never a prompt here: on stdio, stdin is the agent's channel (SEALROOM_PASSPHRASE).
        collateral = collateral_source(pccs_url)
        with Party.open(
            home=party_home, url=url, passphrase=passphrase_source(), collateral=collateral
        ) as party:
            limits = AgentLimits(
                results_dir=results or party_home / "results",
                allow_simulated=allow_simulated,
                allow_publish=allow_publish,
                allow_protocols=allow_protocols,
            )
            serve(party, limits=limits, transport=chosen, host=host, port=port)


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp)
