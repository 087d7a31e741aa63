"""A real coordinator, an owner with a DP budget, a requester, and enclave workers that share a
deployment secret: the pieces of the ledger and chaos tests."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sealroom.client import flows
from sealroom.client.http import Client
from sealroom.crypto.files import write_private
from sealroom.crypto.keys import Identity
from sealroom.crypto.keystore import Keystore
from sealroom.enclave.keys import EnclaveKeys
from sealroom.enclave.state import EnclaveState
from sealroom.enclave.worker import (
    EnclaveWorker,
    JobSource,
    make_enclave_keys,
    make_evidence_provider,
)
from tests.client.analytics_e2e_world import policy
from tests.services import SIMULATION_ROOT

#: Each run spends this much of a total of EPSILON_TOTAL.
RUN_EPSILON = "1"
PARAMS: Mapping[str, Any] = {
    "value": "value",
    "group_by": ["group"],
    "dp": {"epsilon": RUN_EPSILON, "delta": "0.000001", "lower": "0", "upper": "10"},
}


@dataclass(frozen=True)
class Party:
    home: Path
    identity: Identity
    client: Client


def party(root: Path, url: str, name: str) -> Party:
    home = root / name
    identity = Keystore.create(home, name=name, unencrypted=True)
    client = Client(base_url=url, identity=identity)
    client.register_party(name)
    return Party(home, identity, client)


def dp_rules(epsilon_total: str, *, per_requester: str | None = None) -> dict[str, Any]:
    budget = {
        "epsilon_per_requester": per_requester or epsilon_total,
        "epsilon_total": epsilon_total,
        "delta_per_requester": "0.001",
        "delta_total": "0.001",
    }
    return policy("aggregate-stats", entity_column="id", dp=budget)


def publish_pair(owner: Party, root: Path, rules: Mapping[str, Any]) -> list[str]:
    """Two datasets of the owner's (aggregate-stats takes two or more inputs)."""
    return [publish_numbers(owner, root, rules, seed=s) for s in (1, 2)]


def publish_numbers(
    owner: Party, root: Path, rules: Mapping[str, Any], *, rows: int = 600, seed: int = 7
) -> str:
    """A dataset of ``rows`` people in two groups, with values in [0, 10]."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": np.arange(rows) + seed * rows,
            "group": np.where(np.arange(rows) % 2 == 0, "a", "b"),
            "value": rng.integers(0, 11, size=rows),
        }
    )
    path = root / f"numbers-{len(list(root.glob('numbers-*.csv')))}.csv"
    frame.to_csv(path, index=False)
    return flows.publish(
        owner.client,
        owner.identity,
        path,
        title="numbers",
        description="people with a value in two groups",
        policy_rules=rules,
        now=int(time.time()),
        home=owner.home,
    ).dataset


def ask(requester: Party, owner: Party, datasets: Sequence[str]) -> str:
    """A DP aggregate request, approved (by policy) and sealed by the owner: ready to run."""
    view = flows.request(
        requester.client,
        requester.identity,
        "aggregate-stats",
        list(datasets),
        dict(PARAMS),
        now=int(time.time()),
    )
    assert view.status == "pending", view.status_reason
    flows.approve(
        owner.client,
        owner.identity,
        view.request,
        home=owner.home,
        allow_simulated=True,
        now=int(time.time()),
    )
    status = flows.status(requester.client, view.request)
    # A running worker may have claimed (or even finished) it already.
    assert status.status in ("approved", "running", "completed"), status.status_reason
    return view.request


def write_secret(path: Path) -> Path:
    path.write_bytes(os.urandom(32))
    path.chmod(0o600)
    return path


def deployment_keys(secret: Path) -> EnclaveKeys:
    """The deployment's keys with evidence under the tests' simulation root (admitted)."""
    return make_enclave_keys(
        now=int(time.time()),
        deployment_secret=secret.read_bytes(),
        provider=make_evidence_provider(simulation_root=SIMULATION_ROOT),
    )


@functools.cache
def root_seed_file() -> Path:
    """The tests' simulation root as a seed file (``sealroom enclave --simulation-root-seed``)."""
    path = Path(tempfile.mkdtemp(prefix="sealroom-test-root-")) / "root.seed"
    write_private(path, SIMULATION_ROOT.private_bytes().hex().encode("ascii") + b"\n")
    return path


def in_process_worker(
    url: str,
    keys: EnclaveKeys,
    state: EnclaveState,
    *,
    source: JobSource | None = None,
    on_event: Callable[[str], None] | None = None,
) -> EnclaveWorker:
    """A registered worker (not running) on ``source``, by default the SDK client."""
    worker = EnclaveWorker(
        on_event=on_event,
        source=source or Client(base_url=url, identity=keys.identity),
        keys=keys,
        state=state,
        idle_min=0.05,
        idle_max=0.2,
    )
    worker.register()
    return worker


def enclave_args(url: str, *, secret: Path | None, state: Path | None) -> list[str]:
    args = [sys.executable, "-m", "sealroom.cli", "enclave", "--url", url, "--poll-max", "0.2"]
    args += ["--simulation-root-seed", str(root_seed_file())]
    if secret is not None:
        args += ["--deployment-secret-file", str(secret)]
    if state is not None:
        args += ["--state", str(state)]
    return args


def run_once(url: str, *, secret: Path | None, state: Path | None) -> dict[str, Any]:
    """One real ``sealroom enclave --once`` process: register, run at most one job, exit."""
    done = subprocess.run(
        [*enclave_args(url, secret=secret, state=state), "--once", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out: dict[str, Any] = json.loads(done.stdout)
    return out
