"""``sealroom ui``: this party's console in the browser, served on loopback next to its keystore."""

from __future__ import annotations

import json
import secrets
import socket
from pathlib import Path
from typing import Annotated

import typer

from sealroom.cli.common import (
    DEFAULT_URL_VALUE,
    HomeOpt,
    JsonOpt,
    PccsUrlOpt,
    UrlOpt,
    command,
    read_file,
)

__all__ = ["register"]

HOST = "127.0.0.1"  # never configurable: the console signs with this party's keys


def ui(
    port: Annotated[
        int,
        typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0: a free one)."),
    ] = 0,
    results: Annotated[
        Path | None,
        typer.Option(
            "--results",
            help="Where opened results and proof bundles are kept, 0600 "
            "(default: <keystore>/console-results).",
        ),
    ] = None,
    allow_simulated: Annotated[
        bool,
        typer.Option(
            "--allow-simulated",
            help="Seal to, and accept results from, a SIMULATED enclave (no hardware "
            "protection). Tests only.",
        ),
    ] = False,
    simulation_root: Annotated[
        str | None,
        typer.Option(
            "--simulation-root",
            envvar="SEALROOM_SIMULATION_ROOT",
            help="Pin the deployment's simulation root (hex) for sealing and results.",
        ),
    ] = None,
    measurements: Annotated[
        Path | None,
        typer.Option("--measurements", help="JSON allowlist of TDX measurements to accept."),
    ] = None,
    pccs_url: PccsUrlOpt = None,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Open this party's console: inbox, request builder, live progress, results and budgets.

    Serves on 127.0.0.1 only and prints a link with a random launch token: only a
    browser that opened that link can use the console (other local users cannot).
    Runs until stopped (Ctrl-C). With --json, the link is one JSON line on stdout
    (``{"url", "party", "party_id", "simulated"}``).
    """
    import uvicorn

    from sealroom.attestation.pins import parse_simulation_root
    from sealroom.web.console import ConsoleOptions, Sessions, create_console_app

    with command(
        json_output, url=url, home=home, allow_simulated=allow_simulated, pccs_url=pccs_url
    ) as cmd:
        root = parse_simulation_root(simulation_root) if simulation_root else None
        allow = read_file(measurements, "measurements") if measurements else None
        party = cmd.party()
        options = ConsoleOptions(
            results_dir=results or party.home / "console-results",
            allow_simulated=allow_simulated,
            simulation_root=root,
            measurements=allow,
        )
        sessions = Sessions(secrets.token_urlsafe(32))
        app = create_console_app(party, options=options, sessions=sessions)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            sock.close()
            raise typer.BadParameter(f"cannot listen on {HOST}:{port}: {exc.strerror}") from None
        bound = int(sock.getsockname()[1])
        link = f"http://{HOST}:{bound}/launch?token={sessions.launch_token}"
        if json_output:
            doc = {
                "url": link,
                "party": party.name,
                "party_id": party.party_id,
                "simulated": allow_simulated,
            }
            typer.echo(json.dumps(doc, sort_keys=True))
        else:
            typer.echo(f"sealroom console for {party.name} (Ctrl-C stops). Open this link:")
            typer.echo(link)
        typer.echo("Anyone holding the link can act as you: do not share it.", err=True)
        config = uvicorn.Config(
            app, host=HOST, port=bound, log_level="warning", access_log=False, lifespan="off"
        )
        uvicorn.Server(config).run(sockets=[sock])


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)
