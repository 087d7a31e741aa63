"""Rooms through the party consoles, against a real coordinator and enclave: a host creates
a room and invites, members pre-check, join, read the summary and consent, the host runs,
the members approve, the run completes; a withdrawal stops a run; a non-member sees nothing;
every POST needs the CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sealroom.audit.pack import verify_pack
from sealroom.client import Party
from sealroom.verification.trust import trust_policy
from tests.rooms.room_world import IDS, K, now, write_ids
from tests.services import SIMULATION_ROOT, coordinator, registered_enclave, running_enclave
from tests.web.console_world import Console, console

# No auto-approval: each member approves its input by hand, in its console.
MEMBER_POLICY: dict[str, Any] = {
    "allow": [{"id": "intersection-overlap"}],
    "k": K,
    "dp": {"epsilon_per_requester": "20", "epsilon_total": "20"},
}


@dataclass
class Rooms:
    url: str
    consoles: dict[str, Console]
    datasets: dict[str, str]


@contextmanager
def rooms_world(tmp_path: Path) -> Iterator[Rooms]:
    with coordinator(tmp_path) as url, ExitStack() as stack:
        consoles: dict[str, Console] = {}
        datasets: dict[str, str] = {}
        for name in ("host", "alice", "bob", "eve"):
            party = stack.enter_context(
                Party.create(home=tmp_path / name, name=name, url=url, unencrypted=True)
            )
            if name in IDS:
                datasets[name] = party.publish(
                    write_ids(tmp_path / f"{name}.csv", IDS[name]),
                    title=f"{name} customers",
                    policy=MEMBER_POLICY,
                ).dataset
            consoles[name] = stack.enter_context(console(party, tmp_path / f"{name}-results"))
        yield Rooms(url=url, consoles=consoles, datasets=datasets)


def _post(c: Console, b: httpx.Client, path: str, **data: str) -> httpx.Response:
    return b.post(path, data={"csrf": c.csrf(b), **data}, headers={"origin": c.url})


def _create(w: Rooms, b: httpx.Client) -> str:
    host = w.consoles["host"]
    made = _post(
        host,
        b,
        "/rooms",
        template="psi-overlap",
        name="overlap <study>",
        purpose="size the shared customer base",
        k=str(K),
        dp="required",
        epsilon_per_run="1",
        epsilon_total="4",
        expires_days="7",
        region="",
        invitees="\n".join(w.consoles[n].party.party_id for n in ("alice", "bob")),
    )
    assert made.status_code == 303, made.text
    room = made.headers["location"].split("/rooms/", 1)[1].split("?", 1)[0]
    assert made.headers["location"].endswith("done=room-created")
    return room


def _join_and_consent(w: Rooms, name: str, room: str) -> None:
    c = w.consoles[name]
    with c.browser_client() as b:
        listed = b.get("/rooms").text
        assert room[:15] in listed
        assert "overlap &lt;study&gt;" in listed
        page = b.get(f"/rooms/{room}").text
        assert "Pre-check a dataset and join" in page
        report = b.get(f"/rooms/{room}/join", params={"dataset": w.datasets[name]})
        assert report.status_code == 200, report.text
        assert "Pre-check report: passed" in report.text
        assert f"{len(IDS[name])} (room k = {K})" in report.text
        assert c.party.rooms.show(room).view.members  # nothing joined by the pre-check
        joined = _post(c, b, f"/rooms/{room}/join", dataset=w.datasets[name], key_column="id")
        assert joined.status_code == 303, joined.text
        page = b.get(f"/rooms/{room}").text
        summary = c.party.rooms.summary(room)
        assert "One-page summary" in page
        assert "size the shared customer base" in page
        assert f"Consent to snapshot {summary.snapshot_digest}" in page
        # A consent naming another snapshot than the room's is refused; nothing is signed.
        stale = _post(c, b, f"/rooms/{room}/consent", snapshot="sha256:" + "0" * 64)
        assert stale.status_code == 400
        assert "reload and read it" in stale.text
        done = _post(c, b, f"/rooms/{room}/consent", snapshot=summary.snapshot_digest)
        assert done.status_code == 303, done.text
        assert 'id="consent-state">consented' in b.get(f"/rooms/{room}").text


def _start_run(w: Rooms, hb: httpx.Client, room: str) -> str:
    host = w.consoles["host"]
    started = _post(
        host,
        hb,
        f"/rooms/{room}/run",
        computation="intersection-overlap",
        datasets=f"{w.datasets['alice']}\n{w.datasets['bob']}",
        epsilon="1",
    )
    assert started.status_code == 303, started.text
    return started.headers["location"].rsplit("run=", 1)[1]


def _approve(w: Rooms, name: str, room: str, rid: str) -> None:
    c = w.consoles[name]
    with c.browser_client() as b:
        assert "Approve and seal my input" in b.get(f"/rooms/{room}").text
        done = _post(c, b, f"/rooms/{room}/runs/{rid}/approve")
        assert done.status_code == 303, done.text


def test_room_through_the_consoles(tmp_path: Path) -> None:
    with rooms_world(tmp_path) as w, running_enclave(w.url):
        host = w.consoles["host"]
        with host.browser_client() as hb:
            room = _create(w, hb)
            for name in ("alice", "bob"):
                _join_and_consent(w, name, room)
            page = hb.get(f"/rooms/{room}").text
            assert page.count(">consented<") == 2
            rid = _start_run(w, hb, room)
            for name in ("alice", "bob"):
                _approve(w, name, room, rid)
            assert host.party.wait(rid, timeout=60).status == "completed"
            assert re.search(r"<strong>completed</strong>", hb.get(f"/rooms/{room}").text)

            packed = _post(host, hb, f"/rooms/{room}/pack")
            assert packed.status_code == 303, packed.text
            name = packed.headers["location"].rsplit("pack=", 1)[1]
            out = host.results / "packs" / name
            files = [p for p in out.rglob("*") if p.is_file()]
            assert files
            assert all(p.stat().st_mode & 0o777 == 0o600 for p in files)
            assert f"sealroom verify-pack {out}" in hb.get(packed.headers["location"]).text
            trust = trust_policy(
                allow_simulated=True,
                log_key=host.party.client.log_key().verifier_key,
                simulation_root=SIMULATION_ROOT.public_key,
            )
            report = verify_pack(out, trust=trust, now=now(), issuer=host.party.party_id)
            assert all(c.passed for c in report.checks)

        # A non-member's console shows no such room.
        eve = w.consoles["eve"]
        with eve.browser_client() as eb:
            assert room[:15] not in eb.get("/rooms").text
            assert eb.get(f"/rooms/{room}").status_code == 404
            refused = _post(eve, eb, f"/rooms/{room}/consent", snapshot="sha256:" + "0" * 64)
            assert refused.status_code == 404


def test_withdrawn_consent_stops_a_run(tmp_path: Path) -> None:
    with rooms_world(tmp_path) as w:
        host, alice = w.consoles["host"], w.consoles["alice"]
        with host.browser_client() as hb:
            room = _create(w, hb)
            for name in ("alice", "bob"):
                _join_and_consent(w, name, room)
            registered_enclave(w.url)  # registered, not taking jobs: the run waits
            rid = _start_run(w, hb, room)
            for name in ("alice", "bob"):
                _approve(w, name, room, rid)
            assert host.party.status(rid).status == "approved"
        with alice.browser_client() as ab:
            digest = alice.party.rooms.summary(room).snapshot_digest
            page = ab.get(f"/rooms/{room}").text
            assert f"Withdraw consent to snapshot {digest}" in page
            done = _post(alice, ab, f"/rooms/{room}/withdraw", snapshot=digest, reason="legal")
            assert done.status_code == 303, done.text
            assert host.party.status(rid).status == "withdrawn"
            page = ab.get(f"/rooms/{room}").text
            assert 'id="consent-state">withdrawn' in page
            assert "<strong>withdrawn</strong>" in page


def test_every_room_post_needs_the_csrf_token(tmp_path: Path) -> None:
    with rooms_world(tmp_path) as w:
        host = w.consoles["host"]
        with host.browser_client() as hb:
            room = host.party.rooms.create(
                name="r", purpose="p", template="psi-overlap", k=K, expires_at=now() + 3600
            ).digest
            # An invitee that is no registered party: refused before the room is signed.
            unknown = _post(
                host,
                hb,
                "/rooms",
                template="psi-overlap",
                name="r2",
                purpose="p",
                k=str(K),
                expires_days="1",
                invitees=w.consoles["eve"].party.party_id[:-4] + "AAAA",
            )
            assert unknown.status_code in (400, 404), unknown.text
            assert [v.room for v in host.party.rooms.list()] == [room]
            # Bad input: a specific error, and no room is signed.
            base = {"template": "psi-overlap", "name": "r3", "purpose": "p", "expires_days": "1"}
            for bad, message in (
                ({"k": "1"}, "k is a whole number from 2"),
                ({"k": "10", "region": "EU West!"}, "region is a name"),
                ({"k": "10", "epsilon_per_run": "-1"}, "epsilon_per_run is a positive decimal"),
                ({"k": "10", "template": "no-such"}, "no room template"),
            ):
                got = _post(host, hb, "/rooms", **{**base, **bad})
                assert got.status_code in (400, 404), got.text
                assert message in got.text
            assert [v.room for v in host.party.rooms.list()] == [room]
            rid = "sha256:" + "1" * 64
            for path in (
                "/rooms",
                f"/rooms/{room}/invite",
                f"/rooms/{room}/join",
                f"/rooms/{room}/consent",
                f"/rooms/{room}/withdraw",
                f"/rooms/{room}/run",
                f"/rooms/{room}/pack",
                f"/rooms/{room}/runs/{rid}/approve",
                f"/rooms/{room}/runs/{rid}/org-approve",
            ):
                for token in ({}, {"csrf": "forged"}):
                    got = hb.post(path, data={"party": "x", **token}, headers={"origin": host.url})
                    assert got.status_code == 403, (path, got.status_code)
            view = host.party.rooms.show(room).view
            assert [m.party for m in view.members] == [host.party.party_id]  # nobody invited
            assert view.runs == ()
            assert not (host.results / "packs").exists()


def test_a_protocol_run_is_approved_by_hand_in_the_console(tmp_path: Path) -> None:
    """The owner's Approve button on a protocol run signs a manual approval and seals
    nothing (no enclave runs it); the page says how to take part."""
    with rooms_world(tmp_path) as w:
        host, alice = w.consoles["host"].party, w.consoles["alice"].party
        room = host.rooms.create(
            name="no enclave",
            purpose="overlap between the two clients",
            template="psi-overlap",
            k=K,
            dp="exact",
            epsilon_per_run=None,
            epsilon_total=None,
            expires_at=now() + 3600,
            protocols=True,
        ).digest
        host.rooms.invite(room, alice.party_id)
        alice.rooms.join(room, w.datasets["alice"])
        alice.rooms.consent(room)
        psi = {"mode": "cardinality", "threshold": K, "max_set_size": 1_000_000}
        rid = host.rooms.request_protocol(
            room, "psi", [w.datasets["host"], w.datasets["alice"]], psi
        ).request
        for i in (1, 2):
            with Party.create(
                home=tmp_path / f"alice-{i}", name=f"alice-{i}", url=w.url, unencrypted=True
            ) as person:
                alice.rooms.add_member(person.party_id, "approver")
                person.rooms.approve_run(room, rid, org=alice.party_id)
        c = w.consoles["alice"]
        with c.browser_client() as b:
            done = _post(c, b, f"/rooms/{room}/runs/{rid}/approve")
            assert done.status_code == 303, done.text
            assert done.headers["location"].endswith("done=room-protocol-approved")
            assert "sealroom room run-protocol" in b.get(done.headers["location"]).text
        mine = [i for i in alice.status(rid).inputs if i.owner == alice.party_id]
        assert [(i.decision, i.mode, i.sealed) for i in mine] == [("approve", "manual", False)]
