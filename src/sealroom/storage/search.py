"""Dataset discovery: full text parsed by each database's own engine, the rest in-process.

Full text is ranked by BM25 (k1 = 1.2, b = 0.75) over the weighted fields title 3,
keywords and topics 2, description 1, on both databases:

- SQLite: an FTS5 virtual table (``porter unicode61`` tokenizer) matches and ranks
  with its own ``bm25()``. A text query asks it twice: once for the bare set of
  matches (no ranking: cheap) to count them under the filters, once for the
  best-ranked matches after the cursor with a top-k limit, sized from the filters'
  measured pass rate and grown only if too few of them pass.
- PostgreSQL: a ``tsvector`` table (``english`` configuration, weights A/B/C) is the
  stored text index, but matching and ranking run on the lexeme postings that the
  :class:`~sealroom.storage.discovery_index.DiscoveryIndex` loads from it. Only the
  query's lexemes come from the database (``to_tsvector``, so stemming and stop
  words are the engine's). Why: every match of a ranked ``@@`` query is a heap visit
  (a common word is ~16,000 of them, spread over most pages), which alone put p95
  near the 50 ms target at 100,000 attestations. :func:`_bm25` mirrors FTS5's
  ``bm25()`` (same IDF floor, the document length is the number of indexed tokens,
  statistics over every visible dataset, withdrawn ones included), so both
  databases rank alike up to their tokenizers.

The index row is written in the same transaction as the dataset, so search never
sees a dataset without its index entry or the other way round.

Filters, keyword intersection and keyword-Jaccard ranking run on the
:class:`~sealroom.storage.discovery_index.DiscoveryIndex` (numpy arrays checked
against the database's generation in the same read transaction). Results are
exact; nothing is approximated.

Ranking is deterministic: ties are broken by insertion order (``seq``). The
cursor is opaque to clients but bound to the query it came from; it is a keyset
(the last hit's sort key), never an offset, so a withdrawal or publication
between pages neither repeats nor skips a dataset whose sort key did not change.
Jaccard values are exact ratios of small integers (division is correctly
rounded), so equal similarities compare equal. Text scores depend on corpus
statistics, so a publication between pages can reorder text matches slightly.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy import Connection, select

from sealroom.errors import InvalidInput, NotFound
from sealroom.storage.discovery_index import FIELD_WEIGHTS, DiscoveryIndex, IndexView, parse_ids
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

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

# Text ranking as "lower is better" on both engines, as FTS5's bm25() returns it (the
# negated BM25 score). ``score`` in a hit is the negation (higher is better).
_BM25 = f"bm25(dataset_fts, {FIELD_WEIGHTS['A']}.0, {FIELD_WEIGHTS['B']}.0, {FIELD_WEIGHTS['C']}.0)"
_BM25_K1 = 1.2
_BM25_B = 0.75
_PG_LEXEMES = sa.text("SELECT tsvector_to_array(to_tsvector('english', :q))")


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


def _encode_cursor(fingerprint: str, after: Sequence[float | int]) -> str:
    raw = json.dumps({"f": fingerprint, "a": list(after)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, fingerprint: str, floats: int) -> tuple[list[float], int]:
    """``(float sort keys, seq)`` of the last hit of the previous page."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (ValueError, TypeError):
        raise InvalidInput("cursor is not one this server issued") from None
    if not isinstance(data, dict) or data.get("f") != fingerprint:
        raise InvalidInput("cursor belongs to another query; start again without it")
    after = data.get("a")
    if not isinstance(after, list) or len(after) != floats + 1:
        raise InvalidInput("cursor is not one this server issued")
    keys: list[float] = []
    for value in after[:floats]:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput("cursor is not one this server issued")
        if not math.isfinite(value):
            raise InvalidInput("cursor is not one this server issued")
        keys.append(float(value))
    seq = after[floats]
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2**62:
        raise InvalidInput("cursor is not one this server issued")
    return keys, seq


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


