"""The enclave's release history: difference checks across every exact release.

Pinned shapes (:mod:`sealroom.policy.rules`) stop a requester from choosing
the parameters or partner data of an exact release. What they cannot stop is
the data itself changing between two releases of the same shape: an owner
who republishes a dataset with one more person, or two pinned partner
datasets that differ by one identifier, turn two allowed releases into one
person's value by subtraction. Google Ads Data Hub's difference checks are
the anchor: every released number's *footprint* (the set of the protected
party's entities behind it) is compared with the footprint of every number
released before on the same entities, and a release whose footprint differs
from an earlier one by fewer than ``k`` entities (but by at least one) is
refused (``rule difference-check``). Identical footprints pass: they release
nothing new about anyone.

This is defence in depth, not a guarantee: differences of at least ``k``
can still be combined linearly (A - B - C + D), which is why parametrised
computations are differentially private by default.

Scope. Footprints are compared within a *scope*: the owner and its entity
column (``owner:column``), so the check holds across every dataset the
owner publishes with that entity column (a republished version included);
without an entity column rows are the entities, compared by content (a hash
of the row's values and which copy of them it is, since row numbers shift)
across every dataset the owner publishes without one (``owner#rows``). Entities are stored as 64-bit keyed BLAKE2b hashes under a key the
enclave keeps with its state, never as values; a footprint is a sorted array
of them. Comparing two footprints whose sizes differ by ``k`` or more is
skipped (their difference cannot be below ``k``), so a check loads only the
few earlier footprints of nearly the same size.

Replays. The history also keeps what each request released: the signed receipt
and the outputs sealed to its recipients (ciphertexts and a signed statement,
nothing the enclave must keep secret). The coordinator holds every statement and
sealed input of a job, so it can hand the enclave the same job again; the budget
ledger reuses the first charge (a crashed job must be retryable), and a DP
computation draws fresh noise on each run, so without this every replay would be
another independent draw for one charge, and their average the exact answer. A
job whose request already released gets the stored bytes back instead
(:meth:`SqlReleaseHistory.released`); two runs racing on one request both return
whichever output was stored first (:meth:`SqlReleaseHistory.keep_release`).

Where it lives: next to the budget ledger in the enclave's state (the same
caveats: see :mod:`sealroom.enclave.ledger`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from sealroom.crypto.files import create_private
from sealroom.crypto.keys import PartyId
from sealroom.errors import BackendUnavailable, InvalidInput, PolicyDenied

__all__ = [
    "FootprintScope",
    "ReleaseHistory",
    "SqlReleaseHistory",
    "StoredRelease",
    "entity_hashes",
]

_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class FootprintScope:
    """The footprints of one exact release on one input, and how to compare them.

    ``scope`` names the entities (``owner:column``, or ``dataset:<digest>`` for rows);
    ``k`` is the input's threshold; ``cells`` holds one set of entity values per
    released number (numbers computed on the same rows may share one cell).
    """

    scope: str
    k: int
    cells: tuple[frozenset[Hashable], ...]


@dataclass(frozen=True, slots=True)
class StoredRelease:
    """What one request released: its receipt envelope and each recipient's sealed output."""

    receipt: bytes
    outputs: Mapping[PartyId, bytes]


class ReleaseHistory(Protocol):
    """Checks an exact release against every earlier one, and records it if it passes;
    keeps what each request released, so a replayed job releases the same bytes."""

    def check_and_record(
        self, scopes: Sequence[FootprintScope], *, request: str, now: int
    ) -> None: ...

    def released(self, request: str) -> StoredRelease | None: ...

    def keep_release(self, request: str, release: StoredRelease, *, now: int) -> StoredRelease: ...


# Types whose equal values always have the same repr (so a value seen before hashes the same):
# exact types only, never subclasses (an IntEnum equals its int but has another repr and tag).
# Floats are not here: 0.0 == -0.0 with two reprs, and NaN never equals itself.
_REPR_STABLE: frozenset[type] = frozenset({str, int, bool, bytes, type(None)})


def entity_hashes(key: bytes, values: Iterable[Hashable]) -> np.ndarray:
    """Sorted, unique 64-bit keyed hashes of entity values (type-tagged, so 17 != "17").

    Each hash is BLAKE2b-64 keyed by ``key`` over ``len(tag) || tag || repr(value)``. The
    keyed state with each type's tag is set up once and copied per value, a repeated value
    of a repr-stable type is not hashed again (an entity column repeats its entities across
    rows), and the digests are sorted and deduplicated in numpy: the same outputs as hashing
    every value from scratch, at a fraction of the cost on large inputs.
    """
    # type -> (keyed state over the tag, the values of that type already hashed, or None
    # for a type whose equal values may have different reprs)
    kinds: dict[type, tuple[hashlib.blake2b, set[Hashable] | None]] = {}
    digests: list[bytes] = []
    for v in values:
        kind = type(v)
        known = kinds.get(kind)
        if known is None:
            tag = kind.__name__.encode()
            base = hashlib.blake2b(len(tag).to_bytes(2, "big") + tag, digest_size=8, key=key)
            known = kinds[kind] = (base, set() if kind in _REPR_STABLE else None)
        base, seen = known
        if seen is not None:
            if v in seen:
                continue
            seen.add(v)
        h = base.copy()
        h.update(repr(v).encode("utf-8", "surrogatepass"))
        digests.append(h.digest())
    big_endian = np.frombuffer(b"".join(digests), dtype=">u8")
    return np.unique(big_endian.astype(np.uint64))


