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
"""

from __future__ import annotations

import argparse
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench._harness import Ratio, median_seconds, throughput_mib_s
from sealroom.crypto.keys import Identity
from sealroom.crypto.sealing import (
    DEFAULT_CHUNK_SIZE,
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


if __name__ == "__main__":
    main()
