"""Two-party private set intersection (ECDH-PSI) and private keyword discovery.

Two parties, ``a`` (the initiator) and ``b`` (the responder), hold sets ``A``
and ``B`` of byte strings. They agree on :class:`PsiParams` and learn, by mode:

* ``cardinality``: both learn ``|A & B|`` and the Jaccard index
  ``|A & B| / (|A| + |B| - |A & B|)``; nobody learns which elements are shared;
* ``intersection``: ``a`` learns ``A & B`` itself; ``b`` learns nothing about it.

Both always learn both set sizes. With ``threshold = k > 0`` an intersection
smaller than ``k`` ends the run with :class:`BelowThreshold` on both sides and
no size in either output (see "who learns what" below for the one view that
does contain it).

Group and masking. ``H`` hashes into the prime-order subgroup of Curve25519
(:func:`~sealroom.protocols.group.hash_to_group`, Elligator 2) under the
domain ``"sealroom/psi/v1/" || session``, so masked values from one session are
useless in any other. Each party draws a fresh secret scalar (``sa`` for ``a``,
``sb`` for ``b``) and masks with X25519, which commutes: ``sb*(sa*H(x)) =
sa*(sb*H(x))``. Two elements match iff their doubly masked values are equal.

Message flow (every list of group elements travels as chunks of at most
:data:`CHUNK` 32-byte elements, one ``items`` blob per message; the number of
chunks and the count in each follow from the declared sizes)::

    a -> b  hello     {mode, threshold, max_set_size, size=|A|}
    b -> a  accept    {size=|B|}         (or abort: parameters differ, size over limit)
    a -> b  a-masked  sa*H(x) for x in A, in a fresh random order
    b -> a  b-masked  sb*H(y) for y in B, in a fresh random order
  cardinality (b matches):
    a -> b  b-double  sa*(sb*H(y)) for every b-masked value, in a NEW random order
    b -> a  outcome   9 bytes: status (1 = at least k, 0 = below) | 8-byte count (0 when below)
  intersection (a matches, a receives):
    b -> a  a-double  sb*(sa*H(x)) for every a-masked value, in the SAME order
    a -> b  done      1 byte: status (1 = at least k, 0 = below)

The matcher counts (or finds) the values that occur in both doubly masked
lists: plain set membership on bytes, no sorting. Every received list is
checked for the exact count, canonical encodings and distinct values (the
masks are bijections, so a repeat can only come from a misbehaving peer and
would inflate a count).

Who learns what (semi-honest parties; the relay sees only sizes and timing):

* cardinality: ``a`` sees ``|B|``, ``sb*H(B)`` (pseudorandom under DDH without
  ``sb``) and the outcome: ``|A & B|`` if at least ``k``, else one bit. ``b``
  sees ``|A|``, ``sa*H(A)``, and ``sa*sb*H(B)`` in an order ``a`` chose at random,
  so it cannot tell which of its own elements matched; it computes ``|A & B|``
  itself, so **b's view contains the size even when it is below k**; its client
  reports only "below threshold". ``b`` matches, not ``a``, because the
  threshold exists to stop the initiator (who picks the set, the moment and
  how often to ask) from learning small overlaps, e.g. by probing with a few
  guessed elements; only the responder, whose set is being probed, ever holds
  a sub-threshold count.
* intersection: ``a`` must match to map doubly masked values back to its
  elements, so ``a``'s view contains ``A & B`` whatever ``k`` is: the threshold
  then binds only an honest ``a``'s client, which discards the result. ``b``
  sees ``|A|``, ``sa*H(A)`` and the status bit; it never learns ``|A & B|``.
* the relay: both set sizes (from message lengths) and timing. ``outcome`` and
  ``done`` have the same length whatever they say (what the parties do next
  may of course tell it whether the run succeeded).

A malicious party can choose its set freely (inherent in PSI), lie about the
count it reports (cardinality, ``b``) or the status (intersection, ``a``), and
end the run; it cannot unmask the other side's values without breaking DDH.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, get_args

from sealroom.errors import InvalidInput, ProtocolError
from sealroom.protocols.channel import Channel
from sealroom.protocols.group import (
    ELEMENT_SIZE,
    SCALAR_SIZE,
    GroupPool,
    check_elements,
    random_scalar,
)

__all__ = [
    "CHUNK",
    "KEYWORD_MAX",
    "MAX_SET_SIZE",
    "MODES",
    "PROTOCOL",
    "ROLES",
    "VERSION",
    "BelowThreshold",
    "Mode",
    "PsiParams",
    "PsiResult",
    "keyword_overlap",
    "normalize_keyword",
    "run_psi",
    "run_psi_with",
]

PROTOCOL = "psi"
VERSION = 1
ROLES = ("a", "b")
Mode = Literal["cardinality", "intersection"]
MODES: tuple[str, ...] = get_args(Mode)
CHUNK = 1 << 15
"""Group elements per message (1 MiB): part of the wire format of version 1."""
MAX_SET_SIZE = 1 << 24
KEYWORD_MAX = 65_536
"""The ``max_set_size`` private discovery uses, so both sides agree without saying so."""
KEYWORD_MAX_CHARS = 256
PATIENCE_PER_ELEMENT = 0.0005
"""Seconds a party waits for its peer per element of work, beyond the channel's timeout."""

