"""PJC: Paillier vs exponential ElGamal per operation, then the whole protocol end to end.

    python -m bench.bench_pjc [--quick | --smoke] [--n N] [--repeat R]

Part 1 measures, in this process, every operation an additively homomorphic
PJC needs: b encrypts each of its values; a adds every ciphertext (to the
matched sum or to a discarded one, so its work does not depend on the match);
one decryption at the end. Candidates: Paillier-2048 through
``phe`` with ``gmpy2`` (fresh ``r^n``; and ``r^n`` replaced by a
short-exponent power of a fixed ``n``-th residue, the cheapest precomputation
known, DJN 2010), and exponential ElGamal over Edwards25519 through libsodium
(encrypting with the owner's key: two fixed-base multiplications; or under a
public/joint key: plus a variable-base one). It extrapolates each to ``N`` x
``N`` with half the ids shared and prints the comparison that chose the scheme.

Part 2 runs the real protocol (both parties, LocalNetwork, threads in this
process) on ``N`` x ``N`` ids with half shared and checks the answer against
the plaintext join. The baseline is the DH work any DH-based PJC must do (2N
hashes to the group and 4N X25519 multiplications), measured here per
operation; the target is the issue's: under 60 s end to end.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable

import gmpy2
from phe import paillier

from bench._harness import median_seconds
from sealroom.protocols import elgamal, group
from sealroom.protocols.channel import LocalNetwork, run_local
from sealroom.protocols.pjc import PROTOCOL, VERSION, PjcParams, run_pjc

TARGET_SECONDS = 60.0
SAMPLES = 200


def per_op(fn: Callable[[int], object], count: int, *, repeat: int = 5) -> float:
    """Median seconds per call of ``fn(i)`` over ``count`` calls, ``repeat`` times."""
    return median_seconds(lambda: [fn(i) for i in range(count)], repeat=repeat) / count


def paillier_ops(count: int) -> dict[str, float]:
    t0 = time.perf_counter()
    pub, priv = paillier.generate_paillier_keypair(n_length=2048)
    keygen = time.perf_counter() - t0
    n, n2 = gmpy2.mpz(pub.n), gmpy2.mpz(pub.nsquare)
    values = [random.randrange(1000) for _ in range(count)]
    cts = [pub.encrypt(v) for v in values]
    # DJN short-exponent randomness: h = x^n mod n^2 fixed, r^n replaced by h^a, a of 448 bits.
    h = gmpy2.powmod(gmpy2.mpz(random.randrange(2, pub.n)), n, n2)
    alphas = [gmpy2.mpz(random.getrandbits(448)) for _ in range(count)]
    rns = [gmpy2.powmod(h, a, n2) for a in alphas]
    return {
        "keygen (once)": keygen,
        "encrypt, fresh r^n (phe)": per_op(lambda i: pub.encrypt(values[i]), count // 4, repeat=3),
        "encrypt, DJN short-exponent r^n": per_op(
            lambda i: (n * values[i] + 1) * gmpy2.powmod(h, alphas[i], n2) % n2, count
        ),
        "encrypt online, r^n precomputed": per_op(
            lambda i: (n * values[i] + 1) * rns[i] % n2, count
        ),
        "add two ciphertexts (phe)": per_op(lambda i: cts[i] + cts[i - 1], count),
        "decrypt (once)": per_op(lambda i: priv.decrypt(cts[i]), 10, repeat=3),
    }


def elgamal_ops(count: int) -> dict[str, float]:
    key = elgamal.ElGamalKey.generate()
    values = [random.randrange(1000) for _ in range(count)]
    rand = os.urandom(64 * count)
    cts = key.encrypt_many(values, randomness=rand)
    rs = [elgamal.random_scalar() for _ in range(count)]
    q = elgamal.base_mul(elgamal.random_scalar())
    share = key.share(q)
    proof = key.prove_share(q, share, context=b"bench")
    window = 5 * 10**7

    return {
        "encrypt with the owner's key (2 fixed-base)": per_op(
            lambda i: key.encrypt_many(values[i : i + 1], randomness=rand[64 * i : 64 * i + 64]),
            count,
        ),
        "encrypt under a public/joint key (+1 var-base)": per_op(
            lambda i: elgamal.encrypt(key.public, values[i], r=rs[i]), count // 2
        ),
        "select-and-add one ciphertext (2 point adds)": per_op(
            lambda i: elgamal.select_sum(cts[i : i + 1], [i % 2 == 0], what="x"), count
        ),
        "share + proof (once)": per_op(
            lambda i: key.prove_share(q, key.share(q), context=b"bench"), 10, repeat=3
        ),
        "verify share (once)": per_op(
            lambda i: elgamal.verify_share(key.public, q, share, proof, context=b"bench"),
            10,
            repeat=3,
        ),
        f"discrete log, window {window:.0e} (once)": median_seconds(
            lambda: elgamal.discrete_log(elgamal.base_mul(window - 7), lo=0, hi=window), repeat=3
        ),
    }


def dh_ops(count: int) -> dict[str, float]:
    items = [os.urandom(16) for _ in range(count)]
    k = group.random_scalar()
    points = group.hash_to_group(items, domain=b"bench")
    return {
        "hash to group (Elligator 2)": median_seconds(
            lambda: group.hash_to_group(items, domain=b"bench"), repeat=5
        )
        / count,
        "X25519 multiplication": median_seconds(lambda: group.mul_many(k, points), repeat=5)
        / count,
    }


def end_to_end(n: int, *, workers: int) -> tuple[float, int]:
    ids_a = [b"id-%d" % i for i in range(n)]
    ids_b = [b"id-%d" % i for i in range(n // 2, n // 2 + n)]
    values = [random.randrange(1001) for _ in ids_b]
    shared = set(ids_a)
    expect = sum(v for i, v in zip(ids_b, values, strict=True) if i in shared)
    params = PjcParams(min_intersection=1, max_value=1000, max_set_size=max(n, 1))
    net = LocalNetwork(["a", "b"])
    sid = os.urandom(16).hex()
    ca = net.channel("a", protocol=PROTOCOL, version=VERSION, session=sid, timeout=600)
    cb = net.channel("b", protocol=PROTOCOL, version=VERSION, session=sid, timeout=600)
    t0 = time.perf_counter()
    results = run_local(
        {
            "a": lambda: run_pjc(ca, role="a", ids=ids_a, params=params, workers=workers),
            "b": lambda: run_pjc(
                cb, role="b", ids=ids_b, values=values, params=params, workers=workers
            ),
        },
        timeout=1800,
    )
    elapsed = time.perf_counter() - t0
    a = results["a"]
    if (
        isinstance(a, BaseException)
        or a.sum != expect
        or a.intersection_size != len(ids_b) - n // 2
    ):
        raise SystemExit(f"wrong or failed result: {results!r} (expected {expect})")
    return elapsed, a.intersection_size or 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10^4 x 10^4, fewer samples")
    parser.add_argument("--n", type=int, default=None, help="ids per party (default 10^5)")
    parser.add_argument("--repeat", type=int, default=None, help="end-to-end runs (median)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="once, at tiny sizes (CI)")
    args = parser.parse_args()
    n = args.n or (10**4 if args.quick else 10**5)
    repeat = args.repeat or (3 if args.quick else 1)
    samples = 100 if args.quick else SAMPLES
    if args.smoke:
        n, repeat, samples = 200, 1, 12
    matched = n // 2

    print(f"== per operation (medians, {samples} samples; this machine, now) ==")
    ops = {
        "paillier-2048": paillier_ops(samples),
        "elgamal-ed25519": elgamal_ops(samples),
        "dh": dh_ops(samples * 5),
    }
    for scheme, table in ops.items():
        for name, sec in table.items():
            unit = f"{sec * 1e3:10.1f} ms" if sec >= 1e-3 else f"{sec * 1e6:10.1f} us"
            print(f"  {scheme:16s} {name:48s} {unit}")

    p, e, d = ops["paillier-2048"], ops["elgamal-ed25519"], ops["dh"]
    dh_floor = 2 * n * d["hash to group (Elligator 2)"] + 4 * n * d["X25519 multiplication"]
    decrypt_p = p["decrypt (once)"]
    final_e = e["share + proof (once)"] + e["verify share (once)"]
    estimates = {
        "Paillier, fresh r^n": n * p["encrypt, fresh r^n (phe)"]
        + n * p["add two ciphertexts (phe)"]
        + decrypt_p,
        "Paillier, DJN randomness": n * p["encrypt, DJN short-exponent r^n"]
        + n * p["add two ciphertexts (phe)"]
        + decrypt_p,
        "ElGamal, joint/public key": n * e["encrypt under a public/joint key (+1 var-base)"]
        + n * e["select-and-add one ciphertext (2 point adds)"]
        + final_e,
        "ElGamal, owner's key (chosen)": n * e["encrypt with the owner's key (2 fixed-base)"]
        + n * e["select-and-add one ciphertext (2 point adds)"]
        + final_e,
    }
    print(f"\n== homomorphic part extrapolated to {n} x {n}, {matched} matched (CPU seconds) ==")
    print(f"  DH part (same for all): {dh_floor:7.1f} s")
    best = min(estimates.values())
    for name, sec in estimates.items():
        print(
            f"  {name:32s} {sec:8.1f} s  ({sec / best:5.1f}x the best; with DH {sec + dh_floor:7.1f} s)"
        )

    print(
        f"\n== end to end: {n} x {n}, {matched} shared, workers={args.workers}, {repeat} run(s) =="
    )
    times = [end_to_end(n, workers=args.workers)[0] for _ in range(repeat)]
    wall = statistics.median(times)
    print(f"  runs: {', '.join(f'{t:.1f} s' for t in times)}")
    print(f"  baseline, DH work alone (sequential CPU): {dh_floor:.1f} s")
    print(f"  PJC end to end: {wall:.1f} s = {wall / dh_floor:.2f}x the DH baseline")
    if n == 10**5:
        verdict = "meets target" if wall < TARGET_SECONDS else "MISSES TARGET"
        print(f"  target: under {TARGET_SECONDS:.0f} s at 10^5 x 10^5 -> {verdict}")
    else:
        est = wall * 10**5 / n
        verdict = "on track" if est < TARGET_SECONDS else "NOT ON TRACK"
        print(
            f"  target: under {TARGET_SECONDS:.0f} s at 10^5 x 10^5; linear extrapolation from "
            f"{n}: {est:.0f} s -> {verdict} (run without --quick to measure it)"
        )
    print(f"  load average now: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
