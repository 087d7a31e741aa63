"""The async twin against a real coordinator and a simulated enclave: the same flow as the
sync verbs, two parties concurrently on one event loop, and a wait that cancels at once."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from sealroom.client import AsyncParty, Party
from sealroom.client.errors import WaitTimeout
from sealroom.errors import StatementFormatError
from tests.client.client_world import AUTO_POLICY, TOPICS_A, TOPICS_B, write_jsonl


def test_the_async_verbs_run_the_whole_flow(tmp_path: Path, live_url: str) -> None:
    async def flow() -> None:
        async with (
            await AsyncParty.create(
                home=tmp_path / "alice", name="alice", url=live_url, unencrypted=True
            ) as alice,
            await AsyncParty.create(
                home=tmp_path / "bob", name="bob", url=live_url, unencrypted=True
            ) as bob,
        ):
            async with anyio.create_task_group() as tg:  # both publish at once
                got: dict[str, str] = {}

                async def publish(who: AsyncParty, topics: list[str]) -> None:
                    path = write_jsonl(tmp_path / f"{who.name}.jsonl", topics)
                    done = await who.publish(path, title=who.name, policy=AUTO_POLICY)
                    got[who.name] = done.dataset

                tg.start_soon(publish, alice, TOPICS_A)
                tg.start_soon(publish, bob, TOPICS_B)
            asked = await bob.request("topic-overlap", [got["alice"], got["bob"]])
            assert [v.request for v in await alice.inbox()] == [asked.request]
            for who in (alice, bob):
                approved = await who.auto_approve(allow_simulated=True)
                assert [a.action for a in approved] == ["approved"]
            final = await bob.wait(asked.request, timeout=90)
            assert final.status == "completed"
            fetched = await bob.result(asked.request, tmp_path / "out", allow_simulated=True)
            assert fetched.simulated
            assert fetched.report.checks

    anyio.run(flow)


def test_wait_times_out_and_cancels_on_the_event_loop(tmp_path: Path, coordinator_url: str) -> None:
    with Party.create(home=tmp_path / "a", name="a", url=coordinator_url, unencrypted=True) as a:
        mine = a.publish(write_jsonl(tmp_path / "a.jsonl", TOPICS_A), title="a")
        other = a.publish(write_jsonl(tmp_path / "b.jsonl", TOPICS_B), title="b")
        with pytest.raises(StatementFormatError, match="duplicate dataset"):
            a.request("topic-overlap", [mine.dataset, mine.dataset])
        pending = a.request("topic-overlap", [mine.dataset, other.dataset]).request

    async def waits() -> None:
        party = await AsyncParty.open(home=tmp_path / "a", url=coordinator_url)
        async with party:
            with pytest.raises(WaitTimeout, match="still pending"):
                await party.wait(pending, timeout=0.3, interval=0.05)
            started = time.monotonic()
            with anyio.move_on_after(0.2):
                await party.wait(pending, timeout=60, interval=5)
            assert time.monotonic() - started < 3

    anyio.run(waits)