Shuffle = Callable[[list[bytes]], None]


class BelowThreshold(ProtocolError):
    """The run ended because the intersection is smaller than the agreed threshold."""

    public_message = "the intersection is smaller than the agreed threshold"


@dataclass(frozen=True, kw_only=True)
class PsiParams:
    """What both parties must agree on before any masked element is sent."""

    mode: Mode
    threshold: int = 0
    max_set_size: int = 1_000_000

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidInput(f"mode must be one of {list(MODES)}")
        if type(self.max_set_size) is not int or not 1 <= self.max_set_size <= MAX_SET_SIZE:
            raise InvalidInput(f"max_set_size must be an integer in 1..{MAX_SET_SIZE}")
        if type(self.threshold) is not int or not 0 <= self.threshold <= self.max_set_size:
            raise InvalidInput("threshold must be an integer in 0..max_set_size")

    def as_dict(self) -> dict[str, int | str]:
        return {"mode": self.mode, "threshold": self.threshold, "max_set_size": self.max_set_size}


@dataclass(frozen=True)
class PsiResult:
    """What one party learned; fields it did not learn are None. ``intersection`` is sorted."""

    own_size: int
    peer_size: int
    intersection_size: int | None
    jaccard: Fraction | None
    intersection: tuple[bytes, ...] | None

    def public_summary(self) -> dict[str, int | str | None]:
        """JSON-able: the sizes, Jaccard as ``"n/d"``, and a digest of the intersection if known."""
        digest = None
        if self.intersection is not None:
            h = hashlib.sha256(b"sealroom-psi-intersection-v1\0")
            for e in sorted(self.intersection):
                h.update(len(e).to_bytes(8, "big") + e)
            digest = "sha256:" + h.hexdigest()
        jaccard = None
        if self.jaccard is not None:
            jaccard = f"{self.jaccard.numerator}/{self.jaccard.denominator}"
        return {
            "own_size": self.own_size,
            "peer_size": self.peer_size,
            "intersection_size": self.intersection_size,
            "jaccard": jaccard,
            "intersection_digest": digest,
        }


def run_psi(
    channel: Channel,
    *,
    role: str,
    elements: Iterable[bytes],
    params: PsiParams,
    workers: int = 1,
) -> PsiResult:
    """Run PSI as ``role`` with the one peer of ``channel``.

    Raises :class:`BelowThreshold` (on both sides) when the intersection is
    under ``params.threshold``, :class:`ProtocolError` when the run breaks.
    """
    return run_psi_with(
        channel,
        role=role,
        elements=elements,
        params=params,
        scalar=random_scalar(),
        shuffle=secrets.SystemRandom().shuffle,
        workers=workers,
    )


def run_psi_with(
    channel: Channel,
    *,
    role: str,
    elements: Iterable[bytes],
    params: PsiParams,
    scalar: bytes,
    shuffle: Shuffle,
    workers: int = 1,
) -> PsiResult:
    """:func:`run_psi` with the secret scalar and the shuffle supplied (known-answer tests).

    ``shuffle`` must permute a list in place uniformly at random (Fisher-Yates
    from a CSPRNG) in real use; every order a peer sees comes from it.
    """
    if channel.protocol != PROTOCOL or channel.version != VERSION:
        raise InvalidInput(f"the channel must be for {PROTOCOL} v{VERSION}")
    if len(channel.peers) != 1:
        raise InvalidInput("PSI runs between exactly two parties")
    try:
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {list(ROLES)}")
        if not isinstance(params, PsiParams):
            raise InvalidInput("params must be PsiParams")
        if not isinstance(scalar, bytes) or len(scalar) != SCALAR_SIZE:
            raise InvalidInput(f"the scalar must be {SCALAR_SIZE} bytes")
        own = _distinct(elements, params.max_set_size)
        pool = GroupPool(workers)
    except InvalidInput:
        _refuse(channel)
        raise
    shuffle(own)
    with pool:
        run = _Run(channel, params, scalar, shuffle, pool)
        with channel.guard():
            result = run.as_a(own) if role == "a" else run.as_b(own)
    if result is None:
        raise BelowThreshold("below threshold")
    return result


