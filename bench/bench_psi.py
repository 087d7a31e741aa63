"""ECDH-PSI (cardinality) per core against openmined-psi and against the group's floor.

    python -m bench.bench_psi [--quick | --full | --smoke] [--repeat N]

``--quick`` runs 10^4 x 10^4 (one repeat), the default 10^5 x 10^5 (three),
``--full`` adds 10^6 x 10^6 (one repeat; many minutes). The sets overlap by half.

Measured in the same run, interleaved, so each sees the same machine load:

* **floor**: the group work the protocol cannot avoid, per element of one set,
  both parties together: 2 hash-to-group + 4 scalar multiplications
  (``hash_to_group`` and ``mul_many`` on one thread, over a sample of 20000);
* **openmined-psi**: ``private_set_intersection.python`` client and server in
  this process, cardinality only (``reveal_intersection=False``), RAW and GCS
  setups; the faster is the baseline. It runs on one core;
* **sealroom**: ``run_psi`` with every frame, check and shuffle, each party in
  its own process as in production (a pipe stands in for the relay), so both
  cores are busy; ``workers=2`` threads per party is the headline, ``workers=1``
  and (without ``--quick``) both parties as threads of one process, sharing one
  GIL, are shown for comparison.

"Per core" is set size / CPU seconds (every thread, both parties; a party's
process start-up is not counted, as it is paid once per client, not per run),
so a busy neighbour on this shared machine does not count against anyone. Wall
rates and the average number of busy cores are printed too. Targets: at least
openmined-psi's rate per core, and at least 1/1.5 of the floor's.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

import private_set_intersection.python as om

from bench._harness import Ratio
from sealroom.protocols.channel import Channel, LocalNetwork, run_local
from sealroom.protocols.group import GroupPool, hash_to_group, mul_many, random_scalar
from sealroom.protocols.psi import PROTOCOL, VERSION, PsiParams, PsiResult, run_psi

FLOOR_SAMPLE = 20_000
SMOKE_SIZE = 500


@dataclass(frozen=True)
class Cost:
    cpu: float
    wall: float


def measure(fn: Callable[[], object]) -> Cost:
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return Cost(time.process_time() - c0, time.perf_counter() - w0)


def median_cost(samples: list[Cost]) -> Cost:
    return Cost(
        statistics.median(s.cpu for s in samples), statistics.median(s.wall for s in samples)
    )


def sets(n: int) -> tuple[list[bytes], list[bytes]]:
    return (
        [f"user-{i:09d}@example.org".encode() for i in range(n)],
        [f"user-{i:09d}@example.org".encode() for i in range(n // 2, n + n // 2)],
    )


# --- the floor and the baseline --------------------------------------------------------------


def floor_per_element(n: int) -> Cost:
    """CPU and wall seconds for 2 hash-to-group + 4 scalar multiplications, per element."""
    sample = [os.urandom(24) for _ in range(min(n, FLOOR_SAMPLE))]
    scalar = random_scalar()
    points: list[bytes] = []

    def hashing() -> None:
        points[:] = hash_to_group(sample, domain=b"sealroom/bench/floor")

    h = measure(hashing)
    m = measure(lambda: mul_many(scalar, points))
    k = len(sample)
    return Cost((2 * h.cpu + 4 * m.cpu) / k, (2 * h.wall + 4 * m.wall) / k)


def floor_on_threads(n: int, workers: int) -> Cost:
    """The same work through ``GroupPool(workers)``: what threads cost and what they buy."""
    sample = [os.urandom(24) for _ in range(min(n, FLOOR_SAMPLE))]
    chunks = [sample[i : i + 8192] for i in range(0, len(sample), 8192)]
    scalar = random_scalar()
    masked: list[list[bytes]] = []
    with GroupPool(workers) as pool:

        def hash_mul() -> None:
            masked[:] = pool.hash_mul_chunks(scalar, chunks, domain=b"sealroom/bench/floor")

        hm = measure(hash_mul)
        m = measure(lambda: list(pool.mul_chunks(scalar, masked)))
    k = len(sample)
    return Cost((2 * hm.cpu + 2 * m.cpu) / k, (2 * hm.wall + 2 * m.wall) / k)


def run_openmined(a: list[str], b: list[str], expected: int, ds: om.DataStructure) -> None:
    client = om.client.CreateWithNewKey(False)
    server = om.server.CreateWithNewKey(False)
    setup = server.CreateSetupMessage(1e-9, len(a), b, ds)
    response = server.ProcessRequest(client.CreateRequest(a))
    got = client.GetIntersectionSize(setup, response)
    assert got == expected, (got, expected)


# --- sealroom, one process per party -------------------------------------------------------


class PipeTransport:
    """A channel transport over a pipe, buffered like the relay's mailbox: a reader
    thread drains the pipe, so both parties can send large lists at the same time."""

    def __init__(self, conn: Connection, peer: str) -> None:
        self._conn, self._peer = conn, peer
        self._inbox: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        try:
            while True:
                self._inbox.put(self._conn.recv_bytes())
        except (EOFError, OSError):
            return

    def send(self, recipient: str, data: bytes) -> None:
        self._conn.send_bytes(data)

    def receive(self, timeout: float) -> tuple[str, bytes] | None:
        try:
            return self._peer, self._inbox.get(timeout=timeout)
        except queue.Empty:
            return None


def _party(
    role: str, n: int, workers: int, session: str, conn: Connection, start: Any, out: Connection
) -> None:
    me, peer = ("alice", "bob") if role == "a" else ("bob", "alice")
    elements = sets(n)[0 if role == "a" else 1]
    channel = Channel(
        transport=PipeTransport(conn, peer),
        protocol=PROTOCOL,
        version=VERSION,
        session=session,
        me=me,
        peers=[peer],
    )
    params = PsiParams(mode="cardinality", max_set_size=n)
    start.wait()
    c0, w0 = time.process_time(), time.perf_counter()
    try:
        result = run_psi(channel, role=role, elements=elements, params=params, workers=workers)
    except Exception as exc:
        out.send(("error", repr(exc)))
        return
    out.send((time.process_time() - c0, time.perf_counter() - w0, result.intersection_size))


def run_ours_processes(n: int, expected: int, workers: int) -> Cost:
    ctx = multiprocessing.get_context("spawn")
    end_a, end_b = ctx.Pipe()
    start = ctx.Barrier(3)
    session = os.urandom(16).hex()
    outs, procs = [], []
    for role, end in (("a", end_a), ("b", end_b)):
        receive, send = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_party, args=(role, n, workers, session, end, start, send))
        p.start()
        outs.append(receive)
        procs.append(p)
    start.wait()
    results = [o.recv() for o in outs]
    for p in procs:
        p.join()
    for r in results:
        if r[0] == "error":
            raise RuntimeError(f"PSI run failed: {r[1]}")
        assert r[2] == expected
    return Cost(sum(r[0] for r in results), max(r[1] for r in results))


def run_ours_threads(a: list[bytes], b: list[bytes], expected: int, workers: int) -> None:
    net = LocalNetwork(["alice", "bob"])
    session = os.urandom(16).hex()
    params = PsiParams(mode="cardinality", max_set_size=max(len(a), len(b)))
    ca = net.channel("alice", protocol=PROTOCOL, version=VERSION, session=session)
    cb = net.channel("bob", protocol=PROTOCOL, version=VERSION, session=session)
    results = run_local(
        {
            "a": lambda: run_psi(ca, role="a", elements=a, params=params, workers=workers),
            "b": lambda: run_psi(cb, role="b", elements=b, params=params, workers=workers),
        },
        timeout=7200,
    )
    for r in results.values():
        if not isinstance(r, PsiResult):
            raise RuntimeError(f"PSI run failed: {r!r}")
        assert r.intersection_size == expected


# --- report ------------------------------------------------------------------------------


def bench(n: int, repeat: int, *, variants: bool, in_process: bool) -> None:
    a, b = sets(n)
    a_str, b_str = [x.decode() for x in a], [x.decode() for x in b]
    expected = n - n // 2
    floors: list[Cost] = []
    threaded: list[Cost] = []
    oms: dict[str, list[Cost]] = {"RAW": [], "GCS": []}
    headline = "sealroom, 2 processes, workers=2"
    ours: dict[str, list[Cost]] = {headline: []}
    if variants:
        ours["sealroom, 2 processes, workers=1"] = []
    if in_process:
        ours["sealroom, 1 process, workers=1"] = []
    for _ in range(repeat):
        floors.append(floor_per_element(n))
        threaded.append(floor_on_threads(n, 2))
        for name in oms:
            ds = getattr(om.DataStructure, name)
            oms[name].append(measure(partial(run_openmined, a_str, b_str, expected, ds)))
        for label in ours:
            workers = 2 if "workers=2" in label else 1
            if "2 processes" in label:
                ours[label].append(run_ours_processes(n, expected, workers))
            else:
                ours[label].append(measure(partial(run_ours_threads, a, b, expected, workers)))

    floor = median_cost(floors)
    om_costs = {k: median_cost(v) for k, v in oms.items()}
    om_best = min(om_costs, key=lambda k: om_costs[k].cpu)
    our_costs = {k: median_cost(v) for k, v in ours.items()}

    def row(label: str, cost: Cost, note: str = "") -> None:
        busy = cost.cpu / cost.wall if cost.wall else 0.0
        print(
            f"  {label:34s} {n / cost.cpu:6.0f} el/s per core  {n / cost.wall:6.0f} el/s wall"
            f"  {1e6 * cost.cpu / n:6.1f} us CPU/el  {busy:4.2f} cores busy{note}"
        )

    print(f"\n{n} x {n} elements (intersection {expected}), medians of {repeat}")
    row("floor: 2 hash + 4 mul, 1 thread", Cost(floor.cpu * n, floor.wall * n))
    on_two = median_cost(threaded)
    row("floor through GroupPool(2)", Cost(on_two.cpu * n, on_two.wall * n), "  (info)")
    for name, cost in om_costs.items():
        row(f"openmined-psi {name}, 1 thread", cost, "  (baseline)" if name == om_best else "")
    for label, cost in our_costs.items():
        row(label, cost)
    mine = n / our_costs[headline].cpu
    print(Ratio("per core, sealroom vs openmined-psi", mine, n / om_costs[om_best].cpu, 1.0).line())
    print(Ratio("per core, sealroom vs floor", mine, 1 / floor.cpu, target=1 / 1.5).line())
    wall = Ratio(
        "wall clock, sealroom (2 cores) vs openmined-psi (1 core)",
        n / our_costs[headline].wall,
        n / om_costs[om_best].wall,
    )
    print(wall.line())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="10^4 x 10^4 only")
    size.add_argument("--full", action="store_true", help="also 10^6 x 10^6 (minutes)")
    size.add_argument("--smoke", action="store_true", help="once, at tiny sizes (CI)")
    parser.add_argument("--repeat", type=int, help="runs per median (default: 1 quick, else 3)")
    args = parser.parse_args()
    repeat = args.repeat or (1 if args.quick else 3)
    print(f"cores: {os.cpu_count()}, load average (1 min) at start: {os.getloadavg()[0]:.2f}")
    if args.smoke:
        bench(SMOKE_SIZE, 1, variants=True, in_process=True)
        return
    if args.quick:
        bench(10_000, repeat, variants=True, in_process=False)
        return
    bench(100_000, repeat, variants=True, in_process=True)
    if args.full:
        bench(1_000_000, 1, variants=False, in_process=False)


if __name__ == "__main__":
    main()
