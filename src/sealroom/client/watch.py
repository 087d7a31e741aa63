"""An owner's unattended loop: approve by policy, upload, and tell a person about the rest.

Each round approves exactly what the party's dataset policies approve automatically (the
flows' ``auto_approve``, the same decision ``sealroom inbox --auto-approve`` takes and the
enclave re-checks) and sends every item a policy leaves to a person to the notifiers, once:
what was notified is kept in ``<home>/watch/notified.json`` (written atomically, 0600), so
a restart does not notify again, and an item whose notification failed is retried next
round. The file holds only items still waiting, so it never grows.

Notifiers are a small protocol: a webhook (an HTTP POST of the notice as JSON, with an
HMAC-SHA256 of the body in ``X-Sealroom-Signature`` when the owner gives a secret) and a
command hook (an argv run without a shell, the notice as JSON on stdin). A notice carries
what a person needs to decide: the request, the input, the requester, the computation, the
full parameters and the policy's reason.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from sealroom.client.party import Party
from sealroom.crypto.files import write_private
from sealroom.errors import BackendUnavailable, InvalidInput, SealroomError
from sealroom.statements.canonical import parse_json_strict

__all__ = [
    "CommandNotifier",
    "Notice",
    "Notifier",
    "Round",
    "WebhookNotifier",
    "watch",
    "watch_round",
]

NOTIFIED_FILE = Path("watch") / "notified.json"
NOTIFY_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    """One input of one request that waits for a person's decision."""

    request: str
    dataset: str
    requester: str
    computation: str
    parameters: dict[str, Any]
    reason: str
    decide_with: str

    def to_json(self) -> bytes:
        return json.dumps(
            {"type": "sealroom.watch.needs-person", **asdict(self)}, sort_keys=True
        ).encode()


class Notifier(Protocol):
    """Tells a person; raises :class:`SealroomError` when it could not."""

    def notify(self, notice: Notice) -> None: ...


@dataclass(frozen=True, slots=True)
class WebhookNotifier:
    """POST the notice as JSON to ``url``; signed with HMAC-SHA256 when ``secret`` is set."""

    url: str
    secret: bytes | None = None
    timeout: float = NOTIFY_TIMEOUT

    def __post_init__(self) -> None:
        parsed = httpx.URL(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise InvalidInput(f"webhook: not an http(s) URL: {self.url!r}")

    def notify(self, notice: Notice) -> None:
        body = notice.to_json()
        headers = {"Content-Type": "application/json"}
        if self.secret is not None:
            mac = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
            headers["X-Sealroom-Signature"] = f"sha256={mac}"
        try:
            response = httpx.post(self.url, content=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"webhook {self.url}: {type(exc).__name__}") from None
        if not response.is_success:
            raise BackendUnavailable(f"webhook {self.url} answered {response.status_code}")


@dataclass(frozen=True, slots=True)
class CommandNotifier:
    """Run ``argv`` (no shell) with the notice as JSON on stdin; a non-zero exit is a failure."""

    argv: tuple[str, ...]
    timeout: float = NOTIFY_TIMEOUT

    def __post_init__(self) -> None:
        if not self.argv or not self.argv[0]:
            raise InvalidInput("hook: an empty command")

    def notify(self, notice: Notice) -> None:
        try:
            done = subprocess.run(  # noqa: S603 (the owner's own command, no shell)
                list(self.argv),
                input=notice.to_json(),
                capture_output=True,
                timeout=self.timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BackendUnavailable(f"hook {self.argv[0]}: {type(exc).__name__}") from None
        if done.returncode != 0:
            raise BackendUnavailable(f"hook {self.argv[0]} exited with {done.returncode}")


@dataclass(frozen=True, slots=True)
class Round:
    """What one round did: approvals, notices sent, notices that failed (retried next round)."""

    approved: tuple[tuple[str, str], ...] = ()
    notified: tuple[Notice, ...] = ()
    failed: tuple[tuple[Notice, str], ...] = ()
    error: str | None = None
    simulated: bool = False


@dataclass(slots=True)
class _Notified:
    path: Path
    keys: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, home: Path) -> _Notified:
        path = home / NOTIFIED_FILE
        if not path.exists():
            return cls(path)
        value = parse_json_strict(path.read_bytes(), max_size=1 << 24, what="watch state")
        if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
            raise InvalidInput(f"{path}: not a list of notified items; remove it to start over")
        return cls(path, set(value))

    def save(self, keys: set[str]) -> None:
        if keys != self.keys:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_private(self.path, json.dumps(sorted(keys)).encode())
            self.keys = keys


def watch_round(
    party: Party, *, notifiers: Sequence[Notifier], allow_simulated: bool = False
) -> Round:
    """Approve by policy, then notify each item left for a person that was not notified yet."""
    state = _Notified.load(party.home)
    done = party.auto_approve(allow_simulated=allow_simulated)
    left = [a for a in done if a.action == "left"]
    # The inbox again only when something new needs a person (its parameters go in the notice).
    new = any(f"{a.request} {a.dataset}" not in state.keys for a in left)
    views = {v.request: v for v in party.inbox()} if new else {}
    waiting: set[str] = set()
    notified: list[Notice] = []
    failed: list[tuple[Notice, str]] = []
    for item in left:
        key = f"{item.request} {item.dataset}"
        waiting.add(key)
        view = views.get(item.request)
        if key in state.keys or view is None:
            continue
        notice = Notice(
            request=item.request,
            dataset=item.dataset,
            requester=view.requester,
            computation=f"{view.computation.id}@{view.computation.version}",
            parameters=dict(view.parameters),
            reason=item.reason,
            decide_with=f"sealroom approve {item.request} (or: sealroom reject {item.request})",
        )
        try:
            for notifier in notifiers:
                notifier.notify(notice)
        except SealroomError as exc:
            failed.append((notice, exc.detail or exc.public_message))
            continue
        notified.append(notice)
    # Keep what is still waiting and was told; forget what a person has since decided.
    state.save((state.keys & waiting) | {f"{n.request} {n.dataset}" for n in notified})
    return Round(
        approved=tuple((a.request, a.dataset) for a in done if a.action == "approved"),
        notified=tuple(notified),
        failed=tuple(failed),
        simulated=any(a.result is not None and a.result.simulated for a in done),
    )


def watch(
    party: Party,
    *,
    notifiers: Sequence[Notifier],
    stop: threading.Event,
    interval: float = 10.0,
    allow_simulated: bool = False,
    on_round: Callable[[Round], None] = lambda _: None,
) -> None:
    """Rounds every ``interval`` seconds until ``stop`` is set. A round that fails (the
    coordinator down, an enclave that does not verify) is reported and the loop goes on:
    nothing was approved by a failed round that a later one would not approve."""
    if interval <= 0:
        raise InvalidInput("interval must be positive")
    while not stop.is_set():
        try:
            result = watch_round(party, notifiers=notifiers, allow_simulated=allow_simulated)
        except SealroomError as exc:
            result = Round(error=exc.diagnostics())
        on_round(result)
        stop.wait(interval)
