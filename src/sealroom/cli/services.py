"""Long-running processes: the coordinator (``serve``) and the enclave worker (``enclave``)."""

from __future__ import annotations

import json
import os
import threading
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sealroom.cli.common import (
    DEFAULT_URL_VALUE,
    JsonOpt,
    UrlOpt,
    emit,
    handle_errors,
    read_file,
    warn_simulated,
)
from sealroom.cli.probe import probe
from sealroom.errors import InvalidInput

if TYPE_CHECKING:
    from sealroom.attestation.simulated import SimulationRoot

DEFAULT_MAX_EVIDENCE_AGE = 24 * 3600
"""``sealroom.attestation.pins.DEFAULT_MAX_EVIDENCE_AGE`` (a test keeps them equal), repeated
so that start-up need not import the attestation code."""

HOME_ENV = "SEALROOM_HOME"
"""``sealroom.crypto.keystore.HOME_ENV`` (a test keeps them equal), without importing it."""

__all__ = [
    "DB_ENV",
    "DB_ENV_ALIAS",
    "default_db_url",
    "load_simulation_root",
    "read_deployment_secret",
    "register",
]

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
    sweep_every: Annotated[
        int,
        typer.Option(
            "--sweep-every",
            min=0,
            max=86_400,
            envvar="SEALROOM_SWEEP_EVERY",
            help="Seconds between the coordinator's own sweeps (0: only when called): sealed "
            "results past retention are deleted and recorded, expired requests end.",
        ),
    ] = 60,
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
    enclave_measurements: Annotated[
        Path | None,
        typer.Option(
            "--enclave-measurements",
            envvar="SEALROOM_ENCLAVE_MEASUREMENTS",
            dir_okay=False,
            help="Admit TDX enclaves whose measurements are in this JSON allowlist "
            "(the `sealroom verify --measurements` format, incl. compose_hash).",
        ),
    ] = None,
    simulation_root: Annotated[
        str | None,
        typer.Option(
            "--simulation-root",
            envvar="SEALROOM_SIMULATION_ROOT",
            help="Admit SIMULATED enclaves under this simulation root (hex public key, "
            "printed by `sealroom enclave --simulation-root-seed FILE`).",
        ),
    ] = None,
    max_evidence_age: Annotated[
        int,
        typer.Option(
            "--max-evidence-age",
            envvar="SEALROOM_MAX_EVIDENCE_AGE",
            min=1,
            help="Admit and list only enclaves whose evidence is at most this old (s).",
        ),
    ] = DEFAULT_MAX_EVIDENCE_AGE,
    pricing: Annotated[
        Path | None,
        typer.Option(
            "--pricing",
            envvar="SEALROOM_PRICING",
            dir_okay=False,
            help="The published price schedule (JSON, docs/marketplace.md): approved requests "
            "escrow their price in credits. Without it computations are free.",
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
    """Run the coordinator: HTTP API, registry, workflow, transparency log and the public pages
    (/ dataset explorer, /log browser, /verify page; no login, nothing the API hides).

    Enclaves are admitted only under --enclave-measurements and/or --simulation-root;
    with neither, no enclave can register (fail closed).

    Probes: GET /healthz (the process answers) and GET /readyz (database reachable, schema at
    this release's head, log key loaded; 503 with the reason otherwise).
    """
    from sealroom.api.server import serve as run_server
    from sealroom.attestation.pins import EnclavePin, parse_simulation_root
    from sealroom.coordinator.admission import AdmissionPolicy
    from sealroom.coordinator.witnessing import WitnessEndpoint
    from sealroom.verification.trust import parse_measurements
    from sealroom.web.public import install_public_pages

    with handle_errors(json_output):
        if log_level not in _LOG_LEVELS:
            raise InvalidInput(f"--log-level must be one of {', '.join(_LOG_LEVELS)}")
        if prepare:
            typer.echo(_prepare(db or default_db_url(os.environ), log_origin, keys))
            return
        witnesses = [WitnessEndpoint.parse(w) for w in witness or []]
        pin = None
        if enclave_measurements is not None or simulation_root is not None:
            pin = EnclavePin(
                measurements=None
                if enclave_measurements is None
                else parse_measurements(read_file(enclave_measurements, "measurements")),
                simulation_root=None
                if simulation_root is None
                else parse_simulation_root(simulation_root),
                max_evidence_age=max_evidence_age,
            )
        schedule = None
        if pricing is not None:
            from sealroom.wire import PriceSchedule, parse_body

            schedule = parse_body(
                PriceSchedule, read_file(pricing, "price schedule"), what="price schedule"
            )
        admission = AdmissionPolicy(pin=pin)
        sim_root = None if pin is None else pin.simulation_root
        if pin is None:
            typer.secho(f"!! {admission.describe()} !!", fg="yellow", err=True)
        else:
            typer.echo(f"enclave admission: {admission.describe()}", err=True)
            if pin.simulation_root is not None:
                warn_simulated()
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
            keys_dir=keys,
            admission=admission,
            on_ready=ready if json_output else None,
            lease_seconds=lease_seconds,
            pricing=schedule,
            extend=[partial(install_public_pages, simulation_root=sim_root)],
            sweep_interval=float(sweep_every),
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


def load_simulation_root(path: Path) -> SimulationRoot:
    """The deployment's simulation root from its seed file (hex), created 0600 if missing."""
    from sealroom.attestation.simulated import SimulationRoot
    from sealroom.crypto.files import write_private

    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        root = SimulationRoot.generate()
        write_private(path, root.private_bytes().hex().encode("ascii") + b"\n")
        return root
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the simulation root seed {path}: {exc}") from None
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        raise InvalidInput(f"{path}: the simulation root seed is not hex") from None
    return SimulationRoot.from_private_bytes(seed)


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
    simulation_root_seed: Annotated[
        Path | None,
        typer.Option(
            "--simulation-root-seed",
            envvar="SEALROOM_SIMULATION_ROOT_SEED",
            dir_okay=False,
            help="The deployment's simulation root seed (created, 0600, if missing); the "
            "coordinator admits the enclave only if it pins this root (--simulation-root). "
            "Default: a fresh root that no coordinator admits.",
        ),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(
            "--region",
            envvar="SEALROOM_ENCLAVE_REGION",
            help="The region this deployment declares (e.g. eu-west); bound into the attested "
            "key document, so region-pinned rooms may run here. A declaration by the operator, "
            "not a location the hardware measures.",
        ),
    ] = None,
    witness: Annotated[
        list[str] | None,
        typer.Option(
            "--witness",
            envvar="SEALROOM_ENCLAVE_WITNESSES",
            help="A witness key (vkey) whose cosignature the log's checkpoints need (repeatable; "
            "in the variable, separated by spaces). A fresh enclave then trusts its first "
            "checkpoint only if cosigned by --witnesses-required of them within "
            "--max-checkpoint-age of its evidence, and budget periods use the witnessed time. "
            "Without: the first checkpoint is trusted on first use.",
        ),
    ] = None,
    witnesses_required: Annotated[
        int | None,
        typer.Option(
            "--witnesses-required",
            envvar="SEALROOM_ENCLAVE_WITNESSES_REQUIRED",
            min=1,
            help="How many of the --witness keys must cosign (default: all).",
        ),
    ] = None,
    max_checkpoint_age: Annotated[
        int,
        typer.Option(
            "--max-checkpoint-age",
            envvar="SEALROOM_MAX_CHECKPOINT_AGE",
            min=1,
            help="How far (s) the first witnessed checkpoint's time may be from the enclave's "
            "evidence time.",
        ),
    ] = 600,
    print_simulation_root: Annotated[
        bool,
        typer.Option(
            "--print-simulation-root",
            help="Create the --simulation-root-seed file if missing, print its public key "
            "(hex, for `sealroom serve --simulation-root`) and exit.",
        ),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Run the mediator enclave worker: register evidence, then claim and run jobs."""
    from sealroom.attestation.simulated import SimulationRoot
    from sealroom.client.http import Client
    from sealroom.enclave.state import EnclaveState
    from sealroom.enclave.worker import (
        EnclaveWorker,
        make_enclave_keys,
        make_evidence_provider,
        stop_on_signals,
    )

    if print_simulation_root:
        with handle_errors(json_output):
            if simulation_root_seed is None:
                raise InvalidInput("--print-simulation-root needs --simulation-root-seed FILE")
            typer.echo(load_simulation_root(simulation_root_seed).public_key.hex())
        return
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
            root = None
            if simulated:
                root = (
                    SimulationRoot.generate()
                    if simulation_root_seed is None
                    else load_simulation_root(simulation_root_seed)
                )
                typer.echo(
                    f"simulation root: {root.public_key.hex()} (the coordinator admits this "
                    "enclave only with --simulation-root set to it)",
                    err=True,
                )
            provider = make_evidence_provider(
                tee="simulated" if simulated else "dstack",
                dstack_endpoint=dstack_endpoint,
                simulation_root=root,
            )
            secret = (
                read_deployment_secret(deployment_secret_file)
                if deployment_secret_file is not None
                else None
            )
            keys = make_enclave_keys(
                tee="simulated" if simulated else "dstack",
                now=int(time.time()),
                provider=provider,
                deployment_secret=secret,
                region=region,
            )
            anchor = None
            if witness:
                from sealroom.enclave.charges import CheckpointAnchor
                from sealroom.transparency.cosignature import WitnessPolicy

                vkeys = [k for w in witness for k in w.split()]
                anchor = CheckpointAnchor(
                    WitnessPolicy.parse(vkeys, witnesses_required), max_age=max_checkpoint_age
                )
                typer.echo(f"log checkpoints: {anchor.describe()}", err=True)
            else:
                typer.secho(
                    "!! no --witness: the enclave trusts the log's first checkpoint on first use "
                    "(a coordinator could show a fresh enclave a fork) !!",
                    fg="yellow",
                    err=True,
                )
            with Client(base_url=url, identity=keys.identity) as client:
                worker = EnclaveWorker(
                    source=client,
                    keys=keys,
                    state=own,
                    idle_max=poll_max,
                    idle_min=min(0.25, poll_max),
                    on_event=None if json_output else lambda m: typer.echo(m, err=True),
                    provider=provider,
                    log_key=log_key,
                    anchor=anchor,
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
