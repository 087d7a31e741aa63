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
from sealroom.cli.probe import probe

HOME_ENV = "SEALROOM_HOME"
"""``sealroom.crypto.keystore.HOME_ENV`` (a test keeps them equal), without importing it."""

__all__ = ["DB_ENV", "DB_ENV_ALIAS", "default_db_url", "register"]

# Every option of `serve` and `enclave` also reads an environment variable (shown in --help),
# so a container or a dstack app compose configures them without a command line.
DB_ENV = "SEALROOM_DB_URL"
DB_ENV_ALIAS = "SEALROOM_DB"  # the name before the deployment kit; still read


def default_db_url(environ: dict[str, str] | os._Environ[str]) -> str:
    """``$SEALROOM_DB_URL`` (or ``$SEALROOM_DB``); else ``$SEALROOM_HOME/coordinator.db``;
    else ``./sealroom.db`` (SQLite)."""
    explicit = environ.get(DB_ENV, "") or environ.get(DB_ENV_ALIAS, "")
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
            envvar=[DB_ENV, DB_ENV_ALIAS],
            help="Database URL, sqlite:///PATH or postgresql+psycopg://USER@HOST/DB "
            "(default: $SEALROOM_HOME/coordinator.db, else ./sealroom.db).",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", envvar="SEALROOM_HOST", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option("--port", envvar="SEALROOM_PORT", min=1, max=65535, help="Port to listen on."),
    ] = 8470,
    log_origin: Annotated[
        str,
        typer.Option(
            "--log-origin",
            envvar="SEALROOM_LOG_ORIGIN",
            help="The transparency log's origin (its name in checkpoints); fixed for the "
            "life of the database.",
        ),
    ] = "sealroom.local/log",
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level",
            envvar="SEALROOM_LOG_LEVEL",
            help="Server log level: critical, error, warning, info or debug.",
        ),
    ] = "info",
    prepare: Annotated[
        bool,
        typer.Option(
            "--prepare",
            help="Only prepare the database (migrate it, create the log key if it has none), "
            "print the log's verifier key (vkey) and exit: what a witness pins before the "
            "coordinator first serves.",
        ),
    ] = False,
    witness: Annotated[
        list[str] | None,
        typer.Option(
            "--witness",
            envvar="SEALROOM_WITNESSES",
            help="A witness that cosigns the log's checkpoints, as <witness vkey>@<URL> "
            "(repeatable; in the variable, separated by spaces; see `sealroom witness`).",
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
    """Run the coordinator: HTTP API, registry, workflow and transparency log.

    Probes: GET /healthz (the process answers) and GET /readyz (database reachable, schema at
    this release's head, log key loaded; 503 with the reason otherwise).
    """
    from sealroom.api.server import serve as run_server
    from sealroom.coordinator.witnessing import WitnessEndpoint
    from sealroom.errors import InvalidInput

    with handle_errors(json_output):
        if log_level not in _LOG_LEVELS:
            raise InvalidInput(f"--log-level must be one of {', '.join(_LOG_LEVELS)}")
        if prepare:
            typer.echo(_prepare(db or default_db_url(os.environ), log_origin))
            return
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
            log_origin=log_origin,
            log_level=log_level,
            witnesses=witnesses,
            on_ready=ready if json_output else None,
        )


_LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def _prepare(db_url: str, log_origin: str) -> str:
    """Migrate the database, load (or create) the log key, and return its vkey."""
    from sqlalchemy.exc import SQLAlchemyError

    from sealroom.coordinator.log import load_log_signer
    from sealroom.errors import BackendUnavailable
    from sealroom.storage.engine import create_engine
    from sealroom.storage.migrate import upgrade

    engine = create_engine(db_url)
    try:
        upgrade(engine)
        return load_log_signer(engine, log_origin).verifier.vkey
    except SQLAlchemyError as exc:
        raise BackendUnavailable(f"database: {type(exc).__name__}") from None
    finally:
        engine.dispose()


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
        typer.Option(
            "--dstack-endpoint",
            envvar="SEALROOM_DSTACK_ENDPOINT",
            help="dstack guest agent (default: the SDK's, /var/run/dstack.sock).",
        ),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Register, run at most one job, and exit.")
    ] = False,
    wait_for_coordinator: Annotated[
        float,
        typer.Option(
            "--wait-for-coordinator",
            envvar="SEALROOM_WAIT_FOR_COORDINATOR",
            min=0.0,
            help="Keep retrying registration this long while the coordinator is unreachable (s).",
        ),
    ] = 60.0,
    poll_max: Annotated[
        float,
        typer.Option(
            "--poll-max",
            envvar="SEALROOM_POLL_MAX",
            min=0.05,
            max=60.0,
            help="Longest wait between polls when idle (s).",
        ),
    ] = 5.0,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            envvar="SEALROOM_ENCLAVE_STATE",
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
    app.command("probe")(probe)
