"""aggregate-stats: statistics per group over the stacked rows of 2 or more parties.

Privacy contract, against the adversary of docs/privacy.md (it controls every input but
the protected one, every parameter, any number of identities, timing and the
coordinator). Class ``aggregate``, released to every party. Rows of every input are
stacked and grouped by ``group_by`` (and ``period``). ``value``, ``group_by`` and
``period`` may not be ``join_only`` or ``never_output`` columns of any input (rules
``join-only`` / ``never-output``, checked at the coordinator's pre-check and again here).

DP mode (``dp`` given; the policy default ``dp: required``). The privacy unit is one
entity of one input: the rows sharing a value of that input's entity column (each row
when it declares none). What leaves is epsilon-delta-DP for EACH input's entities, the
other inputs fixed, and (epsilon, delta) is charged on every input before the run:

* each entity keeps at most ``max_rows_per_entity`` rows per group, in at most
  ``max_groups_per_entity`` groups, chosen at random (truncation before any statistic;
  rows without an identified entity are left out);
* one OpenDP measurement (:mod:`sealroom.policy.dp_groups`) releases, per group, a noisy
  row count, a noisy sum of values clamped to ``[lower, upper]``, and each percentile
  (exponential mechanism over 101 public candidates spaced evenly over the bounds),
  every one calibrated at the contribution bound. The split is exact: each of the
  ``2 + len(percentiles)`` statistics gets ``epsilon / (2 + len(percentiles))``
  (rounded down; reported as ``dp.epsilon_per_statistic`` with each noise scale);
* which groups appear is DP partition selection on the noisy count (``delta`` > 0 is
  needed with ``group_by`` or ``period``; the threshold is in ``dp.threshold``), so a
  group's presence is inside the guarantee; no exact count, entity count or
  ``suppressed_groups`` is released, and ``k`` does not apply;
* means (noisy sum over noisy count, clamped), totals over released groups and growth
  rates are post-processing.

Exact mode (no ``dp``): only the owner's pinned shape (``value``, ``group_by``,
``period``, ``percentiles`` pinned in the policy; enforced by the policy before the run).

* A group is released only if EVERY input has at least K distinct entities in it
  (K = the largest ``k``; entity values compare across inputs; null entities never
  count). Counting on every input, not only on those with rows, means a group looks the
  same whether an input has 0 or k - 1 entities in it, so an input brought by the
  adversary cannot turn group presence into a membership oracle. ``suppressed_groups``
  counts the others.
* Totals (``overall``, ``periods``) are over released groups only, so a suppressed group
  is never rebuilt by subtraction within a release.
* A percentile ``v`` of a set of rows is released only if every input has at least K
  distinct entities with a value strictly below ``v`` and K strictly above it, so a
  minimum, a maximum or any value near the ends never leaves, and a group of exactly K
  entities releases no percentile (9 percentiles plus a sum used to give all K values).
* Footprints (:class:`~sealroom.computations.base.Released`): per input, the entities
  behind each released group and behind each total, for the enclave's difference
  checks across releases (``group_by [region]`` then ``[region, sex]`` differs by a
  suppressed group's entities and is refused).

Residual leakage. DP mode: (epsilon, delta) per input per run, composing across runs
until ``epsilon_total`` is spent; ``max_*`` bounds and the bounds' clamping bias the
estimates, not the guarantee. Exact mode: the pinned shape's values themselves (sums
and means of at least K entities per input, their variance through the intervals,
middle order statistics); an adversary that stacks its own rows can move which middle
order statistic a percentile lands on (never outside the K-th entity from either end);
``suppressed_groups`` counts groups below K.

Utility at epsilon = 1 (the demo's data: RAND HIE outpatient visits ``mdvis`` by
self-rated health over three plans, 20,190 records of one row each; bounds [0, 30],
delta 1e-6, the median; 300 runs, errors against the exact values over all records):
every group appears in every run (poor, 302 records, included: exact mode withholds it);
row counts are within 0.1% (p95) for the three large groups and 3% for poor; means
within 2.2% / 6.6% / 2.2% / 17.9% (p95; excellent, fair, good, poor), mostly the bias
of clamping at 30 (the largest value is 77); a median lands within the interval of
tied integer values around the exact one (0.5 off in the typical run, 0.8 at p95).

Statistics (exact): rows, distinct entities, sum, mean, a Student-t interval of the mean
(rows as observations), percentiles by linear interpolation (numpy's default). Growth:
with ``period``, periods are ordered numerically when every label is a number, else as
text; a group's growth is sum / sum of the previous period minus 1 (null when that
group is not released or its sum is 0). Numbers: :mod:`sealroom.computations._stats`
(decimal strings of 12 significant digits; unusable value cells are absent rows).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Protocol

import numpy as np
import polars as pl
import pyarrow as pa
from pydantic import Field, field_validator

from sealroom.computations import _stats
from sealroom.computations._stats import ColumnName, Confidence, Model, Num, ParamsModel
from sealroom.computations.base import (
    ZERO_COST,
    Computation,
    Footprint,
    PrivacyContext,
    PrivacyCost,
    Released,
    SchemaText,
    schema_text,
)
from sealroom.computations.column_uses import ColumnUse
from sealroom.errors import InvalidInput, PolicyDenied
from sealroom.policy import dp_groups
from sealroom.statements.fields import canonical_decimal

__all__ = [
    "COMPUTATION",
    "AggregateStatsOutput",
    "AggregateStatsParams",
    "DpParams",
    "GroupStats",
    "Stats",
    "dp_mechanism",
    "run",
]

MAX_GROUPS = 10_000

GroupKey = tuple[str | None, ...]


class DpParams(ParamsModel):
    epsilon: Num
    delta: Num = "0"
    lower: Num
    upper: Num
    max_rows_per_entity: Annotated[int, Field(ge=1, le=1000)] = 1
    max_groups_per_entity: Annotated[int, Field(ge=1, le=1000)] = 1


class AggregateStatsParams(ParamsModel):
    value: ColumnName
    """Numeric column summarised (row count, sum, mean, percentiles)."""
    group_by: Annotated[tuple[ColumnName, ...], Field(max_length=4)] = ()
    """Columns to group by (at most 4); groups below the policy's k are suppressed."""
    period: ColumnName | None = None
    """Optional time column: the statistics per period as well."""
    percentiles: Annotated[tuple[Annotated[int, Field(ge=1, le=99)], ...], Field(max_length=9)] = (
        25,
        50,
        75,
    )
    """Percentiles to release, distinct integers 1..99."""
    confidence: Confidence = "0.95"
    """Confidence level of the intervals, a decimal strictly between 0 and 1."""
    dp: DpParams | None = None
    """Differential privacy: epsilon (and delta), the public value bounds lower/upper and the
    contribution bounds; the policy's DP budget is charged. Without it only the owner's pinned
    exact shape may run."""

    @field_validator("percentiles")
    @classmethod
    def _unique(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(v)) != len(v):
            raise ValueError("percentiles must be distinct")
        return tuple(sorted(v))


