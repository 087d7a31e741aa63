"""aggregate-stats: market statistics over the stacked rows of 2 or more parties.

Privacy contract (class ``aggregate``, released to every party):

* Groups: rows of every input are stacked and grouped by ``group_by`` (and by
  ``period`` when given). A group is released only if (1) its rows hold at
  least K distinct entities counted across all parties (entity values of the
  policies' entity columns are compared across inputs, so a customer known to
  two parties counts once; an input without an entity column counts rows; null
  entities never count), and (2) every party that has rows in the group has at
  least K distinct entities in it on its own, because a party that receives the
  output could otherwise subtract its own rows and isolate another party's
  few entities. K is the **strictest** threshold: the largest ``k`` of all the
  inputs. Suppressed groups are only counted (``suppressed_groups``).
* Totals (``overall`` and ``periods``) are computed over the rows of RELEASED
  groups only (never "total minus shown groups"), so a suppressed group cannot
  be rebuilt by subtraction; growth rates compare released values only.
* Columns: ``value``, ``group_by`` and ``period`` may not be ``join_only`` or
  ``never_output`` columns of any input (group labels are output).
* DP (optional, ``dp``): count of distinct entities, sum, mean and every
  percentile of each released group are OpenDP releases
  (:mod:`sealroom.policy.dp`); values are clamped to ``[lower, upper]``; each
  entity keeps at most ``max_rows_per_entity`` rows per group (the sensitivity
  factor of each measurement) in at most ``max_groups_per_entity`` groups
  (the first in group order; further rows are dropped before anything is
  computed). Each statistic gets epsilon / (statistics per group x
  max_groups_per_entity), rounded down, so one entity's total loss is at most
  ``epsilon``, which is the cost charged on every input before the run. Totals
  are post-processing of the noisy group values; row counts and confidence
  intervals are not released in DP mode. Which groups appear is still decided
  by the exact threshold above (group presence is not itself DP).

Statistics (non-DP): rows, distinct entities, sum, mean, a Student-t
confidence interval of the mean (rows as observations), and percentiles by
linear interpolation (numpy's default). Growth: with ``period``, periods are
ordered numerically when every label is a number, else as text; a group's
growth is sum / sum of the previous period (in the order of periods present in
released groups) minus 1, null when that earlier group is not released or its
sum is 0. Numbers: see :mod:`sealroom.computations._stats` (decimal strings of
12 significant digits; unusable value cells are treated as absent rows).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Context, Decimal
from typing import Annotated

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator

from sealroom.computations import _stats
from sealroom.computations._stats import ColumnName, Confidence, Model, Num, ParamsModel
from sealroom.computations.base import ZERO_COST, Computation, PrivacyContext, PrivacyCost
from sealroom.errors import InvalidInput, PolicyDenied
from sealroom.policy import dp as dpm
from sealroom.policy import suppression
from sealroom.statements.fields import canonical_decimal

__all__ = [
    "COMPUTATION",
    "AggregateStatsOutput",
    "AggregateStatsParams",
    "DpParams",
    "GroupStats",
    "Stats",
    "run",
]

MAX_GROUPS = 10_000

GroupKey = tuple[str | None, ...]


class DpParams(ParamsModel):
    epsilon: Num
    lower: Num
    upper: Num
    max_rows_per_entity: Annotated[int, Field(ge=1, le=1000)] = 1
    max_groups_per_entity: Annotated[int, Field(ge=1, le=1000)] = 1


class AggregateStatsParams(ParamsModel):
    value: ColumnName
    group_by: Annotated[tuple[ColumnName, ...], Field(max_length=4)] = ()
    period: ColumnName | None = None
    percentiles: Annotated[tuple[Annotated[int, Field(ge=1, le=99)], ...], Field(max_length=9)] = (
        25,
        50,
        75,
    )
    confidence: Confidence = "0.95"
    dp: DpParams | None = None

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
    rows: Annotated[int, Field(ge=0)] | None
    entities: Annotated[int, Field(ge=0)]
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
    epsilon: Num
    epsilon_per_statistic: Num
    lower: Num
    upper: Num
    max_rows_per_entity: int
    max_groups_per_entity: int
    mechanisms: tuple[str, ...]
    granularity: tuple[str, ...]


class AggregateStatsOutput(Model):
    parties: int
    k: int
    group_by: tuple[str, ...]
    groups: Annotated[tuple[GroupStats, ...], Field(max_length=MAX_GROUPS)]
    suppressed_groups: int
    overall: Stats
    periods: tuple[PeriodTotal, ...]
    confidence: Num
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


def _exact_stats(
    values: _stats.Floats, ents: _stats.Codes, percentiles: Sequence[int], confidence: float
) -> Stats:
    """Exact statistics of one set of rows (``values`` in stacked row order)."""
    n = len(values)
    total = math.fsum(values.tolist()) if n else 0.0
    mean = total / n if n else math.nan
    lo, hi = _stats.t_mean_ci(values, confidence)
    pct = (
        np.percentile(values, list(percentiles))
        if n and percentiles
        else [math.nan] * len(percentiles)
    )
    return Stats(
        rows=n,
        entities=_stats.count_distinct(ents),
        sum=_stats.num(total),
        mean=_stats.num(mean),
        ci_low=_stats.num(lo),
        ci_high=_stats.num(hi),
        percentiles=tuple(
            Percentile(p=p, value=_stats.num(float(v)))
            for p, v in zip(percentiles, pct, strict=True)
        ),
    )


class _DpPlan:
    """Budget split and clamping for DP mode; every release goes through sealroom.policy.dp."""

    def __init__(self, params: DpParams, n_percentiles: int, privacy: PrivacyContext) -> None:
        self.epsilon = Decimal(params.epsilon)
        if self.epsilon <= 0:
            raise InvalidInput("dp.epsilon must be positive")
        if self.epsilon > privacy.cost.epsilon:
            raise PolicyDenied(
                f"aggregate-stats: dp.epsilon {params.epsilon} exceeds the budget charged for "
                f"this run ({privacy.cost.epsilon})"
            )
        self.lower = _stats.parse_num(params.lower, what="dp.lower")
        self.upper = _stats.parse_num(params.upper, what="dp.upper")
        if not self.lower < self.upper:
            raise InvalidInput("dp.lower must be below dp.upper")
        self.rows_per_entity = params.max_rows_per_entity
        self.groups_per_entity = params.max_groups_per_entity
        n_stats = 3 + n_percentiles
        self.per_stat = Context(prec=28, rounding=ROUND_DOWN).divide(
            self.epsilon, Decimal(n_stats * self.groups_per_entity)
        )
        self.mechanisms: dict[str, str] = {}

    def bound(self, ents: _stats.Codes, members: dict[GroupKey, _stats.Codes]) -> _stats.Bools:
        """Rows kept within each entity's contribution bounds (deterministic, in group order)."""
        keep = np.zeros(len(ents), dtype=np.bool_)
        seen_groups: dict[int, set[GroupKey]] = {}
        for key in sorted(members, key=_group_order):
            per_entity: dict[int, int] = {}
            for i in members[key].tolist():
                ent = int(ents[i])
                if ent < 0:
                    continue  # an unidentified row cannot be bounded: leave it out in DP mode
                mine = seen_groups.setdefault(ent, set())
                if key not in mine:
                    if len(mine) >= self.groups_per_entity:
                        continue
                    mine.add(key)
                if per_entity.get(ent, 0) >= self.rows_per_entity:
                    continue
                per_entity[ent] = per_entity.get(ent, 0) + 1
                keep[i] = True
        return keep

    def stats(
        self, values_array: _stats.Floats, ents: _stats.Codes, percentiles: Sequence[int]
    ) -> Stats:
        values = values_array.tolist()
        bounds = (self.lower, self.upper)
        mc = self.rows_per_entity
        members = np.unique(ents[ents >= 0]).tolist()
        count = dpm.dp_count(members, epsilon=self.per_stat)
        total = dpm.dp_sum(values, bounds=bounds, epsilon=self.per_stat, max_contributions=mc)
        mean = dpm.dp_mean(values, bounds=bounds, epsilon=self.per_stat, max_contributions=mc)
        pcts = []
        for p in percentiles:
            rel = dpm.dp_quantile(values, bounds=bounds, q=p / 100, epsilon=self.per_stat)
            self.mechanisms.setdefault(rel.mechanism, rel.granularity)
            pcts.append(Percentile(p=p, value=_stats.num(float(rel.value))))
        for rel in (count, total, mean):
            self.mechanisms.setdefault(rel.mechanism, rel.granularity)
        return Stats(
            rows=None,
            entities=max(int(count.value), 0),
            sum=_stats.num(float(total.value)),
            mean=_stats.num(float(mean.value)),
            ci_low=None,
            ci_high=None,
            percentiles=tuple(pcts),
        )

    def info(self) -> DpInfo:
        return DpInfo(
            epsilon=canonical_decimal(self.epsilon),
            epsilon_per_statistic=canonical_decimal(self.per_stat),
            lower=_stats.num(self.lower) or "0",
            upper=_stats.num(self.upper) or "0",
            max_rows_per_entity=self.rows_per_entity,
            max_groups_per_entity=self.groups_per_entity,
            mechanisms=tuple(sorted(self.mechanisms)),
            granularity=tuple(self.mechanisms[m] for m in sorted(self.mechanisms)),
        )


