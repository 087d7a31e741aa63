"""Discovery search through the coordinator, on SQLite and PostgreSQL (``engine`` fixture)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from sqlalchemy import Engine

from sealroom.coordinator.datasets import Datasets
from sealroom.coordinator.keys import CoordinatorKeystore
from sealroom.coordinator.service import Coordinator
from sealroom.errors import InvalidInput, NotFound
from sealroom.statements import Keyword, TimeRange, sign_statement
from sealroom.storage.discovery_index import DiscoveryIndex
from sealroom.storage.engine import read_transaction
from sealroom.storage.search import SearchQuery, search
from sealroom.wire import PublishDatasetBody
from tests.coordinator.coord_helpers import REGISTRY, World
from tests.helpers import T0, attestation, identity


def _kw(*terms: str) -> tuple[Keyword, ...]:
    return tuple(Keyword(term=t, count=1) for t in terms)


def _ids(w: World, **kw: object) -> list[str]:
    return [i.dataset.dataset for i in w.c.datasets.search(SearchQuery(**kw)).items]  # type: ignore[arg-type]


def test_search_text_filters_and_similarity(w: World) -> None:
    bob = identity("bob")
    gpu = w.publish(
        bob,
        title="GPU kernels",
        description="CUDA tuning notes",
        keywords=_kw("cuda", "gpu", "kms"),
        topics=("hpc",),
        row_count=500,
        commitment=_commit(500),
        time_range=TimeRange(start=T0 + 10_000, end=T0 + 20_000),
    )
    mixed = w.publish(
        bob,
        title="Attestation on GPUs",
        description="confidential GPU attestation",
        keywords=_kw("attestation", "kms", "gpu"),
        topics=("tee",),
    )
    assert set(_ids(w, q="attestation")) == {w.dataset, mixed}
    assert _ids(w, q="attestation")[0] == mixed  # title match ranks first
    assert _ids(w, q="cuda tuning") == [gpu]
    assert set(_ids(w, keywords=("KMS", "gpu"))) == {gpu, mixed}
    assert _ids(w, owner=w.owner.party_id) == [w.dataset]
    assert _ids(w, min_rows=100) == [gpu]
    assert _ids(w, time_from=T0 + 15_000) == [gpu]
    assert set(_ids(w, time_to=T0)) == {w.dataset, mixed}
    page = w.c.datasets.search(SearchQuery(similar_to=w.dataset))
    # w.dataset {attestation, kms}: mixed shares 2 of 3 terms (2/3), gpu 1 of 4 (1/4)
    assert [i.dataset.dataset for i in page.items] == [mixed, gpu]
    assert page.items[0].jaccard == pytest.approx(2 / 3)
    assert page.items[1].jaccard == pytest.approx(1 / 4)
    with pytest.raises(NotFound):
        w.c.datasets.search(SearchQuery(similar_to="sha256:" + "2" * 64))
    w.c.datasets.withdraw(mixed, "gone", caller=bob.party_id, now=T0)
    assert _ids(w, q="attestation") == [w.dataset]


def test_search_pagination_is_complete_and_bound_to_query(w: World) -> None:
    for i in range(7):
        w.publish(identity(f"p{i}"), title=f"notes {i}", keywords=_kw("shared", f"t{i}"))
    for q in (
        SearchQuery(limit=3),
        SearchQuery(q="notes", limit=3),
        SearchQuery(keywords=("shared",), limit=2),
    ):
        seen: list[str] = []
        cursor = None
        while True:
            page = w.c.datasets.search(SearchQuery(**{**_fields(q), "cursor": cursor}))  # type: ignore[arg-type]
            seen += [i.dataset.dataset for i in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == page.total
    first = w.c.datasets.search(SearchQuery(q="notes", limit=2))
    with pytest.raises(InvalidInput):
        w.c.datasets.search(SearchQuery(q="other", cursor=first.next_cursor))
    with pytest.raises(InvalidInput):
        w.c.datasets.search(SearchQuery(limit=0))
    with pytest.raises(InvalidInput):
        w.c.datasets.search(SearchQuery(q="!!!"))


def _fields(q: SearchQuery) -> dict[str, object]:
    return {f: getattr(q, f) for f in q.__dataclass_fields__}


def _commit(rows: int) -> object:
    import hashlib

    from sealroom.crypto.keys import b64encode
    from sealroom.statements import CommitmentRef

    return CommitmentRef(
        format="arrow-ipc-stream/v1",
        root=b64encode(hashlib.sha256(b"r").digest()),
        length=10,
        rows=rows,
        chunk_size=1 << 20,
    )


# --- text ranking: BM25 over weighted fields, the same on both databases -------------------

# Tokens that neither stemmer changes and neither engine drops (no stop words), so both
# databases see exactly these tokens and must give exactly the reference scores.
_CORPUS: list[tuple[str, str, tuple[str, ...], tuple[str, ...]]] = [
    # (title, description, keyword terms, topics)
    ("qa1 qa2", "qa3 qa3 qa9", ("qa4", "qz1"), ("qa5",)),
    ("qa3 qa7", "qa1 qa1 qa1 qa2 qa9", ("qz1",), ()),
    ("qa8", "qa1 qa9", ("qa3", "qz1"), ("qa2",)),
    ("qa6 qa6", "qa2 qa2 qa2 qa2 qa2 qa2 qa9", ("qz1",), ("qa1",)),
    ("qa7", "qa5 qa9", ("qa1", "qz1"), ()),
    ("qa7", "qa5 qa9", ("qa1", "qz1"), ()),  # identical statistics: an exact tie
    ("qa4", "qa4 qa4 qa9", ("qa2", "qz1"), ()),
    ("qb1", "qb2 qb3 qb4 qb5 qb6 qb7 qb8 qa9", ("qz1",), ()),
]


def _reference_bm25(
    docs: list[tuple[list[str], list[str], list[str]]], query: list[str]
) -> list[float | None]:
    """The documented rank: sum over query terms of idf * f * (k1 + 1) / (f + k1 * (1 - b + b
    * len / mean len)), f = 3 * title + 2 * (keywords, topics) + 1 * description occurrences,
    idf = ln((N - n + 0.5) / (n + 0.5)) floored at 1e-6; None if a term is missing."""
    k1, b = 1.2, 0.75
    lengths = [sum(len(field) for field in d) for d in docs]
    mean = sum(lengths) / len(docs)
    out: list[float | None] = []
    for doc, length in zip(docs, lengths, strict=True):
        score = 0.0
        for term in sorted(set(query)):
            f = 3 * doc[0].count(term) + 2 * doc[1].count(term) + doc[2].count(term)
            if f == 0:
                score = -1.0
                break
            n = sum(1 for d in docs if any(term in field for field in d))
            idf = math.log((len(docs) - n + 0.5) / (n + 0.5))
            score += (
                (idf if idf > 0 else 1e-6) * f * (k1 + 1) / (f + k1 * (1 - b + b * length / mean))
            )
        out.append(None if score < 0 else score)
    return out


def test_search_text_rank_is_bm25_on_both_databases(
    engine: Engine, keystore: CoordinatorKeystore
) -> None:
    c = Coordinator.open(
        engine=engine, registry=REGISTRY, keystore=keystore, log_origin="sealroom.test/log"
    )
    owner = identity("bob")
    ids = []
    for i, (title, description, terms, topics) in enumerate(_CORPUS):
        att = sign_statement(
            attestation(
                owner,
                title=title,
                description=description,
                keywords=_kw(*terms),
                topics=topics,
                commitment=_commit(3 + i),
                row_count=3 + i,
            ),
            owner,
        )
        body = PublishDatasetBody(attestation=att.envelope)
        ids.append(c.datasets.publish(body, caller=owner.party_id, now=T0).view.dataset)
    docs = [(t.split(), [*k, *p], d.split()) for t, d, k, p in _CORPUS]
    # withdrawn datasets are never returned but still count in the statistics (as in FTS5)
    c.datasets.withdraw(ids[2], "x", caller=owner.party_id, now=T0)
    for query in ("qa1", "qa2", "qa1 qa2", "qa7", "qa9", "qz1 qa5", "qb8", "qa3 qa1"):
        ref = _reference_bm25(docs, query.split())
        want = sorted(
            ((s, i) for i, s in enumerate(ref) if s is not None and i != 2),
            key=lambda x: (-x[0], x[1]),
        )
        items: list[dict[str, object]] = []
        cursor = None
        while True:  # page by 2 to cross ties with the cursor
            page = c.datasets.search(SearchQuery(q=query, limit=2, cursor=cursor))
            items += page.items
            cursor = page.next_cursor
            if cursor is None:
                break
        assert page.total == len(want), query
        assert [i.dataset.dataset for i in items] == [ids[i] for _, i in want], query
        assert [i.score for i in items] == pytest.approx([s for s, _ in want], rel=1e-12), query
    tie = c.datasets.search(SearchQuery(q="qa7")).items
    assert tie[0].score == tie[1].score  # bit-identical, ordered by publication


def test_search_text_uses_the_engines_stemming_and_follows_changes(
    engine: Engine, keystore: CoordinatorKeystore
) -> None:
    c = Coordinator.open(
        engine=engine, registry=REGISTRY, keystore=keystore, log_origin="sealroom.test/log"
    )
    index = DiscoveryIndex(delta_limit=0)  # fold every refresh into the merged arrays
    other = Coordinator.open(
        engine=engine, registry=REGISTRY, keystore=keystore, log_origin="sealroom.test/log"
    )
    other = replace(other, datasets=Datasets(other.state, discovery=index))
    owner = identity("bob")

    def publish(i: int, title: str, description: str) -> str:
        att = sign_statement(
            attestation(
                owner,
                title=title,
                description=description,
                commitment=_commit(10 + i),
                row_count=10 + i,
            ),
            owner,
        )
        body = PublishDatasetBody(attestation=att.envelope)
        return c.datasets.publish(body, caller=owner.party_id, now=T0).view.dataset

    first = publish(0, "Kernel tuning", "notes on running kernels")
    assert _ids_of(other, "kernels") == [first]  # loads the whole index
    second = publish(1, "Kernels", "kernel kernel")
    third = publish(2, "Compilers", "compiler notes")
    assert _ids_of(other, "kernel") == [second, first]  # refreshed incrementally, stemmed
    assert set(_ids_of(other, "note")) == {first, third}
    assert _ids_of(other, "run kernel") == [first]
    with read_transaction(engine) as old:
        before = search(old, SearchQuery(q="kernel"), index)
        fourth = publish(3, "Kernel kernel", "kernel")
        assert _ids_of(other, "kernel")[0] == fourth  # the shared index moves on
        assert search(old, SearchQuery(q="kernel"), index) == before
    c.datasets.withdraw(second, "x", caller=owner.party_id, now=T0)
    assert second not in _ids_of(other, "kernel")
    assert _ids_of(other, "zzz") == []


def _ids_of(c: Coordinator, q: str) -> list[str]:
    return [i.dataset.dataset for i in c.datasets.search(SearchQuery(q=q)).items]