class Percentile(Model):
    p: int
    value: Num | None


class Stats(Model):
    """Exact: rows, distinct entities and the rest. DP: ``rows`` is the noisy count of rows
    within the contribution bounds; ``entities`` and the interval are None."""

    rows: Annotated[int, Field(ge=0)] | None
    entities: Annotated[int, Field(ge=0)] | None
    sum: Num | None
    mean: Num | None
    ci_low: Num | None
    ci_high: Num | None
    percentiles: tuple[Percentile, ...]


class GroupStats(Model):
    key: tuple[str | None, ...]
    period: str | None
    stats: Stats
    growth: Num | None


class PeriodTotal(Model):
    period: str
    stats: Stats
    growth: Num | None


class DpInfo(Model):
    """What the DP release spent and how: every number a reader needs to interpret it."""

    epsilon: Num
    delta: Num
    epsilon_per_statistic: Num
    statistics: tuple[str, ...]
    noise_scales: tuple[Num, ...]
    threshold: int | None
    lower: Num
    upper: Num
    max_rows_per_entity: int
    max_groups_per_entity: int
    quantile_candidates: int
    sum_granularity: Num
    mechanisms: tuple[str, ...]


class AggregateStatsOutput(Model):
    parties: int
    k: int | None
    group_by: tuple[str, ...]
    groups: Annotated[tuple[GroupStats, ...], Field(max_length=MAX_GROUPS)]
    suppressed_groups: int | None
    overall: Stats
    periods: tuple[PeriodTotal, ...]
    confidence: Num | None
    dp: DpInfo | None


