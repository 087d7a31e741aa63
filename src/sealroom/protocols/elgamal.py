"""Exponential ElGamal over Edwards25519 (libsodium), for small additive sums.

The group is the prime-order subgroup of Edwards25519 (order ``L = 2^252 +
27742317777372353535851937790883648493``, base point ``G``); points are the
standard 32-byte compressed encodings, and every multiplication, addition and
check is libsodium's (through PyNaCl). A ciphertext of the integer ``m`` under
the public key ``h = x*G`` is::

    (c1, c2) = (r*G, m*G + r*h)        r uniform in [1, L)

It is additively homomorphic (component-wise point addition adds the
plaintexts) and IND-CPA under DDH in the group. Decryption recovers ``m*G =
c2 - x*c1``; ``m`` itself is then a discrete logarithm, found by baby-step
giant-step inside a window the caller states (so plaintexts must be small:
:data:`MAX_DLOG_WINDOW`).

Who holds the key: the party that owns the plaintexts. It can then encrypt with
two fixed-base multiplications, ``c1 = r*G`` and ``c2 = (m + r*x)*G``
(:meth:`ElGamalKey.encrypt`, ~2 x 35 us), instead of the public-key path
``m*G + r*h`` (:func:`encrypt`), which needs a variable-base multiplication
(~160 us in libsodium, which also checks the subgroup). The other party never
decrypts alone: it asks for a *decryption share* ``x*Q`` of a blinded ``Q``
(:meth:`ElGamalKey.share`) with a Chaum-Pedersen proof that the share uses the
key behind ``h`` (:meth:`ElGamalKey.prove_share`, :func:`verify_share`).

Points received from a peer are checked where they are used:
:func:`mul` accepts only prime-order-subgroup points (libsodium checks);
:func:`add` and :func:`select_sum` accept any point on the curve, and
:func:`clear_torsion` maps such a point to its prime-order component
(``P -> (8^-1 mod L) * (8*P)``), so a sum of peer points is cleaned with two
operations instead of a subgroup check per point (~80 us each).

The discrete-log search (:func:`discrete_log`) walks the curve in Python
integer arithmetic (extended twisted-Edwards coordinates, batch inversion),
because a libsodium addition of compressed points costs ~24 us of which most
is decompression. That code handles only public values and its answer is
confirmed with a libsodium multiplication before it is returned, so a fault in
it can make a search fail but never return a wrong plaintext.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gmpy2
import nacl.bindings as sodium
from nacl.exceptions import RuntimeError as SodiumRuntimeError

from sealroom.errors import InvalidInput, ProtocolError

__all__ = [
    "BASE",
    "CIPHERTEXT_SIZE",
    "IDENTITY",
    "MAX_DLOG_WINDOW",
    "POINT_SIZE",
    "PROOF_SIZE",
    "Ciphertext",
    "ElGamalKey",
    "L",
    "Rng",
    "add",
    "base_mul",
    "check_subgroup",
    "clear_torsion",
    "discrete_log",
    "encrypt",
    "hash_to_scalar",
    "mul",
    "random_scalar",
    "select_sum",
    "sub",
    "sum_ciphertexts",
    "verify_share",
]

Rng = Callable[[int], bytes]
"""A source of uniform random bytes: ``rng(n)`` returns ``n`` bytes (``os.urandom``)."""

L = 2**252 + 27742317777372353535851937790883648493
POINT_SIZE = 32
CIPHERTEXT_SIZE = 2 * POINT_SIZE
PROOF_SIZE = 64
IDENTITY = (1).to_bytes(POINT_SIZE, "little")
BASE = sodium.crypto_scalarmult_ed25519_base_noclamp((1).to_bytes(32, "little"))
MAX_DLOG_WINDOW = 2**40
"""Largest plaintext window :func:`discrete_log` searches: ~2^21 steps, seconds here."""

_INV8 = pow(8, -1, L)
_PROOF_DOMAIN = b"sealroom-elgamal-v1/chaum-pedersen"


def _scalar_bytes(k: int) -> bytes:
    return (k % L).to_bytes(32, "little")


_ZERO = bytes(32)


def _muladd(a: bytes, b: bytes, c: int) -> bytes:
    """``a*b + c mod L``, the product of secrets done by libsodium (constant time)."""
    return sodium.crypto_core_ed25519_scalar_add(
        sodium.crypto_core_ed25519_scalar_mul(a, b), _scalar_bytes(c)
    )


def _base_bytes(k: bytes) -> bytes:
    return IDENTITY if k == _ZERO else sodium.crypto_scalarmult_ed25519_base_noclamp(k)


def random_scalar(rng: Rng = os.urandom) -> int:
    """A uniform non-zero scalar mod L (64 random bytes reduced: bias < 2^-250)."""
    while True:
        k = int.from_bytes(rng(64), "little") % L
        if k:
            return k


def hash_to_scalar(*parts: bytes) -> int:
    """SHA-512 over length-prefixed parts, reduced mod L (Fiat-Shamir challenges)."""
    h = hashlib.sha512()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return int.from_bytes(h.digest(), "little") % L


# --- group operations (libsodium) ------------------------------------------------------


def base_mul(k: int) -> bytes:
    """``k*G`` (libsodium refuses the identity result, so ``k = 0 mod L`` is handled here)."""
    k %= L
    if k == 0:
        return IDENTITY
    return sodium.crypto_scalarmult_ed25519_base_noclamp(_scalar_bytes(k))


def mul(k: int, point: bytes) -> bytes:
    """``k*P`` for ``P`` in the prime-order subgroup; anything else is a :class:`ProtocolError`.

    libsodium checks that ``P`` is canonical, not of small order and in the
    subgroup; the identity is accepted here (it is the sum of nothing).
    """
    if len(point) != POINT_SIZE:
        raise ProtocolError("a group element has the wrong length")
    if point == IDENTITY:
        return IDENTITY
    k %= L
    if k == 0:
        check_subgroup(point, what="a group element")
        return IDENTITY
    try:
        return sodium.crypto_scalarmult_ed25519_noclamp(_scalar_bytes(k), point)
    except SodiumRuntimeError:
        raise ProtocolError("a group element is not in the prime-order subgroup") from None


def add(p: bytes, q: bytes) -> bytes:
    """``P + Q`` for any points on the curve; an undecodable input is a :class:`ProtocolError`."""
    try:
        return sodium.crypto_core_ed25519_add(p, q)
    except (SodiumRuntimeError, TypeError, ValueError):
        raise ProtocolError("a group element is not a point on the curve") from None


def sub(p: bytes, q: bytes) -> bytes:
    """``P - Q`` for any points on the curve."""
    try:
        return sodium.crypto_core_ed25519_sub(p, q)
    except (SodiumRuntimeError, TypeError, ValueError):
        raise ProtocolError("a group element is not a point on the curve") from None


def check_subgroup(point: bytes, *, what: str, allow_identity: bool = False) -> None:
    """Require a canonical point of the prime-order subgroup (one full libsodium check)."""
    if len(point) != POINT_SIZE:
        raise ProtocolError(f"{what} has the wrong length")
    if point == IDENTITY and allow_identity:
        return
    if not sodium.crypto_core_ed25519_is_valid_point(point):
        raise ProtocolError(f"{what} is not an element of the prime-order subgroup")


def select_sum(cts: Sequence[bytes], chosen: Sequence[bool], *, what: str) -> Ciphertext:
    """The sum of the chosen encoded ciphertexts, with the same work for every ciphertext.

    Each ciphertext is added either to the chosen accumulator or to a discarded
    one (two libsodium additions, ~2 x 24 us, which also decode both points),
    so neither the running time nor where an undecodable point makes it fail
    depends on which were chosen. The result is *not* torsion-cleared: pass
    partial sums through :func:`sum_ciphertexts`.
    """
    if len(cts) != len(chosen):
        raise InvalidInput("select_sum needs one choice per ciphertext")
    acc1, acc2 = [IDENTITY, IDENTITY], [IDENTITY, IDENTITY]
    addf = sodium.crypto_core_ed25519_add
    for ct, pick in zip(cts, chosen, strict=True):
        if len(ct) != CIPHERTEXT_SIZE:
            raise ProtocolError(f"{what} contains a ciphertext of the wrong length")
        k = int(pick)
        try:
            acc1[k] = addf(acc1[k], ct[:POINT_SIZE])
            acc2[k] = addf(acc2[k], ct[POINT_SIZE:])
        except (SodiumRuntimeError, TypeError, ValueError):
            raise ProtocolError(f"{what} contains a value that is not a curve point") from None
    return Ciphertext(acc1[1], acc2[1])


def clear_torsion(point: bytes) -> bytes:
    """The prime-order component of a curve point: ``(8^-1 mod L) * (8*P)``."""
    p8 = add(point, point)
    p8 = add(p8, p8)
    p8 = add(p8, p8)
    if p8 == IDENTITY:
        return IDENTITY
    return mul(_INV8, p8)


# --- ciphertexts -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ciphertext:
    """``(c1, c2) = (r*G, m*G + r*h)``, 64 bytes on the wire."""

    c1: bytes
    c2: bytes

    def to_bytes(self) -> bytes:
        return self.c1 + self.c2

    @classmethod
    def from_bytes(cls, data: bytes) -> Ciphertext:
        """Split 64 bytes; the points are checked where they are used, not here."""
        if len(data) != CIPHERTEXT_SIZE:
            raise ProtocolError(f"a ciphertext must be {CIPHERTEXT_SIZE} bytes")
        return cls(data[:POINT_SIZE], data[POINT_SIZE:])


def encrypt(public: bytes, value: int, *, r: int) -> Ciphertext:
    """Public-key encryption ``(r*G, m*G + r*h)`` (one variable-base multiplication)."""
    if r % L == 0:
        raise InvalidInput("the encryption randomness must be non-zero mod L")
    return Ciphertext(base_mul(r), add(base_mul(value), mul(r, public)))


def sum_ciphertexts(cts: Iterable[Ciphertext]) -> Ciphertext:
    """The homomorphic sum, torsion-cleared (so peer-chosen torsion cannot leak through it)."""
    c1, c2 = IDENTITY, IDENTITY
    addf = sodium.crypto_core_ed25519_add
    try:
        for ct in cts:
            c1 = addf(c1, ct.c1)
            c2 = addf(c2, ct.c2)
    except (SodiumRuntimeError, TypeError, ValueError):
        raise ProtocolError("a ciphertext contains a value that is not a curve point") from None
    return Ciphertext(clear_torsion(c1), clear_torsion(c2))


@dataclass(frozen=True)
class ElGamalKey:
    """The owner's key pair ``(x, h = x*G)``; the secret never appears in a repr."""

    secret: int = field(repr=False)
    public: bytes

    @classmethod
    def generate(cls, *, rng: Rng = os.urandom) -> ElGamalKey:
        return cls.from_secret(random_scalar(rng))

    @classmethod
    def from_secret(cls, secret: int) -> ElGamalKey:
        x = secret % L
        if x == 0:
            raise InvalidInput("an ElGamal secret key must be non-zero mod L")
        return cls(secret=x, public=base_mul(x))

    def encrypt(self, value: int, *, r: int) -> Ciphertext:
        """Owner encryption: ``(r*G, (m + r*x)*G)``, the same ciphertext as :func:`encrypt`."""
        if r % L == 0:
            raise InvalidInput("the encryption randomness must be non-zero mod L")
        rb = _scalar_bytes(r)
        return Ciphertext(base_mul(r), _base_bytes(_muladd(rb, _scalar_bytes(self.secret), value)))

    def encrypt_many(self, values: Sequence[int], *, randomness: bytes) -> list[bytes]:
        """Encode ``Enc(v)`` for each value; ``randomness`` is 64 uniform bytes per value.

        Scalar arithmetic on the secret is libsodium's (constant time), not Python's.
        """
        if len(randomness) != 64 * len(values):
            raise InvalidInput("encrypt_many needs 64 random bytes per value")
        xb = _scalar_bytes(self.secret)
        base = sodium.crypto_scalarmult_ed25519_base_noclamp
        reduce = sodium.crypto_core_ed25519_scalar_reduce
        out: list[bytes] = []
        for i, v in enumerate(values):
            rb = reduce(randomness[64 * i : 64 * i + 64])
            mb = _muladd(rb, xb, v)
            if rb == _ZERO or mb == _ZERO:  # probability ~2^-252 each
                raise InvalidInput("degenerate encryption randomness; draw again")
            out.append(base(rb) + base(mb))
        return out

    def share(self, c1: bytes) -> bytes:
        """The decryption share ``x*Q`` (``Q`` must be in the prime-order subgroup)."""
        return mul(self.secret, c1)

    def decrypt(self, ct: Ciphertext, *, lo: int, hi: int) -> int | None:
        """The plaintext if it lies in ``[lo, hi]``, else None (for tests and tools)."""
        return discrete_log(sub(ct.c2, self.share(ct.c1)), lo=lo, hi=hi)

    def prove_share(
        self, c1: bytes, share: bytes, *, context: bytes, rng: Rng = os.urandom
    ) -> bytes:
        """Chaum-Pedersen NIZK that ``log_G(h) = log_Q(share)`` (Fiat-Shamir, SHA-512).

        Proof = ``c || z`` with ``c = H(ctx, G, h, Q, D, w*G, w*Q)`` and ``z = w + c*x``.
        """
        w = random_scalar(rng)
        t1, t2 = base_mul(w), mul(w, c1)
        c = hash_to_scalar(_PROOF_DOMAIN, context, BASE, self.public, c1, share, t1, t2)
        z = sodium.crypto_core_ed25519_scalar_add(
            sodium.crypto_core_ed25519_scalar_mul(_scalar_bytes(c), _scalar_bytes(self.secret)),
            _scalar_bytes(w),
        )
        return _scalar_bytes(c) + z