def normalize_keyword(keyword: str) -> str:
    """NFKC, case-folded (NFKC again: folding can denormalise), whitespace collapsed."""
    if not isinstance(keyword, str):
        raise InvalidInput("keywords must be strings")
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", keyword).casefold())
    return " ".join(folded.split())


def keyword_overlap(
    channel: Channel,
    *,
    role: str,
    keywords: Iterable[str],
    threshold: int = 0,
    workers: int = 1,
) -> PsiResult:
    """Private discovery: how much two keyword lists overlap (size and Jaccard), nothing more.

    Keywords are normalised (:func:`normalize_keyword`), empty ones dropped,
    duplicates merged, and the sets compared in ``cardinality`` mode with
    ``max_set_size`` = :data:`KEYWORD_MAX`.
    """
    terms: dict[str, None] = {}
    try:
        for keyword in keywords:
            term = normalize_keyword(keyword)
            if len(term) > KEYWORD_MAX_CHARS:
                raise InvalidInput(f"a keyword is longer than {KEYWORD_MAX_CHARS} characters")
            if term:
                terms[term] = None
        if not terms:
            raise InvalidInput("no keywords left after normalisation")
        params = PsiParams(mode="cardinality", threshold=threshold, max_set_size=KEYWORD_MAX)
    except InvalidInput:
        _refuse(channel)
        raise
    return run_psi(
        channel,
        role=role,
        elements=[t.encode() for t in terms],
        params=params,
        workers=workers,
    )


# --- the run ------------------------------------------------------------------------------


def _refuse(channel: Channel) -> None:
    """Tell the peer this party cannot run, rather than let it time out; the reason stays here."""
    with contextlib.suppress(ProtocolError):
        channel.fail("the peer refused its own input or arguments")


def _distinct(elements: Iterable[bytes], limit: int) -> list[bytes]:
    seen: dict[bytes, None] = {}
    for e in elements:
        if not isinstance(e, bytes):
            raise InvalidInput("set elements must be bytes")
        seen[e] = None
        if len(seen) > limit:
            raise InvalidInput(f"the set has more than max_set_size = {limit} distinct elements")
    if not seen:
        raise InvalidInput("the set is empty")
    return list(seen)


