"""Rooms for an agent: read-only tools over a real coordinator, each room checked against its
signed statements; joining, consenting and approving stay with the person."""

from __future__ import annotations

from pathlib import Path

import anyio

from mcp import Client
from sealroom.mcp import AgentLimits, build_server
from tests.mcp.test_mcp_server import _call, _refused
from tests.rooms.room_world import K, now, room_world


def test_an_agent_reads_its_rooms_and_is_told_what_the_person_decides(tmp_path: Path) -> None:
    with room_world(tmp_path) as world:
        host, alice, bob = (world.parties[n] for n in ("host", "alice", "bob"))
        room = host.rooms.create(
            name="overlap study",
            purpose="size the shared customer base",
            template="psi-overlap",
            k=K,
            expires_at=now() + 3600,
        ).digest
        host.rooms.invite(room, alice.party_id)
        limits = AgentLimits(results_dir=tmp_path / "results")

        async def session() -> None:
            async with Client(build_server(alice, limits=limits)) as agent:
                listed = await _call(agent, "rooms")
                assert [r["room"] for r in listed["rooms"]] == [room]
                assert listed["rooms"][0]["my_consent"] == "none"
                seen = await _call(agent, "room", room=room)
                assert seen["purpose"] == "size the shared customer base"
                assert seen["k"] == K
                assert [q["id"] for q in seen["allowed_queries"]] == ["intersection-overlap"]
                assert any(f"sealroom room join {room}" in w for w in seen["needs_person"])
                assert any(f"sealroom room consent {room}" in w for w in seen["needs_person"])
                assert "not a room id" in await _refused(agent, "room", room="../etc")
            alice.rooms.join(room, world.datasets["alice"])
            alice.rooms.consent(room)
            async with Client(build_server(alice, limits=limits)) as agent:
                seen = await _call(agent, "room", room=room)
                assert seen["needs_person"] == []
                mine = [m for m in seen["members"] if m["party"] == alice.party_id]
                assert mine == [
                    {
                        "party": alice.party_id,
                        "role": "member",
                        "status": "joined",
                        "consent": "consented",
                    }
                ]
            # A room exists only for its members.
            async with Client(build_server(bob, limits=limits)) as agent:
                assert (await _call(agent, "rooms"))["rooms"] == []
                assert "not_found" in await _refused(agent, "room", room=room)

        anyio.run(session)
