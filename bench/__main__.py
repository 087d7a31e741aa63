"""Run every benchmark: ``python -m bench [--quick | --smoke]``.

Each benchmark prints medians and ratios against a baseline measured in the
same run (this machine is shared and noisy; absolute numbers are not claims).
``--smoke`` runs each one once at tiny sizes, in its own process, and prints
only whether it ran: it proves every benchmark still works (CI runs it), and
the figures of so small a run would mean nothing, so none are shown unless a
benchmark fails.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence

# module -> (arguments for --quick, arguments for a full run); every one also takes --smoke.
BENCHES = {
    "bench.bench_commit": (["--mib", "32", "--repeat", "3"], []),
    "bench.bench_seal": (["--mib", "32", "--repeat", "3"], []),
    "bench.bench_log": (["--quick"], []),
    "bench.bench_ledger": (["--quick"], []),
    "bench.bench_job": (["--scale", "1", "--repeat", "3"], []),
    "bench.bench_discovery": (["--quick"], []),
    "bench.bench_web": (["--quick"], []),
    "bench.bench_analytics": (["--quick"], []),
    "bench.bench_psi": (["--quick"], []),
    "bench.bench_pjc": (["--quick"], ["--workers", "2"]),
    "bench.bench_secagg": (["--quick"], []),
    "bench.bench_he": (["--quick"], []),
    "bench.bench_relay": (["--quick"], []),
    "bench.bench_cli": (["--repeat", "5"], []),
    "bench.bench_sources": (["--mib", "8", "--mib", "32"], []),
    "bench.bench_bigdata": (["--rows", "1000000"], []),
}
SMOKE_TIMEOUT = 300.0


def _smoke(module: str) -> bool:
    cmd = [sys.executable, "-m", module, "--smoke"]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=SMOKE_TIMEOUT)
    except subprocess.TimeoutExpired:
        print(f"FAILED {module}: no result after {SMOKE_TIMEOUT:.0f} s", flush=True)
        return False
    elapsed = time.perf_counter() - t0
    if done.returncode == 0:
        print(f"ok     {module} ({elapsed:.1f} s)", flush=True)
        return True
    print(f"FAILED {module} (exit {done.returncode}):", flush=True)
    print(done.stdout + done.stderr, flush=True)
    return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes, a short run")
    mode.add_argument(
        "--smoke", action="store_true", help="each once at tiny sizes; report only failures"
    )
    parser.add_argument(
        "--only", action="append", help="run only these (e.g. --only psi --only pjc)"
    )
    args = parser.parse_args(argv)
    failed = ran = 0
    for module, (quick, full) in BENCHES.items():
        if args.only and module.removeprefix("bench.bench_") not in args.only:
            continue
        ran += 1
        if args.smoke:
            failed += not _smoke(module)
            continue
        print(f"\n== {module}", flush=True)
        cmd = [sys.executable, "-m", module, *(quick if args.quick else full)]
        failed += subprocess.run(cmd, check=False).returncode != 0
    if args.smoke:
        print(f"smoke: {failed} of {ran} benchmarks FAILED" if failed else f"smoke: all {ran} ran")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
