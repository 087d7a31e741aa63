"""In-process discovery index: dataset filter columns and keyword postings as numpy arrays.

Why: ranking by keyword Jaccard has to count, for every dataset, how many of the
target's terms it shares. In SQL that is a GROUP BY over every posting of every
shared term (a common term alone has most datasets), far too slow at 100,000
attestations. Held in memory as one int32 posting array per term, the same count
is an ``np.bincount`` over a few hundred thousand integers, and the filters
(status, rows, time range, keywords) become vectorised masks. Results stay exact.

Correctness across processes: the index is a cache of the database, never a
source of truth. Every query reads a generation ``(max(seq), number withdrawn)``
in its own read transaction and uses the index only as of that generation:

- a dataset row is immutable except ``status``, which only goes from
  ``active`` to ``withdrawn``; rows are never deleted;
- write transactions are serialised (see :mod:`sealroom.storage.engine`), so
  ``seq`` values become visible in increasing order and both counters only grow.

So a newer generation is loaded incrementally (rows with a larger ``seq``, and the
withdrawn set when its size changed) and an older one (a transaction that began
before another thread refreshed) is derived by hiding the newer rows and, when
needed, re-reading the withdrawn set in that older snapshot.

The index belongs to one service object (no module-level state) and is safe to
share between threads: snapshots are immutable; a lock serialises refreshes.

Text postings (PostgreSQL only): the lexemes of every ``dataset_fts`` tsvector,
as the database's own ``english`` parser produced them, with per posting the
number of occurrences and the field-weighted frequency (title 3, keywords and
topics 2, description 1). Matching and BM25 ranking then need no heap visit per
match (see :mod:`sealroom.storage.search`). They follow the same generations:
a full-text row is written in the dataset's transaction and never changes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy import Connection

from sealroom.errors import BackendUnavailable

__all__ = ["DELTA_LIMIT", "FIELD_WEIGHTS", "DiscoveryIndex", "IndexView", "parse_ids"]

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

# Merge the recent postings into the per-term arrays once they are this large.
DELTA_LIMIT = 1 << 16

_GENERATION = sa.text(
    "SELECT (SELECT max(seq) FROM datasets), "
    "(SELECT count(*) FROM datasets WHERE status = 'withdrawn')"
)
_WITHDRAWN = sa.text("SELECT seq FROM datasets WHERE status = 'withdrawn'")
_ROWS = sa.text(
    "SELECT seq, row_count, time_start, time_end, keyword_count, status "
    "FROM datasets WHERE seq > :after ORDER BY seq"
)
_NEW_POSTINGS = sa.text("SELECT term, seq FROM dataset_keywords WHERE seq > :after")
_ALL_POSTINGS = {
    "sqlite": sa.text("SELECT term, group_concat(seq) FROM dataset_keywords GROUP BY term"),
    "postgresql": sa.text(
        "SELECT term, string_agg(CAST(seq AS TEXT), ',') FROM dataset_keywords GROUP BY term"
    ),
}


# Field weights of the text ranking, by tsvector weight label (title A, keywords and topics B,
# description C); the same weights SQLite's bm25() gets. D (unlabelled) counts as 1.
FIELD_WEIGHTS: Mapping[str, int] = MappingProxyType({"A": 3, "B": 2, "C": 1})

# Per (lexeme, dataset), in binary: the dataset's seq (int8) and occurrences * 65536 + weighted
# occurrences (int4; a tsvector keeps at most 256 positions per lexeme, so both fit).
# Only module constants are interpolated.
_TEXT_POSTINGS = sa.text(
    "SELECT u.lexeme, string_agg(int8send(f.seq) || int4send(65536 * cardinality(u.weights) "  # noqa: S608
    f"+ cardinality(u.weights) + {FIELD_WEIGHTS['A'] - 1} * cardinality(array_positions(u.weights, 'A')) "
    f"+ {FIELD_WEIGHTS['B'] - 1} * cardinality(array_positions(u.weights, 'B'))), ''::bytea) "
    "FROM dataset_fts f, unnest(f.document) u WHERE f.seq > :after GROUP BY u.lexeme"
)
_POSTING = np.dtype([("seq", ">i8"), ("value", ">i4")])


def parse_ids(joined: str | None) -> I64:
    """A comma-separated list of integers (an SQL string aggregate) as an array."""
    if not joined:
        return np.zeros(0, dtype=np.int64)
    return np.array(joined.split(","), dtype=np.int64)


@dataclass(frozen=True, slots=True)
class _TextPostings:
    """Lexeme postings with a weighted term frequency per posting (CSR plus a recent delta).

    Positions are ascending per lexeme, in the merged part and in the delta alike
    (each refresh adds only positions beyond the previous ones, sorted)."""

    n_terms: int  # lexeme ids below this are valid for this snapshot
    offsets: I64
    positions: I32
    freqs: I32  # field-weighted occurrences, aligned with ``positions``
    delta_terms: I32
    delta_positions: I32
    delta_freqs: I32

    def get(self, tid: int, n: int) -> tuple[I32, I32]:
        """``(positions, weighted frequencies)`` of lexeme ``tid`` among the first ``n``."""
        if tid >= self.n_terms:
            return _EMPTY, _EMPTY
        if tid < len(self.offsets) - 1:
            lo, hi = int(self.offsets[tid]), int(self.offsets[tid + 1])
            pos, freq = self.positions[lo:hi], self.freqs[lo:hi]
        else:
            pos, freq = _EMPTY, _EMPTY
        if self.delta_terms.size:
            mine = self.delta_terms == tid
            if mine.any():
                pos = np.concatenate([pos, self.delta_positions[mine]])
                freq = np.concatenate([freq, self.delta_freqs[mine]])
        if pos.size and int(pos[-1]) >= n:
            keep = int(np.searchsorted(pos, n))
            pos, freq = pos[:keep], freq[:keep]
        return pos, freq


_EMPTY: I32 = np.zeros(0, dtype=np.int32)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """The index as of one generation; never mutated after construction."""

    max_seq: int
    withdrawn: int
    seqs: I64  # ascending; a dataset's position is its index here
    active: Mask
    row_count: I64
    time_start: I64
    time_end: I64
    has_time: Mask
    keyword_count: I64
    n_terms: int  # term ids below this are valid for this snapshot
    offsets: I64  # postings of term t: positions[offsets[t]:offsets[t + 1]]
    positions: I32
    delta_terms: I32  # postings added since the last merge, ascending per term
    delta_positions: I32
    text: _TextPostings | None  # PostgreSQL only
    doc_length: I64  # indexed text tokens per dataset (PostgreSQL only, else zeros)
    total_length: I64  # cumulative doc_length: total_length[n] = sum(doc_length[:n])


@dataclass(frozen=True, slots=True)
class IndexView:
    """The index as one read transaction sees it: the first ``n`` positions, exact status."""

    snapshot: _Snapshot
    terms: Mapping[str, int]
    lexemes: Mapping[str, int]
    n: int
    active: Mask

    @property
    def seqs(self) -> I64:
        return self.snapshot.seqs[: self.n]

    @property
    def row_count(self) -> I64:
        return self.snapshot.row_count[: self.n]

    @property
    def time_start(self) -> I64:
        return self.snapshot.time_start[: self.n]

    @property
    def time_end(self) -> I64:
        return self.snapshot.time_end[: self.n]

    @property
    def has_time(self) -> Mask:
        return self.snapshot.has_time[: self.n]

    @property
    def keyword_count(self) -> I64:
        return self.snapshot.keyword_count[: self.n]

    def positions_of(self, seqs: I64) -> I64:
        """Positions of ``seqs``; every one must be a visible dataset."""
        pos = np.searchsorted(self.seqs, seqs).astype(np.int64)
        if pos.size and (int(pos.max()) >= self.n or not np.array_equal(self.seqs[pos], seqs)):
            raise BackendUnavailable("the discovery index does not match the database")
        return pos

    def postings(self, term: str) -> I32:
        """Sorted positions of the visible datasets that have ``term`` (normalised)."""
        s = self.snapshot
        tid = self.terms.get(term)
        if tid is None or tid >= s.n_terms:
            return np.zeros(0, dtype=np.int32)
        if tid < len(s.offsets) - 1:
            base = s.positions[s.offsets[tid] : s.offsets[tid + 1]]
        else:  # a term first seen after the last merge
            base = np.zeros(0, dtype=np.int32)
        if s.delta_terms.size:
            extra = s.delta_positions[s.delta_terms == tid]
            if extra.size:
                base = np.concatenate([base, extra])
        if self.n < s.seqs.size and base.size:
            base = base[base < self.n]
        return base

    @property
    def has_text(self) -> bool:
        return self.snapshot.text is not None

    @property
    def doc_length(self) -> I64:
        return self.snapshot.doc_length[: self.n]

    @property
    def mean_doc_length(self) -> float:
        return float(self.snapshot.total_length[self.n]) / self.n if self.n else 0.0

    def text_postings(self, lexeme: str) -> tuple[I32, I32]:
        """``(positions, weighted frequencies)`` of the visible datasets with ``lexeme``."""
        text = self.snapshot.text
        if text is None:
            raise BackendUnavailable("this database keeps no text postings in the index")
        tid = self.lexemes.get(lexeme)
        if tid is None:
            return _EMPTY, _EMPTY
        return text.get(tid, self.n)


class DiscoveryIndex:
    """Lazily loaded, incrementally refreshed discovery index (one per service object)."""

    def __init__(self, *, delta_limit: int = DELTA_LIMIT) -> None:
        self._delta_limit = delta_limit
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._terms: dict[str, int] = {}  # only grows; ids are valid per snapshot.n_terms
        self._lexemes: dict[str, int] = {}  # likewise, per snapshot.text.n_terms

    def view(self, conn: Connection) -> IndexView:
        """The index as of ``conn``'s transaction (refreshing the shared one if it is older)."""
        max_seq_raw, withdrawn_raw = conn.execute(_GENERATION).one()
        max_seq, withdrawn = int(max_seq_raw or 0), int(withdrawn_raw or 0)
        snap = self._snapshot
        if snap is None or max_seq > snap.max_seq or withdrawn > snap.withdrawn:
            with self._lock:
                snap = self._snapshot
                if snap is None or max_seq > snap.max_seq or withdrawn > snap.withdrawn:
                    snap = self._refresh(conn, snap, max_seq, withdrawn)
                    self._snapshot = snap
        n = int(np.searchsorted(snap.seqs, max_seq, side="right"))
        if withdrawn == snap.withdrawn:
            # Withdrawals only accumulate: equal counts mean equal sets.
            active = snap.active[:n]
        else:
            # This transaction predates a withdrawal the shared index already has.
            active = np.ones(n, dtype=np.bool_)
            gone = self._withdrawn(conn)
            gone = gone[gone <= max_seq]
            active[np.searchsorted(snap.seqs[:n], gone)] = False
        return IndexView(
            snapshot=snap, terms=self._terms, lexemes=self._lexemes, n=n, active=active
        )

    @staticmethod
    def _withdrawn(conn: Connection) -> I64:
        return np.sort(np.fromiter((r[0] for r in conn.execute(_WITHDRAWN)), dtype=np.int64))

    def _refresh(
        self, conn: Connection, old: _Snapshot | None, max_seq: int, withdrawn: int
    ) -> _Snapshot:
        after = 0 if old is None else old.max_seq
        rows = conn.execute(_ROWS, {"after": after}).all()
        new_seqs = np.array([r[0] for r in rows], dtype=np.int64)
        new_rows = np.array([r[1] for r in rows], dtype=np.int64)
        new_start = np.array([r[2] if r[2] is not None else 0 for r in rows], dtype=np.int64)
        new_end = np.array([r[3] if r[3] is not None else 0 for r in rows], dtype=np.int64)
        new_has = np.array([r[2] is not None and r[3] is not None for r in rows], dtype=np.bool_)
        new_kw = np.array([r[4] for r in rows], dtype=np.int64)
        new_active = np.array([r[5] == "active" for r in rows], dtype=np.bool_)
        if old is None:
            seqs, active = new_seqs, new_active
            row_count, time_start, time_end = new_rows, new_start, new_end
            has_time, keyword_count = new_has, new_kw
        else:
            seqs = np.concatenate([old.seqs, new_seqs])
            active = np.concatenate([old.active, new_active])
            row_count = np.concatenate([old.row_count, new_rows])
            time_start = np.concatenate([old.time_start, new_start])
            time_end = np.concatenate([old.time_end, new_end])
            has_time = np.concatenate([old.has_time, new_has])
            keyword_count = np.concatenate([old.keyword_count, new_kw])
            if withdrawn != old.withdrawn:
                active = np.ones(seqs.size, dtype=np.bool_)
                active[np.searchsorted(seqs, self._withdrawn(conn))] = False
        if old is None:
            offsets, positions = self._load_all_postings(conn, seqs)
            delta_terms = delta_positions = np.zeros(0, dtype=np.int32)
        else:
            offsets, positions = old.offsets, old.positions
            added = conn.execute(_NEW_POSTINGS, {"after": after}).all()
            add_terms = np.array([self._term_id(r[0]) for r in added], dtype=np.int32)
            add_pos = np.searchsorted(seqs, np.array([r[1] for r in added], dtype=np.int64)).astype(
                np.int32
            )
            order = np.argsort(add_pos, kind="stable")  # keep each term's postings ascending
            add_terms, add_pos = add_terms[order], add_pos[order]
            delta_terms = np.concatenate([old.delta_terms, add_terms])
            delta_positions = np.concatenate([old.delta_positions, add_pos])
            if delta_terms.size > max(self._delta_limit, positions.size // 8):
                offsets, positions, _ = _merge(offsets, positions, delta_terms, delta_positions)
                delta_terms = delta_positions = np.zeros(0, dtype=np.int32)
        text, doc_length = None, np.zeros(seqs.size, dtype=np.int64)
        if old is not None and old.text is not None and not rows:  # only withdrawals changed
            text, doc_length = old.text, old.doc_length
        elif conn.dialect.name == "postgresql":
            old_text = None if old is None else old.text
            old_length = np.zeros(0, dtype=np.int64) if old is None else old.doc_length
            text, doc_length = self._load_text(conn, seqs, after, old_text, old_length)
        total_length = np.zeros(seqs.size + 1, dtype=np.int64)
        np.cumsum(doc_length, out=total_length[1:])
        return _Snapshot(
            max_seq=max(max_seq, int(seqs[-1]) if seqs.size else 0),
            withdrawn=withdrawn,
            seqs=seqs,
            active=active,
            row_count=row_count,
            time_start=time_start,
            time_end=time_end,
            has_time=has_time,
            keyword_count=keyword_count,
            n_terms=len(self._terms),
            offsets=offsets,
            positions=positions,
            delta_terms=delta_terms,
            delta_positions=delta_positions,
            text=text,
            doc_length=doc_length,
            total_length=total_length,
        )

    def _load_text(
        self, conn: Connection, seqs: I64, after: int, old: _TextPostings | None, old_length: I64
    ) -> tuple[_TextPostings, I64]:
        """Add the text postings of the datasets after ``after`` (all of them at first)."""
        lexemes, counts, parts = [], [], []
        for lexeme, packed in conn.execute(_TEXT_POSTINGS, {"after": after}):
            lexemes.append(self._lexeme_id(str(lexeme)))
            counts.append(len(packed) // _POSTING.itemsize)
            parts.append(bytes(packed))
        postings = np.frombuffer(b"".join(parts), dtype=_POSTING)
        add_seqs = postings["seq"].astype(np.int64)
        add_terms = np.repeat(np.array(lexemes, dtype=np.int32), np.array(counts, dtype=np.int64))
        add_pos = np.searchsorted(seqs, add_seqs).astype(np.int32)
        if add_pos.size and not np.array_equal(seqs[add_pos], add_seqs):
            raise BackendUnavailable("the full-text index does not match the datasets")
        value = postings["value"].astype(np.int32)
        add_freqs, occurrences = value & 0xFFFF, value >> 16
        start = old_length.size
        length = np.bincount(add_pos - start, weights=occurrences, minlength=seqs.size - start)
        doc_length = np.concatenate([old_length, length.astype(np.int64)])
        order = np.argsort(add_pos, kind="stable")  # ascending positions within each lexeme
        add_terms, add_pos, add_freqs = add_terms[order], add_pos[order], add_freqs[order]
        if old is None:
            offsets, positions, (freqs,) = _merge(
                np.zeros(1, dtype=np.int64),
                _EMPTY,
                add_terms,
                add_pos,
                values=[(_EMPTY, add_freqs)],
            )
            return _TextPostings(
                n_terms=len(self._lexemes),
                offsets=offsets,
                positions=positions,
                freqs=freqs,
                delta_terms=_EMPTY,
                delta_positions=_EMPTY,
                delta_freqs=_EMPTY,
            ), doc_length
        delta_terms = np.concatenate([old.delta_terms, add_terms])
        delta_positions = np.concatenate([old.delta_positions, add_pos])
        delta_freqs = np.concatenate([old.delta_freqs, add_freqs])
        offsets, positions, freqs = old.offsets, old.positions, old.freqs
        if delta_terms.size > max(self._delta_limit, positions.size // 8):
            offsets, positions, (freqs,) = _merge(
                offsets, positions, delta_terms, delta_positions, values=[(freqs, delta_freqs)]
            )
            delta_terms = delta_positions = delta_freqs = _EMPTY
        return _TextPostings(
            n_terms=len(self._lexemes),
            offsets=offsets,
            positions=positions,
            freqs=freqs,
            delta_terms=delta_terms,
            delta_positions=delta_positions,
            delta_freqs=delta_freqs,
        ), doc_length

    def _lexeme_id(self, lexeme: str) -> int:
        tid = self._lexemes.get(lexeme)
        if tid is None:
            tid = self._lexemes[lexeme] = len(self._lexemes)
        return tid

    def _term_id(self, term: str) -> int:
        tid = self._terms.get(term)
        if tid is None:
            tid = self._terms[term] = len(self._terms)
        return tid

    def _load_all_postings(self, conn: Connection, seqs: I64) -> tuple[I64, I32]:
        sql = _ALL_POSTINGS.get(conn.dialect.name)
        if sql is None:
            raise BackendUnavailable(f"no discovery index for {conn.dialect.name}")
        per_term: list[tuple[int, I32]] = []
        for term, joined in conn.execute(sql):
            pos = np.searchsorted(seqs, np.sort(parse_ids(joined))).astype(np.int32)
            per_term.append((self._term_id(str(term)), pos))
        return _csr(len(self._terms), per_term)


def _csr(n_terms: int, per_term: Iterable[tuple[int, I32]]) -> tuple[I64, I32]:
    lengths = np.zeros(n_terms, dtype=np.int64)
    chunks: list[I32 | None] = [None] * n_terms
    for tid, pos in per_term:
        chunks[tid] = pos
        lengths[tid] = pos.size
    offsets = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    parts = [c for c in chunks if c is not None and c.size]
    positions = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    return offsets, positions.astype(np.int32, copy=False)


def _merge(
    offsets: I64,
    positions: I32,
    delta_terms: I32,
    delta_positions: I32,
    values: Sequence[tuple[I32, I32]] = (),
) -> tuple[I64, I32, list[I32]]:
    """Fold the recent postings into the per-term arrays (positions stay sorted per term);
    ``values`` are ``(merged, delta)`` arrays aligned with the postings, reordered alike."""
    n_terms = max(len(offsets) - 1, int(delta_terms.max()) + 1 if delta_terms.size else 0)
    base_terms = np.repeat(np.arange(len(offsets) - 1, dtype=np.int32), np.diff(offsets))
    terms = np.concatenate([base_terms, delta_terms])
    pos = np.concatenate([positions, delta_positions])
    key = (terms.astype(np.int64) << 32) | pos.astype(np.int64)
    if key.size < 2 or bool(np.all(key[1:] > key[:-1])):
        order = np.arange(key.size)  # already grouped by term and ascending (a first load)
    else:
        order = np.lexsort((pos, terms))
    counts = np.bincount(terms, minlength=n_terms).astype(np.int64)
    new_offsets = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(counts, out=new_offsets[1:])
    merged = [np.concatenate([base, delta])[order] for base, delta in values]
    return new_offsets, pos[order], merged
