"""Secure aggregation of integer vectors (Bonawitz et al., CCS 2017), semi-honest server.

A server learns ``sum_{u in U3} x_u mod 2^b`` over the clients ``U3`` whose
masked inputs it received, and nothing else about the ``x_u``; clients may
drop out at any round as long as ``threshold`` of them remain.

Notation: ``params.clients = (c_0 .. c_{n-1})``; client ``c_i`` has index
``i`` and Shamir point ``x = i + 1``. ``ctx = SHA-256("sealroom-secagg-v1
context" || params digest || session || round)`` binds every key, mask and
ciphertext to one aggregation. ``HKDF`` is HKDF-SHA256 with salt ``ctx``.
``PRG(k)`` is the AES-128-CTR keystream of key ``k`` (zero IV; every key is
used for one keystream) read as little-endian 32- or 64-bit words; all vector
arithmetic is mod ``2^b`` (``b = params.modulus_bits``).

Message flow (``S`` the server, every message carries ``round``)::

  1 AdvertiseKeys   u -> S   "advertise-keys": params digest, c_u^PK, s_u^PK,
                             commit_u = SHA-256(ctx || i_u || b_u)
                    S -> u   "key-roster": params digest; to u in U1 (>= t
                             answered): bitmap U1 and all c^PK, s^PK; to the
                             others: included = false (they stop)
  2 ShareKeys       u -> S   "share-keys": for each v in U1 \\ {u}, AES-256-GCM
                             under HKDF(X25519(c_u, c_v^PK), "share-encryption"
                             || i_u || i_v) of Shamir shares of b_u and of s_u^SK
                             at x_v (threshold t, field GF(2^256 + 297))
                    S -> v   "routed-shares": to v in U2 (>= t answered): bitmap
                             U2 and the ciphertexts addressed to v
  3 MaskedInput     u -> S   "masked-input": y_u = z_u XOR PRG(HKDF(b_u, i_u)),
                             z_u = x_u + sum_{v in U2, v != u} sign(u, v) PRG(k_uv),
                             k_uv = HKDF(X25519(s_u, s_v^PK), i_min || i_max),
                             sign = +1 if i_u < i_v else -1
  4 Unmasking       S -> u   "unmask-request": to u in U3 (>= t answered):
                             bitmap U3; u answers with shares of b_v for every
                             v in U3 and of s_v^SK for every v in U2 \\ U3
                    u -> S   "unmask-shares"
                    S -> u   "result": bitmap U3 (whose inputs are in the sum)

The server takes the first ``t`` responders (by index), interpolates every
secret with one set of Lagrange coefficients, checks each reconstructed
``b_v`` against ``commit_v`` and each ``s_v^SK`` against ``s_v^PK`` (a wrong
share aborts the run instead of corrupting the sum), and outputs
``sum_{u in U3} (y_u XOR PRG(b_u)) - sum_{v in U2 \\ U3, u in U3} sign(u, v) PRG(k_uv)``.
Fewer than ``t`` clients at any step is a :class:`ProtocolError` on every side
and no sum.

The self mask is a one-time pad by XOR, where Bonawitz et al. add it: with a
uniform keystream either hides ``z_u`` perfectly, and the server ends up
knowing the same ``z_u`` of every survivor either way; XOR lets each side
apply or remove the mask in the AES-CTR pass that generates it (no separate
keystream buffer and subtraction): a fifth of the server's work at 0% dropouts.

A client never sends both a share of ``b_v`` and a share of ``s_v^SK`` for
the same ``v``: it derives the two sets itself from ``U3`` (which must lie in
its ``U2`` and contain itself) and answers one unmask request per round.

Not here, so the server is trusted to follow the protocol (semi-honest):
Bonawitz's signed AdvertiseKeys and ConsistencyCheck round. An active server
that substitutes c-keys in the roster decrypts the shares meant for others
and can rebuild any client's secrets. Without substitution, ``t > n/2``
(enforced) means it cannot gather ``t`` shares of both ``b_u`` and ``s_u`` from
honest clients by telling them different U3s (each answers one request);
with ``c`` corrupted clients answering both it needs ``2t <= n + c``. Inputs
are not range-checked: a malicious client can add any vector to the sum.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import struct
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sealroom.errors import InvalidInput, ProtocolError
from sealroom.protocols import shamir
from sealroom.protocols.channel import Channel
from sealroom.protocols.wire import Frame
from sealroom.statements.canonical import canonical_json

__all__ = [
    "MAX_CLIENTS",
    "MAX_DIMENSION",
    "PROTOCOL",
    "VERSION",
    "Advertisement",
    "ClientOutcome",
    "PublicKeys",
    "SecAggClient",
    "SecAggParams",
    "SecAggResult",
    "SecAggServer",
    "UnmaskResponse",
    "aggregate_as_server",
    "contribute_as_client",
    "run_context",
]

PROTOCOL = "secagg"
VERSION = 1
MAX_CLIENTS = 1000
MAX_DIMENSION = 1 << 22
KEY_SIZE = 32
COMMIT_SIZE = 32
CIPHERTEXT_SIZE = 2 * shamir.SHARE_SIZE + 16
_LABEL = b"sealroom-secagg-v1 "
_NONCE = bytes(12)  # every share-encryption key encrypts exactly one message
_IV = bytes(16)  # every mask key expands exactly one keystream

K_ADVERTISE = "advertise-keys"
K_ROSTER = "key-roster"
K_SHARE = "share-keys"
K_ROUTED = "routed-shares"
K_MASKED = "masked-input"
K_UNMASK = "unmask-request"
K_REVEAL = "unmask-shares"
K_RESULT = "result"

Rng = Callable[[int], bytes]


# --- parameters -----------------------------------------------------------------------


@dataclass(frozen=True)
class SecAggParams:
    """What every party must agree on; the digest of :meth:`as_dict` opens the run."""

    clients: tuple[str, ...]
    threshold: int
    dimension: int
    modulus_bits: int = 32

    def __post_init__(self) -> None:
        clients = self.clients
        if not isinstance(clients, tuple) or not all(isinstance(c, str) for c in clients):
            raise InvalidInput("clients must be a tuple of party names")
        if len(set(clients)) != len(clients) or not 2 <= len(clients) <= MAX_CLIENTS:
            raise InvalidInput(f"clients must be 2..{MAX_CLIENTS} distinct names")
        for c in clients:
            try:  # the wire's own rule for party names
                Frame(
                    protocol=PROTOCOL,
                    version=VERSION,
                    session="0" * 32,
                    kind="check",
                    seq=0,
                    sender=c,
                    recipient=c,
                )
            except ProtocolError:
                raise InvalidInput(f"client name {c!r} is not a valid party name") from None
        n = len(clients)
        if type(self.threshold) is not int or not n // 2 < self.threshold <= n:
            raise InvalidInput(
                f"threshold must be a strict majority of the {n} clients ({n // 2 + 1}..{n}): "
                "with t <= n/2 a server could collect both kinds of share for one client"
            )
        if type(self.dimension) is not int or not 1 <= self.dimension <= MAX_DIMENSION:
            raise InvalidInput(f"dimension must be an integer in 1..{MAX_DIMENSION}")
        if type(self.modulus_bits) is not int or not 1 <= self.modulus_bits <= 64:
            raise InvalidInput("modulus_bits must be an integer in 1..64")

    @property
    def dtype(self) -> np.dtype[np.unsignedinteger[Any]]:
        return np.dtype("<u4") if self.modulus_bits <= 32 else np.dtype("<u8")

    @property
    def mask(self) -> int:
        return (1 << self.modulus_bits) - 1

    @functools.cached_property
    def positions(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.clients)}

    def index(self, name: str) -> int:
        return self.positions[name]

    def as_dict(self) -> dict[str, object]:
        return {
            "clients": list(self.clients),
            "threshold": self.threshold,
            "dimension": self.dimension,
            "modulus_bits": self.modulus_bits,
        }

    def digest(self) -> str:
        body = {"protocol": PROTOCOL, "version": VERSION, "params": self.as_dict()}
        return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()


def run_context(*, params: SecAggParams, session: str, round: int) -> bytes:
    """The 32 bytes every key, mask and ciphertext of one aggregation is bound to."""
    if type(round) is not int or not 0 <= round < 2**31:
        raise InvalidInput("round must be an integer in 0..2^31-1")
    h = hashlib.sha256(_LABEL + b"context\0")
    for part in (params.digest().encode(), session.encode()):
        h.update(len(part).to_bytes(4, "big") + part)
    h.update(round.to_bytes(4, "big"))
    return h.digest()


# --- values exchanged -----------------------------------------------------------------


@dataclass(frozen=True)
class PublicKeys:
    c_public: bytes  # X25519, for encrypting shares
    s_public: bytes  # X25519, for pairwise masks


@dataclass(frozen=True)
class Advertisement:
    keys: PublicKeys
    seed_commitment: bytes


@dataclass(frozen=True)
class UnmaskResponse:
    """Share values (33 bytes each) of ``b_v`` for v in U3 and of ``s_v^SK`` for v in U2 \\ U3."""

    b_shares: bytes
    s_shares: bytes


@dataclass(frozen=True, eq=False)
class SecAggResult:
    sum: np.ndarray[Any, np.dtype[np.unsignedinteger[Any]]]
    survivors: tuple[str, ...]  # whose inputs are in the sum (U3)
    dropped: tuple[str, ...]  # everyone else
    round: int


@dataclass(frozen=True)
class ClientOutcome:
    """What a client learns: whether its input is in the sum, and whose inputs are."""

    included: bool
    survivors: tuple[str, ...]


# --- primitives -----------------------------------------------------------------------


def _hkdf(ikm: bytes, *, context: bytes, info: bytes, length: int) -> bytes:
    return HKDF(hashes.SHA256(), length, salt=context, info=_LABEL + info).derive(ikm)


def _exchange(private: X25519PrivateKey, public: bytes, *, whose: str) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError:
        raise ProtocolError(f"the public key of {whose} is a low-order point") from None


def _raw_public(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def _pair(i: int, j: int) -> bytes:
    return struct.pack(">HH", i, j)


def _share_key(shared: bytes, context: bytes, sender: int, recipient: int) -> bytes:
    return _hkdf(
        shared, context=context, info=b"share-encryption" + _pair(sender, recipient), length=32
    )


def _share_aad(context: bytes, sender: int, recipient: int) -> bytes:
    return _LABEL + b"shares" + context + _pair(sender, recipient)


def _pair_mask_key(shared: bytes, context: bytes, i: int, j: int) -> bytes:
    lo, hi = min(i, j), max(i, j)
    return _hkdf(shared, context=context, info=b"pairwise-mask" + _pair(lo, hi), length=16)


def _self_mask_key(seed: bytes, context: bytes, i: int) -> bytes:
    return _hkdf(seed, context=context, info=b"self-mask" + struct.pack(">H", i), length=16)


def _seed_commitment(seed: bytes, context: bytes, i: int) -> bytes:
    return hashlib.sha256(
        _LABEL + b"seed-commitment\0" + context + struct.pack(">H", i) + seed
    ).digest()


class _Prg:
    """AES-128-CTR keystream as a vector of words, written into one reused buffer."""

    def __init__(self, params: SecAggParams) -> None:
        self._nbytes = params.dimension * params.dtype.itemsize
        self._zeros = bytes(self._nbytes)
        self._buf = bytearray(self._nbytes + 16)
        self._words = np.frombuffer(self._buf, dtype=params.dtype, count=params.dimension)

    def expand(
        self, key: bytes, *, xor: np.ndarray[Any, Any] | None = None
    ) -> np.ndarray[Any, np.dtype[np.unsignedinteger[Any]]]:
        """``PRG(key)``, or ``xor ^ PRG(key)`` in the same single pass; overwritten by the next call."""
        data: Any = self._zeros if xor is None else xor.data.cast("B")
        encryptor = Cipher(algorithms.AES(key), modes.CTR(_IV)).encryptor()
        if encryptor.update_into(data, self._buf) != self._nbytes:
            raise InvalidInput("a mask input has the wrong size")
        return self._words


def _sorted_members(params: SecAggParams, names: Collection[str], *, what: str) -> list[str]:
    wanted = set(names)
    for name in wanted:
        if name not in params.positions:
            raise ProtocolError(f"{what} names {name!r}, who is not a client of this run")
    return [c for c in params.clients if c in wanted]


def _need(params: SecAggParams, count: int, *, what: str) -> None:
    if count < params.threshold:
        raise ProtocolError(
            f"only {count} of {len(params.clients)} clients {what} "
            f"(threshold {params.threshold}); no sum is released"
        )


# --- client ---------------------------------------------------------------------------


class SecAggClient:
    """One client's side as pure round functions (no I/O): call them in order.

    Messages are in their wire form: lists of ciphertexts and share values are
    concatenated fixed-size items in client-index order.
    """

    def __init__(
        self,
        *,
        params: SecAggParams,
        me: str,
        vector: np.ndarray[Any, Any],
        context: bytes,
        rng: Rng = os.urandom,
    ) -> None:
        if me not in params.clients:
            raise InvalidInput(f"{me!r} is not one of the clients")
        if len(context) != 32:
            raise InvalidInput("the run context must be 32 bytes")
        self.params = params
        self.me = me
        self.index = params.index(me)
        self.context = context
        self._rng = rng
        self._x = _check_vector(params, vector)
        self._c = X25519PrivateKey.from_private_bytes(rng(KEY_SIZE))
        self._s_bytes = rng(KEY_SIZE)
        self._s = X25519PrivateKey.from_private_bytes(self._s_bytes)
        self._b = rng(KEY_SIZE)
        self._keys = PublicKeys(_raw_public(self._c), _raw_public(self._s))
        self._roster: dict[str, PublicKeys] = {}
        self._c_shared: dict[str, bytes] = {}
        self._u2: list[str] = []
        self._b_shares: dict[str, bytes] = {}
        self._s_shares: dict[str, bytes] = {}
        self.survivors: tuple[str, ...] = ()
        self._phase = 0

    def __repr__(self) -> str:
        return f"SecAggClient(me={self.me!r}, phase={self._phase})"

    def _advance(self, expected: int, step: str) -> None:
        if self._phase != expected:
            raise ProtocolError(f"{self.me}: {step} is out of order")
        self._phase += 1

    def advertise(self) -> Advertisement:
        """Round 1: the two public keys and a commitment to the self-mask seed."""
        self._advance(0, "advertising keys")
        return Advertisement(self._keys, _seed_commitment(self._b, self.context, self.index))

    def share_keys(self, roster: Mapping[str, PublicKeys]) -> bytes:
        """Round 2: encrypted shares of ``b_u`` and ``s_u^SK``, one per other client in U1."""
        self._advance(1, "sharing keys")
        params = self.params
        u1 = _sorted_members(params, roster, what="the key roster")
        _need(params, len(u1), what="advertised keys")
        if self.me not in roster or roster[self.me] != self._keys:
            raise ProtocolError(f"the key roster does not carry {self.me}'s own keys")
        keys = [k for name in u1 for k in (roster[name].c_public, roster[name].s_public)]
        if len(set(keys)) != len(keys):
            raise ProtocolError("the key roster repeats a public key")
        self._roster = {name: roster[name] for name in u1}
        xs = [params.index(v) + 1 for v in u1]
        b_shares = shamir.split(self._b, threshold=params.threshold, xs=xs, rng=self._rng)
        s_shares = shamir.split(self._s_bytes, threshold=params.threshold, xs=xs, rng=self._rng)
        out: list[bytes] = []
        for v, b_share, s_share in zip(u1, b_shares, s_shares, strict=True):
            if v == self.me:
                self._b_shares[v], self._s_shares[v] = b_share.value_bytes(), s_share.value_bytes()
                continue
            j = params.index(v)
            shared = self._c_shared[v] = _exchange(self._c, roster[v].c_public, whose=v)
            key = _share_key(shared, self.context, self.index, j)
            plaintext = b_share.value_bytes() + s_share.value_bytes()
            out.append(
                AESGCM(key).encrypt(_NONCE, plaintext, _share_aad(self.context, self.index, j))
            )
        return b"".join(out)

    def masked_input(
        self, u2: Collection[str], ciphertexts: bytes
    ) -> np.ndarray[Any, np.dtype[np.unsignedinteger[Any]]]:
        """Round 3: ``y_u``, given U2 and the ciphertexts from U2 \\ {u} (index order)."""
        self._advance(2, "masking the input")
        params = self.params
        members = _sorted_members(params, u2, what="U2")
        if not set(members) <= set(self._roster):
            raise ProtocolError("U2 names a client that is not in the key roster")
        if self.me not in members:
            raise ProtocolError(f"U2 leaves out {self.me}, who shared its keys")
        _need(params, len(members), what="shared their keys")
        senders = [u for u in members if u != self.me]
        if len(ciphertexts) != len(senders) * CIPHERTEXT_SIZE:
            raise ProtocolError(f"{self.me} needs exactly one share ciphertext per client in U2")
        size = shamir.SHARE_SIZE
        for pos, u in enumerate(senders):
            i = params.index(u)
            data = ciphertexts[pos * CIPHERTEXT_SIZE : (pos + 1) * CIPHERTEXT_SIZE]
            key = _share_key(self._c_shared[u], self.context, i, self.index)
            try:
                plain = AESGCM(key).decrypt(_NONCE, data, _share_aad(self.context, i, self.index))
            except InvalidTag:
                raise ProtocolError(f"the share ciphertext from {u} does not decrypt") from None
            for part in (plain[:size], plain[size:]):
                shamir.Share.from_bytes(1, part, what=f"the share from {u}")  # a field element
            self._b_shares[u], self._s_shares[u] = plain[:size], plain[size:]
        self._u2 = members
        prg = _Prg(params)
        z = self._x.copy()
        for v in senders:
            j = params.index(v)
            shared = _exchange(self._s, self._roster[v].s_public, whose=v)
            mask = prg.expand(_pair_mask_key(shared, self.context, self.index, j))
            if self.index < j:
                z += mask
            else:
                z -= mask
        y = prg.expand(_self_mask_key(self._b, self.context, self.index), xor=z).copy()
        y &= params.dtype.type(params.mask)
        return y

    def unmask(self, survivors: Collection[str]) -> UnmaskResponse:
        """Round 4: shares of ``b_v`` for v in ``survivors`` (U3), of ``s_v^SK`` for v in U2 \\ U3.

        Refuses any request that would reveal both secrets of one client: U3
        must lie in this client's U2 and include it, and there is one request
        per run.
        """
        if self._phase > 3:
            raise ProtocolError(
                f"{self.me} refuses a second unmask request: "
                "it could reveal both secrets of a client"
            )
        if self._phase != 3:
            raise ProtocolError(f"{self.me}: unmasking is out of order")
        params = self.params
        u3 = _sorted_members(params, survivors, what="the unmask request")
        if not set(u3) <= set(self._u2):
            raise ProtocolError("the unmask request names survivors who never shared their keys")
        if self.me not in u3:
            raise ProtocolError(f"the unmask request leaves out {self.me}, who sent its input")
        _need(params, len(u3), what="sent masked inputs")
        dropped = [v for v in self._u2 if v not in u3]
        self._phase = 4
        self.survivors = tuple(u3)
        return UnmaskResponse(
            b"".join(self._b_shares[v] for v in u3), b"".join(self._s_shares[v] for v in dropped)
        )


def _check_vector(params: SecAggParams, vector: object) -> np.ndarray[Any, Any]:
    if not isinstance(vector, np.ndarray) or vector.dtype.kind not in "ui":
        raise InvalidInput("the input must be a numpy array of integers")
    if vector.shape != (params.dimension,):
        raise InvalidInput(f"the input must have shape ({params.dimension},)")
    if vector.size and (int(vector.min()) < 0 or int(vector.max()) > params.mask):
        raise InvalidInput(f"input values must lie in 0..2^{params.modulus_bits}-1")
    return vector.astype(params.dtype, copy=True)


# --- server ---------------------------------------------------------------------------


class SecAggServer:
    """The server's side as pure round functions (no I/O): call them in order."""

    def __init__(self, *, params: SecAggParams, context: bytes) -> None:
        if len(context) != 32:
            raise InvalidInput("the run context must be 32 bytes")
        self.params = params
        self.context = context
        self._roster: dict[str, Advertisement] = {}
        self._u2: list[str] = []
        self._u3: list[str] = []
        self._inputs: dict[str, np.ndarray[Any, Any]] = {}
        self._phase = 0

    def _advance(self, expected: int, step: str) -> None:
        if self._phase != expected:
            raise InvalidInput(f"server: {step} is out of order")
        self._phase += 1

    def receive_advertisements(self, ads: Mapping[str, Advertisement]) -> dict[str, PublicKeys]:
        """Round 1: U1 and its public keys, to broadcast (fewer than t ends the run)."""
        self._advance(0, "collecting keys")
        u1 = _sorted_members(self.params, ads, what="the advertisements")
        _need(self.params, len(u1), what="advertised keys")
        seen: set[bytes] = set()
        for u in u1:
            ad = ads[u]
            keys = ad.keys
            if (
                len(keys.c_public) != KEY_SIZE
                or len(keys.s_public) != KEY_SIZE
                or len(ad.seed_commitment) != COMMIT_SIZE
            ):
                raise ProtocolError(f"{u} advertised keys or a commitment of the wrong size")
            if keys.c_public in seen or keys.s_public in seen or keys.c_public == keys.s_public:
                raise ProtocolError(f"{u} advertised a public key that is already in use")
            seen |= {keys.c_public, keys.s_public}
        self._roster = {u: ads[u] for u in u1}
        return {u: ads[u].keys for u in u1}

    def route_shares(self, sent: Mapping[str, bytes]) -> dict[str, bytes]:
        """Round 2: for each client in U2 (the keys, in index order), its ciphertexts.

        ``sent[u]`` holds u's ciphertexts for U1 \\ {u} in index order; the
        output for ``v`` holds those from U2 \\ {v}, in index order. The
        regrouping is one numpy transpose, not ``n^2`` Python operations.
        """
        self._advance(1, "routing shares")
        u1 = list(self._roster)
        m = len(u1)
        for u, blob in sent.items():
            if u not in self._roster:
                raise ProtocolError(f"{u!r} sent shares without advertising keys")
            if len(blob) != (m - 1) * CIPHERTEXT_SIZE:
                raise ProtocolError(
                    f"{u} did not send exactly one share ciphertext per client in U1"
                )
        pos2 = [a for a, u in enumerate(u1) if u in sent]
        u2 = [u1[a] for a in pos2]
        _need(self.params, len(u2), what="shared their keys")
        self._u2 = u2
        k = len(u2)
        item = np.dtype((np.void, CIPHERTEXT_SIZE))  # whole ciphertexts move as single items
        flat = np.frombuffer(b"".join(sent[u] for u in u2), dtype=item)
        a = np.array(pos2)
        # [recipient r, sender s]: sender s wrote r's ciphertext at a[r] - (a[r] > a[s]),
        # as its list skips itself; one gather builds every recipient's list
        where = a[:, None] - (a[:, None] > a[None, :]) + np.arange(k)[None, :] * (m - 1)
        index = where[~np.eye(k, dtype=bool)].reshape(k, k - 1)
        by_recipient = flat[index]
        return {v: by_recipient[r].tobytes() for r, v in enumerate(u2)}

    def receive_masked_inputs(self, inputs: Mapping[str, np.ndarray[Any, Any]]) -> tuple[str, ...]:
        """Round 3: check and keep the masked inputs; returns U3, to ask for unmasking shares."""
        self._advance(2, "collecting masked inputs")
        params = self.params
        for u in inputs:
            if u not in self._u2:
                raise ProtocolError(f"masked input from {u!r}, who did not share keys")
        u3 = [u for u in self._u2 if u in inputs]
        _need(params, len(u3), what="sent masked inputs")
        for u in u3:
            y = inputs[u]
            if y.dtype != params.dtype or y.shape != (params.dimension,):
                raise ProtocolError(f"the masked input from {u} has the wrong type or length")
            if params.modulus_bits not in (32, 64) and int(y.max()) > params.mask:
                raise ProtocolError(
                    f"the masked input from {u} is not reduced mod 2^{params.modulus_bits}"
                )
            if not y.flags.c_contiguous:
                raise ProtocolError(f"the masked input from {u} is not a contiguous array")
        self._inputs = {u: inputs[u] for u in u3}
        self._u3 = u3
        return tuple(u3)

    def unmask(self, responses: Mapping[str, UnmaskResponse], *, round: int = 0) -> SecAggResult:
        """Round 4: rebuild the seeds and keys from ``t`` responses, remove every mask."""
        self._advance(3, "unmasking")
        params = self.params
        u3, dropped = self._u3, [v for v in self._u2 if v not in self._u3]
        share = shamir.SHARE_SIZE
        for u, r in responses.items():
            if u not in u3:
                raise ProtocolError(f"unmask shares from {u!r}, who was not asked for them")
            if len(r.b_shares) != len(u3) * share or len(r.s_shares) != len(dropped) * share:
                raise ProtocolError(f"{u} sent the wrong number of unmask shares")
        holders = [u for u in u3 if u in responses]
        _need(params, len(holders), what="answered the unmask request")
        holders = holders[: params.threshold]
        coefficients = shamir.lagrange_at_zero([params.index(u) + 1 for u in holders])
        seeds = shamir.combine_many(
            coefficients, [responses[h].b_shares for h in holders], what="self-mask seed shares"
        )
        keys = shamir.combine_many(
            coefficients, [responses[h].s_shares for h in holders], what="mask key shares"
        )
        prg = _Prg(params)
        total = np.zeros(params.dimension, dtype=params.dtype)
        for u, value in zip(u3, seeds, strict=True):
            i = params.index(u)
            seed = shamir.to_secret(value, what=f"{u}'s self-mask seed")
            if not hmac.compare_digest(
                _seed_commitment(seed, self.context, i), self._roster[u].seed_commitment
            ):
                raise ProtocolError(f"the unmask shares of {u}'s self-mask seed are inconsistent")
            # y_u ^ PRG(b_u) = x_u + pairwise masks: one AES-CTR pass over y_u
            total += prg.expand(_self_mask_key(seed, self.context, i), xor=self._inputs[u])
        for v, value in zip(dropped, keys, strict=True):
            j = params.index(v)
            s_v = X25519PrivateKey.from_private_bytes(
                shamir.to_secret(value, what=f"{v}'s mask key")
            )
            if not hmac.compare_digest(_raw_public(s_v), self._roster[v].keys.s_public):
                raise ProtocolError(f"the unmask shares of {v}'s mask key are inconsistent")
            for u in u3:
                i = params.index(u)
                shared = _exchange(s_v, self._roster[u].keys.s_public, whose=u)
                mask = prg.expand(_pair_mask_key(shared, self.context, i, j))
                if i < j:  # y_u carries +mask if i < j, else -mask: take it out
                    total -= mask
                else:
                    total += mask
        total &= params.dtype.type(params.mask)
        self._inputs = {}
        counted = set(u3)
        return SecAggResult(
            sum=total,
            survivors=tuple(u3),
            dropped=tuple(c for c in params.clients if c not in counted),
            round=round,
        )


