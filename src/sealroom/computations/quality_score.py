"""quality-score: run a buyer's sealed scoring algorithm on a seller's sealed sample.

Inputs, in order: ``algorithm`` (owned by the buyer) is a one-row table with
string columns ``source`` (Python source, at most 256 KiB, that defines
``score(table) -> float``) and ``expected`` (the quality the buyer expects, a
decimal string such as "0.8"); ``sample`` (owned by the seller) is any table of
int, float, bool and string columns (other types are given as strings).

The algorithm sees ``table`` as a dict of column name -> list of values (None
for a missing value) and runs in :mod:`sealroom.computations._sandbox`: a fresh
``python -I -S`` child with kernel resource limits, an empty environment, a
private temporary directory, an audit hook that refuses files, imports,
sockets, subprocesses and ctypes, and a network namespace where the kernel
permits one. The output names the protection level that actually applied.

Privacy contract (class ``aggregate``, released to the requester only, who
must be the buyer):

* **Released.** The score rounded half-even to ``precision`` decimal places
  (default 2, at most 3) and required to lie in the declared ``score_range``
  (default [0, 1]); both limits are stated in the output and therefore in the
  receipt's output commitment. ``met`` = rounded score >= expected (computed on
  the rounded score, so it adds no precision). The SHA-256 digest of the
  algorithm's UTF-8 source. On failure, one kind from a fixed list
  (:data:`sealroom.computations._sandbox.FAILURES`) and no score. So one run
  releases at most log2(10^precision * width + 1 + 9) bits about the sample:
  about 6.8 bits for two decimals in [0, 1].
* **Never released.** The sample's rows, the algorithm's printed output or
  exceptions (the child's stdout and stderr go to /dev/null), the buyer's
  source (only its digest).
* **Columns.** ``never_output`` and ``join_only`` columns of the sample are
  withheld from the algorithm (a score could encode them); the names withheld
  are listed.
* **Threshold.** The sample must hold at least ``k`` distinct entities
  (``entity_columns[1]``, rows when None), or the run is refused.
"""

from __future__ import annotations

import hashlib
import io
import sys
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Annotated, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from pydantic import BaseModel, ConfigDict, Field

from sealroom.computations import _sandbox
from sealroom.computations._glm import SignedDecimal
from sealroom.computations.base import Computation, PrivacyContext
from sealroom.errors import InvalidInput, PolicyDenied
from sealroom.statements.fields import DecimalStr, DigestStr, canonical_decimal

__all__ = [
    "COMPUTATION",
    "QualityScoreOutput",
    "QualityScoreParams",
    "SandboxLimitsOut",
    "run",
    "sample_csv",
]

MAX_SOURCE_BYTES = 256 << 10
MAX_PRECISION = 3


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QualityScoreParams(_Model):
    precision: Annotated[int, Field(ge=0, le=MAX_PRECISION)] = 2
    score_min: SignedDecimal = "0"
    score_max: SignedDecimal = "1"
    cpu_seconds: Annotated[int, Field(ge=1, le=60)] = 10
    memory_mb: Annotated[int, Field(ge=64, le=2048)] = 512
    wall_seconds: Annotated[int, Field(ge=1, le=120)] = 30


class SandboxLimitsOut(_Model):
    cpu_seconds: int
    memory_mb: int
    wall_seconds: int
    output_bytes: int


class QualityScoreOutput(_Model):
    status: Literal["ok", "failed"]
    failure: _sandbox.Failure | None
    score: SignedDecimal | None
    precision: DecimalStr
    score_range: tuple[SignedDecimal, SignedDecimal]
    expected: SignedDecimal
    met: bool | None
    algorithm_digest: DigestStr
    sample_rows: Annotated[int, Field(ge=0)]
    withheld_columns: tuple[str, ...]
    sandbox: Annotated[str, Field(min_length=1, max_length=1000)]
    limits: SandboxLimitsOut


def _algorithm(table: pa.Table) -> tuple[str, Decimal]:
    for name in ("source", "expected"):
        if name not in table.column_names:
            raise InvalidInput(f"quality-score: the algorithm input has no column {name!r}")
        if not pa.types.is_string(table.column(name).type):
            raise InvalidInput(f"quality-score: the algorithm column {name!r} must be a string")
    if table.num_rows != 1:
        raise InvalidInput("quality-score: the algorithm input must have exactly one row")
    source = table.column("source")[0].as_py()
    expected_text = table.column("expected")[0].as_py()
    if not isinstance(source, str) or not source.strip():
        raise InvalidInput("quality-score: the algorithm source is empty")
    if len(source.encode("utf-8")) > MAX_SOURCE_BYTES:
        raise InvalidInput(f"quality-score: the algorithm source exceeds {MAX_SOURCE_BYTES} bytes")
    try:
        expected = Decimal(str(expected_text))
    except InvalidOperation:
        raise InvalidInput("quality-score: expected must be a decimal string") from None
    if not expected.is_finite():
        raise InvalidInput("quality-score: expected must be a finite decimal")
    return source, expected


