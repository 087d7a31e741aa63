"""The coordinator's signing keys: in their own 0600 keystore file, never in its database.

Whoever reads a database that holds the log's seed can sign checkpoints that verify under
the published log key (a fork nobody can tell from the real log). Databases are copied,
backed up and shared with replicas far more freely than key files, so the key lives in
``<keys dir>/log-key.json`` (mode 0600, directory 0700, written atomically) and the
database keeps only what is public: the log's origin and its verifier key, so a keystore
that does not belong to the database is refused, and a database whose key went missing
is never given a fresh one silently (that would be a new log under the old name).

A database from before this split still holds the seed (``settings.log_seed``): the first
start moves it into the keystore, deletes it from the database, and (SQLite) rewrites the
file so the deleted bytes are gone. A key that sat in a readable database may have been
copied: rotating it means a new log (a new origin), which clients must pin anew.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, text
from sqlalchemy.engine import make_url

from sealroom.crypto.files import read_private, write_private
from sealroom.crypto.keys import Identity, b64decode_strict, b64encode
from sealroom.errors import Conflict, InvalidInput, KeystoreError, SealroomError
from sealroom.storage.engine import write_transaction
from sealroom.storage.schema import settings
from sealroom.transparency.checkpoint import NoteSigner

__all__ = ["ARBITER_KEY_FILE", "KEYS_ENV", "LOG_KEY_FILE", "CoordinatorKeystore"]

KEYS_ENV = "SEALROOM_COORDINATOR_KEYS"
LOG_KEY_FILE = "log-key.json"
ARBITER_KEY_FILE = "arbiter-key.json"
_ARBITER_TYPE = "sealroom.coordinator-arbiter-key"
_KEY_TYPE = "sealroom.coordinator-log-key"
_SEED = "log_seed"  # only in databases from before the split; moved out on start
_ORIGIN = "log_origin"
_VKEY = "log_vkey"

_log = logging.getLogger("sealroom.coordinator")


def _check_origin(origin: str) -> None:
    if not origin or any(c.isspace() for c in origin) or "+" in origin:
        raise InvalidInput("log origin must be non-empty, without spaces or '+'")


@dataclass(frozen=True, slots=True, kw_only=True)
class CoordinatorKeystore:
    """The directory of the coordinator's key files."""

    directory: Path

    @classmethod
    def beside(cls, db_url: str) -> CoordinatorKeystore:
        """The default for an SQLite database: ``<db file>.keys/`` next to it. A PostgreSQL
        database has no file to sit beside: its coordinator names the directory."""
        try:
            url = make_url(db_url)
        except Exception:
            raise InvalidInput("not a database URL") from None
        if url.get_backend_name() != "sqlite" or not url.database:
            raise InvalidInput(
                f"a {url.get_backend_name()} coordinator needs a keys directory for its log key "
                f"(--keys DIR or ${KEYS_ENV}); it is never kept in the database"
            )
        db = Path(url.database).resolve()
        return cls(directory=db.with_name(db.name + ".keys"))

    @property
    def log_key_path(self) -> Path:
        return self.directory / LOG_KEY_FILE

    def log_signer(
        self, engine: Engine, origin: str, *, random: Callable[[int], bytes] = os.urandom
    ) -> NoteSigner:
        """The log's note key for the database ``engine``: loaded from the keystore, created
        once for a new log, or moved out of a database that still holds it.

        Runs in one serialized write transaction, so coordinators starting together on one
        database and one keys directory agree on one key.
        """
        _check_origin(origin)
        moved = False
        with write_transaction(engine) as conn:
            rows = {
                str(name): bytes(value)
                for name, value in conn.execute(
                    select(settings.c.name, settings.c.value).where(
                        settings.c.name.in_([_SEED, _ORIGIN, _VKEY])
                    )
                ).all()
            }
            stored_origin = rows.get(_ORIGIN, b"").decode() or None
            if stored_origin is not None and stored_origin != origin:
                raise Conflict(
                    f"this database's log has origin {stored_origin!r}, not {origin!r}; "
                    "a log cannot change its origin"
                )
            seed = self._read_seed(origin)
            legacy = rows.get(_SEED)
            if legacy is not None:
                if seed is None:
                    self._write_seed(origin, legacy)
                    seed = legacy
                elif not hmac.compare_digest(seed, legacy):
                    raise Conflict(
                        f"the database holds a log key other than the one in {self.log_key_path}; "
                        "refusing to choose between them"
                    )
                conn.execute(delete(settings).where(settings.c.name == _SEED))
                moved = True
            if seed is None:
                if _VKEY in rows:
                    raise KeystoreError(
                        f"this database's log key is missing: no {self.log_key_path}. Restore "
                        "that file; a new key would be a different log under the same name"
                    )
                seed = random(32)
                self._write_seed(origin, seed)
            signer = NoteSigner.from_seed(origin, seed)
            vkey = signer.verifier.vkey.encode()
            if _VKEY in rows and not hmac.compare_digest(rows[_VKEY], vkey):
                raise Conflict(f"the log key in {self.log_key_path} is not this database's log key")
            _put(conn, _ORIGIN, origin.encode(), exists=_ORIGIN in rows)
            _put(conn, _VKEY, vkey, exists=_VKEY in rows)
        if moved:
            _scrub(engine)
            _log.warning(
                "moved the log key out of the database into %s; it sat in the database, so "
                "treat it as exposed if the database file was ever readable by others",
                self.log_key_path,
            )
        return signer

    @property
    def arbiter_key_path(self) -> Path:
        return self.directory / ARBITER_KEY_FILE

    def arbiter(self, *, create: bool = True) -> Identity:
        """The platform arbiter's identity, which signs dispute resolutions: a key of its own
        (not the log key: a log key that also signs refunds would make every log fork a
        refund), in ``arbiter-key.json`` (0600) beside the log key, created on first use."""
        raw = read_private(self.arbiter_key_path, what="coordinator keystore")
        if raw is None:
            if not create:
                raise KeystoreError(f"no arbiter key in {self.arbiter_key_path}")
            identity = Identity.generate(post_quantum=False)
            signing, sealing = identity.private_bytes()
            doc = {
                "type": _ARBITER_TYPE,
                "version": 1,
                "signing_seed": b64encode(signing),
                "sealing_secret": b64encode(sealing),
            }
            write_private(
                self.arbiter_key_path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
            )
            return identity
        self._check_directory()
        try:
            doc = json.loads(raw)
            if set(doc) != {"type", "version", "signing_seed", "sealing_secret"}:
                raise ValueError("fields")
            if doc["type"] != _ARBITER_TYPE or doc["version"] != 1:
                raise ValueError("type")
            return Identity.from_private_bytes(
                b64decode_strict(doc["signing_seed"], what="arbiter signing seed", size=32),
                b64decode_strict(doc["sealing_secret"], what="arbiter sealing secret", size=32),
            )
        except (ValueError, TypeError, SealroomError):
            raise KeystoreError(
                f"{self.arbiter_key_path} is not a coordinator arbiter key"
            ) from None

    def _check_directory(self) -> None:
        mode = stat.S_IMODE(self.directory.stat().st_mode)
        if mode & 0o022:
            # Whoever can write the directory can swap the key file.
            raise KeystoreError(
                f"keys directory {self.directory} is writable by group or others "
                f"(mode {mode:04o}); run `chmod 700 {self.directory}`"
            )

    def _read_seed(self, origin: str) -> bytes | None:
        raw = read_private(self.log_key_path, what="coordinator keystore")
        if raw is None:
            return None
        self._check_directory()
        try:
            doc: Any = json.loads(raw)
            if set(doc) != {"type", "version", "origin", "seed"}:
                raise ValueError("fields")
            if doc["type"] != _KEY_TYPE or doc["version"] != 1:
                raise ValueError("type")
            seed = b64decode_strict(doc["seed"], what="log key seed", size=32)
        except (ValueError, TypeError, SealroomError):
            raise KeystoreError(f"{self.log_key_path} is not a coordinator log key") from None
        if doc["origin"] != origin:
            raise Conflict(
                f"{self.log_key_path} is the key of log {doc['origin']!r}, not {origin!r}"
            )
        return seed

    def _write_seed(self, origin: str, seed: bytes) -> None:
        doc = {"type": _KEY_TYPE, "version": 1, "origin": origin, "seed": b64encode(seed)}
        write_private(
            self.log_key_path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
        )


def _put(conn: Connection, name: str, value: bytes, *, exists: bool) -> None:
    if not exists:
        conn.execute(settings.insert().values(name=name, value=value))


def _scrub(engine: Engine) -> None:
    """Rewrite the database so the deleted seed's bytes are not left in free pages or the WAL."""
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()  # pysqlite in autocommit mode (configure_sqlite)
        try:
            raw.driver_connection.execute("VACUUM")  # type: ignore[union-attr]
            raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
        finally:
            raw.close()
    elif engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("VACUUM FULL settings")
            )