# --- channel drivers ------------------------------------------------------------------


def _bitmap(params: SecAggParams, names: Collection[str]) -> bytes:
    return bytes(1 if c in names else 0 for c in params.clients)


def _read_bitmap(frame: Frame, name: str, params: SecAggParams) -> list[str]:
    data = frame.blob(name, max_size=len(params.clients), size=len(params.clients))
    if any(b > 1 for b in data):
        raise ProtocolError(f"{frame.what}: {name} is not a bitmap")
    return [c for c, b in zip(params.clients, data, strict=True) if b]


def _check_round(frame: Frame, round: int) -> None:
    got = frame.int_field("round", lo=0, hi=2**31 - 1)
    if got != round:
        raise ProtocolError(f"{frame.what}: round {got}, expected {round}")


def _check_params(frame: Frame, params: SecAggParams) -> None:
    got = frame.str_field("params", max_len=80)
    if got != params.digest():
        raise ProtocolError(f"{frame.what}: parameters differ ({got} != {params.digest()})")


def _included(frame: Frame, round: int, *, fields: Sequence[str], blobs: Sequence[str]) -> bool:
    """Check a server message; False (and nothing else in it) means this client is out."""
    included = frame.bool_field("included")
    frame.only(fields=("round", "included", *fields), blobs=blobs if included else ())
    _check_round(frame, round)
    return included


