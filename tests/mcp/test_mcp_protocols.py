"""An agent runs PSI and PJC with a peer it names, only when the person allowed protocols."""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path
from typing import Any

import anyio

from mcp import Client
from sealroom.client import Party, ProtocolRun
from sealroom.mcp import AgentLimits, build_server
from tests.mcp.test_mcp_server import _call, _refused


def _csv(path: Path, rows: list[tuple[str, int]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["email", "spend"])
        w.writerows(rows)
    return path


def _peer(run: Any) -> tuple[threading.Thread, list[ProtocolRun | BaseException]]:
    got: list[ProtocolRun | BaseException] = []

    def target() -> None:
        try:
            got.append(run())
        except BaseException as exc:
            got.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, got


def test_protocols_need_the_persons_flag_and_name_the_peer(
    tmp_path: Path, coordinator_url: str
) -> None:
    shared = [f"user{i}@example.org" for i in range(30)]
    mine = _csv(tmp_path / "mine.csv", [(e, 0) for e in [*shared, "only-agent@example.org"]])
    with (
        Party.create(
            home=tmp_path / "agent", name="agent", url=coordinator_url, unencrypted=True
        ) as me,
        Party.create(
            home=tmp_path / "peer", name="peer", url=coordinator_url, unencrypted=True
        ) as peer,
    ):
        theirs_emails = [*shared, *(f"other{i}@example.org" for i in range(10))]
        theirs_values = [i % 7 for i in range(len(theirs_emails))]
        results = tmp_path / "agent-results"
        locked = build_server(me, limits=AgentLimits(results_dir=results))
        allowed = build_server(me, limits=AgentLimits(results_dir=results, allow_protocols=True))

        async def session() -> None:
            async with Client(locked) as agent:
                why = await _refused(
                    agent, "psi", path=str(mine), column="email", peer=peer.party_id, start=True
                )
                assert "agent-protocols" in why
            async with Client(allowed) as agent:
                thread, got = _peer(
                    lambda: peer.psi(
                        [e.encode() for e in theirs_emails], join=True, expect=[me.party_id]
                    )
                )
                out = await _call(
                    agent, "psi", path=str(mine), column="email", peer=peer.party_id, start=True
                )
                thread.join(120)
                assert out["learned"]["intersection_size"] == 30, out["learned"]
                assert isinstance(got[0], ProtocolRun)
                record = Path(out["record_path"])
                assert record.stat().st_mode & 0o777 == 0o600
                assert json.loads(record.read_text())["session"] == out["session"]

                # PJC: the agent holds ids only; the peer's values are summed over the overlap.
                thread, got = _peer(
                    lambda: peer.pjc(
                        [e.encode() for e in theirs_emails],
                        theirs_values,
                        join=True,
                        expect=[me.party_id],
                        min_intersection=10,
                        max_value=10,
                    )
                )
                out = await _call(
                    agent,
                    "pjc",
                    path=str(mine),
                    id_column="email",
                    peer=peer.party_id,
                    start=True,
                    min_intersection=10,
                    max_value=10,
                )
                thread.join(120)
                assert isinstance(got[0], ProtocolRun), got
                assert out["learned"]["intersection_size"] == 30
                assert out["learned"]["sum"] == sum(theirs_values[:30])

        anyio.run(session)
