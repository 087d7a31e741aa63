"""Rooms end to end: a real coordinator, real parties and a simulated enclave.

Each negative path is checked against the real services: a non-member sees nothing,
a withdrawn consent stops a run about to start, a risky template needs two distinct
approvers, a query outside the room is refused, a region mismatch is refused, an
expired room refuses runs.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sealroom.errors import (
    Conflict,
    ConsentMissing,
    DualApprovalRequired,
    NotFound,
    PolicyDenied,
    QueryNotAllowed,
    RegionMismatch,
    RoomClosed,
)
from tests.rooms.room_world import DP_RUN, K, RoomWorld, now, room_world
from tests.services import registered_enclave, running_enclave


def _room(world: RoomWorld, **options: object) -> str:
    host = world.parties["host"]
    settings: dict[str, object] = {
        "name": "overlap study",
        "purpose": "size the shared customer base",
        "template": "psi-overlap",
        "k": K,
        "expires_at": now() + 3600,
    }
    settings.update(options)
    room = host.rooms.create(**settings)  # type: ignore[arg-type]
    for name in ("alice", "bob"):
        host.rooms.invite(room.digest, world.parties[name].party_id)
        world.parties[name].rooms.join(room.digest, world.datasets[name])
        world.parties[name].rooms.consent(room.digest)
    return room.digest


def _approve_all(world: RoomWorld) -> None:
    for name in ("alice", "bob"):
        world.parties[name].auto_approve(allow_simulated=True)


def test_room_from_invitation_to_result(tmp_path: Path, db_url: str) -> None:
    with room_world(tmp_path, db_url=db_url) as world, running_enclave(world.url):
        host, alice, bob = (world.parties[n] for n in ("host", "alice", "bob"))
        room = _room(world)
        seen = alice.rooms.show(room)
        assert {m.party: m.consent_state for m in seen.view.members} == {
            host.party_id: "none",
            alice.party_id: "consented",
            bob.party_id: "consented",
        }
        report = next(m.precheck for m in seen.view.members if m.party == alice.party_id)
        assert report is not None
        assert report["entities"] == 200
        assert report["enough_for_k"]
        run = host.rooms.run(
            room, "intersection-overlap", [world.datasets["alice"], world.datasets["bob"]], DP_RUN
        )
        assert run.status == "pending"
        _approve_all(world)
        done = host.wait(run.request, timeout=60)
        assert done.status == "completed", done.status_reason
        got = bob.result(run.request, tmp_path / "bob-out", allow_simulated=True)
        assert got.body["dp"] is not None
        # Progress is visible to every member.
        for party in (host, alice, bob):
            view = party.rooms.show(room).view
            assert [r.status for r in view.runs] == ["completed"]
            assert any(e.kind == "run" for e in view.events)
        # The snapshot is the canonical JSON the digest covers.
        from sealroom.statements import snapshot_digest

        assert snapshot_digest(seen.view.snapshot) == seen.view.snapshot_digest


def test_non_member_sees_nothing(tmp_path: Path) -> None:
    with room_world(tmp_path) as world:
        room = _room(world)
        eve = world.new_party("eve")
        with pytest.raises(NotFound):
            eve.rooms.show(room)
        assert eve.rooms.list() == ()
        with pytest.raises(NotFound):
            eve.rooms.consent(room)
        assert [r.room for r in world.parties["alice"].rooms.list()] == [room]


def test_withdrawn_consent_stops_a_run_about_to_start(tmp_path: Path, db_url: str) -> None:
    with room_world(tmp_path, db_url=db_url) as world:
        host, alice, bob = (world.parties[n] for n in ("host", "alice", "bob"))
        room = _room(world)
        enclave = registered_enclave(world.url)  # registered, not yet taking jobs
        run = host.rooms.run(
            room, "intersection-overlap", [world.datasets["alice"], world.datasets["bob"]], DP_RUN
        )
        _approve_all(world)
        assert host.status(run.request).status == "approved"  # sealed, waiting for an enclave
        alice.rooms.withdraw_consent(room, reason="legal review")
        stopped = host.status(run.request)
        assert stopped.status == "withdrawn"
        assert "withdrew consent" in (stopped.status_reason or "")
        assert enclave.step().outcome == "idle"  # nothing left to claim
        with pytest.raises(ConsentMissing, match="withdrawn"):
            host.rooms.run(
                room,
                "intersection-overlap",
                [world.datasets["alice"], world.datasets["bob"]],
                DP_RUN,
            )
        events = [e.kind for e in bob.rooms.show(room).view.events]
        assert "withdrew" in events
        assert "run-stopped" in events


def test_run_outside_allowed_queries_is_refused(tmp_path: Path) -> None:
    with room_world(tmp_path) as world:
        host = world.parties["host"]
        room = _room(world)
        with pytest.raises(QueryNotAllowed):
            host.rooms.run(
                room,
                "intersection-sum",
                [world.datasets["alice"], world.datasets["bob"]],
                {"value": "score", "value_bounds": ["0", "7"], "dp": {"epsilon": "1"}},
            )
        # The coordinator refuses it too when a client skips its own check.
        from sealroom.client import flows

        with pytest.raises(QueryNotAllowed):
            flows.request(
                host.client,
                host.identity,
                "intersection-sum",
                [world.datasets["alice"], world.datasets["bob"]],
                {"value": "score", "value_bounds": ["0", "7"], "dp": {"epsilon": "1"}},
                now=now(),
                room_policy=host.rooms.show(room).room.statement.snapshot.policy,
                home=host.home,
            )
        assert host.rooms.show(room).view.runs == ()


def test_risky_template_needs_two_distinct_approvers(tmp_path: Path, db_url: str) -> None:
    with room_world(tmp_path, db_url=db_url) as world, running_enclave(world.url):
        host, alice, bob = (world.parties[n] for n in ("host", "alice", "bob"))
        # k below the template's floor makes the room risky: dual approval, no auto-approval.
        room = _room(world, k=5)
        view = host.rooms.show(room).view
        assert view.risky
        assert any("below the template's floor" in f.detail for f in view.red_flags)
        people = {n: world.new_party(n) for n in ("alice-ann", "alice-avi", "bob-bo", "bob-bea")}
        for org, names in ((alice, ("alice-ann", "alice-avi")), (bob, ("bob-bo", "bob-bea"))):
            for n in names:
                org.rooms.add_member(people[n].party_id, "approver")
        alice.rooms.add_member(world.new_party("alice-aud").party_id, "auditor")
        run = host.rooms.run(
            room, "intersection-overlap", [world.datasets["alice"], world.datasets["bob"]], DP_RUN
        )
        people["alice-ann"].rooms.approve_run(room, run.request, org=alice.party_id)
        # One approver is not enough, and the same person twice is not two.
        with pytest.raises(DualApprovalRequired):
            alice.approve(run.request, allow_simulated=True)
        with pytest.raises(Conflict):
            people["alice-ann"].rooms.approve_run(room, run.request, org=alice.party_id)
        with pytest.raises(PolicyDenied, match="auditor"):
            world.parties["alice-aud"].rooms.approve_run(room, run.request, org=alice.party_id)
        with pytest.raises(PolicyDenied):  # a person of another organisation
            people["bob-bo"].rooms.approve_run(room, run.request, org=alice.party_id)
        assert alice.auto_approve(allow_simulated=True)[0].action != "approved"
        people["alice-avi"].rooms.approve_run(room, run.request, org=alice.party_id)
        alice.approve(run.request, allow_simulated=True)
        for n in ("bob-bo", "bob-bea"):
            people[n].rooms.approve_run(room, run.request, org=bob.party_id)
        bob.approve(run.request, allow_simulated=True)
        done = host.wait(run.request, timeout=60)
        assert done.status == "completed", done.status_reason
        approved = host.rooms.show(room).view.runs[0].approvals
        assert set(approved) == {people[n].party_id for n in people}


def test_region_mismatch_is_refused(tmp_path: Path) -> None:
    with room_world(tmp_path) as world, running_enclave(world.url, region="us-east"):
        host, alice = world.parties["host"], world.parties["alice"]
        room = _room(world, region="eu-west")
        run = host.rooms.run(
            room, "intersection-overlap", [world.datasets["alice"], world.datasets["bob"]], DP_RUN
        )
        with pytest.raises(RegionMismatch):
            alice.approve(run.request, allow_simulated=True)
        with running_enclave(world.url, region="eu-west"):
            _approve_all(world)
            done = host.wait(run.request, timeout=60)
        assert done.status == "completed", done.status_reason
        bundle = host.client.bundle(run.request)
        from sealroom.statements import EnclaveEvidence

        assert bundle.evidence.open(EnclaveEvidence).statement.keys.region == "eu-west"
        fetched = alice.result(run.request, tmp_path / "alice-out", allow_simulated=True)
        assert fetched.report.region == "eu-west"
        assert fetched.report.to_dict()["region"] == "eu-west"


def test_expired_room_refuses_runs(tmp_path: Path) -> None:
    with room_world(tmp_path) as world:
        host = world.parties["host"]
        inputs = [world.datasets["alice"], world.datasets["bob"]]
        expires_at = now() + 15
        room = _room(world, expires_at=expires_at)
        assert host.rooms.run(room, "intersection-overlap", inputs, DP_RUN).status == "pending"
        time.sleep(max(0.0, expires_at - time.time() + 1))
        with pytest.raises(RoomClosed):
            host.rooms.run(room, "intersection-overlap", inputs, DP_RUN)
        with pytest.raises(RoomClosed):
            host.rooms.invite(room, world.new_party("late").party_id)
        with pytest.raises(RoomClosed):
            world.parties["alice"].rooms.consent(room)
        assert host.rooms.show(room).view.expired


def test_a_party_can_not_join_without_enough_entities(tmp_path: Path) -> None:
    with room_world(tmp_path) as world:
        host = world.parties["host"]
        room = host.rooms.create(
            name="r", purpose="p", template="psi-overlap", k=K, expires_at=now() + 600
        )
        small = world.new_party("small")
        path = tmp_path / "small.csv"
        path.write_text("id,score\n" + "".join(f"{i},1\n" for i in range(5)))
        ds = small.publish(path, title="tiny", policy={"allow": [], "k": K}).dataset
        host.rooms.invite(room.digest, small.party_id)
        report = small.rooms.precheck(room.digest, ds)
        assert not report["ok"]
        assert not report["enough_for_k"]
        from sealroom.errors import InvalidInput

        with pytest.raises(InvalidInput, match="fewer than k"):
            small.rooms.join(room.digest, ds)


def test_the_enclave_refuses_a_room_run_without_every_consent(tmp_path: Path) -> None:
    """A coordinator that drops a member's consent from the job (here: its database edited
    behind its back) cannot get the run executed: the enclave checks the signed consents."""
    import sqlite3

    with room_world(tmp_path) as world:
        host, alice = world.parties["host"], world.parties["alice"]
        room = _room(world)
        enclave = registered_enclave(world.url)
        run = host.rooms.run(
            room,
            "intersection-overlap",
            [world.datasets["alice"], world.datasets["bob"]],
            DP_RUN,
        )
        _approve_all(world)
        assert host.status(run.request).status == "approved"
        with sqlite3.connect(tmp_path / "coordinator.db") as db:
            db.execute(
                "UPDATE room_members SET consent_state = 'none' WHERE party = ?",
                (alice.party_id,),
            )
        result = enclave.step()
        assert result.outcome == "failed"
        assert "no consent of input owner" in (result.reason or "")
        assert alice.party_id in (result.reason or "")
        assert host.status(run.request).status == "failed"


def test_async_party_rooms(tmp_path: Path) -> None:
    import anyio

    from sealroom.client import AsyncParty

    with room_world(tmp_path) as world:

        async def flow() -> None:
            async with (
                await AsyncParty.open(home=tmp_path / "alice", url=world.url) as alice,
                await AsyncParty.open(home=tmp_path / "host", url=world.url) as host,
            ):
                room = await host.rooms.create(
                    name="async", purpose="p", template="psi-overlap", k=K, expires_at=now() + 600
                )
                await host.rooms.invite(room.digest, alice.party_id)
                joined = await alice.rooms.join(room.digest, world.datasets["alice"])
                assert joined.digest == room.digest
                view = (await alice.rooms.consent(room.digest)).view
                assert {m.consent_state for m in view.members} == {"none", "consented"}

        anyio.run(flow)


def test_a_members_client_refuses_to_seal_after_its_own_withdrawal(tmp_path: Path) -> None:
    """A withdrawal the coordinator never hears of (or ignores) still stops this member's
    client: it reads its own record of the decision, not the coordinator's."""
    from sealroom.client.local import record_consent

    with room_world(tmp_path) as world:
        host, alice = world.parties["host"], world.parties["alice"]
        room = _room(world)
        registered_enclave(world.url)
        run = host.rooms.run(
            room, "intersection-overlap", [world.datasets["alice"], world.datasets["bob"]], DP_RUN
        )
        snap = alice.rooms.show(room).room.statement.snapshot
        record_consent(
            alice.home,
            room=room,
            policy=snap.policy,
            snapshot=snap.digest(),
            decision="withdraw",
            at=now(),
        )
        with pytest.raises(PolicyDenied, match="room-consent"):
            alice.approve(run.request, allow_simulated=True)
        left = alice.auto_approve(allow_simulated=True)
        assert [a.action for a in left] == ["left"]
        assert "withdrew its consent" in left[0].reason
        assert host.status(run.request).inputs[0].decision == "pending"


