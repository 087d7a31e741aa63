"""One party's end of a protocol run: ordered, checked, abortable messaging.

A :class:`Channel` sits on a :class:`Transport` (in memory for tests and
benchmarks, the coordinator's relay in production; the relay seals and signs
every message, so the transport already says who sent it). The channel adds
what every protocol needs and no protocol should write itself:

* every incoming message must belong to this protocol, version and session,
  be addressed to this party, come from a known peer, carry the next sequence
  number of its (sender, recipient) stream (a lower one is a replay, a higher
  one is out of order), and be the kind the protocol expects next;
* any violation, a timeout, or an error inside :meth:`Channel.guard` sends an
  ``abort`` to every peer and raises :class:`~sealroom.errors.ProtocolError`,
  so a broken run ends on *all* sides, never with a wrong answer;
* each stream is hashed as it goes (``transcript()``), so the parties' signed
  receipts can show they saw the same messages.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol, TypeVar

from sealroom.errors import ProtocolError, SealroomError
from sealroom.protocols.wire import DEFAULT_MAX_FRAME, Frame

__all__ = [
    "ABORT",
    "Channel",
    "LocalNetwork",
    "Transport",
    "run_local",
]

ABORT = "abort"
DEFAULT_TIMEOUT = 120.0
T = TypeVar("T")


class Transport(Protocol):
    """Moves opaque bytes between the parties of one session."""

    def send(self, recipient: str, data: bytes) -> None: ...

    def receive(self, timeout: float) -> tuple[str, bytes] | None:
        """The next message for this party and its authenticated sender, or None on timeout."""
        ...


class Channel:
    def __init__(
        self,
        *,
        transport: Transport,
        protocol: str,
        version: int,
        session: str,
        me: str,
        peers: Sequence[str],
        max_frame: int = DEFAULT_MAX_FRAME,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if me in peers or len(set(peers)) != len(peers) or not peers:
            raise ProtocolError("a channel needs distinct peers other than itself")
        self.transport = transport
        self.protocol = protocol
        self.version = version
        self.session = session
        self.me = me
        self.peers = tuple(peers)
        self.max_frame = max_frame
        self.timeout = timeout
        self._next_out = dict.fromkeys(self.peers, 0)
        self._next_in = dict.fromkeys(self.peers, 0)
        self._pending: dict[str, deque[tuple[Frame, bytes]]] = {p: deque() for p in self.peers}
        self._hashes: dict[tuple[str, str], hashlib._Hash] = {}
        self._aborted = False

    # --- sending ----------------------------------------------------------------------

    def send(
        self,
        to: str,
        kind: str,
        *,
        fields: Mapping[str, Any] | None = None,
        blobs: Mapping[str, bytes] | None = None,
    ) -> None:
        if to not in self._next_out:
            raise ProtocolError(f"{to!r} is not a peer in this session")
        if self._aborted:
            raise ProtocolError("this run has been aborted")
        frame = Frame(
            protocol=self.protocol,
            version=self.version,
            session=self.session,
            kind=kind,
            seq=self._next_out[to],
            sender=self.me,
            recipient=to,
            fields=dict(fields or {}),
            blobs=dict(blobs or {}),
        )
        data = frame.encode()
        if len(data) > self.max_frame:
            raise ProtocolError(f"{kind} to {to} is {len(data)} bytes, over {self.max_frame}")
        self._next_out[to] += 1
        self._record(self.me, to, data)
        self.transport.send(to, data)

    def fail(self, reason: str) -> NoReturn:
        """Tell every peer the run is over, then raise."""
        self._abort(reason)
        raise ProtocolError(reason)

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Run protocol code; any error aborts the run for every peer and surfaces as ProtocolError."""
        try:
            yield
        except ProtocolError as exc:
            self._abort(exc.detail or exc.public_message)
            raise
        except SealroomError as exc:
            self._abort(exc.public_message)
            raise ProtocolError(f"{exc.public_message}: {exc.detail}") from exc
        except Exception as exc:
            self._abort("internal error")
            raise ProtocolError(f"internal error: {type(exc).__name__}") from exc

    def _abort(self, reason: str) -> None:
        if self._aborted:
            return
        self._aborted = True
        for peer in self.peers:
            try:
                frame = Frame(
                    protocol=self.protocol,
                    version=self.version,
                    session=self.session,
                    kind=ABORT,
                    seq=self._next_out[peer],
                    sender=self.me,
                    recipient=peer,
                    fields={"reason": reason[:500]},
                )
                self.transport.send(peer, frame.encode())
            except Exception:  # noqa: S112 - best effort: the peer may be gone already
                continue

    # --- receiving --------------------------------------------------------------------

    def expect(self, sender: str, kind: str, *, timeout: float | None = None) -> Frame:
        """The next message from ``sender``; it must be ``kind``."""
        if sender not in self._pending:
            raise ProtocolError(f"{sender!r} is not a peer in this session")
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self._pending[sender]:
            self._pull(deadline, waiting_for=f"{kind} from {sender}")
        return self._take(sender, kind)

    def collect(self, senders: Sequence[str], kind: str, *, timeout: float) -> dict[str, Frame]:
        """The next ``kind`` message from each sender that answers within ``timeout``.

        For rounds where peers may drop out: a sender that has not answered by
        then is simply missing from the result.
        """
        for s in senders:
            if s not in self._pending:
                raise ProtocolError(f"{s!r} is not a peer in this session")
        deadline = time.monotonic() + timeout
        got: dict[str, Frame] = {}
        while True:
            for s in senders:
                if s not in got and self._pending[s]:
                    got[s] = self._take(s, kind)
            if len(got) == len(senders):
                return got
            if not self._pull(deadline, waiting_for=None):
                return got

    def _take(self, sender: str, kind: str) -> Frame:
        frame, data = self._pending[sender].popleft()
        if frame.kind != kind:
            self.fail(f"expected {kind} from {sender}, got {frame.kind}")
        # Recorded when consumed, not when buffered, so a transcript never includes
        # messages the protocol has not reached yet.
        self._record(sender, self.me, data)
        return frame

    def _pull(self, deadline: float, *, waiting_for: str | None) -> bool:
        remaining = deadline - time.monotonic()
        got = self.transport.receive(max(remaining, 0.0)) if remaining > 0 else None
        if got is None:
            if waiting_for is None:
                return False
            self.fail(f"timed out waiting for {waiting_for}")
        origin, data = got
        if origin not in self._next_in:
            self.fail(f"message from {origin!r}, who is not a peer in this session")
        try:
            frame = Frame.decode(data, max_size=self.max_frame)
        except ProtocolError as exc:
            self.fail(f"malformed message from {origin}: {exc.detail}")
        self._check(origin, frame)
        if frame.kind == ABORT:
            self._abort("a peer aborted")
            reason = frame.fields.get("reason")
            raise ProtocolError(f"{origin} aborted the run: {str(reason)[:500]}")
        self._pending[origin].append((frame, data))
        return True

    def _check(self, origin: str, frame: Frame) -> None:
        if frame.sender != origin:
            self.fail(f"message from {origin} claims to be from {frame.sender}")
        if frame.protocol != self.protocol or frame.version != self.version:
            self.fail(
                f"message from {origin} is {frame.protocol} v{frame.version}, "
                f"expected {self.protocol} v{self.version}"
            )
        if frame.session != self.session:
            self.fail(f"message from {origin} belongs to another session")
        if frame.recipient != self.me:
            self.fail(f"message from {origin} is addressed to {frame.recipient}")
        expected = self._next_in[origin]
        if frame.seq != expected:
            problem = "a replayed" if frame.seq < expected else "an out-of-order"
            self.fail(f"{problem} message from {origin} (seq {frame.seq}, expected {expected})")
        self._next_in[origin] = expected + 1

    # --- transcript -------------------------------------------------------------------

    def _record(self, sender: str, recipient: str, data: bytes) -> None:
        h = self._hashes.get((sender, recipient))
        if h is None:
            h = self._hashes[(sender, recipient)] = hashlib.sha256(b"sealroom-stream-v1\0")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)

    def transcript(self) -> dict[tuple[str, str], str]:
        """SHA-256 of each (sender, recipient) stream this party took part in, so far."""
        return {k: "sha256:" + h.hexdigest() for k, h in sorted(self._hashes.items())}