def _sort_key(label: str | None) -> tuple[int, float, str]:
    if label is None:
        return (0, 0.0, "")
    try:
        x = float(label)
    except ValueError:
        return (2, 0.0, label)
    return (1, x, label) if math.isfinite(x) else (2, 0.0, label)


def _group_order(key: GroupKey) -> tuple[tuple[int, float, str], ...]:
    return tuple(_sort_key(v) for v in key)


def _label_columns(params: AggregateStatsParams) -> tuple[str, ...]:
    cols = (*params.group_by, *((params.period,) if params.period else ()))
    if len(set(cols)) != len(cols) or params.value in cols:
        raise InvalidInput("aggregate-stats: value, group_by and period must be distinct columns")
    return cols


def _admit(
    params: AggregateStatsParams, schemas: Sequence[SchemaText], privacy: PrivacyContext
) -> None:
    """Column roles against every input's schema and policy (the pre-check runs this too)."""
    labels = _label_columns(params)
    for i, schema in enumerate(schemas):
        names = {name for name, _ in schema}
        for col, role in ((params.value, "value"), *((c, "group or period") for c in labels)):
            if col not in names:
                raise InvalidInput(f"aggregate-stats: party {i + 1} has no column {col!r}")
            for rule, columns in (
                ("join-only", privacy.join_only[i]),
                ("never-output", privacy.never_output[i]),
            ):
                if col in columns:
                    raise PolicyDenied(
                        f"rule {rule}: party {i + 1} column {col!r} is {rule} in its owner's "
                        f"policy; it cannot be the {role}",
                        rule=rule,
                    )
    if params.dp is not None:
        lower = _stats.parse_num(params.dp.lower, what="dp.lower")
        upper = _stats.parse_num(params.dp.upper, what="dp.upper")
        if not lower < upper:
            raise InvalidInput("dp.lower must be below dp.upper")
        if Decimal(params.dp.epsilon) <= 0:
            raise InvalidInput("dp.epsilon must be positive")
        if labels and Decimal(params.dp.delta) <= 0:
            raise InvalidInput(
                "dp.delta must be positive with group_by or period: which groups appear is "
                "decided by DP partition selection"
            )


@dataclass(frozen=True, slots=True)
class _Stacked:
    """The usable rows of every input, stacked in input then row order.

    ``ents`` are entity codes in one space across inputs (declared entity values
    compare across inputs, so a customer known to two parties is one entity; a
    row of an input without an entity column is its own entity; -1: null),
    ``party`` and ``row`` where each row comes from, and ``gid`` its group, whose
    label tuple is ``keys[gid]``.
    """

    values: _stats.Floats
    ents: _stats.Codes
    party: _stats.Codes
    row: _stats.Codes
    gid: _stats.Codes
    keys: tuple[GroupKey, ...]
    parties: int

    def members(self) -> dict[GroupKey, _stats.Codes]:
        """Per group present, its row indices in stacked order."""
        order = np.argsort(self.gid, kind="stable")
        sorted_gid = self.gid[order]
        starts = np.flatnonzero(np.r_[True, sorted_gid[1:] != sorted_gid[:-1]])
        ends = np.r_[starts[1:], len(order)].astype(np.int64)
        return {
            self.keys[int(sorted_gid[s])]: order[s:e]
            for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
            if e > s
        }

    def fewest_entities(self) -> dict[GroupKey, int]:
        """Per group present: the fewest distinct entities any input has in it (0 when an
        input has no rows there)."""
        n_groups, n_parties = len(self.keys), self.parties
        named = self.ents >= 0
        g, p, e = self.gid[named], self.party[named], self.ents[named]
        per_party = np.zeros(n_groups * n_parties, dtype=np.int64)
        if len(g):
            cells = pa.table({"c": g * n_parties + p, "e": e})
            counted = cells.group_by("c").aggregate([("e", "count_distinct")])
            per_party[counted.column("c").to_numpy()] = counted.column(
                "e_count_distinct"
            ).to_numpy()
        fewest = per_party.reshape(n_groups, n_parties).min(axis=1)
        present = np.zeros(n_groups, dtype=np.bool_)
        present[self.gid] = True
        return {self.keys[i]: int(fewest[i]) for i in np.flatnonzero(present).tolist()}


