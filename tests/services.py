"""Real services for the SDK, CLI and README tests: a coordinator on loopback, a simulated enclave.

The coordinator is the app ``sealroom serve`` runs, served by uvicorn in a thread;
the enclave is the real worker with simulated evidence, in this process, acting
through its own SDK client (step it by hand, or let it run in a thread).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sealroom.api.app import create_app
from sealroom.api.testing import run_in_thread
from sealroom.client.http import Client
from sealroom.computations import default_registry
from sealroom.enclave.state import EnclaveState
from sealroom.enclave.worker import EnclaveWorker, make_enclave_keys


@contextmanager
def coordinator(
    tmp_path: Path, *, db_url: str | None = None, lease_seconds: int | None = None
) -> Iterator[str]:
    """The real app (SQLite in ``tmp_path`` unless ``db_url``; its log key in
    ``tmp_path/coordinator-keys``) on 127.0.0.1; yields its URL."""
    options: dict[str, Any] = {} if lease_seconds is None else {"lease_seconds": lease_seconds}
    app = create_app(
        db_url=db_url or f"sqlite:///{tmp_path / 'coordinator.db'}",
        registry=default_registry(),
        keys_dir=tmp_path / "coordinator-keys",
        **options,
    )
    with run_in_thread(app) as url:
        yield url


def registered_enclave(
    url: str, *, state: EnclaveState | None = None, **options: Any
) -> EnclaveWorker:
    """A simulated enclave worker registered with the coordinator at ``url``, not yet running."""
    keys = make_enclave_keys(now=int(time.time()))
    worker = EnclaveWorker(
        source=Client(base_url=url, identity=keys.identity),
        keys=keys,
        state=state or EnclaveState.create_temporary(),
        **options,
    )
    worker.register()
    return worker


@contextmanager
def running_enclave(url: str) -> Iterator[EnclaveWorker]:
    """A registered simulated enclave running its job loop in a thread until the block ends."""
    state = EnclaveState.create_temporary()
    worker = registered_enclave(url, state=state, idle_min=0.05, idle_max=0.2)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), name="enclave", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        stop.set()
        thread.join(10)
        state.close()
