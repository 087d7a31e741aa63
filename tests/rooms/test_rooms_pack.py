"""A room's one-page summary and auditor pack against real services: the summary's digest is
the one consents name; the pack carries the room's snapshot, runs, consents (the withdrawal
too), approvals and deletions with log proofs and verifies offline; a pack that pairs the
room's runs and consents with other terms is refused even when its issuer signs it."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import pytest

from sealroom.audit.pack import (
    MANIFEST,
    SNAPSHOT,
    AuditPack,
    LoggedStatementProof,
    PackFile,
    PackRejected,
    verify_pack,
)
from sealroom.audit.render import render_html
from sealroom.crypto.files import write_private
from sealroom.errors import NotFound
from sealroom.statements import (
    Deletion,
    Policy,
    Room,
    RoomConsent,
    RoomInvitation,
    canonical_json,
    policy_snapshot,
    sign_statement,
)
from sealroom.verification.trust import trust_policy
from tests.rooms.room_world import DP_RUN, K, now, room_world
from tests.services import SIMULATION_ROOT, running_enclave


def test_room_summary_and_auditor_pack(tmp_path: Path) -> None:
    with room_world(tmp_path) as world, running_enclave(world.url):
        host, alice, bob = (world.parties[n] for n in ("host", "alice", "bob"))
        room = host.rooms.create(
            name="overlap study",
            purpose="size the shared customer base",
            template="psi-overlap",
            k=K,
            expires_at=now() + 3600,
        ).digest
        for name in ("alice", "bob"):
            host.rooms.invite(room, world.parties[name].party_id)
            summary = world.parties[name].rooms.summary(room)
            world.parties[name].rooms.join(room, world.datasets[name])
            consented = world.parties[name].rooms.consent(room)
            # What the member read is what it signed: the summary's digest is its consent's.
            assert summary.snapshot_digest == consented.room.statement.snapshot_digest
            assert summary.room == room
            assert summary.display(alice.party_id).startswith("alice (")
            assert summary.snapshot_digest in render_html(summary)
        inputs = [world.datasets["alice"], world.datasets["bob"]]
        run = host.rooms.run(room, "intersection-overlap", inputs, DP_RUN)
        for p in (alice, bob):
            p.auto_approve(allow_simulated=True)
        assert host.wait(run.request, timeout=60).status == "completed"
        bob.rooms.withdraw_consent(room, reason="the study is over")

        # Only members may read the room's statements.
        eve = world.new_party("eve")
        with pytest.raises(NotFound):
            eve.client.room_statements(room)

        out = tmp_path / "pack"
        manifest = alice.rooms.pack(room, out, valid_for=3600, audience=None)
        verified = host.rooms.show(room)
        snapshot, digest = policy_snapshot(verified.room.statement)
        assert manifest.snapshot == digest
        assert manifest.room_policy == verified.policy.digest
        assert (out / SNAPSHOT).read_bytes() == canonical_json(snapshot)
        trust = trust_policy(
            allow_simulated=True,
            log_key=alice.client.log_key().verifier_key,
            simulation_root=SIMULATION_ROOT.public_key,
        )
        report = verify_pack(out, trust=trust, now=int(time.time()), issuer=alice.party_id)
        assert all(c.passed for c in report.checks)
        types = [
            LoggedStatementProof.from_json((out / f.path).read_bytes()).envelope.type
            for f in manifest.files
            if f.role == "statement"
        ]
        assert types.count(Room.TYPE) == 1
        assert types.count(Policy.TYPE) == 1
        assert types.count(RoomInvitation.TYPE) == 2
        assert types.count(RoomConsent.TYPE) == 3  # two consents and bob's withdrawal
        assert types.count(Deletion.TYPE) >= 1
        assert sum(f.role == "bundle" for f in manifest.files) == 1
        for f in out.rglob("*"):
            if f.is_file():
                assert f.stat().st_mode & 0o777 == 0o600

        # The issuer re-signs the same runs and consents under another room's snapshot:
        # the runs ran under another policy and the consents name other terms.
        other = host.rooms.create(
            name="another study",
            purpose="other terms",
            template="psi-overlap",
            k=K + 5,
            expires_at=now() + 3600,
        )
        other_snapshot, other_digest = policy_snapshot(other.room.statement)
        forged = tmp_path / "forged"
        shutil.copytree(out, forged)
        data = canonical_json(other_snapshot)
        write_private(forged / SNAPSHOT, data)
        files = tuple(
            f
            if f.path != SNAPSHOT
            else PackFile(
                path=f.path,
                role=f.role,
                sha256="sha256:" + hashlib.sha256(data).hexdigest(),
                size=len(data),
            )
            for f in manifest.files
        )
        resigned = AuditPack.build(
            issuer=manifest.issuer,
            audience=None,
            purpose=manifest.purpose,
            issued_at=manifest.issued_at,
            not_after=manifest.not_after,
            snapshot=other_digest,
            room_policy=other.policy.digest,
            code=manifest.code,
            files=files,
        )
        (forged / MANIFEST).unlink()
        write_private(
            forged / MANIFEST, sign_statement(resigned, alice.identity).envelope.to_json()
        )
        with pytest.raises(PackRejected) as info:
            verify_pack(forged, trust=trust, now=int(time.time()), issuer=alice.party_id)
        details = " | ".join(f"{c.name}: {c.detail}" for c in info.value.report.failures)
        assert "not the room's" in details, details
        assert f"not the packed {other_digest}" in details, details