def _compact(combined: _stats.Codes, bound: int) -> tuple[_stats.Codes, _stats.Codes]:
    """Dense ids 0..m-1 of ``combined`` (values in ``[0, bound)``) in increasing order of
    value, and one row of each (any: rows of a group share its labels); a lookup table
    when ``bound`` is small, else a sort."""
    if bound <= 4 * len(combined) + 1024:
        row = np.full(bound, -1, dtype=np.int64)
        row[combined] = np.arange(len(combined), dtype=np.int64)
        present = row >= 0
        dense = np.cumsum(present) - 1
        return dense[combined].astype(np.int64), row[present]
    _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
    return inverse.astype(np.int64).reshape(-1), first.astype(np.int64)


def _stack(
    inputs: Sequence[pa.Table],
    params: AggregateStatsParams,
    privacy: PrivacyContext,
    label_cols: Sequence[str],
) -> _Stacked:
    names = [f"party {i + 1}" for i in range(len(inputs))]
    values = [
        _stats.numbers(t, params.value, input_name=n) for t, n in zip(inputs, names, strict=True)
    ]
    declared = [
        (t, e, n)
        for t, e, n in zip(inputs, privacy.entity_columns, names, strict=False)
        if e is not None
    ]
    codes, space = _stats.encode_keys(declared)
    ents: list[_stats.Codes] = []
    next_code = space.size
    for e, table in zip(privacy.entity_columns, inputs, strict=False):
        if e is None:
            ents.append(np.arange(next_code, next_code + table.num_rows, dtype=np.int64))
            next_code += table.num_rows
        else:
            ents.append(codes.pop(0))
    all_values = np.concatenate(values) if values else np.zeros(0)
    usable = ~np.isnan(all_values)
    party = np.concatenate([np.full(t.num_rows, i, dtype=np.int64) for i, t in enumerate(inputs)])
    row = np.concatenate([np.arange(t.num_rows, dtype=np.int64) for t in inputs])
    # Group labels: integer codes per column (a null label is its own code), combined
    # into one mixed-radix key per row; labels are read back from the dictionaries.
    combined = np.zeros(int(np.count_nonzero(usable)), dtype=np.int64)
    bound = 1
    dictionaries: list[pa.Array] = []
    label_codes: list[_stats.Codes] = []
    for c in label_cols:
        parts, dictionary = _stats.encode_values(
            [(t, c, n) for t, n in zip(inputs, names, strict=True)]
        )
        code = np.concatenate(parts)[usable] if parts else np.zeros(0, dtype=np.int64)
        code = np.where(code < 0, len(dictionary), code)
        radix = len(dictionary) + 1
        if bound * radix >= 2**62:  # re-number the groups so far before the key overflows
            combined, _ = _compact(combined, bound)
            bound = int(combined.max()) + 1 if len(combined) else 1
        combined = combined * radix + code
        bound *= radix
        dictionaries.append(pa.concat_arrays([dictionary, pa.nulls(1, pa.string())]))
        label_codes.append(code)
    gid, first = _compact(combined, bound)
    labels = [
        d.take(pa.array(lc[first])).to_pylist()
        for d, lc in zip(dictionaries, label_codes, strict=True)
    ]
    keys: tuple[GroupKey, ...] = tuple(tuple(lab[i] for lab in labels) for i in range(len(first)))
    return _Stacked(
        values=all_values[usable],
        ents=np.concatenate(ents)[usable] if ents else np.zeros(0, dtype=np.int64),
        party=party[usable],
        row=row[usable],
        gid=gid,
        keys=keys,
        parties=len(inputs),
    )


def _growth(now: Stats, before: Stats | None) -> str | None:
    if before is None or before.sum is None or now.sum is None:
        return None
    prev = float(before.sum)
    return None if prev == 0 else _stats.num(float(now.sum) / prev - 1.0)


class _Totals(Protocol):
    """How a total over released groups is computed (exact rows, or DP post-processing)."""

    def of(self, keys: Sequence[GroupKey]) -> Stats: ...


