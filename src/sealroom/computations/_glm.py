"""Generalised linear models by iteratively reweighted least squares (IRLS), in numpy.

Private helper of ``train-model``. Written out rather than imported from
statsmodels so the enclave's code digest covers the exact estimator that runs,
and so the tests can check it against statsmodels as an independent reference.

Families (canonical links only): ``gaussian``/identity, ``binomial``/logit,
``poisson``/log. Standard errors are ``sqrt(diag(scale * (X'WX)^-1))`` with the
weights of the final iteration, ``scale`` = 1 for binomial and poisson and the
Pearson chi-square over the residual degrees of freedom for gaussian (the
statsmodels GLM defaults). Also: the decimal-string encoding of released numbers
(statements carry no floats) and the L2-regularised logistic objective used for
DP output perturbation.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
from pydantic import AfterValidator

from sealroom.errors import InvalidInput
from sealroom.statements.fields import canonical_decimal

__all__ = [
    "Family",
    "GlmFit",
    "SignedDecimal",
    "auc",
    "fit_glm",
    "fit_logistic_l2",
    "inverse_link",
    "parse_signed",
    "signed_decimal",
]

Family = Literal["binomial", "gaussian", "poisson"]
Array = npt.NDArray[np.float64]

SIGNIFICANT_DIGITS = 12
"""Released numbers keep 12 significant digits: far below any estimator's error."""
_TINY = 1e-15
_MU_EPS = float(np.finfo(np.float64).eps)
_SIGNED_RE = re.compile(r"^-?(0|[1-9][0-9]{0,30})(\.[0-9]{0,29}[1-9])?$")


def _check_signed(text: str) -> str:
    if not _SIGNED_RE.match(text) or text == "-0":
        raise ValueError("must be a canonical decimal string like '-0.5' (no exponent)")
    return text


SignedDecimal = Annotated[str, AfterValidator(_check_signed)]
"""A canonical decimal string that may be negative ("-1.25", "0", "3")."""


def signed_decimal(value: float, digits: int = SIGNIFICANT_DIGITS) -> str:
    """``value`` as a canonical decimal string with ``digits`` significant digits."""
    if not math.isfinite(value):
        raise InvalidInput("a released number is not finite")
    if abs(value) < _TINY:
        return "0"
    d = Decimal(repr(float(value)))
    return canonical_decimal(d.quantize(Decimal(1).scaleb(d.adjusted() - digits + 1)))


def parse_signed(text: str) -> float:
    return float(Decimal(_check_signed(text)))


@dataclass(frozen=True, slots=True)
class GlmFit:
    """Estimates in the column order of the design matrix."""

    params: Array
    std_errors: Array
    scale: float
    deviance: float
    iterations: int
    converged: bool


def inverse_link(family: Family, eta: Array) -> Array:
    if family == "gaussian":
        return eta
    if family == "binomial":
        mu: Array = 1.0 / (1.0 + np.exp(-np.clip(eta, -700.0, 700.0)))
        return np.clip(mu, _MU_EPS, 1.0 - _MU_EPS)
    return np.exp(np.clip(eta, -700.0, 700.0))


def _deviance(family: Family, y: Array, mu: Array) -> float:
    if family == "gaussian":
        return float(np.sum((y - mu) ** 2))
    if family == "binomial":
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = np.where(y > 0, y * np.log(y / mu), 0.0)
            t0 = np.where(y < 1, (1 - y) * np.log((1 - y) / (1 - mu)), 0.0)
        return float(2.0 * np.sum(t1 + t0))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(y > 0, y * np.log(y / mu), 0.0)
    return float(2.0 * np.sum(t - (y - mu)))


def _working(family: Family, y: Array, mu: Array, eta: Array) -> tuple[Array, Array]:
    """IRLS working response and weights for the canonical link."""
    if family == "gaussian":
        return y, np.ones_like(y)
    var = mu * (1 - mu) if family == "binomial" else mu
    var = np.maximum(var, 1e-300)
    # canonical link: g'(mu) = 1 / V(mu), so w = V(mu), z = eta + (y - mu) / V(mu)
    return eta + (y - mu) / var, var


