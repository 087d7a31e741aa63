"""A federated round over the coordinator's relay (HTTP) against the same round in-process.

    python -m bench.bench_relay [--quick | --smoke] [--clients 4] [--dimension 1000]

One round is one secure aggregation (what federated training runs per round:
``sealroom.protocols.fedavg`` sums each round's updates this way): a server and
``--clients`` clients, every message framed by the channel. Three transports:

- in-process: ``LocalNetwork`` queues (no crypto per message, no HTTP): the baseline;
- HTTP push: the real coordinator on loopback (uvicorn, SQLite), every message sealed to
  its recipient and signed, each reader waiting in one signed long-poll that the
  coordinator answers when its message is stored;
- HTTP poll: the same, but readers poll with backoff (how the relay worked before push).

Rounds run back to back on one session (round r uses round r's masks), so session setup is
not counted. Reported: the median round time of each, and the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sealroom.api.app import create_app
from sealroom.api.testing import run_in_thread
from sealroom.client.http import Client
from sealroom.client.relay import channel_for, join_session, open_session
from sealroom.computations import default_registry
from sealroom.crypto.keys import Identity
from sealroom.protocols.channel import Channel, LocalNetwork, run_local
from sealroom.protocols.secagg import (
    PROTOCOL,
    VERSION,
    SecAggParams,
    aggregate_as_server,
    contribute_as_client,
)

Vectors = dict[str, np.ndarray[Any, Any]]


def rounds(
    chans: dict[str, Channel], params: SecAggParams, vectors: Vectors, count: int
) -> list[float]:
    """``count`` rounds on ``chans`` (server "server"); each round's wall time."""
    expected = np.zeros(params.dimension, dtype=np.uint32)
    for v in vectors.values():
        expected += v
    times = []
    for r in range(count):
        fns: dict[str, Callable[[], object]] = {
            "server": lambda r=r: aggregate_as_server(
                chans["server"], params=params, round=r, timeout=60
            )
        }
        for u in params.clients:
            fns[u] = lambda u=u, r=r: contribute_as_client(
                chans[u], server="server", params=params, vector=vectors[u], round=r, timeout=60
            )
        t0 = time.perf_counter()
        out = run_local(fns, timeout=120)
        times.append(time.perf_counter() - t0)
        failed = [f"{p}: {v!r}" for p, v in out.items() if isinstance(v, BaseException)]
        if failed:
            raise SystemExit("round failed: " + "; ".join(failed))
        total = out["server"].sum  # type: ignore[union-attr]
        if not np.array_equal(total, expected):
            raise SystemExit("the secure sum differs from the plaintext sum")
    return times


def in_process(params: SecAggParams, vectors: Vectors, count: int) -> list[float]:
    names = ["server", *params.clients]
    net = LocalNetwork(names)
    session = os.urandom(16).hex()
    chans = {p: net.channel(p, protocol=PROTOCOL, version=VERSION, session=session) for p in names}
    return rounds(chans, params, vectors, count)


def over_http(
    url: str, params: SecAggParams, vectors: Vectors, count: int, *, push: bool
) -> list[float]:
    names = ["server", *params.clients]
    clients = {p: Client(base_url=url, identity=Identity.generate()) for p in names}
    for p, c in clients.items():
        c.register_party(f"bench-{p}-{os.urandom(3).hex()}")
    ids = {p: c.identity.party_id for p, c in clients.items() if c.identity is not None}
    mine = open_session(clients["server"], protocol=PROTOCOL, roles=[(p, ids[p]) for p in names])
    sessions = {"server": mine}
    for p in params.clients:
        sessions[p] = join_session(clients[p], protocol=PROTOCOL, session=mine.id)
    chans = {
        p: channel_for(clients[p], sessions[p], version=VERSION, timeout=60, push=push)
        for p in names
    }
    try:
        return rounds(chans, params, vectors, count)
    finally:
        for c in clients.values():
            c.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--smoke", action="store_true", help="once, at tiny sizes (CI)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--dimension", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    n, d = args.clients, args.dimension
    count = args.rounds or (3 if args.quick else 7)
    if args.smoke:
        n, d, count = 3, 10, 1
    names = tuple(f"c{i}" for i in range(n))
    params = SecAggParams(clients=names, threshold=n // 2 + 1, dimension=d)
    rng = np.random.default_rng(7)
    vectors = {u: rng.integers(0, 2**32, d, dtype=np.uint32) for u in names}

    local = in_process(params, vectors, count + 1)[1:]  # the first warms imports and caches
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        app = create_app(
            db_url=f"sqlite:///{Path(tmp) / 'coordinator.db'}",
            registry=default_registry(),
            keys_dir=Path(tmp) / "keys",
        )
        with run_in_thread(app) as url:
            push = over_http(url, params, vectors, count, push=True)
            poll = over_http(url, params, vectors, count, push=False)

    m_local, m_push, m_poll = (statistics.median(t) for t in (local, push, poll))
    print(
        f"federated round (secure aggregation): {n} clients + server, dimension {d}, "
        f"median of {count} rounds"
    )
    print(f"  in-process (LocalNetwork):        {m_local * 1000:9.1f} ms")
    print(f"  HTTP relay, push (long poll):     {m_push * 1000:9.1f} ms")
    print(f"  HTTP relay, poll with backoff:    {m_poll * 1000:9.1f} ms")
    print(f"  push / in-process: {m_push / m_local:.1f}x")
    print(f"  poll / push:       {m_poll / m_push:.2f}x")


if __name__ == "__main__":
    main()
