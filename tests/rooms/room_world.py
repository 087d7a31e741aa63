"""Three parties (a host and two members) on a real coordinator, each with a published
identifier list, for the room tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealroom.client import Party
from tests.services import coordinator

K = 10
OWNER_POLICY: dict[str, Any] = {
    "allow": [{"id": "intersection-overlap"}],
    "auto_approve": [{"id": "intersection-overlap"}],
    "k": K,
    "dp": {"epsilon_per_requester": "20", "epsilon_total": "20"},
}
DP_RUN = {"dp": {"epsilon": "1"}}
# Which identifiers each party holds (the overlap of a and b is 100..199).
IDS = {"host": range(0, 150), "alice": range(0, 200), "bob": range(100, 400)}


def now() -> int:
    return int(time.time())


def write_ids(path: Path, ids: range) -> Path:
    path.write_text("id,score\n" + "".join(f"{i},{i % 7}\n" for i in ids))
    return path


@dataclass
class RoomWorld:
    url: str
    tmp: Path
    parties: dict[str, Party]
    datasets: dict[str, str]

    def new_party(self, name: str) -> Party:
        party = Party.create(home=self.tmp / name, name=name, url=self.url, unencrypted=True)
        self.parties[name] = party
        return party


@contextmanager
def room_world(
    tmp_path: Path,
    names: tuple[str, ...] = ("host", "alice", "bob"),
    *,
    db_url: str | None = None,
) -> Iterator[RoomWorld]:
    """The parties ``names`` with published datasets, on a coordinator over ``db_url``
    (default: SQLite in ``tmp_path``)."""
    with coordinator(tmp_path, db_url=db_url) as url, ExitStack() as stack:
        world = RoomWorld(url=url, tmp=tmp_path, parties={}, datasets={})
        for name in names:
            party = stack.enter_context(world.new_party(name))
            published = party.publish(
                write_ids(tmp_path / f"{name}.csv", IDS[name]),
                title=f"{name} customers",
                policy=OWNER_POLICY,
            )
            world.datasets[name] = published.dataset
        yield world
        for extra in set(world.parties) - set(names):
            world.parties[extra].close()
