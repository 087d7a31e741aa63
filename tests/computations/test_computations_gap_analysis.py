from __future__ import annotations

import pyarrow as pa
import pytest

from sealroom.computations import PrivacyContext, default_registry
from sealroom.computations.gap_analysis import GapAnalysisOutput
from sealroom.errors import InvalidInput
from sealroom.terms import GENERIC, specificity
from tests.computations.scenario_data import shipped, texts

GAP = default_registry().get("gap-analysis")


def run(
    expert: pa.Table, learner: pa.Table, k: tuple[int, int] = (2, 2), **params: object
) -> GapAnalysisOutput:
    out = GAP.run([expert, learner], GAP.parse_params(params), PrivacyContext(k=k))
    assert isinstance(out, GapAnalysisOutput)
    return out


def test_declaration() -> None:
    assert (GAP.privacy_class, GAP.release, GAP.input_names) == (
        "aggregate",
        "requester",
        ("expert", "learner"),
    )


def test_exact_small_tables() -> None:
    expert = texts(
        *["kms root key"] * 4, *["remote attestation"] * 3, *["docker"] * 2, "rare secret"
    )
    learner = texts("docker basics", "docker run", "attestation?", "what is attestation")
    out = run(expert, learner)
    assert [(g.term, g.mentions, g.level) for g in out.gaps] == [
        ("kms root key", 4, "advanced"),
        ("remote attestation", 3, "intermediate"),
    ]
    assert out.intermediate == ("remote attestation",)
    assert out.advanced == ("kms root key",)
    assert out.recommended == ("remote attestation", "kms root key")
    assert (out.expert_topics, out.covered) == (3, 1)  # kms root key, remote attestation, docker
    assert "covers 1 of the expert's top 3 topics" in out.summary


def test_generic_known_word_does_not_make_a_gap_intermediate() -> None:
    expert = texts(*["compose hash"] * 3, *["remote attestation"] * 3)
    learner = texts("compose file", "compose file", "attestation", "attestation")
    out = run(expert, learner)
    # remote attestation 3 x 2 = 6 ranks above compose hash 3 x 1/2; "compose" is generic
    assert [(g.term, g.level) for g in out.gaps] == [
        ("remote attestation", "intermediate"),
        ("compose hash", "advanced"),
    ]


def test_learner_terms_never_in_output() -> None:
    expert = texts(*["tdx quote"] * 3)
    learner = texts(*["secret diary entry"] * 10, "tdx")
    dumped = GapAnalysisOutput.model_dump_json(run(expert, learner))
    assert "diary" not in dumped
    assert "secret" not in dumped


def test_expert_threshold() -> None:
    learner = texts("hello")
    assert run(texts(*["rtmr"] * 4), learner, k=(5, 1)).gaps == ()
    assert [g.term for g in run(texts(*["rtmr"] * 5), learner, k=(5, 1)).gaps] == ["rtmr"]


def test_learner_min_decides_coverage() -> None:
    expert = texts(*["enclave"] * 5)
    learner = texts("enclave")
    assert [g.term for g in run(expert, learner).gaps] == ["enclave"]  # default learner_min=2
    assert run(expert, learner, learner_min=1, k=(2, 1)).gaps == ()
    # learner_min cannot go below the learner's own k: one learner record is not enough
    assert [g.term for g in run(expert, learner, learner_min=1).gaps] == ["enclave"]


def test_learner_entities_not_records_decide_coverage() -> None:
    expert = texts(*["enclave"] * 5)
    learner = pa.table({"text": ["enclave"] * 6, "who": ["x", "y"] * 3})
    ctx = PrivacyContext(k=(2, 3), entity_columns=(None, "who"))
    out = GAP.run([expert, learner], GAP.parse_params({"learner_min": 3}), ctx)
    assert isinstance(out, GapAnalysisOutput)
    assert [g.term for g in out.gaps] == ["enclave"]  # 6 records, 2 entities < 3


def test_footprint_is_the_expert_entities_behind_each_gap() -> None:
    expert = pa.table({"text": ["kms root key"] * 4 + ["tdx"] * 4, "who": list("abcdefgh")})
    ctx = PrivacyContext(k=(3, 2), entity_columns=("who", None))
    out, footprint = GAP.execute([expert, texts("tdx", "tdx")], GAP.parse_params({}), ctx)
    assert isinstance(out, GapAnalysisOutput)
    assert [(g.term, g.mentions) for g in out.gaps] == [("kms root key", 4)]
    assert footprint is not None
    assert footprint.cells == ((frozenset("abcd"),), ())


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"learner_min": 0}, "learner_min"),
        ({"top": -1}, "top"),
        ({"recommend": 99}, "recommend"),
        ({"k": 3}, "k"),
    ],
)
def test_parameter_validation(params: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        GAP.parse_params(params)


def test_non_string_text_column() -> None:
    with pytest.raises(InvalidInput, match="input 'learner' column 'text' is double"):
        run(texts("a"), pa.table({"text": [1.5]}))


def test_scenario_newbie_against_amiller_lists_advanced_tee_topics() -> None:
    out = run(shipped("amiller"), shipped("newbiemolty"), k=(5, 5))
    assert out == run(shipped("amiller"), shipped("newbiemolty"), k=(5, 5))
    gap_terms = {g.term for g in out.gaps}
    assert "kms" in out.advanced
    assert {"reproducible build", "on-chain authorization", "key derivation"} <= set(out.advanced)
    assert {"tdx quote", "dstack cvm"} <= set(out.intermediate)  # the learner knows tdx, dstack
    assert {"reproducible build", "tdx quote", "compose hash", "key derivation"} <= gap_terms
    assert "docker" not in gap_terms
    assert "attestation" not in gap_terms
    assert "remote attestation" not in gap_terms  # the learner writes about it
    assert not {t for t in gap_terms if " " not in t and t in GENERIC}  # no "cvm", "release"
    assert not {"quote", "tdx"} & gap_terms  # "tdx quote" names them
    assert out.recommended[0] == "tdx quote"
    assert 3 <= len(out.recommended) <= 5
    assert all(g.mentions >= 5 for g in out.gaps)
    scores = [g.mentions * specificity(g.term) for g in out.gaps]
    assert scores == sorted(scores, reverse=True)
    GapAnalysisOutput.model_validate(out.model_dump())
