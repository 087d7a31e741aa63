"""The text computations and the public card under the attacks of issue 11 (classes 9, 10, 11).

Each test is an attack as a requester would run it (its own inputs, its own parameters,
repeated requests) against the release as the enclave makes it, and asserts that the
attack learns nothing it should not: no term below k distinct entities, no query that
probes a redacted span, no count that differs from an earlier one by fewer than k.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.client.flows import CardOptions, preview_card
from sealroom.computations import PrivacyContext, default_registry
from sealroom.computations._redact import redact
from sealroom.computations.base import Footprint
from sealroom.computations.gap_analysis import GapAnalysisOutput
from sealroom.computations.pattern_search import PatternSearchOutput
from sealroom.computations.topic_overlap import TopicOverlapOutput
from sealroom.connectors import profile_table
from sealroom.enclave.history import FootprintScope, SqlReleaseHistory
from sealroom.errors import PolicyDenied
from tests.computations.scenario_data import shipped
from tests.connectors.clinic_notes import write_clinic_notes

OVERLAP = default_registry().get("topic-overlap")
GAP = default_registry().get("gap-analysis")
SEARCH = default_registry().get("pattern-search")


def modules_table(term: str, *, records: int, modules: int, filler: int = 60) -> pa.Table:
    """``records`` records naming ``term`` spread over ``modules`` modules, and filler records
    from many other modules (so the table itself has plenty of entities)."""
    text = [f"worked on {term} again" for _ in range(records)]
    module = [f"m{i % modules}" for i in range(records)]
    text += [f"reviewed the build pipeline {i}" for i in range(filler)]
    module += [f"f{i}" for i in range(filler)]
    return pa.table({"text": text, "module": module})


def _of_a(out: TopicOverlapOutput) -> set[str]:
    """The terms the output names as input a's (shared or unique to a)."""
    return {s.term for s in out.shared} | {t.term for t in out.unique_to_a}


# --- class 10: text computations count records, not entities --------------------------------


def test_topic_overlap_does_not_release_a_term_of_27_records_in_2_modules() -> None:
    """The issue's case: {"k": 5, "entity_column": "module"}; the term is in 27 records of 2
    modules, so it is used by 2 entities and must not leave, not even as "shared"."""
    victim = modules_table("patientzero diagnosis", records=27, modules=2)
    attacker = pa.table({"text": ["patientzero diagnosis"] * 5})  # the requester's own input
    ctx = PrivacyContext(k=(5, 1), entity_columns=("module", None))
    out = OVERLAP.run([victim, attacker], OVERLAP.parse_params({"top": 200}), ctx)
    assert isinstance(out, TopicOverlapOutput)
    assert _of_a(out)
    assert not any("patientzero" in t for t in _of_a(out))
    # Listed as the attacker's own topic only: all it learns is "fewer than k modules".
    assert [t.term for t in out.unique_to_b] == ["patientzero diagnosis"]
    # The same term in 5 modules is a topic of the input, counted in modules (not records).
    five = modules_table("patientzero diagnosis", records=27, modules=5)
    out5 = OVERLAP.run([five, attacker], OVERLAP.parse_params({"top": 200}), ctx)
    assert isinstance(out5, TopicOverlapOutput)
    shared = {s.term: s.count_a for s in out5.shared}
    assert shared["patientzero diagnosis"] == 5


def test_gap_analysis_does_not_release_an_expert_term_of_few_entities() -> None:
    expert = modules_table("patientzero diagnosis", records=27, modules=2)
    learner = pa.table({"text": ["hello"] * 3})
    ctx = PrivacyContext(k=(5, 1), entity_columns=("module", None))
    out = GAP.run([expert, learner], GAP.parse_params({"top": 200}), ctx)
    assert isinstance(out, GapAnalysisOutput)
    assert "patientzero" not in out.model_dump_json()


