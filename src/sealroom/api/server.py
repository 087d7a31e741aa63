"""Run the coordinator with uvicorn (``sealroom serve``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import uvicorn

from sealroom.api.app import create_app
from sealroom.computations.registry import Registry, default_registry
from sealroom.coordinator.state import DEFAULT_LEASE_SECONDS
from sealroom.coordinator.witnessing import WitnessEndpoint

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
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
) -> None:
    """Serve the API until interrupted; migrations run before the first request."""
    app = create_app(
        db_url=db_url,
        registry=registry if registry is not None else default_registry(),
        log_origin=log_origin,
        witnesses=witnesses,
        keys_dir=keys_dir,
        lease_seconds=lease_seconds,
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=False)
