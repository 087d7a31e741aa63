from __future__ import annotations

from fractions import Fraction

import pytest

from sealroom.errors import InvalidInput
from sealroom.terms import (
    GENERIC,
    Topic,
    record_frequencies,
    record_terms,
    select_topics,
    specificity,
    term_entities,
    tokenize,
)
from tests.computations.scenario_data import shipped


def test_technical_tokens_survive_tokenisation() -> None:
    tokens = [
        t for seg in tokenize("TPM2 quote, x509 chain; RA-TLS via scale-codec on SGX.") for t in seg
    ]
    for token in ("tpm2", "x509", "ra-tls", "scale-codec", "sgx", "quote", "chain"):
        assert token in tokens


def test_nfkc_and_case_fold_to_one_term() -> None:
    assert (
        record_terms("\uff34\uff24\uff38 Quote")
        == record_terms("tdx quote")
        == {"tdx", "quote", "tdx quote"}
    )


def test_plural_normalisation_is_light() -> None:
    terms = record_terms("Policies and keys. TLS certs. KMS status.")
    assert {"policy", "key", "tls", "tls cert", "kms", "kms status"} <= terms
    assert "tl" not in terms
    assert "km" not in terms


def test_ngrams_skip_stopwords_noise_and_punctuation() -> None:
    terms = record_terms(
        "Finally got the remote attestation working today. Quote 0xdeadbeef99 v0.5.4"
    )
    assert "remote attestation" in terms
    assert not any(w in t.split() for t in terms for w in ("the", "finally", "today", "got"))
    assert "attestation quote" not in terms  # crosses a full stop
    assert not any("0xdeadbeef99" in t or "v0.5.4" in t for t in terms)


def test_record_frequencies_counts_records_not_occurrences() -> None:
    freq = record_frequencies(["kms kms kms", "KMS key", None, "", "tdx"])
    assert freq["kms"] == 2
    assert freq["kms key"] == 1
    assert freq["tdx"] == 1


def test_term_entities_count_distinct_entities() -> None:
    used = term_entities(
        ["kms kms", "KMS key", "kms", None, "tdx", "kms"], ["ann", "ann", "bob", "cy", None, None]
    )
    assert used.count("kms") == 2  # ann twice, bob; the records of no entity count for nothing
    assert used.values("kms") == frozenset({"ann", "bob"})
    assert used.count("tdx") == 0
    assert used.total == 2  # cy's record is empty
    assert used.counts()["kms key"] == 1
    rows = term_entities(["kms", "kms", "tdx"])
    assert rows.values("kms") == frozenset({0, 1})  # records are the entities: row numbers
    with pytest.raises(InvalidInput, match="one entity per record"):
        term_entities(["a", "b"], ["x"])


def test_admit_decides_after_ranking_and_refused_terms_take_no_place() -> None:
    freq = {"kms": 30, "attestation": 20, "tdx quote": 10, "remote attestation": 8}
    seen: list[str] = []

    def admit(term: str) -> bool:
        seen.append(term)
        return term != "attestation"

    topics = select_topics(freq, min_count=5, top=2, admit=admit)
    assert topics == [Topic("kms", 30), Topic("tdx quote", 10)]
    assert seen == ["kms", "attestation", "tdx quote"]  # asked in rank order, lazily


def test_select_topics_threshold_and_subsumption() -> None:
    freq = {
        "tdx": 10,
        "quote": 12,
        "tdx quote": 10,
        "kms": 30,
        "rare": 4,
        "attestation": 20,
        "remote attestation": 8,
    }
    topics = select_topics(freq, min_count=5, top=None)
    # ranked by count x specificity: kms 30, attestation 20, tdx quote 10 x 2 = 20 (ties break
    # on the count), remote attestation 8 x 2 = 16
    assert topics == [
        Topic("kms", 30),
        Topic("attestation", 20),
        Topic("tdx quote", 10),
        Topic("remote attestation", 8),
    ]
    # quote: 10 >= 0.8 * 12 so "tdx quote" covers it; attestation: 8 < 16 so it stays
    assert select_topics(freq, min_count=5, top=2) == topics[:2]
    assert select_topics(freq, min_count=31, top=None) == []


def test_deterministic_across_input_order() -> None:
    texts = ["dstack cvm kms", "kms root key", "tdx quote on the cvm", "dstack cvm"] * 3
    a = select_topics(record_frequencies(texts), min_count=2, top=None)
    b = select_topics(record_frequencies(reversed(texts)), min_count=2, top=None)
    assert a == b


