"""Coordinators whose logs fork, and coordinators with witnesses, for the client's log checks."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sealroom.api.app import create_app
from sealroom.api.testing import run_in_thread
from sealroom.client import flows
from sealroom.client.http import Client
from sealroom.computations import default_registry
from sealroom.coordinator.keys import CoordinatorKeystore
from sealroom.coordinator.witnessing import WitnessEndpoint
from sealroom.crypto.keys import Identity
from sealroom.storage.engine import create_engine
from sealroom.storage.migrate import upgrade
from sealroom.transparency.checkpoint import NoteSigner
from sealroom.transparency.log import TransparencyLog
from sealroom.transparency.sqlstore import SqlLogStore
from tests.client.client_world import TOPICS_A, now, write_jsonl

ORIGIN = "sealroom.local/log"


def db_url(path: Path) -> str:
    return f"sqlite:///{path}"


@contextmanager
def serve(db: Path, witnesses: Sequence[WitnessEndpoint] = ()) -> Iterator[str]:
    """The real coordinator app on the SQLite file ``db``, over HTTP on loopback."""
    app = create_app(db_url=db_url(db), registry=default_registry(), witnesses=witnesses)
    with run_in_thread(app) as url:
        yield url


def log_signer(db: Path) -> NoteSigner:
    """The log key of the coordinator database ``db``, from its keystore beside it (created
    there if new): what an operator with the key file holds."""
    engine = create_engine(db_url(db))
    try:
        upgrade(engine)
        return CoordinatorKeystore.beside(db_url(db)).log_signer(engine, ORIGIN)
    finally:
        engine.dispose()


def snapshot(db: Path, to: Path) -> None:
    """A consistent copy of a live SQLite database (WAL included) and of its keystore (the
    log key is not in the database: the copy is a coordinator with the same key)."""
    source, target = sqlite3.connect(db), sqlite3.connect(to)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    keys = CoordinatorKeystore.beside(db_url(db)).directory
    shutil.copytree(keys, CoordinatorKeystore.beside(db_url(to)).directory)


def fork(db: Path, entries: int, tag: bytes = b"forged") -> int:
    """Append ``entries`` other entries to the log in ``db`` and sign a checkpoint with the
    coordinator's own key, as an operator with the key could; return the new size."""
    signer = log_signer(db)
    engine = create_engine(db_url(db))
    try:
        log = TransparencyLog(SqlLogStore(engine))
        if entries:
            log.append_many([tag + b" %d" % i for i in range(entries)])
        log.checkpoint(signer)
        return log.size()
    finally:
        engine.dispose()


def publish(client: Client, identity: Identity, home: Path, name: str) -> flows.Published:
    path = write_jsonl(home.parent / f"{name}.jsonl", TOPICS_A)
    return flows.publish(
        client,
        identity,
        path,
        title=name,
        description="notes",
        policy_rules=None,
        now=now(),
        home=home,
    )
