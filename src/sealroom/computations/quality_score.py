"""quality-score: run a buyer's sealed WebAssembly scoring module on a seller's sealed sample.

Inputs, in order: ``algorithm`` (the buyer's) is a one-row table with string
columns ``module`` (WebAssembly text, or the base64 of a binary module; at most
4 MiB) and ``expected`` (the quality the buyer expects, a decimal string such as
"0.8"); ``sample`` (the seller's) is any table of int, float, bool and string
columns (other types are given as strings).

Isolation (:mod:`sealroom.computations._wasm`, which documents the ABI): the module
runs in wasmtime with NO imports (a module that imports anything is refused with
rule ``isolation-imports``; without wasmtime nothing runs: ``isolation-unavailable``),
so it has no files, network, clock, randomness or host memory to reach: it is a
pure, deterministic function of the sample written into its own linear memory.
Fuel, linear memory and a wall-clock interrupt bound its work. Python buyer code is
not offered: the only CPython-in-wasm build on PyPI is a 250 MB single-maintainer
pre-release (docs/decisions.md).

Privacy contract (class ``aggregate``, released to the requester only) against a
buyer who writes any module, asks any number of times under any number of
identities, and watches when results arrive:

* **What leaves.** ``score``: the module's f64 rounded half-even to ``precision``
  decimals, released only if it lies in ``[score_min, score_max]``; otherwise, and
  on ANY failure (trap, fuel, memory, interrupt, bad allocation, non-finite or
  out-of-range score), ``status = "failed"`` and nothing else. ``met`` (rounded
  score >= expected) is a function of the score and the buyer's own ``expected``.
  Everything else in the output (the limits, the range, the bits, the module's
  digest, the withheld column names) is fixed before the sample is read. So one
  run releases one of N = (score_max - score_min) * 10^precision + 2 outputs:
  ``bits`` = log2 N (rounded up), 6.67 bits for two decimals in [0, 1].
* **Shape.** ``precision``, ``score_min``, ``score_max``, ``fuel``, ``memory_mb``
  and ``wall_ms`` are the computation's isolating parameters: quality-score only
  ever releases exactly, so the seller's policy pins each of them (P0's
  ``exact-shape-pinned``); the buyer cannot widen the range to carry more bits.
* **Bit budget.** A run charges ``bits`` on every input's ledger entry before
  anything is unsealed (the policy's ``bits`` budget, per requester and in total
  per dataset; the total binds, since identities are free), and refuses to run
  (``bits-budget``) if less was charged. Over its total budget a seller's sample
  has released at most that many bits to everyone together.
* **Time.** The result is released only at a fixed wall time after the run starts
  (``wall_ms``, pinned), success or failure; the module is interrupted just before
  it, so the time a result takes does not depend on the sample.
* **Columns.** ``never_output`` and ``join_only`` columns of the sample are
  withheld from the module (the names withheld are listed).
* **Threshold.** The sample must hold at least ``k`` distinct entities
  (``entity_columns[1]``, rows when None), or the run is refused before it starts.
* **Residual leakage.** Up to ``bits`` per run, chosen by the buyer's code (it can
  compute any function of the sample, e.g. one person's value at ``precision``),
  bounded over time by the budget only. The ciphertext's length reveals the
  score's length to the coordinator (a function of the same output). Exact mode
  only; there is no DP mode.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from collections.abc import Sequence
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Annotated, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from sealroom.computations import _wasm
from sealroom.computations._glm import SignedDecimal
from sealroom.computations.base import (
    Computation,
    Footprint,
    PrivacyContext,
    PrivacyCost,
    Released,
)
from sealroom.errors import InvalidInput, PolicyDenied
from sealroom.statements.fields import DecimalStr, DigestStr, canonical_decimal

__all__ = [
    "COMPUTATION",
    "LimitsOut",
    "QualityScoreOutput",
    "QualityScoreParams",
    "bits_per_run",
    "run",
    "sample_columns",
]

MAX_PRECISION = 3
MAX_OUTPUTS = 10**6 + 2
_PAD_MARGIN = 0.05
"""The module is interrupted this share of ``wall_ms`` (at most 50 ms) before release time,
so the host's own work after it still ends before the padded release."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class QualityScoreParams(_Model):
    precision: Annotated[int, Field(ge=0, le=MAX_PRECISION)] = 2
    """Decimals the score is rounded to (each one multiplies the bits charged)."""
    score_min: SignedDecimal = "0"
    """Lowest score released; outside [score_min, score_max] the run releases a failure."""
    score_max: SignedDecimal = "1"
    """Highest score released."""
    fuel: Annotated[int, Field(ge=10_000, le=10**11)] = 500_000_000
    """WebAssembly fuel: the most instructions the scoring module may run."""
    memory_mb: Annotated[int, Field(ge=1, le=1024)] = 64
    """The module's largest linear memory, in MiB."""
    wall_ms: Annotated[int, Field(ge=50, le=600_000)] = 2000
    """Wall-clock limit of the run, in milliseconds."""