def test_the_enclave_refuses_a_risky_run_missing_a_second_approver(tmp_path: Path) -> None:
    """A coordinator that drops one person's approval from the job cannot get a risky run
    executed: the enclave counts the signed approvals of each owner's people itself."""
    import sqlite3

    with room_world(tmp_path) as world:
        host, alice, bob = (world.parties[n] for n in ("host", "alice", "bob"))
        room = _room(world, k=5)
        people = {n: world.new_party(n) for n in ("ann", "avi", "bo", "bea")}
        for org, names in ((alice, ("ann", "avi")), (bob, ("bo", "bea"))):
            for n in names:
                org.rooms.add_member(people[n].party_id, "approver")
        enclave = registered_enclave(world.url)
        run = host.rooms.run(
            room, "intersection-overlap", [world.datasets["alice"], world.datasets["bob"]], DP_RUN
        )
        for org, names in ((alice, ("ann", "avi")), (bob, ("bo", "bea"))):
            for n in names:
                people[n].rooms.approve_run(room, run.request, org=org.party_id)
            org.approve(run.request, allow_simulated=True)
        assert host.status(run.request).status == "approved"
        with sqlite3.connect(tmp_path / "coordinator.db") as db:
            db.execute("DELETE FROM run_approvals WHERE approver = ?", (people["avi"].party_id,))
        result = enclave.step()
        assert result.outcome == "failed"
        assert "needs 2 distinct approvers" in (result.reason or "")
        assert alice.party_id in (result.reason or "")
