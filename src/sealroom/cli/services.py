"""Long-running processes: the coordinator (``serve``) and the enclave worker (``enclave``)."""

from __future__ import annotations

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
from sealroom.crypto.keystore import HOME_ENV

__all__ = ["DB_ENV", "DB_ENV_ALIAS", "default_db_url", "read_deployment_secret", "register"]

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
    lease_seconds: Annotated[
        int,
        typer.Option(
            "--lease-seconds",
            min=2,
            max=86_400,
            envvar="SEALROOM_LEASE_SECONDS",
            help="How long an enclave's claim on a job lasts unless renewed; a lapsed job goes "
            "back to the queue for another worker.",
        ),
    ] = 300,
    witness: Annotated[
        list[str] | None,
        typer.Option(
            "--witness",
            envvar="SEALROOM_WITNESSES",
            help="A witness that cosigns the log's checkpoints, as <witness vkey>@<URL> "
            "(repeatable; in the variable, separated by spaces; see `sealroom witness`).",
        ),
    ] = None,
    keys: Annotated[
        Path | None,
        typer.Option(
            "--keys",
            envvar="SEALROOM_COORDINATOR_KEYS",
            file_okay=False,
            help="Directory of the coordinator's signing keys (the log key, 0600; never in "
            "the database). Default for SQLite: <db file>.keys/ beside it; required for "
            "PostgreSQL.",
        ),
    ] = None,
) -> None:
    """Run the coordinator: HTTP API, registry, workflow and transparency log.

    Probes: GET /healthz (the process answers) and GET /readyz (database reachable, schema at
    this release's head, log key loaded; 503 with the reason otherwise).
    """
    from sealroom.api.server import serve as run_server
    from sealroom.coordinator.witnessing import WitnessEndpoint
    from sealroom.errors import InvalidInput

    with handle_errors(False):
        if log_level not in _LOG_LEVELS:
            raise InvalidInput(f"--log-level must be one of {', '.join(_LOG_LEVELS)}")
        if prepare:
            typer.echo(_prepare(db or default_db_url(os.environ), log_origin, keys))
            return
        witnesses = [WitnessEndpoint.parse(w) for w in witness or []]
        run_server(
            db_url=db or default_db_url(os.environ),
            host=host,
            port=port,
            log_origin=log_origin,
            log_level=log_level,
            witnesses=witnesses,
            keys_dir=keys,
            lease_seconds=lease_seconds,
        )


_LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def _prepare(db_url: str, log_origin: str, keys: Path | None) -> str:
    """Migrate the database, load (or create) the log key in its keystore, return its vkey."""
    from sqlalchemy.exc import SQLAlchemyError

    from sealroom.coordinator.keys import CoordinatorKeystore
    from sealroom.errors import BackendUnavailable
    from sealroom.storage.engine import create_engine
    from sealroom.storage.migrate import upgrade

    keystore = (
        CoordinatorKeystore(directory=keys)
        if keys is not None
        else CoordinatorKeystore.beside(db_url)
    )
    engine = create_engine(db_url)
    try:
        upgrade(engine)
        return keystore.log_signer(engine, log_origin).verifier.vkey
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
            help="The enclave's own state directory (its release history and its trust in the "
            "log: key, last checkpoint, ledger heads seen; budgets live in the log). In a dstack "
            "CVM: a path on the encrypted disk (required). Simulated default: a fresh "
            "temporary directory, removed on exit.",
        ),
    ] = None,
    deployment_secret_file: Annotated[
        Path | None,
        typer.Option(
            "--deployment-secret-file",
            dir_okay=False,
            envvar="SEALROOM_DEPLOYMENT_SECRET_FILE",
            help="A file (mode 0600, at least 32 random bytes) the deployment's workers share: "
            "their keys derive from it, so any of them can run a job another left. Under "
            "--dstack the default is the KMS-derived app key.",
        ),
    ] = None,
    log_key: Annotated[
        str | None,
        typer.Option(
            "--log-key",
            envvar="SEALROOM_LOG_KEY",
            help="Pin the coordinator's log key (a note verifier key); without it the key is "
            "trusted on first use and kept in the state directory.",
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
                    "--state DIR is required with --dstack: the release history and the "
                    "trusted log checkpoint must live on the CVM's encrypted disk"
                )
            own = EnclaveState.create_temporary()
            typer.secho(
                f"!! no --state given: the release history and the trusted log checkpoint "
                f"are kept in {own.directory} and are LOST when this enclave stops (budgets "
                "live in the coordinator's log) !!",
                fg="yellow",
                err=True,
            )
        else:
            own = EnclaveState.in_directory(state)
        try:
            secret = (
                read_deployment_secret(deployment_secret_file)
                if deployment_secret_file is not None
                else None
            )
            keys = make_enclave_keys(
                tee="simulated" if simulated else "dstack",
                now=int(time.time()),
                dstack_endpoint=dstack_endpoint,
                deployment_secret=secret,
            )
            with Client(base_url=url, identity=keys.identity) as client:
                worker = EnclaveWorker(
                    source=client,
                    keys=keys,
                    state=own,
                    idle_max=poll_max,
                    idle_min=min(0.25, poll_max),
                    on_event=None if json_output else lambda m: typer.echo(m, err=True),
                    log_key=log_key,
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


def read_deployment_secret(path: Path) -> bytes:
    """The deployment secret in ``path``, which only its owner may read (0600 or stricter)."""
    from sealroom.enclave.keys import MIN_DEPLOYMENT_SECRET
    from sealroom.errors import InvalidInput

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise InvalidInput(f"cannot open the deployment secret {path}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if mode & 0o077:
            raise InvalidInput(
                f"the deployment secret {path} is readable by others (mode {mode & 0o777:o}); "
                "chmod 600 it"
            )
        secret = os.read(fd, 4096)
    finally:
        os.close(fd)
    if len(secret) < MIN_DEPLOYMENT_SECRET:
        raise InvalidInput(f"the deployment secret {path} must hold at least 32 bytes")
    return secret


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("enclave")(enclave)
    app.command("probe")(probe)