def fit_glm(
    x: Array, y: Array, *, family: Family, max_iter: int = 100, tol: float = 1e-12
) -> GlmFit:
    """Maximum-likelihood GLM fit; ``x`` already holds the intercept column if wanted."""
    n, p = x.shape
    if n <= p:
        raise InvalidInput(f"{n} training rows cannot fit {p} parameters")
    if np.linalg.matrix_rank(x) < p:
        raise InvalidInput("the features are collinear (the design matrix is rank deficient)")
    if family == "gaussian":
        mu = np.full_like(y, float(np.mean(y)))
    elif family == "binomial":
        mu = (y + 0.5) / 2.0
    else:
        mu = (y + float(np.mean(y))) / 2.0
    eta = (
        mu
        if family == "gaussian"
        else (np.log(mu / (1 - mu)) if family == "binomial" else np.log(mu))
    )
    beta: Array = np.zeros(p)
    dev = _deviance(family, y, mu)
    converged = False
    iterations = 0
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(max_iter):
            iterations += 1
            z, w = _working(family, y, mu, eta)
            sw = np.sqrt(w)
            new_beta: Array = np.asarray(
                np.linalg.lstsq(x * sw[:, None], z * sw, rcond=None)[0], dtype=np.float64
            )
            eta = x @ new_beta
            mu = inverse_link(family, eta)
            new_dev = _deviance(family, y, mu)
            if not (np.all(np.isfinite(new_beta)) and math.isfinite(new_dev)):
                break
            step = float(np.max(np.abs(new_beta - beta)))
            beta = new_beta
            done = abs(new_dev - dev) <= tol * (abs(new_dev) + 1.0) and step <= 1e-10 * (
                1.0 + float(np.max(np.abs(beta)))
            )
            dev = new_dev
            if done or family == "gaussian":
                converged = True
                break
        _, w = _working(family, y, mu, eta)
        xtwx = x.T @ (x * w[:, None])
        scale = float(np.sum((y - mu) ** 2) / (n - p)) if family == "gaussian" else 1.0
        try:
            cov = scale * np.linalg.inv(xtwx)
            se = np.sqrt(np.maximum(np.diag(cov), 0.0))
        except np.linalg.LinAlgError:
            se = np.full(p, np.nan)
            converged = False
    if not (np.all(np.isfinite(beta)) and np.all(np.isfinite(se))):
        converged = False
    return GlmFit(
        params=beta,
        std_errors=se,
        scale=scale,
        deviance=dev,
        iterations=iterations,
        converged=converged,
    )


def fit_logistic_l2(x: Array, y: Array, *, l2: float, max_iter: int = 200) -> Array:
    """argmin (1/n) sum log-loss + (l2/2)||theta||^2, by damped Newton (strongly convex).

    DP output perturbation is calibrated to the exact minimiser, so this must reach it
    whatever the data: a backtracking line search on the objective makes every step a
    descent, and the loop ends on a gradient norm near machine precision.
    """
    n, p = x.shape
    theta = np.zeros(p)

    def objective(t: Array) -> float:
        eta = x @ t
        loss = np.logaddexp(0.0, eta) - y * eta
        return float(np.mean(loss)) + 0.5 * l2 * float(t @ t)

    with np.errstate(over="ignore"):
        value = objective(theta)
        for _ in range(max_iter):
            mu = inverse_link("binomial", x @ theta)
            grad = x.T @ (mu - y) / n + l2 * theta
            if float(np.linalg.norm(grad)) < 1e-13:
                break
            hess = x.T @ (x * (mu * (1 - mu))[:, None]) / n + l2 * np.eye(p)
            step = np.linalg.solve(hess, grad)
            t = 1.0
            while t > 1e-10:
                candidate = theta - t * step
                new_value = objective(candidate)
                if new_value <= value - 1e-4 * t * float(grad @ step):
                    break
                t *= 0.5
            theta, value = theta - t * step, objective(theta - t * step)
            if float(np.max(np.abs(t * step))) < 1e-14:
                break
    return theta


def auc(y: Array, score: Array) -> float | None:
    """Area under the ROC curve by the rank-sum statistic (ties count one half)."""
    from scipy.stats import rankdata

    pos = int(np.sum(y == 1))
    neg = int(np.sum(y == 0))
    if pos == 0 or neg == 0:
        return None
    ranks = rankdata(score)
    u = float(np.sum(ranks[y == 1])) - pos * (pos + 1) / 2.0
    return u / (pos * neg)
