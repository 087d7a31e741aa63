"""A statistical auditor of differential privacy, in the style of Google's DP stochastic tester.

A mechanism M is epsilon-DP if for neighbouring inputs D, D' (one entity added or removed)
and every event E, P[M(D) in E] <= e^epsilon * P[M(D') in E]. The auditor samples M(D) and
M(D') many times, puts the outputs into shared buckets, and for every bucket (and every
union of adjacent buckets from either end: the tails, where mis-calibration shows first)
bounds the two probabilities with Clopper-Pearson intervals. Its estimate is the largest
LOWER confidence bound of log(P[E | D] / P[E | D']) over those events and both directions:
an estimate above the claimed epsilon is evidence, at the stated confidence, that the
mechanism is not epsilon-DP.

It can only find violations, never prove privacy: a mechanism that passes was not caught
at this sample size. Tests therefore run each audit twice: on the real mechanism (the
estimate must stay at or below its epsilon) and on a deliberately mis-calibrated mutant
(noise divided by four; the estimate must exceed the claimed epsilon), so an audit that
cannot fail is caught too.

The per-event confidence is Bonferroni-corrected over every event tested, so a correctly
calibrated mechanism fails an audit with probability at most ``false_alarm`` (default
1e-6): the tests are not flaky by design.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta

__all__ = ["Audit", "audit", "audit_columns"]


@dataclass(frozen=True, slots=True)
class Audit:
    """The estimate (a lower confidence bound on the privacy loss) and where it was found."""

    epsilon_lower: float
    event: str
    runs: int


def _bounds(hits: np.ndarray, n: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Clopper-Pearson (lower, upper) bounds for hits/n, each at one-sided level alpha."""
    lower = np.where(hits > 0, beta.ppf(alpha, hits, n - hits + 1), 0.0)
    upper = np.where(hits < n, beta.ppf(1 - alpha, hits + 1, n - hits), 1.0)
    return lower, upper


def audit(
    on_d: Callable[[], float],
    on_neighbour: Callable[[], float],
    *,
    runs: int = 4000,
    buckets: int = 24,
    false_alarm: float = 1e-6,
) -> Audit:
    """Estimate the privacy loss of a scalar release between two neighbouring inputs.

    ``on_d`` and ``on_neighbour`` each run the mechanism once (with fresh randomness) on
    D and D' and return the released number (project a vector release onto the number
    you audit). Buckets are quantiles of the pooled samples, so both distributions' tails
    are covered whatever their scale.
    """
    a = np.array([float(on_d()) for _ in range(runs)])
    b = np.array([float(on_neighbour()) for _ in range(runs)])
    pooled = np.concatenate([a, b])
    edges = np.unique(np.quantile(pooled, np.linspace(0, 1, buckets + 1)[1:-1]))
    ia = np.searchsorted(edges, a, side="right")
    ib = np.searchsorted(edges, b, side="right")
    k = len(edges) + 1
    ca = np.bincount(ia, minlength=k)
    cb = np.bincount(ib, minlength=k)
    # Events: each bucket, every lower tail (buckets 0..j) and every upper tail (j..k-1).
    events: list[tuple[str, int, int]] = []
    for j in range(k):
        events.append((f"bucket {j}", int(ca[j]), int(cb[j])))
    for j in range(k - 1):
        events.append((f"lower tail to bucket {j}", int(ca[: j + 1].sum()), int(cb[: j + 1].sum())))
        events.append(
            (f"upper tail from bucket {j + 1}", int(ca[j + 1 :].sum()), int(cb[j + 1 :].sum()))
        )
    # Two directions per event, two bounds per ratio: Bonferroni over all of them.
    alpha = false_alarm / (4 * len(events))
    hits_a = np.array([e[1] for e in events])
    hits_b = np.array([e[2] for e in events])
    lo_a, hi_a = _bounds(hits_a, runs, alpha)
    lo_b, hi_b = _bounds(hits_b, runs, alpha)
    best, where = -math.inf, "none"
    for i, (name, _, _) in enumerate(events):
        for lo, hi, direction in ((lo_a[i], hi_b[i], "D over D'"), (lo_b[i], hi_a[i], "D' over D")):
            if lo > 0 and hi > 0:
                value = math.log(lo / hi)
                if value > best:
                    best, where = value, f"{name}, {direction}"
    return Audit(epsilon_lower=max(best, 0.0), event=where, runs=runs)


def audit_columns(on_d: np.ndarray, on_neighbour: np.ndarray) -> list[Audit]:
    """:func:`audit` of each column of releases already sampled (one row per run) on D and D':
    one sampling serves every number a mechanism releases."""
    out = []
    for j in range(on_d.shape[1]):
        d, n = iter(on_d[:, j].tolist()), iter(on_neighbour[:, j].tolist())
        out.append(audit(lambda: next(d), lambda: next(n), runs=len(on_d)))  # noqa: B023
    return out


def laplace_counts(
    true_a: float, true_b: float, scale: float
) -> tuple[Callable[[], float], Callable[[], float]]:
    """Two samplers of a Laplace release (for the auditor's own tests)."""
    rng = np.random.default_rng()
    return (lambda: true_a + rng.laplace(0, scale)), (lambda: true_b + rng.laplace(0, scale))


def summary(results: Sequence[Audit]) -> str:
    return "; ".join(f"{r.epsilon_lower:.3f} at {r.event}" for r in results)
