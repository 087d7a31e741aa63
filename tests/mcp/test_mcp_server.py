"""The MCP server with a real MCP client session, a real coordinator and a simulated enclave.

The requester's agent talks to ``sealroom mcp`` over stdio (a subprocess, as an MCP host
starts it) and over streamable HTTP; the owner's side runs the same server in-process.
What is asserted is the trust boundary: the agent does what the party's policies decide
and nothing a person must decide.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from mcp import Client, StdioServerParameters
from sealroom.attestation.simulated import SIMULATED_BANNER
from sealroom.client import Party
from sealroom.mcp import AgentLimits, build_server
from sealroom.statements.canonical import canonical_json
from tests.client.client_world import AUTO_POLICY, TOPICS_A, TOPICS_B, write_jsonl

MANUAL_POLICY = {"allow": [{"id": "topic-overlap"}], "k": 3}

TOOLS = {
    "whoami",
    "computations",
    "search",
    "show_card",
    "preview_card_for_file",
    "publish",
    "request",
    "inbox",
    "approve_within_policy",
    "reject",
    "withdraw",
    "status",
    "wait",
    "result",
    "verify",
    "budget",
    "psi",
    "pjc",
    "rooms",
    "room",
}


README = Path(__file__).resolve().parents[2] / "README.md"


def _stdio(home: Path, url: str, *extra: str) -> StdioServerParameters:
    """The host configuration README.md shows, with this test's keystore and coordinator."""
    block = re.search(r"## For agents \(MCP\).*?```json\n(.*?)```", README.read_text(), re.S)
    assert block is not None, "README.md shows an MCP host configuration"
    server = json.loads(block.group(1))["mcpServers"]["sealroom"]
    args = [
        {"~/.sealroom-alice": str(home), "http://127.0.0.1:8470": url}.get(a, a)
        for a in server["args"]
    ]
    assert args[0] == "mcp"
    assert str(home) in args
    assert url in args
    command = shutil.which(server["command"], path=str(Path(sys.executable).parent))
    assert command is not None
    return StdioServerParameters(command=command, args=[*args, *extra], env=dict(os.environ))


async def _call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    got = await client.call_tool(tool, args)
    assert not got.is_error, got.content
    assert isinstance(got.structured_content, dict)
    return got.structured_content


async def _refused(client: Client, tool: str, **args: Any) -> str:
    got = await client.call_tool(tool, args)
    assert got.is_error
    return " ".join(getattr(c, "text", "") for c in got.content)


