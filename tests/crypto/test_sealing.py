from __future__ import annotations

import hashlib
import io
import os
import struct
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.crypto import sealing
from sealroom.crypto.keys import Identity
from sealroom.crypto.sealing import (
    DEFAULT_CHUNK_SIZE,
    HEADER_SIZE,
    TAG_SIZE,
    SealContext,
    SealedHeader,
    open_sealed,
    open_stream,
    seal,
    seal_stream,
    sealed_size,
)
from sealroom.errors import DecryptionFailed, InvalidInput

C = 64  # small chunks keep exhaustive and property tests fast
# Suite 1 (X25519 only): legacy identities, as every identity was before suite 2.
BOB = Identity.generate(post_quantum=False)
CAROL = Identity.generate(post_quantum=False)
REQUEST = hashlib.sha256(b"request-1").digest()
CTX = SealContext(REQUEST, BOB.party_id, "input")


def _seal(
    data: bytes, *, chunk_size: int = C, key: bytes | None = None, via: str = "stream"
) -> bytes:
    if key is None:
        return seal(data, BOB.public, CTX, chunk_size=chunk_size)
    if via == "bytes":
        return sealing._seal_bytes(data, BOB.public, CTX, chunk_size=chunk_size, payload_key=key)
    return b"".join(
        sealing._seal_stream(data, BOB.public, CTX, chunk_size=chunk_size, payload_key=key)
    )


def _split(sealed: bytes, chunk_size: int = C) -> tuple[bytes, list[bytes]]:
    body = sealed[HEADER_SIZE:]
    step = chunk_size + TAG_SIZE
    return sealed[:HEADER_SIZE], [body[i : i + step] for i in range(0, len(body), step)]


def _fails(sealed: bytes | bytearray, match: str, *, context: SealContext = CTX) -> None:
    """Both opening paths (in memory and streaming) refuse, with the same explanation."""
    identity = BOB if context.recipient == BOB.party_id else CAROL
    with pytest.raises(DecryptionFailed, match=match):
        open_sealed(bytes(sealed), identity, context)
    with pytest.raises(DecryptionFailed, match=match):
        for _ in open_stream(io.BytesIO(bytes(sealed)), identity, context):
            pass


