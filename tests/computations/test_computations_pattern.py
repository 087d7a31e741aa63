from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest

from sealroom.computations import PrivacyContext, default_registry
from sealroom.computations._redact import redact
from sealroom.computations.pattern_search import PatternSearchOutput, classify, clauses
from sealroom.connectors import read_table
from sealroom.errors import InvalidInput, PolicyDenied

SEARCH = default_registry().get("pattern-search")
DATA = Path(__file__).resolve().parents[2] / "src" / "sealroom" / "data"


def search(
    table: pa.Table, k: int = 3, privacy: PrivacyContext | None = None, **params: object
) -> PatternSearchOutput:
    ctx = privacy if privacy is not None else PrivacyContext(k=(k,))
    out = SEARCH.run([table], SEARCH.parse_params(params), ctx)
    assert isinstance(out, PatternSearchOutput)
    return out


def test_declaration() -> None:
    assert SEARCH.privacy_class == "content"
    assert SEARCH.release == "requester"
    assert SEARCH.input_names == ("log",)


REDACTIONS = {
    "email": (["write to alice.smith+ops@example.co.uk today"], ["user at example dot com", "a@b"]),
    "uuid": (["job 123e4567-e89b-12d3-a456-426614174000 hung"], ["layout ab12-cd34"]),
    "ip": (
        ["from 10.0.0.12:8080", "peer 2001:db8::1 and fe80::1ff:fe23:4567:890a"],
        ["999.1.1.1", "version 1.2.3", "12:30:45"],
    ),
    "url": (["see https://x.example.com/a?t=1 now"], ["the http protocol"]),
    "path": (
        [
            "read /etc/ssl/private/key.pem",
            "ran ./scripts/run.sh",
            "in ~/work/x",
            r"C:\Users\bob\x.txt",
        ],
        ["docker-compose.yml", "and/or", "compute.instances.get"],
    ),
    "key": (
        [
            "-----BEGIN PRIVATE KEY-----\nMIIEv\n-----END PRIVATE KEY-----",
            "sk-abcdefghijklmnop1234",
            "AKIAABCDEFGHIJKLMNOP",
            "eyJhbGciOi.eyJzdWIiOi.SflKxwRJSM",
        ],
        ["the key derivation path", "api keys rotate"],
    ),
    "secret": (
        ["token=abc123secret", "password: hunter2", "the password is hunter", "PIN is 4921"],
        ["token rotation", "the token is expired", "the key was born in the enclave"],
    ),
    "token": (
        ["blob dGhpc2lzYXNlY3JldHRva2VuMTIz"],
        ["abcdefghijklmnopqrstuvwxyz"],
    ),
    "card": (["card 4111-1111-1111-1111", "amex 378282246310005"], ["build 1234"]),
    "phone": (["call +1 (415) 555-0134", "office 020 7946 0958"], ["16 ms", "port 8443"]),
    "national-id": (["ssn 123-45-6789", "DNI 12345678Z", "PAN ABCPE1234F"], ["x509 tpm2"]),
    "account": (["IBAN GB82 WEST 1234 5698 7654 32"], ["GB is fine"]),
    "hostname": (
        ["db01.prod.acme.internal down", "see example.com", "a.b.example.co.uk"],
        ["setup.py", "user.id", "node.js", "compute.instances.get", "README.md"],
    ),
    "id": (
        [
            "commit 3f9a2c1d7e",
            "addr 0xdeadbeef12",
            "ticket #4521",
            "account 1234567",
            "vm cvm-48213",
            "card 4111 1111 1111 1112",  # not a card (Luhn), still a long number
            "on 2025-09-01",
        ],
        ["x509 sha256 tpm2 rtmr3 h100", "dstack 0.5.3", "16 ms on 64 CVMs", "deadbeef"],
    ),
}


@pytest.mark.parametrize("cls", sorted(REDACTIONS))
def test_each_redaction_class_positive_and_negative(cls: str) -> None:
    positives, negatives = REDACTIONS[cls]
    for text in positives:
        assert f"<{cls}>" in redact(text), text
    for text in negatives:
        assert redact(text) == text, text


def test_redaction_exact_strings() -> None:
    assert redact("mail bob@corp.io from 192.168.1.7 about /var/log/app.log") == (
        "mail <email> from <ip> about <path>"
    )
    assert (
        redact("api_key: sk-abcdefghijklmnop1234 and token=zz9")
        == "api_key: <key> and token=<secret>"
    )
    assert redact("password for the staging box is hunter2") == (
        "password for the staging box is <secret>"
    )


def test_clauses_and_classes() -> None:
    parts = clauses(
        "FYI quote verification failed with collateral expired; had to refresh the collateral "
        "from PCCS. Rolled back dstack while we investigate. Lunch."
    )
    assert parts == [
        "quote verification failed with collateral expired",
        "had to refresh the collateral from pccs",
        "rolled back dstack while we investigate",
        "lunch",
    ]
    assert [classify(p) for p in parts] == ["problem", "solution", "investigation", None]


def _records(*texts: str, users: list[str] | None = None) -> pa.Table:
    cols: dict[str, list[str]] = {"text": list(texts)}
    if users is not None:
        cols["user"] = users
    return pa.table(cols)