def sample_csv(table: pa.Table) -> tuple[bytes, dict[str, str]]:
    """The sample as CSV bytes with each column's kind for the sandboxed reader."""
    cols: dict[str, pa.ChunkedArray] = {}
    kinds: dict[str, str] = {}
    for name in table.column_names:
        col = table.column(name)
        t = col.type
        if pa.types.is_boolean(t):
            kinds[name] = "bool"
        elif pa.types.is_integer(t):
            kinds[name], col = "int", pc.cast(col, pa.int64())
        elif pa.types.is_floating(t):
            kinds[name], col = "float", pc.cast(col, pa.float64())
        else:
            try:
                kinds[name], col = "string", pc.cast(col, pa.string())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise InvalidInput(
                    f"quality-score: sample column {name!r} of type {t} cannot be given to "
                    "the algorithm"
                ) from None
        cols[name] = col
    out = io.BytesIO()
    pacsv.write_csv(pa.table(cols) if cols else pa.table({}), out)
    return out.getvalue(), kinds


def _round(value: float, places: int) -> Decimal:
    return Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def run(
    inputs: Sequence[pa.Table], params: QualityScoreParams, privacy: PrivacyContext
) -> QualityScoreOutput:
    algorithm, sample = inputs
    lo, hi = Decimal(params.score_min), Decimal(params.score_max)
    if lo >= hi:
        raise InvalidInput("quality-score: score_min must be below score_max")
    source, expected = _algorithm(algorithm)
    entity = privacy.entity_columns[1]
    if entity is not None and entity not in sample.column_names:
        raise InvalidInput(f"quality-score: the sample has no entity column {entity!r}")
    entities = (
        sample.num_rows
        if entity is None
        else int(pc.count_distinct(sample.column(entity), mode="only_valid").as_py())
    )
    if entities < privacy.k[1]:
        raise PolicyDenied(
            f"quality-score: the sample has fewer than its k={privacy.k[1]} distinct entities"
        )
    withheld = tuple(
        n for n in sample.column_names if n in privacy.never_output[1] | privacy.join_only[1]
    )
    csv_bytes, kinds = sample_csv(sample.drop_columns(list(withheld)))
    limits = _sandbox.SandboxLimits(
        cpu_seconds=params.cpu_seconds,
        memory_bytes=params.memory_mb << 20,
        wall_seconds=float(params.wall_seconds),
    )
    result = _sandbox.run_sandboxed(source, csv_bytes, kinds, limits=limits)
    failure = result.failure
    score: Decimal | None = None
    if result.score is not None:
        score = _round(result.score, params.precision)
        if not lo <= score <= hi:
            failure, score = "invalid-score", None
    return QualityScoreOutput(
        status="ok" if score is not None else "failed",
        failure=failure,
        score=canonical_decimal(score) if score is not None else None,
        precision=canonical_decimal(Decimal(1).scaleb(-params.precision)),
        score_range=(params.score_min, params.score_max),
        expected=canonical_decimal(expected),
        met=(score >= expected) if score is not None else None,
        algorithm_digest="sha256:" + hashlib.sha256(source.encode("utf-8")).hexdigest(),
        sample_rows=sample.num_rows,
        withheld_columns=withheld,
        sandbox=result.protection,
        limits=SandboxLimitsOut(
            cpu_seconds=limits.cpu_seconds,
            memory_mb=params.memory_mb,
            wall_seconds=params.wall_seconds,
            output_bytes=limits.max_output_bytes,
        ),
    )


COMPUTATION = Computation(
    id="quality-score",
    version="1.1.0",
    summary=(
        "Runs a buyer's sealed scoring algorithm on a seller's sealed sample in a sandboxed "
        "child process and releases only the rounded score, whether it met the buyer's "
        "expectation and the digest of the algorithm that ran."
    ),
    privacy_class="aggregate",
    release="requester",
    input_names=("algorithm", "sample"),
    params=QualityScoreParams,
    output=QualityScoreOutput,
    run_fn=run,
    modules=(sys.modules[__name__], _sandbox),
    isolating=("precision", "score_min", "score_max"),
)
