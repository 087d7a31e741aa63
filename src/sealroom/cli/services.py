"""Long-running processes: the coordinator (``serve``) and the enclave worker (``enclave``)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from sealroom.cli.common import (
    DEFAULT_URL_VALUE,
    JsonOpt,
    UrlOpt,
    emit,
    handle_errors,
    warn_simulated,
)

HOME_ENV = "SEALROOM_HOME"
"""``sealroom.crypto.keystore.HOME_ENV`` (a test keeps them equal), without importing it."""

__all__ = ["DB_ENV", "default_db_url", "register"]

DB_ENV = "SEALROOM_DB"


def default_db_url(environ: dict[str, str] | os._Environ[str]) -> str:
    """``$SEALROOM_DB``; else ``$SEALROOM_HOME/coordinator.db``; else ``./sealroom.db`` (SQLite)."""
    explicit = environ.get(DB_ENV, "")
    if explicit:
        return explicit
    home = environ.get(HOME_ENV, "")
    path = Path(home) / "coordinator.db" if home else Path("sealroom.db")
    return f"sqlite:///{path.resolve()}"


def serve(
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Database URL (default: $SEALROOM_DB, else $SEALROOM_HOME/coordinator.db, "
            "else ./sealroom.db).",
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8470,
    witness: Annotated[
        list[str] | None,
        typer.Option(
            "--witness",
            envvar="SEALROOM_WITNESSES",
            help="A witness that cosigns the log's checkpoints, as <witness vkey>@<URL> "
            "(repeatable; see `sealroom witness`).",
        ),
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Once listening, print one JSON line {url, pid, database} on stdout "
            "(logs stay on stderr); errors as a JSON document.",
        ),
    ] = False,
) -> None:
    """Run the coordinator: HTTP API, registry, workflow and transparency log."""
    from sealroom.api.server import serve as run_server
    from sealroom.coordinator.witnessing import WitnessEndpoint

    with handle_errors(json_output):
        witnesses = [WitnessEndpoint.parse(w) for w in witness or []]
        db_url = db or default_db_url(os.environ)

        def ready(bound: int) -> None:
            # The database's kind only: its URL may hold a password.
            doc = {
                "url": f"http://{host}:{bound}",
                "pid": os.getpid(),
                "database": db_url.partition(":")[0].partition("+")[0],
            }
            typer.echo(json.dumps(doc, sort_keys=True))

        run_server(
            db_url=db_url,
            host=host,
            port=port,
            witnesses=witnesses,
            on_ready=ready if json_output else None,
        )


def enclave(
    url: UrlOpt = DEFAULT_URL_VALUE,
    simulated: Annotated[
        bool,
        typer.Option(
            "--simulated/--dstack",
            help="Evidence from a labelled software simulation (default) or a dstack CVM.",
        ),
    ] = True,
    dstack_endpoint: Annotated[
        str | None,
        typer.Option("--dstack-endpoint", help="dstack guest agent (default: the SDK's)."),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Register, run at most one job, and exit.")
    ] = False,
    wait_for_coordinator: Annotated[
        float,
        typer.Option(
            "--wait-for-coordinator",
            min=0.0,
            help="Keep retrying registration this long while the coordinator is unreachable (s).",
        ),
    ] = 60.0,
    poll_max: Annotated[
        float,
        typer.Option(
            "--poll-max", min=0.05, max=60.0, help="Longest wait between polls when idle (s)."
        ),
    ] = 5.0,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            file_okay=False,
            help="The enclave's own state directory (its privacy-budget ledger and release "
            "history). In a dstack CVM: a path on the encrypted disk (required). Simulated "
            "default: a fresh temporary directory, removed on exit, so budgets reset on "
            "every start.",
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Run the mediator enclave worker: register evidence, then claim and run jobs."""
    from sealroom.client.http import Client
    from sealroom.enclave.state import EnclaveState
    from sealroom.enclave.worker import EnclaveWorker, make_enclave_keys, stop_on_signals
    from sealroom.errors import InvalidInput

    if simulated:
        warn_simulated()
    with handle_errors(json_output):
        if state is None:
            if not simulated:
                raise InvalidInput(
                    "--state DIR is required with --dstack: the budget ledger must live on "
                    "the CVM's encrypted disk and survive restarts"
                )
            own = EnclaveState.create_temporary()
            typer.secho(
                f"!! no --state given: privacy budgets and the release history are kept in "
                f"{own.directory} and are LOST when this enclave stops !!",
                fg="yellow",
                err=True,
            )
        else:
            own = EnclaveState.in_directory(state)
        try:
            keys = make_enclave_keys(
                tee="simulated" if simulated else "dstack",
                now=int(time.time()),
                dstack_endpoint=dstack_endpoint,
            )
            with Client(base_url=url, identity=keys.identity) as client:
                worker = EnclaveWorker(
                    source=client,
                    keys=keys,
                    state=own,
                    idle_max=poll_max,
                    idle_min=min(0.25, poll_max),
                    on_event=None if json_output else lambda m: typer.echo(m, err=True),
                )
                evidence = worker.register_when_ready(timeout=wait_for_coordinator)
                if once:
                    step = worker.step()
                    emit(
                        json_output,
                        {
                            "evidence": evidence,
                            "party": keys.public.party_id,
                            "simulated": simulated,
                            "outcome": step.outcome,
                            "request": step.request,
                            "reason": step.reason,
                        },
                        lambda: typer.echo(
                            f"{step.outcome}" + (f" {step.request}" if step.request else "")
                        ),
                    )
                    return
                stop = threading.Event()
                with stop_on_signals(stop):
                    worker.run(stop)
        finally:
            own.close()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("enclave")(enclave)
