"""Dataset discovery on each database's own full-text engine, behind one interface.

SQLite: an FTS5 virtual table (``porter unicode61`` tokenizer, BM25 ranking with
title > keywords/topics > description). PostgreSQL: a ``tsvector`` table with a
GIN index (``english`` configuration, weights A/B/C, ``ts_rank_cd``). The index
row is written in the same transaction as the dataset, so search never sees a
dataset without its index entry or the other way round.

Ranking is deterministic: ties are broken by insertion order (``seq``). The
cursor is opaque to clients but bound to the query it came from: keyset on
``seq`` for the default newest-first order, an offset for ranked orders (a
ranked order has to score every match anyway, so the offset costs little).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Connection, Float, cast, func, select

from sealroom.errors import InvalidInput, NotFound
from sealroom.storage.schema import dataset_keywords, datasets

__all__ = [
    "MAX_LIMIT",
    "SearchHit",
    "SearchPage",
    "SearchQuery",
    "fts_create_statements",
    "fts_drop_statements",
    "index_datasets",
    "normalize_term",
    "search",
]

MAX_LIMIT = 100
_MAX_TOKENS = 16
_TOKEN_RE = re.compile(r"\w+", re.UNICODE)

_fts_sqlite = sa.table("dataset_fts", sa.column("rowid"), sa.column("dataset_fts"))
_fts_pg = sa.table("dataset_fts", sa.column("seq"), sa.column("document"))


def fts_create_statements(dialect: str) -> list[str]:
    """DDL for the full-text index on ``dialect`` (used by the migrations)."""
    if dialect == "sqlite":
        return [
            "CREATE VIRTUAL TABLE dataset_fts USING fts5("
            "title, tags, description, tokenize = 'porter unicode61')"
        ]
    if dialect == "postgresql":
        return [
            "CREATE TABLE dataset_fts ("
            "seq BIGINT PRIMARY KEY REFERENCES datasets (seq), document TSVECTOR NOT NULL)",
            "CREATE INDEX dataset_fts_document ON dataset_fts USING GIN (document)",
        ]
    raise InvalidInput(f"no full-text search for {dialect}")


def fts_drop_statements(dialect: str) -> list[str]:
    return ["DROP TABLE IF EXISTS dataset_fts"]


def normalize_term(term: str) -> str:
    """Keyword terms match case-insensitively (and after Unicode case folding)."""
    return term.strip().casefold()


def index_datasets(conn: Connection, rows: Sequence[tuple[int, str, Sequence[str], str]]) -> None:
    """Write full-text entries ``(seq, title, tags, description)`` in the caller's transaction."""
    params = [
        {"seq": seq, "title": title, "tags": " ".join(tags), "description": description}
        for seq, title, tags, description in rows
    ]
    if not params:
        return
    if conn.dialect.name == "sqlite":
        sql = (
            "INSERT INTO dataset_fts (rowid, title, tags, description) "
            "VALUES (:seq, :title, :tags, :description)"
        )
    else:
        sql = (
            "INSERT INTO dataset_fts (seq, document) VALUES (:seq, "
            "setweight(to_tsvector('english', :title), 'A') || "
            "setweight(to_tsvector('english', :tags), 'B') || "
            "setweight(to_tsvector('english', :description), 'C'))"
        )
    conn.execute(sa.text(sql), params)


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A discovery query; every field is optional and they combine with AND."""

    q: str | None = None
    keywords: tuple[str, ...] = ()
    owner: str | None = None
    min_rows: int | None = None
    max_rows: int | None = None
    time_from: int | None = None
    time_to: int | None = None
    similar_to: str | None = None
    limit: int = 20
    cursor: str | None = None

    def fingerprint(self) -> str:
        body = json.dumps(
            [
                self.q,
                sorted(normalize_term(k) for k in self.keywords),
                self.owner,
                self.min_rows,
                self.max_rows,
                self.time_from,
                self.time_to,
                self.similar_to,
            ],
            separators=(",", ":"),
        )
        return hashlib.sha256(body.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class SearchHit:
    seq: int
    dataset: str
    score: float
    jaccard: float | None


@dataclass(frozen=True, slots=True)
class SearchPage:
    hits: tuple[SearchHit, ...]
    next_cursor: str | None
    total: int


def _tokens(q: str) -> list[str]:
    tokens = _TOKEN_RE.findall(q.casefold())
    if not tokens:
        raise InvalidInput("q has no searchable words")
    return tokens[:_MAX_TOKENS]


def _encode_cursor(data: dict[str, object]) -> str:
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, fingerprint: str) -> dict[str, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (ValueError, TypeError):
        raise InvalidInput("cursor is not one this server issued") from None
    if (
        not isinstance(data, dict)
        or data.get("f") != fingerprint
        or not any(k in data for k in ("o", "k"))
    ):
        raise InvalidInput("cursor belongs to another query; start again without it")
    out: dict[str, int] = {}
    for key in ("o", "k"):
        if key in data:
            value = data[key]
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**62:
                raise InvalidInput("cursor is not one this server issued")
            out[key] = value
    return out


def _check(query: SearchQuery) -> None:
    if not 1 <= query.limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be 1..{MAX_LIMIT}")
    for name in ("min_rows", "max_rows", "time_from", "time_to"):
        value = getattr(query, name)
        if value is not None and not 0 <= value < 2**62:
            raise InvalidInput(f"{name} must be a non-negative integer")
    if len(query.keywords) > 32:
        raise InvalidInput("at most 32 keyword filters")
    if query.q is not None and len(query.q) > 500:
        raise InvalidInput("q is longer than 500 characters")


def search(conn: Connection, query: SearchQuery) -> SearchPage:
    """Run ``query`` over active datasets; raise :class:`NotFound` for an unknown ``similar_to``."""
    _check(query)
    d = datasets
    where: list[ColumnElement[bool]] = [d.c.status == "active"]
    if query.owner is not None:
        where.append(d.c.owner == query.owner)
    if query.min_rows is not None:
        where.append(d.c.row_count >= query.min_rows)
    if query.max_rows is not None:
        where.append(d.c.row_count <= query.max_rows)
    if query.time_from is not None:
        where.append(d.c.time_end >= query.time_from)
    if query.time_to is not None:
        where.append(d.c.time_start <= query.time_to)
    wanted = list(dict.fromkeys(normalize_term(k) for k in query.keywords))
    if wanted:
        # Intersect the posting lists (primary key (term, seq)) rather than probing per row.
        k = dataset_keywords
        lists = [select(k.c.seq).where(k.c.term == term) for term in wanted]
        where.append(d.c.seq.in_(lists[0] if len(lists) == 1 else sa.intersect(*lists)))

    from_: sa.FromClause = d
    count_from: sa.FromClause = d
    count_where: list[ColumnElement[bool]] = []
    score: ColumnElement[float] = sa.literal(0.0, Float)
    if query.q is not None:
        tokens = _tokens(query.q)
        if conn.dialect.name == "sqlite":
            # Rank inside the FTS table first (one pass over the posting lists), then join:
            # a join driven from ``datasets`` would run MATCH once per dataset row.
            match = " AND ".join(f'"{t}"' for t in tokens)
            fts = (
                select(
                    _fts_sqlite.c.rowid.label("seq"),
                    (-func.bm25(sa.literal_column("dataset_fts"), 3.0, 2.0, 1.0)).label("rank"),
                )
                .where(sa.literal_column("dataset_fts").op("MATCH", return_type=sa.Boolean)(match))
                .subquery("fts")
            )
        else:
            tsq = func.plainto_tsquery(sa.literal_column("'english'"), " ".join(tokens))
            fts = (
                select(
                    _fts_pg.c.seq.label("seq"),
                    cast(func.ts_rank_cd(_fts_pg.c.document, tsq), Float).label("rank"),
                )
                .where(_fts_pg.c.document.op("@@")(tsq))
                .subquery("fts")
            )
        from_ = from_.join(fts, fts.c.seq == d.c.seq)
        score = fts.c.rank
        # Counting needs the matches, not their rank (BM25 per row is the expensive part).
        if conn.dialect.name == "sqlite":
            ids = select(_fts_sqlite.c.rowid).where(
                sa.literal_column("dataset_fts").op("MATCH", return_type=sa.Boolean)(match)
            )
        else:
            ids = select(_fts_pg.c.seq).where(_fts_pg.c.document.op("@@")(tsq))
        count_where.append(d.c.seq.in_(ids))

    jaccard: ColumnElement[Any] | None = None
    if query.similar_to is not None:
        target = conn.execute(
            select(d.c.seq).where(d.c.dataset == query.similar_to)
        ).scalar_one_or_none()
        if target is None:
            raise NotFound(f"similar_to: no dataset {query.similar_to}")
        terms = [
            t
            for (t,) in conn.execute(
                select(dataset_keywords.c.term).where(dataset_keywords.c.seq == target)
            )
        ]
        k = dataset_keywords
        overlap = (
            select(k.c.seq.label("seq"), func.count().label("inter"))
            .where(k.c.term.in_(terms or [""]))
            .group_by(k.c.seq)
            .subquery("overlap")
        )
        from_ = from_.join(overlap, overlap.c.seq == d.c.seq)
        count_from = count_from.join(overlap, overlap.c.seq == d.c.seq)
        where.append(d.c.seq != target)
        inter = cast(overlap.c.inter, Float)
        jaccard = inter / (cast(len(terms) + d.c.keyword_count, Float) - inter)

    fingerprint = query.fingerprint()
    position = _decode_cursor(query.cursor, fingerprint) if query.cursor else {}
    total = int(
        conn.execute(
            select(func.count()).select_from(count_from).where(*where, *count_where)
        ).scalar_one()
    )

    cols = [d.c.seq, d.c.dataset, score.label("score")]
    if jaccard is not None:
        cols.append(jaccard.label("jaccard"))
    stmt = select(*cols).select_from(from_).where(*where)
    keyset = query.q is None and jaccard is None
    offset = 0
    if keyset:
        if "k" in position:
            stmt = stmt.where(d.c.seq < position["k"])
        stmt = stmt.order_by(d.c.seq.desc())
    else:
        offset = position.get("o", 0)
        order: list[ColumnElement[object]] = []
        if jaccard is not None:
            order.append(sa.literal_column("jaccard").desc())
        if query.q is not None:
            order.append(sa.literal_column("score").desc())
        order.append(d.c.seq.asc())
        stmt = stmt.order_by(*order).offset(offset)
    rows = conn.execute(stmt.limit(query.limit + 1)).all()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    hits = tuple(
        SearchHit(
            seq=int(r.seq),
            dataset=str(r.dataset),
            score=float(r.score),
            jaccard=float(r.jaccard) if jaccard is not None else None,
        )
        for r in rows
    )
    next_cursor: str | None = None
    if more and hits:
        if keyset:
            next_cursor = _encode_cursor({"f": fingerprint, "k": hits[-1].seq})
        else:
            next_cursor = _encode_cursor({"f": fingerprint, "o": offset + len(hits)})
    return SearchPage(hits=hits, next_cursor=next_cursor, total=total)