def test_generic_word_is_never_a_single_word_topic_but_may_be_part_of_one() -> None:
    assert {"app", "key", "build", "log", "team", "policy", "release", "cvm"} <= GENERIC
    freq = {"app": 50, "key": 40, "app key": 6, "kms": 10}
    assert select_topics(freq, min_count=5, top=None) == [Topic("kms", 10), Topic("app key", 6)]
    assert specificity("app") == 0
    assert specificity("kms") == 1
    assert specificity("remote attestation") == 2
    assert specificity("reproducible build") == Fraction(5, 4)
    assert specificity("compose hash") == Fraction(1, 2)


def test_ranking_is_count_times_specificity() -> None:
    # remote attestation: 8 x 2 = 16 beats kms: 12 x 1; compose hash: 30 x 1/2 = 15 sits between;
    # docker: 12 x 1 ties kms and loses on the term; nothing here is subsumed
    freq = {"remote attestation": 8, "kms": 12, "docker": 12, "compose hash": 30}
    assert [t.term for t in select_topics(freq, min_count=5, top=None)] == [
        "remote attestation",
        "compose hash",
        "docker",
        "kms",
    ]
    assert [t.count for t in select_topics(freq, min_count=5, top=None)] == [8, 30, 12, 12]


def test_single_word_subsumed_at_half_multi_word_part_at_four_fifths() -> None:
    freq = {"quote": 10, "tdx quote": 5, "scale": 10, "scale encoding": 4}
    terms = {t.term for t in select_topics(freq, min_count=2, top=None)}
    assert terms == {"tdx quote", "scale", "scale encoding"}  # 5 >= 10/2, 4 < 10/2
    freq = {"docker compose": 10, "docker compose file": 8, "tdx quote": 10, "tdx quote nonce": 7}
    terms = {t.term for t in select_topics(freq, min_count=2, top=None)}
    assert terms == {"docker compose file", "tdx quote", "tdx quote nonce"}  # 8 >= 8, 7 < 8


def test_refinement_of_a_listed_phrase_is_skipped_but_not_of_a_word() -> None:
    freq = {
        "phala cloud": 20,
        "phala cloud dashboard": 10,
        "attestation": 40,
        "remote attestation": 9,
    }
    assert select_topics(freq, min_count=5, top=None) == [
        Topic("attestation", 40),
        Topic("phala cloud", 20),
        Topic("remote attestation", 9),
    ]
    # top counts listed topics, after skipping
    assert select_topics(freq, min_count=5, top=3)[-1] == Topic("remote attestation", 9)


def test_four_word_context_removes_fragments_of_a_repeated_sentence() -> None:
    records = ["Shielded VM options interfere with the settings."] * 6 + ["shielded vm"] * 2
    freq = record_frequencies(records)
    assert freq["shielded vm option interfere"] == 6  # counted as context
    terms = [t.term for t in select_topics(freq, min_count=5, top=None)]
    # the parts of the repeated sentence go (the 4-gram is never a topic itself); "shielded vm"
    # stays: it also stands on its own, so the 4-gram has only 6 of its 8 records
    assert terms == ["shielded vm"]
    assert "shielded vm option interfere" not in record_terms(records[0])


def test_term_does_not_end_in_a_past_tense_verb() -> None:
    freq = {"user reported": 9, "latency spike": 5, "measured boot": 5}
    terms = {t.term for t in select_topics(freq, min_count=5, top=None)}
    assert "user reported" not in terms
    assert terms == {"latency spike", "measured boot"}  # a leading participle is an adjective


def test_near_duplicate_forms_merge_into_one_record_count() -> None:
    freq = record_frequencies(
        ["Compose hashes checked", "the compose hash", "TDX quotes", "tdx quote", "builds", "build"]
    )
    assert freq["compose hash"] == 2
    assert freq["tdx quote"] == 2
    assert freq["build"] == 2
    assert "compose hashes" not in freq
    assert "tdx quotes" not in freq


def test_scenario_topics_name_subject_areas() -> None:
    amiller = select_topics(record_frequencies(_texts("amiller")), min_count=5, top=40)
    cloud = select_topics(record_frequencies(_texts("cloudmolty")), min_count=5, top=40)
    for topics in (amiller, cloud):
        assert not [t.term for t in topics if " " not in t.term and t.term in GENERIC]
        assert all(t.count >= 5 for t in topics)
    top_a = [t.term for t in amiller[:12]]
    assert {"remote attestation", "reproducible build", "on-chain authorization"} <= set(top_a)
    assert "production debugging" in [t.term for t in amiller[:20]]
    assert any("kms" in t or "key derivation" in t for t in top_a)
    top_c = [t.term for t in cloud[:12]]
    assert {"confidential vm", "scale encoding", "tpm quote", "dual attestation"} <= set(top_c)
    assert "cloud api" in [t.term for t in cloud[:20]]


def _texts(name: str) -> list[str]:
    return [str(t) for t in shipped(name).column("text").to_pylist()]
