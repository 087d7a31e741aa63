"""Relay push: a long-polling reader is answered as soon as its message is stored, on the same
coordinator (in-process wake-up) or on another replica of the same PostgreSQL database
(LISTEN/NOTIFY), and every wait is still an authenticated, authorized read.

The replica tests run two real ``sealroom serve`` processes on one PostgreSQL schema: a message
posted to A reaches a reader waiting on B, and a job created through A is claimed, run and
completed by an enclave that talks only to B.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from sealroom.client import flows
from sealroom.client.http import Client
from sealroom.client.relay import RelayTransport, join_session, open_session
from sealroom.crypto.keystore import Keystore
from sealroom.enclave.state import EnclaveState
from sealroom.enclave.worker import EnclaveWorker
from sealroom.errors import InvalidInput, NotFound
from sealroom.storage.engine import create_engine
from sealroom.storage.notify import APPLICATION_NAME, Signals
from tests.enclave.charges_world import ask, dp_rules, party, publish_pair
from tests.services import SIMULATION_ROOT, coordinator, enclave_keys
from tests.transparency.witness_helpers import free_port


def member(root: Path, url: str, name: str) -> Client:
    identity = Keystore.create(root / name, name=name, unencrypted=True)
    client = Client(base_url=url, identity=identity)
    client.register_party(name)
    return client


def pair_session(alice: Client, bob: Client, protocol: str = "psi") -> tuple[str, str]:
    assert alice.identity is not None
    assert bob.identity is not None
    sid = uuid.uuid4().hex
    alice.create_session(
        sid,
        protocol=protocol,
        participants=[("a", alice.identity.party_id), ("b", bob.identity.party_id)],
    )
    return sid, bob.identity.party_id


class Waiter(threading.Thread):
    """One long-poll by ``client`` in a thread: its answer and when it came."""

    def __init__(self, client: Client, sid: str, *, wait: float, after: int = -1) -> None:
        super().__init__(daemon=True)
        self.client, self.sid, self.wait, self.after = client, sid, wait, after
        self.got: tuple[int, str, bytes] | None = None
        self.error: BaseException | None = None
        self.answered = 0.0

    def run(self) -> None:
        try:
            self.got = self.client.next_message(self.sid, after=self.after, wait=self.wait)
        except BaseException as exc:  # reported by the test
            self.error = exc
        self.answered = time.monotonic()


def test_a_waiting_reader_is_answered_when_its_message_arrives(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        alice, bob = member(tmp_path, url, "alice"), member(tmp_path, url, "bob")
        sid, _ = pair_session(alice, bob)
        waiter = Waiter(bob, sid, wait=15)
        waiter.start()
        time.sleep(1.0)  # the reader is held, not answered 204
        assert waiter.is_alive()
        posted = time.monotonic()
        index = alice.post_message(sid, "b", b"hello")
        waiter.join(10)
        assert waiter.error is None, waiter.error
        assert waiter.got == (index, "a", b"hello")
        # Pushed, not found by a later poll: well within a second (the wait was 15 s).
        assert waiter.answered - posted < 1.0


def test_a_wait_without_a_message_ends_with_204_after_the_wait(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        alice, bob = member(tmp_path, url, "alice"), member(tmp_path, url, "bob")
        sid, _ = pair_session(alice, bob)
        started = time.monotonic()
        assert bob.next_message(sid, after=-1, wait=1.0) is None
        assert 0.9 <= time.monotonic() - started < 5
        # A message for the other participant does not answer this reader's wait.
        waiter = Waiter(bob, sid, wait=1.5)
        waiter.start()
        time.sleep(0.3)
        bob.post_message(sid, "a", b"for alice")
        waiter.join(10)
        assert waiter.error is None
        assert waiter.got is None
        assert alice.next_message(sid, after=-1, wait=5)[1:] == ("b", b"for alice")  # type: ignore[index]


def test_waiting_is_authenticated_and_authorized_and_bounded(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        alice, bob = member(tmp_path, url, "alice"), member(tmp_path, url, "bob")
        mallory = member(tmp_path, url, "mallory")
        sid, _ = pair_session(alice, bob)
        started = time.monotonic()
        # An outsider is refused at once, not held for the wait.
        with pytest.raises(NotFound):
            mallory.next_message(sid, after=-1, wait=10)
        assert time.monotonic() - started < 5
        with pytest.raises(InvalidInput):
            bob.next_message(sid, after=-1, wait=21)
        # Unsigned waits are refused.
        r = httpx.get(f"{url}/v1/sessions/{sid}/messages", params={"wait": "5"}, timeout=10)
        assert r.status_code == 401


def test_a_sealed_protocol_exchange_over_push_needs_no_polling(tmp_path: Path) -> None:
    """Ten round trips through the sealed, signed transport; each is delivered by push."""
    with coordinator(tmp_path) as url:
        alice, bob = member(tmp_path, url, "alice"), member(tmp_path, url, "bob")
        assert alice.identity is not None
        assert bob.identity is not None
        sa_ = open_session(
            alice,
            protocol="psi",
            roles=[("a", alice.identity.party_id), ("b", bob.identity.party_id)],
        )
        sb = join_session(bob, protocol="psi", session=sa_.id, expect=[alice.identity.party_id])
        ta = RelayTransport(alice, sa_, alice.identity)
        tb = RelayTransport(bob, sb, bob.identity)

        def echo() -> None:
            for _ in range(10):
                got = tb.receive(20)
                assert got is not None
                tb.send("a", got[1] + b"!")

        thread = threading.Thread(target=echo, daemon=True)
        thread.start()
        for i in range(10):
            ta.send("b", f"ping {i}".encode())
            assert ta.receive(20) == ("b", f"ping {i}!".encode())
        thread.join(10)


# --- two coordinator processes on one PostgreSQL database ------------------------------------


@dataclass
class Replica:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def spawn_serve(db_url: str, keys: Path, log: Path) -> Replica:
    port = free_port()
    env = {
        **os.environ,
        "SEALROOM_DB_URL": db_url,
        "SEALROOM_COORDINATOR_KEYS": str(keys),
        "SEALROOM_HOST": "127.0.0.1",
        "SEALROOM_PORT": str(port),
        "SEALROOM_LOG_LEVEL": "warning",
        "SEALROOM_SIMULATION_ROOT": SIMULATION_ROOT.public_key.hex(),
    }
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "sealroom.cli", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    return Replica(f"http://127.0.0.1:{port}", process, log)


def await_ready(replica: Replica) -> None:
    deadline = time.monotonic() + 90
    while True:
        assert replica.process.poll() is None, replica.log.read_text()
        try:
            if httpx.get(f"{replica.url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "sealroom serve did not start in 90 s"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def replicas(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Replica, Replica]]:
    """Two ``sealroom serve`` processes on one fresh PostgreSQL schema and one log keystore
    (shared by this module's replica tests: starting them is the slow part)."""
    tmp_path = tmp_path_factory.mktemp("replicas")
    schema = f"sr_relay_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = sa.engine.make_url(postgres_url).set(query={"options": f"-csearch_path={schema}"})
    db_url = url.render_as_string(hide_password=False)
    keys = tmp_path / "coordinator-keys"
    # Prepare once (migrate, create the log key), as a deployment's init step does.
    subprocess.run(
        [sys.executable, "-m", "sealroom.cli", "serve", "--prepare", "--db", db_url],
        env={**os.environ, "SEALROOM_COORDINATOR_KEYS": str(keys)},
        check=True,
        capture_output=True,
        timeout=120,
    )
    a = spawn_serve(db_url, keys, tmp_path / "a.log")
    b = spawn_serve(db_url, keys, tmp_path / "b.log")
    try:
        await_ready(a)
        await_ready(b)
        yield a, b
    finally:
        a.stop()
        b.stop()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


def test_a_message_posted_on_one_replica_reaches_a_reader_waiting_on_another(
    replicas: tuple[Replica, Replica], tmp_path: Path
) -> None:
    a, b = replicas
    alice = member(tmp_path, a.url, "alice")
    bob_identity = Keystore.create(tmp_path / "bob", name="bob", unencrypted=True)
    Client(base_url=a.url, identity=bob_identity).register_party("bob")
    bob = Client(base_url=b.url, identity=bob_identity)  # bob talks only to B
    sid, _ = pair_session(alice, bob)
    after = -1
    for round_ in range(3):
        waiter = Waiter(bob, sid, wait=15, after=after)
        waiter.start()
        time.sleep(1.0)
        assert waiter.is_alive(), "B answered before any message was posted"
        posted = time.monotonic()
        index = alice.post_message(sid, "b", f"round {round_}".encode())
        waiter.join(20)
        assert waiter.error is None, waiter.error
        assert waiter.got == (index, "a", f"round {round_}".encode())
        # Fanned out by NOTIFY from A's commit to B's listener: far below the 15 s wait.
        assert waiter.answered - posted < 2.0, waiter.answered - posted
        after = index


def test_a_job_created_through_one_replica_is_run_by_an_enclave_on_the_other(
    replicas: tuple[Replica, Replica], tmp_path: Path
) -> None:
    a, b = replicas
    owner = party(tmp_path, a.url, "owner")
    requester = party(tmp_path, a.url, "requester")
    # The enclave registers and works only through B; owners seal to it through A.
    keys = enclave_keys(now=int(time.time()))
    worker = EnclaveWorker(
        source=Client(base_url=b.url, identity=keys.identity),
        keys=keys,
        state=EnclaveState.create_temporary(),
    )
    worker.register()
    datasets = publish_pair(owner, tmp_path, dp_rules("10"))
    request = ask(requester, owner, datasets)
    result = worker.step()
    assert (result.outcome, result.request) == ("completed", request), result
    status = flows.status(requester.client, request)
    assert status.status == "completed", status.status_reason
    # The job is done in the shared database: through A there is nothing left to claim.
    assert Client(base_url=a.url, identity=keys.identity).claim_job() is None


def test_signals_fan_out_between_two_engines_on_one_database(postgres_url: str) -> None:
    """The storage layer alone: a commit on engine 1 wakes a watch on engine 2's listener;
    a rolled-back write wakes nobody (NOTIFY is transactional)."""
    e1, e2 = create_engine(postgres_url), create_engine(postgres_url)
    s1, s2 = Signals(e1), Signals(e2)
    s2.start()
    key = f"test/{uuid.uuid4().hex}"
    try:
        assert s2.wait_ready(20)
        with s2.watch(key) as w:
            w.clear()

            conn = e1.connect()
            try:
                with conn.begin() as transaction:
                    s1.publish(conn, key)
                    transaction.rollback()
            finally:
                conn.close()
            assert not w.wait(1.0)
            with e1.begin() as conn:
                s1.publish(conn, key)
            assert w.wait(5.0)

            # The listener's connection dies (a failover, an idle timeout): it reconnects and
            # wakes again. (Only sealroom's own listeners carry this application_name.)
            with e1.begin() as conn:
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": APPLICATION_NAME},
                )
            deadline = time.monotonic() + 20
            woken = False
            while not woken and time.monotonic() < deadline:
                w.clear()
                with e1.begin() as conn:
                    s1.publish(conn, key)
                woken = w.wait(0.5)
            assert woken, "the listener did not come back"
            assert s2.wait_ready(20)
            w.clear()
            with e1.begin() as conn:
                s1.publish(conn, key)
            assert w.wait(5.0)  # notifications flow again on the new connection
    finally:
        s2.close()
        e1.dispose()
        e2.dispose()
