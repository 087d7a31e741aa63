"""The mediated analytics computations against the same statistics in plain DuckDB / numpy.

    python -m bench.bench_analytics [--rows 200000] [--repeat 5] [--quick | --smoke] [--only lift,...]

Data: statsmodels' bundled RAND Health Insurance Experiment panel (``randhie``,
20,190 person-years, real and offline), replicated to ``--rows`` rows with a
shuffled unique ``id`` per row and the numeric columns jittered (so replicas
are not exact ties). Two parties split it by columns and rows: party a holds
rows 0..80% (id, visits, coinsurance, plan, health), party b rows 20..100%
(id, disease, income, limitation), so 60% of the ids match. aggregate-stats
deals the rows round-robin to three parties.

For every computation, in the same run:

* plaintext: the same statistic computed directly on the plaintext Arrow
  tables with DuckDB SQL or numpy / scipy / statsmodels: no thresholds, no
  checks, no cross-type identifier matching (the irreducible compute);
* mediated: ``Computation.run`` on the same tables with a realistic
  :class:`PrivacyContext` (entity column ``id``, k = 10), which is what the
  enclave does after unsealing and checking the commitments.

The ratio mediated / plaintext has a target of 1.2x (lower is better). Each
mediated result is checked against its plaintext value before anything is
timed, so the two sides compute the same statistic. For ``sql-aggregate`` the
plaintext side is also measured with the engine's per-group
``COUNT(DISTINCT entity)`` added ("plaintext + k counts"): the threshold needs
that count and the plain statistic does not, so it is reported separately;
likewise for ``aggregate-stats`` ("plaintext + k counts": the statistic plus the
distinct entities per group across parties and per party, which the threshold
and the subtraction rule need).
DuckDB runs with one thread on both sides (the enclave runs it with one thread
for a deterministic result). Whole ``execute_job`` runs are measured by
``bench.bench_job``; unsealing is excluded here by design.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import statsmodels.api as sm
from pydantic import BaseModel
from scipy import stats
from statsmodels.stats.proportion import proportions_ztest

from bench._harness import median_seconds
from sealroom.computations import PrivacyContext, default_registry

TARGET = 1.2
K = 10
SMOKE_ROWS = 3000
WIDE = ["-1000000", "1000000"]  # public bounds that clip nothing here
SEED = 20_260_101
SQL_RULES: dict[str, Any] = {
    "aggregations": ["count", "count_distinct", "sum", "avg", "min", "max"],
    "aggregate_columns": ["visits", "disease", "income", "coins"],
    "dimension_columns": ["coins", "health", "plan", "limitation"],
    "filter_columns": ["income", "disease"],
    "join_columns": ["id"],
    "identity_columns": ["id"],
}
SQL = (
    "SELECT a.coins, COUNT(*) AS n, SUM(a.visits) AS visits, AVG(b.disease) AS disease "
    "FROM a JOIN b ON a.id = b.id GROUP BY a.coins ORDER BY a.coins"
)


@dataclass(frozen=True)
class Case:
    name: str
    computation: str
    inputs: tuple[pa.Table, ...]
    params: dict[str, Any]
    privacy: PrivacyContext
    plaintext: Callable[[], Any]
    # (mediated output, plaintext result) -> raises when they disagree
    check: Callable[[Any, Any], None]
    extra: tuple[tuple[str, Callable[[], Any]], ...] = ()


def _close(got: str | float | None, want: float, what: str, rel: float = 1e-9) -> None:
    if got is None or not math.isclose(float(got), want, rel_tol=rel, abs_tol=1e-12):
        raise AssertionError(f"{what}: mediated {got} != plaintext {want}")


def _randhie(rows: int) -> pa.Table:
    """randhie replicated to ``rows`` rows: shuffled unique ids, jittered measurements."""
    df = sm.datasets.randhie.load_pandas().data
    reps = -(-rows // len(df))
    idx = np.tile(np.arange(len(df)), reps)[:rows]
    rng = np.random.default_rng(SEED)
    jitter = (lambda scale: rng.normal(0.0, scale, rows)) if reps > 1 else (lambda _s: 0.0)
    return pa.table(
        {
            "id": rng.permutation(rows).astype(np.int64),
            "visits": df["mdvis"].to_numpy()[idx],  # int64 counts, kept integral
            "coins": df["lncoins"].to_numpy()[idx],  # 5 levels, a dimension
            "plan": df["idp"].to_numpy()[idx],  # 0/1: individual deductible plan
            "health": df["hlthg"].to_numpy()[idx],  # 0/1: good health
            "disease": df["disea"].to_numpy()[idx] + jitter(0.01),
            "income": df["lpi"].to_numpy()[idx] + jitter(0.001),
            "limitation": df["physlm"].to_numpy()[idx],
        }
    )


def _split(base: pa.Table) -> tuple[pa.Table, pa.Table]:
    n = base.num_rows
    a = base.slice(0, n * 8 // 10).select(["id", "visits", "coins", "plan", "health"])
    b = base.slice(n * 2 // 10).select(["id", "disease", "income", "limitation"])
    return a, b


def _coded(values: np.ndarray) -> np.ndarray:
    """Exact mode's influence bound when every identifier is its own entity: values top- and
    bottom-coded at the K-th largest and K-th smallest (part of the statistic released)."""
    v = np.asarray(values, dtype=np.float64)
    lo = np.partition(v, K - 1)[K - 1]
    hi = np.partition(v, len(v) - K)[len(v) - K]
    return np.clip(v, lo, hi)


def _connect() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(":memory:", config={"threads": 1})


def _joined(a: pa.Table, b: pa.Table, cols_a: Sequence[str], cols_b: Sequence[str]) -> pa.Table:
    """Inner join on id with pyarrow (what a plaintext analyst would do)."""
    return a.select(["id", *cols_a]).join(b.select(["id", *cols_b]), keys="id", join_type="inner")


def _cases(base: pa.Table) -> list[Case]:
    a, b = _split(base)
    privacy2 = PrivacyContext(k=(K, K), entity_columns=("id", "id"))
    cases: list[Case] = []

    # -- sql-aggregate -------------------------------------------------------------
    def sql_plain(count_entities: bool = False) -> list[tuple[Any, ...]]:
        con = _connect()
        try:
            con.register("a", a)
            con.register("b", b)
            sql = SQL
            if count_entities:
                sql = SQL.replace(
                    " FROM", ", COUNT(DISTINCT a.id) AS ka, COUNT(DISTINCT b.id) AS kb FROM", 1
                )
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def sql_check(out: Any, rows: list[tuple[Any, ...]]) -> None:
        assert len(out.rows) == len(rows), (out.rows, rows)
        for got, want in zip(out.rows, rows, strict=True):
            _close(got[1], want[1], "sql n")
            _close(got[2], want[2], "sql sum", rel=1e-11)
            _close(got[3], want[3], "sql avg", rel=1e-11)

    cases.append(
        Case(
            name="sql-aggregate",
            computation="sql-aggregate",
            inputs=(a, b),
            params={"sql": SQL},
            privacy=PrivacyContext(
                k=(K, K), entity_columns=("id", "id"), analysis=(SQL_RULES, SQL_RULES)
            ),
            plaintext=sql_plain,
            check=sql_check,
            extra=(("plaintext + k counts", lambda: sql_plain(True)),),
        )
    )

    # -- correlation -----------------------------------------------------------------
    def corr_plain() -> tuple[float, float, int]:
        j = _joined(a, b, ["visits"], ["disease"])
        x = _coded(j.column("visits").to_numpy())
        y = _coded(j.column("disease").to_numpy())
        return (
            float(stats.pearsonr(x, y).statistic),
            float(stats.spearmanr(x, y).statistic),
            len(x),
        )

    def corr_check(out: Any, want: tuple[float, float, int]) -> None:
        assert out.n == want[2]
        _close(out.pearson.estimate, want[0], "pearson r", rel=1e-10)
        _close(out.spearman.estimate, want[1], "spearman rho", rel=1e-10)

    cases.append(
        Case(
            "correlation",
            "correlation",
            (a, b),
            {"x": "visits", "y": "disease", "x_bounds": WIDE, "y_bounds": WIDE},
            privacy2,
            corr_plain,
            corr_check,
        )
    )

    # -- aggregate-stats (3 parties, stacked) ---------------------------------------------
    cols3 = ["id", "coins", "health", "visits"]
    parties = tuple(base.select(cols3).take(np.arange(p, base.num_rows, 3)) for p in range(3))
    pcts = (25, 50, 75)

    def agg_entities() -> list[tuple[Any, ...]]:
        """The extra privacy work alone: distinct entities per group and per (group, party)."""
        con = _connect()
        try:
            for p, t in enumerate(parties):
                con.register(f"p{p}", t)
            return con.execute(
                "WITH s AS (SELECT *, 0 AS party FROM p0 UNION ALL SELECT *, 1 FROM p1 UNION ALL "
                "SELECT *, 2 FROM p2), per AS (SELECT coins, health, party, COUNT(DISTINCT id) AS n "
                "FROM s GROUP BY ALL) SELECT coins, health, MIN(n) FROM per GROUP BY ALL "
                "UNION ALL SELECT coins, health, COUNT(DISTINCT id) FROM s GROUP BY ALL"
            ).fetchall()
        finally:
            con.close()

    def agg_plain() -> dict[tuple[float, int], tuple[int, float, float, float, float]]:
        con = _connect()
        try:
            for p, t in enumerate(parties):
                con.register(f"p{p}", t)
            rows = con.execute(
                "WITH s AS (SELECT * FROM p0 UNION ALL SELECT * FROM p1 UNION ALL "
                "SELECT * FROM p2) SELECT coins, health, COUNT(*), SUM(visits), AVG(visits), "
                "STDDEV_SAMP(visits), QUANTILE_CONT(visits, [0.25, 0.5, 0.75]) "
                "FROM s GROUP BY coins, health"
            ).fetchall()
        finally:
            con.close()
        out = {}
        for coins, health, n, total, mean, sd, qs in rows:
            half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
            out[(coins, health)] = (n, float(total), mean, mean - half, qs[1])
        return out

    def agg_check(out: Any, want: dict[tuple[float, int], tuple[Any, ...]]) -> None:
        # Groups below k in some party are withheld, and a percentile without k entities of
        # every party strictly on each side is withheld: check what is released.
        assert 0 < len(out.groups) <= len(want)
        for g in out.groups:
            n, total, mean, lo, median = want[(float(g.key[0]), int(g.key[1]))]
            assert g.stats.rows == n
            _close(g.stats.sum, total, "group sum", rel=1e-11)
            _close(g.stats.mean, mean, "group mean", rel=1e-10)
            _close(g.stats.ci_low, lo, "group ci", rel=1e-8)
            if g.stats.percentiles[1].value is not None:
                _close(g.stats.percentiles[1].value, median, "group median", rel=1e-10)

    cases.append(
        Case(
            "aggregate-stats",
            "aggregate-stats",
            parties,
            {"value": "visits", "group_by": ["coins", "health"], "percentiles": list(pcts)},
            PrivacyContext(k=(K, K, K), entity_columns=("id", "id", "id")),
            agg_plain,
            agg_check,
            extra=(
                ("entity counts alone", agg_entities),
                ("plaintext + k counts", lambda: (agg_plain(), agg_entities())),
            ),
        )
    )

    # -- intersection-overlap --------------------------------------------------------------
    def overlap_plain() -> tuple[int, int, int]:
        ua, ub = pc.unique(a.column("id")), pc.unique(b.column("id"))
        both = pc.sum(pc.is_in(ua, value_set=ub)).as_py()
        return len(ua), len(ub), both

    def overlap_check(out: Any, want: tuple[int, int, int]) -> None:
        assert (out.size_a, out.size_b, out.overlap) == want, (out, want)

    cases.append(
        Case(
            "intersection-overlap",
            "intersection-overlap",
            (a, b),
            {},
            privacy2,
            overlap_plain,
            overlap_check,
        )
    )

    # -- intersection-sum --------------------------------------------------------------
    def isum_plain() -> tuple[int, float, float]:
        keep = pc.is_in(b.column("id"), value_set=pc.unique(a.column("id")))
        v = _coded(b.filter(keep).column("income").to_numpy())
        lo, _ = stats.t.interval(0.95, len(v) - 1, loc=np.mean(v), scale=stats.sem(v))
        return len(v), math.fsum(v), float(lo)

    def isum_check(out: Any, want: tuple[int, float, float]) -> None:
        assert out.overlap == want[0]
        _close(out.sum, want[1], "intersection sum", rel=1e-11)
        _close(out.ci_low, want[2], "intersection ci", rel=1e-9)

    cases.append(
        Case(
            "intersection-sum",
            "intersection-sum",
            (a, b),
            {"value": "income", "value_bounds": WIDE},
            privacy2,
            isum_plain,
            isum_check,
        )
    )

    # -- lift: exposure = plan (1 test, 0 control) of a, conversions = good health in b ----------
    exposure = a.select(["id"]).append_column(
        "group",
        pc.if_else(pc.equal(a.column("plan"), 1), pa.scalar("test"), pa.scalar("control")),
    )
    conversions = b.select(["id"]).append_column(
        "converted", pc.greater(b.column("limitation"), 0.0)
    )

    def lift_plain() -> tuple[float, float]:
        con = _connect()
        try:
            con.register("e", exposure)
            con.register("c", conversions)
            rows = con.execute(
                'SELECT e."group", COUNT(*), COUNT(c.id) FROM e LEFT JOIN '
                "(SELECT id FROM c GROUP BY id HAVING BOOL_OR(converted)) c ON e.id = c.id "
                'GROUP BY e."group" ORDER BY e."group" DESC'
            ).fetchall()
        finally:
            con.close()
        (_, n_t, c_t), (_, n_c, c_c) = rows
        z, p = proportions_ztest([c_t, c_c], [n_t, n_c])
        return float(z), float(p)

    def lift_check(out: Any, want: tuple[float, float]) -> None:
        _close(out.z, want[0], "lift z", rel=1e-9)
        _close(out.p_value, want[1], "lift p", rel=1e-6)

    cases.append(
        Case(
            "lift",
            "lift",
            (exposure, conversions),
            {"group": "group", "conversion": "converted"},
            privacy2,
            lift_plain,
            lift_check,
        )
    )

    # -- association-test: does the number of visits (a) predict good health (b)? -------------
    def assoc_plain() -> tuple[float, float]:
        j = _joined(a, b, ["visits"], ["limitation"])
        x = _coded(j.column("visits").to_numpy())
        y = j.column("limitation").to_numpy() > 0
        res = stats.ttest_ind(x[y], x[~y], equal_var=False)
        return float(res.statistic), float(np.corrcoef(x, y)[0, 1])

    def assoc_check(out: Any, want: tuple[float, float]) -> None:
        _close(out.statistic, want[0], "welch t", rel=1e-9)
        _close(out.correlation, want[1], "point-biserial r", rel=1e-9)

    outcome = b.select(["id"]).append_column("limited", pc.greater(b.column("limitation"), 0.0))
    cases.append(
        Case(
            "association-test",
            "association-test",
            (a, outcome),
            {"signal": "visits", "signal_bounds": WIDE, "outcome": "limited"},
            privacy2,
            assoc_plain,
            assoc_check,
        )
    )

    # -- train-model: logistic regression of plan on features from both parties --------------
    feats_a, feats_b = ["visits", "coins"], ["disease", "income"]

    def train_plain() -> np.ndarray:
        j = _joined(a, b, ["plan", *feats_a], ["disease", "income"]).sort_by("id")
        y = j.column("plan").to_numpy().astype(np.float64)
        x = np.column_stack(
            [j.column(c).to_numpy().astype(np.float64) for c in (*feats_a, *feats_b)]
        )
        order = np.random.default_rng(0).permutation(len(y))
        train = np.sort(order[len(y) // 4 :])
        design = sm.add_constant(x[train], has_constant="add")
        fit = sm.GLM(y[train], design, family=sm.families.Binomial()).fit()
        return np.asarray(fit.params)

    def train_check(out: Any, want: np.ndarray) -> None:
        for coef, w in zip(out.coefficients, want, strict=True):
            _close(coef.estimate, float(w), f"coefficient {coef.name}", rel=1e-6)

    cases.append(
        Case(
            "train-model",
            "train-model",
            (a, b),
            {
                "layout": "join",
                "id_column": "id",
                "target": "plan",
                "features": [*feats_a, *feats_b],
            },
            privacy2,
            train_plain,
            train_check,
        )
    )
    return cases


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the base table")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="10^4 rows, 3 repeats")
    parser.add_argument("--only", default="", help="comma-separated computation ids")
    parser.add_argument("--smoke", action="store_true", help="once, at tiny sizes (CI)")
    args = parser.parse_args(argv)
    rows, repeat = (10_000, 3) if args.quick else (args.rows, args.repeat)
    if args.smoke:
        rows, repeat = SMOKE_ROWS, 1
    registry = default_registry()
    base = _randhie(rows)
    only = {s for s in args.only.split(",") if s}
    print(
        f"analytics on randhie x{rows / 20190:.1f} ({rows} rows; two parties share "
        f"{rows * 6 // 10} ids), k={K}, medians of {repeat} runs; target mediated <= {TARGET}x"
    )
    print(f"  {'computation':22} {'plaintext ms':>12} {'mediated ms':>12} {'ratio':>7}")
    over = 0
    for case in _cases(base):
        if only and case.name not in only:
            continue
        comp = registry.get(case.computation)
        params: BaseModel = comp.parse_params(case.params)

        def mediated(comp: Any = comp, params: BaseModel = params, case: Case = case) -> Any:
            return comp.run(case.inputs, params, case.privacy)

        case.check(mediated(), case.plaintext())
        t_plain = median_seconds(case.plaintext, repeat=repeat)
        t_med = median_seconds(mediated, repeat=repeat)
        ratio = t_med / t_plain
        verdict = "ok" if ratio <= TARGET else "ABOVE TARGET"
        over += ratio > TARGET
        print(
            f"  {case.name:22} {t_plain * 1e3:12.1f} {t_med * 1e3:12.1f} {ratio:6.2f}x  {verdict}",
            flush=True,
        )
        for label, fn in case.extra:
            t_extra = median_seconds(fn, repeat=repeat)
            print(
                f"    {label:20} {t_extra * 1e3:12.1f} {t_med * 1e3:12.1f} "
                f"{t_med / t_extra:6.2f}x  (mediated vs this)",
                flush=True,
            )
    print(f"{over} computation(s) above the {TARGET}x target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
