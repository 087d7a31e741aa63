"""Discovery benchmark: search latency over N published attestations.

    python -m bench.bench_discovery [--rows N] [--quick | --smoke] [--queries Q] [--db URL]

Without ``--db`` the database is a fresh SQLite file in a temporary directory.
With ``--db URL`` (an SQLite file or PostgreSQL) the benchmark uses that
database: an empty one is built first, one that already holds exactly N
attestations is reused (so repeated runs skip the build), anything else is
refused.

Rows are built through the storage layer exactly as publish stores them
(signed envelope in ``statements``, ``datasets``, keyword terms, full-text
entry), bulk-inserted in large transactions; the transparency log is left out
(search never reads it). Each query kind runs Q times with varied terms and
reports median and p95 latency of the whole discovery call (search plus the
dataset views of the page), and the ratio to a baseline measured in the same
run: fetching one dataset's view by id (a primary-key lookup). The first query of
a process loads the in-process discovery index; its time is reported apart.

To keep PostgreSQL runs apart from other data, point ``--db`` at a schema of
its own, e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dsr_bench_discovery``
after ``CREATE SCHEMA sr_bench_discovery`` (drop it when done).

Target: p95 under 50 ms at 100,000 attestations.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import itertools
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from sealroom.computations.registry import Registry
from sealroom.coordinator.keys import CoordinatorKeystore
from sealroom.coordinator.service import Coordinator
from sealroom.crypto.keys import Identity, b64encode
from sealroom.statements import (
    CommitmentRef,
    DatasetAttestation,
    DatasetProfile,
    Keyword,
    TimeRange,
    sign_statement,
)
from sealroom.storage.datasets import insert_datasets
from sealroom.storage.engine import create_engine, read_transaction, write_transaction
from sealroom.storage.migrate import upgrade
from sealroom.storage.schema import datasets, statements
from sealroom.storage.search import SearchQuery

T0 = 1_790_000_000
VOCAB = [f"term{i:04d}" for i in range(3000)]
WORDS = [f"word{i:04d}" for i in range(5000)]
TARGET_P95_MS = 50.0


_WEIGHTS: dict[int, list[float]] = {}


def _zipf_pick(rng: random.Random, items: list[str]) -> str:
    """Zipf (s = 1): a few very common terms, a long tail of rare ones, as in real text."""
    cum = _WEIGHTS.get(len(items))
    if cum is None:
        cum = list(itertools.accumulate(1.0 / (r + 1) for r in range(len(items))))
        _WEIGHTS[len(items)] = cum
    return items[bisect.bisect_left(cum, rng.random() * cum[-1])]


# Query terms: past the head of the distribution, where a search means something (a term in
# most documents is a stopword; see the report for what such queries cost).
QUERY_WORDS = WORDS[20:420]
QUERY_TERMS = VOCAB[5:205]


def make_attestation(i: int, owner: Identity, rng: random.Random) -> DatasetAttestation:
    terms = list(dict.fromkeys(_zipf_pick(rng, VOCAB) for _ in range(rng.randint(3, 25))))
    rows = rng.randint(10, 2_000_000)
    start = T0 - rng.randint(0, 10 * 365) * 86_400
    return DatasetAttestation.model_construct(
        owner=owner.party_id,
        title=" ".join(_zipf_pick(rng, WORDS) for _ in range(4)) + f" set {i}",
        description=" ".join(_zipf_pick(rng, WORDS) for _ in range(30)),
        keywords=tuple(Keyword(term=t, count=rng.randint(1, 500)) for t in terms),
        topics=tuple(_zipf_pick(rng, VOCAB) for _ in range(2)),
        schema_=(),
        row_count=rows,
        time_range=TimeRange(start=start, end=start + rng.randint(1, 400) * 86_400),
        profile=DatasetProfile(projects=None, active_days=None, primary_focus=None, expertise=()),
        commitment=CommitmentRef(
            format="arrow-ipc-stream/v1",
            root=b64encode(hashlib.sha256(b"%d" % i).digest()),
            length=rows * 10,
            rows=rows,
            chunk_size=1 << 20,
        ),
        policy=None,
        created_at=T0,
    )


def build(db_url: str, n: int, *, batch: int = 2000) -> None:
    engine = create_engine(db_url)
    upgrade(engine)
    rng = random.Random(7)
    owners = [Identity.from_private_bytes(bytes([k]) * 32, bytes([k]) * 32) for k in range(1, 101)]
    for start in range(0, n, batch):
        items = []
        stmt_rows = []
        for i in range(start, min(start + batch, n)):
            owner = owners[i % len(owners)]
            signed = sign_statement(make_attestation(i, owner, rng), owner)
            env = signed.envelope
            items.append((env.digest, signed.statement))
            stmt_rows.append(
                {
                    "digest": env.digest,
                    "type": env.type,
                    "signer": owner.party_id,
                    "envelope": env.to_json(),
                    "log_index": i,
                    "stored_at": T0,
                }
            )
        with write_transaction(engine) as conn:
            conn.execute(statements.insert(), stmt_rows)
            insert_datasets(conn, items, registered_at=T0)
    engine.dispose()


def latencies(fn: Callable[[int], object], count: int) -> list[float]:
    fn(0)
    out = []
    for k in range(count):
        t0 = time.perf_counter()
        fn(k)
        out.append(time.perf_counter() - t0)
    return out


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def _existing_rows(url: str) -> int:
    engine = create_engine(url)
    try:
        upgrade(engine)
        with read_transaction(engine) as conn:
            return int(conn.execute(select(func.count()).select_from(datasets)).scalar_one())
    finally:
        engine.dispose()


def prepare(url: str, n: int) -> None:
    """Build ``n`` attestations into ``url`` unless it already holds exactly that many."""
    have = _existing_rows(url)
    if have == n:
        print(f"reusing {n} attestations in {make_url(url).render_as_string()}")
        return
    if have:
        raise SystemExit(f"the database holds {have} attestations, not {n}: give an empty one")
    t0 = time.perf_counter()
    build(url, n)
    print(f"built {n} attestations in {time.perf_counter() - t0:.1f} s")


def _keystore(url: str) -> CoordinatorKeystore:
    """Beside an SQLite file; for PostgreSQL a directory named by the URL, so a reused
    database finds its log key again."""
    if make_url(url).get_backend_name() == "sqlite":
        return CoordinatorKeystore.beside(url)
    name = hashlib.sha256(url.encode()).hexdigest()[:16]
    return CoordinatorKeystore(directory=Path(tempfile.gettempdir()) / f"sealroom-bench-{name}")


def run(url: str, n: int, q: int) -> float:
    """Time every query kind on ``url``; print the table; return the worst p95 in seconds."""
    prepare(url, n)
    engine = create_engine(url)
    try:
        c = Coordinator.open(
            engine=engine,
            registry=Registry([]),
            keystore=_keystore(url),
            log_origin="bench.local/log",
        )
        return _measure(c, n, q, engine.dialect.name)
    finally:
        engine.dispose()


def _measure(c: Coordinator, n: int, q: int, dialect: str) -> float:
    t0 = time.perf_counter()
    c.datasets.search(SearchQuery(q=QUERY_WORDS[0], limit=1))  # loads the in-process index
    cold = time.perf_counter() - t0
    some = [c.datasets.search(SearchQuery(limit=100, q=QUERY_WORDS[k])).items for k in range(5)]
    ids = [item.dataset.dataset for page in some for item in page] or [""]
    deep = c.datasets.search(SearchQuery(limit=100))
    for _ in range(5):
        deep = c.datasets.search(SearchQuery(limit=100, cursor=deep.next_cursor))
    text_deep = c.datasets.search(SearchQuery(q=QUERY_WORDS[0], limit=20))
    for _ in range(5):
        if text_deep.next_cursor:
            text_deep = c.datasets.search(
                SearchQuery(q=QUERY_WORDS[0], limit=20, cursor=text_deep.next_cursor)
            )
    kinds: dict[str, Callable[[int], object]] = {
        "baseline: dataset by id": lambda k: c.datasets.get(ids[k % len(ids)]),
        "text (1 word)": lambda k: c.datasets.search(SearchQuery(q=QUERY_WORDS[k % 200])),
        "text (2 words)": lambda k: c.datasets.search(
            SearchQuery(q=f"{QUERY_WORDS[k % 50]} {QUERY_WORDS[(k * 7) % 400]}")
        ),
        "keyword filter (2)": lambda k: c.datasets.search(
            SearchQuery(keywords=(QUERY_TERMS[k % 30], QUERY_TERMS[(k * 7) % 100]))
        ),
        "similar_to": lambda k: c.datasets.search(SearchQuery(similar_to=ids[k % len(ids)])),
        "filters (rows+time)": lambda k: c.datasets.search(
            SearchQuery(min_rows=1000 * k, max_rows=500_000, time_from=T0 - 200 * 86_400)
        ),
        "text+filters": lambda k: c.datasets.search(
            SearchQuery(q=QUERY_WORDS[k % 100], min_rows=10_000, owner=None)
        ),
        "deep page (keyset)": lambda k: c.datasets.search(
            SearchQuery(limit=100, cursor=deep.next_cursor)
        ),
        "deep page (text)": lambda k: c.datasets.search(
            SearchQuery(q=QUERY_WORDS[0], limit=20, cursor=text_deep.next_cursor)
        ),
    }
    results = {name: latencies(fn, q) for name, fn in kinds.items()}
    base = statistics.median(results["baseline: dataset by id"])
    worst = 0.0
    print(f"{dialect}, {n} attestations, {q} queries per kind")
    print(f"first query (loads the discovery index): {cold * 1e3:.0f} ms")
    print(f"{'query kind':<26}{'median ms':>11}{'p95 ms':>9}{'x baseline':>12}")
    for name, samples in results.items():
        med, tail = statistics.median(samples), p95(samples)
        if not name.startswith("baseline"):
            worst = max(worst, tail)
        print(f"{name:<26}{med * 1e3:>11.2f}{tail * 1e3:>9.2f}{med / base:>12.1f}")
    verdict = "meets target" if worst * 1e3 < TARGET_P95_MS else "ABOVE TARGET"
    print(
        f"worst p95 {worst * 1e3:.1f} ms at {n} rows (target < {TARGET_P95_MS:.0f} ms): {verdict}"
    )
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="10,000 rows, fewer queries")
    parser.add_argument("--smoke", action="store_true", help="once, at tiny sizes (CI)")
    parser.add_argument(
        "--db",
        metavar="URL",
        help="database URL (sqlite:///path or postgresql+psycopg://...); "
        "default: a temporary SQLite file",
    )
    args = parser.parse_args()
    n, q = (10_000, 15) if args.quick else (args.rows, args.queries)
    if args.smoke:
        n, q = 300, 3
    if args.db:
        run(args.db, n, q)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{Path(tmp) / 'bench.db'}", n, q)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
