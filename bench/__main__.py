"""Run every benchmark: ``python -m bench [--quick]``.

Each benchmark prints medians and ratios against a baseline measured in the
same run (this machine is shared and noisy; absolute numbers are not claims).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

BENCHES = {
    "bench.bench_commit": (["--mib", "32", "--repeat", "3"], []),
    "bench.bench_seal": (["--mib", "32", "--repeat", "3"], []),
    "bench.bench_log": (["--quick"], []),
    "bench.bench_job": (["--scale", "1", "--repeat", "3"], []),
    "bench.bench_discovery": (["--quick"], []),
    "bench.bench_analytics": (["--quick"], []),
    "bench.bench_psi": (["--quick"], []),
    "bench.bench_pjc": (["--quick"], ["--workers", "2"]),
    "bench.bench_secagg": (["--quick"], []),
    "bench.bench_he": (["--quick"], []),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--only", action="append", help="run only these (e.g. --only psi --only pjc)"
    )
    args = parser.parse_args()
    failed = 0
    for module, (quick, full) in BENCHES.items():
        if args.only and module.removeprefix("bench.bench_") not in args.only:
            continue
        print(f"\n== {module}", flush=True)
        cmd = [sys.executable, "-m", module, *(quick if args.quick else full)]
        failed += subprocess.run(cmd, check=False).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