def verify_share(public: bytes, c1: bytes, share: bytes, proof: bytes, *, context: bytes) -> None:
    """Check a :meth:`ElGamalKey.prove_share` proof; a bad one is a :class:`ProtocolError`."""
    if len(proof) != PROOF_SIZE:
        raise ProtocolError("a decryption-share proof must be 64 bytes")
    c_bytes, z_bytes = proof[:32], proof[32:]
    c, z = int.from_bytes(c_bytes, "little"), int.from_bytes(z_bytes, "little")
    if c >= L or z >= L:
        raise ProtocolError("a decryption-share proof has a non-canonical scalar")
    t1 = sub(base_mul(z), mul(c, public))
    t2 = sub(mul(z, c1), mul(c, share))
    expect = hash_to_scalar(_PROOF_DOMAIN, context, BASE, public, c1, share, t1, t2)
    if not hmac.compare_digest(_scalar_bytes(expect), c_bytes):
        raise ProtocolError("the decryption share does not match the key (proof rejected)")


# --- discrete logarithm: baby-step giant-step ------------------------------------------

_P = 2**255 - 19
_D = -121665 * pow(121666, -1, _P) % _P
_K = 2 * _D % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_MAX_TABLE = 1 << 18  # ~35 MB of dict; covers 2^19 values per giant step
_BATCH = 512
_tables: dict[int, dict[int, int]] = {}
_tables_lock = threading.Lock()