def _layout(
    params: AggregateStatsParams, stats: dict[GroupKey, Stats], total: _Totals
) -> tuple[tuple[GroupStats, ...], Stats, tuple[PeriodTotal, ...]]:
    """Groups in label order with growth, the overall total and the period totals."""
    order = sorted(stats, key=_group_order)
    n_group = len(params.group_by)
    periods: list[str] = []
    if params.period:
        present = {key[n_group] for key in order if key[n_group] is not None}
        periods = sorted(present, key=_sort_key)  # type: ignore[arg-type]
    previous = {p: (periods[i - 1] if i else None) for i, p in enumerate(periods)}
    out_groups = []
    for key in order:
        period = key[n_group] if params.period else None
        growth = None
        if period is not None and previous.get(period) is not None:
            growth = _growth(stats[key], stats.get((*key[:n_group], previous[period])))
        out_groups.append(
            GroupStats(key=key[:n_group], period=period, stats=stats[key], growth=growth)
        )
    period_totals: list[PeriodTotal] = []
    for p in periods:
        st = total.of([key for key in order if key[n_group] == p])
        growth = _growth(st, period_totals[-1].stats) if period_totals else None
        period_totals.append(PeriodTotal(period=p, stats=st, growth=growth))
    return tuple(out_groups), total.of(order), tuple(period_totals)


# --- exact mode ---------------------------------------------------------------------


def _entity_values(inputs: Sequence[pa.Table], privacy: PrivacyContext) -> list[list[Hashable]]:
    """Per input, each row's entity value (the entity column's cell; the row number)."""
    out: list[list[Hashable]] = []
    for table, entity in zip(inputs, privacy.entity_columns, strict=True):
        if entity is None:
            out.append(list(range(table.num_rows)))
        else:
            out.append(table.column(entity).to_pylist())
    return out


class _Exact:
    """Exact statistics of sets of released rows, their percentiles gated, their footprints."""

    def __init__(
        self,
        stacked: _Stacked,
        released: dict[GroupKey, _stats.Codes],
        params: AggregateStatsParams,
        k: int,
        raw: list[list[Hashable]],
    ) -> None:
        self.stacked = stacked
        self.released = released
        self.percentiles = params.percentiles
        self.confidence = _stats.confidence_value(params.confidence)
        self.k = k
        self.raw = raw
        self.cells: list[list[frozenset[Hashable]]] = [[] for _ in range(stacked.parties)]

    def _rows(self, keys: Sequence[GroupKey]) -> _stats.Codes:
        parts = [self.released[key] for key in keys]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def _percentile(self, values: _stats.Floats, rows: _stats.Codes, p: int) -> str | None:
        """The p-th percentile, if every input has K entities strictly below and above it."""
        v = float(np.percentile(values, p))
        s = self.stacked
        for i in range(s.parties):
            mine = rows[s.party[rows] == i]
            for side in (s.values[mine] < v, s.values[mine] > v):
                if _stats.count_distinct(s.ents[mine][side]) < self.k:
                    return None
        return _stats.num(v)

    def of(self, keys: Sequence[GroupKey]) -> Stats:
        s = self.stacked
        rows = self._rows(keys)
        values = s.values[rows]
        n = len(values)
        for i in range(s.parties):
            mine = rows[(s.party[rows] == i) & (s.ents[rows] >= 0)]
            cell = frozenset(self.raw[i][r] for r in s.row[mine].tolist())
            if cell not in self.cells[i]:
                self.cells[i].append(cell)
        total = math.fsum(values.tolist()) if n else 0.0
        lo, hi = _stats.t_mean_ci(values, self.confidence)
        return Stats(
            rows=n,
            entities=_stats.count_distinct(s.ents[rows]),
            sum=_stats.num(total),
            mean=_stats.num(total / n if n else math.nan),
            ci_low=_stats.num(lo),
            ci_high=_stats.num(hi),
            percentiles=tuple(
                Percentile(p=p, value=self._percentile(values, rows, p) if n else None)
                for p in self.percentiles
            ),
        )

    def footprint(self) -> Footprint:
        return Footprint(cells=tuple(tuple(c) for c in self.cells))


def _cap(n: int, privacy: PrivacyContext) -> None:
    cap = min(MAX_GROUPS, privacy.max_output_rows or MAX_GROUPS)
    if n > cap:
        raise PolicyDenied(
            f"aggregate-stats: {n} groups exceed the cap of {cap} rows", rule="max-output-rows"
        )


def _run_exact(
    inputs: Sequence[pa.Table],
    params: AggregateStatsParams,
    privacy: PrivacyContext,
    stacked: _Stacked,
) -> Released:
    k = max(privacy.k)
    members = stacked.members()
    fewest = stacked.fewest_entities()
    released = {key: rows for key, rows in members.items() if fewest.get(key, 0) >= k}
    _cap(len(released), privacy)
    exact = _Exact(stacked, released, params, k, _entity_values(inputs, privacy))
    groups, overall, periods = _layout(params, {key: exact.of([key]) for key in released}, exact)
    output = AggregateStatsOutput(
        parties=len(inputs),
        k=k,
        group_by=params.group_by,
        groups=groups,
        suppressed_groups=len(members) - len(released),
        overall=overall,
        periods=periods,
        confidence=params.confidence,
        dp=None,
    )
    return Released(output=output, footprint=exact.footprint())


