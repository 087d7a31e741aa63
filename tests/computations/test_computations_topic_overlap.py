from __future__ import annotations

import pyarrow as pa
import pytest

from sealroom.computations import PrivacyContext, default_registry
from sealroom.computations.topic_overlap import TopicOverlapOutput, decimal4
from sealroom.errors import InvalidInput, PolicyDenied
from sealroom.terms import GENERIC
from tests.computations.scenario_data import shipped, texts

OVERLAP = default_registry().get("topic-overlap")


def run(
    a: pa.Table, b: pa.Table, k: tuple[int, int] = (2, 2), **params: object
) -> TopicOverlapOutput:
    out = OVERLAP.run([a, b], OVERLAP.parse_params(params), PrivacyContext(k=k))
    assert isinstance(out, TopicOverlapOutput)
    return out


def test_declaration() -> None:
    assert OVERLAP.privacy_class == "aggregate"
    assert OVERLAP.release == "all-parties"
    assert OVERLAP.input_names == ("a", "b")
    assert OVERLAP.code_digest.startswith("sha256:")


def test_exact_small_tables() -> None:
    # a: kms in 5 records, "kms rotation" in 2 (2 < 5/2, so the word stays beside the phrase)
    a = texts(*["kms rotation"] * 2, "kms", "kms", "kms audit", "tdx quote", "tdx quote")
    b = texts("tdx quote", "tdx quote", "tdx quote", "vtpm", "vtpm", "kms")
    out = run(a, b)
    assert [(s.term, s.count_a, s.count_b) for s in out.shared] == [("tdx quote", 2, 3)]
    # ranks on a: kms 5 x 1 = 5, kms rotation 2 x 2 = 4; "kms audit" is in 1 record only
    assert [(t.term, t.count) for t in out.unique_to_a] == [("kms", 5), ("kms rotation", 2)]
    assert [(t.term, t.count) for t in out.unique_to_b] == [("vtpm", 2)]
    assert out.jaccard == "0.25"  # 1 shared of {tdx quote, kms, kms rotation, vtpm}
    assert out.insight == (
        'partial overlap: both cover "tdx quote"; the first dataset (a) adds "kms" and '
        '"kms rotation"; the second (b) adds "vtpm"'
    )


def test_shared_ranked_by_specificity_times_smaller_relative_frequency() -> None:
    # attestation: min(4/7, 4/7) x 1 = 4/7; tdx quote: min(3/7, 3/7) x 2 = 6/7
    a = texts(*["tdx quote"] * 3, *["attestation"] * 4)
    out = run(a, a)
    assert [(s.term, s.count_a) for s in out.shared] == [("tdx quote", 3), ("attestation", 4)]


def test_counts_on_nearly_the_same_records_are_not_released_together() -> None:
    # "attestation" in 4 records, "tdx quote" in 3 of them: both counts would say that one
    # record names attestation without a tdx quote (1 < k = 2), so the lower-ranked one goes.
    a = texts(*["attestation. tdx quote"] * 3, "attestation")
    out, footprint = OVERLAP.execute([a, a], OVERLAP.parse_params({}), PrivacyContext(k=(2, 2)))
    assert isinstance(out, TopicOverlapOutput)
    assert [(s.term, s.count_a, s.count_b) for s in out.shared] == [("tdx quote", 3, 3)]
    assert footprint is not None
    assert footprint.cells == ((frozenset({0, 1, 2}),), (frozenset({0, 1, 2}),))


def test_entity_column_counts_entities() -> None:
    a = pa.table({"text": ["tdx quote"] * 9 + ["kms"] * 3, "who": ["x", "y", "z"] * 4})
    ctx = PrivacyContext(k=(3, 3), entity_columns=("who", None))
    out, footprint = OVERLAP.execute([a, texts(*["tdx quote"] * 3)], OVERLAP.parse_params({}), ctx)
    assert isinstance(out, TopicOverlapOutput)
    assert [(s.term, s.count_a, s.count_b) for s in out.shared] == [("tdx quote", 3, 3)]
    assert [(t.term, t.count) for t in out.unique_to_a] == [("kms", 3)]
    assert footprint is not None
    assert footprint.cells[0] == (frozenset({"x", "y", "z"}),) * 2
    assert footprint.cells[1] == (frozenset({0, 1, 2}),)
    with pytest.raises(InvalidInput, match="no entity column 'who'"):
        OVERLAP.run(
            [texts("a"), texts("b")],
            OVERLAP.parse_params({}),
            PrivacyContext(k=(1, 1), entity_columns=(None, "who")),
        )


def test_text_column_obeys_the_policys_column_rules() -> None:
    a = texts(*["tdx quote"] * 3)
    for ctx, rule in (
        (PrivacyContext(k=(2, 2), never_output=(frozenset(), frozenset({"text"}))), "never-output"),
        (PrivacyContext(k=(2, 2), join_only=(frozenset({"text"}), frozenset())), "join-only"),
    ):
        with pytest.raises(PolicyDenied, match=f"rule {rule}") as caught:
            OVERLAP.run([a, a], OVERLAP.parse_params({}), ctx)
        assert caught.value.rule == rule


