"""The big-data path end to end (issue 13): a dataset far over one request body is
published, approved with a chunked sealed upload that survives the owner's process being
killed mid-upload, computed on (aggregate-stats) and verified.

One real coordinator (uvicorn, SQLite) and an in-process simulated enclave worker. The
owner's first upload runs in a child process that SIGKILLs itself after two parts; the
second run resumes from the spool and sends only what the coordinator does not hold.
The suite runs 1M rows; ``bench/bench_bigdata.py`` runs the same path at 10M.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from sealroom.client import flows
from sealroom.client import uploads as client_uploads
from sealroom.client.http import Client
from sealroom.crypto.keys import Identity
from sealroom.crypto.keystore import Keystore
from sealroom.enclave.worker import EnclaveWorker
from sealroom.errors import InvalidInput
from sealroom.statements import Deletion, Receipt
from tests.client.analytics_e2e_world import exact_policy
from tests.client.client_world import now
from tests.services import coordinator, registered_enclave

ROWS = 1_000_000
REGIONS = np.array(["north", "south", "east", "west", "centre"])
PARAMS: dict[str, Any] = {"value": "amount", "group_by": ["region"], "percentiles": [50]}


@dataclass(frozen=True)
class Party:
    home: Path
    identity: Identity
    client: Client


@dataclass(frozen=True)
class World:
    url: str
    root: Path
    owner: Party
    partner: Party
    analyst: Party
    worker: EnclaveWorker
    partner_table: pa.Table
    partner_dataset: str


def _party(root: Path, url: str, name: str) -> Party:
    home = root / name
    identity = Keystore.create(home, name=name, unencrypted=True)
    client = Client(base_url=url, identity=identity)
    client.register_party(name)
    return Party(home, identity, client)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("bigdata")
    with coordinator(root) as url:
        owner, partner = _party(root, url, "owner"), _party(root, url, "partner")
        analyst = _party(root, url, "analyst")
        worker = registered_enclave(url)
        # aggregate-stats pools two or more parties: a small partner beside the big owner.
        partner_table = write_rows(root / "partner.csv", 20_000, seed=7)
        partner_dataset = _publish(partner, root / "partner.csv", "partner rows")
        try:
            yield World(url, root, owner, partner, analyst, worker, partner_table, partner_dataset)
        finally:
            for p in (owner, partner, analyst):
                p.client.close()


def _publish(party: Party, path: Path, title: str) -> str:
    return flows.publish(
        party.client,
        party.identity,
        path,
        title=title,
        description="synthetic amounts by region",
        policy_rules=exact_policy("aggregate-stats", PARAMS, entity_column="id"),
        now=now(),
        home=party.home,
    ).dataset


def _approve(party: Party, request: str) -> list[flows.ApprovedInput]:
    return flows.approve(
        party.client, party.identity, request, home=party.home, allow_simulated=True, now=now()
    )


def write_rows(path: Path, rows: int, *, seed: int = 13) -> pa.Table:
    """``rows`` rows of (id, region, amount) as the CSV the owner publishes."""
    rng = np.random.default_rng(seed)
    table = pa.table(
        {
            "id": np.arange(rows, dtype=np.int64),
            "region": REGIONS[rng.integers(0, len(REGIONS), rows)],
            "amount": np.round(rng.gamma(2.0, 50.0, rows), 2),
        }
    )
    pacsv.write_csv(table, path)
    return table


_KILLED_UPLOAD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from sealroom.client import flows, uploads
    from sealroom.client.http import Client
    from sealroom.crypto.keystore import Keystore

    url, home, request, now = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    identity = Keystore.load(home)

    class Dying(Client):
        sent = 0

        def put_part(self, upload, index, data):
            view = super().put_part(upload, index, data)
            Dying.sent += 1
            if Dying.sent == 2:
                os.kill(os.getpid(), signal.SIGKILL)  # the owner's machine dies mid-upload
            return view

    client = Dying(base_url=url, identity=identity)
    flows.approve(client, identity, request, home=home, allow_simulated=True, now=now)
    """
)


