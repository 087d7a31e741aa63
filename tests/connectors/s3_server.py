"""A real S3-compatible server on loopback for tests: moto's server mode, on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

# Credentials the local server accepts; they open nothing anywhere else.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "sealroom-test",
    "AWS_SECRET_ACCESS_KEY": "sealroom-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def moto_s3() -> Iterator[str]:
    """Start the server, yield its endpoint URL, stop it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