# --- DP mode ------------------------------------------------------------------------


class _DpTotals:
    """Totals in DP mode: post-processing of the released noisy group values."""

    def __init__(self, stats: dict[GroupKey, Stats], lower: float, upper: float) -> None:
        self.stats = stats
        self.lower, self.upper = lower, upper

    def of(self, keys: Sequence[GroupKey]) -> Stats:
        rows = sum(self.stats[key].rows or 0 for key in keys)
        total = math.fsum(float(self.stats[key].sum or 0) for key in keys)
        return Stats(
            rows=rows,
            entities=None,
            sum=_stats.num(total),
            mean=_stats.num(min(max(total / max(rows, 1), self.lower), self.upper)),
            ci_low=None,
            ci_high=None,
            percentiles=(),
        )


def dp_mechanism(
    inputs: Sequence[pa.Table], params: AggregateStatsParams, privacy: PrivacyContext
) -> dp_groups.Mechanism[AggregateStatsOutput]:
    """The DP release of ``params`` on ``inputs``, as a mechanism to run (see
    :class:`~sealroom.policy.dp_groups.Mechanism`)."""
    if params.dp is None:
        raise InvalidInput("aggregate-stats: this request has no dp parameters")
    label_cols = _label_columns(params)
    _admit(params, [schema_text(t.schema) for t in inputs], privacy)
    stacked = _stack(inputs, params, privacy, label_cols)
    dp_params = params.dp
    epsilon, delta = Decimal(dp_params.epsilon), Decimal(dp_params.delta)
    if epsilon > privacy.cost.epsilon or delta > privacy.cost.delta:
        raise PolicyDenied(
            f"aggregate-stats: dp (epsilon {dp_params.epsilon}, delta {dp_params.delta}) "
            f"exceeds the budget charged for this run ({privacy.cost.epsilon}, "
            f"{privacy.cost.delta})",
            rule="dp-budget",
        )
    if len(stacked.values) > dp_groups.MAX_ROWS:
        raise InvalidInput(f"aggregate-stats: DP takes at most {dp_groups.MAX_ROWS} rows")
    lower = _stats.parse_num(dp_params.lower, what="dp.lower")
    upper = _stats.parse_num(dp_params.upper, what="dp.upper")
    bounds = dp_groups.Bounds(dp_params.max_rows_per_entity, dp_params.max_groups_per_entity)
    labels_at = range(len(label_cols))
    labels = [f"__g{j}" for j in labels_at]
    schema: dict[str, pl.DataType] = {name: pl.String() for name in labels}
    schema |= {"__x": pl.Float64(), "__q": pl.Int64()}
    stats = [
        dp_groups.Statistic("__count", "count"),
        dp_groups.Statistic("__sum", "sum", "__q", dp_groups.integer_bounds((lower, upper))),
        *(
            dp_groups.Statistic(f"__p{p}", "quantile", "__x", (lower, upper), p / 100)
            for p in params.percentiles
        ),
    ]
    plan = dp_groups.plan(
        schema=schema,
        labels=labels,
        statistics=stats,
        bounds=bounds,
        epsilon=epsilon,
        delta=delta,
    )
    # The privacy unit: an entity of one input (identifier = entity code x parties + input).
    named = stacked.ents >= 0
    ident = stacked.ents[named] * stacked.parties + stacked.party[named]
    step = dp_groups.step_for((lower, upper))

    by_group = [pl.Series([key[j] for key in stacked.keys], dtype=pl.String) for j in labels_at]

    def frame() -> pl.DataFrame:
        kept = np.flatnonzero(named)[dp_groups.truncate(ident, stacked.gid[named], bounds)]
        values = stacked.values[kept]
        groups = stacked.gid[kept]
        columns = [by_group[j].gather(groups).alias(name) for j, name in enumerate(labels)]
        columns.append(pl.Series("__x", np.clip(values, lower, upper), pl.Float64))
        columns.append(pl.Series("__q", dp_groups.quantize(values, (lower, upper)), pl.Int64))
        return pl.DataFrame(columns)

    names = ["count", "sum", *(f"p{p}" for p in params.percentiles)]
    scales = [plan.scales["__count"], plan.scales["__sum"] * step] + [
        plan.scales[f"__p{p}"] for p in params.percentiles
    ]
    info = DpInfo(
        epsilon=dp_params.epsilon,
        delta=canonical_decimal(plan.delta),
        epsilon_per_statistic=canonical_decimal(plan.epsilon_each),
        statistics=tuple(names),
        noise_scales=tuple(_stats.num(s) or "0" for s in scales),
        threshold=plan.threshold,
        lower=_stats.num(lower) or "0",
        upper=_stats.num(upper) or "0",
        max_rows_per_entity=bounds.rows_per_group,
        max_groups_per_entity=bounds.groups,
        quantile_candidates=dp_groups.CANDIDATES,
        sum_granularity=_stats.num(step) or "0",
        mechanisms=(
            "count: OpenDP integer Laplace; with groups, released only if the noisy count "
            "reaches the threshold (DP partition selection)",
            "sum: values clamped to [lower, upper] and rounded to the sum granularity, "
            "OpenDP integer Laplace on the integer sum",
            "percentiles: OpenDP exponential mechanism over the public candidates",
            "mean: noisy sum / noisy count, clamped (post-processing)",
        ),
    )

    def release() -> AggregateStatsOutput:
        out = plan.release(frame()).frame
        released: dict[GroupKey, Stats] = {}
        for record in out.iter_rows(named=True):
            count = max(int(record["__count"]), 0)
            total = int(record["__sum"]) * step
            released[tuple(record[name] for name in labels)] = Stats(
                rows=count,
                entities=None,
                sum=_stats.num(total),
                mean=_stats.num(min(max(total / max(count, 1), lower), upper)),
                ci_low=None,
                ci_high=None,
                percentiles=tuple(
                    Percentile(p=p, value=_stats.num(float(record[f"__p{p}"])))
                    for p in params.percentiles
                ),
            )
        _cap(len(released), privacy)
        groups, overall, periods = _layout(params, released, _DpTotals(released, lower, upper))
        return AggregateStatsOutput(
            parties=stacked.parties,
            k=None,
            group_by=params.group_by,
            groups=groups,
            suppressed_groups=None,
            overall=overall,
            periods=periods,
            confidence=None,
            dp=info,
        )

    return dp_groups.Mechanism(plan=plan, release=release)