def _filter_mask(conn: Connection, view: IndexView, query: SearchQuery) -> Mask:
    """Active datasets passing every filter of ``query`` (not text, not similarity)."""
    mask = view.active.copy()
    if query.min_rows is not None:
        mask &= view.row_count >= query.min_rows
    if query.max_rows is not None:
        mask &= view.row_count <= query.max_rows
    if query.time_from is not None:
        mask &= view.has_time & (view.time_end >= query.time_from)
    if query.time_to is not None:
        mask &= view.has_time & (view.time_start <= query.time_to)
    wanted = list(dict.fromkeys(normalize_term(k) for k in query.keywords))
    if wanted:
        # Intersect sorted posting lists, rarest first: the running result only shrinks.
        lists = sorted((view.postings(t) for t in wanted), key=len)
        common = lists[0]
        for other in lists[1:]:
            if not common.size:
                break
            common = np.intersect1d(common, other, assume_unique=True)
        keep = np.zeros(view.n, dtype=np.bool_)
        keep[common] = True
        mask &= keep
    if query.owner is not None:
        owned = np.fromiter(
            conn.execute(select(datasets.c.seq).where(datasets.c.owner == query.owner)).scalars(),
            dtype=np.int64,
        )
        keep = np.zeros(view.n, dtype=np.bool_)
        keep[view.positions_of(np.sort(owned))] = True
        mask &= keep
    return mask


def _smallest(candidates: I64, keys: Sequence[npt.NDArray[np.generic]], k: int) -> I64:
    """The ``k`` candidates with the lexicographically smallest ``keys`` (one array per key,
    aligned with ``candidates``), in order."""
    if candidates.size > 4 * k:
        first = keys[0]
        bound = np.partition(first, k - 1)[k - 1]
        near = first <= bound
        candidates = candidates[near]
        keys = [key[near] for key in keys]
    order = np.lexsort(tuple(reversed(keys)))
    return candidates[order[:k]]


def _match_seqs(conn: Connection, tokens: list[str]) -> I64:
    """Every dataset matching the text, unranked (FTS5 counts matches cheaply)."""
    sql = "SELECT group_concat(rowid) FROM dataset_fts WHERE dataset_fts MATCH :q"
    joined = conn.execute(sa.text(sql), {"q": _fts5_query(tokens)}).scalar_one()
    return np.sort(parse_ids(joined))


def _fts5_query(tokens: list[str]) -> str:
    return " AND ".join(f'"{t}"' for t in tokens)


def _ranked(
    conn: Connection, tokens: list[str], after: tuple[float, int] | None, limit: int | None
) -> tuple[I64, F64]:
    """SQLite: ``(seqs, rank)`` of the best matches after ``after``, best (lowest rank) first."""
    params: dict[str, object] = {"q": _fts5_query(tokens)}
    # Only module constants are interpolated; the text and the cursor are bound parameters.
    sql = f"SELECT rowid, {_BM25} AS r FROM dataset_fts WHERE dataset_fts MATCH :q"  # noqa: S608
    if after is not None:
        params.update(r=after[0], seq=after[1])
        sql += f" AND ({_BM25} > :r OR ({_BM25} = :r AND rowid > :seq))"
    sql += " ORDER BY r, rowid"
    if limit is not None:
        sql += " LIMIT :limit"
        params["limit"] = limit
    rows = conn.execute(sa.text(sql), params).all()
    seqs = np.array([r[0] for r in rows], dtype=np.int64)
    ranks = np.array([r[1] for r in rows], dtype=np.float64)
    return seqs, ranks


