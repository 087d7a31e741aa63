"""Peak memory and speed of reading a CSV source, against reading the same file with pyarrow.

    python -m bench.bench_sources [--mib 8 --mib 32 --mib 128] [--smoke]

Each read runs in a fresh process, so a peak is that read's alone: the growth of
the peak resident set over the process's size after imports (``ru_maxrss``), and
the Arrow memory pool's peak. The baseline, ``pyarrow.csv.read_csv`` on the same
bytes, is the floor for building the same table with pyarrow; sealroom's reader is
stricter (Python's ``csv`` module, line-numbered errors, type rules of its own), so
the claim is the ratio of peaks, per input size, in the same run.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROW_BYTES = 110  # about what one generated row takes


def _write_csv(path: Path, mib: float) -> int:
    rnd = random.Random(13)
    words = ["attestation", "enclave", "kernel", "builds", "tls", "secrets", "drivers", "notes"]
    rows = max(1, int(mib * (1 << 20) / ROW_BYTES))
    with path.open("w", encoding="utf-8") as f:
        f.write("ts,project,n,x,ok,text\n")
        for i in range(rows):
            text = " ".join(rnd.choice(words) for _ in range(6))
            f.write(
                f"2026-01-{1 + i % 28:02d}T{i % 24:02d}:00:00Z,p{i % 50},{i},{i / 7:.4f},"
                f'{"true" if i % 2 else "false"},"{text}, {rnd.randrange(10**6)}"\n'
            )
    return rows


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _child(reader: str, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from sealroom.connectors.files import read_table

    def read(p: Path) -> pa.Table:
        return read_table(p) if reader == "sealroom" else pcsv.read_csv(p)

    # One tiny read first: kernels, thread pools and regexes initialise once per process.
    warm = path.with_suffix(".warm.csv")
    _write_csv(warm, 0.001)
    read(warm)
    before = _rss_mib()
    t0 = time.perf_counter()
    table = read(path)
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "rss_growth_mib": _rss_mib() - before,
                "pool_peak_mib": pa.default_memory_pool().max_memory() / (1 << 20),
                "table_mib": table.nbytes / (1 << 20),
                "rows": table.num_rows,
                "seconds": seconds,
            }
        )
    )


def _measure(reader: str, path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_sources", "--child", reader, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=float, action="append", help="input sizes (repeatable)")
    parser.add_argument("--smoke", action="store_true", help="once, at a tiny size (CI)")
    parser.add_argument("--child", nargs=2, metavar=("READER", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], Path(args.child[1]))
        return
    sizes = [0.25] if args.smoke else (args.mib or [8.0, 32.0, 128.0])
    print("CSV source: peak memory while reading, sealroom vs pyarrow.csv.read_csv (same file)")
    print(
        f"{'file MiB':>9} {'rows':>10} {'table MiB':>10} {'peak RSS+ MiB':>20} "
        f"{'arrow pool MiB':>20} {'RSS ratio':>10} {'time ratio':>10}"
    )
    with tempfile.TemporaryDirectory(prefix="sealroom-bench-") as tmp:
        for mib in sizes:
            path = Path(tmp) / f"data-{mib}.csv"
            _write_csv(path, mib)
            ours = _measure("sealroom", path)
            base = _measure("pyarrow", path)
            if ours["rows"] != base["rows"]:
                raise SystemExit(f"row counts differ: {ours['rows']} vs {base['rows']}")
            size = path.stat().st_size / (1 << 20)
            print(
                f"{size:9.1f} {int(ours['rows']):10d} {ours['table_mib']:10.1f} "
                f"{ours['rss_growth_mib']:9.0f} / {base['rss_growth_mib']:<8.0f} "
                f"{ours['pool_peak_mib']:9.0f} / {base['pool_peak_mib']:<8.0f} "
                f"{ours['rss_growth_mib'] / max(base['rss_growth_mib'], 1.0):9.2f}x "
                f"{ours['seconds'] / max(base['seconds'], 1e-6):9.1f}x"
            )
            path.unlink()
    print("(peak RSS+ is the growth of the peak resident set over the size after imports)")


if __name__ == "__main__":
    main()
