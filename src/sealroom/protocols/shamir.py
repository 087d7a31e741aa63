"""Shamir secret sharing of 32-byte secrets over the prime field GF(2^256 + 297).

Why this field: secure aggregation shares two kinds of 32-byte secrets, a
self-mask seed and an X25519 private key. Both are arbitrary 256-bit strings,
so the field must be larger than 2^256 to hold them as one element without
splitting; ``p = 2^256 + 297`` is the smallest prime above 2^256 (checked by
the tests), so every secret ``s < 2^256`` is a field element and a share value
fits in 33 bytes.

Sharing (dealer): pick ``a_1 .. a_{t-1}`` uniformly in ``[0, p)`` (rejection
sampling, no modular bias), let ``f(X) = s + a_1 X + ... + a_{t-1} X^{t-1}``,
and give holder ``i`` the share ``(x_i, f(x_i))`` for distinct nonzero public
``x_i``. Any ``t`` shares determine ``s = f(0)`` by Lagrange interpolation at
zero; any ``t - 1`` shares are uniformly distributed and independent of ``s``
(information-theoretic secrecy).

Reconstruction here does not *correct* errors: a wrong share gives a wrong
value, so callers check the result against a public commitment (secure
aggregation compares a reconstructed key with its advertised public key and a
reconstructed seed with its hash commitment) and fail closed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sealroom.errors import InvalidInput, ProtocolError

__all__ = [
    "PRIME",
    "SECRET_SIZE",
    "SHARE_SIZE",
    "Share",
    "combine",
    "combine_many",
    "combine_with",
    "lagrange_at_zero",
    "split",
    "to_secret",
]

PRIME = 2**256 + 297
SECRET_SIZE = 32
SHARE_SIZE = 33  # a share value: one field element, big-endian
_DRAW_BYTES = 33
_DRAW_MASK = (1 << 257) - 1  # p < 2^257: keep 257 bits, reject >= p (acceptance ~1/2)
# combine_many packs one holder's share values into one integer, a slot per
# secret: each slot's sum of products (< t * p^2 < 2^(513 + log2 t)) must fit.
_SLOT = 68
_MAX_HOLDERS = 1 << 30

Rng = Callable[[int], bytes]


@dataclass(frozen=True, slots=True)
class Share:
    """One point ``(x, f(x))`` of a sharing polynomial."""

    x: int
    y: int

    def __repr__(self) -> str:  # share values are secret material
        return f"Share(x={self.x}, y=<hidden>)"

    def value_bytes(self) -> bytes:
        return self.y.to_bytes(SHARE_SIZE, "big")

    @classmethod
    def from_bytes(cls, x: int, data: bytes, *, what: str) -> Share:
        """Parse a peer's share value; anything outside the field is a protocol error."""
        if len(data) != SHARE_SIZE:
            raise ProtocolError(f"{what} must be {SHARE_SIZE} bytes")
        y = int.from_bytes(data, "big")
        if y >= PRIME:
            raise ProtocolError(f"{what} is not a field element")
        return cls(x, y)


def _random_element(rng: Rng) -> int:
    while True:
        value = int.from_bytes(rng(_DRAW_BYTES), "big") & _DRAW_MASK
        if value < PRIME:
            return value


def _check_xs(xs: Sequence[int]) -> None:
    if len(set(xs)) != len(xs):
        raise InvalidInput("share x-coordinates must be distinct")
    for x in xs:
        if type(x) is not int or not 0 < x < PRIME:
            raise InvalidInput("share x-coordinates must be integers in 1..p-1")


def split(
    secret: bytes, *, threshold: int, xs: Sequence[int], rng: Rng = os.urandom
) -> list[Share]:
    """Shares of ``secret`` (32 bytes) at the points ``xs``; any ``threshold`` of them recover it."""
    if len(secret) != SECRET_SIZE:
        raise InvalidInput(f"a secret must be {SECRET_SIZE} bytes")
    if type(threshold) is not int or not 1 <= threshold <= len(xs):
        raise InvalidInput("threshold must be between 1 and the number of shares")
    _check_xs(xs)
    coefficients = [int.from_bytes(secret, "big")]
    coefficients += [_random_element(rng) for _ in range(threshold - 1)]
    shares = []
    for x in xs:
        acc = 0
        for c in reversed(coefficients):  # Horner
            acc = (acc * x + c) % PRIME
        shares.append(Share(x, acc))
    return shares