def test_exact_patterns_with_thresholds_and_redaction() -> None:
    rec = "Disk full on /var/lib/docker/x{i}. Debugging with ops@example.com. Fixed by pruning images."
    other = "Disk full on /srv/{i}/data. Restarted the node."
    table = _records(
        *[rec.format(i=i) for i in range(6)], *[other.format(i=i) for i in range(3)], "unrelated"
    )
    out = search(table, k=3, query="disk full")
    assert (out.matched, out.counts_rounded_to) == (9, 3)
    assert [(p.problem, p.count) for p in out.patterns] == [("disk full on <path>", 9)]
    pattern = out.patterns[0]
    assert [(s.text, s.count) for s in pattern.investigations] == [("debugging with <email>", 6)]
    # the investigation's 6 records again: the same entity set, so released beside it
    assert [(s.text, s.count) for s in pattern.solutions] == [
        ("fixed by pruning images", 6),
        ("restarted the node", 3),
    ]
    assert "restarted the node" not in search(table, k=4, query="disk full").model_dump_json()
    body = out.model_dump_json()
    assert "ops@example.com" not in body
    assert "/var/lib" not in body


def test_counts_are_rounded_down_to_a_multiple_of_k() -> None:
    table = _records(*["Boot failed again. Fixed by a reboot."] * 8, "x")
    out = search(table, k=3, query="boot failed")
    assert (out.matched, out.counts_rounded_to) == (6, 3)
    assert [(p.problem, p.count) for p in out.patterns] == [("boot failed again", 6)]
    assert [s.count for s in out.patterns[0].solutions] == [6]


def test_a_step_within_k_of_its_problem_is_left_out() -> None:
    # 5 records have the problem, 4 of them the fix: both counts together would say that
    # one record has the problem without the fix (1 < k = 3).
    table = _records(*["Boot failed. Fixed by a reboot."] * 4, "Boot failed.")
    out, footprint = SEARCH.execute(
        [table], SEARCH.parse_params({"query": "boot failed"}), PrivacyContext(k=(3,))
    )
    assert isinstance(out, PatternSearchOutput)
    assert [(p.problem, p.count, p.solutions) for p in out.patterns] == [("boot failed", 3, ())]
    assert out.matched == 3  # on the problem's entities exactly
    assert footprint is not None
    assert footprint.cells == ((frozenset(range(5)), frozenset(range(5))),)


def test_matched_is_withheld_when_it_stands_on_nearly_a_patterns_entities() -> None:
    table = _records(*["Boot failed hard."] * 4, "boot failed", "x")
    out = search(table, k=3, query="boot failed")
    assert [(p.problem, p.count) for p in out.patterns] == [("boot failed hard", 3)]
    assert out.matched is None


def test_k_counts_distinct_entities_not_records() -> None:
    table = _records(
        *["Build failed: cache miss. Fixed by clearing the cache."] * 6, users=["u1", "u2"] * 3
    )
    ctx = PrivacyContext(k=(3,), entity_columns=("user",))
    out = search(table, privacy=ctx, query="build failed")
    assert (out.matched, out.patterns) == (0, ())
    ctx2 = PrivacyContext(k=(2,), entity_columns=("user",))
    out2 = search(table, privacy=ctx2, query="build failed")
    assert [(p.problem, p.count) for p in out2.patterns] == [("build failed: cache miss", 2)]
    with pytest.raises(InvalidInput, match="no entity column 'person'"):
        search(table, privacy=PrivacyContext(k=(2,), entity_columns=("person",)), query="build")


def test_rare_problem_is_suppressed_and_not_counted() -> None:
    table = _records(*["Login failed for bob"] * 3, "Login failed because of SSO", "x")
    out = search(table, k=3, query="login failed")
    assert [(p.problem, p.count) for p in out.patterns] == [("login failed for bob", 3)]
    assert "sso" not in out.model_dump_json().lower()
    assert "suppressed" not in out.model_dump_json()


def test_shipped_logs_quote_verification_patterns_match_plaintext_counts() -> None:
    table = read_table(DATA / "amiller.jsonl")
    out, footprint = SEARCH.execute(
        [table], SEARCH.parse_params({"query": "quote verification failed"}), PrivacyContext(k=(5,))
    )
    assert isinstance(out, PatternSearchOutput)
    texts = [t.lower() for t in table.column("text").to_pylist()]
    by_problem = {p.problem: p for p in out.patterns}
    problem = "quote verification failed with collateral expired"
    # a record counts under its first quote failure; the one record naming two names this first
    expected = sum(problem in t for t in texts)
    assert expected >= 5
    assert by_problem[problem].count == expected - expected % 5
    matched = sum("quote verification failed" in t for t in texts)
    assert out.matched in (None, matched - matched % 5)
    assert all(p.count >= 5 and p.count % 5 == 0 for p in out.patterns)
    assert out.patterns == tuple(sorted(out.patterns, key=lambda p: (-p.count, p.problem)))
    assert footprint is not None
    cells = footprint.cells[0]
    assert all(not 0 < len(a ^ b) < 5 for i, a in enumerate(cells) for b in cells[:i])


def test_shipped_logs_never_release_unredacted_tokens() -> None:
    table = read_table(DATA / "cloudmolty.jsonl")
    out = search(table, k=3, query="decode error")
    assert out.matched > 0
    body = out.model_dump_json()
    assert not re.search(r"[\w.+-]+@[\w-]+\.\w+", body)
    assert not re.search(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", body)


def test_text_column_rules_and_caps() -> None:
    table = _records(*["Boot failed again"] * 4, *["Boot failed twice"] * 4)
    with pytest.raises(PolicyDenied, match="rule never-output"):
        search(
            table, privacy=PrivacyContext(k=(2,), never_output=(frozenset({"text"}),)), query="boot"
        )
    with pytest.raises(PolicyDenied, match="rule join-only"):
        search(
            table, privacy=PrivacyContext(k=(2,), join_only=(frozenset({"text"}),)), query="boot"
        )
    capped = search(table, privacy=PrivacyContext(k=(2,), max_output_rows=1), query="boot failed")
    assert len(capped.patterns) == 1
    assert len(search(table, k=2, query="boot failed").patterns) == 2
