"""predict: a trainer's sealed model applied to a user's sealed rows, for paid use.

Inputs, in order: ``model`` is the trainer's model artifact, a one-row table with one
string column ``model`` holding the canonical JSON of a :class:`GlmArtifact` (made from a
train-model result by :func:`artifact_from_training`, published by :func:`artifact_table`
as a dataset the trainer's :class:`~sealroom.statements.market_models.Model` names);
``rows`` is the user's table with a numeric column per feature.

Privacy contract (class ``model``, released to the requester only) against a requester
who controls the rows, every parameter, any number of identities and their timing:

* **What leaves.** One prediction per usable row of ``rows`` (the GLM's mean: a
  probability for binomial, the expected value for gaussian and poisson), rounded to
  ``digits`` significant digits, keyed by the row's ``id_column`` value when one is
  named; the number of rows skipped (a feature missing or non-finite); the model's
  family, target and feature names (public in its Model statement). Never a weight,
  the intercept or any number computed from more than one row.
* **Whose rows.** Only the requester receives the output, and each prediction is a
  function of one row of ``rows`` and the model, so it tells the requester about its own
  rows only. Whether another party's rows may be used is that owner's policy (it should
  allow predict only to itself: ``requesters: [<own id>]``).
* **Columns.** ``never_output`` and ``join_only`` columns of ``rows`` may be neither a
  feature nor ``id_column`` (``never-output``); the model's column is never output.
* **Extraction.** A linear model with p features is determined by p + 1 predictions at
  chosen points, so paid use cannot hide the weights from a determined buyer: each run
  is capped at the strictest ``max_output_rows`` of the inputs' policies (refused, not
  truncated: ``max-output-rows``) and at 100 000 rows, and every run is paid for. A
  trainer who needs its weights secret from buyers should not sell per-row predictions.
* **Residual.** The ciphertext length reveals the number of predictions to the
  coordinator (a function of the user's own row count).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Annotated, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sealroom.computations import _glm
from sealroom.computations._glm import Family, SignedDecimal, parse_signed, signed_decimal
from sealroom.computations.base import Computation, PrivacyContext
from sealroom.errors import InvalidInput, PolicyDenied
from sealroom.statements.canonical import canonical_json

__all__ = [
    "ARTIFACT_FORMAT",
    "COMPUTATION",
    "MAX_ROWS",
    "GlmArtifact",
    "PredictOutput",
    "PredictParams",
    "Prediction",
    "artifact_from_training",
    "artifact_table",
]

ARTIFACT_FORMAT = "sealroom-glm/v1"
MAX_ROWS = 100_000
INTERCEPT = "(intercept)"

ColumnName = Annotated[str, Field(min_length=1, max_length=200)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class GlmArtifact(_Model):
    """A generalised linear model's parameters, as the trainer seals them for predict."""

    format: Literal["sealroom-glm/v1"]
    family: Family
    target: ColumnName
    features: Annotated[tuple[ColumnName, ...], Field(min_length=1, max_length=1000)]
    weights: Annotated[tuple[SignedDecimal, ...], Field(min_length=1, max_length=1000)]
    intercept: SignedDecimal

    @model_validator(mode="after")
    def _sizes(self) -> GlmArtifact:
        if len(self.weights) != len(self.features):
            raise ValueError("one weight per feature")
        if len(set(self.features)) != len(self.features):
            raise ValueError("features contain a duplicate")
        return self


class PredictParams(_Model):
    id_column: ColumnName | None = None
    """Column of the rows whose value keys each prediction (none: predictions in row order)."""
    digits: Annotated[int, Field(ge=1, le=12)] = 6
    """Significant digits of each prediction."""


class Prediction(_Model):
    id: Annotated[str, Field(max_length=200)] | None
    value: SignedDecimal


class PredictOutput(_Model):
    family: Family
    target: ColumnName
    features: tuple[ColumnName, ...]
    rows: Annotated[int, Field(ge=0)]
    skipped: Annotated[int, Field(ge=0)]
    predictions: tuple[Prediction, ...]


