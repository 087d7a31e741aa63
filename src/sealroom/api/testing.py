"""A real uvicorn server in a background thread, for integration tests.

Tests talk HTTP to the same ASGI app that ``sealroom serve`` runs, over a real
socket on 127.0.0.1 with an OS-chosen port, so the SDK, CLI and enclave worker
are tested against the real wire format (headers, bodies, status codes).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from sealroom.errors import BackendUnavailable

__all__ = ["run_in_thread"]


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        """Signals belong to the test runner's main thread, not to this server."""


@contextmanager
def run_in_thread(app: ASGIApp, *, startup_timeout: float = 10.0) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (free port) and yield its base URL, e.g. ``http://127.0.0.1:54321``.

    The server stops (and the thread is joined) when the block exits.
    """
    # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only when the
    # socket says it is TCP; without it every response waits ~40 ms on Nagle + delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = _Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    try:
        while not server.started:
            if not thread.is_alive():
                raise BackendUnavailable("the test server exited during startup (see its log)")
            if time.monotonic() > deadline:
                raise BackendUnavailable(f"the test server did not start in {startup_timeout} s")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