def _bm25(conn: Connection, view: IndexView, tokens: list[str]) -> tuple[I64, F64]:
    """PostgreSQL: ``(positions, rank)`` of every match, ascending by position.

    The same AND-of-lexemes match as ``@@ plainto_tsquery('english', q)`` and the
    score FTS5's ``bm25()`` gives: sum over query lexemes t of
    ``idf(t) * f * (k1 + 1) / (f + k1 * (1 - b + b * len / mean len))``, with ``f`` the
    field-weighted occurrences of t and ``idf = ln((N - n_t + 0.5) / (n_t + 0.5))``
    floored at 1e-6. Lexemes are summed in sorted order so the floats are reproducible.
    """
    lexemes = sorted(
        {str(x) for x in conn.execute(_PG_LEXEMES, {"q": " ".join(tokens)}).scalar_one() or ()}
    )
    empty = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    if not lexemes or not view.n:
        return empty
    lists = {lexeme: view.text_postings(lexeme) for lexeme in lexemes}
    # Intersect the sorted position lists, rarest first: the running result only shrinks.
    rarest = sorted((pos for pos, _ in lists.values()), key=len)
    common = rarest[0].astype(np.int64)
    for pos in rarest[1:]:
        if not common.size:
            break
        common = common[np.isin(common, pos, assume_unique=True)]
    if not common.size:
        return empty
    norm = _BM25_K1 * (1.0 - _BM25_B + _BM25_B * view.doc_length[common] / view.mean_doc_length)
    score = np.zeros(common.size, dtype=np.float64)
    for lexeme in lexemes:
        pos, freqs = lists[lexeme]
        f = freqs[np.searchsorted(pos, common)].astype(np.float64)
        idf = math.log((view.n - pos.size + 0.5) / (pos.size + 0.5))
        score += (idf if idf > 0.0 else 1e-6) * (f * (_BM25_K1 + 1.0)) / (f + norm)
    return common, -score


def _all_ranked(conn: Connection, view: IndexView, tokens: list[str]) -> tuple[I64, F64]:
    """``(positions, rank)`` of every text match, on either database."""
    if view.has_text:
        return _bm25(conn, view, tokens)
    seqs, ranks = _ranked(conn, tokens, None, None)
    return view.positions_of(seqs), ranks


@dataclass(frozen=True, slots=True)
class _Ranked:
    positions: I64
    rank: F64 | None  # text rank per position (lower is better), if ranked by text
    jaccard: F64 | None  # aligned with ``positions``


def search(conn: Connection, query: SearchQuery, index: DiscoveryIndex) -> SearchPage:
    """Run ``query`` over active datasets; raise :class:`NotFound` for an unknown ``similar_to``."""
    _check(query)
    tokens = _tokens(query.q) if query.q is not None else None
    view = index.view(conn)
    mask = _filter_mask(conn, view, query)
    fingerprint = query.fingerprint()
    floats = (query.similar_to is not None) + (tokens is not None)
    after: tuple[list[float], int] | None = None
    if query.cursor:
        after = _decode_cursor(query.cursor, fingerprint, floats)
    need = query.limit + 1
    if query.similar_to is not None:
        jaccard = _jaccard(conn, view, query.similar_to)
        mask &= jaccard > 0
        if tokens is not None:
            page, total = _similar_and_text(conn, view, mask, jaccard, tokens, after, need)
        else:
            total = int(mask.sum())
            if after is not None:
                (j,), seq = after
                mask &= (jaccard < j) | ((jaccard == j) & (view.seqs > seq))
            cand = np.flatnonzero(mask)
            top = _smallest(cand, [-jaccard[cand], view.seqs[cand]], need)
            page = _Ranked(top, None, jaccard[top])
    elif tokens is not None:
        page, total = _text(conn, view, mask, tokens, after, need)
    else:
        total = int(mask.sum())
        if after is not None:
            mask &= view.seqs < after[1]
        page = _Ranked(np.flatnonzero(mask)[::-1][:need], None, None)
    return _page(conn, view, query, fingerprint, page, total)


def _jaccard(conn: Connection, view: IndexView, similar_to: str) -> F64:
    """Keyword Jaccard of every visible dataset against ``similar_to`` (0 for itself)."""
    target = conn.execute(
        select(datasets.c.seq).where(datasets.c.dataset == similar_to)
    ).scalar_one_or_none()
    if target is None:
        raise NotFound(f"similar_to: no dataset {similar_to}")
    terms = list(
        conn.execute(
            select(dataset_keywords.c.term).where(dataset_keywords.c.seq == target)
        ).scalars()
    )
    parts = [view.postings(str(t)) for t in terms]
    shared = np.bincount(
        np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32), minlength=view.n
    )
    union = len(terms) + view.keyword_count - shared
    jaccard = np.zeros(view.n, dtype=np.float64)
    np.divide(shared, union, out=jaccard, where=shared > 0)
    jaccard[view.positions_of(np.array([int(target)], dtype=np.int64))] = 0.0
    return jaccard


