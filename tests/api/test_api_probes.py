"""Liveness and readiness against real servers: /healthz answers while the process lives,
/readyz is 200 only when the database answers, its schema is at head and the loaded log key
signs the newest checkpoint, and 503 with the failing check named otherwise."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from sealroom.api.app import create_app
from sealroom.api.testing import run_in_thread
from sealroom.statements import sign_statement
from sealroom.storage.migrate import VERSION_TABLE, head_revision
from sealroom.transparency.checkpoint import Checkpoint, NoteSigner, sign_checkpoint, split_note
from sealroom.transparency.sqlstore import checkpoints
from tests.api.api_helpers import Client, Clock, test_registry
from tests.helpers import T0, attestation, identity

MIGRATIONS = Path(__file__).resolve().parents[2] / "src/sealroom/storage/migrations/versions"


def _publish(http: httpx.Client, name: str) -> None:
    """Register ``name`` and publish an attestation: a statement, so a signed checkpoint."""
    owner = Client(http, identity(name), Clock(T0))
    assert owner.register(name).status_code == 201
    att = sign_statement(attestation(owner.identity, title=f"{name}'s data"), owner.identity)
    r = owner.call("POST", "/v1/datasets", {"attestation": att.envelope.to_dict(), "policy": None})
    assert r.status_code == 201, r.text


def _checks(body: dict[str, Any]) -> dict[str, bool]:
    return {c["name"]: c["ok"] for c in body["checks"]}


@contextmanager
def _served(db_url: str, keys: Path) -> Iterator[httpx.Client]:
    app = create_app(db_url=db_url, registry=test_registry(), clock=Clock(T0), keys_dir=keys)
    with run_in_thread(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield http


def test_a_fresh_coordinator_is_live_and_ready(db_url: str, tmp_path: Path) -> None:
    with _served(db_url, tmp_path / "keys") as http:
        live = http.get("/healthz")
        assert live.status_code == 200
        assert live.json()["status"] == "ok"
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["status"] == "ready"
        assert _checks(body) == {"database": True, "schema": True, "log_key": True}
        assert ready.headers["cache-control"] == "no-store"
        # A statement makes a checkpoint; the loaded key must sign it.
        _publish(http, "alice")
        body = http.get("/readyz").json()
        log_key = next(c for c in body["checks"] if c["name"] == "log_key")
        assert log_key["ok"]
        assert "signs the newest checkpoint" in log_key["detail"]


def test_a_schema_not_at_this_releases_head_is_not_ready(db_url: str, tmp_path: Path) -> None:
    head = head_revision()
    assert head == sorted(p.name for p in MIGRATIONS.glob("0*.py"))[-1][:4]
    with _served(db_url, tmp_path / "keys") as http:
        assert http.get("/readyz").status_code == 200
        engine = sa.create_engine(db_url)
        try:
            with engine.begin() as conn:  # another release moved the schema under this one
                conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '0001'"))
            r = http.get("/readyz")
            assert r.status_code == 503
            body = r.json()
            assert body["status"] == "not-ready"
            assert _checks(body) == {"database": True, "schema": False, "log_key": True}
            schema = next(c for c in body["checks"] if c["name"] == "schema")
            assert schema["detail"] == f"at revision 0001, this release needs {head}"
            assert http.get("/healthz").status_code == 200  # alive, just not ready
            with engine.begin() as conn:
                conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '{head}'"))
            assert http.get("/readyz").status_code == 200
        finally:
            engine.dispose()


def test_a_log_key_that_does_not_sign_the_logs_checkpoint_is_not_ready(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'c.db'}"
    with _served(db_url, tmp_path / "keys") as http:
        _publish(http, "bob")
        assert http.get("/readyz").status_code == 200
        engine = sa.create_engine(db_url)
        try:
            with engine.begin() as conn:
                newest = conn.execute(
                    sa.select(checkpoints.c.seq, checkpoints.c.note)
                    .order_by(checkpoints.c.seq.desc())
                    .limit(1)
                ).one()
                # The same tree head under the same origin, signed by another key: what a
                # replica with the wrong keystore (or a database from another log) looks like.
                body, _ = split_note(newest.note)
                head = Checkpoint.from_body(body)
                other = NoteSigner.from_seed(head.origin, b"\x42" * 32)
                conn.execute(
                    checkpoints.update()
                    .where(checkpoints.c.seq == newest.seq)
                    .values(note=sign_checkpoint(head, other))
                )
            r = http.get("/readyz")
            assert r.status_code == 503
            assert _checks(r.json()) == {"database": True, "schema": True, "log_key": False}
        finally:
            engine.dispose()


class _Relay:
    """A loopback TCP relay to PostgreSQL that can be cut: a database that goes away."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._open = True
        self._flowing = threading.Event()
        self._flowing.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if not self._open:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self._flowing.wait()  # paused: bytes are held, nothing is refused
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def pause(self) -> None:
        """The database stops answering without refusing (a hung host, a dropped route)."""
        self._flowing.clear()

    def cut(self) -> None:
        # Sockets first, then release the held pipes: bytes held by a pause must not slip
        # through (a cut database answers nothing, not the query it was holding).
        with self._lock:
            self._open = False
            self._listener.close()
            for s in self._sockets:
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
        self._flowing.set()