def _check_channel(channel: Channel, params: SecAggParams, *, server: str | None) -> None:
    if channel.protocol != PROTOCOL or channel.version != VERSION:
        raise InvalidInput(f"the channel runs {channel.protocol} v{channel.version}, not secagg")
    if server is None:
        missing = [c for c in params.clients if c not in channel.peers]
        if channel.me in params.clients or missing:
            raise InvalidInput("the server must not be a client, and every client must be a peer")
    elif channel.me not in params.clients or server not in channel.peers:
        raise InvalidInput("this party must be a client and the server one of its peers")


def _send_each(
    channel: Channel,
    kind: str,
    recipients: Sequence[str],
    included: Collection[str],
    *,
    fields: Mapping[str, object],
    blobs: Callable[[str], Mapping[str, bytes]],
) -> None:
    """One message per recipient: the round's data if included, else a notice to stop."""
    for u in recipients:
        inside = u in included
        channel.send(
            u,
            kind,
            fields={**fields, "included": inside},
            blobs=blobs(u) if inside else None,
        )


def aggregate_as_server(
    channel: Channel, *, params: SecAggParams, round: int = 0, timeout: float = 60.0
) -> SecAggResult:
    """Run the server role; a client that misses a round's ``timeout`` has dropped out.

    A client that dropped out of a round must not be listed again in a later
    round on the same channel: its late messages may still be queued.
    """
    _check_channel(channel, params, server=None)
    context = run_context(params=params, session=channel.session, round=round)
    server = SecAggServer(params=params, context=context)
    everyone = list(params.clients)
    with channel.guard():
        # 1. AdvertiseKeys
        ads: dict[str, Advertisement] = {}
        for u, f in channel.collect(everyone, K_ADVERTISE, timeout=timeout).items():
            f.only(fields=("round", "params"), blobs=("c_key", "s_key", "commitment"))
            _check_round(f, round)
            _check_params(f, params)
            keys = PublicKeys(
                f.blob("c_key", max_size=KEY_SIZE, size=KEY_SIZE),
                f.blob("s_key", max_size=KEY_SIZE, size=KEY_SIZE),
            )
            commitment = f.blob("commitment", max_size=COMMIT_SIZE, size=COMMIT_SIZE)
            ads[u] = Advertisement(keys, commitment)
        roster = server.receive_advertisements(ads)
        u1 = list(roster)
        roster_blobs = {
            "members": _bitmap(params, u1),
            "c_keys": b"".join(roster[u].c_public for u in u1),
            "s_keys": b"".join(roster[u].s_public for u in u1),
        }
        _send_each(
            channel,
            K_ROSTER,
            everyone,
            u1,
            fields={"round": round, "params": params.digest()},
            blobs=lambda u: roster_blobs,
        )

        # 2. ShareKeys
        count = (len(u1) - 1) * CIPHERTEXT_SIZE
        sent: dict[str, bytes] = {}
        for u, f in channel.collect(u1, K_SHARE, timeout=timeout).items():
            f.only(fields=("round",), blobs=("ciphertexts",))
            _check_round(f, round)
            sent[u] = f.blob("ciphertexts", max_size=count, size=count)
        routed = server.route_shares(sent)
        u2 = list(routed)
        members2 = _bitmap(params, u2)
        _send_each(
            channel,
            K_ROUTED,
            u1,
            u2,
            fields={"round": round},
            blobs=lambda u: {"members": members2, "ciphertexts": routed[u]},
        )

        # 3. MaskedInputCollection
        size = params.dimension * params.dtype.itemsize
        inputs: dict[str, np.ndarray[Any, Any]] = {}
        for u, f in channel.collect(u2, K_MASKED, timeout=timeout).items():
            f.only(fields=("round",), blobs=("y",))
            _check_round(f, round)
            inputs[u] = np.frombuffer(f.blob("y", max_size=size, size=size), dtype=params.dtype)
        u3 = list(server.receive_masked_inputs(inputs))
        del inputs
        members3 = _bitmap(params, u3)
        _send_each(
            channel,
            K_UNMASK,
            u2,
            u3,
            fields={"round": round},
            blobs=lambda u: {"members": members3},
        )

        # 4. Unmasking
        n_b, n_s = len(u3) * shamir.SHARE_SIZE, (len(u2) - len(u3)) * shamir.SHARE_SIZE
        responses: dict[str, UnmaskResponse] = {}
        for u, f in channel.collect(u3, K_REVEAL, timeout=timeout).items():
            f.only(fields=("round",), blobs=("b_shares", "s_shares"))
            _check_round(f, round)
            responses[u] = UnmaskResponse(
                f.blob("b_shares", max_size=n_b, size=n_b),
                f.blob("s_shares", max_size=n_s, size=n_s),
            )
        result = server.unmask(responses, round=round)
        for u in u3:
            channel.send(u, K_RESULT, fields={"round": round}, blobs={"members": members3})
    return result