def test_gap_analysis_learner_is_no_membership_oracle() -> None:
    """The requester brings the expert input (candidate terms it wants to test) and names a
    victim's dataset as the learner with learner_min = 1: whether a candidate is "covered"
    must not depend on fewer than the learner's k entities."""
    candidates = ["alice hiv", "bob hepatitis", "carol diabetes"]
    expert = pa.table({"text": [c for c in candidates for _ in range(5)]})
    base = [f"routine note {i}" for i in range(40)]
    without = pa.table({"text": base, "patient": [f"p{i}" for i in range(40)]})
    with_one = pa.table(
        {"text": [*base, "saw alice hiv today"], "patient": [*(f"p{i}" for i in range(40)), "p99"]}
    )
    ctx = PrivacyContext(k=(1, 5), entity_columns=(None, "patient"))
    params = GAP.parse_params({"learner_min": 1})
    assert GAP.run([expert, without], params, ctx) == GAP.run([expert, with_one], params, ctx)


def test_counts_released_are_distinct_entities() -> None:
    # 30 records of "tdx quote" written by 6 people; 12 records of "kms" by 6 other people
    text = ["tdx quote"] * 30 + ["kms"] * 12
    person = [f"u{i % 6}" for i in range(30)] + [f"v{i % 6}" for i in range(12)]
    table = pa.table({"text": text, "person": person})
    ctx = PrivacyContext(k=(5, 5), entity_columns=("person", "person"))
    out = OVERLAP.run([table, table], OVERLAP.parse_params({}), ctx)
    assert isinstance(out, TopicOverlapOutput)
    assert {(s.term, s.count_a, s.count_b) for s in out.shared} == {
        ("tdx quote", 6, 6),
        ("kms", 6, 6),
    }


def test_records_with_a_null_entity_lift_no_term() -> None:
    table = pa.table({"text": ["patientzero diagnosis"] * 20, "person": ["u1", "u2"] + [None] * 18})
    ctx = PrivacyContext(k=(3, 1), entity_columns=("person", None))
    other = pa.table({"text": ["patientzero diagnosis"] * 3})
    out = OVERLAP.run([table, other], OVERLAP.parse_params({}), ctx)
    assert isinstance(out, TopicOverlapOutput)
    assert not any("patientzero" in t for t in _of_a(out))


# --- class 10: differencing between terms and between releases -------------------------------


def _history(tmp_path: Path) -> SqlReleaseHistory:
    return SqlReleaseHistory(engine=sa.create_engine(f"sqlite:///{tmp_path / 'history.db'}"))


def _record(
    history: SqlReleaseHistory, footprint: Footprint, ks: Sequence[int], request: str
) -> None:
    scopes = [
        FootprintScope(scope=f"input-{i}", k=k, cells=cells)
        for i, (k, cells) in enumerate(zip(ks, footprint.cells, strict=True))
        if cells
    ]
    history.check_and_record(scopes, request=request, now=0)


def test_no_two_released_counts_differ_by_fewer_than_k_entities() -> None:
    """'hiv' in 12 records and 'hiv test' in 10 of them: both counts together release that 2
    records say 'hiv' without 'test' (a count below k). Only one of them leaves."""
    table = pa.table(
        {"text": ["hiv test"] * 10 + ["hiv"] * 2 + [f"other topic {i}" for i in range(20)]}
    )
    other = pa.table({"text": ["hiv test"] * 5 + ["hiv"] * 5})
    ctx = PrivacyContext(k=(5, 5))
    out, footprint = OVERLAP.execute([table, other], OVERLAP.parse_params({}), ctx)
    assert isinstance(out, TopicOverlapOutput)
    assert footprint is not None
    for cells, k in zip(footprint.cells, (5, 5), strict=True):
        for i, a in enumerate(cells):
            for b in cells[:i]:
                assert not 0 < len(a ^ b) < k


def test_every_release_passes_the_enclaves_own_difference_check(tmp_path: Path) -> None:
    history = _history(tmp_path)
    a, b = shipped("amiller"), shipped("cloudmolty")
    ctx = PrivacyContext(k=(5, 5))
    _, fp = OVERLAP.execute([a, b], OVERLAP.parse_params({"top": 200}), ctx)
    assert fp is not None
    assert all(len(cells) > 0 for cells in fp.cells)
    _record(history, fp, (5, 5), "overlap")
    # The gap analysis on the same expert data releases counts on the same entity sets.
    _, gap_fp = GAP.execute([a, shipped("newbiemolty")], GAP.parse_params({}), ctx)
    assert gap_fp is not None
    _record(history, gap_fp, (5, 5), "gap")


