"""Secure aggregation: server time against a plaintext numpy sum of the same vectors.

    python -m bench.bench_secagg [--quick | --smoke] [--clients 100] [--dimension 100000]

Clients are simulated in one process with the pure round functions of
``sealroom.protocols.secagg`` (no transport, no serialisation), so the server
figure is its computation only: routing, summing the masked inputs,
reconstructing seeds and keys, expanding and removing masks. The baseline is
the fastest plaintext sum of the same ``uint32`` vectors (one accumulator,
``+=`` per vector), measured in the same run. Dropouts are the expensive kind:
the clients leave after ShareKeys, so the server must rebuild their pairwise
masks with every survivor. Target: server < 5x the plaintext sum at 0% dropouts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import numpy as np

from bench._harness import median_seconds
from sealroom.protocols.channel import LocalNetwork, run_local
from sealroom.protocols.secagg import (
    PROTOCOL,
    VERSION,
    SecAggClient,
    SecAggParams,
    SecAggServer,
    aggregate_as_server,
    contribute_as_client,
)

TARGET = 5.0


def one_run(
    params: SecAggParams, vectors: dict[str, np.ndarray[Any, Any]], drop: set[str]
) -> tuple[float, list[float], np.ndarray[Any, Any], tuple[str, ...]]:
    """One aggregation; (server seconds, per-client seconds, sum, survivors)."""
    ctx = os.urandom(32)
    client_time = dict.fromkeys(params.clients, 0.0)
    server_time = 0.0

    def timed_client(name: str, fn: Any, *args: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*args)
        client_time[name] += time.perf_counter() - t0
        return out

    clients = {}
    for u in params.clients:
        t0 = time.perf_counter()
        clients[u] = SecAggClient(params=params, me=u, vector=vectors[u], context=ctx)
        client_time[u] += time.perf_counter() - t0
    server = SecAggServer(params=params, context=ctx)
    ads = {u: timed_client(u, c.advertise) for u, c in clients.items()}
    t0 = time.perf_counter()
    roster = server.receive_advertisements(ads)
    server_time += time.perf_counter() - t0
    shares = {u: timed_client(u, c.share_keys, roster) for u, c in clients.items()}
    t0 = time.perf_counter()
    routed = server.route_shares(shares)
    server_time += time.perf_counter() - t0
    alive = [u for u in routed if u not in drop]
    u2 = list(routed)
    ys = {u: timed_client(u, clients[u].masked_input, u2, routed[u]) for u in alive}
    t0 = time.perf_counter()
    survivors = server.receive_masked_inputs(ys)
    server_time += time.perf_counter() - t0
    del ys
    responses = {u: timed_client(u, clients[u].unmask, survivors) for u in survivors}
    t0 = time.perf_counter()
    result = server.unmask(responses)
    server_time += time.perf_counter() - t0
    return server_time, [client_time[u] for u in alive], result.sum, result.survivors


def channel_run(clients: int, dimension: int) -> float:
    """Wall time of one run through the channel drivers (threads, framing, one process)."""
    names = tuple(f"c{i}" for i in range(clients))
    params = SecAggParams(clients=names, threshold=clients // 2 + 1, dimension=dimension)
    rng = np.random.default_rng(1)
    vecs = {u: rng.integers(0, 2**32, dimension, dtype=np.uint32) for u in names}
    net = LocalNetwork(["server", *names])
    session = os.urandom(16).hex()
    chans = {
        p: net.channel(p, protocol=PROTOCOL, version=VERSION, session=session)
        for p in ("server", *names)
    }
    fns: dict[str, Any] = {
        "server": lambda: aggregate_as_server(chans["server"], params=params, timeout=60)
    }
    for u in names:
        fns[u] = lambda u=u: contribute_as_client(
            chans[u], server="server", params=params, vector=vecs[u]
        )
    t0 = time.perf_counter()
    out = run_local(fns)
    elapsed = time.perf_counter() - t0
    expected = np.zeros(dimension, dtype=np.uint32)
    for v in vecs.values():
        expected += v
    assert np.array_equal(out["server"].sum, expected)  # type: ignore[union-attr]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20 clients x 10^4, fewer repeats")
    parser.add_argument("--clients", type=int, default=None)
    parser.add_argument("--dimension", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--smoke", action="store_true", help="once, at tiny sizes (CI)")
    args = parser.parse_args()
    n = args.clients or (20 if args.quick else 100)
    d = args.dimension or (10**4 if args.quick else 10**5)
    repeat = args.repeat or (3 if args.quick else 5)
    if args.smoke:
        n, d, repeat = 6, 100, 1
    names = tuple(f"c{i:03d}" for i in range(n))
    rng = np.random.default_rng(2024)
    vectors = {u: rng.integers(0, 2**32, d, dtype=np.uint32) for u in names}
    vec_list = list(vectors.values())

    def plaintext_sum() -> np.ndarray[Any, Any]:
        acc = vec_list[0].copy()
        for v in vec_list[1:]:
            acc += v
        return acc

    print(f"secure aggregation: {n} clients, dimension {d}, uint32, medians of {repeat} runs")
    print(f"  (PRG AES-128-CTR, Shamir over GF(2^256+297), threshold {n // 2 + 1})")
    for rate in (0.0, 0.3):
        k = round(n * rate)
        drop = set(names[1::3][:k])  # spread over the index order (mask signs differ)
        params = SecAggParams(clients=names, threshold=n // 2 + 1, dimension=d)
        servers: list[float] = []
        bases: list[float] = []
        per_client: list[float] = []
        for _ in range(repeat):
            s, cs, total, survivors = one_run(params, vectors, drop)
            expected = np.zeros(d, dtype=np.uint32)
            for u in survivors:
                expected += vectors[u]
            assert np.array_equal(total, expected), "secure sum differs from the plaintext sum"
            servers.append(s)
            per_client.append(statistics.median(cs))
            live = [vectors[u] for u in survivors]

            def live_sum(live: list[np.ndarray[Any, Any]] = live) -> None:
                acc = live[0].copy()
                for v in live[1:]:
                    acc += v

            bases.append(median_seconds(live_sum, repeat=9))
        server, base, client = (statistics.median(x) for x in (servers, bases, per_client))
        ratio = server / base
        verdict = ""
        if rate == 0 and n >= 100 and d >= 10**5:
            verdict = f"  (target < {TARGET:.0f}x: {'met' if ratio < TARGET else 'NOT MET'})"
        elif rate == 0:
            verdict = (
                "  (the < 5x target is for 100 clients x 10^5; small runs are fixed-cost bound)"
            )
        print(
            f"  dropout {rate:4.0%} ({len(drop):3d} after ShareKeys, t={params.threshold}): "
            f"server {server * 1e3:8.1f} ms = {ratio:6.2f}x plaintext sum "
            f"({base * 1e3:.2f} ms){verdict}"
        )
        print(f"  {'':14s} per-client median {client * 1e3:8.1f} ms")
    full = median_seconds(plaintext_sum, repeat=9)
    print(f"  plaintext sum of all {n} vectors: {full * 1e3:.2f} ms")
    small_n, small_d = (5, 1000) if args.quick or args.smoke else (10, 10**4)
    wall = channel_run(small_n, small_d)
    print(f"  channel drivers end to end ({small_n} clients x {small_d}, threads): {wall:.3f} s")


if __name__ == "__main__":
    main()