def _pieces(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    pos = 0
    for size in sizes:
        yield data[pos : pos + size]
        pos += size
    yield data[pos:]


# --- round trips -------------------------------------------------------------------------------

BOUNDARY_SIZES = [0, 1, C - 1, C, C + 1, 2 * C - 1, 2 * C, 2 * C + 1, 5 * C]


@settings(max_examples=150, deadline=None)
@given(
    data=st.one_of(
        st.sampled_from(BOUNDARY_SIZES).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
        st.binary(max_size=7 * C),
    ),
    in_sizes=st.lists(st.integers(0, 3 * C), max_size=8),
    out_sizes=st.lists(st.integers(0, 3 * C), max_size=8),
)
def test_round_trip_any_size_any_pieces(
    data: bytes, in_sizes: list[int], out_sizes: list[int]
) -> None:
    sealed = b"".join(seal_stream(_pieces(data, in_sizes), BOB.public, CTX, chunk_size=C))
    assert len(sealed) == sealed_size(len(data), C)
    _, chunks = _split(sealed)
    assert len(chunks) == max(1, -(-len(data) // C))
    assert open_sealed(sealed, BOB, CTX) == data
    opened = list(open_stream(_pieces(sealed, out_sizes), BOB, CTX))
    assert b"".join(opened) == data
    assert all(len(p) == C for p in opened[:-1])
    in_memory = seal(data, BOB.public, CTX, chunk_size=C)
    assert len(in_memory) == len(sealed)
    assert b"".join(open_stream(_pieces(in_memory, out_sizes), BOB, CTX)) == data


@pytest.mark.parametrize(
    "size",
    [
        0,
        1,
        DEFAULT_CHUNK_SIZE - 1,
        DEFAULT_CHUNK_SIZE,
        DEFAULT_CHUNK_SIZE + 1,
        3 * DEFAULT_CHUNK_SIZE,
    ],
)
def test_round_trip_default_chunk_boundaries(size: int) -> None:
    data = os.urandom(size)
    sealed = seal(data, BOB.public, CTX)
    assert len(sealed) == sealed_size(size)
    assert open_sealed(sealed, BOB, CTX) == data
    assert b"".join(open_stream(io.BytesIO(sealed), BOB, CTX)) == data


class _Trickle(io.RawIOBase):
    """A reader that returns at most a few bytes per read, like a slow socket."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._reads = 0

    def read(self, size: int = -1) -> bytes:
        self._reads += 1
        n = min(size, 1 + self._reads % 7)
        out, self._data = self._data[:n], self._data[n:]
        return bytes(out)


def test_readers_with_short_reads() -> None:
    data = os.urandom(5 * C + 3)
    sealed = b"".join(seal_stream(_Trickle(data), BOB.public, CTX, chunk_size=C))
    assert b"".join(open_stream(_Trickle(sealed), BOB, CTX)) == data


def test_producer_reusing_its_buffer() -> None:
    # A producer that refills one bytearray between yields must not corrupt the stream.
    data = os.urandom(4 * C + 10)

    def reuse() -> Iterator[bytearray]:
        buf = bytearray(C)
        for i in range(0, len(data), C):
            piece = data[i : i + C]
            buf[: len(piece)] = piece
            yield buf if len(piece) == C else bytearray(piece)

    sealed = b"".join(seal_stream(reuse(), BOB.public, CTX, chunk_size=C))
    assert open_sealed(sealed, BOB, CTX) == data


def test_fresh_key_every_time() -> None:
    a, b = _seal(b"same"), _seal(b"same")
    assert a != b
    assert a[:108] == b[:108]  # only the key wrap and the chunks differ


# --- known structure ---------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["stream", "bytes"])
def test_header_layout_and_stream_construction(via: str) -> None:
    key = bytes(range(32))
    data = os.urandom(2 * C + 5)
    sealed = _seal(data, key=key, via=via)
    header, chunks = _split(sealed)
    magic, version, suite, chunk_size = struct.unpack(">6sBBI", header[:12])
    assert (magic, version, suite, chunk_size) == (b"SRSEAL", 1, 1, C)
    assert header[12:44] == REQUEST
    assert header[44:76] == hashlib.sha256(BOB.party_id.encode()).digest()
    assert header[76:108] == hashlib.sha256(b"input").digest()
    assert HEADER_SIZE == 188

    context = (
        b"sealroom-seal-v1 context\x00"
        + REQUEST
        + len(BOB.party_id).to_bytes(2, "big")
        + BOB.party_id.encode()
        + b"\x00\x05input"
    )
    assert CTX.encode() == context
    # The payload key is HPKE-wrapped (enc || ciphertext) under info bound to the header.
    suite_ = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    info = b"sealroom-seal-v1 hpke info\x00" + header[:108] + context
    assert suite_.decrypt(header[108:188], BOB.x25519(), info) == key
    # Chunk i is AES-256-GCM with nonce = i (11 bytes BE) || final flag, aad = header digest.
    aad = hashlib.sha256(b"sealroom-seal-v1 stream aad\x00" + header + context).digest()
    aead = AESGCM(key)
    assert [len(c) for c in chunks] == [C + 16, C + 16, 5 + 16]
    opened = [
        aead.decrypt(i.to_bytes(11, "big") + bytes([i == len(chunks) - 1]), c, aad)
        for i, c in enumerate(chunks)
    ]
    assert b"".join(opened) == data


def test_empty_plaintext_is_one_empty_final_chunk() -> None:
    sealed = _seal(b"", key=b"\x07" * 32)
    header, chunks = _split(sealed)
    assert len(sealed) == HEADER_SIZE + TAG_SIZE
    assert chunks == [
        AESGCM(b"\x07" * 32).encrypt(
            b"\x00" * 11 + b"\x01", b"", sealing._aad(header, CTX.encode())
        )
    ]
    assert open_sealed(sealed, BOB, CTX) == b""


def test_exact_multiple_has_no_empty_trailing_chunk() -> None:
    _, chunks = _split(_seal(os.urandom(3 * C)))
    assert [len(c) for c in chunks] == [C + 16] * 3


def test_header_parses_without_a_key() -> None:
    header = SealedHeader.parse(_seal(b"x"))
    assert header.request_digest == REQUEST
    assert header.chunk_size == C
    header.check_context(CTX)
    assert "wrapped_key" not in repr(header)


# --- framing attacks ---------------------------------------------------------------------------


def _message(chunks: int = 4) -> tuple[bytes, bytes, list[bytes]]:
    data = os.urandom((chunks - 1) * C + C // 2)
    header, sealed_chunks = _split(_seal(data))
    return data, header, sealed_chunks


def test_missing_final_chunk() -> None:
    _, header, chunks = _message()
    _fails(header + b"".join(chunks[:-1]), "truncated: .*final chunk is missing")


def test_header_only() -> None:
    _, header, _ = _message()
    _fails(header, "ends after the header")


def test_cut_mid_chunk() -> None:
    _, header, chunks = _message()
    _fails(header + chunks[0] + chunks[1][:40], "truncated mid-chunk")
    _fails(header + chunks[0] + chunks[1][:10], "truncated mid-chunk")


def test_every_truncation_fails() -> None:
    _, header, chunks = _message(3)
    sealed = header + b"".join(chunks)
    for cut in range(len(sealed)):
        _fails(sealed[:cut], ".")


def test_reordered_chunks() -> None:
    _, header, chunks = _message()
    chunks[1], chunks[2] = chunks[2], chunks[1]
    _fails(header + b"".join(chunks), "reordered chunks: chunk 2 comes before chunk 1")


def test_final_chunk_moved_forward() -> None:
    header, chunks = _split(_seal(os.urandom(3 * C)))  # a full-size final chunk
    _fails(header + chunks[0] + chunks[2] + chunks[1], "reordered chunks: chunk 2 comes before")


def test_duplicated_chunk() -> None:
    _, header, chunks = _message()
    _fails(header + b"".join([*chunks[:2], chunks[1], *chunks[2:]]), "duplicated chunk")


def test_dropped_chunk() -> None:
    _, header, chunks = _message()
    _fails(header + b"".join([chunks[0], *chunks[2:]]), "dropped chunk: chunk 1 is missing")


def test_dropped_chunk_before_final() -> None:
    _, header, chunks = _message()
    _fails(header + b"".join([*chunks[:2], chunks[3]]), "dropped chunk: chunk 2 is missing")


def test_trailing_data_after_full_final_chunk() -> None:
    sealed = _seal(os.urandom(2 * C))
    _fails(sealed + b"\x00", "trailing data after the final chunk")
    _fails(sealed + os.urandom(5 * C), "trailing data after the final chunk")


def test_trailing_data_after_short_final_chunk() -> None:
    sealed = _seal(os.urandom(2 * C + 7))
    _fails(sealed + b"junk", r"trailing data after the final chunk \(4 bytes")


def test_final_chunk_appended_twice() -> None:
    _, header, chunks = _message()
    _fails(header + b"".join(chunks) + chunks[-1], "trailing data")


def test_empty_final_chunk_after_data_is_refused() -> None:
    # Only someone holding the payload key can build this; it must still not open.
    key = b"\x01" * 32
    header, chunks = _split(_seal(os.urandom(2 * C), key=key))
    aad = sealing._aad(header, CTX.encode())
    aead = AESGCM(key)
    plain_1 = aead.decrypt(sealing._nonce(1, True), chunks[1], aad)
    crafted = (
        header
        + chunks[0]
        + aead.encrypt(sealing._nonce(1, False), plain_1, aad)
        + aead.encrypt(sealing._nonce(2, True), b"", aad)
    )
    _fails(crafted, "empty final chunk")


def test_open_stream_yields_only_authenticated_chunks() -> None:
    data, header, chunks = _message(5)
    tampered = bytearray(chunks[2])
    tampered[3] ^= 1
    sealed = header + b"".join([*chunks[:2], bytes(tampered), *chunks[3:]])
    yielded: list[bytes] = []
    with pytest.raises(DecryptionFailed, match="chunk 2 does not authenticate"):
        yielded.extend(open_stream(sealed, BOB, CTX))
    assert b"".join(yielded) == data[: 2 * C]


def test_open_stream_reports_truncation_only_at_the_end() -> None:
    # Documented behaviour: earlier chunks are yielded; the caller discards them on error.
    data, header, chunks = _message(4)
    yielded: list[bytes] = []
    with pytest.raises(DecryptionFailed, match="final chunk is missing"):
        yielded.extend(open_stream(header + b"".join(chunks[:-1]), BOB, CTX))
    assert b"".join(yielded) == data[: 2 * C]


# --- keys, contexts, headers -------------------------------------------------------------------


def test_wrong_recipient() -> None:
    carol_ctx = SealContext(REQUEST, CAROL.party_id, "input")
    _fails(_seal(b"secret"), "sealed to a different recipient", context=carol_ctx)


def test_wrong_request() -> None:
    other = SealContext(hashlib.sha256(b"request-2").digest(), BOB.party_id, "input")
    _fails(_seal(b"secret"), "sealed for a different request", context=other)


def test_wrong_purpose() -> None:
    other = SealContext(REQUEST, BOB.party_id, "result")
    _fails(_seal(b"secret"), "sealed for a different purpose", context=other)


def test_wrong_recipient_key_with_forged_header() -> None:
    # Sealed to Carol's key but labelled for Bob: the header check passes, the unwrap cannot.
    carol_ctx = SealContext(REQUEST, CAROL.party_id, "input")
    sealed = bytearray(seal(b"secret", CAROL.public, carol_ctx, chunk_size=C))
    sealed[44:76] = hashlib.sha256(BOB.party_id.encode()).digest()
    _fails(sealed, "does not unwrap with this identity's key")


def test_identity_must_match_context() -> None:
    with pytest.raises(InvalidInput, match="recipient"):
        open_sealed(_seal(b"x"), CAROL, CTX)


def test_recipient_must_match_context() -> None:
    with pytest.raises(InvalidInput, match="recipient"):
        seal_stream(b"x", CAROL.public, CTX)  # raises at the call, before iteration


@pytest.mark.parametrize(
    ("offset", "value", "match"),
    [
        (0, b"X", "bad magic"),
        (6, b"\x02", "unsupported sealed-data version 2"),
        (7, b"\x09", "unknown sealed-data suite 9"),
        (8, b"\x00\x00\x00\x00", "bad header: chunk size 0"),
        (8, b"\x00\x00\x00\x60", "bad header: chunk size 96"),
        (8, b"\x02\x00\x00\x00", "bad header: chunk size"),
        (8, b"\x00\x00\x00\x80", "does not unwrap"),  # valid size, but bound into the key wrap
        (120, b"\xff", "does not unwrap"),  # HPKE enc
        (170, b"\xff", "does not unwrap"),  # wrapped payload key
    ],
)
def test_header_tampering(offset: int, value: bytes, match: str) -> None:
    sealed = bytearray(_seal(os.urandom(3 * C)))
    sealed[offset : offset + len(value)] = value
    _fails(sealed, match)


def test_truncated_header() -> None:
    sealed = _seal(b"data")
    _fails(b"", "no sealed data at all")
    for cut in range(1, HEADER_SIZE):
        _fails(sealed[:cut], "truncated header")


def test_flipped_bit_anywhere() -> None:
    sealed = _seal(os.urandom(2 * C + 9))
    for pos in range(len(sealed)):
        flipped = bytearray(sealed)
        flipped[pos] ^= 1 << (pos % 8)
        _fails(flipped, ".")


def test_flipped_bit_in_a_middle_chunk_is_named() -> None:
    _, header, chunks = _message()
    flipped = bytearray(chunks[1])
    flipped[-1] ^= 0x80
    _fails(header + chunks[0] + bytes(flipped) + b"".join(chunks[2:]), "chunk 1 .*modified")


def test_flipped_bit_in_the_final_chunk() -> None:
    _, header, chunks = _message()
    flipped = bytearray(chunks[-1])
    flipped[0] ^= 1
    _fails(header + b"".join(chunks[:-1]) + bytes(flipped), "chunk 3 does not authenticate")


# --- argument validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("digest", "recipient", "purpose"),
    [
        (b"short", BOB.party_id, "input"),
        (REQUEST, "sr1notaparty", "input"),
        (REQUEST, BOB.party_id, ""),
        (REQUEST, BOB.party_id, "Input"),
        (REQUEST, BOB.party_id, "has space"),
        (REQUEST, BOB.party_id, "x" * 65),
    ],
    ids=["short digest", "not a party", "empty purpose", "capital", "space", "long purpose"],
)
def test_context_validation(digest: bytes, recipient: str, purpose: str) -> None:
    with pytest.raises(InvalidInput):
        SealContext(digest, recipient, purpose)  # type: ignore[arg-type]


@pytest.mark.parametrize("chunk_size", [0, 32, 100, 1 << 25, True])
def test_chunk_size_validation(chunk_size: int) -> None:
    with pytest.raises(InvalidInput, match="chunk size"):
        seal(b"x", BOB.public, CTX, chunk_size=chunk_size)


@pytest.mark.parametrize("source", ["text", 42, ["text"]])
def test_source_validation(source: object) -> None:
    with pytest.raises(InvalidInput):
        b"".join(seal_stream(source, BOB.public, CTX))  # type: ignore[arg-type]
