"""The console's forms, tables and charts, from the real computation schemas and outputs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import sealroom.web.console
from sealroom.computations import default_registry
from sealroom.errors import InvalidInput
from sealroom.web.console.views import (
    FieldSpec,
    chart_specs,
    form_fields,
    params_from_form,
    result_tables,
)

VENDOR = Path(sealroom.web.console.__file__).parent / "static" / "vendor"


def test_every_computation_gets_a_form_with_help() -> None:
    for comp in default_registry():
        fields = form_fields(comp.params.model_json_schema())
        names = {f.name for f in fields}
        assert names == set(comp.params.model_fields), comp.id
        for f in fields:
            assert f.kind in ("text", "integer", "number", "boolean", "choice", "json")


def test_topic_overlap_form_and_its_parameters() -> None:
    comp = default_registry().get("topic-overlap")
    fields = {f.name: f for f in form_fields(comp.params.model_json_schema())}
    assert fields["top"].kind == "integer"
    assert fields["top"].default == "40"
    assert fields["text_column"].kind == "text"
    assert not fields["top"].required
    assert len(fields["top"].help) > 10  # the registry's description of the parameter
    params = params_from_form(tuple(fields.values()), {"param.top": "5", "param.text_column": ""})
    assert params == {"top": 5}  # empty fields keep the computation's defaults
    comp.parse_params(params)
    with pytest.raises(InvalidInput, match="'top' must be a whole number"):
        params_from_form(tuple(fields.values()), {"param.top": "five"})


def test_json_and_required_fields_are_checked() -> None:
    comp = default_registry().get("train-model")
    fields = form_fields(comp.params.model_json_schema())
    by_name = {f.name: f for f in fields}
    assert by_name["target"].required
    assert by_name["features"].kind == "json"
    assert by_name["layout"].kind == "choice"
    assert set(by_name["layout"].choices) == {"join", "stack"}
    with pytest.raises(InvalidInput, match="'layout' is required"):
        params_from_form(fields, {})
    with pytest.raises(InvalidInput, match="'features' is not valid JSON"):
        params_from_form(
            fields, {"param.target": "y", "param.layout": "stack", "param.features": "[x"}
        )
    got = params_from_form(
        fields,
        {"param.target": "y", "param.layout": "stack", "param.features": '["x1", "x2"]'},
    )
    assert got == {"target": "y", "layout": "stack", "features": ["x1", "x2"]}
    z = FieldSpec(name="z", kind="number", title="z", help="", required=True, default="")
    with pytest.raises(InvalidInput, match="finite"):
        params_from_form((z,), {"param.z": "nan"})
    assert params_from_form((z,), {"param.z": "2.5"}) == {"z": 2.5}


TOPIC_OVERLAP = {
    "shared": [
        {"term": "remote attestation", "count_a": 15, "count_b": 15},
        {"term": "kms secrets", "count_a": 15, "count_b": 14},
    ],
    "unique_to_a": [{"term": "gpu drivers", "count": 15}],
    "unique_to_b": [],
    "jaccard": "0.333",
    "insight": "two of six topics are shared",
}


def test_topic_overlap_result_as_tables_and_charts() -> None:
    tables = result_tables(TOPIC_OVERLAP)
    assert tables[0].title == "result"
    assert ("jaccard", "0.333") in tables[0].rows
    assert ("unique to b", "—") in tables[0].rows
    shared = next(t for t in tables if t.title == "shared")
    assert shared.header == ("term", "count_a", "count_b")
    assert shared.rows[1] == ("kms secrets", "15", "14")
    charts = chart_specs("topic-overlap", TOPIC_OVERLAP)
    assert [c.id for c in charts] == ["shared-topics", "unique-to-a"]
    assert charts[0].labels == ("remote attestation", "kms secrets")
    assert charts[0].datasets[1]["data"] == [15.0, 14.0]
    assert "0.333" in charts[0].title
    named = chart_specs("topic-overlap", TOPIC_OVERLAP, ["Notes", "Tickets"])
    assert [d["label"] for d in named[0].datasets] == ["Notes", "Tickets"]
    assert named[1].title == "Topics only in Notes"


def test_intervals_become_floating_bars() -> None:
    stats = {
        "confidence": "0.95",
        "groups": [
            {
                "key": ["eu"],
                "period": None,
                "stats": {"mean": "2.5", "ci_low": "2", "ci_high": "3"},
            },
            {
                "key": ["us"],
                "period": None,
                "stats": {"mean": "4", "ci_low": None, "ci_high": None},
            },
        ],
        "overall": {"mean": "3"},
    }
    (means,) = chart_specs("aggregate-stats", stats)
    assert means.labels == ("eu", "us")
    assert means.datasets[0]["data"] == [[2.0, 3.0], None]  # a suppressed interval stays empty
    assert means.datasets[1]["data"] == [2.5, 4.0]
    lift = {
        "test": {"n": 100, "conversions": 20, "rate": "0.2"},
        "control": {"n": 100, "conversions": 10, "rate": "0.1"},
        "absolute_lift": "0.1",
        "absolute_ci_low": "0.01",
        "absolute_ci_high": "0.19",
        "confidence": "0.95",
    }
    rates, ci = chart_specs("lift", lift)
    assert rates.datasets[0]["data"] == [0.2, 0.1]
    assert ci.datasets[0]["data"] == [[0.01, 0.19]]
    model = {
        "family": "binomial",
        "target": "y",
        "coefficients": [
            {"name": "x", "estimate": "1.5", "std_error": "0.5"},
            {"name": "z", "estimate": "-2", "std_error": None},
        ],
    }
    (coef,) = chart_specs("train-model", model)
    assert coef.datasets[0]["data"] == [1.5, -2.0]
    assert coef.datasets[1]["data"] == [[1.5 - 0.98, 1.5 + 0.98], None]
    assert chart_specs("pattern-search", {"matches": []}) == ()
    assert chart_specs("topic-overlap", ["not", "a", "mapping"]) == ()


def test_the_vendored_chart_library_is_the_checked_release() -> None:
    data = (VENDOR / "chart.umd.min.js").read_bytes()
    assert hashlib.sha256(data).hexdigest() == (
        "87364cc2b2a76a6684929e7d6b80b18a897794db38400caff1fcf1791c6925d2"
    )
    assert b"Chart.js v4.6.1" in data[:200]
    assert "MIT" in (VENDOR / "chart.js-LICENSE.md").read_text()


def test_charts_of_real_outputs(tmp_path: Path) -> None:
    """The computations' real outputs (run directly on the analytics suite's data) chart
    with their intervals: the chart code reads the fields the output models really have."""
    from tests.client.analytics_e2e_world import (
        exact_policy,
        fair_row_files,
        lift_files,
        run_direct,
        spector_columns_files,
    )

    for sub in ("agg", "lift", "model"):
        (tmp_path / sub).mkdir()
    registry = default_registry()
    params: dict[str, object] = {"value": "affairs", "group_by": ["occupation"]}
    files = fair_row_files(tmp_path / "agg", 2, ["occupation", "affairs"])
    rules = exact_policy("aggregate-stats", params, entity_column="id")
    body = run_direct(registry.get("aggregate-stats"), files, params, [rules, rules])
    (means,) = chart_specs("aggregate-stats", body)
    assert len(means.labels) == len(body["groups"]) > 1
    assert all(isinstance(i, list) and i[0] <= i[1] for i in means.datasets[0]["data"])

    exposure, conversions = lift_files(tmp_path / "lift")
    body = run_direct(
        registry.get("lift"),
        [exposure, conversions],
        {"confidence": "0.9"},
        [exact_policy("lift", {}, [conversions]), exact_policy("lift", {}, [exposure])],
    )
    rates, ci = chart_specs("lift", body)
    assert rates.datasets[0]["data"] == [
        float(body["test"]["rate"]),
        float(body["control"]["rate"]),
    ]
    assert ci.datasets[0]["data"] == [
        [float(body["absolute_ci_low"]), float(body["absolute_ci_high"])]
    ]

    a, b = spector_columns_files(tmp_path / "model", [["GPA", "TUCE"], ["PSI", "GRADE"]])
    params = {
        "layout": "join",
        "id_column": "id",
        "target": "GRADE",
        "features": ["GPA", "TUCE", "PSI"],
        "test_fraction": "0",
    }
    body = run_direct(
        registry.get("train-model"),
        [a, b],
        params,
        [
            exact_policy("train-model", params, [b], k=3),
            exact_policy("train-model", params, [a], k=3),
        ],
    )
    (coef,) = chart_specs("train-model", body)
    assert "GPA" in coef.labels
    assert len(coef.datasets) == 2  # estimates and their intervals
    assert all(i is not None for i in coef.datasets[1]["data"])
