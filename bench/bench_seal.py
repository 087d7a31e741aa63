"""Seal + unseal throughput against one AES-256-GCM pass over the same bytes.

    python -m bench.bench_seal [--mib 256]

The baseline is a single ``AESGCM.encrypt`` over the whole buffer. Sealing
and opening are two AEAD passes, so they can only keep up with it by doing
less of what dominates it: writing a fresh output buffer as large as the
input (page faults and cache misses, not AES, are most of its time on a
machine with AES-NI/VAES). The streaming path works chunk by chunk in cache
and never materialises either the ciphertext or the plaintext. The
convenience path (``seal`` / ``open_sealed`` on bytes) materialises both:
two fresh input-sized buffers against the baseline's one, so about 0.5x is
its ceiling; it writes each exactly once to get close to that.

Suite 2 (hybrid ML-KEM-768 + X25519, for post-quantum identities) against
suite 1 (X25519 only): the cost of one seal + open of a small result (the key
wrap dominates: X-Wing encapsulation and decapsulation against two X25519
operations) and of a 1 MiB input (the key wrap is amortised), as ratios of
suite-2 time over suite-1 time in the same run, plus the header growth.
"""

from __future__ import annotations

import argparse
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench._harness import Ratio, median_seconds, throughput_mib_s
from sealroom.crypto.keys import Identity
from sealroom.crypto.sealing import (
    DEFAULT_CHUNK_SIZE,
    HEADER_SIZE,
    HEADER_SIZE_XWING,
    SealContext,
    open_sealed,
    open_stream,
    seal,
    seal_stream,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="once, at tiny sizes (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.mib, args.repeat = 2, 1
    size = args.mib << 20
    data = os.urandom(size)
    view = memoryview(data)
    recipient = Identity.generate()
    context = SealContext(os.urandom(32), recipient.party_id, "input")
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    nonce = os.urandom(12)
    r = args.repeat

    def aes_gcm_one_pass() -> None:
        aead.encrypt(nonce, data, None)

    def aes_gcm_chunked_in_cache() -> None:
        # Upper bound for one pass: chunked, output buffer reused (stays in cache).
        out = bytearray(DEFAULT_CHUNK_SIZE + 16)
        for i in range(0, size, DEFAULT_CHUNK_SIZE):
            aead.encrypt_into(nonce, view[i : i + DEFAULT_CHUNK_SIZE], None, out)

    def streaming(chunk_size: int) -> None:
        sealed = seal_stream(data, recipient.public, context, chunk_size=chunk_size)
        for _ in open_stream(sealed, recipient, context):
            pass

    def materialised() -> None:
        open_sealed(seal(data, recipient.public, context), recipient, context)

    base = throughput_mib_s(size, median_seconds(aes_gcm_one_pass, repeat=r))
    in_cache = throughput_mib_s(size, median_seconds(aes_gcm_chunked_in_cache, repeat=r))
    stream_by_chunk = {
        chunk: throughput_mib_s(size, median_seconds(lambda c=chunk: streaming(c), repeat=r))
        for chunk in (1 << 16, 1 << 18, 1 << 20)
    }
    stream = stream_by_chunk[DEFAULT_CHUNK_SIZE]
    bulk = throughput_mib_s(size, median_seconds(materialised, repeat=r))

    print(
        f"data: {args.mib} MiB, medians of {r} runs; default chunk {DEFAULT_CHUNK_SIZE >> 10} KiB"
    )
    print(f"  AES-256-GCM one pass, one call        {base:8.0f} MiB/s  (baseline)")
    print(f"  AES-256-GCM one pass, chunked in cache {in_cache:7.0f} MiB/s  (upper bound, info)")
    for chunk, value in stream_by_chunk.items():
        print(f"  seal_stream | open_stream, {chunk >> 10:5d} KiB  {value:8.0f} MiB/s")
    print(f"  seal then open_sealed (bytes in/out)  {bulk:8.0f} MiB/s")
    print(Ratio("seal+unseal streaming vs AES-GCM one pass", stream, base, target=0.7).line())
    print(Ratio("seal+unseal on bytes vs AES-GCM one pass", bulk, base, target=0.7).line())
    print(Ratio("seal+unseal streaming vs in-cache AES-GCM one pass", stream, in_cache).line())
    _suites(repeat=max(r, 3) * (1 if args.smoke else 20), big=min(size, 1 << 20))


def _suites(*, repeat: int, big: int) -> None:
    """Suite 2 against suite 1: seal + open time of a small and a larger message."""
    hybrid = Identity.generate()
    classical = Identity.generate(post_quantum=False)
    request = os.urandom(32)
    print(f"suite 2 (X-Wing) vs suite 1 (X25519): medians of {repeat} seal+open runs")
    for label, size in (("1 KiB result", 1 << 10), (f"{big >> 10} KiB input", big)):
        data = os.urandom(size)
        seconds = {}
        for suite, who in ((1, classical), (2, hybrid)):
            context = SealContext(request, who.party_id, "result")

            def once(
                who: Identity = who, context: SealContext = context, data: bytes = data
            ) -> None:
                open_sealed(seal(data, who.public, context), who, context)

            seconds[suite] = median_seconds(once, repeat=repeat)
        print(
            f"  {label:16s} suite 1 {seconds[1] * 1e3:8.3f} ms   suite 2 {seconds[2] * 1e3:8.3f} ms"
        )
        # A ratio of times: how many times longer suite 2 takes (1.00x = no extra cost).
        print(Ratio(f"suite 2 time vs suite 1, {label}", seconds[2], seconds[1]).line())
    print(f"  header: suite 1 {HEADER_SIZE} bytes, suite 2 {HEADER_SIZE_XWING} bytes")


if __name__ == "__main__":
    main()
