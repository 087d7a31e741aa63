"""Transparency log benchmark: append throughput, proof generation time, proof sizes.

    python -m bench.bench_log [--leaves N] [--quick | --smoke] [--batch B] [--entry-bytes E]

Baselines, measured in the same run on the same machine:

* appends/s is compared with raw ``sqlite3`` inserts of the same leaf rows (index, SHA-256
  leaf hash, entry) into a plain table, same pragmas (WAL, synchronous=FULL), same batch
  transactions -- i.e. what the log costs over storing the entries without a tree and
  without SQLAlchemy;
* proof generation time is compared with reading one entry through the same log API
  (same engine, one read transaction, one primary-key lookup) -- i.e. what a proof costs
  over the cheapest possible read;
* proof verification time is compared with ceil(log2 n) bare SHA-256 calls over a 65-byte
  node input -- the hashing a verifier cannot avoid.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench._harness import Ratio, median_seconds
from sealroom.crypto.merkle import leaf_hash
from sealroom.transparency.log import TransparencyLog
from sealroom.transparency.proof import (
    ProofPlan,
    consistency_plan,
    inclusion_plan,
    verify_consistency,
    verify_inclusion,
)
from sealroom.transparency.sqlstore import SqlLogStore, sqlite_engine

PROOF_SIZES = (10**3, 10**4, 10**5, 10**6)


def make_batch(start: int, count: int, entry_bytes: int) -> list[bytes]:
    return [(b"entry-%012d-" % i).ljust(entry_bytes, b"x") for i in range(start, start + count)]


def fill_log(log: TransparencyLog, n: int, batch: int, entry_bytes: int) -> float:
    """Seconds spent inside append_many (entry generation excluded)."""
    spent = 0.0
    for start in range(0, n, batch):
        entries = make_batch(start, min(batch, n - start), entry_bytes)
        t0 = time.perf_counter()
        log.append_many(entries)
        spent += time.perf_counter() - t0
    return spent


def fill_raw(path: Path, n: int, batch: int, entry_bytes: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE leaves (idx INTEGER PRIMARY KEY, leaf_hash BLOB NOT NULL, entry BLOB NOT NULL)"
    )
    spent = 0.0
    for start in range(0, n, batch):
        entries = make_batch(start, min(batch, n - start), entry_bytes)
        t0 = time.perf_counter()
        rows = [(start + i, leaf_hash(e), e) for i, e in enumerate(entries)]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO leaves VALUES (?, ?, ?)", rows)
        conn.execute("COMMIT")
        spent += time.perf_counter() - t0
    conn.close()
    return spent


def sampled(fn: Callable[[int], object], choices: list[int], repeat: int) -> float:
    it = iter(choices * (repeat // len(choices) + 2))
    return median_seconds(lambda: fn(next(it)), repeat=repeat, warmup=3)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leaves", type=int, default=10**6)
    parser.add_argument("--quick", action="store_true", help="10**4 leaves")
    parser.add_argument("--batch", type=int, default=1000, help="entries per append_many")
    parser.add_argument("--entry-bytes", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=201, help="samples per median")
    parser.add_argument("--smoke", action="store_true", help="once, at tiny sizes (CI)")
    args = parser.parse_args(argv)
    n = 10**4 if args.quick else args.leaves
    if args.smoke:
        n, args.batch, args.repeat = 300, 50, 3
    rng = random.Random(1)

    with tempfile.TemporaryDirectory(prefix="sealroom-bench-") as tmp:
        engine = sqlite_engine(Path(tmp) / "log.db")
        store = SqlLogStore(engine)
        store.create_schema()
        log = TransparencyLog(store)

        print(
            f"leaves={n} batch={args.batch} entry_bytes={args.entry_bytes} (SQLite file, WAL, "
            "synchronous=FULL)"
        )
        log_s = fill_log(log, n, args.batch, args.entry_bytes)
        raw_s = fill_raw(Path(tmp) / "raw.db", n, args.batch, args.entry_bytes)
        log_rate, raw_rate = n / log_s, n / raw_s
        print(
            f"append: {log_rate:,.0f} entries/s via TransparencyLog.append_many "
            f"({log_s:.1f} s); raw sqlite3 inserts of the same leaf rows: {raw_rate:,.0f}/s"
        )
        print("  " + Ratio("log appends/s vs raw leaf inserts/s", log_rate, raw_rate).line())

        root = log.root_at(n)
        indices = [rng.randrange(n) for _ in range(64)]
        sizes1 = [rng.randrange(1, n) for _ in range(64)]
        incl_t = sampled(lambda i: log.inclusion_proof(i, n), indices, args.repeat)
        cons_t = sampled(lambda m: log.consistency_proof(m, n), sizes1, args.repeat)
        read_t = sampled(log.entry, indices, args.repeat)
        print(f"inclusion proof generation at n={n}: median {incl_t * 1e3:.3f} ms")
        print(f"consistency proof generation at n={n}: median {cons_t * 1e3:.3f} ms")
        print(f"single entry read (baseline): median {read_t * 1e3:.3f} ms")
        print("  " + Ratio("inclusion proof vs one entry read (time)", incl_t, read_t).line())
        print("  " + Ratio("consistency proof vs one entry read (time)", cons_t, read_t).line())

        # Verification, so the numbers above are known to be real proofs.
        i = indices[0]
        proof = log.inclusion_proof(i, n)
        lh = leaf_hash(log.entry(i))
        verify_inclusion(i, n, lh, proof, root)
        m = sizes1[0]
        cproof = log.consistency_proof(m, n)
        verify_consistency(m, n, cproof, log.root_at(m), root)
        k = math.ceil(math.log2(n))
        node_input = b"\x01" + bytes(64)

        def bare_hashes() -> None:
            for _ in range(k):
                hashlib.sha256(node_input).digest()

        verify_t = median_seconds(
            lambda: verify_inclusion(i, n, lh, proof, root), repeat=args.repeat, warmup=3
        )
        hash_t = median_seconds(bare_hashes, repeat=args.repeat, warmup=3)
        print(
            f"inclusion proof verification: median {verify_t * 1e6:.1f} us; "
            f"{k} bare SHA-256 calls: {hash_t * 1e6:.1f} us"
        )
        print("  " + Ratio(f"verification vs {k} bare SHA-256 (time)", verify_t, hash_t).line())

        print("proof sizes (hashes; max over 64 random indices / old sizes):")
        print(f"  {'n':>9} {'ceil(log2 n)':>13} {'inclusion':>10} {'consistency':>12}  source")
        for size in PROOF_SIZES:
            picks = [rng.randrange(size) for _ in range(64)]
            olds = [rng.randrange(1, size) for _ in range(64)]
            if size <= n:
                inc = max(len(log.inclusion_proof(x, size)) for x in picks)
                con = max(len(log.consistency_proof(x, size)) for x in olds)
                source = "stored log"
            else:
                # Larger than this run's log: the proof length is fixed by the plan.
                inc = max(len(_assembled(inclusion_plan(x, size))) for x in picks)
                con = max(len(_assembled(consistency_plan(x, size))) for x in olds)
                source = "proof plan only (log smaller than n)"
            bound = math.ceil(math.log2(size))
            print(f"  {size:>9} {bound:>13} {inc:>10} {con:>12}  {source}")
        engine.dispose()


def _assembled(plan: ProofPlan) -> list[bytes]:
    return plan.assemble([b"\x00" * 32] * len(plan.nodes))


if __name__ == "__main__":
    main()
