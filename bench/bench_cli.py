"""CLI start-up: ``sealroom version``, ``--help`` and ``whoami`` against ``python -c pass``.

    python -m bench.bench_cli [--repeat 21] [--smoke] [--before SRC]

Every agent step is a new process, so start-up is latency a user pays on each call. The
target is under 0.5 s for a simple command. Each figure is the median wall time of a fresh
process (spawn included); the cases run interleaved, round after round, so a burst of load
on this shared machine hits them all alike, and each is also given as a ratio to the
baseline (the same interpreter doing nothing) measured in the same rounds. ``--before SRC``
adds the same commands run from another checkout's ``src`` (e.g. a worktree of main), for
a before/after in one run. ``whoami`` reads an unencrypted keystore made for the run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 0.5
SIMPLE = {
    "sealroom version": ["-m", "sealroom.cli", "version"],
    "sealroom version --json": ["-m", "sealroom.cli", "version", "--json"],
    "sealroom --help": ["-m", "sealroom.cli", "--help"],
    "sealroom whoami": ["-m", "sealroom.cli", "whoami"],
}


def _once(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, capture_output=True, env=env)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--smoke", action="store_true", help="once (CI)")
    parser.add_argument("--before", type=Path, help="another checkout's src/ to compare")
    args = parser.parse_args()
    rounds = 1 if args.smoke else args.repeat
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "SEALROOM_HOME": home, "PYTHONIOENCODING": "utf-8"}
        init = ["-m", "sealroom.cli", "init", "--name", "bench", "--unencrypted-keystore"]
        subprocess.run([sys.executable, *init], check=True, capture_output=True, env=env)
        cases: dict[str, tuple[list[str], dict[str, str]]] = {
            "python -c pass": (["-c", "pass"], env)
        }
        cases |= {name: (a, env) for name, a in SIMPLE.items()}
        if args.before is not None:
            before = {**env, "PYTHONPATH": str(args.before.resolve())}
            cases |= {f"{name} (before)": (a, before) for name, a in SIMPLE.items()}
        cases["import the SDK (for scale)"] = (["-c", "import sealroom.client"], env)
        for a, e in cases.values():  # warm the file cache and .pyc files
            _once(a, e)
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(rounds):
            for name, (a, e) in cases.items():
                samples[name].append(_once(a, e))
    times = {name: statistics.median(s) for name, s in samples.items()}
    base = times["python -c pass"]
    print(f"fresh processes, medians of {rounds} interleaved rounds")
    for name, t in times.items():
        print(f"  {name:<36} {t * 1000:7.0f} ms  {t / base:5.1f}x python -c pass")
    for name in SIMPLE:
        t = times[name]
        verdict = "meets target" if t < TARGET_SECONDS else "ABOVE TARGET"
        print(f"{name}: {t:.3f} s (target < {TARGET_SECONDS} s) {verdict}")


if __name__ == "__main__":
    main()
