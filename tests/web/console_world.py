"""Two parties, each with its own console, over a real coordinator and a real enclave worker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from sealroom.api.testing import run_in_thread
from sealroom.client import Party
from sealroom.web.console import ConsoleOptions, Sessions, create_console_app
from tests.client.client_world import AUTO_POLICY, TOPICS_A, TOPICS_B, write_jsonl
from tests.services import SIMULATION_ROOT, coordinator, running_enclave

# The owner decides by hand and keeps a DP budget (the console shows it as a meter).
OWNER_POLICY = {
    "allow": [{"id": "topic-overlap"}, {"id": "gap-analysis"}],
    "k": 3,
    "dp": {"epsilon_per_requester": "1", "epsilon_total": "4"},
}


@dataclass(frozen=True, slots=True)
class Console:
    party: Party
    url: str
    sessions: Sessions
    results: Path

    @property
    def launch_url(self) -> str:
        return f"{self.url}/launch?token={self.sessions.launch_token}"

    @contextmanager
    def browser_client(self) -> Iterator[httpx.Client]:
        """An HTTP client that opened the launch link (it holds the session cookie)."""
        with httpx.Client(base_url=self.url, timeout=60) as client:
            got = client.get(f"/launch?token={self.sessions.launch_token}")
            assert got.status_code == 303, got.text
            yield client

    def csrf(self, client: httpx.Client) -> str:
        return self.sessions.find(client.cookies.get(self.sessions.cookie)).csrf  # type: ignore[union-attr]


@dataclass(frozen=True, slots=True)
class World:
    coordinator: str
    requester: Console
    owner: Console
    mine: str  # the requester's dataset (its policy approves topic-overlap automatically)
    theirs: str  # the owner's dataset (approved by hand)


@contextmanager
def console(party: Party, results: Path, *, stream_seconds: float = 60) -> Iterator[Console]:
    sessions = Sessions()
    options = ConsoleOptions(
        results_dir=results,
        allow_simulated=True,
        simulation_root=SIMULATION_ROOT.public_key,
        poll_interval=0.2,
        stream_seconds=stream_seconds,
    )
    with run_in_thread(create_console_app(party, options=options, sessions=sessions)) as url:
        yield Console(party, url, sessions, results)


@contextmanager
def world(tmp_path: Path, *, enclave: bool = True, web: bool = False) -> Iterator[World]:
    """``web``: the coordinator also serves the public pages (explorer, log, verifier)."""
    with ExitStack() as stack:
        url = stack.enter_context(coordinator(tmp_path, web=web))
        if enclave:
            stack.enter_context(running_enclave(url))
        rhea = stack.enter_context(
            Party.create(home=tmp_path / "rhea", name="rhea", url=url, unencrypted=True)
        )
        otto = stack.enter_context(
            Party.create(home=tmp_path / "otto", name="otto", url=url, unencrypted=True)
        )
        mine = rhea.publish(
            write_jsonl(tmp_path / "rhea.jsonl", TOPICS_B),
            title="Rhea's support tickets",
            policy=AUTO_POLICY,
        )
        theirs = otto.publish(
            write_jsonl(tmp_path / "otto.jsonl", TOPICS_A),
            title="Otto's engineering notes",
            policy=OWNER_POLICY,
        )
        yield World(
            coordinator=url,
            requester=stack.enter_context(console(rhea, tmp_path / "rhea-results")),
            owner=stack.enter_context(console(otto, tmp_path / "otto-results")),
            mine=mine.dataset,
            theirs=theirs.dataset,
        )