@pytest.mark.slow
def test_million_rows_publish_chunked_upload_resume_compute_verify(world: World) -> None:
    data = world.root / "rows.csv"
    table = write_rows(data, ROWS)
    owner, analyst = world.owner, world.analyst
    dataset = _publish(owner, data, "one million payments")
    view = flows.request(
        analyst.client,
        analyst.identity,
        "aggregate-stats",
        [dataset, world.partner_dataset],
        PARAMS,
        now=now(),
    )
    assert view.status == "pending", view.status_reason
    _approve(world.partner, view.request)

    # First attempt: a real process, killed after two parts reached the coordinator.
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            _KILLED_UPLOAD,
            world.url,
            str(owner.home),
            view.request,
            str(now()),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    spool = client_uploads.spool_path(owner.home, view.request, dataset)
    assert spool.exists()
    assert spool.stat().st_mode & 0o777 == 0o600
    status = flows.status(analyst.client, view.request)
    assert status.status == "pending"  # approved, but not uploaded: nothing is half-done

    # Second attempt resumes: only the missing parts are sent.
    sent: list[int] = []

    class Counting(Client):
        def put_part(self, upload: str, index: int, data: bytes) -> Any:
            sent.append(index)
            return super().put_part(upload, index, data)

    with Counting(base_url=world.url, identity=owner.identity) as counting:
        done = _approve(Party(owner.home, owner.identity, counting), view.request)
    assert [d.status for d in done] == ["approved"]
    sealed = done[0].sealed_bytes
    parts = -(-sealed // client_uploads.DEFAULT_PART_SIZE)
    assert sealed > 2 * client_uploads.DEFAULT_PART_SIZE
    assert sent == list(range(2, parts))  # parts 0 and 1 were held already
    assert not spool.exists()  # the spool goes once the upload is complete

    step = world.worker.step()
    assert step.outcome == "completed", step.reason
    result = flows.fetch_result(
        analyst.client,
        analyst.identity,
        view.request,
        world.root / "out",
        home=analyst.home,
        allow_simulated=True,
    )
    assert result.report.failures == ()
    receipt = analyst.client.bundle(view.request).receipt.open(Receipt).statement
    assert [i.dataset for i in receipt.inputs] == [dataset, world.partner_dataset]
    body = result.body
    both = pa.concat_tables([table, world.partner_table])
    regions = both.column("region").to_numpy(zero_copy_only=False)
    amounts = both.column("amount").to_numpy()
    by_key = {g["key"][0]: g["stats"] for g in body["groups"]}
    assert set(by_key) == set(REGIONS)
    for region, stats in by_key.items():
        mine = amounts[regions == region]
        assert stats["rows"] == len(mine)
        assert float(stats["sum"]) == pytest.approx(mine.sum(), rel=1e-9)

    # The enclave's signed Deletion and the coordinator's erasure name the chunked input alike:
    # SHA-256 over all its parts in order, and their total size.
    record = analyst.client.deletions(view.request)
    (logged,) = record.deletions
    held = {
        i.dataset: (i.sealed, i.sealed_size)
        for i in logged.envelope.open(Deletion).statement.inputs
    }
    erased = {e.subject: (e.sealed, e.size) for e in record.erasures if e.kind == "sealed-input"}
    assert held == erased
    assert held[dataset][1] == sealed


def test_size_limit_is_checked_before_sealing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = world.root / "small.csv"
    write_rows(data, 5_000, seed=1)
    owner, analyst = world.owner, world.analyst
    dataset = _publish(owner, data, "small")
    view = flows.request(
        analyst.client,
        analyst.identity,
        "aggregate-stats",
        [dataset, world.partner_dataset],
        PARAMS,
        now=now(),
    )
    monkeypatch.setattr(client_uploads, "MAX_SEALED_INPUT", 100_000)
    with pytest.raises(InvalidInput, match=r"would be \d+ bytes .*5000 rows.*limit of 100000"):
        flows.approve(
            owner.client,
            owner.identity,
            view.request,
            home=owner.home,
            allow_simulated=True,
            now=now(),
        )
    # Nothing was sealed, signed or sent.
    assert not client_uploads.spool_path(owner.home, view.request, dataset).exists()
    assert [i.decision for i in flows.status(analyst.client, view.request).inputs] == [
        "pending",
        "pending",
    ]