_metadata = sa.MetaData()
_secrets = sa.Table(
    "history_secret",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.LargeBinary(_KEY_BYTES), nullable=False),
)
_footprints = sa.Table(
    "release_footprints",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("scope", sa.String(300), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("hashes", sa.LargeBinary, nullable=False),
    sa.Column("request", sa.String(80), nullable=False),
    sa.Column("recorded_at", sa.BigInteger, nullable=False),
    sa.Index("ix_release_footprints_scope_size", "scope", "size"),
)
_released = sa.Table(
    "released_outputs",
    _metadata,
    sa.Column("request", sa.String(80), primary_key=True),
    sa.Column("receipt", sa.LargeBinary, nullable=False),
    # Canonical JSON {recipient: base64 of the sealed output}.
    sa.Column("outputs", sa.LargeBinary, nullable=False),
    sa.Column("recorded_at", sa.BigInteger, nullable=False),
)


class SqlReleaseHistory:
    """A :class:`ReleaseHistory` on SQLAlchemy (an SQLite file in the enclave's state)."""

    def __init__(self, *, engine: Engine) -> None:
        self._engine = engine
        for attempt in range(5):
            try:
                _metadata.create_all(engine)
                break
            except OperationalError:  # another process created the tables at the same moment
                if attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))
        self._key = self._load_key()

    @classmethod
    def in_directory(cls, state_dir: Path) -> SqlReleaseHistory:
        """The history file ``history.db`` in the enclave's state directory (owner-only)."""
        path = (state_dir / "history.db").resolve()
        create_private(path)
        return cls(engine=sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 60}))

    def close(self) -> None:
        self._engine.dispose()

    def _load_key(self) -> bytes:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(_secrets.c.key).where(_secrets.c.id == 1)).first()
        if row is not None:
            return bytes(row.key)
        try:
            with self._engine.begin() as conn:
                conn.execute(sa.insert(_secrets).values(id=1, key=os.urandom(_KEY_BYTES)))
        except IntegrityError:
            pass  # created concurrently: read the winner's key
        with self._engine.connect() as conn:
            return bytes(
                conn.execute(sa.select(_secrets.c.key).where(_secrets.c.id == 1)).one().key
            )

    def released(self, request: str) -> StoredRelease | None:
        """What ``request`` released before, or None."""
        try:
            with self._engine.connect() as conn:
                row = conn.execute(
                    sa.select(_released.c.receipt, _released.c.outputs).where(
                        _released.c.request == request
                    )
                ).first()
        except OperationalError as exc:
            raise BackendUnavailable(
                f"the release history is unavailable ({type(exc.orig).__name__})"
            ) from None
        if row is None:
            return None
        outputs = json.loads(row.outputs)
        return StoredRelease(
            receipt=bytes(row.receipt),
            outputs={PartyId(p): base64.b64decode(sealed) for p, sealed in outputs.items()},
        )

    def keep_release(self, request: str, release: StoredRelease, *, now: int) -> StoredRelease:
        """Store ``release`` as what ``request`` released, unless a release is stored already;
        returns the stored one (the first wins)."""
        outputs = json.dumps(
            {p: base64.b64encode(o).decode("ascii") for p, o in sorted(release.outputs.items())},
            separators=(",", ":"),
        ).encode("ascii")
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    sa.insert(_released).values(
                        request=request, receipt=release.receipt, outputs=outputs, recorded_at=now
                    )
                )
        except IntegrityError:
            stored = self.released(request)
            if stored is None:  # the row that was in the way cannot vanish; say so if it did
                raise
            return stored
        except OperationalError as exc:
            raise BackendUnavailable(
                f"the release history is unavailable ({type(exc.orig).__name__})"
            ) from None
        return release

    def check_and_record(self, scopes: Sequence[FootprintScope], *, request: str, now: int) -> None:
        """Refuse (PolicyDenied, nothing recorded) or record every cell of every scope."""
        fresh = [(s.scope, s.k, entity_hashes(self._key, cell)) for s in scopes for cell in s.cells]
        for i, (scope, k, cell) in enumerate(fresh):
            if k < 1:
                raise InvalidInput("a difference check needs k of at least 1")
            # Cells of the same release are checked against each other too.
            for other_scope, _, other in fresh[:i]:
                if other_scope == scope:
                    _compare(cell, other, scope=scope, k=k, earlier="this release")
        try:
            with self._engine.begin() as conn:
                for scope, k, cell in fresh:
                    rows = conn.execute(
                        sa.select(_footprints.c.hashes, _footprints.c.request).where(
                            _footprints.c.scope == scope,
                            _footprints.c.size > len(cell) - k,
                            _footprints.c.size < len(cell) + k,
                        )
                    ).all()
                    for row in rows:
                        earlier = np.frombuffer(row.hashes, dtype=np.uint64)
                        _compare(cell, earlier, scope=scope, k=k, earlier="an earlier release")
                for scope, _, cell in fresh:
                    conn.execute(
                        sa.insert(_footprints).values(
                            scope=scope,
                            size=len(cell),
                            hashes=cell.tobytes(),
                            request=request,
                            recorded_at=now,
                        )
                    )
        except OperationalError as exc:
            raise BackendUnavailable(
                f"the release history is unavailable ({type(exc.orig).__name__})"
            ) from None


def _compare(a: np.ndarray, b: np.ndarray, *, scope: str, k: int, earlier: str) -> None:
    differ = len(np.setxor1d(a, b, assume_unique=True))
    if 0 < differ < k:
        # Neither size nor the difference is named: the requester must not learn them.
        raise PolicyDenied(
            f"rule difference-check: a released number stands on nearly the same entities of "
            f"{scope} as a number of {earlier} (fewer than k = {k} differ); subtracting the "
            "two would isolate them"
        )
