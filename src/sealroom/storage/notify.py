"""Wake-ups for waiting requests: in-process, and across replicas through PostgreSQL.

A long-polling request (the relay's, :mod:`sealroom.coordinator.relay`) waits for
"something changed for key K" instead of asking the database again and again. A
wake-up carries no data and proves nothing: a woken waiter reads the database
again, and a missed or spurious wake-up costs latency, never correctness (every
wait is bounded and ends with a read).

- In one process, :meth:`Signals.wake` sets every watch on the key (threads and
  event loops alike).
- On PostgreSQL, :meth:`Signals.publish` adds ``pg_notify`` to the writer's
  transaction, so the notification goes out only if (and when) the write
  commits, to every replica on the database; each replica's listener thread
  (one dedicated connection running ``LISTEN``) turns it into a local wake-up.
  After (re)connecting, the listener wakes every watch, since notifications
  sent while it was away are lost.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from sqlalchemy import Connection, Engine, text

__all__ = ["APPLICATION_NAME", "CHANNEL", "Signals", "Watch"]

#: The PostgreSQL notification channel (database-wide; payloads are keys).
CHANNEL = "sealroom_wakeups"
#: The listener connection's application_name (visible in pg_stat_activity).
APPLICATION_NAME = "sealroom-wakeups"
#: PostgreSQL refuses payloads of 8000 bytes or more.
MAX_KEY = 4000

_log = logging.getLogger(__name__)


class Watch:
    """One waiter's interest in one key: cleared before each read, set by a wake-up."""

    __slots__ = ("_async", "_loop", "_sync", "key")

    def __init__(self, key: str) -> None:
        self.key = key
        self._sync = threading.Event()
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._async = asyncio.Event() if self._loop is not None else None

    def clear(self) -> None:
        """Forget earlier wake-ups; call before reading the state the key stands for."""
        self._sync.clear()
        if self._async is not None:
            self._async.clear()

    def fire(self) -> None:
        self._sync.set()
        if self._loop is not None and self._async is not None:
            with suppress(RuntimeError):  # the loop closed: nobody is waiting any more
                self._loop.call_soon_threadsafe(self._async.set)

    def wait(self, timeout: float) -> bool:
        """Block this thread until a wake-up or ``timeout`` seconds; True if woken."""
        return self._sync.wait(max(timeout, 0.0))

    async def wait_async(self, timeout: float) -> bool:
        """Wait on the event loop that created the watch; True if woken."""
        if self._async is None:
            raise RuntimeError("this watch was created outside an event loop")
        try:
            await asyncio.wait_for(self._async.wait(), max(timeout, 0.0))
        except TimeoutError:
            return False
        return True


class Signals:
    """Keyed wake-ups for one coordinator process (see the module docstring)."""

    __slots__ = ("_engine", "_listener", "_lock", "_ready", "_stop", "_watches")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._watches: dict[str, set[Watch]] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._listener: threading.Thread | None = None

    @property
    def fans_out(self) -> bool:
        """Whether wake-ups reach other replicas (PostgreSQL), not only this process."""
        return self._engine.dialect.name == "postgresql"

    @contextmanager
    def watch(self, key: str) -> Iterator[Watch]:
        """Register interest in ``key`` for the block (register first, then read: no lost
        wake-up between the read and the wait)."""
        w = Watch(key)
        with self._lock:
            self._watches.setdefault(key, set()).add(w)
        try:
            yield w
        finally:
            with self._lock:
                watches = self._watches.get(key)
                if watches is not None:
                    watches.discard(w)
                    if not watches:
                        del self._watches[key]

    def waiting(self) -> int:
        with self._lock:
            return sum(len(ws) for ws in self._watches.values())

    def wake(self, key: str) -> None:
        """Wake this process's watches on ``key``."""
        with self._lock:
            watches = list(self._watches.get(key, ()))
        for w in watches:
            w.fire()

    def wake_all(self) -> None:
        with self._lock:
            watches = [w for ws in self._watches.values() for w in ws]
        for w in watches:
            w.fire()

    def publish(self, conn: Connection, key: str) -> None:
        """Within the writer's transaction: notify every replica of ``key`` at commit
        (PostgreSQL); the caller also calls :meth:`wake` after the commit for this process."""
        if len(key.encode()) > MAX_KEY:
            raise ValueError("a wake-up key is at most 4000 bytes")
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_notify(:channel, :key)"), {"channel": CHANNEL, "key": key})

    # --- the PostgreSQL listener -----------------------------------------------------------

    def start(self) -> None:
        """Start listening for other replicas' notifications (PostgreSQL; no-op on SQLite)."""
        if not self.fans_out or self._listener is not None:
            return
        self._stop.clear()
        self._listener = threading.Thread(target=self._listen, name="wakeup-listener", daemon=True)
        self._listener.start()

    def wait_ready(self, timeout: float) -> bool:
        """Whether the listener is listening (True at once where there is none to wait for)."""
        return (not self.fans_out) or self._ready.wait(timeout)

    def close(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.join(5)
            self._listener = None
        self.wake_all()

    def _conninfo(self) -> str:
        url = self._engine.url.set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    def _listen(self) -> None:
        import psycopg

        backoff = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._conninfo(),
                    autocommit=True,
                    connect_timeout=5,
                    application_name=APPLICATION_NAME,
                ) as pg:
                    pg.execute(f"LISTEN {CHANNEL}")
                    backoff = 0.1
                    # Whatever was notified while this listener was away is lost: look again.
                    self.wake_all()
                    self._ready.set()
                    while not self._stop.is_set():
                        for note in pg.notifies(timeout=0.5):
                            self.wake(note.payload)
            except Exception as exc:  # any failure (driver, socket): reconnect after a pause
                self._ready.clear()
                # The URL may hold a password: the error's class only.
                _log.warning("wake-up listener lost its connection (%s)", type(exc).__name__)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