def test_a_probe_while_a_check_hangs_on_the_database_is_answered_at_once(
    postgres_url: str, tmp_path: Path
) -> None:
    base = make_url(postgres_url)
    schema = f"sr_probe_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    relay = _Relay(base.host or "127.0.0.1", base.port or 5432)
    relayed = base.set(
        host="127.0.0.1", port=relay.port, query={"options": f"-csearch_path={schema}"}
    )
    try:
        with _served(relayed.render_as_string(hide_password=False), tmp_path / "keys") as http:
            assert http.get("/readyz").status_code == 200
            url = str(http.base_url).rstrip("/")
            relay.pause()
            first: list[httpx.Response] = []
            hung = threading.Thread(target=lambda: first.append(http.get("/readyz", timeout=60)))
            hung.start()
            # Until the first check holds the database, a probe may hang on it too (and time
            # out here); once it does, every further probe is answered at once.
            deadline = time.monotonic() + 30
            while True:
                try:
                    r = httpx.get(f"{url}/readyz", timeout=2)
                except httpx.TimeoutException:
                    r = None
                if r is not None and r.status_code == 503:
                    break
                assert time.monotonic() < deadline, "no probe was answered while one hung"
            assert r.json()["checks"] == [
                {"name": "database", "ok": False, "detail": "the previous check has not finished"}
            ]
            assert hung.is_alive()
            assert httpx.get(f"{url}/healthz", timeout=2).status_code == 200
            relay.cut()  # the hung check now fails, and says why
            hung.join(60)
            assert first[0].status_code == 503
            database = first[0].json()["checks"][0]
            assert database["name"] == "database"
            assert database["detail"].startswith("unreachable (")
    finally:
        relay.cut()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_sealroom_serve_configured_by_environment_is_not_ready_when_postgres_goes_away(
    postgres_url: str, tmp_path: Path
) -> None:
    """A real `sealroom serve` process, configured only by environment variables."""
    base = make_url(postgres_url)
    schema = f"sr_probe_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    relay = _Relay(base.host or "127.0.0.1", base.port or 5432)
    relayed = base.set(
        host="127.0.0.1", port=relay.port, query={"options": f"-csearch_path={schema}"}
    )
    port = _free_port()
    env = {
        **os.environ,
        "SEALROOM_DB_URL": relayed.render_as_string(hide_password=False),
        "SEALROOM_HOST": "127.0.0.1",
        "SEALROOM_PORT": str(port),
        "SEALROOM_LOG_ORIGIN": "probe.test/log",
        "SEALROOM_LOG_LEVEL": "warning",
        "SEALROOM_COORDINATOR_KEYS": str(tmp_path / "keys"),
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sealroom.cli", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "sealroom serve did not start in 60 s"
            time.sleep(0.1)
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert httpx.get(f"{url}/v1/log/key", timeout=10).json()["origin"] == "probe.test/log"
        relay.cut()
        r = httpx.get(f"{url}/readyz", timeout=30)
        assert r.status_code == 503
        checks = {c["name"]: c for c in r.json()["checks"]}
        assert not checks["database"]["ok"]
        assert checks["database"]["detail"].startswith("unreachable (")
        assert schema not in r.text
        assert str(relay.port) not in r.text
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(20)
        relay.cut()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()
