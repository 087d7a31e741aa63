"""The client keeps the last checkpoint per log and refuses forks and rollbacks (real servers)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from sealroom.client import flows
from sealroom.client.checkpoints import TrustedLog
from sealroom.client.http import Client
from sealroom.errors import InvalidInput, ProofInvalid, VerificationFailed
from sealroom.transparency.checkpoint import NoteVerifier, open_checkpoint
from tests.client.client_world import TOPICS_B, now, party, write_jsonl
from tests.client.log_world import fork, log_signer, publish, serve, snapshot
from tests.transparency.witness_helpers import cli


def trusted_size(home: Path, vkey: str) -> int:
    log = NoteVerifier.from_vkey(vkey)
    (note,) = (home / "checkpoints").glob("*.note")
    return open_checkpoint(note.read_text(), log).size


def test_the_trusted_checkpoint_is_kept_and_advanced(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with serve(db) as url:
        home, alice = party(tmp_path, "alice")
        client = Client(base_url=url, identity=alice)
        client.register_party("alice")
        first = publish(client, alice, home, "one")
        vkey = client.log_key().verifier_key
        assert trusted_size(home, vkey) == first.checkpoint_size
        second = publish(client, alice, home, "two")
        assert trusted_size(home, vkey) == second.checkpoint_size > first.checkpoint_size
        (note,) = (home / "checkpoints").glob("*.note")
        assert stat.S_IMODE(note.stat().st_mode) == 0o600
        assert stat.S_IMODE(note.parent.stat().st_mode) == 0o700
        assert not list(note.parent.glob("*.tmp"))
        # a request's log entry is checked too, against the latest checkpoint
        view = flows.request(
            client,
            alice,
            "topic-overlap",
            [first.dataset, second.dataset],
            {},
            now=now(),
            home=home,
        )
        assert trusted_size(home, vkey) > view.log_index
        # the leaf is the request's salted commitment: the salt opens it, nothing else does,
        # and a request logged in clear (published for anyone) is refused
        log = TrustedLog(client, home)
        assert view.log_salt is not None
        log.verify_logged(view.envelope, index=view.log_index, salt=view.log_salt)
        with pytest.raises(ProofInvalid):
            log.verify_logged(view.envelope, index=view.log_index, salt=bytes(32))
        with pytest.raises(VerificationFailed, match="in clear"):
            log.verify_logged(view.envelope, index=view.log_index, salt=None)
        # an older checkpoint (a bundle made earlier) is proved a prefix; trust does not move
        log = TrustedLog(client, home)
        size = trusted_size(home, vkey)
        older = log.accept(_note_at(db, first.checkpoint_size))
        assert older.size == first.checkpoint_size
        assert trusted_size(home, vkey) == size


def _note_at(db: Path, size: int) -> str:
    """The checkpoint the coordinator signed at ``size`` (from its database)."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            note = conn.execute(
                sa.text("SELECT note FROM tlog_checkpoints WHERE size = :s ORDER BY seq LIMIT 1"),
                {"s": size},
            ).scalar_one()
    finally:
        engine.dispose()
    return str(note)


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("fork", 0),  # the fork has exactly the size trusted, with another root
        ("fork", 5),  # the fork is larger than what is trusted, and cannot prove it extends it
        ("rollback", None),  # the coordinator's latest is smaller than what was seen before
    ],
)
def test_a_forked_log_is_refused_and_trust_ends(
    tmp_path: Path, kind: str, extra: int | None
) -> None:
    db, forked_db = tmp_path / "c.db", tmp_path / "fork.db"
    home, alice = party(tmp_path, "alice")
    with serve(db) as url:
        client = Client(base_url=url, identity=alice)
        client.register_party("alice")
        snapshot_size = publish(client, alice, home, "one").checkpoint_size
        snapshot(db, forked_db)
        publish(client, alice, home, "two")
        publish(client, alice, home, "three")
        trusted = TrustedLog(client, home).latest()
    # The fork: the same log key signs another history (the operator has the key).
    if extra is not None:
        assert fork(forked_db, trusted.size - snapshot_size + extra) == trusted.size + extra
    assert log_signer(forked_db).verifier.vkey == log_signer(db).verifier.vkey
    with serve(forked_db) as fork_url:
        forked = Client(base_url=fork_url, identity=alice)
        with pytest.raises(ProofInvalid, match=kind) as info:
            TrustedLog(forked, home).latest()
        assert "no longer trusts" in str(info.value)
        evidence_path = next((home / "checkpoints").glob("*.fork.json"))
        evidence = json.loads(evidence_path.read_text())
        assert evidence["kind"] == kind
        assert open_checkpoint(evidence["trusted"], log_signer(db).verifier).size == trusted.size
        assert stat.S_IMODE(evidence_path.stat().st_mode) == 0o600
        # every later call refuses this log, on any coordinator serving it
        with pytest.raises(ProofInvalid, match="stopped trusting"):
            publish(forked, alice, home, "four")
    with serve(db) as url:
        honest = Client(base_url=url, identity=alice)
        with pytest.raises(ProofInvalid, match="stopped trusting"):
            TrustedLog(honest, home).latest()
        # the trusted checkpoint was never replaced by the fork's
        assert trusted_size(home, honest.log_key().verifier_key) == trusted.size
        # a person investigates and removes the evidence: the honest log is trusted again
        evidence_path.unlink()
        assert TrustedLog(honest, home).latest().size == trusted.size


def test_publishing_through_a_forked_coordinator_is_refused(tmp_path: Path) -> None:
    db, forked_db = tmp_path / "c.db", tmp_path / "fork.db"
    home, alice = party(tmp_path, "alice")
    with serve(db) as url:
        client = Client(base_url=url, identity=alice)
        client.register_party("alice")
        publish(client, alice, home, "one")
        snapshot(db, forked_db)
        publish(client, alice, home, "two")
    fork(forked_db, 1)  # one forged entry where "two" was
    with serve(forked_db) as fork_url:
        forked = Client(base_url=fork_url, identity=alice)
        forked.register_party("alice")
        path = write_jsonl(tmp_path / "other.jsonl", TOPICS_B)
        with pytest.raises(ProofInvalid, match="fork"):
            flows.publish(
                forked,
                alice,
                path,
                title="other",
                description="notes",
                policy_rules=None,
                now=now(),
                home=home,
            )
        # the CLI says the same, in one line
        done = cli("checkpoint", "show", "--url", fork_url, "--home", str(home))
        assert done.returncode == 1
        assert "stopped trusting" in done.stderr


def test_a_tampered_trusted_checkpoint_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with serve(db) as url:
        home, alice = party(tmp_path, "alice")
        client = Client(base_url=url, identity=alice)
        client.register_party("alice")
        publish(client, alice, home, "one")
        (note,) = (home / "checkpoints").glob("*.note")
        note.write_text(note.read_text().replace("\n", "\n\n", 1))
        with pytest.raises(InvalidInput, match="changed outside sealroom"):
            TrustedLog(client, home).latest()