class LimitsOut(_Model):
    fuel: int
    memory_mb: int
    wall_ms: int


class QualityScoreOutput(_Model):
    status: Literal["ok", "failed"]
    score: SignedDecimal | None
    met: bool | None
    precision: DecimalStr
    score_range: tuple[SignedDecimal, SignedDecimal]
    expected: SignedDecimal
    bits: DecimalStr
    algorithm_digest: DigestStr
    withheld_columns: tuple[str, ...]
    isolation: Annotated[str, Field(min_length=1, max_length=1000)]
    limits: LimitsOut


def _outputs(params: QualityScoreParams) -> int:
    """N, the number of distinct outputs one run can give (every score, and "failed")."""
    lo, hi = Decimal(params.score_min), Decimal(params.score_max)
    if lo >= hi:
        raise InvalidInput("quality-score: score_min must be below score_max")
    steps = (hi - lo).scaleb(params.precision)
    quantum = Decimal(1).scaleb(-params.precision)
    if steps != steps.to_integral_value() or lo % quantum or hi % quantum:
        raise InvalidInput(
            f"quality-score: score_min and score_max must be multiples of {quantum} (the precision)"
        )
    n = int(steps) + 2
    if n > MAX_OUTPUTS:
        raise InvalidInput(
            f"quality-score: the range at this precision gives {n} outputs, more than {MAX_OUTPUTS}"
        )
    return n


def bits_per_run(params: QualityScoreParams) -> Decimal:
    """log2 of the number of distinct outputs, rounded up at 1e-6 (never undercharged)."""
    value = Decimal(math.log2(_outputs(params))) + Decimal("1e-9")
    return value.quantize(Decimal("0.000001"), rounding=ROUND_CEILING)


def _algorithm(table: pa.Table) -> tuple[str, Decimal]:
    for name in ("module", "expected"):
        if name not in table.column_names:
            raise InvalidInput(f"quality-score: the algorithm input has no column {name!r}")
        if not pa.types.is_string(table.column(name).type):
            raise InvalidInput(f"quality-score: the algorithm column {name!r} must be a string")
    if table.num_rows != 1:
        raise InvalidInput("quality-score: the algorithm input must have exactly one row")
    module = table.column("module")[0].as_py()
    expected_text = table.column("expected")[0].as_py()
    if not isinstance(module, str) or not module.strip():
        raise InvalidInput("quality-score: the algorithm's module is empty")
    try:
        expected = Decimal(str(expected_text))
    except InvalidOperation:
        raise InvalidInput("quality-score: expected must be a decimal string") from None
    if not expected.is_finite():
        raise InvalidInput("quality-score: expected must be a finite decimal")
    return module, expected


