"""The rows a published attestation becomes: dataset, keyword terms, full-text entry.

One function for the coordinator and for bulk loads (benchmarks, imports), so
both store exactly the same thing. The caller owns the transaction and has
stored the attestation's envelope in ``statements`` first.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select

from sealroom.statements import DatasetAttestation
from sealroom.storage.schema import dataset_keywords, datasets
from sealroom.storage.search import index_datasets, normalize_term

__all__ = ["insert_datasets"]


def insert_datasets(
    conn: Connection, items: Sequence[tuple[str, DatasetAttestation]], *, registered_at: int
) -> list[int]:
    """Insert ``(dataset digest, attestation)`` pairs; return their ``seq`` numbers in order."""
    if not items:
        return []
    rows = []
    terms_of: list[dict[str, int | None]] = []
    for digest, att in items:
        terms: dict[str, int | None] = {}
        for kw in att.keywords:
            terms.setdefault(normalize_term(kw.term), kw.count)
        terms.pop("", None)
        terms_of.append(terms)
        rows.append(
            {
                "dataset": digest,
                "owner": att.owner,
                "title": att.title,
                "row_count": att.row_count,
                "time_start": None if att.time_range is None else att.time_range.start,
                "time_end": None if att.time_range is None else att.time_range.end,
                "policy": att.policy,
                "keyword_count": len(terms),
                "status": "active",
                "status_reason": None,
                "created_at": att.created_at,
                "registered_at": registered_at,
            }
        )
    conn.execute(datasets.insert(), rows)
    digests = [d for d, _ in items]
    seq_of = dict(
        conn.execute(
            select(datasets.c.dataset, datasets.c.seq).where(datasets.c.dataset.in_(digests))
        ).all()
    )
    seqs = [int(seq_of[d]) for d in digests]
    keyword_rows = [
        {"term": t, "seq": seq, "count": c}
        for seq, terms in zip(seqs, terms_of, strict=True)
        for t, c in terms.items()
    ]
    if keyword_rows:
        conn.execute(dataset_keywords.insert(), keyword_rows)
    index_datasets(
        conn,
        [
            (seq, att.title, [kw.term for kw in att.keywords] + list(att.topics), att.description)
            for seq, (_, att) in zip(seqs, items, strict=True)
        ],
    )
    return seqs
