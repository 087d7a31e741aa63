"""Dataset commitment throughput against plain SHA-256 over the same bytes.

    python -m bench.bench_commit [--mib 256] [--smoke]

The commitment hashes every byte once (1 MiB leaves) plus one small node hash
per leaf, so it should run at SHA-256 speed; anything well below that is a
copy or per-piece overhead worth fixing.
"""

from __future__ import annotations

import argparse
import hashlib
import os

import pyarrow as pa

from bench._harness import Ratio, median_seconds, throughput_mib_s
from sealroom.crypto.commit import (
    CommitmentVerifier,
    canonical_bytes,
    commit_bytes_stream,
    commit_table,
)

PIECE = 64 * 1024  # what a socket or file reader typically hands over


def _table(nbytes: int) -> pa.Table:
    """Four int64 columns over random bytes, about ``nbytes`` of Arrow data in total."""
    rows = nbytes // (4 * 8)
    columns = {
        f"c{i}": pa.Array.from_buffers(pa.int64(), rows, [None, pa.py_buffer(os.urandom(rows * 8))])
        for i in range(4)
    }
    return pa.table(columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="once, at tiny sizes (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.mib, args.repeat = 2, 1
    size = args.mib << 20
    data = os.urandom(size)
    view = memoryview(data)
    commitment = commit_bytes_stream([data], rows=0)

    def sha256_whole() -> None:
        hashlib.sha256(data).digest()

    def commit_whole() -> None:
        commit_bytes_stream([data], rows=0)

    def verify_pieces() -> None:
        verifier = CommitmentVerifier(commitment)
        for i in range(0, size, PIECE):
            verifier.update(view[i : i + PIECE])
        verifier.finish()

    def sha256_pieces() -> None:
        h = hashlib.sha256()
        for i in range(0, size, PIECE):
            h.update(view[i : i + PIECE])
        h.digest()

    r = args.repeat
    base = throughput_mib_s(size, median_seconds(sha256_whole, repeat=r))
    whole = throughput_mib_s(size, median_seconds(commit_whole, repeat=r))
    pieces = throughput_mib_s(size, median_seconds(verify_pieces, repeat=r))
    base_pieces = throughput_mib_s(size, median_seconds(sha256_pieces, repeat=r))

    table = _table(size)
    canonical = canonical_bytes(table)

    def commit_from_table() -> None:
        commit_table(table)

    def sha256_canonical() -> None:
        hashlib.sha256(canonical).digest()

    table_base = throughput_mib_s(len(canonical), median_seconds(sha256_canonical, repeat=r))
    table_commit = throughput_mib_s(len(canonical), median_seconds(commit_from_table, repeat=r))

    print(f"data: {args.mib} MiB random bytes, medians of {r} runs")
    print(f"  hashlib.sha256, one call          {base:8.0f} MiB/s  (baseline)")
    print(f"  commit_bytes_stream, one piece    {whole:8.0f} MiB/s")
    print(f"  hashlib.sha256, 64 KiB updates    {base_pieces:8.0f} MiB/s")
    print(f"  CommitmentVerifier, 64 KiB pieces {pieces:8.0f} MiB/s")
    print(f"table: {len(canonical) >> 20} MiB canonical Arrow IPC (4 x int64)")
    print(f"  hashlib.sha256 of canonical bytes {table_base:8.0f} MiB/s")
    print(f"  commit_table (serialise + commit) {table_commit:8.0f} MiB/s")
    print(Ratio("commit_bytes_stream vs sha256", whole, base, target=0.8).line())
    print(Ratio("CommitmentVerifier (64 KiB pieces) vs sha256", pieces, base, target=0.8).line())
    print(Ratio("commit_table vs sha256 of its canonical bytes", table_commit, table_base).line())


if __name__ == "__main__":
    main()