def _kind(name: str, t: pa.DataType) -> Literal["f64", "utf8"]:
    """How a column reaches the module: numbers as f64, anything castable as UTF-8 text."""
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t):
        return "f64"
    try:
        pc.cast(pa.array([], t), pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise InvalidInput(
            f"quality-score: sample column {name!r} of type {t} cannot be given to the module"
        ) from None
    return "utf8"


def sample_columns(table: pa.Table) -> list[_wasm.Column]:
    """The sample as the module's typed columns (numbers as f64, the rest as UTF-8)."""
    out: list[_wasm.Column] = []
    for name in table.column_names:
        col = table.column(name)
        if _kind(name, col.type) == "f64":
            floats = pc.cast(col, pa.float64()).to_pylist()
            out.append(_wasm.Column(name, "f64", [math.nan if v is None else v for v in floats]))
        else:
            texts = pc.cast(col, pa.string()).to_pylist()
            encoded = [None if v is None else v.encode("utf-8") for v in texts]
            out.append(_wasm.Column(name, "utf8", encoded))
    return out


def _entities(sample: pa.Table, privacy: PrivacyContext) -> pa.ChunkedArray | pa.Array:
    entity = privacy.entity_columns[1]
    if entity is None:
        return pa.array(range(sample.num_rows))
    if entity not in sample.column_names:
        raise InvalidInput(f"quality-score: the sample has no entity column {entity!r}")
    return sample.column(entity)


def run(
    inputs: Sequence[pa.Table], params: QualityScoreParams, privacy: PrivacyContext
) -> Released:
    algorithm, sample = inputs
    bits = bits_per_run(params)
    if privacy.cost.bits < bits:
        raise PolicyDenied(
            f"quality-score: a run can release {bits} bits and {privacy.cost.bits} were charged",
            rule="bits-budget",
        )
    module_text, expected = _algorithm(algorithm)
    wasm = _wasm.load_module(module_text)
    entities = _entities(sample, privacy)
    distinct = pc.unique(entities).drop_null()
    if len(distinct) < privacy.k[1]:
        raise PolicyDenied(
            f"quality-score: the sample has fewer than its k={privacy.k[1]} distinct entities",
            rule="k-threshold",
        )
    withheld = tuple(
        n for n in sample.column_names if n in privacy.never_output[1] | privacy.join_only[1]
    )
    given = sample.drop_columns(list(withheld))
    for field in given.schema:  # the schema is public: its refusals may say why
        _kind(field.name, field.type)
    limits = _wasm.WasmLimits(fuel=params.fuel, memory_bytes=params.memory_mb << 20)
    isolation = (
        f"{_wasm.runtime()}: WebAssembly with no imports (no WASI), fuel, memory and "
        "wall-clock limits; result released at a fixed time"
    )
    # From here on the time to the release is fixed: pad to wall_ms whatever happens.
    start = time.monotonic()
    release_at = start + params.wall_ms / 1000
    interrupt_at = release_at - min(_PAD_MARGIN * params.wall_ms / 1000, 0.05)
    score: Decimal | None = None
    try:
        columns = sample_columns(given)
        value = _wasm.run_score(wasm, columns, sample.num_rows, limits, deadline=interrupt_at)
        del columns
        if value is not None:
            rounded = Decimal(repr(value)).quantize(
                Decimal(1).scaleb(-params.precision), rounding=ROUND_HALF_EVEN
            )
            if Decimal(params.score_min) <= rounded <= Decimal(params.score_max):
                score = rounded
    except Exception:
        score = None
    finally:
        time.sleep(max(release_at - time.monotonic(), 0.0))
    output = QualityScoreOutput(
        status="ok" if score is not None else "failed",
        score=canonical_decimal(score) if score is not None else None,
        met=(score >= expected) if score is not None else None,
        precision=canonical_decimal(Decimal(1).scaleb(-params.precision)),
        score_range=(params.score_min, params.score_max),
        expected=canonical_decimal(expected),
        bits=canonical_decimal(bits),
        algorithm_digest="sha256:" + hashlib.sha256(module_text.encode("utf-8")).hexdigest(),
        withheld_columns=withheld,
        isolation=isolation,
        limits=LimitsOut(fuel=params.fuel, memory_mb=params.memory_mb, wall_ms=params.wall_ms),
    )
    # The score is a function of every sample entity (the buyer's module is its own).
    cells = frozenset(distinct.to_pylist())
    return Released(output, Footprint(cells=((), (cells,))))


def _cost(params: QualityScoreParams) -> PrivacyCost:
    return PrivacyCost(bits=bits_per_run(params))


COMPUTATION = Computation(
    id="quality-score",
    version="2.1.0",
    summary=(
        "Runs a buyer's sealed WebAssembly scoring module (no imports; fuel, memory and time "
        "limits) on a seller's sealed sample and releases only the rounded score in the "
        "seller's pinned range, or 'failed', at a fixed time; each run charges its bits to "
        "the seller's bit budget."
    ),
    privacy_class="aggregate",
    release="requester",
    input_names=("algorithm", "sample"),
    params=QualityScoreParams,
    output=QualityScoreOutput,
    run_fn=run,
    modules=(sys.modules[__name__], _wasm),
    cost_fn=_cost,
    isolating=("precision", "score_min", "score_max", "fuel", "memory_mb", "wall_ms"),
)
