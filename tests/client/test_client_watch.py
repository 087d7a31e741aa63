"""The owner's daemon against a real coordinator and a simulated enclave: it approves what the
policy approves, and tells a person about the rest exactly once, through a real webhook server
and a real command."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sealroom.client import Party
from sealroom.client.watch import CommandNotifier, WebhookNotifier, watch, watch_round
from sealroom.errors import InvalidInput
from tests.client.client_world import AUTO_POLICY, TOPICS_A, TOPICS_B, write_jsonl

MANUAL_POLICY = {"allow": [{"id": "topic-overlap"}], "k": 3}
SECRET = b"webhook secret of the owner"


class Hooks:
    """A local webhook receiver: records bodies and signatures; can be told to fail."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, Any], str]] = []
        self.fail = False
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hooks.fail:
                    self.send_response(500)
                else:
                    hooks.received.append(
                        (json.loads(body), self.headers.get("X-Sealroom-Signature", ""))
                    )
                    hooks.raw = body
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.raw = b""
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sealroom"

    def __enter__(self) -> Hooks:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def world(tmp_path: Path, live_url: str) -> Iterator[tuple[Party, Party, str, str, str]]:
    with (
        Party.create(
            home=tmp_path / "alice", name="alice", url=live_url, unencrypted=True
        ) as alice,
        Party.create(home=tmp_path / "bob", name="bob", url=live_url, unencrypted=True) as bob,
    ):
        auto = alice.publish(
            write_jsonl(tmp_path / "a1.jsonl", TOPICS_A), title="A1", policy=AUTO_POLICY
        )
        manual = alice.publish(
            write_jsonl(tmp_path / "a2.jsonl", TOPICS_A), title="A2", policy=MANUAL_POLICY
        )
        theirs = bob.publish(
            write_jsonl(tmp_path / "b.jsonl", TOPICS_B), title="B", policy=AUTO_POLICY
        )
        yield alice, bob, auto.dataset, manual.dataset, theirs.dataset


def test_a_round_approves_by_policy_and_notifies_the_rest_once(
    world: tuple[Party, Party, str, str, str], tmp_path: Path
) -> None:
    alice, bob, auto, manual, theirs = world
    by_policy = bob.request("topic-overlap", [auto, theirs])
    needs_person = bob.request("topic-overlap", [manual, theirs])
    bob.auto_approve(allow_simulated=True)
    told = tmp_path / "told.jsonl"
    hook = CommandNotifier(
        (
            sys.executable,
            "-c",
            f"import sys; open({str(told)!r}, 'ab').write(sys.stdin.buffer.read() + b'\\n')",
        )
    )
    with Hooks() as hooks:
        notifiers = [WebhookNotifier(hooks.url, secret=SECRET), hook]
        first = watch_round(alice, notifiers=notifiers, allow_simulated=True)
        assert first.approved == ((by_policy.request, auto),)
        assert first.simulated is True
        assert [(n.request, n.dataset) for n in first.notified] == [(needs_person.request, manual)]
        body, signature = hooks.received[0]
        assert body["type"] == "sealroom.watch.needs-person"
        assert (body["request"], body["requester"]) == (needs_person.request, bob.party_id)
        assert body["parameters"] == needs_person.parameters
        assert body["decide_with"].startswith(f"sealroom approve {needs_person.request}")
        expected = hmac.new(SECRET, hooks.raw, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(signature, f"sha256={expected}")
        assert [json.loads(line)["request"] for line in told.read_text().splitlines()] == [
            needs_person.request
        ]

        # Nothing new: no second notice, also after a restart (the state is on disk, 0600).
        again = watch_round(alice, notifiers=notifiers, allow_simulated=True)
        assert (again.approved, again.notified) == ((), ())
        state = alice.home / "watch" / "notified.json"
        assert state.stat().st_mode & 0o777 == 0o600
        assert len(hooks.received) == 1
    assert bob.wait(by_policy.request, timeout=90).status == "completed"

    # A person decides; the item leaves the state file.
    alice.reject(needs_person.request, reason="not this one")
    watch_round(alice, notifiers=[], allow_simulated=True)
    assert json.loads(state.read_text()) == []


def test_a_failed_notification_is_retried_next_round(
    world: tuple[Party, Party, str, str, str],
) -> None:
    alice, bob, _, manual, theirs = world
    asked = bob.request("topic-overlap", [manual, theirs])
    with Hooks() as hooks:
        hooks.fail = True
        down = watch_round(alice, notifiers=[WebhookNotifier(hooks.url)], allow_simulated=True)
        assert down.notified == ()
        assert [(n.request, why) for n, why in down.failed] == [
            (asked.request, f"webhook {hooks.url} answered 500")
        ]
        hooks.fail = False
        up = watch_round(alice, notifiers=[WebhookNotifier(hooks.url)], allow_simulated=True)
        assert [n.request for n in up.notified] == [asked.request]


def test_the_loop_survives_a_failing_round_and_stops_when_told(
    world: tuple[Party, Party, str, str, str],
) -> None:
    alice, bob, auto, _, theirs = world
    bob.request("topic-overlap", [auto, theirs])
    rounds: list[Any] = []
    stop = threading.Event()

    def on_round(r: Any) -> None:
        rounds.append(r)
        if len(rounds) == 2:
            stop.set()

    # Without --allow-simulated the enclave does not verify: each round fails, the loop goes on.
    watch(alice, notifiers=[], stop=stop, interval=0.05, on_round=on_round)
    assert len(rounds) == 2
    assert all(r.error and "simulated" in r.error.lower() for r in rounds)
    assert all(r.approved == () for r in rounds)


def test_notifiers_refuse_what_they_cannot_run() -> None:
    with pytest.raises(InvalidInput, match="http"):
        WebhookNotifier("file:///etc/passwd")
    with pytest.raises(InvalidInput, match="empty"):
        CommandNotifier(())


def test_the_command_runs_one_round_with_a_hook(
    world: tuple[Party, Party, str, str, str], tmp_path: Path, live_url: str
) -> None:
    alice, bob, _, manual, theirs = world
    asked = bob.request("topic-overlap", [manual, theirs])
    told = tmp_path / "told.json"
    script = tmp_path / "hook.py"
    script.write_text(f"import sys; open({str(told)!r}, 'wb').write(sys.stdin.buffer.read())\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sealroom.cli",
            "watch",
            "--once",
            "--json",
            "--allow-simulated",
            "--home",
            str(alice.home),
            "--url",
            live_url,
            "--hook",
            f"{sys.executable} {script}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["notified"] == [{"request": asked.request, "dataset": manual}]
    assert json.loads(told.read_text())["parameters"] == asked.parameters