def lagrange_at_zero(xs: Sequence[int]) -> list[int]:
    """``lambda_j`` with ``f(0) = sum_j lambda_j f(x_j)`` for any ``f`` of degree < len(xs).

    Computed once per set of holders and reused for every secret they hold
    shares of: the per-secret cost is then one inner product.
    """
    _check_xs(xs)
    t = len(xs)
    # Numerators prod_{m != j} x_m from prefix and suffix products; denominators
    # prod_{m != j} (x_m - x_j) exactly in integers (holders' x are small), reduced once.
    prefix_x, suffix_x = [1] * (t + 1), [1] * (t + 1)
    for j in range(t):
        prefix_x[j + 1] = prefix_x[j] * xs[j] % PRIME
        suffix_x[t - 1 - j] = suffix_x[t - j] * xs[t - 1 - j] % PRIME
    nums = [prefix_x[j] * suffix_x[j + 1] % PRIME for j in range(t)]
    dens = [math.prod(xm - xj for xm in xs if xm != xj) % PRIME for xj in xs]
    # One field inversion for all denominators (Montgomery's trick).
    prefix, acc = [], 1
    for den in dens:
        acc = acc * den % PRIME
        prefix.append(acc)
    inv = pow(acc, -1, PRIME)
    out = [0] * len(xs)
    for j in range(len(xs) - 1, -1, -1):
        inv_den = inv * prefix[j - 1] % PRIME if j else inv
        inv = inv * dens[j] % PRIME
        out[j] = nums[j] * inv_den % PRIME
    return out


def combine_with(coefficients: Sequence[int], ys: Sequence[int]) -> int:
    """``sum lambda_j y_j mod p`` (the interpolated value at zero)."""
    if len(coefficients) != len(ys):
        raise InvalidInput("need one share value per Lagrange coefficient")
    return sum(c * y for c, y in zip(coefficients, ys, strict=True)) % PRIME


def to_secret(value: int, *, what: str) -> bytes:
    """The 32-byte secret a reconstructed field element stands for."""
    if value >= 1 << (8 * SECRET_SIZE):
        raise ProtocolError(f"shares of {what} do not reconstruct a {SECRET_SIZE}-byte secret")
    return value.to_bytes(SECRET_SIZE, "big")


def combine(shares: Sequence[Share], *, threshold: int) -> bytes:
    """The secret from the first ``threshold`` shares (fewer is an error)."""
    if type(threshold) is not int or threshold < 1:
        raise InvalidInput("threshold must be a positive integer")
    if len(shares) < threshold:
        raise ProtocolError(f"{len(shares)} shares are fewer than the threshold {threshold}")
    use = shares[:threshold]
    coefficients = lagrange_at_zero([s.x for s in use])
    return to_secret(combine_with(coefficients, [s.y for s in use]), what="the secret")


def combine_many(coefficients: Sequence[int], rows: Sequence[bytes], *, what: str) -> list[int]:
    """``sum_j lambda_j y_j[k] mod p`` for every secret ``k`` at once.

    ``rows[j]`` is holder ``j``'s share values, 33 bytes each, one per secret
    and in the same order for every holder. Each row is packed into a single
    integer with one 68-byte slot per secret (Kronecker substitution), so all
    the inner products are ``len(rows)`` big-integer multiplications instead
    of ``len(rows) * secrets`` small ones; the slots are wide enough that no
    carry crosses into the next. Every value is checked to be a field
    element (peer input).
    """
    if len(coefficients) != len(rows) or not 0 < len(rows) < _MAX_HOLDERS:
        raise InvalidInput("need one row of share values per Lagrange coefficient")
    size = len(rows[0])
    if size % SHARE_SIZE or any(len(r) != size for r in rows):
        raise ProtocolError(f"{what}: share rows must be whole 33-byte values of equal count")
    count = size // SHARE_SIZE
    if count == 0:
        return []
    values = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), count, SHARE_SIZE)
    lead = values[:, :, 0]
    if int(lead.max()) > 1:
        raise ProtocolError(f"{what}: a share value is not a field element")
    for j, k in zip(*np.nonzero(lead == 1), strict=True):  # 2^256 <= y: rare, check exactly
        if int.from_bytes(values[j, k].tobytes(), "big") >= PRIME:
            raise ProtocolError(f"{what}: a share value is not a field element")
    slots = np.zeros((len(rows), count, _SLOT), dtype=np.uint8)
    slots[:, :, _SLOT - SHARE_SIZE :] = values
    packed_rows = memoryview(slots.tobytes())
    width = count * _SLOT
    acc = 0
    for j, lam in enumerate(coefficients):
        acc += lam * int.from_bytes(packed_rows[j * width : (j + 1) * width], "big")
    packed = acc.to_bytes(count * _SLOT, "big")
    return [
        int.from_bytes(packed[k * _SLOT : (k + 1) * _SLOT], "big") % PRIME for k in range(count)
    ]