# --- in-memory transport --------------------------------------------------------------


Intercept = Callable[[str, str, bytes], Sequence[bytes]]


@dataclass
class LocalNetwork:
    """Queues between parties of one process: for tests, benchmarks and the demo.

    ``intercept(sender, recipient, data)`` may return the messages actually
    delivered (none to drop, two to replay, changed bytes to tamper).
    """

    parties: Sequence[str]
    intercept: Intercept | None = None
    _queues: dict[str, queue.Queue[tuple[str, bytes]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._queues = {p: queue.Queue() for p in self.parties}

    def transport(self, me: str) -> Transport:
        return _LocalTransport(self, me)

    def channel(self, me: str, *, protocol: str, version: int, session: str, **kw: Any) -> Channel:
        return Channel(
            transport=self.transport(me),
            protocol=protocol,
            version=version,
            session=session,
            me=me,
            peers=[p for p in self.parties if p != me],
            **kw,
        )

    def _deliver(self, sender: str, recipient: str, data: bytes) -> None:
        out = self.intercept(sender, recipient, data) if self.intercept else (data,)
        for d in out:
            self._queues[recipient].put((sender, d))


@dataclass
class _LocalTransport:
    network: LocalNetwork
    me: str

    def send(self, recipient: str, data: bytes) -> None:
        if recipient not in self.network._queues:
            raise ProtocolError(f"no party {recipient!r} on this network")
        self.network._deliver(self.me, recipient, data)

    def receive(self, timeout: float) -> tuple[str, bytes] | None:
        try:
            return self.network._queues[self.me].get(timeout=timeout)
        except queue.Empty:
            return None


def run_local(
    parties: Mapping[str, Callable[[], T]], *, timeout: float = 600.0
) -> dict[str, T | BaseException]:
    """Run each party's function in its own thread; its result, or the exception it raised."""
    results: dict[str, T | BaseException] = {}
    lock = threading.Lock()

    def run(name: str, fn: Callable[[], T]) -> None:
        try:
            value: T | BaseException = fn()
        except BaseException as exc:  # handed back to the caller
            value = exc
        with lock:
            results[name] = value

    threads = [
        threading.Thread(target=run, args=(n, f), name=f"party-{n}", daemon=True)
        for n, f in parties.items()
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        if t.is_alive():
            raise ProtocolError(f"{t.name} did not finish within {timeout} s")
    return results
