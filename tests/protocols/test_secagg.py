"""Secure aggregation: exact sums under dropouts, the specification, and one failure per message.

Regenerate the known-answer file with ``python tests/protocols/test_secagg.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.errors import InvalidInput, ProtocolError
from sealroom.protocols import secagg
from sealroom.protocols.channel import LocalNetwork, run_local
from sealroom.protocols.secagg import (
    PROTOCOL,
    VERSION,
    ClientOutcome,
    SecAggClient,
    SecAggParams,
    SecAggResult,
    SecAggServer,
    aggregate_as_server,
    contribute_as_client,
)
from sealroom.protocols.wire import Frame

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "secagg_kat.json"
Intercept = Callable[[str, str, bytes], Sequence[bytes]]


def seeded_rng(seed: bytes) -> Callable[[int], bytes]:
    """A deterministic byte stream (ChaCha20 keystream) for known-answer tests only."""
    enc = Cipher(algorithms.ChaCha20(hashlib.sha256(seed).digest(), bytes(16)), None).encryptor()
    return lambda n: enc.update(bytes(n))


def plain_sum(
    vectors: Mapping[str, np.ndarray[Any, Any]], who: Sequence[str], bits: int
) -> list[int]:
    dim = len(next(iter(vectors.values())))
    return [sum(int(vectors[u][k]) for u in who) % (1 << bits) for k in range(dim)]


def make_vectors(params: SecAggParams, seed: int = 7) -> dict[str, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    high = 1 << params.modulus_bits
    return {
        u: np.array(
            [int(v) for v in rng.integers(0, high, params.dimension, dtype=np.uint64)],
            dtype=params.dtype,
        )
        for u in params.clients
    }


# --- pure round functions -------------------------------------------------------------


def run_pure(
    params: SecAggParams,
    vectors: Mapping[str, np.ndarray[Any, Any]],
    *,
    context: bytes,
    gone_before: Mapping[str, int] | None = None,
    rngs: Mapping[str, Callable[[int], bytes]] | None = None,
    record: dict[str, Any] | None = None,
) -> SecAggResult:
    """One aggregation; ``gone_before[u] = k`` makes u silent from round k (1..4) on."""
    gone = gone_before or {}
    rec: dict[str, Any] = record if record is not None else {}

    def alive(u: str, rnd: int) -> bool:
        return gone.get(u, 99) > rnd

    clients = {
        u: SecAggClient(
            params=params,
            me=u,
            vector=vectors[u],
            context=context,
            **({"rng": rngs[u]} if rngs else {}),
        )
        for u in params.clients
    }
    server = SecAggServer(params=params, context=context)
    ads = {u: c.advertise() for u, c in clients.items() if alive(u, 1)}
    rec["advertise"] = {
        u: [a.keys.c_public.hex(), a.keys.s_public.hex(), a.seed_commitment.hex()]
        for u, a in ads.items()
    }
    roster = server.receive_advertisements(ads)
    shares = {u: clients[u].share_keys(roster) for u in roster if alive(u, 2)}
    rec["share_keys"] = {u: s.hex() for u, s in shares.items()}
    routed = server.route_shares(shares)
    rec["routed"] = {u: s.hex() for u, s in routed.items()}
    ys = {u: clients[u].masked_input(list(routed), routed[u]) for u in routed if alive(u, 3)}
    rec["masked_input"] = {u: y.tobytes().hex() for u, y in ys.items()}
    u3 = server.receive_masked_inputs(ys)
    responses = {u: clients[u].unmask(u3) for u in u3 if alive(u, 4)}
    rec["unmask"] = {u: [r.b_shares.hex(), r.s_shares.hex()] for u, r in responses.items()}
    result = server.unmask(responses)
    rec["sum"] = [int(v) for v in result.sum]
    rec["survivors"] = list(result.survivors)
    return result


KAT_CASES: list[dict[str, Any]] = [
    {
        "name": "4-clients-one-drops-after-sharekeys",
        "n": 4,
        "t": 3,
        "dim": 5,
        "bits": 32,
        "gone": {"c2": 3},
    },
    {"name": "3-clients-64-bit", "n": 3, "t": 2, "dim": 4, "bits": 64, "gone": {}},
    {
        "name": "5-clients-12-bit-two-drop",
        "n": 5,
        "t": 3,
        "dim": 3,
        "bits": 12,
        "gone": {"c0": 2, "c3": 4},
    },
]


def build_vectors() -> dict[str, Any]:
    out = []
    for case in KAT_CASES:
        names = tuple(f"c{i}" for i in range(case["n"]))
        params = SecAggParams(
            clients=names, threshold=case["t"], dimension=case["dim"], modulus_bits=case["bits"]
        )
        context = secagg.run_context(params=params, session="00" * 16, round=3)
        vectors = make_vectors(params)
        rngs = {u: seeded_rng(f"{case['name']}/{u}".encode()) for u in names}
        rec: dict[str, Any] = {}
        result = run_pure(
            params, vectors, context=context, gone_before=case["gone"], rngs=rngs, record=rec
        )
        assert rec["sum"] == plain_sum(vectors, result.survivors, case["bits"])
        out.append(
            {
                "name": case["name"],
                "params": params.as_dict(),
                "params_digest": params.digest(),
                "session": "00" * 16,
                "round": 3,
                "context": context.hex(),
                "silent_from_round": case["gone"],
                "rng": "ChaCha20(SHA-256(name/client), zero nonce) keystream",
                "inputs": {u: [int(v) for v in vectors[u]] for u in names},
                "transcript": rec,
            }
        )
    return {
        "description": "secagg v1 round-by-round known answers (pure round functions)",
        "cases": out,
    }


def dump(vectors: dict[str, Any]) -> str:
    return json.dumps(vectors, indent=1, sort_keys=True) + "\n"


def test_known_answer_vectors_byte_for_byte() -> None:
    assert VECTORS.read_text() == dump(build_vectors())


def test_masked_input_follows_the_specification() -> None:
    """Recompute y_u from the documented formulas with the primitives used directly."""
    names = ("c0", "c1", "c2")
    params = SecAggParams(clients=names, threshold=2, dimension=6)
    context = bytes(range(32))
    vectors = make_vectors(params)
    rngs = {u: seeded_rng(u.encode()) for u in names}
    rec: dict[str, Any] = {}
    run_pure(params, vectors, context=context, rngs=rngs, record=rec)

    def hkdf(ikm: bytes, info: bytes, n: int) -> bytes:
        return HKDF(hashes.SHA256(), n, salt=context, info=b"sealroom-secagg-v1 " + info).derive(
            ikm
        )

    def prg(key: bytes) -> np.ndarray[Any, Any]:
        ks = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor().update(bytes(4 * 6))
        return np.frombuffer(ks, dtype="<u4").astype(np.uint64)

    secrets = {}
    for u in names:  # the order SecAggClient draws them: c, s, b
        r = seeded_rng(u.encode())
        secrets[u] = (r(32), r(32), r(32))
    me, i = "c1", 1
    _, s_me, b_me = secrets[me]
    z = vectors[me].astype(np.uint64)
    for j, v in enumerate(names):
        if v == me:
            continue
        s_pub = X25519PrivateKey.from_private_bytes(secrets[v][1]).public_key()
        shared = X25519PrivateKey.from_private_bytes(s_me).exchange(s_pub)
        lo, hi = min(i, j).to_bytes(2, "big"), max(i, j).to_bytes(2, "big")
        key = hkdf(shared, b"pairwise-mask" + lo + hi, 16)
        z = z + prg(key) if i < j else z - prg(key)
    # the self mask is a one-time pad by XOR: y_u = (x_u + pairwise masks) ^ PRG(b_u)
    y = (z % 2**32) ^ prg(hkdf(b_me, b"self-mask" + i.to_bytes(2, "big"), 16))
    assert (y % 2**32).astype("<u4").tobytes().hex() == rec["masked_input"][me]
    commitment = hashlib.sha256(
        b"sealroom-secagg-v1 seed-commitment\0" + context + i.to_bytes(2, "big") + b_me
    ).hexdigest()
    assert rec["advertise"][me][2] == commitment
    assert isinstance(
        X25519PublicKey.from_public_bytes(bytes.fromhex(rec["advertise"][me][1])), X25519PublicKey
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[SecAggParams, dict[str, int]]:
    n = draw(st.integers(2, 6))
    t = draw(st.integers(n // 2 + 1, n))
    params = SecAggParams(
        clients=tuple(f"p{i}" for i in range(n)),
        threshold=t,
        dimension=draw(st.integers(1, 12)),
        modulus_bits=draw(st.sampled_from([1, 7, 16, 31, 32, 33, 63, 64])),
    )
    gone = {
        u: k for u in params.clients if (k := draw(st.sampled_from([99, 99, 1, 2, 3, 4]))) != 99
    }
    return params, gone


@settings(max_examples=50, deadline=None)
@given(scenario=scenarios(), seed=st.integers(0, 2**32))
def test_the_sum_is_exact_under_any_dropout_pattern_or_fails_below_t(
    scenario: tuple[SecAggParams, dict[str, int]], seed: int
) -> None:
    params, gone = scenario
    vectors = make_vectors(params, seed)
    t = params.threshold
    counts = [sum(1 for u in params.clients if gone.get(u, 99) > k) for k in (1, 2, 3, 4)]
    if min(counts) < t:
        with pytest.raises(ProtocolError, match="no sum is released"):
            run_pure(params, vectors, context=os.urandom(32), gone_before=gone)
        return
    result = run_pure(params, vectors, context=os.urandom(32), gone_before=gone)
    survivors = [u for u in params.clients if gone.get(u, 99) > 3]
    assert list(result.survivors) == survivors
    assert [int(v) for v in result.sum] == plain_sum(vectors, survivors, params.modulus_bits)
    assert result.sum.dtype == params.dtype


def test_a_client_refuses_to_reveal_both_secrets_of_anyone() -> None:
    names = ("a", "b", "c")
    params = SecAggParams(clients=names, threshold=2, dimension=2)
    ctx = os.urandom(32)
    vectors = make_vectors(params)
    clients = {u: SecAggClient(params=params, me=u, vector=vectors[u], context=ctx) for u in names}
    server = SecAggServer(params=params, context=ctx)
    roster = server.receive_advertisements({u: c.advertise() for u, c in clients.items()})
    routed = server.route_shares({u: c.share_keys(roster) for u, c in clients.items()})
    for u in names:
        clients[u].masked_input(names, routed[u])
    a = clients["a"]
    with pytest.raises(ProtocolError, match="leaves out a"):
        a.unmask(["b", "c"])  # would hand out a's own s-share while a's y is with the server
    first = a.unmask(["a", "b"])  # c counted as dropped: s-share of c
    assert len(first.s_shares) == 33
    with pytest.raises(ProtocolError, match="refuses a second unmask request"):
        a.unmask(["a", "b", "c"])  # would now add the b-share of c
    b = clients["b"]
    with pytest.raises(ProtocolError, match="not a client"):
        b.unmask(["a", "b", "zed"])


def test_the_server_rejects_malformed_client_data() -> None:
    names = ("a", "b", "c")
    params = SecAggParams(clients=names, threshold=2, dimension=3)
    ctx = os.urandom(32)
    vectors = make_vectors(params)
    clients = {u: SecAggClient(params=params, me=u, vector=vectors[u], context=ctx) for u in names}
    server = SecAggServer(params=params, context=ctx)
    ads = {u: c.advertise() for u, c in clients.items()}
    dup = dict(ads, c=secagg.Advertisement(ads["a"].keys, ads["c"].seed_commitment))
    with pytest.raises(ProtocolError, match="already in use"):
        SecAggServer(params=params, context=ctx).receive_advertisements(dup)
    roster = server.receive_advertisements(ads)
    shares = {u: c.share_keys(roster) for u, c in clients.items()}
    s1 = SecAggServer(params=params, context=ctx)
    s1.receive_advertisements(ads)
    with pytest.raises(ProtocolError, match="exactly one share ciphertext"):
        s1.route_shares({**shares, "a": shares["a"][:-1]})
    routed = server.route_shares(shares)
    ys = {u: clients[u].masked_input(names, routed[u]) for u in names}
    s2 = SecAggServer(params=params, context=ctx)
    s2._phase, s2._u2 = 2, list(names)
    with pytest.raises(ProtocolError, match="wrong type or length"):
        s2.receive_masked_inputs({**ys, "a": ys["a"][:2]})
    u3 = server.receive_masked_inputs(ys)
    responses = {u: clients[u].unmask(u3) for u in u3}
    bad = secagg.UnmaskResponse(flip_last(responses["a"].b_shares), responses["a"].s_shares)
    with pytest.raises(ProtocolError, match="self-mask seed are inconsistent"):
        server.unmask({**responses, "a": bad})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"clients": ("a",), "threshold": 1, "dimension": 1}, "2..1000 distinct"),
        ({"clients": ("a", "a"), "threshold": 2, "dimension": 1}, "distinct"),
        ({"clients": ("a", "B"), "threshold": 2, "dimension": 1}, "valid party name"),
        ({"clients": ("a", "b", "c", "d"), "threshold": 2, "dimension": 1}, "strict majority"),
        ({"clients": ("a", "b"), "threshold": 3, "dimension": 1}, "strict majority"),
        ({"clients": ("a", "b"), "threshold": 2, "dimension": 0}, "dimension"),
        (
            {"clients": ("a", "b"), "threshold": 2, "dimension": 1, "modulus_bits": 65},
            "modulus_bits",
        ),
        ({"clients": ["a", "b"], "threshold": 2, "dimension": 1}, "tuple"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        SecAggParams(**kwargs)


def test_bad_inputs_are_refused_locally() -> None:
    params = SecAggParams(clients=("a", "b"), threshold=2, dimension=3, modulus_bits=8)
    ctx = os.urandom(32)
    for vector, match in (
        (np.array([1, 2, 256]), "0..2"),
        (np.array([1, 2, -1]), "0..2"),
        (np.array([1, 2]), "shape"),
        (np.array([1.0, 2.0, 3.0]), "integers"),
    ):
        with pytest.raises(InvalidInput, match=match):
            SecAggClient(params=params, me="a", vector=vector, context=ctx)


# --- channel drivers ------------------------------------------------------------------

NAMES = ("c0", "c1", "c2", "c3")


def run_channel(
    *,
    intercept: Intercept | None = None,
    params: SecAggParams | None = None,
    client_params: Mapping[str, SecAggParams] | None = None,
    rounds: Sequence[int] = (0,),
    server_timeout: float = 5.0,
    client_timeout: float = 20.0,
) -> tuple[dict[str, Any], dict[str, np.ndarray[Any, Any]], SecAggParams]:
    params = params or SecAggParams(clients=NAMES, threshold=3, dimension=6)
    vectors = make_vectors(params)
    net = LocalNetwork(["server", *params.clients], intercept=intercept)
    session = os.urandom(16).hex()
    chans = {
        p: net.channel(
            p, protocol=PROTOCOL, version=VERSION, session=session, timeout=client_timeout
        )
        for p in ("server", *params.clients)
    }

    def server() -> list[SecAggResult]:
        return [
            aggregate_as_server(chans["server"], params=params, round=r, timeout=server_timeout)
            for r in rounds
        ]

    def client(u: str) -> list[ClientOutcome]:
        p = (client_params or {}).get(u, params)
        return [
            contribute_as_client(chans[u], server="server", params=p, vector=vectors[u], round=r)
            for r in rounds
        ]

    fns: dict[str, Callable[[], Any]] = {"server": server}
    for u in params.clients:
        fns[u] = lambda u=u: client(u)
    return run_local(fns, timeout=60), vectors, params


def kind_of(data: bytes) -> str:
    return Frame.decode(data).kind


def silence(who: str, from_kind: str) -> Intercept:
    """``who`` stops talking from its first ``from_kind`` message on (a crash); it still listens."""
    dead: set[str] = set()

    def intercept(sender: str, recipient: str, data: bytes) -> list[bytes]:
        if sender == who and kind_of(data) == from_kind:
            dead.add(who)
        return [] if sender in dead else [data]

    return intercept


def rewrite(
    kind: str, sender: str, change: Callable[[Frame], Frame], recipient: str | None = None
) -> Intercept:
    done: list[bool] = []

    def intercept(s: str, r: str, data: bytes) -> list[bytes]:
        f = Frame.decode(data)
        if f.kind == kind and s == sender and (recipient is None or r == recipient) and not done:
            done.append(True)
            return [change(f).encode()]
        return [data]

    return intercept


def with_blob(name: str, fn: Callable[[bytes], bytes]) -> Callable[[Frame], Frame]:
    def change(f: Frame) -> Frame:
        blobs = dict(f.blobs)
        blobs[name] = fn(blobs[name])
        values = {k: getattr(f, k) for k in Frame.__slots__}
        values["blobs"] = blobs
        return Frame(**values)

    return change


def flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def all_failed(results: Mapping[str, Any], match: str | None = None) -> None:
    for name, value in results.items():
        assert isinstance(value, ProtocolError), f"{name} returned {value!r}"
    if match:
        assert any(match in str(v) for v in results.values()), {
            k: str(v) for k, v in results.items()
        }


def test_a_clean_run_sums_exactly_and_tells_clients_who_counted() -> None:
    results, vectors, _ = run_channel(rounds=(0, 1))
    for r in results["server"]:
        assert [int(v) for v in r.sum] == plain_sum(vectors, NAMES, 32)
        assert r.survivors == NAMES
        assert r.dropped == ()
    for u in NAMES:
        assert results[u] == [ClientOutcome(True, NAMES)] * 2


@pytest.mark.parametrize(
    ("kind", "included"),
    [
        (secagg.K_ADVERTISE, False),
        (secagg.K_SHARE, False),
        (secagg.K_MASKED, False),
        (secagg.K_REVEAL, True),
    ],
)
def test_a_client_dropping_out_at_any_round_leaves_an_exact_sum(kind: str, included: bool) -> None:
    results, vectors, _ = run_channel(intercept=silence("c1", kind), server_timeout=0.5)
    result = results["server"][0]
    survivors = NAMES if included else ("c0", "c2", "c3")
    assert result.survivors == survivors
    assert [int(v) for v in result.sum] == plain_sum(vectors, survivors, 32)
    assert results["c1"] == [ClientOutcome(included, survivors if included else ())]
    for u in ("c0", "c2", "c3"):
        assert results[u] == [ClientOutcome(True, survivors)]


# One negative test per message type: every party ends with a ProtocolError, no sum.


def test_advertise_keys_with_other_parameters_fails_everywhere() -> None:
    other = SecAggParams(clients=NAMES, threshold=4, dimension=6)
    results, _, _ = run_channel(client_params={"c2": other})
    all_failed(results, "parameters differ")


def test_advertise_keys_with_a_low_order_key_fails_everywhere() -> None:
    results, _, _ = run_channel(
        intercept=rewrite(secagg.K_ADVERTISE, "c1", with_blob("c_key", lambda b: bytes(32)))
    )
    all_failed(results, "low-order point")


def test_key_roster_with_a_key_missing_fails_everywhere() -> None:
    results, _, _ = run_channel(
        intercept=rewrite(
            secagg.K_ROSTER, "server", with_blob("s_keys", lambda b: b[:-32]), recipient="c0"
        )
    )
    all_failed(results, "s_keys has 3 items")


def test_key_roster_that_swaps_a_clients_own_key_fails_everywhere() -> None:
    results, _, _ = run_channel(
        intercept=rewrite(
            secagg.K_ROSTER,
            "server",
            with_blob("c_keys", lambda b: b[32:64] + b[:32] + b[64:]),
            recipient="c0",
        )
    )
    all_failed(results, "own keys")


def test_share_keys_with_a_tampered_ciphertext_fails_everywhere() -> None:
    results, _, _ = run_channel(
        intercept=rewrite(secagg.K_SHARE, "c1", with_blob("ciphertexts", flip_last))
    )
    all_failed(results, "does not decrypt")


def test_share_keys_with_a_missing_ciphertext_fails_everywhere() -> None:
    results, _, _ = run_channel(
        intercept=rewrite(
            secagg.K_SHARE, "c1", with_blob("ciphertexts", lambda b: b[: -secagg.CIPHERTEXT_SIZE])
        )
    )
    all_failed(results, "ciphertexts must be exactly")


def test_routed_shares_replayed_fails_everywhere() -> None:
    def replay(sender: str, recipient: str, data: bytes) -> list[bytes]:
        if recipient == "c2" and kind_of(data) == secagg.K_ROUTED:
            return [data, data]
        return [data]

    results, _, _ = run_channel(intercept=replay)
    all_failed(results, "replayed")


@pytest.mark.parametrize(
    ("kind", "sender"),
    [
        (secagg.K_ADVERTISE, "c1"),
        (secagg.K_ROSTER, "server"),
        (secagg.K_SHARE, "c2"),
        (secagg.K_MASKED, "c0"),
        (secagg.K_UNMASK, "server"),
    ],
)
def test_any_replayed_message_fails_everywhere(kind: str, sender: str) -> None:
    # (A replay of a party's last message may arrive after its recipient is done:
    # nothing reads it, so it cannot change a result.)
    done: list[int] = []

    def replay(s: str, recipient: str, data: bytes) -> list[bytes]:
        if s == sender and kind_of(data) == kind and not done:
            done.append(1)
            return [data, data]
        return [data]

    results, vectors, _ = run_channel(intercept=replay)
    if kind == secagg.K_UNMASK:
        # A client notices the replayed request only after it has sent its shares, so the
        # server may already hold the (correct) sum when the client's abort reaches it;
        # every client must still fail, and the server must not produce a wrong sum.
        clients = {k: v for k, v in results.items() if k != "server"}
        all_failed(clients, "replayed")
        server = results["server"]
        if not isinstance(server, ProtocolError):
            assert [int(v) for v in server[0].sum] == plain_sum(vectors, NAMES, 32)
        return
    all_failed(results, "replayed")


def test_masked_input_of_the_wrong_length_fails_everywhere() -> None:
    results, _, _ = run_channel(
        intercept=rewrite(secagg.K_MASKED, "c3", with_blob("y", lambda b: b[:-4]))
    )
    all_failed(results, "blob y must be exactly")


def test_masked_inputs_dropped_below_threshold_fail_everywhere() -> None:
    def drop(sender: str, recipient: str, data: bytes) -> list[bytes]:
        return [] if sender in ("c1", "c2") and kind_of(data) == secagg.K_MASKED else [data]

    results, _, _ = run_channel(intercept=drop, server_timeout=0.5)
    all_failed(results, "only 2 of 4 clients sent masked inputs")


def test_unmask_request_that_leaves_out_its_recipient_fails_everywhere() -> None:
    results, _, _ = run_channel(
        intercept=rewrite(
            secagg.K_UNMASK,
            "server",
            with_blob("members", lambda b: b"\x00" + b[1:]),
            recipient="c0",
        )
    )
    all_failed(results, "leaves out c0")


def test_unmask_shares_with_a_tampered_share_fail_everywhere() -> None:
    results, _, _ = run_channel(
        intercept=rewrite(secagg.K_REVEAL, "c0", with_blob("b_shares", flip_last))
    )
    all_failed(results, "inconsistent")


def test_unmask_shares_with_a_wrong_count_fail_everywhere() -> None:
    results, _, _ = run_channel(
        intercept=rewrite(secagg.K_REVEAL, "c0", with_blob("b_shares", lambda b: b[:-33]))
    )
    all_failed(results, "b_shares must be exactly")


def test_a_result_that_contradicts_the_unmask_request_fails_its_recipient() -> None:
    # The last message: the server has released its sum before c3 can object,
    # so only c3 (and whoever was still listening when its abort arrived) fails.
    results, vectors, _ = run_channel(
        intercept=rewrite(
            secagg.K_RESULT,
            "server",
            with_blob("members", lambda b: b[:-1] + b"\x00"),
            recipient="c3",
        )
    )
    assert isinstance(results["c3"], ProtocolError)
    assert "contradicts" in str(results["c3"])
    assert [int(v) for v in results["server"][0].sum] == plain_sum(vectors, NAMES, 32)


def test_a_round_mismatch_fails_everywhere() -> None:
    params = SecAggParams(clients=("c0", "c1"), threshold=2, dimension=2)
    vectors = make_vectors(params)
    net = LocalNetwork(["server", "c0", "c1"])
    session = os.urandom(16).hex()
    chans = {
        p: net.channel(p, protocol=PROTOCOL, version=VERSION, session=session, timeout=10)
        for p in ("server", "c0", "c1")
    }
    results = run_local(
        {
            "server": lambda: aggregate_as_server(
                chans["server"], params=params, round=0, timeout=5
            ),
            "c0": lambda: contribute_as_client(
                chans["c0"], server="server", params=params, vector=vectors["c0"], round=0
            ),
            "c1": lambda: contribute_as_client(
                chans["c1"], server="server", params=params, vector=vectors["c1"], round=1
            ),
        }
    )
    all_failed(results, "round 1, expected 0")


def test_drivers_refuse_a_wrong_channel() -> None:
    params = SecAggParams(clients=("c0", "c1"), threshold=2, dimension=2)
    net = LocalNetwork(["server", "c0", "c1"])
    chan = net.channel("server", protocol="psi", version=1, session="0" * 32)
    with pytest.raises(InvalidInput, match="not secagg"):
        aggregate_as_server(chan, params=params)
    chan = net.channel("c0", protocol=PROTOCOL, version=VERSION, session="0" * 32)
    with pytest.raises(InvalidInput, match="must not be a client"):
        aggregate_as_server(chan, params=params)


if __name__ == "__main__":
    VECTORS.parent.mkdir(parents=True, exist_ok=True)
    VECTORS.write_text(dump(build_vectors()))
    print(f"wrote {VECTORS}")
