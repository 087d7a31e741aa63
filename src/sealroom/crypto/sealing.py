"""Sealing data to a party: HPKE (RFC 9180) wraps a fresh key, a chunked AEAD stream carries the data.

The stream is the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár
2015) as used by age: chunk ``i`` is AES-256-GCM under the payload key with
nonce ``i`` (11 bytes, big-endian) ``||`` a final-chunk flag byte, so chunks
cannot be reordered, duplicated or dropped, and a stream cut at a chunk
boundary is detected because its last chunk is not flagged final.

A :class:`SealContext` (request digest, recipient party id, purpose) is bound
twice: into the HPKE ``info`` (the payload key only unwraps under the same
context and header) and into every chunk's associated data, which is a
digest of the header and the context. A ciphertext therefore cannot be moved
to another job, recipient or purpose.

Wire format, version 1 (all integers big-endian)::

    offset  size  field
         0     6  magic "SRSEAL"
         6     1  version = 1
         7     1  suite:
                  1 = HPKE(DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM)
                      key wrap + AES-256-GCM STREAM (classical; opens, no longer
                      made for a recipient that has a post-quantum key)
                  2 = HPKE(MLKEM768-X25519 (X-Wing, KEM id 0x647A), HKDF-SHA256,
                      AES-256-GCM) key wrap + AES-256-GCM STREAM (hybrid
                      post-quantum: secret if either ML-KEM-768 or X25519 holds)
         8     4  chunk size C: plaintext bytes per chunk, a power of two
                  in [2^6, 2^24]
        12    32  request digest (from the context)
        44    32  SHA-256(recipient party id, ASCII)
        76    32  SHA-256(purpose, ASCII)
       108     E  HPKE enc: suite 1, E = 32 (ephemeral X25519 public key);
                  suite 2, E = 1120 (ML-KEM-768 ciphertext 1088 || X25519
                  ephemeral 32, as X-Wing encodes it)
     108+E    48  HPKE ciphertext of the 32-byte payload key
     156+E        chunks: AES-256-GCM(payload key, nonce_i, plaintext_i, aad)
                  = len(plaintext_i) + 16 bytes each

    H        = 156 + E, the header size (188 for suite 1, 1276 for suite 2)
    info     = "sealroom-seal-v1 hpke info\\0" || header[0:108] || context encoding
    aad      = SHA-256("sealroom-seal-v1 stream aad\\0" || header[0:H] || context encoding)
    nonce_i  = i (11 bytes) || 0x01 if chunk i is the final chunk else 0x00
    context encoding = "sealroom-seal-v1 context\\0" || request digest (32)
                       || len16(recipient) || recipient || len16(purpose) || purpose

The suite byte is inside ``header[0:108]``, so it is bound into the HPKE
key schedule and every chunk: rewriting it (to make a suite-2 seal parse as
suite 1) breaks the key unwrap. Both KEM ciphertexts are in the chunk aad,
and X-Wing's combiner hashes the X25519 ciphertext and key with both shared
secrets, so splicing halves of two seals fails too. The recipient is named by
its party id, which hashes its X-Wing key; a recipient that has one refuses
suite-1 seals by default (``allow_classical``), so a sender tricked into the
classical suite is caught by the recipient, not only trusted to behave.

Every chunk but the last carries exactly C plaintext bytes; the final chunk
carries 1..C bytes, or 0 bytes only when the whole plaintext is empty, so a
plaintext has exactly one sealed encoding per key. The context fields sit in
the header in the clear (as digests): they are public routing data, and they
let the opener say *why* a ciphertext does not fit instead of only "no".

Sealing gives confidentiality and integrity to the recipient; it does not say
who sealed (HPKE base mode is anonymous). Origin comes from the signed
statements: the data must match the owner's signed commitment.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import re
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealroom.crypto.keys import PARTY_ID_PREFIX, Identity, PartyId, PublicIdentity
from sealroom.errors import DecryptionFailed, InvalidInput

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "HEADER_SIZE",
    "HEADER_SIZE_XWING",
    "MAGIC",
    "MAX_CHUNK_SIZE",
    "MIN_CHUNK_SIZE",
    "SUITE_X25519_AES256GCM",
    "SUITE_XWING_AES256GCM",
    "TAG_SIZE",
    "VERSION",
    "BytesLike",
    "Readable",
    "SealContext",
    "SealedHeader",
    "Source",
    "header_size",
    "open_sealed",
    "open_stream",
    "seal",
    "seal_stream",
    "sealed_size",
    "suite_for",
]

MAGIC = b"SRSEAL"
VERSION = 1
SUITE_X25519_AES256GCM = 1
SUITE_XWING_AES256GCM = 2
TAG_SIZE = 16
PAYLOAD_KEY_SIZE = 32
DIGEST_SIZE = 32
MIN_CHUNK_SIZE = 1 << 6
MAX_CHUNK_SIZE = 1 << 24
# 64 KiB, as in age. Streaming throughput is flat from 64 KiB to 1 MiB
# (bench/bench_seal.py: within ~10%, the run-to-run noise here), so the
# smallest wins: less memory per open stream, cheaper error-path diagnosis.
DEFAULT_CHUNK_SIZE = 1 << 16

_PREFIX = struct.Struct(">6sBBI32s32s32s")
_ENC_SIZES = {SUITE_X25519_AES256GCM: 32, SUITE_XWING_AES256GCM: 1120}
_WRAPPED_SIZE = PAYLOAD_KEY_SIZE + TAG_SIZE
HEADER_SIZE = _PREFIX.size + _ENC_SIZES[SUITE_X25519_AES256GCM] + _WRAPPED_SIZE
HEADER_SIZE_XWING = _PREFIX.size + _ENC_SIZES[SUITE_XWING_AES256GCM] + _WRAPPED_SIZE
_HPKE = {
    SUITE_X25519_AES256GCM: hpke.Suite(
        hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM
    ),
    SUITE_XWING_AES256GCM: hpke.Suite(
        hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM
    ),
}
_SUITE_NAMES = {
    SUITE_X25519_AES256GCM: "suite 1 (X25519 only)",
    SUITE_XWING_AES256GCM: "suite 2 (hybrid ML-KEM-768 + X25519)",
}
_CONTEXT_DOMAIN = b"sealroom-seal-v1 context\x00"
_INFO_DOMAIN = b"sealroom-seal-v1 hpke info\x00"
_AAD_DOMAIN = b"sealroom-seal-v1 stream aad\x00"
_NONCE_COUNTER_SIZE = 11
_FINAL = b"\x01"
_NOT_FINAL = b"\x00"
# How far the error path searches to name what went wrong (which chunk sits
# where, how much trailing data). Bounded so a hostile stream cannot make
# the diagnosis expensive; beyond it the message is merely less specific.
_DIAGNOSE_WINDOW = 256
_DIAGNOSE_TRAILING = 4096

_PURPOSE_RE = re.compile(r"[a-z0-9][a-z0-9._:/-]{0,63}")
_PARTY_ID_RE = re.compile(re.escape(PARTY_ID_PREFIX) + r"[a-z2-7]{52}")  # base32 of SHA-256

BytesLike = bytes | bytearray | memoryview


class Readable(Protocol):
    """A binary file-like object: ``read(n)`` returns at most ``n`` bytes, ``b""`` at EOF."""

    def read(self, size: int, /) -> bytes: ...


Source = Readable | BytesLike | Iterable[BytesLike]


@dataclass(frozen=True, slots=True)
class SealContext:
    """What a ciphertext is for: one job (request digest), one recipient, one purpose.

    ``purpose`` is a short lowercase label such as ``"input"`` or
    ``"result"``; it keeps, say, an input and a result of the same job for the
    same party from being swapped.
    """

    request_digest: bytes
    recipient: PartyId
    purpose: str

    def __post_init__(self) -> None:
        if not isinstance(self.request_digest, bytes) or len(self.request_digest) != DIGEST_SIZE:
            raise InvalidInput(f"request_digest must be {DIGEST_SIZE} bytes")
        if not isinstance(self.recipient, str) or not _PARTY_ID_RE.fullmatch(self.recipient):
            raise InvalidInput("recipient must be a party id (sr1...)")
        if not isinstance(self.purpose, str) or not _PURPOSE_RE.fullmatch(self.purpose):
            raise InvalidInput(
                "purpose must be 1-64 characters of a-z 0-9 . _ : / -, starting with a-z or 0-9"
            )

    def encode(self) -> bytes:
        recipient = self.recipient.encode("ascii")
        purpose = self.purpose.encode("ascii")
        return b"".join(
            (
                _CONTEXT_DOMAIN,
                self.request_digest,
                len(recipient).to_bytes(2, "big"),
                recipient,
                len(purpose).to_bytes(2, "big"),
                purpose,
            )
        )

    def _digests(self) -> tuple[bytes, bytes, bytes]:
        return (
            self.request_digest,
            hashlib.sha256(self.recipient.encode("ascii")).digest(),
            hashlib.sha256(self.purpose.encode("ascii")).digest(),
        )


@dataclass(frozen=True, slots=True)
class SealedHeader:
    """The parsed header of a sealed stream.

    Parsing needs no key, so a coordinator can check that an upload names
    the right request before storing it; only the recipient can open it.
    """

    version: int
    suite: int
    chunk_size: int
    request_digest: bytes
    recipient_digest: bytes
    purpose_digest: bytes
    enc: bytes = field(repr=False)
    wrapped_key: bytes = field(repr=False)
    raw: bytes = field(repr=False)

    @classmethod
    def parse(cls, data: BytesLike) -> SealedHeader:
        """Parse the header at the start of ``data`` (its size depends on the suite).

        Raises :class:`DecryptionFailed`.
        """
        view = memoryview(data)
        if view.ndim != 1 or view.format != "B":
            view = view.cast("B")
        size = _header_size_of(view)
        raw = view[:size].tobytes()
        _, version, suite, chunk_size, request, recipient, purpose = _PREFIX.unpack_from(raw)
        enc_size = _ENC_SIZES[suite]
        if not _valid_chunk_size(chunk_size):
            raise DecryptionFailed(
                f"bad header: chunk size {chunk_size} is not a power of two "
                f"in [{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}]"
            )
        return cls(
            version=version,
            suite=suite,
            chunk_size=chunk_size,
            request_digest=request,
            recipient_digest=recipient,
            purpose_digest=purpose,
            enc=raw[_PREFIX.size : _PREFIX.size + enc_size],
            wrapped_key=raw[_PREFIX.size + enc_size :],
            raw=raw,
        )

    def check_context(self, context: SealContext) -> None:
        """Raise :class:`DecryptionFailed` naming the field if the header is for another context."""
        request, recipient, purpose = context._digests()
        if not hmac.compare_digest(self.request_digest, request):
            raise DecryptionFailed(
                f"sealed for a different request: the header names request "
                f"{self.request_digest.hex()[:16]}..., expected {request.hex()[:16]}..."
            )
        if not hmac.compare_digest(self.recipient_digest, recipient):
            raise DecryptionFailed(f"sealed to a different recipient, not {context.recipient}")
        if not hmac.compare_digest(self.purpose_digest, purpose):
            raise DecryptionFailed(f"sealed for a different purpose, not {context.purpose!r}")


def header_size(suite: int) -> int:
    """The header size of ``suite``: 188 bytes for suite 1, 1276 for suite 2."""
    if suite not in _ENC_SIZES:
        raise InvalidInput(f"unknown sealed-data suite {suite}")
    return _PREFIX.size + _ENC_SIZES[suite] + _WRAPPED_SIZE


def suite_for(recipient: PublicIdentity) -> int:
    """The suite a seal to ``recipient`` uses: hybrid whenever it has a post-quantum key."""
    return SUITE_XWING_AES256GCM if recipient.post_quantum else SUITE_X25519_AES256GCM


def _header_size_of(view: memoryview, *, whole: bool = True) -> int:
    """Check magic, version and suite of a (possibly short) header; return its full size.

    With ``whole``, also require that ``view`` holds all of it.
    """
    if len(view) >= len(MAGIC) and view[: len(MAGIC)] != MAGIC:
        raise DecryptionFailed("not sealroom sealed data: bad magic")
    if len(view) >= len(MAGIC) + 1 and view[len(MAGIC)] != VERSION:
        raise DecryptionFailed(
            f"unsupported sealed-data version {view[len(MAGIC)]} "
            f"(this sealroom opens version {VERSION})"
        )
    if len(view) < _PREFIX.size:
        raise DecryptionFailed(
            f"truncated header: got {len(view)} of at least {_PREFIX.size} bytes"
            if len(view)
            else "truncated: no sealed data at all"
        )
    suite = view[len(MAGIC) + 1]
    if suite not in _ENC_SIZES:
        raise DecryptionFailed(f"unknown sealed-data suite {suite}")
    size = header_size(suite)
    if whole and len(view) < size:
        raise DecryptionFailed(
            f"truncated header: got {len(view)} of {size} bytes ({_SUITE_NAMES[suite]})"
        )
    return size


def sealed_size(
    plaintext_length: int,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    *,
    suite: int = SUITE_X25519_AES256GCM,
) -> int:
    """The exact size of the sealed encoding of ``plaintext_length`` bytes under ``suite``."""
    if plaintext_length < 0:
        raise InvalidInput("plaintext length must not be negative")
    _check_chunk_size(chunk_size)
    chunks = max(1, -(-plaintext_length // chunk_size))
    return header_size(suite) + plaintext_length + chunks * TAG_SIZE


def seal(
    data: BytesLike,
    recipient: PublicIdentity,
    context: SealContext,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> bytes:
    """Seal ``data`` to ``recipient`` for ``context``, all in memory.

    For datasets prefer :func:`seal_stream`: it never holds more than two
    chunks, and by staying in cache it is several times faster than writing
    a whole new buffer (see ``bench/bench_seal.py``).
    """
    return _seal_bytes(
        data, recipient, context, chunk_size=chunk_size, payload_key=os.urandom(PAYLOAD_KEY_SIZE)
    )


def seal_stream(
    source: Source,
    recipient: PublicIdentity,
    context: SealContext,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[bytes]:
    """Seal a stream: yields the header, then one sealed chunk at a time.

    ``source`` is a binary file-like object, a bytes-like object, or an
    iterable of bytes-like pieces of any sizes. Memory stays at about two
    chunks. The key wrap happens (and bad arguments raise) at the call, not
    at the first ``next``.
    """
    return _seal_stream(
        source,
        recipient,
        context,
        chunk_size=chunk_size,
        payload_key=os.urandom(PAYLOAD_KEY_SIZE),
    )


def open_sealed(
    data: BytesLike,
    identity: Identity,
    context: SealContext,
    *,
    allow_classical: bool | None = None,
) -> bytes:
    """Open sealed bytes in memory; returns the plaintext only if all of it authenticates.

    ``allow_classical`` decides whether a suite-1 (X25519-only) seal opens.
    By default it does only for an identity without a post-quantum key: a
    party that has one was never sent suite 1 by an honest sender, so such a
    seal is a downgrade (a sender given the party's keys without the
    post-quantum one). Pass ``True`` to open old suite-1 data on purpose.
    """
    view = _byte_view(data)
    reader, opener = _start_open(view, identity, context, allow_classical=allow_classical)
    # Exact for any input: every chunk but the last is full, and a last chunk
    # shorter than a tag raises before anything is written for it.
    full, rest = divmod(len(view) - opener.header_size, opener.sealed)
    out = _allocate(full * (opener.sealed - TAG_SIZE) + max(0, rest - TAG_SIZE))
    with out.getbuffer() as dest:
        pos = 0
        for index, ct, final in _sealed_frames(reader, opener.sealed):
            end = pos + len(ct) - TAG_SIZE
            opener.decrypt_into(index, ct, final, dest[pos:end])
            pos = end
    return out.getvalue()


def open_stream(
    source: Source,
    identity: Identity,
    context: SealContext,
    *,
    allow_classical: bool | None = None,
) -> Iterator[bytes]:
    """Open a sealed stream, yielding plaintext one authenticated chunk at a time.

    Every yielded chunk has been authenticated in its position, but a
    stream is only complete once the final chunk has been: if the stream
    turns out truncated, reordered or tampered further on, this raises
    :class:`DecryptionFailed` *after* earlier chunks were yielded. A caller
    that writes plaintext out as it goes must treat it as provisional and
    discard it on error (e.g. write to a temporary file and rename it into
    place only after the iterator is exhausted). :func:`open_sealed` does
    that buffering in memory.

    The header is read, checked against ``context`` and the payload key
    unwrapped at the call, so a wrong recipient or context raises here.
    ``allow_classical`` is as for :func:`open_sealed`.
    """
    reader, opener = _start_open(source, identity, context, allow_classical=allow_classical)
    return (
        opener.decrypt(index, ct, final)
        for index, ct, final in _sealed_frames(reader, opener.sealed)
    )


# --- internals -----------------------------------------------------------------------------


def _valid_chunk_size(size: int) -> bool:
    return MIN_CHUNK_SIZE <= size <= MAX_CHUNK_SIZE and size & (size - 1) == 0


def _check_chunk_size(size: int) -> None:
    if type(size) is not int or not _valid_chunk_size(size):
        raise InvalidInput(
            f"chunk size must be a power of two in [{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}]"
        )


def _nonce(counter: int, final: bool) -> bytes:
    return counter.to_bytes(_NONCE_COUNTER_SIZE, "big") + (_FINAL if final else _NOT_FINAL)


def _aad(header: bytes, encoded_context: bytes) -> bytes:
    return hashlib.sha256(_AAD_DOMAIN + header + encoded_context).digest()


def _byte_view(data: BytesLike) -> memoryview:
    try:
        view = memoryview(data)
    except TypeError:
        raise InvalidInput(f"expected bytes, got {type(data).__name__}") from None
    return view if view.ndim == 1 and view.format == "B" else view.cast("B")


def _allocate(size: int) -> io.BytesIO:
    """A ``size``-byte buffer to fill through ``getbuffer()`` and hand over by ``getvalue()``.

    CPython's BytesIO returns its internal bytes object from ``getvalue()``
    without copying once no view is left, so the convenience functions write
    their output exactly once instead of joining chunks (which costs a second
    fresh buffer and a copy). Elsewhere ``getvalue()`` copies: slower, same result.
    """
    out = io.BytesIO()
    if size:
        out.seek(size - 1)
        out.write(b"\x00")
    return out


def _start_seal(
    recipient: PublicIdentity,
    context: SealContext,
    chunk_size: int,
    payload_key: bytes,
    suite: int | None = None,
) -> tuple[bytes, AESGCM, bytes]:
    """Validate, wrap the payload key: (header, stream cipher, chunk aad)."""
    if not isinstance(recipient, PublicIdentity):
        raise InvalidInput("recipient must be a PublicIdentity")
    if recipient.party_id != context.recipient:
        raise InvalidInput(
            f"the context's recipient is {context.recipient}, but the key belongs to "
            f"{recipient.party_id}"
        )
    _check_chunk_size(chunk_size)
    if len(payload_key) != PAYLOAD_KEY_SIZE:
        raise InvalidInput(f"payload key must be {PAYLOAD_KEY_SIZE} bytes")
    suite = suite_for(recipient) if suite is None else suite
    if suite not in _HPKE:
        raise InvalidInput(f"unknown sealed-data suite {suite}")
    key: X25519PublicKey | hpke.MLKEM768X25519PublicKey = (
        recipient.hybrid_kem() if suite == SUITE_XWING_AES256GCM else recipient.x25519()
    )
    encoded_context = context.encode()
    prefix = _PREFIX.pack(MAGIC, VERSION, suite, chunk_size, *context._digests())
    info = _INFO_DOMAIN + prefix + encoded_context
    header = prefix + _HPKE[suite].encrypt(payload_key, key, info)
    return header, AESGCM(payload_key), _aad(header, encoded_context)


def _seal_stream(
    source: Source,
    recipient: PublicIdentity,
    context: SealContext,
    *,
    chunk_size: int,
    payload_key: bytes,
    suite: int | None = None,
) -> Iterator[bytes]:
    """:func:`seal_stream` with an explicit payload key (and suite), for known-structure tests."""
    header, aead, aad = _start_seal(recipient, context, chunk_size, payload_key, suite)
    frames = _plain_frames(_Rechunker(_fetcher(source)), chunk_size)
    return _seal_chunks(header, aead, aad, frames)


def _seal_chunks(
    header: bytes, aead: AESGCM, aad: bytes, frames: Iterator[tuple[int, memoryview, bool]]
) -> Iterator[bytes]:
    yield header
    for counter, chunk, final in frames:
        yield aead.encrypt(_nonce(counter, final), chunk, aad)


def _seal_bytes(
    data: BytesLike,
    recipient: PublicIdentity,
    context: SealContext,
    *,
    chunk_size: int,
    payload_key: bytes,
    suite: int | None = None,
) -> bytes:
    """:func:`seal` with an explicit payload key (and suite: tests make downgraded seals)."""
    view = _byte_view(data)
    header, aead, aad = _start_seal(recipient, context, chunk_size, payload_key, suite)
    out = _allocate(len(header) - HEADER_SIZE + sealed_size(len(view), chunk_size))
    with out.getbuffer() as dest:
        dest[: len(header)] = header
        pos = len(header)
        for counter, chunk, final in _plain_frames(_Rechunker(_fetcher(view)), chunk_size):
            end = pos + len(chunk) + TAG_SIZE
            aead.encrypt_into(_nonce(counter, final), chunk, aad, dest[pos:end])
            pos = end
    return out.getvalue()


def _plain_frames(reader: _Rechunker, chunk_size: int) -> Iterator[tuple[int, memoryview, bool]]:
    """(counter, plaintext chunk, is final) for sealing.

    A full chunk is only non-final if more input follows; looking ahead
    keeps the encoding canonical (no empty final chunk after data).
    """
    counter = 0
    chunk = reader.read(chunk_size)
    while len(chunk) == chunk_size and not reader.at_eof():
        yield counter, chunk, False
        counter += 1
        chunk = reader.read(chunk_size)
    yield counter, chunk, True


def _sealed_frames(reader: _Rechunker, sealed: int) -> Iterator[tuple[int, memoryview, bool]]:
    """(index, sealed chunk, is final) for opening; the last chunk is whatever ends the input."""
    index = 0
    while True:
        ct = reader.read(sealed)
        final = reader.at_eof()
        if len(ct) < TAG_SIZE:
            if index == 0 and not ct:
                raise DecryptionFailed("truncated: the stream ends after the header, no chunks")
            raise DecryptionFailed(
                f"truncated mid-chunk: chunk {index} has {len(ct)} bytes, "
                f"less than its {TAG_SIZE}-byte tag"
            )
        yield index, ct, final
        if final:
            return
        index += 1


def _read_header(reader: _Rechunker) -> SealedHeader:
    prefix = reader.read(_PREFIX.size)
    if len(prefix) < _PREFIX.size:
        return SealedHeader.parse(prefix)  # raises, naming what is wrong or missing
    rest = reader.read(_header_size_of(prefix, whole=False) - len(prefix))
    return SealedHeader.parse(bytes(prefix) + bytes(rest))


def _start_open(
    source: Source,
    identity: Identity,
    context: SealContext,
    *,
    allow_classical: bool | None,
) -> tuple[_Rechunker, _ChunkOpener]:
    """Read and check the header (context, then suite against policy), unwrap the payload key."""
    if identity.party_id != context.recipient:
        raise InvalidInput(
            f"this identity is {identity.party_id}, but the context's recipient is "
            f"{context.recipient}"
        )
    reader = _Rechunker(_fetcher(source))
    header = _read_header(reader)
    header.check_context(context)
    key: X25519PrivateKey | hpke.MLKEM768X25519PrivateKey
    if header.suite == SUITE_XWING_AES256GCM:
        if not identity.public.post_quantum:
            raise DecryptionFailed(
                "sealed with suite 2 (hybrid post-quantum), but this identity has no "
                "post-quantum key: it was sealed to a different key for this party"
            )
        key = identity.hybrid_kem()
    else:
        if allow_classical is None:
            allow_classical = not identity.public.post_quantum
        if not allow_classical:
            raise DecryptionFailed(
                "refusing a suite 1 (X25519-only) seal: this recipient has a post-quantum key "
                "and requires suite 2 (hybrid ML-KEM-768 + X25519); the sender was given "
                "its keys without the post-quantum one, or the seal was downgraded"
            )
        key = identity.x25519()
    encoded_context = context.encode()
    info = _INFO_DOMAIN + header.raw[: _PREFIX.size] + encoded_context
    try:
        payload_key = _HPKE[header.suite].decrypt(header.enc + header.wrapped_key, key, info)
    except (InvalidTag, ValueError):
        raise DecryptionFailed(
            "the payload key does not unwrap with this identity's key: sealed to a different "
            "key for this party, or the header was modified"
        ) from None
    if len(payload_key) != PAYLOAD_KEY_SIZE:
        raise DecryptionFailed("bad header: the wrapped payload key has the wrong length")
    opener = _ChunkOpener(
        AESGCM(payload_key),
        _aad(header.raw, encoded_context),
        header.chunk_size,
        reader,
        header_size=len(header.raw),
    )
    return reader, opener


class _ChunkOpener:
    """Authenticates one sealed chunk in its position, or explains why it does not."""

    __slots__ = ("aad", "aead", "header_size", "reader", "sealed")

    def __init__(
        self, aead: AESGCM, aad: bytes, chunk_size: int, reader: _Rechunker, *, header_size: int
    ) -> None:
        self.aead = aead
        self.aad = aad
        self.sealed = chunk_size + TAG_SIZE
        self.reader = reader
        self.header_size = header_size

    def decrypt(self, index: int, ct: memoryview, final: bool) -> bytes:
        try:
            plaintext = self.aead.decrypt(_nonce(index, final), ct, self.aad)
        except InvalidTag:
            raise self._failure(index, ct, final) from None
        self._check_canonical(index, ct, final)
        return plaintext

    def decrypt_into(self, index: int, ct: memoryview, final: bool, dest: memoryview) -> None:
        try:
            self.aead.decrypt_into(_nonce(index, final), ct, self.aad, dest)
        except InvalidTag:
            dest[:] = bytes(len(dest))  # decrypt_into leaves unauthenticated plaintext behind
            raise self._failure(index, ct, final) from None
        self._check_canonical(index, ct, final)

    @staticmethod
    def _check_canonical(index: int, ct: memoryview, final: bool) -> None:
        if final and index and len(ct) == TAG_SIZE:
            raise DecryptionFailed(f"non-canonical stream: empty final chunk {index} after data")

    def _failure(self, index: int, ct: memoryview, final: bool) -> DecryptionFailed:
        return _diagnose(self.aead, self.aad, self.sealed, index, ct, final, self.reader)


def _diagnose(
    aead: AESGCM,
    aad: bytes,
    sealed: int,
    index: int,
    ct: memoryview,
    final: bool,
    reader: _Rechunker,
) -> DecryptionFailed:
    """Name what went wrong with chunk ``index``. Only runs once opening has failed.

    Trial decryptions under the same key reveal nothing an attacker did not
    already choose (they built the stream); their plaintext is discarded.
    """

    def opens(counter: int, is_final: bool, data: BytesLike = ct) -> bool:
        try:
            aead.decrypt(_nonce(counter, is_final), data, aad)
        except InvalidTag:
            return False
        return True

    if final and len(ct) == sealed and opens(index, False):
        return DecryptionFailed(
            f"truncated: the stream ends after chunk {index}, its final chunk is missing"
        )
    if not final and opens(index, True):
        return DecryptionFailed(f"trailing data after the final chunk (chunk {index})")
    for other in range(max(0, index - _DIAGNOSE_WINDOW), index + _DIAGNOSE_WINDOW + 1):
        if other == index or not (opens(other, False) or opens(other, True)):
            continue
        if other < index:
            return DecryptionFailed(f"duplicated chunk: position {index} holds chunk {other}")
        if not final:
            following = reader.read(sealed)
            if opens(index, False, following) or opens(index, True, following):
                return DecryptionFailed(
                    f"reordered chunks: chunk {other} comes before chunk {index}"
                )
        return DecryptionFailed(
            f"dropped chunk: chunk {index} is missing, chunk {other} is in its place"
        )
    if final:
        for cut in range(1, min(len(ct) - TAG_SIZE, _DIAGNOSE_TRAILING) + 1):
            if opens(index, True, ct[:-cut]):
                return DecryptionFailed(
                    f"trailing data after the final chunk ({cut} bytes after chunk {index})"
                )
        return DecryptionFailed(
            f"chunk {index} does not authenticate as the final chunk: the stream was "
            "truncated mid-chunk, or the chunk was modified"
        )
    return DecryptionFailed(
        f"chunk {index} does not authenticate: it was modified (or the stream is followed "
        "by trailing data)"
    )


def _fetcher(source: Source) -> Callable[[int], BytesLike | None]:
    """Adapt any accepted source to ``fetch(size_hint) -> piece or None at the end``."""
    if isinstance(source, str):
        raise InvalidInput("expected bytes or a binary stream, got str")
    read = getattr(source, "read", None)
    if callable(read):

        def fetch_read(hint: int) -> BytesLike | None:
            piece = read(hint)
            return piece if piece else None

        return fetch_read
    try:
        single = memoryview(source)  # type: ignore[arg-type]
    except TypeError:
        pass
    else:
        pieces: Iterator[BytesLike] = iter((single,))
        return lambda _hint: next(pieces, None)
    try:
        iterator = iter(cast(Iterable[BytesLike], source))
    except TypeError:
        raise InvalidInput(
            f"expected bytes, a binary stream or an iterable of bytes, got {type(source).__name__}"
        ) from None
    return lambda _hint: next(iterator, None)


class _Rechunker:
    """Exact-size reads over pieces of any size.

    A read that falls inside one piece is a zero-copy slice of it; only reads
    that straddle pieces are assembled by copying. Writable pieces are copied
    on arrival, because the producer may reuse its buffer while we still
    hold a slice (we look one piece ahead).
    """

    __slots__ = ("_current", "_done", "_fetch", "_hint")

    def __init__(self, fetch: Callable[[int], BytesLike | None]) -> None:
        self._fetch = fetch
        self._current = memoryview(b"")
        self._done = False
        self._hint = 1 << 16

    def _fill(self) -> bool:
        while not self._current:
            if self._done:
                return False
            piece = self._fetch(self._hint)
            if piece is None:
                self._done = True
                return False
            try:
                view = memoryview(piece)
            except TypeError:
                raise InvalidInput(
                    f"the source yielded {type(piece).__name__}, not bytes"
                ) from None
            if view.ndim != 1 or view.format != "B":
                view = view.cast("B")
            if not view.readonly:
                view = memoryview(view.tobytes())
            self._current = view
        return True

    def read(self, size: int) -> memoryview:
        """Exactly ``size`` bytes, or fewer only at the end of the input."""
        self._hint = size
        if not self._fill():
            return memoryview(b"")
        if len(self._current) >= size:
            out = self._current[:size]
            self._current = self._current[size:]
            return out
        buffer = bytearray()
        while len(buffer) < size and self._fill():
            take = min(size - len(buffer), len(self._current))
            buffer += self._current[:take]
            self._current = self._current[take:]
        return memoryview(buffer)

    def at_eof(self) -> bool:
        return not self._fill()