_Ext = tuple[Any, Any, Any, Any]  # extended coordinates (X:Y:Z:T), gmpy2 integers


def _decode(point: bytes) -> _Ext:
    """RFC 8032 decoding to extended coordinates (public values only)."""
    y = int.from_bytes(point, "little") & ((1 << 255) - 1)
    sign = point[31] >> 7
    if y >= _P:
        raise ProtocolError("a group element is not canonical")
    p = gmpy2.mpz(_P)
    yy = gmpy2.mpz(y)
    u = (yy * yy - 1) % p
    v = (_D * yy * yy + 1) % p
    x = u * gmpy2.powmod(v, 3, p) * gmpy2.powmod(u * gmpy2.powmod(v, 7, p), (_P - 5) // 8, p) % p
    if (v * x * x - u) % p:
        x = x * _SQRT_M1 % p
        if (v * x * x - u) % p:
            raise ProtocolError("a group element is not a point on the curve")
    if x == 0 and sign:
        raise ProtocolError("a group element is not canonical")
    if int(x) & 1 != sign:
        x = p - x
    return (x, yy, gmpy2.mpz(1), x * yy % p)


def _affine_step(point: bytes, *, negate: bool) -> tuple[Any, Any, Any]:
    """Precomputed ``(y - x, y + x, 2d*x*y)`` of a point for mixed additions."""
    x, y, _, t = _decode(point)
    if negate:
        x, t = (_P - x) % _P, (_P - t) % _P
    return ((y - x) % _P, (y + x) % _P, _K * t % _P)


def _walk(start: _Ext, step: tuple[Any, Any, Any], count: int) -> tuple[list[_Ext], _Ext]:
    """``[start, start+S, ..., start+(count-1)*S]`` and ``start+count*S``.

    Mixed addition add-2008-hwcd-3 for a = -1 (Hisil-Wong-Carter-Dawson 2008).
    """
    p = gmpy2.mpz(_P)
    ym, yp, t2 = step
    x, y, z, t = start
    out: list[_Ext] = []
    append = out.append
    for _ in range(count):
        append((x, y, z, t))
        a = (y - x) * ym % p
        b = (y + x) * yp % p
        c = t * t2 % p
        d = 2 * z
        e, f, g, h = b - a, d - c, d + c, b + a
        x, y, t, z = e * f % p, g * h % p, e * h % p, f * g % p
    return out, (x, y, z, t)


def _normalise(points: Sequence[_Ext]) -> list[tuple[int, int]]:
    """Affine ``(x, y)`` of each point with one inversion (Montgomery's trick)."""
    p = gmpy2.mpz(_P)
    prefix = []
    acc = gmpy2.mpz(1)
    for pt in points:
        acc = acc * pt[2] % p
        prefix.append(acc)
    inv = gmpy2.invert(acc, p)
    out: list[tuple[int, int]] = [(0, 0)] * len(points)
    for i in range(len(points) - 1, -1, -1):
        x, y, z, _ = points[i]
        zi = inv * prefix[i - 1] % p if i else inv
        inv = inv * z % p
        out[i] = (int(x * zi % p), int(y * zi % p))
    return out


def _table(size: int) -> tuple[int, dict[int, int]]:
    """``{y(j*G): +-j}`` for ``j in [0, size]`` (sign = parity of x), cached per process.

    Returns the table actually used (a cached larger one serves a smaller request).
    """
    with _tables_lock:
        for have, cached in _tables.items():
            if have >= size:
                return have, cached
        identity: _Ext = tuple(gmpy2.mpz(v) for v in (0, 1, 1, 0))
        table: dict[int, int] = {}
        step = _affine_step(BASE, negate=False)
        for lo in range(0, size + 1, 4096):
            n = min(4096, size + 1 - lo)
            start = identity if lo == 0 else _decode(base_mul(lo))
            for j, (x, y) in enumerate(_normalise(_walk(start, step, n)[0]), start=lo):
                table[y] = -j if x & 1 else j
        _tables.clear()  # keep one table: the largest asked for so far
        _tables[size] = table
        return size, table


def discrete_log(point: bytes, *, lo: int, hi: int) -> int | None:
    """The ``m`` in ``[lo, hi]`` with ``m*G = point``, or None if there is none.

    Baby-step giant-step: a cached table of ``j*G`` for ``|j| <= T`` (one entry
    covers ``+-j``, since ``-P`` shares ``P``'s y), then giant steps of ``2T+1``.
    Cost: ``T`` table entries once per process plus ``(hi - lo) / (2T + 1)``
    steps, ~5 us each here. The answer is confirmed with libsodium.
    """
    window = hi - lo + 1
    if window < 1 or window > MAX_DLOG_WINDOW:
        raise InvalidInput(f"the discrete-log window must hold 1..2^40 values, not {window}")
    check_subgroup(point, what="the decrypted point", allow_identity=True)
    size = 1 << max(4, math.isqrt(window // 2).bit_length())
    size, table = _table(min(size, _MAX_TABLE))
    # m = lo + size + i*(2*size + 1) + j with |j| <= size; walk P - (lo + size)*G by -(2*size+1)*G.
    start = _decode(sub(point, base_mul(lo + size)))
    stride = 2 * size + 1
    step = _affine_step(base_mul(stride), negate=True)
    giants = (window - 1) // stride + 1
    for first in range(0, giants, _BATCH):
        n = min(_BATCH, giants - first)
        points, start = _walk(start, step, n)
        for i, (x, y) in enumerate(_normalise(points), start=first):
            j = table.get(y)
            if j is None:
                continue
            m = lo + size + i * stride + (j if x & 1 == 0 else -j)
            if lo <= m <= hi and hmac.compare_digest(base_mul(m), point):
                return m
    return None