def contribute_as_client(
    channel: Channel,
    *,
    server: str,
    params: SecAggParams,
    vector: np.ndarray[Any, Any],
    round: int = 0,
    rng: Rng = os.urandom,
    timeout: float | None = None,
) -> ClientOutcome:
    """Run one client; returns whether its input made it into the sum, and whose did.

    ``timeout`` (default: the channel's) must exceed the server's per-round
    timeout: the server answers only once a round is complete.
    """
    _check_channel(channel, params, server=server)
    context = run_context(params=params, session=channel.session, round=round)
    client = SecAggClient(params=params, me=channel.me, vector=vector, context=context, rng=rng)
    out = ClientOutcome(included=False, survivors=())
    with channel.guard():
        # 1. AdvertiseKeys
        ad = client.advertise()
        channel.send(
            server,
            K_ADVERTISE,
            fields={"round": round, "params": params.digest()},
            blobs={
                "c_key": ad.keys.c_public,
                "s_key": ad.keys.s_public,
                "commitment": ad.seed_commitment,
            },
        )
        f = channel.expect(server, K_ROSTER, timeout=timeout)
        blobs = ("members", "c_keys", "s_keys")
        if not _included(f, round, fields=("params",), blobs=blobs):
            _check_params(f, params)
            return out
        _check_params(f, params)
        u1 = _read_bitmap(f, "members", params)
        k = len(u1)
        c_keys = f.items("c_keys", size=KEY_SIZE, max_count=k, min_count=k)
        s_keys = f.items("s_keys", size=KEY_SIZE, max_count=k, min_count=k)
        roster = {u: PublicKeys(c, s) for u, c, s in zip(u1, c_keys, s_keys, strict=True)}

        # 2. ShareKeys
        channel.send(
            server,
            K_SHARE,
            fields={"round": round},
            blobs={"ciphertexts": client.share_keys(roster)},
        )
        f = channel.expect(server, K_ROUTED, timeout=timeout)
        if not _included(f, round, fields=(), blobs=("members", "ciphertexts")):
            return out
        u2 = _read_bitmap(f, "members", params)
        size = (len(u2) - 1) * CIPHERTEXT_SIZE
        if channel.me not in u2:
            raise ProtocolError(f"{f.what}: U2 leaves out {channel.me}, who shared its keys")
        ciphertexts = f.blob("ciphertexts", max_size=size, size=size)

        # 3. MaskedInputCollection
        y = client.masked_input(u2, ciphertexts)
        channel.send(server, K_MASKED, fields={"round": round}, blobs={"y": y.tobytes()})

        # 4. Unmasking
        f = channel.expect(server, K_UNMASK, timeout=timeout)
        if not _included(f, round, fields=(), blobs=("members",)):
            return out
        response = client.unmask(_read_bitmap(f, "members", params))
        channel.send(
            server,
            K_REVEAL,
            fields={"round": round},
            blobs={"b_shares": response.b_shares, "s_shares": response.s_shares},
        )
        f = channel.expect(server, K_RESULT, timeout=timeout)
        f.only(fields=("round",), blobs=("members",))
        _check_round(f, round)
        u3 = tuple(_read_bitmap(f, "members", params))
        if u3 != client.survivors:
            raise ProtocolError(f"{f.what}: the survivor list contradicts the unmask request")
        return ClientOutcome(included=True, survivors=u3)
