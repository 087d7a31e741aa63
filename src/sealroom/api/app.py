"""The coordinator's HTTP API (docs/http-api.md): the app factory.

No globals: :func:`create_app` chooses the backends (the database at
``db_url``, migrated to head), builds the coordinator's services over them,
and wires the middleware (:mod:`.middleware`), the error catalog
(:mod:`.errors`), signed-request auth (:mod:`.auth`) and one router per
resource (:mod:`.routes`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from sealroom import __version__
from sealroom.api.auth import Api
from sealroom.api.docs import install_docs
from sealroom.api.errors import install_error_handlers
from sealroom.api.middleware import BodyLimit
from sealroom.api.openapi import install_openapi
from sealroom.api.routes import (
    credits,
    datasets,
    jobs,
    log,
    market,
    parties,
    relay,
    requests,
    rooms,
    service,
    uploads,
)
from sealroom.computations.registry import Registry
from sealroom.coordinator.admission import AdmissionPolicy
from sealroom.coordinator.keys import CoordinatorKeystore
from sealroom.coordinator.payments import Payments
from sealroom.coordinator.readiness import Readiness
from sealroom.coordinator.service import Coordinator
from sealroom.coordinator.state import DEFAULT_LEASE_SECONDS
from sealroom.coordinator.witnessing import WitnessEndpoint
from sealroom.storage.engine import create_engine
from sealroom.storage.migrate import upgrade
from sealroom.wire import ErrorBody, PriceSchedule

__all__ = ["create_app"]

_log = logging.getLogger("sealroom.api")


def _warm(coordinator: Coordinator) -> None:
    try:
        coordinator.datasets.warm_discovery()
    except Exception:  # a failure here only costs the first search its load time
        _log.exception("warming the discovery index failed")


# How often the coordinator sweeps on its own (retention, expiry, lapsed leases), in seconds.
DEFAULT_SWEEP_INTERVAL = 60.0


def _sweep_loop(
    coordinator: Coordinator, clock: Callable[[], int], stop: threading.Event, interval: float
) -> None:
    """Sweep every ``interval`` seconds until ``stop``: retention deletes sealed results on
    time even when nobody calls the API (every call sweeps too)."""
    while not stop.wait(interval):
        try:
            done = coordinator.state.sweep(now=clock())
        except Exception:  # a database hiccup must not end the loop; the next round retries
            _log.exception("the periodic sweep failed")
            continue
        if done:
            _log.info("periodic sweep: %d requests expired, re-queued or past retention", done)


def create_app(
    *,
    db_url: str,
    registry: Registry,
    clock: Callable[[], int] = lambda: int(time.time()),
    log_origin: str = "sealroom.local/log",
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    witnesses: Sequence[WitnessEndpoint] = (),
    keys_dir: Path | None = None,
    admission: AdmissionPolicy | None = None,
    pricing: PriceSchedule | None = None,
    sweep_interval: float = DEFAULT_SWEEP_INTERVAL,
    payments: Payments | None = None,
) -> FastAPI:
    """The coordinator app on ``db_url`` (migrated to head on creation); ``witnesses``
    cosign the checkpoints it serves. Its log key is in ``keys_dir`` (default for SQLite:
    ``<db file>.keys/``; PostgreSQL needs one); ``admission`` says which enclaves may
    register (None: none at all, fail closed); every ``sweep_interval`` seconds (0: never)
    a thread sweeps (retention, expiry, lapsed leases) besides the sweeps calls make;
    ``payments`` is what the marketplace charges through (None: the credits ledger);
    ``pricing`` is the published price schedule (None: computations are free)."""
    keystore = (
        CoordinatorKeystore(directory=keys_dir)
        if keys_dir is not None
        else CoordinatorKeystore.beside(db_url)
    )
    engine = create_engine(db_url)
    try:
        upgrade(engine)
        coordinator = Coordinator.open(
            engine=engine,
            registry=registry,
            keystore=keystore,
            log_origin=log_origin,
            lease_seconds=lease_seconds,
            witnesses=witnesses,
            admission=admission,
            pricing=pricing,
            payments=payments,
        )
    except BaseException:
        engine.dispose()
        raise

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Warm the discovery index off the event loop; searches meanwhile wait for its lock.
        warm = threading.Thread(target=_warm, args=(coordinator,), name="discovery-warmup")
        warm.start()
        stop = threading.Event()
        sweeper = None
        if sweep_interval > 0:
            sweeper = threading.Thread(
                target=_sweep_loop,
                args=(coordinator, clock, stop, sweep_interval),
                name="sweep",
                daemon=True,
            )
            sweeper.start()
        # Relay wake-ups from other replicas on the same PostgreSQL database.
        coordinator.relay.signals.start()
        try:
            yield
        finally:
            coordinator.relay.signals.close()
            stop.set()
            if sweeper is not None:
                sweeper.join(30)
            warm.join()
            engine.dispose()

    app = FastAPI(
        title="sealroom coordinator",
        version=__version__,
        lifespan=lifespan,
        # /docs and /redoc are served with local assets (api/docs.py), never from a CDN.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        # Every error answers the catalog's body; a declared 4XX also keeps FastAPI from
        # documenting 422s, which never occur (invalid parameters answer 400).
        responses={"4XX": {"model": ErrorBody, "description": "Error (see the error catalog)"}},
    )
    app.state.api = Api(coordinator=coordinator, clock=clock)
    app.state.readiness = Readiness(coordinator.state)
    for module in (
        service,
        parties,
        log,
        datasets,
        requests,
        uploads,
        jobs,
        relay,
        market,
        credits,
        rooms,
    ):
        app.include_router(module.router)
    install_error_handlers(app)
    install_openapi(app)
    install_docs(app, openapi_url="/openapi.json")
    app.add_middleware(BodyLimit)
    return app
