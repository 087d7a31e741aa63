from __future__ import annotations

from sealroom.computations.text import (
    Topic,
    record_frequencies,
    record_terms,
    select_topics,
    tokenize,
)


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