def test_generic_words_are_not_topics() -> None:
    a = texts(*["app key"] * 3, *["app"] * 5, *["kms"] * 3)
    out = run(a, a)
    # "app" alone names no subject; "app key" (specificity 1/2) ranks below kms (1)
    assert [s.term for s in out.shared] == ["kms", "app key"]


def test_threshold_k_minus_one_never_released() -> None:
    for k in (2, 3, 5):
        a = texts(*(["sealedterm"] * (k - 1) + ["other words"] * 5))
        b = texts(*(["sealedterm"] * k))
        out = run(a, b, k=(k, k))
        assert out.shared == ()
        assert "sealedterm" not in {t.term for t in out.unique_to_a}
        assert [(t.term, t.count) for t in out.unique_to_b] == [("sealedterm", k)]
        a_k = texts(*(["sealedterm"] * k))
        assert [(s.term, s.count_a) for s in run(a_k, b, k=(k, k)).shared] == [("sealedterm", k)]


def test_per_input_thresholds_apply_to_their_side() -> None:
    a = texts(*["enclave"] * 3)
    b = texts(*["enclave"] * 3)
    assert run(a, b, k=(3, 4)).shared == ()
    assert run(a, b, k=(3, 4)).unique_to_a[0].term == "enclave"
    assert run(a, b, k=(3, 3)).jaccard == "1"


def test_insight_rules() -> None:
    same = texts(*["tdx quote"] * 3)
    assert run(same, same).insight == 'high overlap: both cover "tdx quote"'
    other = texts(*["vtpm"] * 3)
    out = run(same, other)
    assert out.jaccard == "0"
    assert out.insight == (
        'disjoint: no topic in common; the first dataset (a) is about "tdx quote", '
        'the second (b) about "vtpm"'
    )
    only_b = run(texts("x"), other, k=(2, 2))
    assert only_b.insight == (
        "disjoint: no topic in common; the first dataset (a) is about nothing above its "
        'threshold, the second (b) about "vtpm"'
    )
    empty = texts("x")
    assert run(empty, empty).insight.startswith("no topics")


def test_decimal4_is_canonical() -> None:
    from fractions import Fraction

    assert decimal4(Fraction(3, 14)) == "0.2143"
    assert decimal4(Fraction(1, 2)) == "0.5"
    assert decimal4(Fraction(1)) == "1"
    assert decimal4(Fraction(0)) == "0"


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"top": 0}, "top"),
        ({"top": 10_000}, "top"),
        ({"top": "5"}, "top"),
        ({"extra": 1}, "extra"),
        ({"text_column": ""}, "text_column"),
    ],
)
def test_parameter_validation(params: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        OVERLAP.parse_params(params)


def test_text_column_must_exist_and_be_string() -> None:
    good = texts("a b c")
    with pytest.raises(
        InvalidInput,
        match="input 'b' has no column 'text' \\(named as text_column; its columns: body\\)",
    ):
        run(good, pa.table({"text": ["x"]}).rename_columns(["body"]), text_column="text")
    with pytest.raises(InvalidInput, match="input 'a' column 'text' is int64"):
        run(pa.table({"text": [1, 2]}), good)


def test_wrong_arity_rejected() -> None:
    with pytest.raises(InvalidInput, match="takes 2 inputs"):
        OVERLAP.run([texts("a")], OVERLAP.parse_params({}), PrivacyContext(k=(2,)))


def test_deterministic_and_output_validates() -> None:
    a, b = shipped("amiller"), shipped("cloudmolty")
    first = run(a, b, k=(5, 5))
    assert run(a, b, k=(5, 5)) == first
    TopicOverlapOutput.model_validate(first.model_dump())


def test_scenario_amiller_vs_cloudmolty_is_meaningful() -> None:
    out = run(shipped("amiller"), shipped("cloudmolty"), k=(5, 5))
    shared = {s.term for s in out.shared}
    only_a = {t.term for t in out.unique_to_a}
    only_b = {t.term for t in out.unique_to_b}
    assert {"tdx quote", "remote attestation"} & shared
    assert any("attestation" in t for t in shared)
    assert {"reproducible build", "on-chain authorization", "key derivation"} <= only_a
    assert {"tpm quote", "scale encoding", "confidential vm", "dual attestation"} <= only_b
    assert 0 < float(out.jaccard) < 0.5
    assert out.insight.startswith(("complementary", "partial overlap"))
    for s in out.shared:
        assert s.count_a >= 5
        assert s.count_b >= 5
    listed = shared | only_a | only_b
    assert not {t for t in listed if " " not in t and t in GENERIC}


def test_scenario_insight_names_each_side_and_its_subjects() -> None:
    out = run(shipped("cloudmolty"), shipped("amiller"), k=(5, 5))
    assert out.unique_to_a[0].term == "confidential vm"
    assert "; the first dataset (a) adds " in out.insight
    assert "; the second (b) adds " in out.insight
    a_part = out.insight.split("; the first dataset (a) adds ")[1].split(";")[0]
    assert '"confidential vm"' in a_part
    assert "\n" not in out.insight
    assert len(out.insight) < 250
