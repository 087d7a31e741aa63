"""Tiny benchmark harness: medians over repeats, ratios against a baseline from the same run.

This machine is shared and noisy, so every figure is a median of several runs
and every claim is a ratio against a baseline measured in the same process.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


def median_seconds(fn: Callable[[], object], *, repeat: int = 7, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


@dataclass(frozen=True)
class Ratio:
    name: str
    value: float
    baseline: float
    target: float | None = None

    @property
    def ratio(self) -> float:
        return self.value / self.baseline

    def line(self) -> str:
        verdict = ""
        if self.target is not None:
            verdict = "  meets target" if self.ratio >= self.target else "  BELOW TARGET"
            verdict = f"  (target >= {self.target:.2f}x){verdict}"
        return f"{self.name}: {self.ratio:.2f}x baseline{verdict}"


def throughput_mib_s(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / (1 << 20)
