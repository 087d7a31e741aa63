"""Privacy for the computations over a join of two inputs on an identifier.

intersection-overlap, intersection-sum, correlation, lift and association-test
match the rows of two inputs on a key (``key_a`` = ``key_b``), reduce each side
to one value per key and release statistics of the matched keys. The adversary
(docs/privacy.md) controls one of the two inputs completely (its rows, keys,
values, policy and entity column), every request parameter, any number of
identities and the timing, and wants to learn about one entity of the other
input. This module holds what the five need against it, in two modes.

**DP mode** (``dp`` given; the default policies require it). The privacy unit
is one entity of EITHER input: neighbouring requests differ by every row of one
entity of one input, the other input fixed and adversarial (it may be chosen to
isolate). The release is a set of OpenDP measurements of sufficient statistics
of the matched keys:

* each side is reduced to one value (or label) per key, clamped to public
  bounds that are request parameters;
* truncation (:func:`truncate`): an entity keeps its rows for at most
  ``max_keys_per_entity`` = m keys, its first in string order of the key. The
  rule reads only that entity's own rows, so adding or removing one entity
  never changes what another keeps. Rows of a null entity are dropped (they
  cannot be bounded). When the entity column is the key column (or there is
  none: rows are entities) an entity has one key and m does not matter;
* one entity therefore touches at most m keys, and each touched key's record
  in the matched set appears or disappears (distance 1 in OpenDP's symmetric
  distance), or is replaced (2) when the key's value or label on that side
  comes from several entities, or when its absence on that side is itself a
  label ("did not convert"). :func:`contributions` is that bound, d_in, from
  the parameters and the policy alone, never from the data;
* every statistic is an OpenDP measurement: a count (discrete Laplace), a
  count by categories (discrete Laplace per category, L1 sensitivity) or a
  clamp + sum (Laplace, discretised at 2^-1074, with OpenDP's float-rounding
  slack), calibrated by OpenDP's ``binary_search_param`` at the largest d_in of
  the sides it reads. Each gets epsilon / (the most statistics that read one
  side), so for each input the privacy maps of the statistics that read it,
  evaluated at its d_in, sum to at most the epsilon charged on that input
  (basic composition; :class:`DpPlan` checks it before anything runs).

Derived numbers (means, coefficients, rates, lifts) are post-processing.
Intervals and p-values are too: a parametric bootstrap draws the known noise
(and the statistic's sampling error) around the noisy statistics, with a seed
taken from them, so they describe the uncertainty of the DP release itself.
Test statistics (z, t, chi-square) are not released in DP mode: their
sampling distributions do not hold under noise.

**Exact mode** (no ``dp``): only from an owner-pinned shape with pinned partner
data, which the policy enforces before anything runs. Every released number
must stand on at least ``k_i`` distinct entities of EACH input i (thresholds
on both sides, never the requester's side alone); numeric values are clipped
to pinned public bounds and then top- and bottom-coded so that every extreme
value level is shared by at least k entities of the other input
(:func:`cover_clip`: a planted outlier or an indicator of one identifier
becomes a level shared by k people); and the release carries a footprint
(:class:`sealroom.computations.base.Released`: per input, the entity set
behind each released number) for the enclave's difference checks. Refusals
are :class:`PolicyDenied` with a rule name (``k-threshold``,
``influence-bound``).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Context, Decimal, InvalidOperation
from typing import Annotated, Any, Protocol

import numpy as np
import opendp.prelude as dp
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import AfterValidator, Field

from sealroom.computations import _stats
from sealroom.computations._stats import Codes, Floats, Model, Num, ParamsModel
from sealroom.computations.base import ZERO_COST, PrivacyContext, PrivacyCost
from sealroom.errors import InvalidInput, PolicyDenied
from sealroom.policy.dp import MAX_EPSILON

__all__ = [
    "MAX_EPSILON",
    "Bounds",
    "DpPlan",
    "DpStatistic",
    "JoinDp",
    "JoinDpParams",
    "Noisy",
    "Replicates",
    "Side",
    "Stat",
    "WithDp",
    "bounds_of",
    "contributions",
    "cost",
    "cover_clip",
    "entity_set",
    "fisher",
    "interval",
    "moment_records",
    "moment_stats",
    "p_two_sided",
    "pearson",
    "pearson_release",
    "require_k",
    "sides",
    "truncate",
]

dp.enable_features("contrib")

DRAWS = 2000
"""Bootstrap replicates behind a DP-mode interval or p-value."""


class JoinDpParams(ParamsModel):
    """The ``dp`` parameter of a join computation: the budget and the contribution bound."""

    epsilon: Num
    max_keys_per_entity: Annotated[int, Field(ge=1, le=64)] = 1


def _ordered(bounds: tuple[str, str]) -> tuple[str, str]:
    if not Decimal(bounds[0]) < Decimal(bounds[1]):
        raise ValueError("must be [lower, upper] with lower < upper")
    return bounds


Bounds = Annotated[tuple[Num, Num], AfterValidator(_ordered)]
"""Public bounds ``[lower, upper]`` of a numeric variable, as decimal strings."""


class DpStatistic(Model):
    name: str
    mechanism: str
    scale: Num
    epsilon: Num
    accuracy: Num


class JoinDp(Model):
    """What a reader of a DP release needs: the budget, the bound, each noisy statistic."""

    epsilon: Num
    max_keys_per_entity: int
    contributions: tuple[int, int]
    statistics: tuple[DpStatistic, ...]
    note: str


class WithDp(Protocol):
    """The parameters of a join computation: ``dp`` None for an exact release."""

    @property
    def dp(self) -> JoinDpParams | None: ...


def cost(params: WithDp) -> PrivacyCost:
    """The epsilon charged on every input: all of ``dp.epsilon`` (each input's loss is at most it)."""
    if params.dp is None:
        return ZERO_COST
    return PrivacyCost(epsilon=_epsilon(params.dp))


def _epsilon(params: JoinDpParams) -> Decimal:
    try:
        eps = Decimal(params.epsilon)
        ok = eps.is_finite() and Decimal(0) < eps <= MAX_EPSILON
    except InvalidOperation:
        ok = False
    if not ok:
        raise InvalidInput(f"dp.epsilon must be a decimal in (0, {MAX_EPSILON}]")
    return eps


def bounds_of(bounds: Bounds, *, what: str) -> tuple[float, float]:
    lo = _stats.parse_num(bounds[0], what=f"{what}[0]")
    hi = _stats.parse_num(bounds[1], what=f"{what}[1]")
    if not lo < hi:
        raise InvalidInput(f"{what} must be [lower, upper] with lower < upper")
    return lo, hi


# --- the two sides of a join ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Side:
    """One input's rows as key codes and entity codes (-1: null), in a shared key space.

    ``exclusive``: the entity column is the key column, so each entity is one key and
    each key one entity.
    """

    index: int
    name: str
    table: pa.Table
    codes: Codes
    ents: Codes
    exclusive: bool
    entity_column: str | None

    def rows_of(self, chosen: Codes, size: int) -> _stats.Bools:
        """Rows whose key is one of ``chosen``."""
        return _stats.member(self.codes, chosen, size)

    def entities(self, rows: _stats.Bools) -> int:
        return _stats.count_distinct(self.ents[rows])


def sides(
    inputs: Sequence[pa.Table],
    privacy: PrivacyContext,
    key_columns: tuple[str, str],
    names: tuple[str, str],
) -> tuple[tuple[Side, Side], _stats.KeySpace]:
    codes, space = _stats.encode_keys(
        [(t, key, name) for t, key, name in zip(inputs, key_columns, names, strict=True)]
    )
    out = []
    for i in (0, 1):
        ents = _stats.entity_codes(
            inputs[i], privacy, i, input_name=names[i], key=(key_columns[i], codes[i])
        )
        column = privacy.entity_columns[i]
        out.append(
            Side(
                index=i,
                name=names[i],
                table=inputs[i],
                codes=codes[i],
                ents=ents,
                exclusive=column == key_columns[i],
                entity_column=column,
            )
        )
    return (out[0], out[1]), space


def truncate(side: Side, space: _stats.KeySpace, max_keys: int) -> Codes:
    """The side's key codes with every row beyond its entity's bound set to -1 (absent).

    An entity keeps its rows for its first ``max_keys`` keys in string order of the key;
    rows of a null entity go. The rule reads only the entity's own rows.
    """
    named = side.ents >= 0
    if side.exclusive or side.entity_column is None:
        return np.where(named, side.codes, -1)
    rows = np.flatnonzero(named & (side.codes >= 0))
    rank = np.empty(space.size, dtype=np.int64)
    rank[space.in_str_order(np.arange(space.size, dtype=np.int64))] = np.arange(space.size)
    ent, key_rank = side.ents[rows], rank[side.codes[rows]]
    order = np.lexsort((key_rank, ent))
    ent_s, rank_s = ent[order], key_rank[order]
    # Position of each row's key among its entity's distinct keys.
    new_pair = np.r_[True, (ent_s[1:] != ent_s[:-1]) | (rank_s[1:] != rank_s[:-1])]
    new_ent = np.r_[True, ent_s[1:] != ent_s[:-1]]
    pair_no = np.cumsum(new_pair) - 1
    first_pair_of_ent = np.maximum.accumulate(np.where(new_ent, pair_no, 0))
    position = pair_no - first_pair_of_ent
    keep = np.zeros(len(side.codes), dtype=np.bool_)
    keep[rows[order[position < max_keys]]] = True
    return np.where(keep, side.codes, -1)


def contributions(side: Side, max_keys: int, *, valued: bool, labels: bool = False) -> int:
    """How far one entity of ``side`` can move the matched records (symmetric distance).

    ``valued``: the side's value or label of a key enters a statistic (not only
    whether the key is present). ``labels``: a key's absence on this side is a label
    of the record (it moves between categories instead of disappearing).
    """
    keys = 1 if side.exclusive or side.entity_column is None else max_keys
    replaced = labels or (valued and not side.exclusive)
    return keys * (2 if replaced else 1)


# --- DP measurements ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stat:
    """One noisy statistic: a count (no bounds, no categories), a count by ``categories``,
    or a sum of values clamped to ``bounds``; ``sides``: the inputs whose entities it reads."""

    name: str
    sides: tuple[int, ...]
    bounds: tuple[float, float] | None = None
    categories: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return "histogram" if self.categories else "sum" if self.bounds is not None else "count"


def _at_most(value: Decimal) -> float:
    """The largest float not above ``value`` (a budget is never overspent by rounding)."""
    f = float(value)
    return math.nextafter(f, 0.0) if Decimal(f) > value else f


def _calibrate(make: Callable[[float], Any], d_in: int, epsilon: float) -> tuple[Any, float]:
    """The measurement with the smallest noise scale whose map(d_in) <= epsilon."""
    scale = float(dp.binary_search_param(make, d_in=d_in, d_out=epsilon, T=float))
    meas = make(scale)
    if not meas.check(d_in, epsilon):  # pragma: no cover - OpenDP guarantees this
        raise InvalidInput("could not calibrate the DP noise to the budget")
    return meas, scale


@functools.lru_cache(maxsize=512)
def _measurement(
    kind: str,
    epsilon: float,
    d_in: int,
    bounds: tuple[float, float] | None,
    categories: tuple[str, ...],
) -> tuple[Any, float]:
    make: Callable[[float], Any]
    if kind == "count":
        space = (dp.vector_domain(dp.atom_domain(T=bool)), dp.symmetric_distance())

        def make(scale: float) -> Any:
            return space >> dp.t.then_count() >> dp.m.then_laplace(scale=scale)
    elif kind == "histogram":
        cats = dp.vector_domain(dp.atom_domain(T=str)), dp.symmetric_distance()

        def make(scale: float) -> Any:
            return (
                cats
                >> dp.t.then_count_by_categories(categories=list(categories), null_category=False)
                >> dp.m.then_laplace(scale=scale)
            )
    else:
        assert bounds is not None
        floats = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.symmetric_distance()

        def make(scale: float) -> Any:
            return (
                floats
                >> dp.t.then_clamp(bounds)
                >> dp.t.then_sum()  # type: ignore[no-untyped-call]
                >> dp.m.then_laplace(scale=scale)
            )

    return _calibrate(make, d_in, epsilon)


@functools.lru_cache(maxsize=2048)
def _map(
    kind: str,
    epsilon: float,
    d_cal: int,
    bounds: tuple[float, float] | None,
    categories: tuple[str, ...],
    d_in: int,
) -> Decimal:
    return Decimal(_measurement(kind, epsilon, d_cal, bounds, categories)[0].map(d_in))


@functools.lru_cache(maxsize=512)
def _accuracy(discrete: bool, scale: float, alpha: float) -> float:
    """The noise's (1 - alpha) bound: |noise| <= it with probability 1 - alpha (OpenDP)."""
    if discrete:
        return float(dp.discrete_laplacian_scale_to_accuracy(scale, alpha))
    return float(dp.laplacian_scale_to_accuracy(scale, alpha))


@dataclass(frozen=True, slots=True)
class Noisy:
    """A DP release: each statistic's noisy value (a histogram's, per category)."""

    values: Mapping[str, float | int | tuple[int, ...]]

    def count(self, name: str) -> int:
        value = self.values[name]
        assert isinstance(value, int)
        return value

    def counts(self, name: str) -> tuple[int, ...]:
        value = self.values[name]
        assert isinstance(value, tuple)
        return value

    def sum(self, name: str) -> float:
        value = self.values[name]
        assert isinstance(value, float)
        return value


@dataclass(frozen=True, slots=True)
class Replicates:
    """Bootstrap draws: per statistic (a histogram's as rows x categories), and ``z``."""

    values: Mapping[str, Floats]
    z: Floats

    def __getitem__(self, name: str) -> Floats:
        return self.values[name]


class DpPlan:
    """The measurements of one DP release, calibrated and checked before any data is read.

    ``contributions[i]`` is input i's d_in (:func:`contributions`). Every statistic gets
    ``epsilon / n`` where n is the most statistics reading one input.
    """

    def __init__(
        self,
        stats: Sequence[Stat],
        *,
        params: JoinDpParams,
        privacy: PrivacyContext,
        contributions: tuple[int, int],
        computation: str,
    ) -> None:
        self.epsilon = _epsilon(params)
        if self.epsilon > privacy.cost.epsilon:
            raise PolicyDenied(
                f"{computation}: dp.epsilon {params.epsilon} exceeds the budget charged for "
                f"this run ({privacy.cost.epsilon})",
                rule="dp-budget",
            )
        self.max_keys = params.max_keys_per_entity
        self.contributions = contributions
        self.stats = tuple(stats)
        readers = max(sum(1 for s in stats if i in s.sides) for i in (0, 1))
        share = Context(prec=28, rounding=ROUND_DOWN).divide(self.epsilon, Decimal(readers))
        self.share = share
        self._specs = {
            st.name: (
                st.kind,
                _at_most(share),
                max(contributions[i] for i in st.sides),
                st.bounds,
                st.categories,
            )
            for st in self.stats
        }
        self.measurements = {name: _measurement(*spec) for name, spec in self._specs.items()}
        for i in (0, 1):
            if self.loss(i) > self.epsilon:  # pragma: no cover - the shares add up to epsilon
                raise InvalidInput(f"{computation}: the DP plan overspends on input {i}")

    def map(self, name: str, d_in: int) -> Decimal:
        """The privacy map of statistic ``name`` at ``d_in`` (OpenDP's, cached)."""
        return _map(*self._specs[name], d_in)

    def loss(self, index: int) -> Decimal:
        """The privacy loss of the release for input ``index`` at its contribution bound."""
        d_in = self.contributions[index]
        return sum((self.map(st.name, d_in) for st in self.stats if index in st.sides), Decimal(0))

    def release(self, data: Mapping[str, Any]) -> Noisy:
        """Run every measurement on its records: bools for a count (one per record),
        labels for a histogram, floats for a sum."""
        out: dict[str, float | int | tuple[int, ...]] = {}
        for s in self.stats:
            meas = self.measurements[s.name][0]
            records = data[s.name]
            if s.kind == "count":
                out[s.name] = int(meas([True] * int(records)))
            elif s.kind == "histogram":
                out[s.name] = tuple(int(v) for v in meas(list(records)))
            else:
                out[s.name] = float(meas([float(v) for v in records]))
        return Noisy(out)

    def replicates(self, released: Noisy, draws: int | None = None) -> Replicates:
        """``draws`` plausible exact values of each statistic given the release (the release
        minus fresh draws of its noise) and as many standard normal draws for a sampling
        term: post-processing of public scales and the release, seeded by the release, so
        the same release always gives the same intervals."""
        draws = DRAWS if draws is None else draws
        seed = hashlib.sha256(repr(sorted(released.values.items())).encode()).digest()
        rng = np.random.default_rng(int.from_bytes(seed[:8], "big"))
        out: dict[str, Floats] = {}
        for s in self.stats:
            scale = self.measurements[s.name][1]
            value = np.asarray(released.values[s.name], dtype=np.float64)
            shape = (draws, *value.shape)
            if s.kind == "sum":
                noise = rng.laplace(0.0, scale, size=shape)
            else:
                p = -math.expm1(-1.0 / scale)
                noise = (rng.geometric(p, size=shape) - rng.geometric(p, size=shape)).astype(
                    np.float64
                )
            out[s.name] = value - noise
        return Replicates(out, rng.standard_normal(draws))

    def info(self, confidence: float) -> JoinDp:
        statistics = []
        for s in self.stats:
            scale = self.measurements[s.name][1]
            discrete = s.kind != "sum"
            statistics.append(
                DpStatistic(
                    name=s.name,
                    mechanism="discrete laplace" if discrete else "laplace",
                    scale=_stats.num(scale) or "0",
                    epsilon=_stats.num(
                        float(max(self.map(s.name, self.contributions[i]) for i in s.sides))
                    )
                    or "0",
                    accuracy=_stats.num(_accuracy(discrete, scale, 1.0 - confidence)) or "0",
                )
            )
        return JoinDp(
            epsilon=_stats.num(float(self.epsilon)) or "0",
            max_keys_per_entity=self.max_keys,
            contributions=self.contributions,
            statistics=tuple(statistics),
            note=(
                "each statistic is its exact value plus OpenDP noise; 'accuracy' bounds the noise "
                "at the output's confidence; derived numbers, intervals and p-values are "
                "post-processing (intervals and p-values by a parametric bootstrap of the noise "
                "and the sampling error)"
            ),
        )


def interval(samples: Floats, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` interval of bootstrap ``samples`` (NaN: an undefined draw);
    undefined when more than the interval's tails are undefined."""
    finite = samples[np.isfinite(samples)]
    tail = (1.0 - confidence) / 2
    if len(finite) < len(samples) * (1 - tail) or len(finite) == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(finite, [tail, 1 - tail])
    return float(lo), float(hi)


def p_two_sided(samples: Floats, null: float = 0.0) -> float:
    """The bootstrap p-value of ``null``: twice the smaller tail beyond it (plus one draw)."""
    finite = samples[np.isfinite(samples)]
    if len(finite) < len(samples) / 2:
        return math.nan
    below = int(np.count_nonzero(finite <= null))
    above = int(np.count_nonzero(finite >= null))
    return min(1.0, 2 * (min(below, above) + 1) / (len(finite) + 1))


MOMENTS = ("n", "sx", "sy", "sxx", "syy", "sxy")


def moment_stats(x_bounds: tuple[float, float], y_bounds: tuple[float, float]) -> tuple[Stat, ...]:
    """Pearson's sufficient statistics of clipped pairs, centred on the bounds' midpoints
    (so each sum's sensitivity is the smallest the bounds allow): n and the sums of x, y,
    x^2, y^2 and xy; each reads both inputs."""
    hx, hy = (x_bounds[1] - x_bounds[0]) / 2, (y_bounds[1] - y_bounds[0]) / 2
    both = (0, 1)
    return (
        Stat("n", both),
        Stat("sx", both, bounds=(-hx, hx)),
        Stat("sy", both, bounds=(-hy, hy)),
        Stat("sxx", both, bounds=(0.0, hx * hx)),
        Stat("syy", both, bounds=(0.0, hy * hy)),
        Stat("sxy", both, bounds=(-hx * hy, hx * hy)),
    )


def moment_records(
    x: Floats, y: Floats, x_bounds: tuple[float, float], y_bounds: tuple[float, float]
) -> dict[str, Any]:
    """The records of :func:`moment_stats` for matched pairs ``x``, ``y``."""
    cx = np.clip(x, *x_bounds) - (x_bounds[0] + x_bounds[1]) / 2
    cy = np.clip(y, *y_bounds) - (y_bounds[0] + y_bounds[1]) / 2
    return {"n": len(x), "sx": cx, "sy": cy, "sxx": cx * cx, "syy": cy * cy, "sxy": cx * cy}


def pearson(m: Mapping[str, Any]) -> Floats:
    """Pearson's r from (noisy) moments, element-wise; NaN where a variance is not positive
    or n < 3 (it is shift-invariant, so centred moments give the same r)."""
    n, sx, sy = (np.asarray(m[k], dtype=np.float64) for k in ("n", "sx", "sy"))
    sxx, syy, sxy = (np.asarray(m[k], dtype=np.float64) for k in ("sxx", "syy", "sxy"))
    with np.errstate(divide="ignore", invalid="ignore"):
        vx, vy = n * sxx - sx * sx, n * syy - sy * sy
        r = np.where((n >= 3) & (vx > 0) & (vy > 0), (n * sxy - sx * sy) / np.sqrt(vx * vy), np.nan)
    out: Floats = np.clip(r, -1.0, 1.0)
    return out


def fisher(r: Floats, n: Floats, z: Floats) -> Floats:
    """Bootstrap draws of atanh(r) with Fisher's sampling error 1/sqrt(n - 3) added."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out: Floats = np.where(
            n > 3, np.arctanh(np.clip(r, -0.999999, 0.999999)) + z / np.sqrt(n - 3), np.nan
        )
    return out


def pearson_release(
    plan: DpPlan,
    x: Floats,
    y: Floats,
    bounds: tuple[tuple[float, float], tuple[float, float]],
    confidence: float,
) -> tuple[float, float, float, float, int]:
    """Pearson's r of matched pairs from a :func:`moment_stats` plan: (r, interval low,
    high, p-value, noisy n); the interval and p-value are null when r is."""
    noisy = plan.release(moment_records(x, y, *bounds))
    r = float(pearson(noisy.values))
    n = max(noisy.count("n"), 0)
    if not math.isfinite(r):
        return math.nan, math.nan, math.nan, math.nan, n
    reps = plan.replicates(noisy)
    z = fisher(pearson(reps.values), reps["n"], reps.z)
    lo, hi = interval(z, confidence)
    return r, math.tanh(lo), math.tanh(hi), p_two_sided(z), n


# --- exact mode -----------------------------------------------------------------------------


def require_k(
    sides: Sequence[Side], rows: Sequence[_stats.Bools], privacy: PrivacyContext, *, what: str
) -> None:
    """Refuse (``k-threshold``) unless each input's ``rows`` hold its k distinct entities."""
    for side, used in zip(sides, rows, strict=True):
        if side.entities(used) < privacy.k[side.index]:
            raise PolicyDenied(
                f"{what}: the joined rows of input {side.name!r} hold fewer than its "
                f"threshold of {privacy.k[side.index]} distinct entities",
                rule="k-threshold",
            )


def entity_set(side: Side, rows: _stats.Bools) -> frozenset[Hashable]:
    """The entity values behind ``rows`` (of the policy's entity column; row numbers when it
    has none), for a footprint."""
    if side.entity_column is None:
        return frozenset(np.flatnonzero(rows).tolist())
    col = side.table.column(side.entity_column).filter(pa.array(rows))
    return frozenset(pc.drop_null(pc.unique(col)).to_pylist())


def cover_clip(
    values: Floats, keys: Codes, other: Side, rows: _stats.Bools, k: int, *, what: str
) -> Floats:
    """``values`` (by key code) of one input's variable, top- and bottom-coded over the
    matched ``keys`` so that each extreme level is shared by at least ``k`` entities of
    the OTHER input (``other``, whose ``rows`` stand behind the matched keys).

    The variable's owner is the one who could plant an extreme value, and the people a
    planted level could single out are the other input's. The top level is the largest
    value v such that the keys with values >= v hold k distinct entities of ``other``;
    the bottom level likewise. A planted outlier or a one-person indicator is thereby
    coded to a level k people share. Refused (``influence-bound``) when the two levels
    cross (fewer than about 2k entities).
    """
    out = values.copy()
    if len(keys) == 0:
        return out
    ents, key_of_row = other.ents[rows], other.codes[rows]
    named = ents >= 0
    levels = []
    for descending in (True, False):
        v = values[keys]
        order = np.argsort(-v if descending else v, kind="stable")
        rank = np.full(len(values), len(keys), dtype=np.int64)
        rank[keys[order]] = np.arange(len(keys))
        first = np.full(int(ents.max()) + 1 if named.any() else 0, len(keys), dtype=np.int64)
        np.minimum.at(first, ents[named], rank[key_of_row[named]])
        covered = np.sort(first[first < len(keys)])
        if len(covered) < k:
            raise PolicyDenied(
                f"{what}: too few entities to bound a value's influence", rule="k-threshold"
            )
        levels.append(float(v[order[int(covered[k - 1])]]))
    top, bottom = levels
    if bottom > top:
        raise PolicyDenied(
            f"{what}: too few entities for every extreme value to be shared by k of them",
            rule="influence-bound",
        )
    out[keys] = np.clip(values[keys], bottom, top)
    return out