def test_republishing_with_one_more_entity_is_refused_by_the_difference_check(
    tmp_path: Path,
) -> None:
    """The owner adds one person's records and the same overlap runs again: the two releases'
    counts differ by that person's terms. The footprints make the enclave refuse it."""
    history = _history(tmp_path)
    text = ["kms rotation"] * 30
    person = [f"p{i}" for i in range(30)]
    before = pa.table({"text": text, "person": person})
    after = pa.table({"text": [*text, "kms rotation"], "person": [*person, "target"]})
    partner = pa.table({"text": ["kms rotation"] * 5})
    ctx = PrivacyContext(k=(5, 1), entity_columns=("person", None))
    _, fp1 = OVERLAP.execute([before, partner], OVERLAP.parse_params({}), ctx)
    _, fp2 = OVERLAP.execute([after, partner], OVERLAP.parse_params({}), ctx)
    assert fp1 is not None
    assert fp2 is not None
    _record(history, fp1, (5, 1), "first")
    with pytest.raises(PolicyDenied, match="difference-check"):
        _record(history, fp2, (5, 1), "second")


# --- class 11: the public card ----------------------------------------------------------------

NOTES = CardOptions(text_column="note")


def test_card_obeys_the_policys_k_in_distinct_entities(tmp_path: Path) -> None:
    data = write_clinic_notes(tmp_path / "notes.jsonl")
    policy = {"allow": [{"id": "topic-overlap"}], "k": 50}
    preview = preview_card(data, policy_rules=policy, card=NOTES)
    dumped = json.dumps(preview.fields)
    for word in ("zebulon", "quixote", "leukaemia", "lymphoblastic"):
        assert word not in dumped.lower()
    assert all(kw["count"] >= 50 for kw in preview.fields["keywords"])
    assert preview.card.k == 50
    # Entities: 70 clinicians; "ward round" is written by all of them, but counted once each.
    by_clinician = preview_card(
        data, policy_rules={**policy, "k": 20, "entity_column": "who"}, card=NOTES
    )
    counts = {kw["term"]: kw["count"] for kw in by_clinician.fields["keywords"]}
    assert counts
    assert max(counts.values()) <= 70
    assert "zebulon" not in json.dumps(by_clinician.fields).lower()


def test_card_without_a_policy_uses_the_default_k(tmp_path: Path) -> None:
    data = write_clinic_notes(tmp_path / "notes.jsonl")
    preview = preview_card(data, policy_rules=None, card=NOTES)
    assert preview.card.k == 5
    assert "zebulon" in json.dumps(preview.fields).lower()  # 6 records >= 5: the owner sees it
    dropped = preview_card(
        data, policy_rules=None, card=CardOptions(text_column="note", drop_terms=("Zebulon",))
    )
    assert "zebulon" not in json.dumps(dropped.fields).lower()


def test_card_counts_entities_not_records() -> None:
    table = pa.table(
        {"text": ["patient zebulon leukaemia"] * 40 + ["ward round"] * 10, "person": ["p1"] * 50}
    )
    card = profile_table(table, k=2, entity_column="person")
    assert card.keywords == ()


# --- class 9: pattern-search ------------------------------------------------------------------


def _search(table: pa.Table, query: str, k: int = 3) -> PatternSearchOutput:
    out = SEARCH.run([table], SEARCH.parse_params({"query": query}), PrivacyContext(k=(k,)))
    assert isinstance(out, PatternSearchOutput)
    return out


def _secret_log(secret: str) -> pa.Table:
    records = [
        f"Login failed on staging; the password is {secret}. Fixed by resetting the vault."
        for _ in range(6)
    ]
    return pa.table({"text": [*records, "unrelated note"]})


def test_query_prefix_extension_learns_nothing_about_a_redacted_secret() -> None:
    """The attacker extends a query one character at a time and watches ``matched``: on
    redacted text every extension into the secret matches nothing, whatever the secret."""
    secret, other = "hunter2", "zebra99"
    prefix = "the password is "
    queries = [prefix + secret[:i] for i in range(len(secret) + 1)]
    queries += [prefix + other[:i] for i in range(1, len(other) + 1)]
    for query in queries:
        a = _search(_secret_log(secret), query)
        b = _search(_secret_log(other), query)
        assert a == b, query
        if query != prefix:
            assert a.matched == 0
            assert a.patterns == ()
    assert "hunter2" not in _search(_secret_log(secret), "login failed").model_dump_json()


