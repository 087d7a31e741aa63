"""The async twin of :class:`~sealroom.client.party.Party`, for agents on an event loop.

Every verb is the synchronous one run in a worker thread (``anyio.to_thread``): most of a
verb's time is CPU-bound (hashing and committing a file, sealing, verifying evidence and
proofs) or file I/O, which would block an event loop whatever the HTTP client, and one
implementation of the checks is safer than two. A party's calls run one at a time (its
keystore directory holds local state the verbs update); different parties run in parallel.
:meth:`AsyncParty.wait` polls on the event loop itself, so cancelling it stops at once.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import anyio
import anyio.to_thread

from sealroom.client import flows
from sealroom.client.errors import WaitTimeout
from sealroom.client.party import Party, PartyRooms
from sealroom.wire import RequestView

__all__ = ["AsyncParty", "AsyncPartyRooms"]

P = ParamSpec("P")
R = TypeVar("R")


def _in_thread(
    verb: Callable[Concatenate[Party, P], R],
) -> Callable[Concatenate[AsyncParty, P], Awaitable[R]]:
    async def run(self: AsyncParty, /, *args: P.args, **kwargs: P.kwargs) -> R:
        call = functools.partial(verb, self.party, *args, **kwargs)
        return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    run.__name__ = verb.__name__
    run.__qualname__ = f"AsyncParty.{verb.__name__}"
    run.__doc__ = verb.__doc__
    return run


def _room_verb(
    verb: Callable[Concatenate[PartyRooms, P], R],
) -> Callable[Concatenate[AsyncPartyRooms, P], Awaitable[R]]:
    async def run(self: AsyncPartyRooms, /, *args: P.args, **kwargs: P.kwargs) -> R:
        call = functools.partial(verb, self.owner.party.rooms, *args, **kwargs)
        return await anyio.to_thread.run_sync(call, limiter=self.owner._limiter)

    run.__name__ = verb.__name__
    run.__qualname__ = f"AsyncPartyRooms.{verb.__name__}"
    run.__doc__ = verb.__doc__
    return run


class AsyncParty:
    """One party's verbs as coroutines; open with :meth:`open` or :meth:`create`, use with
    ``async with``. ``party`` is the synchronous :class:`Party` underneath."""

    __slots__ = ("_limiter", "party")

    def __init__(self, party: Party) -> None:
        self.party = party
        self._limiter = anyio.CapacityLimiter(1)

    @classmethod
    async def open(cls, *, home: Path, **options: Any) -> AsyncParty:
        """The party whose keystore is in ``home`` (options as :meth:`Party.open`)."""
        return cls(
            await anyio.to_thread.run_sync(functools.partial(Party.open, home=home, **options))
        )

    @classmethod
    async def create(cls, *, home: Path, name: str, **options: Any) -> AsyncParty:
        """A new party with fresh keys in ``home`` (options as :meth:`Party.create`)."""
        make = functools.partial(Party.create, home=home, name=name, **options)
        return cls(await anyio.to_thread.run_sync(make))

    @property
    def party_id(self) -> str:
        return self.party.party_id

    @property
    def name(self) -> str:
        return self.party.name

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self.party.close, limiter=self._limiter)

    async def __aenter__(self) -> AsyncParty:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def rooms(self) -> AsyncPartyRooms:
        """The room verbs (:class:`~sealroom.client.party.PartyRooms`) as coroutines."""
        return AsyncPartyRooms(self)

    publish = _in_thread(Party.publish)
    search = _in_thread(Party.search)
    show = _in_thread(Party.show)
    withdraw_dataset = _in_thread(Party.withdraw_dataset)
    request = _in_thread(Party.request)
    keyword_overlap = _in_thread(Party.keyword_overlap)
    inbox = _in_thread(Party.inbox)
    auto_approve = _in_thread(Party.auto_approve)
    approve = _in_thread(Party.approve)
    reject = _in_thread(Party.reject)
    withdraw = _in_thread(Party.withdraw)
    status = _in_thread(Party.status)
    result = _in_thread(Party.result)
    psi = _in_thread(Party.psi)
    pjc = _in_thread(Party.pjc)
    train = _in_thread(Party.train)

    async def wait(
        self,
        request: str,
        *,
        timeout: float,
        until: Collection[str] = flows.TERMINAL,
        interval: float = 0.5,
        max_interval: float = 5.0,
    ) -> RequestView:
        """Poll until ``request`` reaches a status in ``until`` (or any final one); the sleeps
        are the event loop's, so cancelling the task stops the wait."""
        delay = interval
        last = "unknown"
        with anyio.move_on_after(timeout):
            while True:
                view = await self.status(request)
                if view.status in until or view.status in flows.TERMINAL:
                    return view
                last = view.status
                await anyio.sleep(delay)
                delay = min(delay * 1.5, max_interval)
        raise WaitTimeout(f"request {request} is still {last} after {timeout:g} s")


class AsyncPartyRooms:
    """:class:`~sealroom.client.party.PartyRooms` as coroutines, one call at a time per party."""

    __slots__ = ("owner",)

    def __init__(self, owner: AsyncParty) -> None:
        self.owner = owner

    create = _room_verb(PartyRooms.create)
    list = _room_verb(PartyRooms.list)
    show = _room_verb(PartyRooms.show)
    invite = _room_verb(PartyRooms.invite)
    precheck = _room_verb(PartyRooms.precheck)
    join = _room_verb(PartyRooms.join)
    consent = _room_verb(PartyRooms.consent)
    withdraw_consent = _room_verb(PartyRooms.withdraw_consent)
    run = _room_verb(PartyRooms.run)
    approve_run = _room_verb(PartyRooms.approve_run)
    add_member = _room_verb(PartyRooms.add_member)
    summary = _room_verb(PartyRooms.summary)
    pack = _room_verb(PartyRooms.pack)