def _chunks(items: Sequence[bytes]) -> list[Sequence[bytes]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


class _Run:
    """One party's state for one run; the secret scalar lives only here and in the pool."""

    def __init__(
        self, channel: Channel, params: PsiParams, scalar: bytes, shuffle: Shuffle, pool: GroupPool
    ) -> None:
        self.ch = channel
        self.peer = channel.peers[0]
        self.params = params
        self.scalar = scalar
        self.shuffle = shuffle
        self.pool = pool
        self.domain = f"sealroom/{PROTOCOL}/v{VERSION}/{channel.session}".encode()
        self.patience = channel.timeout

    def __repr__(self) -> str:  # never show the scalar
        return f"_Run(peer={self.peer!r}, params={self.params!r})"

    # --- a: the initiator -----------------------------------------------------------------

    def as_a(self, own: list[bytes]) -> PsiResult | None:
        ch, peer, p = self.ch, self.peer, self.params
        ch.send(peer, "hello", fields={**p.as_dict(), "size": len(own)})
        accept = ch.expect(peer, "accept")
        accept.only(fields=("size",))
        peer_size = accept.int_field("size", lo=1, hi=p.max_set_size)
        self.patience = ch.timeout + (len(own) + peer_size) * PATIENCE_PER_ELEMENT
        self._send_masked("a-masked", own)
        theirs = self._receive("b-masked", peer_size)
        doubled = self._mul_all(theirs)
        if p.mode == "cardinality":
            self.shuffle(doubled)  # b must not learn which of its elements matched
            self._send_items("b-double", doubled)
            frame = ch.expect(peer, "outcome", timeout=self.patience)
            frame.only(blobs=("outcome",))
            raw = frame.blob("outcome", max_size=9, size=9)
            status, count = raw[0], int.from_bytes(raw[1:], "big")
            if status == 0 and count == 0 and p.threshold > 0:
                return None
            if status != 1 or not p.threshold <= count <= min(len(own), peer_size):
                raise ProtocolError(f"{frame.what}: the outcome is not a possible result")
            return _result(len(own), peer_size, count, None)
        mine = self._receive("a-double", len(own))
        matches = set(doubled)
        found = tuple(sorted(x for x, d in zip(own, mine, strict=True) if d in matches))
        passed = len(found) >= p.threshold
        ch.send(peer, "done", blobs={"status": b"\x01" if passed else b"\x00"})
        return _result(len(own), peer_size, len(found), found) if passed else None

    # --- b: the responder -----------------------------------------------------------------

    def as_b(self, own: list[bytes]) -> PsiResult | None:
        ch, peer, p = self.ch, self.peer, self.params
        hello = ch.expect(peer, "hello")
        hello.only(fields=("mode", "threshold", "max_set_size", "size"))
        offered = {
            "mode": hello.str_field("mode", max_len=32),
            "threshold": hello.int_field("threshold", lo=0, hi=MAX_SET_SIZE),
            "max_set_size": hello.int_field("max_set_size", lo=1, hi=MAX_SET_SIZE),
        }
        ours = p.as_dict()
        differ = [
            f"{k} {offered[k]!r} (a) != {v!r} (b)" for k, v in ours.items() if offered[k] != v
        ]
        if differ:
            ch.fail("parameters differ: " + "; ".join(differ))
        peer_size = hello.int_field("size", lo=1, hi=p.max_set_size)
        ch.send(peer, "accept", fields={"size": len(own)})
        self.patience = ch.timeout + (len(own) + peer_size) * PATIENCE_PER_ELEMENT
        self._send_masked("b-masked", own)
        theirs = self._receive("a-masked", peer_size)
        if p.mode == "intersection":
            # Same order as received, so a can map each value back to its element.
            for chunk in self.pool.mul_chunks(self.scalar, _chunks(theirs)):
                ch.send(peer, "a-double", blobs={"items": b"".join(chunk)})
            frame = ch.expect(peer, "done", timeout=self.patience)
            frame.only(blobs=("status",))
            status = frame.blob("status", max_size=1, size=1)
            if status not in (b"\x00", b"\x01"):
                raise ProtocolError(f"{frame.what}: status must be 0 or 1")
            return _result(len(own), peer_size, None, None) if status == b"\x01" else None
        doubled = set(self._mul_all(theirs))
        mine = self._receive("b-double", len(own))
        count = len(doubled.intersection(mine))
        passed = count >= p.threshold
        outcome = (b"\x01" + count.to_bytes(8, "big")) if passed else bytes(9)
        ch.send(peer, "outcome", blobs={"outcome": outcome})
        return _result(len(own), peer_size, count, None) if passed else None

    # --- shared -----------------------------------------------------------------------------

    def _send_masked(self, kind: str, own: list[bytes]) -> None:
        for chunk in self.pool.hash_mul_chunks(self.scalar, _chunks(own), domain=self.domain):
            self.ch.send(self.peer, kind, blobs={"items": b"".join(chunk)})

    def _send_items(self, kind: str, items: list[bytes]) -> None:
        for chunk in _chunks(items):
            self.ch.send(self.peer, kind, blobs={"items": b"".join(chunk)})

    def _mul_all(self, items: list[bytes]) -> list[bytes]:
        return list(
            itertools.chain.from_iterable(self.pool.mul_chunks(self.scalar, _chunks(items)))
        )

    def _receive(self, kind: str, count: int) -> list[bytes]:
        """Exactly ``count`` canonical, distinct elements, in ``ceil(count / CHUNK)`` messages."""
        out: list[bytes] = []
        for start in range(0, count, CHUNK):
            n = min(CHUNK, count - start)
            frame = self.ch.expect(self.peer, kind, timeout=self.patience)
            frame.only(blobs=("items",))
            items = frame.items("items", size=ELEMENT_SIZE, max_count=n, min_count=n)
            check_elements(items, what=frame.what)
            out.extend(items)
        if len(set(out)) != count:
            raise ProtocolError(f"{kind} from {self.peer} repeats an element")
        return out


def _result(
    own_size: int, peer_size: int, count: int | None, found: tuple[bytes, ...] | None
) -> PsiResult:
    jaccard = None if count is None else Fraction(count, own_size + peer_size - count)
    return PsiResult(own_size, peer_size, count, jaccard, found)