@settings(max_examples=60, deadline=None)
@given(
    secrets=st.lists(
        st.from_regex(r"[a-z]{0,6}[0-9][a-z0-9]{2,8}", fullmatch=True), min_size=2, max_size=2
    ),
    form=st.sampled_from(["the password is {}", "password: {}", "pw={}", "my pin is {}"]),
    cut=st.integers(min_value=0, max_value=12),
)
def test_no_query_tells_two_secrets_apart(secrets: list[str], form: str, cut: int) -> None:
    """Whatever the secret, every query built from it (or from the other) answers the same."""
    logs = [
        pa.table({"text": [f"Deploy failed; {form.format(x)}. Fixed by a restart."] * 4})
        for x in secrets
    ]
    for secret in secrets:
        for query in (form.format(secret)[: len(form) - 2 + cut], secret[: max(cut, 2)]):
            if len(query.strip()) < 2:
                continue
            assert _search(logs[0], query) == _search(logs[1], query), query


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        # national ids
        ("SSN 123-45-6789 on file", "6789"),
        ("paid to IBAN DE89 3704 0044 0532 0130 00 today", "3704"),
        ("codice fiscale RSSMRA85T10A562S", "RSSMRA85T10A562S"),
        ("DNI 12345678Z", "12345678Z"),
        ("CPF 390.533.447-05", "447"),
        ("Aadhaar 2345 6789 0124", "6789"),
        ("PAN ABCPE1234F", "ABCPE1234F"),
        ("NINO QQ123456C", "QQ123456C"),
        # card numbers
        ("card 4111 1111 1111 1111 declined", "1111"),
        ("amex 3782-822463-10005", "822463"),
        ("card 5555555555554444", "5555555555554444"),
        # phone numbers
        ("call +1 (415) 555-0134 tomorrow", "555"),
        ("ring 415-555-0134 about it", "0134"),
        ("London office 020 7946 0958", "7946"),
        ("mobile +44 7700 900123", "900123"),
        ("tel 415.555.0134", "0134"),
        # hostnames
        ("ssh into db01.prod.acme.internal", "acme"),
        ("the api.stripe.com call timed out", "stripe"),
        ("deploy to build-7.corp.example.co.uk", "example"),
        ("jenkins.local is down", "jenkins"),
        ("pushed to github.com/acme/secret-repo", "secret-repo"),
        # secrets in prose
        ("the password is hunter2", "hunter2"),
        ("password for the staging box is hunter2", "hunter2"),
        ("pw: hunter2", "hunter2"),
        ("the passphrase was correct-horse-battery", "correct-horse"),
        ("my PIN is 4921", "4921"),
        ("Stripe key sk_live_4eC39HqLyjWDarjtT1zdp7dc", "4eC39"),
        ("gitlab glpat-aB3dE5fG7hI9jK1lM3nO", "aB3dE5"),
    ],
)
def test_redaction_covers_the_classes_the_issue_found_missing(text: str, secret: str) -> None:
    assert secret.lower() not in redact(text).lower(), redact(text)
    table = pa.table({"text": [f"Incident: {text}. Fixed by rotating it."] * 4})
    body = _search(table, "incident").model_dump_json()
    assert secret.lower() not in body.lower(), body


def test_pattern_counts_are_coarse_and_say_so() -> None:
    table = pa.table(
        {"text": ["Disk full on node. Fixed by pruning images."] * 7 + ["Disk full on node."] * 6}
    )
    out = _search(table, "disk full", k=5)
    assert out.counts_rounded_to == 5
    assert out.matched == 10  # 13 entities, rounded down to a multiple of k
    assert [(p.problem, p.count) for p in out.patterns] == [("disk full on node", 10)]
    assert all(s.count % 5 == 0 for p in out.patterns for s in p.solutions)
    assert out.redaction.best_effort
    assert "phone" in out.redaction.classes
    assert "suppressed_problems" not in out.model_dump()
