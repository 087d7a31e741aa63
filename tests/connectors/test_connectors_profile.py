from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from sealroom.connectors import attestation_fields, profile_table, read_table
from sealroom.crypto.keys import b64encode
from sealroom.errors import InvalidInput
from sealroom.statements.models import CommitmentRef, DatasetProfile
from sealroom.terms import GENERIC, record_frequencies, specificity
from tests.helpers import attestation, identity

DATA = Path(__file__).resolve().parents[2] / "src" / "sealroom" / "data"


def small() -> pa.Table:
    return pa.table(
        {
            "ts": pa.array([0, 3600, 86400 * 2, 86400 * 2 + 5], type=pa.timestamp("s", tz="UTC")),
            "project": ["a", "b", "a", None],
            "text": ["tdx quote check", "tdx quote", "tdx quote again", "kms"],
        }
    )


def test_exact_small_card() -> None:
    card = profile_table(small(), k=2)
    assert card.keywords == (("tdx quote", 3),)
    assert card.topics == ("tdx quote",)
    assert card.profile == DatasetProfile(
        projects=2, active_days=2, primary_focus="tdx quote", expertise=("tdx quote",)
    )
    assert card.time_range == (0, 86400 * 3 - 1)  # whole days
    assert (card.k, card.entity_column, card.dropped) == (2, None, ())
    assert card.schema == (
        ("ts", "timestamp[s, tz=UTC]"),
        ("project", "string"),
        ("text", "string"),
    )
    assert card.row_count == 4


def test_entities_drops_and_columns() -> None:
    table = small().append_column("who", pa.array(["x", "x", "x", "y"]))
    assert profile_table(table, k=2, entity_column="who").keywords == ()  # one person writes it
    assert profile_table(table, k=1, entity_column="who").keywords[0] == ("tdx quote", 1)
    card = profile_table(table, k=1, drop_terms=("TDX",))
    assert not any("tdx" in t for t, _ in card.keywords)
    assert card.dropped == ("tdx",)
    bare = profile_table(table, k=1, time_column="", project_column="")
    assert (bare.time_range, bare.profile.active_days, bare.profile.projects) == (None, None, None)
    assert bare.columns.text == "text"
    assert profile_table(table, k=1, project_column="who").profile.projects == 2
    with pytest.raises(InvalidInput, match="the time column 'when' is not in the file"):
        profile_table(table, time_column="when")
    with pytest.raises(InvalidInput, match="the project column 'ts' is timestamp"):
        profile_table(table, project_column="ts")
    with pytest.raises(InvalidInput, match="entity column 'nobody' is not in the file"):
        profile_table(table, entity_column="nobody")
    with pytest.raises(InvalidInput, match="k must be at least 1"):
        profile_table(table, k=0)


def test_threshold_hides_rare_terms() -> None:
    assert all(term != "kms" for term, _ in profile_table(small(), k=2).keywords)
    assert ("kms", 1) in profile_table(small(), k=1).keywords
    assert profile_table(small(), k=4).keywords == ()


def test_shipped_cloudmolty_card_names_its_subjects() -> None:
    card = profile_table(read_table(DATA / "cloudmolty.jsonl"))
    assert {"confidential vm", "scale encoding", "tpm quote", "dual attestation"} <= set(
        card.topics
    )
    assert all(" " in t for t in card.topics)


def test_missing_optional_columns() -> None:
    card = profile_table(pa.table({"text": ["a b"]}), k=1)
    assert card.time_range is None
    assert card.profile.projects is None
    assert card.profile.active_days is None
    with pytest.raises(InvalidInput, match="text column 'text' is int64"):
        profile_table(pa.table({"text": [1]}))


def test_shipped_card_and_attestation_fields() -> None:
    card = profile_table(read_table(DATA / "amiller.jsonl"))
    assert len(card.keywords) == 30
    assert all(c >= 5 for _, c in card.keywords)
    terms = {t for t, _ in card.keywords}
    assert {"kms", "attestation", "dstack", "remote attestation"} <= terms
    assert not {t for t in terms if " " not in t and t in GENERIC}  # no "app", "cvm", "key"
    assert card.profile.primary_focus in card.topics
    # the card names subject areas: attestation, reproducible builds, on-chain authorization,
    # KMS key derivation, production debugging
    assert {
        "remote attestation",
        "reproducible build",
        "on-chain authorization",
        "key derivation",
        "production debugging",
    } <= set(card.topics)
    assert any("attestation" in t for t in card.profile.expertise)
    assert "reproducible build" in card.profile.expertise
    assert card.profile.primary_focus != "compose hash"
    # keywords keep the computations' order (count x specificity) and true record counts
    freq = record_frequencies(read_table(DATA / "amiller.jsonl").column("text").to_pylist())
    assert all(freq[t] == c for t, c in card.keywords)
    scores = [c * specificity(t) for t, c in card.keywords]
    assert scores == sorted(scores, reverse=True)
    assert card.profile.active_days is not None
    assert card.profile.active_days > 60
    fields = attestation_fields(card)
    owner = identity("amiller")
    commitment = CommitmentRef(
        format="arrow-ipc-stream/v1",
        root=b64encode(bytes(32)),
        length=1,
        rows=card.row_count,
        chunk_size=1 << 20,
    )
    att = attestation(owner, commitment=commitment, **fields)
    assert att.row_count == 2000
    assert [(k.term, k.count) for k in att.keywords] == list(card.keywords)
    assert att.profile == card.profile
    assert att.time_range is not None
    assert att.time_range.start == card.time_range[0]
    assert profile_table(read_table(DATA / "amiller.jsonl")) == card
