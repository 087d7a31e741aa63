"""Real services for the SDK, CLI and README tests: a coordinator on loopback, a simulated enclave.

The coordinator is the app ``sealroom serve`` runs, served by uvicorn in a thread;
the enclave is the real worker with simulated evidence, in this process, acting
through its own SDK client (step it by hand, or let it run in a thread).
The coordinator admits enclaves under :data:`SIMULATION_ROOT` (the tests'
deployment root), as ``sealroom serve --simulation-root`` would.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sealroom.api.app import create_app
from sealroom.api.testing import run_in_thread
from sealroom.attestation.pins import EnclavePin
from sealroom.attestation.simulated import SimulationRoot
from sealroom.client.http import Client
from sealroom.computations import default_registry
from sealroom.coordinator.admission import AdmissionPolicy
from sealroom.coordinator.payments import Payments
from sealroom.enclave.keys import EnclaveKeys
from sealroom.enclave.state import EnclaveState
from sealroom.enclave.worker import EnclaveWorker, make_enclave_keys, make_evidence_provider
from sealroom.wire import PriceSchedule

# The tests' deployment simulation root: the coordinators below admit enclaves under it.
SIMULATION_ROOT = SimulationRoot.from_private_bytes(hashlib.sha256(b"tests-deployment").digest())


def admission(root: SimulationRoot = SIMULATION_ROOT) -> AdmissionPolicy:
    """What ``sealroom serve --simulation-root <root>`` admits."""
    return AdmissionPolicy(pin=EnclavePin(simulation_root=root.public_key))


@contextmanager
def coordinator(
    tmp_path: Path,
    *,
    db_url: str | None = None,
    admit: AdmissionPolicy | None = None,
    lease_seconds: int | None = None,
    pricing: PriceSchedule | None = None,
    web: bool = False,
    sweep_interval: float | None = None,
    payments: Payments | None = None,
) -> Iterator[str]:
    """The real app (SQLite in ``tmp_path`` unless ``db_url``; its log key in
    ``tmp_path/coordinator-keys``) on 127.0.0.1; yields its URL.

    ``admit``: its enclave admission policy (default: :func:`admission`). ``web``: with the
    public pages, as ``sealroom serve`` mounts them (pre-filling the admitted simulation root);
    ``payments``: the marketplace's credits seam (default: none, free use only)."""
    options: dict[str, Any] = {} if lease_seconds is None else {"lease_seconds": lease_seconds}
    if sweep_interval is not None:
        options["sweep_interval"] = sweep_interval
    if payments is not None:
        options["payments"] = payments
    app = create_app(
        db_url=db_url or f"sqlite:///{tmp_path / 'coordinator.db'}",
        registry=default_registry(),
        keys_dir=tmp_path / "coordinator-keys",
        admission=admit or admission(),
        pricing=pricing,
        **options,
    )
    if web:
        from sealroom.web.public import install_public_pages

        policy = admit or admission()
        root = None if policy.pin is None else policy.pin.simulation_root
        install_public_pages(app, simulation_root=root)
    with run_in_thread(app) as url:
        yield url


def enclave_keys(*, now: int, root: SimulationRoot = SIMULATION_ROOT) -> EnclaveKeys:
    """Fresh simulated enclave keys under the tests' deployment root (``root``)."""
    return make_enclave_keys(now=now, provider=make_evidence_provider(simulation_root=root))


def registered_enclave(
    url: str,
    *,
    state: EnclaveState | None = None,
    root: SimulationRoot = SIMULATION_ROOT,
    now: int | None = None,
    region: str | None = None,
    **options: Any,
) -> EnclaveWorker:
    """A simulated enclave worker (under ``root``, declaring ``region``) registered at ``url``,
    not yet running."""
    provider = make_evidence_provider(simulation_root=root)
    keys = make_enclave_keys(
        now=int(time.time()) if now is None else now, provider=provider, region=region
    )
    worker = EnclaveWorker(
        source=Client(base_url=url, identity=keys.identity),
        keys=keys,
        state=state or EnclaveState.create_temporary(),
        provider=provider,
        **options,
    )
    worker.register()
    return worker


@contextmanager
def running_enclave(url: str, *, region: str | None = None) -> Iterator[EnclaveWorker]:
    """A registered simulated enclave running its job loop in a thread until the block ends."""
    state = EnclaveState.create_temporary()
    worker = registered_enclave(url, state=state, idle_min=0.05, idle_max=0.2, region=region)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), name="enclave", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        stop.set()
        thread.join(10)
        state.close()