def run(
    inputs: Sequence[pa.Table], params: AggregateStatsParams, privacy: PrivacyContext
) -> AggregateStatsOutput | Released:
    if params.dp is not None:
        return dp_mechanism(inputs, params, privacy).release()
    _admit(params, [schema_text(t.schema) for t in inputs], privacy)
    _stats.confidence_value(params.confidence)
    stacked = _stack(inputs, params, privacy, _label_columns(params))
    return _run_exact(inputs, params, privacy, stacked)


def _cost(params: AggregateStatsParams) -> PrivacyCost:
    if params.dp is None:
        return ZERO_COST
    return PrivacyCost(epsilon=Decimal(params.dp.epsilon), delta=Decimal(params.dp.delta))


def _columns(params: AggregateStatsParams, n_inputs: int) -> tuple[ColumnUse, ...]:
    """The columns the request names (checked against the schemas before any row is read)."""
    return (
        ColumnUse(params.value, "numeric", "value"),
        *(ColumnUse(c, "key", "group_by") for c in params.group_by),
        *(() if params.period is None else (ColumnUse(params.period, "key", "period"),)),
    )


COMPUTATION = Computation(
    id="aggregate-stats",
    version="2.3.0",
    summary=(
        "Per-group count, sum, mean, percentiles and growth over the stacked rows of 2 or "
        "more parties: entity-level DP (OpenDP; groups by partition selection), or the "
        "owner's pinned shape exactly, with k entities of every input behind every number."
    ),
    privacy_class="aggregate",
    release="all-parties",
    input_names=("party", "party"),
    params=AggregateStatsParams,
    output=AggregateStatsOutput,
    run_fn=run,
    columns_fn=_columns,
    modules=(sys.modules[__name__], _stats, dp_groups),
    cost_fn=_cost,
    variadic=True,
    isolating=("value", "group_by", "period", "percentiles"),
    admit_fn=_admit,
)
