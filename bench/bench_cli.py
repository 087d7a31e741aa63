"""CLI start-up: ``sealroom version`` and ``sealroom --help`` against ``python -c pass``.

    python -m bench.bench_cli [--repeat 9] [--smoke]

Every agent step is a new process, so start-up is latency a user pays on each
call. The target is under 0.5 s for a simple command; the command modules import
the SDK, crypto and data libraries inside the commands, so ``version`` loads typer
and the standard library only. Each figure is the median wall time of a fresh
process (spawn included), the baseline the same interpreter doing nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from bench._harness import median_seconds

TARGET_SECONDS = 0.5


def _run(args: list[str]) -> None:
    subprocess.run([sys.executable, *args], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--smoke", action="store_true", help="once (CI)")
    args = parser.parse_args()
    r = 1 if args.smoke else args.repeat
    cases = {
        "python -c pass": ["-c", "pass"],
        "sealroom version": ["-m", "sealroom.cli", "version"],
        "sealroom version --json": ["-m", "sealroom.cli", "version", "--json"],
        "sealroom --help": ["-m", "sealroom.cli", "--help"],
        "import the SDK (for scale)": ["-c", "import sealroom.client"],
    }
    times = {name: median_seconds(lambda a=a: _run(a), repeat=r) for name, a in cases.items()}
    base = times["python -c pass"]
    print(f"fresh processes, medians of {r} runs")
    for name, t in times.items():
        print(f"  {name:<28} {t * 1000:7.0f} ms  {t / base:5.1f}x python -c pass")
    version = times["sealroom version"]
    verdict = "meets target" if version < TARGET_SECONDS else "ABOVE TARGET"
    print(f"sealroom version: {version:.3f} s (target < {TARGET_SECONDS} s) {verdict}")


if __name__ == "__main__":
    main()
