"""Run an ASGI app with uvicorn and say when it listens (``serve --json``, ``witness serve``)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import uvicorn

__all__ = ["run_app"]


def run_app(
    app: Any,
    *,
    host: str,
    port: int,
    log_level: str = "info",
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Serve an ASGI app with uvicorn until interrupted; ``on_ready(port)`` once listening."""
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
