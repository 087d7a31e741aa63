"""Run the coordinator with uvicorn (``sealroom serve``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from fastapi import FastAPI

from sealroom.api.app import DEFAULT_SWEEP_INTERVAL, create_app
from sealroom.api.runner import run_app
from sealroom.computations.registry import Registry, default_registry
from sealroom.coordinator.admission import AdmissionPolicy
from sealroom.coordinator.state import DEFAULT_LEASE_SECONDS
from sealroom.coordinator.witnessing import WitnessEndpoint
from sealroom.wire import PriceSchedule

__all__ = ["serve"]


def serve(
    *,
    db_url: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    registry: Registry | None = None,
    log_origin: str = "sealroom.local/log",
    log_level: str = "info",
    witnesses: Sequence[WitnessEndpoint] = (),
    keys_dir: Path | None = None,
    admission: AdmissionPolicy | None = None,
    on_ready: Callable[[int], None] | None = None,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    pricing: PriceSchedule | None = None,
    extend: Sequence[Callable[[FastAPI], None]] = (),
    sweep_interval: float = DEFAULT_SWEEP_INTERVAL,
) -> None:
    """Serve the API until interrupted; migrations run before the first request.

    ``on_ready(port)`` runs once the socket listens, with the port it is bound to
    (``sealroom serve --json`` reports it; ``--port 0`` picks a free one). Each of ``extend``
    adds to the app before it serves: layers above the API (the public web pages) mount
    themselves this way, since the API may not import them."""
    app = create_app(
        db_url=db_url,
        registry=registry if registry is not None else default_registry(),
        log_origin=log_origin,
        witnesses=witnesses,
        keys_dir=keys_dir,
        admission=admission,
        lease_seconds=lease_seconds,
        pricing=pricing,
        sweep_interval=sweep_interval,
    )
    for add in extend:
        add(app)
    run_app(app, host=host, port=port, log_level=log_level, on_ready=on_ready)