def _dp_total(parts: Sequence[Stats]) -> Stats:
    """Totals in DP mode: post-processing of the released noisy group values."""
    total = math.fsum(float(s.sum) for s in parts if s.sum is not None)
    return Stats(
        rows=None,
        entities=sum(s.entities for s in parts),
        sum=_stats.num(total),
        mean=None,
        ci_low=None,
        ci_high=None,
        percentiles=(),
    )


def _growth(now: Stats, before: Stats | None) -> str | None:
    if before is None or before.sum is None or now.sum is None:
        return None
    prev = float(before.sum)
    return None if prev == 0 else _stats.num(float(now.sum) / prev - 1.0)


@dataclass(frozen=True, slots=True)
class _Stacked:
    """The usable rows of every input, stacked in input then row order.

    ``ents`` are entity codes in one space across inputs (declared entity values
    compare across inputs, so a customer known to two parties is one entity; a
    row of an input without an entity column is its own entity; -1: null), and
    ``gid`` the group of each row, whose label tuple is ``keys[gid]``.
    """

    values: _stats.Floats
    ents: _stats.Codes
    party: _stats.Codes
    gid: _stats.Codes
    keys: tuple[GroupKey, ...]

    def filter(self, mask: _stats.Bools) -> _Stacked:
        return _Stacked(
            values=self.values[mask],
            ents=self.ents[mask],
            party=self.party[mask],
            gid=self.gid[mask],
            keys=self.keys,
        )

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

    def effective_entities(self) -> dict[tuple[object, ...], int]:
        """Per group: distinct entities across parties, but no more than any contributing
        party has on its own (a recipient could subtract its own rows)."""
        n_groups = len(self.keys)
        n_parties = int(self.party.max()) + 1 if len(self.party) else 1
        named = self.ents >= 0
        g, p, e = self.gid[named], self.party[named], self.ents[named]
        n_ents = int(e.max()) + 1 if len(e) else 1
        union = np.zeros(n_groups, dtype=np.int64)
        per_party = np.zeros(n_groups * n_parties, dtype=np.int64)
        if n_groups * n_ents * n_parties < 2**62:
            # One sort of the (group, entity, party) triples gives both counts: distinct
            # triples per (group, party), and distinct (group, entity) runs per group.
            triples = np.sort((g * n_ents + e) * n_parties + p)
            triples = triples[np.r_[True, triples[1:] != triples[:-1]]]
            pair = triples // n_parties
            group = pair // n_ents
            per_party += np.bincount(
                group * n_parties + (triples - pair * n_parties), minlength=n_groups * n_parties
            )
            new_pair = np.r_[True, pair[1:] != pair[:-1]]
            union += np.bincount(group[new_pair], minlength=n_groups)
        else:
            rows = pa.table({"g": g, "p": p, "e": e})
            by_group = rows.group_by("g").aggregate([("e", "count_distinct")])
            union[by_group.column("g").to_numpy()] = by_group.column("e_count_distinct").to_numpy()
            by_party = rows.group_by(["g", "p"]).aggregate([("e", "count_distinct")])
            cell = by_party.column("g").to_numpy() * n_parties + by_party.column("p").to_numpy()
            per_party[cell] = by_party.column("e_count_distinct").to_numpy()
        contributing = np.zeros(n_groups * n_parties, dtype=np.bool_)
        contributing[self.gid * n_parties + self.party] = True
        smallest = np.where(contributing, per_party, np.iinfo(np.int64).max).reshape(
            n_groups, n_parties
        )
        effective = np.minimum(union, smallest.min(axis=1))
        present = contributing.reshape(n_groups, n_parties).any(axis=1)
        return {self.keys[i]: int(effective[i]) for i in np.flatnonzero(present).tolist()}


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
    values: list[_stats.Floats] = []
    for index, table in enumerate(inputs):
        name = f"party {index + 1}"
        _stats.check_use(privacy, index, params.value, input_name=name, role="value")
        for col in label_cols:
            _stats.check_use(privacy, index, col, input_name=name, role="group or period")
        values.append(_stats.numbers(table, params.value, input_name=name))
    names = [f"party {i + 1}" for i in range(len(inputs))]
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
        gid=gid,
        keys=keys,
    )


