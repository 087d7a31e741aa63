"""Room runs as no-trust protocols: the same consents and approvals as an enclave run, a
session only the approved run can open, and co-signed receipts that must describe that run
before they are logged. Real coordinator, real parties, the protocols over the relay."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sealroom.client import Party
from sealroom.client.protocol_runs import ProtocolRun
from sealroom.client.relay import open_session
from sealroom.errors import (
    Conflict,
    ConsentMissing,
    DualApprovalRequired,
    InvalidInput,
    PolicyDenied,
    QueryNotAllowed,
    VerificationFailed,
)
from sealroom.statements import Envelope
from tests.rooms.room_world import K, RoomWorld, now, room_world, write_ids

PSI = {"mode": "cardinality", "threshold": K, "max_set_size": 1_000_000}


def _room(world: RoomWorld) -> str:
    """A PSI room between the host and alice whose runs may be protocols (exact, so risky:
    two people of each organisation approve each run)."""
    host, alice = world.parties["host"], world.parties["alice"]
    room = host.rooms.create(
        name="overlap without an enclave",
        purpose="size the shared customers; neither trusts a TEE",
        template="psi-overlap",
        k=K,
        dp="exact",
        epsilon_per_run=None,
        epsilon_total=None,
        expires_at=now() + 3600,
        protocols=True,
    )
    host.rooms.invite(room.digest, alice.party_id)
    alice.rooms.join(room.digest, world.datasets["alice"])
    alice.rooms.consent(room.digest)
    for org in (host, alice):
        for i in (1, 2):
            person = world.new_party(f"{org.name}-approver-{i}")
            org.rooms.add_member(person.party_id, "approver")
    return room.digest


def _people_approve(world: RoomWorld, room: str, request: str) -> None:
    for org in ("host", "alice"):
        for i in (1, 2):
            world.parties[f"{org}-approver-{i}"].rooms.approve_run(
                room, request, org=world.parties[org].party_id
            )


def _approved(world: RoomWorld, room: str) -> str:
    """A PSI run in ``room``, approved by both owners and two people of each."""
    request = _request(world, room)
    _people_approve(world, room, request)
    world.parties["host"].rooms.approve_protocol(request)
    world.parties["alice"].rooms.approve_protocol(request)
    return request


def _both(*calls: Callable[[], ProtocolRun]) -> list[ProtocolRun]:
    with ThreadPoolExecutor(len(calls)) as pool:
        return [f.result(timeout=120) for f in [pool.submit(c) for c in calls]]


def _request(world: RoomWorld, room: str, params: dict[str, Any] | None = None) -> str:
    return (
        world.parties["host"]
        .rooms.request_protocol(
            room, "psi", [world.datasets["host"], world.datasets["alice"]], params or PSI
        )
        .request
    )


def test_a_psi_run_in_a_room_is_approved_run_between_the_parties_and_logged(
    tmp_path: Path, db_url: str
) -> None:
    with room_world(tmp_path, db_url=db_url) as world:
        host, alice = world.parties["host"], world.parties["alice"]
        room = _room(world)
        snapshot = host.rooms.show(room).room.statement.snapshot
        assert [q.id for q in snapshot.allowed_queries] == ["intersection-overlap", "protocol.psi"]
        assert snapshot.template.risky
        assert snapshot.approvers_required == 2
        request = _request(world, room)
        assert host.status(request).status == "pending"
        # No session before every owner approved, and no approval by policy.
        with pytest.raises(Conflict, match="approved"):
            open_session(host.client, protocol="psi", roles=_roles(world), request=request)
        assert alice.auto_approve(allow_simulated=True)[0].action == "left"
        with pytest.raises(DualApprovalRequired):
            alice.rooms.approve_protocol(request)
        _people_approve(world, room, request)
        host.rooms.approve_protocol(request)
        alice.rooms.approve_protocol(request)
        approved = host.status(request)
        assert approved.status == "approved", approved.status_reason

        mine, theirs = _both(
            lambda: host.rooms.run_protocol(request, key_column="id"),
            lambda: alice.rooms.run_protocol(request, key_column="id"),
        )
        # host holds 0..149, alice 0..199: 150 in common, learned by both (cardinality).
        assert mine.learned["intersection_size"] == theirs.learned["intersection_size"] == 150
        assert mine.record.receipts[0].statement.request == request
        done = host.status(request)
        assert done.status == "completed", done.status_reason
        assert "co-signed receipts are in the log" in (done.status_reason or "")
        events = [e.kind for e in alice.rooms.show(room).view.events]
        assert "run-started" in events
        assert "run-completed" in events
        # A run runs once: the clients refuse a second time, the relay a second session.
        with pytest.raises(PolicyDenied, match="runs once"):
            alice.rooms.run_protocol(request, key_column="id", timeout=2)
        with pytest.raises(Conflict):
            open_session(host.client, protocol="psi", roles=_roles(world), request=request)
        # The receipts are in the room's statements (what an auditor pack carries).
        logged = host.client.room_statements(room).statements
        kinds = [s.envelope.type for s in logged]
        assert kinds.count("sealroom.protocol-receipt") == 2
        assert kinds.count("sealroom.computation-request") == 1
        assert kinds.count("sealroom.approval") == 2
        # An auditor pack of the room carries them and verifies offline.
        from sealroom.audit.pack import verify_pack
        from sealroom.verification.trust import trust_policy

        out = tmp_path / "pack"
        host.rooms.pack(room, out, valid_for=3600)
        trust = trust_policy(allow_simulated=True, log_key=host.client.log_key().verifier_key)
        report = verify_pack(out, trust=trust, now=host.now(), issuer=host.party_id)
        ran = [c for c in report.checks if c.name == f"protocol run {request}"]
        assert len(ran) == 1
        assert "2 co-signed receipts verify as one psi run" in ran[0].detail
        # A pack that leaves out one party's receipt (an issuer hiding what a party saw) fails.
        from sealroom.audit.pack import PackRejected
        from sealroom.client.audit import issue_pack, room_statement_proofs
        from sealroom.statements import canonical_json, policy_snapshot

        proofs = room_statement_proofs(host.client, room)
        receipts = [p for p in proofs if p.envelope.type == "sealroom.protocol-receipt"]
        partial = tmp_path / "partial-pack"
        issue_pack(
            host.client,
            host.identity,
            partial,
            now=host.now(),
            valid_for=3600,
            statements=[p for p in proofs if p is not receipts[0]],
            snapshot=canonical_json(policy_snapshot(host.rooms.show(room).room.statement)[0]),
        )
        with pytest.raises(PackRejected) as rejected:
            verify_pack(partial, trust=trust, now=host.now(), issuer=host.party_id)
        assert any("no receipt from" in c.detail for c in rejected.value.report.failures)


def _roles(world: RoomWorld) -> list[tuple[str, str]]:
    return [("a", world.parties["host"].party_id), ("b", world.parties["alice"].party_id)]


def test_a_withdrawn_consent_stops_an_approved_protocol_run_before_its_session(
    tmp_path: Path,
) -> None:
    with room_world(tmp_path) as world:
        host, alice = world.parties["host"], world.parties["alice"]
        room = _room(world)
        request = _approved(world, room)
        alice.rooms.withdraw_consent(room, reason="legal review")
        assert host.status(request).status == "withdrawn"
        # The host's client finds alice's signed withdrawal itself; the coordinator refuses
        # the session too when a client skips that check.
        with pytest.raises(ConsentMissing, match="it withdrew"):
            host.rooms.run_protocol(request, key_column="id")
        with pytest.raises(Conflict, match="withdrawn"):
            open_session(host.client, protocol="psi", roles=_roles(world), request=request)
        with pytest.raises(ConsentMissing):
            alice.rooms.run_protocol(request, key_column="id", timeout=2)


def test_the_session_is_the_requesters_with_exactly_the_runs_participants(tmp_path: Path) -> None:
    with room_world(tmp_path) as world:
        host, alice, bob = (world.parties[n] for n in ("host", "alice", "bob"))
        room = _room(world)
        request = _approved(world, room)
        with pytest.raises(PolicyDenied, match="requester"):
            open_session(alice.client, protocol="psi", roles=_roles(world), request=request)
        swapped = [("a", alice.party_id), ("b", host.party_id)]
        with pytest.raises(InvalidInput, match="exactly the run's"):
            open_session(host.client, protocol="psi", roles=swapped, request=request)
        with pytest.raises(InvalidInput, match="protocol"):
            open_session(host.client, protocol="pjc", roles=_roles(world), request=request)
        outsider = [("a", host.party_id), ("b", bob.party_id)]
        with pytest.raises(InvalidInput):
            open_session(host.client, protocol="psi", roles=outsider, request=request)
        assert host.status(request).status == "approved"  # nothing started


def test_receipts_of_another_run_do_not_complete_it(tmp_path: Path) -> None:
    with room_world(tmp_path) as world:
        host, alice = world.parties["host"], world.parties["alice"]
        room = _room(world)
        request = _approved(world, room)
        open_session(host.client, protocol="psi", roles=_roles(world), request=request)
        assert host.status(request).status == "running"
        # The same two parties run PSI outside the room, and hand that record in.
        ids = [str(i).encode() for i in range(20)]
        other, _ = _both(
            lambda: host.psi(ids, start_with=[alice.party_id]),
            lambda: alice.psi(ids, join=True, expect=[host.party_id]),
        )
        envelopes = [r.envelope for r in other.record.receipts]
        with pytest.raises(VerificationFailed, match="not this run"):
            host.client.post_protocol_receipts(request, envelopes)
        # An incomplete record (one party's receipt) is refused before anything is read.
        with pytest.raises(VerificationFailed, match="no receipt from"):
            host.client.post_protocol_receipts(request, envelopes[:1])
        # A receipt with a flipped byte does not verify.
        raw = bytearray(envelopes[0].to_json())
        raw[raw.index(b'"signature":"') + 14] ^= 0x01
        with pytest.raises((VerificationFailed, InvalidInput)):
            host.client.post_protocol_receipts(
                request, [Envelope.from_json(bytes(raw)), envelopes[1]]
            )
        assert host.status(request).status == "running"


REFUSED_PARAMETERS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({**PSI, "threshold": K - 1}, PolicyDenied, "below the room's k"),
    ({**PSI, "mode": "intersection"}, PolicyDenied, "identifiers"),
    ({"mode": "cardinality", "threshold": K}, InvalidInput, "in full"),
    ({**PSI, "extra": 1}, InvalidInput, "parameters"),
]


def test_protocol_parameters_outside_the_room_are_refused(tmp_path: Path) -> None:
    with room_world(tmp_path) as world:
        room = _room(world)
        host = world.parties["host"]
        for params, error, match in REFUSED_PARAMETERS:
            with pytest.raises(error, match=match):
                _request(world, room, params)
            # The coordinator refuses it too when a client skips its own check.
            _sign_and_post(host, room, world, params, error, match)
        assert host.rooms.show(room).view.runs == ()


def _sign_and_post(
    host: Party,
    room: str,
    world: RoomWorld,
    params: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    import os

    from sealroom.crypto.keys import b64encode
    from sealroom.protocols.queries import protocol_ref
    from sealroom.statements import ComputationRequest, sign_statement

    snapshot = host.rooms.show(room).room.statement.snapshot
    signed = sign_statement(
        ComputationRequest.build(
            requester=host.party_id,
            computation=protocol_ref("psi"),
            parameters=params,
            inputs=(world.datasets["host"], world.datasets["alice"]),
            recipients=(host.party_id, world.parties["alice"].party_id),
            nonce=b64encode(os.urandom(16)),
            created_at=host.now(),
            expires_at=host.now() + 600,
            room_policy=snapshot.policy,
        ),
        host.identity,
    )
    with pytest.raises(error, match=match):
        host.client.create_request(signed.envelope)


def test_protocols_need_an_exact_room_and_a_template_that_has_one(tmp_path: Path) -> None:
    with room_world(tmp_path) as world:
        host = world.parties["host"]
        base: dict[str, Any] = {
            "name": "r",
            "purpose": "p",
            "k": K,
            "expires_at": now() + 3600,
            "protocols": True,
        }
        with pytest.raises(InvalidInput, match="exact"):
            host.rooms.create(template="psi-overlap", **base)
        with pytest.raises(InvalidInput, match="no no-trust protocol"):
            host.rooms.create(
                template="research-stats",
                dp="exact",
                epsilon_per_run=None,
                epsilon_total=None,
                **base,
            )
        # A room without protocols refuses a protocol run.
        plain = host.rooms.create(template="psi-overlap", **{**base, "protocols": False}).digest
        with pytest.raises(QueryNotAllowed):
            _request(world, plain)


def _exact_room(world: RoomWorld, template: str, k: int, members: tuple[str, ...]) -> str:
    host = world.parties["host"]
    room = host.rooms.create(
        name=f"{template} without an enclave",
        purpose="no party trusts a TEE",
        template=template,
        k=k,
        dp="exact",
        epsilon_per_run=None,
        epsilon_total=None,
        expires_at=now() + 3600,
        protocols=True,
    ).digest
    for name in members:
        host.rooms.invite(room, world.parties[name].party_id)
        world.parties[name].rooms.join(room, world.datasets[name])
        world.parties[name].rooms.consent(room)
    return room


def _two_approvers(world: RoomWorld, orgs: tuple[str, ...], room: str, request: str) -> None:
    for org in orgs:
        for i in (1, 2):
            name = f"{org}-approver-{i}"
            if name not in world.parties:
                world.parties[org].rooms.add_member(world.new_party(name).party_id, "approver")
            world.parties[name].rooms.approve_run(room, request, org=world.parties[org].party_id)


def test_a_pjc_run_in_a_room_gives_the_first_party_the_sum_over_the_intersection(
    tmp_path: Path,
) -> None:
    with room_world(tmp_path) as world:
        host, alice = world.parties["host"], world.parties["alice"]
        room = _exact_room(world, "intersection-sum", K, ("alice",))
        params = {
            "min_intersection": K,
            "max_value": 1_000,
            "max_set_size": 1_000_000,
            "dp_epsilon": None,
        }
        request = host.rooms.request_protocol(
            room, "pjc", [world.datasets["host"], world.datasets["alice"]], params
        ).request
        _two_approvers(world, ("host", "alice"), room, request)
        host.rooms.approve_protocol(request)
        alice.rooms.approve_protocol(request)
        mine, theirs = _both(
            lambda: host.rooms.run_protocol(request, key_column="id"),
            lambda: alice.rooms.run_protocol(request, key_column="id", value_column="score"),
        )
        # host (a) holds 0..149, alice (b) 0..199 with score i % 7: a learns the sum.
        assert mine.learned["intersection_size"] == 150
        assert mine.learned["sum"] == sum(i % 7 for i in range(150))
        assert theirs.learned["sum"] is None  # the values' owner learns only the other's size
        assert host.status(request).status == "completed"


TRAINING: dict[str, dict[str, Any]] = {
    "he": {
        "model": "logistic",
        "features": 1,
        "rounds": 2,
        "learning_rate": "0.5",
        "owners": ["o1", "o2"],
        "poly_modulus_degree": 8192,
    },
    "secagg": {
        "aggregator": "aggregator",
        "owners": ["o1", "o2"],
        "features": 1,
        "rounds": 2,
        "local_steps": 1,
        "learning_rate": "0.5",
        "l2": "0.0",
        "threshold": 2,
        "aggregator_trains": False,
        "update_bound": "4.0",
        "modulus_bits": 32,
        "standardize": True,
        "dp": None,
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["he", "secagg"])
def test_training_in_a_room_runs_with_the_host_as_the_hub(tmp_path: Path, protocol: str) -> None:
    with room_world(tmp_path) as world:
        host, alice, bob = (world.parties[n] for n in ("host", "alice", "bob"))
        for name, party in (("alice", alice), ("bob", bob)):
            rows = "".join(f"{i},{(i % 10) / 10},{int(i % 10 >= 5)}\n" for i in range(120))
            path = tmp_path / f"{name}-train.csv"
            path.write_text("id,x,y\n" + rows)
            world.datasets[name] = party.publish(path, title=f"{name} rows").dataset
        room = _exact_room(world, "glm-training", 50, ("alice", "bob"))
        wrong_roles = {**TRAINING[protocol], "owners": ["o2", "o1"]}
        with pytest.raises(InvalidInput, match="roles"):
            host.rooms.request_protocol(
                room, protocol, [world.datasets["alice"], world.datasets["bob"]], wrong_roles
            )
        request = host.rooms.request_protocol(
            room, protocol, [world.datasets["alice"], world.datasets["bob"]], TRAINING[protocol]
        ).request
        _two_approvers(world, ("alice", "bob"), room, request)
        alice.rooms.approve_protocol(request)
        bob.rooms.approve_protocol(request)
        runs = _both(
            lambda: host.rooms.run_protocol(request, features=["x"]),
            lambda: alice.rooms.run_protocol(request, features=["x"], label="y"),
            lambda: bob.rooms.run_protocol(request, features=["x"], label="y"),
        )
        assert runs[0].model is not None
        assert {r.learned["model"] for r in runs} == {runs[0].learned["model"]}
        done = host.status(request)
        assert done.status == "completed", done.status_reason


def test_an_owner_runs_only_what_its_own_records_say_it_approved_and_consents_to(
    tmp_path: Path,
) -> None:
    """The coordinator says the run is approved and alice consents; alice's client goes by
    its own records (``<home>/rooms.json``), as a coordinator that lies would find."""
    import json

    with room_world(tmp_path) as world:
        host, alice = world.parties["host"], world.parties["alice"]
        room = _room(world)
        request = _approved(world, room)
        records = alice.home / "rooms.json"
        kept = records.read_text()
        doc = json.loads(kept)
        del doc["approved_runs"][request]
        records.write_text(json.dumps(doc))
        with pytest.raises(PolicyDenied, match="not approved"):
            alice.rooms.run_protocol(request, key_column="id", timeout=2)
        doc = json.loads(kept)
        for entry in doc["rooms"].values():
            entry["decision"] = "withdraw"
        records.write_text(json.dumps(doc))
        with pytest.raises(ConsentMissing):
            alice.rooms.run_protocol(request, key_column="id", timeout=2)
        assert host.status(request).status == "approved"  # the coordinator saw nothing


def test_a_protocol_run_that_never_hands_in_receipts_fails_when_the_request_expires(
    tmp_path: Path,
) -> None:
    from sealroom.computations import default_registry
    from sealroom.coordinator.keys import CoordinatorKeystore
    from sealroom.coordinator.state import State
    from sealroom.storage.engine import create_engine

    with room_world(tmp_path) as world:
        host = world.parties["host"]
        room = _room(world)
        request = _approved(world, room)
        open_session(host.client, protocol="psi", roles=_roles(world), request=request)
        view = host.status(request)
        assert view.status == "running"
        # The coordinator's own sweep, as `serve --sweep-every` runs it, just after expiry.
        engine = create_engine(f"sqlite:///{tmp_path / 'coordinator.db'}")
        keystore = CoordinatorKeystore(directory=tmp_path / "coordinator-keys")
        state = State(
            engine=engine,
            registry=default_registry(),
            signer=keystore.log_signer(engine, "sealroom.local/log"),
        )
        assert state.sweep(now=view.expires_at - 1) == 0
        assert state.sweep(now=view.expires_at) == 1
        engine.dispose()
        failed = host.status(request)
        assert failed.status == "failed"
        assert "did not hand in its receipts" in (failed.status_reason or "")


def test_a_rerun_on_the_same_member_data_with_a_new_host_input_is_red_flagged(
    tmp_path: Path,
) -> None:
    """PSI cardinality lets a party that chooses its own set test whether one element is in
    the other's (k - 1 known members plus the target): the room shows and records reruns
    of a query on a member's data with other inputs."""
    with room_world(tmp_path) as world:
        host = world.parties["host"]
        room = _room(world)
        _request(world, room)
        probe = host.publish(write_ids(tmp_path / "probe.csv", range(90, 100)), title="probe")
        host.rooms.request_protocol(room, "psi", [probe.dataset, world.datasets["alice"]], PSI)
        flags = [f.detail for f in world.parties["alice"].rooms.show(room).view.red_flags]
        assert any("ran on the same member data 1 time(s) before" in f for f in flags), flags


def test_a_bad_column_is_refused_before_the_session_so_the_run_can_still_go_ahead(
    tmp_path: Path,
) -> None:
    with room_world(tmp_path) as world:
        host, alice = world.parties["host"], world.parties["alice"]
        room = _room(world)
        request = _approved(world, room)
        with pytest.raises(InvalidInput, match="no column 'email'"):
            host.rooms.run_protocol(request, key_column="email")
        assert host.status(request).status == "approved"  # no session, nothing recorded
        mine, _ = _both(
            lambda: host.rooms.run_protocol(request, key_column="id"),
            lambda: alice.rooms.run_protocol(request, key_column="id"),
        )
        assert mine.learned["intersection_size"] == 150
        assert host.status(request).status == "completed"