def artifact_from_training(result: dict[str, object]) -> GlmArtifact:
    """The artifact of a train-model result (its ``result.json`` body), or InvalidInput."""
    try:
        family = result["family"]
        target = result["target"]
        coefs = result["coefficients"]
        if not isinstance(coefs, list):
            raise TypeError("coefficients")
        estimates = {str(c["name"]): str(c["estimate"]) for c in coefs}
    except (KeyError, TypeError):
        raise InvalidInput("not a train-model result: family, target, coefficients") from None
    intercept = estimates.pop(INTERCEPT, "0")
    try:
        return GlmArtifact(
            format=ARTIFACT_FORMAT,
            family=family,
            target=target,
            features=tuple(estimates),
            weights=tuple(estimates.values()),
            intercept=intercept,
        )
    except ValidationError as exc:
        raise InvalidInput(f"not a usable train-model result: {exc.errors()[0]['msg']}") from None


def artifact_table(artifact: GlmArtifact) -> pa.Table:
    """The one-row table the trainer commits to and seals: column ``model``, canonical JSON."""
    body = canonical_json(artifact.model_dump(mode="json")).decode("utf-8")
    return pa.table({"model": pa.array([body], type=pa.string())})


def _artifact(table: pa.Table) -> GlmArtifact:
    if table.num_rows != 1 or table.column_names != ["model"]:
        raise InvalidInput("predict: the model input is a one-row table with one column 'model'")
    raw = table.column("model")[0].as_py()
    if not isinstance(raw, str):
        raise InvalidInput("predict: the model column holds text")
    try:
        return GlmArtifact.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        raise InvalidInput(f"predict: the model is not a {ARTIFACT_FORMAT} artifact") from None


def _column(table: pa.Table, name: str) -> np.ndarray:
    if name not in table.column_names:
        raise InvalidInput(f"predict: the rows have no column {name!r}")
    col = table.column(name)
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        raise InvalidInput(f"predict: feature column {name!r} is not numeric")
    values = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64)


def run(
    inputs: Sequence[pa.Table], params: PredictParams, privacy: PrivacyContext
) -> PredictOutput:
    model = _artifact(inputs[0])
    rows = inputs[1]
    hidden = privacy.never_output[1] | privacy.join_only[1]
    for name in (*model.features, *((params.id_column,) if params.id_column else ())):
        if name in hidden:
            raise PolicyDenied(
                f"predict: column {name!r} of the rows may not be output or used as a feature",
                rule="never-output",
            )
    cap = min(MAX_ROWS, privacy.max_output_rows or MAX_ROWS)
    if rows.num_rows > cap:
        raise PolicyDenied(
            f"predict: {rows.num_rows} rows exceed the {cap} a run may predict",
            rule="max-output-rows",
        )
    x = (
        np.column_stack([_column(rows, f) for f in model.features])
        if rows.num_rows
        else np.zeros((0, len(model.features)))
    )
    ok = np.all(np.isfinite(x), axis=1)
    weights = np.array([parse_signed(w) for w in model.weights], dtype=np.float64)
    eta = x[ok] @ weights + parse_signed(model.intercept)
    mu = _glm.inverse_link(model.family, eta)
    ids: list[str | None]
    if params.id_column is None:
        ids = [None] * int(ok.sum())
    else:
        if params.id_column not in rows.column_names:
            raise InvalidInput(f"predict: the rows have no column {params.id_column!r}")
        raw = rows.column(params.id_column).to_pylist()
        ids = [None if v is None else str(v)[:200] for v, keep in zip(raw, ok, strict=True) if keep]
    predictions = tuple(
        Prediction(id=i, value=signed_decimal(float(m), params.digits))
        for i, m in zip(ids, mu.tolist(), strict=True)
    )
    return PredictOutput(
        family=model.family,
        target=model.target,
        features=model.features,
        rows=len(predictions),
        skipped=int(rows.num_rows - ok.sum()),
        predictions=predictions,
    )


COMPUTATION = Computation(
    id="predict",
    version="1.0.0",
    summary=(
        "A trainer's sealed generalised linear model applied to the requester's sealed rows: "
        "one prediction per row, released to the requester only; the trainer is paid per use."
    ),
    privacy_class="model",
    release="requester",
    input_names=("model", "rows"),
    params=PredictParams,
    output=PredictOutput,
    run_fn=run,
    modules=(sys.modules[__name__], _glm),
)
