"""The prime-order group the DH-based protocols (PSI, PJC) work in: Curve25519, x-only.

Elements are hashed to the group with libsodium's Elligator 2 map
(``crypto_core_ed25519_from_uniform``, which also clears the cofactor, so the
point lies in the prime-order subgroup) and carried as the Montgomery
u-coordinate (32 bytes, little-endian, canonical: ``u < 2^255 - 19``).
Exponentiation is X25519 (libsodium ``crypto_scalarmult``): the scalar is
clamped to ``2^254 + 8k``, and since ``a*(b*P) = b*(a*P)`` for any scalars the
masking commutes, which is all DH-PSI needs. x-only means ``P`` and ``-P`` share
an encoding; two distinct hash outputs collide that way with negligible
probability, so equality of encodings is equality of elements.

Why not ristretto255: the libsodium inside PyNaCl 1.6 is built without it, and
libsodium's Edwards variable-base multiplication (with its subgroup check)
is 3.5x slower than X25519 here (see docs/decisions.md).
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import nacl.bindings as sodium
from nacl.exceptions import RuntimeError as SodiumRuntimeError

from sealroom.errors import InvalidInput, ProtocolError

__all__ = [
    "ELEMENT_SIZE",
    "MAX_WORKERS",
    "SCALAR_SIZE",
    "GroupPool",
    "check_elements",
    "hash_to_group",
    "mul",
    "mul_many",
    "random_scalar",
]

ELEMENT_SIZE = 32
SCALAR_SIZE = 32
_P = 2**255 - 19
_Y_MASK = (1 << 255) - 1
MAX_WORKERS = 64
_MIN_PIECE = 512
_BLOCK = 256


def random_scalar() -> bytes:
    """A fresh secret exponent (X25519 clamps it; 251 bits of it are random)."""
    return os.urandom(SCALAR_SIZE)


def hash_to_group(elements: Sequence[bytes], *, domain: bytes) -> list[bytes]:
    """Hash each element to the group under ``domain`` (bind it to the session).

    The Edwards-to-Montgomery map ``u = (1 + y) / (1 - y)`` is done with one
    field inversion per block of elements (Montgomery's trick). Blocks are
    small so that no stretch of pure Python holds the GIL for long: another
    thread hashing or multiplying is never kept waiting more than a fraction
    of a millisecond.
    """
    prefix = len(domain).to_bytes(2, "big") + domain
    from_uniform, sha512 = sodium.crypto_core_ed25519_from_uniform, hashlib.sha512
    out: list[bytes] = []
    for start in range(0, len(elements), _BLOCK):
        ys = [
            int.from_bytes(from_uniform(sha512(prefix + e).digest()[:32]), "little") & _Y_MASK
            for e in elements[start : start + _BLOCK]
        ]
        out.extend(_edwards_y_to_u(ys))
    return out


def _edwards_y_to_u(ys: Sequence[int]) -> list[bytes]:
    if not ys:
        return []
    dens = [(1 - y) % _P for y in ys]
    # Prefix products, one inversion, then walk back (Montgomery's batch inversion).
    prefix = [0] * len(dens)
    acc = 1
    for i, d in enumerate(dens):
        if d == 0:  # y = 1 is the identity; Elligator 2 never returns it.
            raise ProtocolError("hash to group gave the identity")
        acc = acc * d % _P
        prefix[i] = acc
    inv = pow(acc, _P - 2, _P)
    out = [b""] * len(dens)
    for i in range(len(dens) - 1, -1, -1):
        inv_d = inv * prefix[i - 1] % _P if i else inv
        inv = inv * dens[i] % _P
        out[i] = ((1 + ys[i]) * inv_d % _P).to_bytes(32, "little")
    return out


def mul(scalar: bytes, element: bytes) -> bytes:
    """``scalar * element``; a low-order input (all-zero result) is a protocol error."""
    try:
        return sodium.crypto_scalarmult(scalar, element)
    except SodiumRuntimeError:
        raise ProtocolError("a group element has low order") from None


def mul_many(scalar: bytes, elements: Sequence[bytes]) -> list[bytes]:
    """``scalar * e`` for every ``e``; raises :class:`ProtocolError` on a low-order input."""
    smul = sodium.crypto_scalarmult
    try:
        return [smul(scalar, e) for e in elements]
    except SodiumRuntimeError:
        raise ProtocolError("a group element has low order") from None


def check_elements(elements: Sequence[bytes], *, what: str) -> None:
    """Reject encodings that are not canonical u-coordinates (peer input)."""
    for i, e in enumerate(elements):
        if len(e) != ELEMENT_SIZE or int.from_bytes(e, "little") >= _P:
            raise ProtocolError(f"{what}[{i}] is not a canonical group element")


# --- every core -------------------------------------------------------------------------


def _hash_mul(scalar: bytes, elements: Sequence[bytes], domain: bytes) -> list[bytes]:
    return mul_many(scalar, hash_to_group(elements, domain=domain))


class GroupPool:
    """Runs the batch operations on ``workers`` threads, so one party uses every core.

    Threads, not processes: PyNaCl calls libsodium through cffi, which releases
    the GIL for the duration of each call, and the Python left around the calls
    (SHA-512, the batched field inversion, the call wrappers) is a small part of
    the time: on two idle cores here two threads multiply 1.9x and hash 1.6x as
    fast as one. A process pool would re-import the caller's ``__main__`` in
    every ``spawn``ed worker (the CLI takes seconds) and ``fork`` is unsafe in a
    threaded caller; threads also keep the secret scalar inside this process.
    With ``workers=1``, or for batches under ``inline_below`` elements,
    everything runs in the calling thread. Results come back chunk by chunk, in
    order, while later chunks are still being computed, so a caller can send
    each chunk as soon as it is ready.
    """

    def __init__(self, workers: int = 1, *, inline_below: int = 1024) -> None:
        if type(workers) is not int or not 1 <= workers <= MAX_WORKERS:
            raise InvalidInput(f"workers must be an integer in 1..{MAX_WORKERS}")
        self.workers = workers
        self.inline_below = inline_below
        self._executor: ThreadPoolExecutor | None = None

    def __enter__(self) -> GroupPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def hash_mul_chunks(
        self, scalar: bytes, chunks: Sequence[Sequence[bytes]], *, domain: bytes
    ) -> Iterator[list[bytes]]:
        """``mul_many(scalar, hash_to_group(chunk, domain=domain))`` for each chunk, in order."""
        return self._run(_hash_mul, chunks, scalar, domain)

    def mul_chunks(self, scalar: bytes, chunks: Sequence[Sequence[bytes]]) -> Iterator[list[bytes]]:
        """``mul_many(scalar, chunk)`` for each chunk, in order."""
        return self._run(mul_many, chunks, scalar)

    def _run(
        self,
        fn: Callable[..., list[bytes]],
        chunks: Sequence[Sequence[bytes]],
        scalar: bytes,
        *rest: bytes,
    ) -> Iterator[list[bytes]]:
        if self.workers == 1 or sum(len(c) for c in chunks) < self.inline_below:
            return (fn(scalar, chunk, *rest) for chunk in chunks)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="group")
        # Several pieces per worker, so a core slowed down by a neighbour holds little up.
        step = max(_MIN_PIECE, -(-max(len(c) for c in chunks) // (2 * self.workers)))
        counts = [-(-len(c) // step) for c in chunks]
        pieces = [c[j : j + step] for c in chunks for j in range(0, len(c), step)]
        extra = [itertools.repeat(r, len(pieces)) for r in rest]
        results = self._executor.map(fn, itertools.repeat(scalar, len(pieces)), pieces, *extra)
        return _regroup(counts, results)


def _regroup(counts: Sequence[int], results: Iterator[list[bytes]]) -> Iterator[list[bytes]]:
    for count in counts:
        out: list[bytes] = []
        for _ in range(count):
            out.extend(next(results))
        yield out
