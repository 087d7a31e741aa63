"""Readiness: can this coordinator serve right now (``GET /readyz``)?

Liveness (``/healthz``) only says the process answers. Readiness checks what a request
needs, each check named so an operator sees which one failed:

- ``database``: a read transaction on the coordinator database succeeds;
- ``schema``: the database is at the migration head of *this* release (a replica of another
  release, or a schema moved under it, must not serve);
- ``log_key``: the loaded log key is the key of the log in this database: the newest stored
  checkpoint verifies under it (a replica that loaded another key would sign checkpoints
  nobody can verify).

Details are safe to publish: check names, revisions and error class names, never URLs,
paths or keys.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import literal, select
from sqlalchemy.exc import SQLAlchemyError

from sealroom.coordinator.state import State, latest_checkpoint
from sealroom.errors import NotFound, SealroomError
from sealroom.storage.engine import read_transaction
from sealroom.storage.migrate import current_revision, head_revision
from sealroom.transparency.checkpoint import open_checkpoint

__all__ = ["Probe", "Readiness", "readiness"]

# What a failing database raises: the project's own errors, the driver's through SQLAlchemy,
# and socket errors from a connection that died.
_DB_ERRORS = (SealroomError, SQLAlchemyError, OSError)


@dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    """One readiness check: its name, whether it passed, and a public one-line detail."""

    name: str
    ok: bool
    detail: str


def _database(state: State) -> Probe:
    # SELECT 1, not State.ping's count: probes run every few seconds, on tables of any size.
    try:
        with read_transaction(state.engine) as conn:
            conn.execute(select(literal(1))).scalar_one()
    except _DB_ERRORS as exc:
        return Probe(name="database", ok=False, detail=f"unreachable ({type(exc).__name__})")
    return Probe(name="database", ok=True, detail="reachable")


def _schema(state: State) -> Probe:
    try:
        revision = current_revision(state.engine)
    except _DB_ERRORS as exc:
        return Probe(name="schema", ok=False, detail=f"not readable ({type(exc).__name__})")
    head = head_revision()
    if revision != head:
        return Probe(
            name="schema",
            ok=False,
            detail=f"at revision {revision or 'none'}, this release needs {head}",
        )
    return Probe(name="schema", ok=True, detail=f"at head ({head})")


def _log_key(state: State) -> Probe:
    verifier = state.signer.verifier
    try:
        with read_transaction(state.engine) as conn:
            note = latest_checkpoint(conn)
    except NotFound:
        return Probe(name="log_key", ok=True, detail=f"loaded ({verifier.name}); log empty")
    except _DB_ERRORS as exc:
        return Probe(name="log_key", ok=False, detail=f"not checked ({type(exc).__name__})")
    try:
        checkpoint = open_checkpoint(note, verifier)
    except SealroomError:
        return Probe(
            name="log_key",
            ok=False,
            detail="the newest checkpoint in the database does not verify under the loaded log key",
        )
    return Probe(
        name="log_key",
        ok=True,
        detail=f"loaded ({verifier.name}); signs the newest checkpoint (size {checkpoint.size})",
    )


def readiness(state: State) -> tuple[Probe, ...]:
    """Every readiness check, in order; ready when all pass."""
    return (_database(state), _schema(state), _log_key(state))


class Readiness:
    """Runs the checks one at a time: a probe that arrives while one is still running (a
    database that stopped answering without refusing) is told so at once, instead of taking
    another server thread to wait on the same dead connection."""

    __slots__ = ("_lock", "_state")

    def __init__(self, state: State) -> None:
        self._state = state
        self._lock = threading.Lock()

    def check(self) -> tuple[Probe, ...]:
        if not self._lock.acquire(blocking=False):
            return (Probe(name="database", ok=False, detail="the previous check has not finished"),)
        try:
            return readiness(self._state)
        finally:
            self._lock.release()
