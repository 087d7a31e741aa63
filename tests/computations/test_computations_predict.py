"""predict: exact predictions per row, the artifact format, and its privacy refusals."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from sealroom.computations.base import PrivacyContext
from sealroom.computations.predict import (
    COMPUTATION,
    GlmArtifact,
    PredictParams,
    artifact_from_training,
    artifact_table,
)
from sealroom.errors import InvalidInput, PolicyDenied

ART = GlmArtifact(
    format="sealroom-glm/v1",
    family="binomial",
    target="y",
    features=("a", "b"),
    weights=("1", "-2"),
    intercept="0.5",
)
ROWS = pa.table({"id": [10, 11, 12], "a": [1.0, None, 0.0], "b": [0, 1, 1]})


def _run(rows: pa.Table = ROWS, art: pa.Table | None = None, **ctx: object) -> dict[str, object]:
    privacy = PrivacyContext(k=(1, 1), **ctx)  # type: ignore[arg-type]
    out = COMPUTATION.run(
        [art if art is not None else artifact_table(ART), rows],
        PredictParams(id_column="id"),
        privacy,
    )
    return out.model_dump()


def test_predictions_are_the_glm_mean_of_each_usable_row() -> None:
    out = _run()
    assert out["rows"] == 2
    assert out["skipped"] == 1
    want = [1 / (1 + math.exp(-(0.5 + 1.0))), 1 / (1 + math.exp(-(0.5 - 2.0)))]
    assert [p["id"] for p in out["predictions"]] == ["10", "12"]
    assert [float(p["value"]) for p in out["predictions"]] == pytest.approx(want, rel=1e-5)
    assert out["predictions"][0]["value"] == "0.817574"


def test_gaussian_and_poisson_means() -> None:
    for family, f in (("gaussian", lambda e: e), ("poisson", math.exp)):
        art = ART.model_copy(update={"family": family})
        out = _run(art=artifact_table(art))
        assert [float(p["value"]) for p in out["predictions"]] == pytest.approx(
            [f(1.5), f(-1.5)], rel=1e-6
        )


def test_artifact_from_a_train_model_result() -> None:
    result = {
        "family": "binomial",
        "target": "y",
        "coefficients": [
            {"name": "(intercept)", "estimate": "0.5", "std_error": None},
            {"name": "a", "estimate": "1", "std_error": None},
            {"name": "b", "estimate": "-2", "std_error": None},
        ],
    }
    assert artifact_from_training(result) == ART
    with pytest.raises(InvalidInput):
        artifact_from_training({"family": "binomial"})


def test_never_output_and_join_only_columns_are_refused() -> None:
    for field in ("never_output", "join_only"):
        with pytest.raises(PolicyDenied) as err:
            _run(**{field: (frozenset(), frozenset({"a"}))})
        assert err.value.rule == "never-output"
    with pytest.raises(PolicyDenied):
        _run(never_output=(frozenset(), frozenset({"id"})))


def test_more_rows_than_the_policies_allow_are_refused_not_truncated() -> None:
    with pytest.raises(PolicyDenied) as err:
        _run(max_output_rows=2)
    assert err.value.rule == "max-output-rows"
    assert _run(max_output_rows=3)["rows"] == 2


def test_bad_inputs_are_named() -> None:
    with pytest.raises(InvalidInput, match="one-row"):
        _run(art=pa.table({"model": ["{}", "{}"]}))
    with pytest.raises(InvalidInput, match="artifact"):
        _run(art=pa.table({"model": ['{"format": "other"}']}))
    with pytest.raises(InvalidInput, match="no column 'b'"):
        _run(rows=pa.table({"id": [1], "a": [1.0]}))
    with pytest.raises(InvalidInput, match="not numeric"):
        _run(rows=pa.table({"id": [1], "a": [1.0], "b": ["x"]}))
