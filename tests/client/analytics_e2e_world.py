"""Real statsmodels data split between parties, written as the files owners publish.

Used by the SDK and CLI end-to-end tests of the analytics computations. The data sets have no
identifiers, so ``id`` is the row number. Every builder returns the files of
each party; the tests read them back with the same connector the enclave's
inputs come from, so a direct run on those tables is the plaintext truth.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import statsmodels.api as sm

from sealroom.computations import Computation, PrivacyContext
from sealroom.computations.base import DEFAULT_K, ZERO_COST, PrivacyCost
from sealroom.connectors.files import read_table
from sealroom.policy import PolicyRules
from sealroom.policy.rules import privacy_context

DATA = Path(__file__).resolve().parents[2] / "src" / "sealroom" / "data"

# Grunfeld (11 firms x 20 years): every input joins on (firm, year); firm is the entity.
SQL_RULES: dict[str, Any] = {
    "aggregations": ["count", "count_distinct", "sum", "avg", "min", "max", "median"],
    "aggregate_columns": ["invest", "value", "capital"],
    "dimension_columns": ["year", "decade"],
    "filter_columns": ["value", "year"],
    "join_columns": ["firm", "year"],
    "identity_columns": ["firm"],
}

GRUNFELD_SQL = (
    "SELECT a.decade, count(DISTINCT a.firm) AS firms, sum(a.invest) AS invest, "
    "avg(b.value) AS mean_value FROM a JOIN b ON a.firm = b.firm AND a.year = b.year "
    "GROUP BY a.decade ORDER BY a.decade"
)


@cache
def frame(name: str) -> pd.DataFrame:
    """A bundled statsmodels dataset (offline) with ``id`` = row number."""
    data: pd.DataFrame = getattr(sm.datasets, name).load_pandas().data.copy()
    data.insert(0, "id", np.arange(len(data), dtype=np.int64))
    return data


def write_csv(path: Path, df: pd.DataFrame) -> Path:
    """A CSV the owner publishes (floats with 17 significant digits: exact round trip)."""
    df.to_csv(path, index=False, float_format="%.17g")
    return path


def write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return path


def grunfeld_files(out: Path) -> list[Path]:
    """Party a holds investment (and the decade), party b the firm value; keys in both."""
    df = sm.datasets.grunfeld.load_pandas().data.copy()
    df["year"] = df["year"].astype("int64")
    df["firm"] = df["firm"].astype(str)
    df["decade"] = (df["year"] // 10 * 10).astype("int64")
    return [
        write_csv(out / "grunfeld_a.csv", df[["firm", "year", "invest", "decade"]]),
        write_csv(out / "grunfeld_b.csv", df[["firm", "year", "value"]]),
    ]


def fair_columns_files(out: Path, a_cols: Sequence[str], b_cols: Sequence[str]) -> list[Path]:
    """A vertical split of ``fair`` (6366 women): a holds the even rows below 4000, b rows
    1000 and up, each with its own columns; the overlap is rows 1000..3998 (even)."""
    df = frame("fair")
    a = df.iloc[0:4000:2][["id", *a_cols]]
    b = df.iloc[1000:][["id", *b_cols]]
    return [write_csv(out / "fair_a.csv", a), write_csv(out / "fair_b.csv", b)]


def fair_row_files(out: Path, parties: int, cols: Sequence[str]) -> list[Path]:
    """A horizontal split of ``fair``: row i goes to party i % parties."""
    df = frame("fair")[["id", *cols]]
    return [write_csv(out / f"fair_rows_{p}.csv", df.iloc[p::parties]) for p in range(parties)]


def lift_files(out: Path) -> list[Path]:
    """Exposure: women with children (test) or without (control); conversions: any affair."""
    df = frame("fair")
    exposure = pd.DataFrame(
        {"id": df["id"], "group": np.where(df["children"] > 0, "test", "control")}
    )
    conv = df[df["affairs"] > 0]
    conversions = pd.DataFrame({"id": conv["id"], "month": "2024-01"})
    return [
        write_csv(out / "exposure.csv", exposure),
        write_csv(out / "conversions.csv", conversions),
    ]


def spector_columns_files(out: Path, groups: Sequence[Sequence[str]]) -> list[Path]:
    """A vertical split of ``spector`` (32 students): ``id`` plus each party's columns."""
    df = frame("spector")
    return [write_csv(out / f"spector_{i}.csv", df[["id", *g]]) for i, g in enumerate(groups)]


def quality_source() -> str:
    """The buyer's scoring module: the mean of spector's GRADE (column 4), in WebAssembly."""
    from tests.computations.wasm_modules import mean

    return mean(4)


def quality_files(out: Path) -> list[Path]:
    """The buyer's algorithm (a one-row JSONL: ``module``, ``expected``) and the seller's sample."""
    algorithm = write_jsonl(
        out / "algorithm.jsonl", [{"module": quality_source(), "expected": "0.3"}]
    )
    sample = write_csv(out / "spector_sample.csv", frame("spector"))
    return [algorithm, sample]


def log_file(out: Path) -> Path:
    """A shipped text log (real work notes), as its owner would publish it."""
    target = out / "amiller.jsonl"
    target.write_bytes((DATA / "amiller.jsonl").read_bytes())
    return target


def policy(
    computation: str,
    *,
    auto: bool = True,
    k: int = DEFAULT_K,
    entity_column: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Policy rules that allow (and by default auto-approve) one computation."""
    rules: dict[str, Any] = {"allow": [{"id": computation}], "k": k, **extra}
    if auto:
        rules["auto_approve"] = [{"id": computation}]
    if entity_column is not None:
        rules["entity_column"] = entity_column
    PolicyRules.parse(rules)
    return rules


def exact_policy(
    computation: str,
    params: Mapping[str, Any],
    partners: Sequence[Path] = (),
    **kwargs: Any,
) -> dict[str, Any]:
    """``policy`` for an exact release of exactly this request's shape (flows.exact_rule)."""
    from sealroom.client.flows import exact_rule
    from sealroom.computations import default_registry

    rules = policy(computation, **kwargs)
    rules["allow"] = [exact_rule(default_registry().get(computation), params, partners=partners)]
    PolicyRules.parse(rules)
    return rules


def privacy_for(
    rules: Sequence[Mapping[str, Any] | None], cost: PrivacyCost = ZERO_COST
) -> PrivacyContext:
    """The privacy context the owners' rules imply (what the enclave must build, too)."""
    return privacy_context([PolicyRules.parse(r) if r is not None else None for r in rules], cost)


def run_direct(
    computation: Computation,
    files: Sequence[Path],
    params: Mapping[str, Any],
    rules: Sequence[Mapping[str, Any] | None],
) -> Any:
    """The computation run directly on the plaintext files: the expected JSON result."""
    tables: list[pa.Table] = [read_table(f) for f in files]
    parsed = computation.parse_params(dict(params))
    out = computation.run(tables, parsed, privacy_for(rules, computation.cost(parsed)))
    return json.loads(out.model_dump_json())