def test_an_agent_runs_the_requesters_flow_and_the_owners_policy_decides(
    tmp_path: Path, live_url: str
) -> None:
    with (
        Party.create(
            home=tmp_path / "alice", name="alice", url=live_url, unencrypted=True
        ) as alice,
        Party.create(home=tmp_path / "bob", name="bob", url=live_url, unencrypted=True) as bob,
    ):
        notes = alice.publish(
            write_jsonl(tmp_path / "a.jsonl", TOPICS_A), title="Alice's TEE log", policy=AUTO_POLICY
        )
        mine = bob.publish(
            write_jsonl(tmp_path / "b.jsonl", TOPICS_B), title="Bob's log", policy=MANUAL_POLICY
        )
        alice_agent = build_server(
            alice, limits=AgentLimits(results_dir=tmp_path / "alice-results", allow_simulated=True)
        )

        async def session() -> None:
            async with Client(_stdio(bob.home, live_url, "--allow-simulated")) as agent:
                tools = {t.name for t in (await agent.list_tools()).tools}
                assert tools == TOOLS
                me = await _call(agent, "whoami")
                assert (me["party_id"], me["name"], me["allow_publish"]) == (
                    bob.party_id,
                    "bob",
                    False,
                )
                found = await _call(agent, "search", query="attestation")
                assert notes.dataset in {d["dataset"]["dataset"] for d in found["datasets"]}
                card = await _call(agent, "show_card", dataset=notes.dataset)
                assert (card["title"], card["owner"]) == ("Alice's TEE log", alice.party_id)

                # Publishing signs a public card in bob's name: not without the person's flag.
                why = await _refused(
                    agent, "publish", path=str(tmp_path / "b.jsonl"), title="again"
                )
                assert "agent-publish" in why

                asked = await _call(
                    agent,
                    "request",
                    computation="topic-overlap",
                    datasets=[notes.dataset, mine.dataset],
                )
                req = asked["request"]
                assert asked["status"] == "pending"

                # Bob's own input: his policy leaves it to a person, so his agent cannot approve.
                mine_left = await _call(agent, "approve_within_policy")
                assert [(i["dataset"], i["action"]) for i in mine_left["items"]] == [
                    (mine.dataset, "left")
                ]
                assert mine_left["items"][0]["needs_person"].startswith(f"sealroom approve {req}")

                # Alice's agent approves by her policy, in-process.
                async with Client(alice_agent) as owner:
                    inbox = await _call(owner, "inbox")
                    assert [r["request"] for r in inbox["requests"]] == [req]
                    assert inbox["requests"][0]["parameters"] == asked["parameters"]
                    done = await _call(owner, "approve_within_policy")
                    assert [(i["dataset"], i["action"]) for i in done["items"]] == [
                        (notes.dataset, "approved")
                    ]
                    assert done["simulated"] is True

                # The person behind bob approves by hand (outside any agent).
                await anyio.to_thread.run_sync(
                    lambda: bob.approve(req, allow_simulated=True, reason="fine")
                )
                final = await _call(agent, "wait", request=req, timeout_seconds=90)
                assert final["status"] == "completed"
                got = await _call(agent, "result", request=req)
                assert got["verified"] is True
                assert (got["simulated"], got["warning"]) == (True, SIMULATED_BANNER)
                assert {c["name"] for c in got["verification"]["checks"]} >= {"TEE evidence"}

                receipt = await agent.read_resource(f"sealroom://receipts/{req}")
                bundle_text = receipt.contents[0].text  # type: ignore[union-attr]
                assert json.loads(bundle_text) == json.loads(Path(got["bundle_path"]).read_text())
                checked = await _call(agent, "verify", bundle_path=got["bundle_path"])
                assert checked["verified"] is True

                tampered = tmp_path / "tampered.json"
                bundle = json.loads(bundle_text)
                sig = bundle["receipt"]["signature"]  # the enclave's signature, altered
                bundle["receipt"]["signature"] = ("B" if sig[0] == "A" else "A") + sig[1:]
                tampered.write_bytes(canonical_json(bundle))
                why = await _refused(agent, "verify", bundle_path=str(tampered))
                assert "did not verify" in why

                for bad in ({"request": "../../etc"}, {"request": "sha256:" + "0" * 64}):
                    await _refused(agent, "status", **bad)
                await _refused(agent, "wait", request=req, timeout_seconds=3600)

        anyio.run(session)


def test_without_allow_simulated_the_agent_seals_nothing_to_a_simulated_enclave(
    tmp_path: Path, live_url: str
) -> None:
    with (
        Party.create(
            home=tmp_path / "alice", name="alice", url=live_url, unencrypted=True
        ) as alice,
        Party.create(home=tmp_path / "bob", name="bob", url=live_url, unencrypted=True) as bob,
    ):
        notes = alice.publish(
            write_jsonl(tmp_path / "a.jsonl", TOPICS_A), title="A", policy=AUTO_POLICY
        )
        log = bob.publish(write_jsonl(tmp_path / "b.jsonl", TOPICS_B), title="B")
        bob.request("topic-overlap", [notes.dataset, log.dataset])
        agent_server = build_server(alice, limits=AgentLimits(results_dir=tmp_path / "r"))

        async def session() -> None:
            async with Client(agent_server) as agent:
                why = await _refused(agent, "approve_within_policy")
                assert "simulated" in why.lower()

        anyio.run(session)
        assert [i.inputs[0].decision for i in alice.inbox()] == ["pending"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _http_server(home: Path, url: str, port: int) -> Iterator[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sealroom.cli",
            "mcp",
            "--home",
            str(home),
            "--url",
            url,
            "--transport",
            "http",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    endpoint = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        proc.stderr.read().decode() if proc.stderr else ""
                    ) from None
                time.sleep(0.2)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)


def test_streamable_http_serves_the_same_tools(tmp_path: Path, coordinator_url: str) -> None:
    with Party.create(
        home=tmp_path / "carol", name="carol", url=coordinator_url, unencrypted=True
    ) as carol:
        home = carol.home
        party_id = carol.party_id
    with _http_server(home, coordinator_url, _free_port()) as endpoint:

        async def session() -> None:
            async with Client(endpoint) as agent:
                assert {t.name for t in (await agent.list_tools()).tools} == TOOLS
                me = await _call(agent, "whoami")
                assert me["party_id"] == party_id

        anyio.run(session)


def test_the_command_names_the_extra_and_refuses_bad_transports(tmp_path: Path) -> None:
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "sealroom.cli",
            "mcp",
            "--home",
            str(tmp_path),
            "--transport",
            "sse",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0
    assert "stdio or http" in bad.stderr
    pytest.importorskip("mcp")
