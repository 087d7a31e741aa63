"""Run the coordinator with uvicorn (``sealroom serve``)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence

import uvicorn

from sealroom.api.app import create_app
from sealroom.computations.registry import Registry, default_registry
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
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Serve the API until interrupted; migrations run before the first request.

    ``on_ready(port)`` runs once the socket listens, with the port it is bound to
    (``sealroom serve --json`` reports it; ``--port 0`` picks a free one)."""
    app = create_app(
        db_url=db_url,
        registry=registry if registry is not None else default_registry(),
        log_origin=log_origin,
        witnesses=witnesses,
    )
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, proxy_headers=False)
    _Server(config, on_ready).run()


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_ready: Callable[[int], None] | None) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._on_ready is not None:
            bound = [s.getsockname()[1] for server in self.servers for s in server.sockets]
            self._on_ready(bound[0] if bound else self.config.port)