def run(
    inputs: Sequence[pa.Table], params: AggregateStatsParams, privacy: PrivacyContext
) -> AggregateStatsOutput:
    label_cols = (*params.group_by, *((params.period,) if params.period else ()))
    if len(set(label_cols)) != len(label_cols) or params.value in label_cols:
        raise InvalidInput("aggregate-stats: value, group_by and period must be distinct columns")
    confidence = _stats.confidence_value(params.confidence)
    plan = None if params.dp is None else _DpPlan(params.dp, len(params.percentiles), privacy)
    k = max(privacy.k)
    stacked = _stack(inputs, params, privacy, label_cols)
    if plan is not None:
        stacked = stacked.filter(plan.bound(stacked.ents, stacked.members()))
    members = stacked.members()
    effective = stacked.effective_entities()
    kept = suppression.suppress({key: key for key in members}, entities=effective, k=k)
    released = {key: members[key] for key in members if key in kept.released}
    if len(released) > MAX_GROUPS or (
        privacy.max_output_rows is not None and len(released) > privacy.max_output_rows
    ):
        cap = min(MAX_GROUPS, privacy.max_output_rows or MAX_GROUPS)
        raise PolicyDenied(f"aggregate-stats: {len(released)} groups exceed the cap of {cap} rows")

    def rows_of(keys: Sequence[GroupKey]) -> _stats.Codes:
        parts = [released[key] for key in keys]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def exact(keys: Sequence[GroupKey]) -> Stats:
        rows = rows_of(keys)
        return _exact_stats(
            stacked.values[rows], stacked.ents[rows], params.percentiles, confidence
        )

    def stats_of(key: GroupKey) -> Stats:
        if plan is None:
            return exact([key])
        rows = released[key]
        return plan.stats(stacked.values[rows], stacked.ents[rows], params.percentiles)

    order = sorted(released, key=_group_order)
    stats = {key: stats_of(key) for key in order}
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
    overall = exact(order) if plan is None else _dp_total([stats[key] for key in order])
    period_totals: list[PeriodTotal] = []
    for p in periods:
        in_period = [key for key in order if key[n_group] == p]
        st = exact(in_period) if plan is None else _dp_total([stats[key] for key in in_period])
        growth = _growth(st, period_totals[-1].stats) if period_totals else None
        period_totals.append(PeriodTotal(period=p, stats=st, growth=growth))
    return AggregateStatsOutput(
        parties=len(inputs),
        k=k,
        group_by=params.group_by,
        groups=tuple(out_groups),
        suppressed_groups=kept.suppressed_groups,
        overall=overall,
        periods=tuple(period_totals),
        confidence=params.confidence,
        dp=None if plan is None else plan.info(),
    )


def _cost(params: AggregateStatsParams) -> PrivacyCost:
    if params.dp is None:
        return ZERO_COST
    return PrivacyCost(epsilon=Decimal(params.dp.epsilon))


COMPUTATION = Computation(
    id="aggregate-stats",
    version="1.1.0",
    summary=(
        "Per-group count, sum, mean, confidence interval, percentiles and period-over-period "
        "growth over the stacked rows of 2 or more parties; small groups suppressed; optional DP."
    ),
    privacy_class="aggregate",
    release="all-parties",
    input_names=("party", "party"),
    params=AggregateStatsParams,
    output=AggregateStatsOutput,
    run_fn=run,
    modules=(sys.modules[__name__], _stats, dpm, suppression),
    cost_fn=_cost,
    variadic=True,
    isolating=("value", "group_by", "period", "percentiles"),
)
