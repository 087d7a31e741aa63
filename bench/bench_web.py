"""Public pages benchmark: explorer page loads against the API's own search, same data, same run.

    python -m bench.bench_web [--rows N] [--queries Q] [--quick | --smoke] [--db URL]

Builds N attestations with :mod:`bench.bench_discovery` (the storage layer, as publish
stores them) in a temporary SQLite file, serves the coordinator app with the public pages
mounted (as ``sealroom serve`` does) on loopback with uvicorn, and times whole HTTP
requests from one keep-alive client: each page kind against the API call that returns the
same data (``GET /datasets?q=`` against ``GET /v1/search?q=``, the card against
``GET /v1/datasets/{id}``), interleaved so both see the same machine load. Reports p50
and p95 of each and the page/API ratio of medians: what rendering HTML adds to the search.

Target: explorer page loads p95 under 200 ms at 100,000 attestations.

``--db sqlite:///path`` keeps the built database for the next run (building 100,000
attestations takes minutes); a database holding exactly ``--rows`` attestations is reused.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.bench_discovery import QUERY_TERMS, QUERY_WORDS, p95, prepare
from sealroom.api.app import create_app
from sealroom.api.testing import run_in_thread
from sealroom.computations.registry import Registry
from sealroom.web.public import install_public_pages

TARGET_P95_MS = 200.0


def _timed(client: httpx.Client, path: str) -> float:
    t0 = time.perf_counter()
    r = client.get(path)
    elapsed = time.perf_counter() - t0
    if r.status_code != 200:
        raise SystemExit(f"GET {path} answered {r.status_code}: {r.text[:200]}")
    return elapsed


def _pairs(
    client: httpx.Client, page: Callable[[int], str], api: Callable[[int], str], q: int
) -> tuple[list[float], list[float]]:
    """Time ``q`` page loads and ``q`` API calls, alternating, after one warm-up each."""
    _timed(client, page(0))
    _timed(client, api(0))
    pages, apis = [], []
    for k in range(q):
        pages.append(_timed(client, page(k)))
        apis.append(_timed(client, api(k)))
    return pages, apis


def run(tmp: Path, n: int, q: int, url: str | None = None) -> float:
    """Print the table; return the worst explorer p95 in seconds."""
    keys = None if url else tmp / "keys"  # a reused database keeps its log key beside it
    url = url or f"sqlite:///{tmp / 'bench.db'}"
    prepare(url, n)
    app = create_app(db_url=url, registry=Registry([]), keys_dir=keys)
    install_public_pages(app)
    with run_in_thread(app) as base, httpx.Client(base_url=base, timeout=60) as client:
        t0 = time.perf_counter()
        _timed(client, f"/v1/search?q={QUERY_WORDS[0]}")  # waits for the discovery index
        cold = time.perf_counter() - t0
        ids = [
            h["dataset"]["dataset"]
            for h in client.get("/v1/search", params={"q": QUERY_WORDS[1], "limit": 50}).json()[
                "items"
            ]
        ] or [""]
        kinds: dict[str, tuple[Callable[[int], str], Callable[[int], str]]] = {
            "explorer: text (1 word)": (
                lambda k: f"/datasets?q={QUERY_WORDS[k % 200]}",
                lambda k: f"/v1/search?q={QUERY_WORDS[k % 200]}",
            ),
            "explorer: text (2 words)": (
                lambda k: f"/datasets?q={QUERY_WORDS[k % 50]}+{QUERY_WORDS[(k * 7) % 400]}",
                lambda k: f"/v1/search?q={QUERY_WORDS[k % 50]}+{QUERY_WORDS[(k * 7) % 400]}",
            ),
            "explorer: keywords (2)": (
                lambda k: f"/datasets?keywords={QUERY_TERMS[k % 30]},{QUERY_TERMS[(k * 7) % 100]}",
                lambda k: (
                    f"/v1/search?keyword={QUERY_TERMS[k % 30]}&keyword={QUERY_TERMS[(k * 7) % 100]}"
                ),
            ),
            "explorer: text+filters": (
                lambda k: f"/datasets?q={QUERY_WORDS[k % 100]}&min_rows=10000&from=2020-01-01",
                lambda k: (
                    f"/v1/search?q={QUERY_WORDS[k % 100]}&min_rows=10000&from={1_577_836_800}"
                ),
            ),
            "explorer: newest (no query)": (lambda k: "/datasets", lambda k: "/v1/search"),
            "dataset card": (
                lambda k: f"/datasets/{ids[k % len(ids)]}",
                lambda k: f"/v1/datasets/{ids[k % len(ids)]}",
            ),
        }
        print(f"sqlite, {n} attestations, {q} loads per kind (HTTP, keep-alive, loopback)")
        print(f"first search (loads the discovery index): {cold * 1e3:.0f} ms")
        print(f"{'page kind':<30}{'page p50':>9}{'p95':>8}{'API p50':>9}{'p95':>8}{'x API':>7}  ms")
        worst = 0.0
        for name, (page, api) in kinds.items():
            pages, apis = _pairs(client, page, api, q)
            pm, am = statistics.median(pages), statistics.median(apis)
            if name.startswith("explorer"):
                worst = max(worst, p95(pages))
            print(
                f"{name:<30}{pm * 1e3:>9.1f}{p95(pages) * 1e3:>8.1f}{am * 1e3:>9.1f}"
                f"{p95(apis) * 1e3:>8.1f}{pm / am:>7.2f}"
            )
    verdict = "meets target" if worst * 1e3 < TARGET_P95_MS else "ABOVE TARGET"
    print(
        f"worst explorer p95 {worst * 1e3:.1f} ms at {n} attestations "
        f"(target < {TARGET_P95_MS:.0f} ms): {verdict}"
    )
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="10,000 rows, fewer loads")
    parser.add_argument("--smoke", action="store_true", help="once, at tiny sizes (CI)")
    parser.add_argument(
        "--db", help="database URL to build into, or reuse if it holds --rows attestations"
    )
    args = parser.parse_args()
    n, q = (10_000, 15) if args.quick else (args.rows, args.queries)
    if args.smoke:
        n, q = 300, 3
    with tempfile.TemporaryDirectory() as tmp:
        run(Path(tmp), n, q, args.db)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