def _text(
    conn: Connection,
    view: IndexView,
    mask: Mask,
    tokens: list[str],
    after: tuple[list[float], int] | None,
    need: int,
) -> tuple[_Ranked, int]:
    if view.has_text:
        return _text_in_memory(conn, view, mask, tokens, after, need)
    matches = view.positions_of(_match_seqs(conn, tokens))
    passing = int(mask[matches].sum())
    if passing == 0:
        return _Ranked(np.zeros(0, dtype=np.int64), None, None), 0
    cursor = None if after is None else (after[0][0], after[1])
    # Ask for enough ranked rows that ``need`` of them pass the filters at the measured rate.
    want = min(matches.size, math.ceil(need * matches.size / passing * 1.25) + 8)
    while True:
        seqs, ranks = _ranked(conn, tokens, cursor, want)
        pos = view.positions_of(seqs) if seqs.size else np.zeros(0, dtype=np.int64)
        ok = mask[pos]
        if int(ok.sum()) >= need or seqs.size < want or want >= matches.size:
            hits = pos[ok][:need]
            return _Ranked(hits, ranks[ok][:need], None), passing
        want = min(matches.size, want * 4)


def _text_in_memory(
    conn: Connection,
    view: IndexView,
    mask: Mask,
    tokens: list[str],
    after: tuple[list[float], int] | None,
    need: int,
) -> tuple[_Ranked, int]:
    matches, ranks = _bm25(conn, view, tokens)
    ok = mask[matches]
    cand, rank = matches[ok], ranks[ok]
    total = int(cand.size)
    if after is not None:
        (r,), seq = after
        seqs = view.seqs[cand]
        later = (rank > r) | ((rank == r) & (seqs > seq))
        cand, rank = cand[later], rank[later]
    order = _smallest(np.arange(cand.size, dtype=np.int64), [rank, view.seqs[cand]], need)
    return _Ranked(cand[order], rank[order], None), total


def _similar_and_text(
    conn: Connection,
    view: IndexView,
    mask: Mask,
    jaccard: F64,
    tokens: list[str],
    after: tuple[list[float], int] | None,
    need: int,
) -> tuple[_Ranked, int]:
    pos, ranks = _all_ranked(conn, view, tokens)
    rank_of = np.full(view.n, np.inf)
    rank_of[pos] = ranks
    ok = pos[mask[pos]]
    total = int(ok.size)
    if after is not None:
        (j, r), seq = after
        jc, rc, sc = jaccard[ok], rank_of[ok], view.seqs[ok]
        ok = ok[(jc < j) | ((jc == j) & ((rc > r) | ((rc == r) & (sc > seq))))]
    top = _smallest(ok, [-jaccard[ok], rank_of[ok], view.seqs[ok]], need)
    return _Ranked(top, rank_of[top], jaccard[top]), total


def _page(
    conn: Connection,
    view: IndexView,
    query: SearchQuery,
    fingerprint: str,
    ranked: _Ranked,
    total: int,
) -> SearchPage:
    more = ranked.positions.size > query.limit
    positions = ranked.positions[: query.limit]
    seqs = [int(s) for s in view.seqs[positions].tolist()]
    digest_of = {
        int(r.seq): str(r.dataset)
        for r in conn.execute(
            select(datasets.c.seq, datasets.c.dataset).where(datasets.c.seq.in_(seqs))
        )
    }
    hits = tuple(
        SearchHit(
            seq=seq,
            dataset=digest_of[seq],
            score=0.0 if ranked.rank is None else -float(ranked.rank[i]),
            jaccard=None if ranked.jaccard is None else float(ranked.jaccard[i]),
        )
        for i, seq in enumerate(seqs)
    )
    next_cursor: str | None = None
    if more and hits:
        last = len(hits) - 1
        keys: list[float | int] = []
        if ranked.jaccard is not None:
            keys.append(float(ranked.jaccard[last]))
        if ranked.rank is not None:
            keys.append(float(ranked.rank[last]))
        next_cursor = _encode_cursor(fingerprint, [*keys, hits[last].seq])
    return SearchPage(hits=hits, next_cursor=next_cursor, total=total)
