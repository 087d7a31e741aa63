"""Private intersection-sum with cardinality (Private Join and Compute, Ion et al. 2020).

Party ``a`` holds a set of identifiers; party ``b`` holds identifiers with
integer values in ``[0, max_value]``. ``a`` learns ``|A n B|`` and, if it is at
least ``min_intersection``, ``sum of b's values over A n B`` (exact, or plus
discrete-Laplace noise added by ``b``); ``b`` learns ``|A|`` and whether the
intersection reached the minimum. Neither learns which identifiers matched.

Building blocks: DH masking in Curve25519 (:mod:`~sealroom.protocols.group`:
``H`` = Elligator 2 hash to the group, bound to the session; X25519 for
``k*P``), and exponential ElGamal over Edwards25519 under a key that only ``b``
holds (:mod:`~sealroom.protocols.elgamal`). Scalars ``ka``, ``kb``, the ElGamal
key ``x`` (``hb = x*G``) and the blinding ``s`` are fresh per run.

Message flow (``n = |A|``, ``m = |B|``; item lists travel in chunks of at most
:data:`CHUNK` items, so no message exceeds ~1.6 MB; counts are fixed by the
sizes declared in the hellos, which are bounded by ``max_set_size``)::

    a -> b  hello     params, n
    a -> b  a-masked  x ceil(n/CHUNK): ka*H(a) for a in A, in random order
    b -> a  hello     params, m, hb                (b aborts if params differ;
                                                    a checks the echo too)
    b -> a  b-pairs   x ceil(m/CHUNK): (kb*H(b), Enc_hb(t_b)) in random order
    b -> a  a-double  x ceil(n/CHUNK): kb*(ka*H(a)) for every a-masked item, shuffled
    a -> b  sum       meets_minimum (0/1), query Q = torsionfree(sum_matched c1) + s*G
    b -> a  share     D = x*(T [+ e1]) with a Chaum-Pedersen proof, and with DP the
                      noise ciphertext (e1, e2) = Enc_hb(eta); T = Q if meets_minimum,
                      else a random point of b's own (b never decrypts a's query then)

``a`` matches ``ka*(kb*H(b))`` against the doubly masked list (the shuffle hides
which of its own items matched) and sums the matched ciphertexts. Every
ciphertext is decoded and added, to the matched sum or to a discarded one, so
an invalid point fails the run the same way wherever it is (no selective
failure) and the work does not depend on how many matched. The sums are
torsion-cleared (a malicious ``b`` could otherwise tag ciphertexts with
small-order components and read the matched subset off ``Q``) and ``c1`` is
blinded with ``s*G``, so ``Q`` is uniform to ``b``. ``a`` never sends ``c2``:
``b`` could decrypt it. With the proof checked, ``a`` computes ``c2 + s*hb [+ e2]
- D = (sum [+ eta])*G`` and solves the discrete log in ``[-tau, |I|*max_value +
tau]``. The last two messages have the same sizes and (up to noise) timing
whether or not the minimum was met, so the relay cannot tell.

DP (``dp_epsilon`` set; without it, values outside ``[0, max_value]`` are an
InvalidInput): ``b`` clamps its values to ``[0, max_value]``, draws
``eta`` from OpenDP's discrete Laplace measurement calibrated to sensitivity
``max_value`` and ``epsilon`` (``eta = meas(0)``, exactly the noise ``meas``
adds to any integer), clamps ``eta`` to ``[-tau, tau]`` with ``tau =
ceil(46 * max_value / epsilon)`` (exceeded with probability < 2^-64, which adds
``delta <= (1 + e^eps) * 2^-64``), and adds it under encryption. The sum is
decodable whenever ``max_set_size * max_value + 2*tau < 2^40`` (checked when
the parameters are made). The intersection size is always exact: DP covers the sum.

Security is semi-honest; docs/protocols/pjc.md states what a malicious party
could do.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, TypeVar

from sealroom.errors import InvalidInput, ProtocolError
from sealroom.protocols import elgamal, group
from sealroom.protocols.channel import Channel
from sealroom.protocols.elgamal import CIPHERTEXT_SIZE, POINT_SIZE, Ciphertext, ElGamalKey, Rng
from sealroom.protocols.wire import Frame

__all__ = [
    "CHUNK",
    "MAX_EPSILON",
    "MAX_SET_SIZE",
    "PROTOCOL",
    "ROLES",
    "VERSION",
    "NoiseSampler",
    "PjcParams",
    "PjcResult",
    "laplace_sampler",
    "run_pjc",
    "run_pjc_with",
]

PROTOCOL = "pjc"
VERSION = 1
ROLES = ("a", "b")
CHUNK = 1 << 14
"""Items per list message: 16384 pairs are 1.5 MiB."""
MAX_SET_SIZE = 10_000_000
MAX_VALUE = 1 << 32
MAX_EPSILON = Decimal(100)
MAX_ID_BYTES = 1024
TAIL_FACTOR = 46
"""``tau = ceil(46 * scale)``: P(|eta| > tau) <= 2 e^-46 < 2^-64 for discrete Laplace."""

NoiseSampler = Callable[[], int]
"""Draws one integer noise value (the DP mechanism's noise); injectable for tests."""

_EPSILON = re.compile(r"^(0|[1-9][0-9]{0,5})(\.[0-9]{1,12})?$")
_NOISE_SLACK = Fraction(101, 100)
T = TypeVar("T")
R = TypeVar("R")


# --- parameters and result -------------------------------------------------------------


@dataclass(frozen=True)
class PjcParams:
    """What both parties must agree on before any data moves (sent and compared first)."""

    min_intersection: int
    max_value: int
    max_set_size: int = 1_000_000
    dp_epsilon: str | None = None
    """Decimal string (e.g. ``"0.5"``); None releases the exact sum."""

    def __post_init__(self) -> None:
        for name, value, lo, hi in (
            ("max_set_size", self.max_set_size, 1, MAX_SET_SIZE),
            ("min_intersection", self.min_intersection, 0, self.max_set_size),
            ("max_value", self.max_value, 1, MAX_VALUE),
        ):
            if type(value) is not int or not lo <= value <= hi:
                raise InvalidInput(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
        if self.dp_epsilon is not None:
            eps = self.epsilon
            if eps is None or not 0 < eps <= MAX_EPSILON:
                raise InvalidInput(
                    f"dp_epsilon must be a decimal string in (0, {MAX_EPSILON}], "
                    f"got {self.dp_epsilon!r}"
                )
        window = self.max_set_size * self.max_value + 2 * self.noise_bound + 1
        if window > elgamal.MAX_DLOG_WINDOW:
            raise InvalidInput(
                "max_set_size * max_value + 2 * noise bound must stay below 2^40 "
                f"(the decodable sum range), got about 2^{math.log2(window):.1f}"
            )

    @property
    def epsilon(self) -> Decimal | None:
        if self.dp_epsilon is None:
            return None
        if not isinstance(self.dp_epsilon, str) or not _EPSILON.match(self.dp_epsilon):
            return None
        try:
            return Decimal(self.dp_epsilon)
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
            return None

    @property
    def noise_bound(self) -> int:
        """``tau``: the noise is clamped to ``[-tau, tau]``; 0 without DP."""
        eps = self.epsilon
        if eps is None:
            return 0
        return math.ceil(Fraction(TAIL_FACTOR * self.max_value) / Fraction(eps))

    def as_dict(self) -> dict[str, int | str | None]:
        return {
            "min_intersection": self.min_intersection,
            "max_value": self.max_value,
            "max_set_size": self.max_set_size,
            "dp_epsilon": self.dp_epsilon,
        }

    def _wire(self) -> dict[str, int | str]:
        return {
            "min_intersection": self.min_intersection,
            "max_value": self.max_value,
            "max_set_size": self.max_set_size,
            "dp_epsilon": self.dp_epsilon or "",
        }

    @classmethod
    def _from_frame(cls, frame: Frame) -> PjcParams:
        try:
            return cls(
                min_intersection=frame.int_field("min_intersection", lo=0, hi=MAX_SET_SIZE),
                max_value=frame.int_field("max_value", lo=1, hi=MAX_VALUE),
                max_set_size=frame.int_field("max_set_size", lo=1, hi=MAX_SET_SIZE),
                dp_epsilon=frame.str_field("dp_epsilon", max_len=32) or None,
            )
        except InvalidInput as exc:
            raise ProtocolError(f"{frame.what}: parameters are invalid: {exc.detail}") from None


@dataclass(frozen=True)
class PjcResult:
    """One party's output. ``b`` gets no intersection size and no sum."""

    intersection_size: int | None
    sum: int | None
    noisy: bool
    own_size: int
    peer_size: int
    released: bool = False
    """Whether a sum was released to ``a`` (for ``b``: it sent its decryption share)."""

    def public_summary(self) -> dict[str, int | str | bool | None]:
        return {
            "protocol": PROTOCOL,
            "version": VERSION,
            "intersection_size": self.intersection_size,
            "sum": self.sum,
            "noisy": self.noisy,
            "released": self.released,
            "own_size": self.own_size,
            "peer_size": self.peer_size,
        }


def laplace_sampler(params: PjcParams) -> NoiseSampler:
    """OpenDP's discrete Laplace for an integer sum of sensitivity ``max_value`` at ``epsilon``.

    The scale is the smallest whose privacy map at ``d_in = max_value`` is at
    most epsilon (OpenDP's ``binary_search_param``); ``meas(0)`` is one draw of
    the noise the measurement adds to any integer.
    """
    eps = params.epsilon
    if eps is None:
        raise InvalidInput("the parameters do not ask for DP noise")
    import opendp.prelude as dp

    dp.enable_features("contrib")
    target = float(eps)
    if Decimal(target) > eps:
        target = math.nextafter(target, 0.0)
    space = (dp.atom_domain(T="i64"), dp.absolute_distance(T="i64"))

    def make(scale: float) -> Any:
        return dp.m.make_laplace(*space, scale=scale)

    scale = float(dp.binary_search_param(make, d_in=params.max_value, d_out=target, T=float))
    meas = make(scale)
    if not meas.check(params.max_value, target):  # pragma: no cover - OpenDP guarantees it
        raise InvalidInput("could not calibrate the DP noise to epsilon")
    # tau = 46 * max_value / eps assumes scale ~ max_value / eps; fail closed if not.
    if Fraction(scale) > _NOISE_SLACK * Fraction(params.max_value) / Fraction(eps):
        raise InvalidInput("the calibrated noise scale is larger than the noise bound assumes")

    def sample() -> int:
        return int(meas(0))

    return sample


# --- running it ------------------------------------------------------------------------


def run_pjc(
    channel: Channel,
    *,
    role: str,
    ids: Iterable[bytes],
    values: Sequence[int] | None = None,
    params: PjcParams,
    workers: int = 1,
) -> PjcResult:
    """Run one side of PJC over ``channel`` (its only peer is the other party)."""
    noise = None
    if role == "b" and isinstance(params, PjcParams) and params.epsilon is not None:
        try:
            noise = laplace_sampler(params)
        except InvalidInput:
            _tell_peer(channel)
            raise
    return run_pjc_with(
        channel,
        role=role,
        ids=ids,
        values=values,
        params=params,
        workers=workers,
        rng=os.urandom,
        noise=noise,
    )


def run_pjc_with(
    channel: Channel,
    *,
    role: str,
    ids: Iterable[bytes],
    values: Sequence[int] | None,
    params: PjcParams,
    workers: int,
    rng: Rng,
    noise: NoiseSampler | None,
) -> PjcResult:
    """:func:`run_pjc` with explicit randomness (known-answer tests): ``rng(n)`` gives
    ``n`` uniform bytes; ``noise()`` draws the DP noise (required for ``b`` with DP)."""
    try:
        run = _Run.prepare(
            channel,
            role=role,
            ids=ids,
            values=values,
            params=params,
            workers=workers,
            rng=rng,
            noise=noise,
        )
    except InvalidInput:
        _tell_peer(channel)
        raise
    with channel.guard():
        return run.party_a() if role == "a" else run.party_b()


def _tell_peer(channel: Channel) -> None:
    """Abort the run for the peer (so it does not wait for a timeout); the caller re-raises."""
    with contextlib.suppress(ProtocolError):
        channel.fail("the peer rejected its own local input")


@dataclass
class _Run:
    channel: Channel
    peer: str
    params: PjcParams
    ids: list[bytes]
    values: list[int]
    workers: int
    rng: Rng
    noise: NoiseSampler | None

    @classmethod
    def prepare(
        cls,
        channel: Channel,
        *,
        role: str,
        ids: Iterable[bytes],
        values: Sequence[int] | None,
        params: PjcParams,
        workers: int,
        rng: Rng,
        noise: NoiseSampler | None,
    ) -> _Run:
        """Check local arguments (InvalidInput, nothing sent yet)."""
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {ROLES}, got {role!r}")
        if not isinstance(params, PjcParams):
            raise InvalidInput("params must be a PjcParams")
        if channel.protocol != PROTOCOL or channel.version != VERSION:
            raise InvalidInput(f"the channel must be for {PROTOCOL} v{VERSION}")
        if len(channel.peers) != 1:
            raise InvalidInput("PJC runs between exactly two parties")
        if type(workers) is not int or not 1 <= workers <= 64:
            raise InvalidInput("workers must be an integer in [1, 64]")
        id_list = [bytes(i) if isinstance(i, bytes | bytearray) else i for i in ids]
        for i in id_list:
            if not isinstance(i, bytes) or len(i) > MAX_ID_BYTES:
                raise InvalidInput(f"ids must be bytes of at most {MAX_ID_BYTES} bytes")
        if len(id_list) > params.max_set_size:
            raise InvalidInput(f"{len(id_list)} ids exceed max_set_size {params.max_set_size}")
        value_list: list[int] = []
        if role == "a":
            if values is not None:
                raise InvalidInput("party a has no values (pass values=None)")
            id_list = sorted(set(id_list))  # a set; sorted so a seeded run is reproducible
        else:
            if values is None or len(values) != len(id_list):
                raise InvalidInput("party b needs one value per id")
            if len(set(id_list)) != len(id_list):
                raise InvalidInput("party b's ids must be distinct")
            dp_on = params.epsilon is not None
            for v in values:
                if type(v) is not int:
                    raise InvalidInput("values must be integers")
                if not dp_on and not 0 <= v <= params.max_value:
                    raise InvalidInput(
                        f"values must be in [0, {params.max_value}] (max_value) for an exact sum"
                    )
                value_list.append(min(max(v, 0), params.max_value))
            if dp_on and noise is None:
                raise InvalidInput("party b needs a noise sampler when dp_epsilon is set")
        return cls(
            channel=channel,
            peer=channel.peers[0],
            params=params,
            ids=id_list,
            values=value_list,
            workers=workers,
            rng=rng,
            noise=noise,
        )

    # --- helpers ---------------------------------------------------------------------

    @property
    def domain(self) -> bytes:
        return f"sealroom/{PROTOCOL}/v{VERSION}/{self.channel.session}".encode()

    def _map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``map`` over chunks, on a thread pool when ``workers > 1`` (libsodium drops the GIL)."""
        if self.workers == 1:
            yield from map(fn, items)
            return
        with ThreadPoolExecutor(self.workers) as pool:
            yield from pool.map(fn, items)

    def _shuffle(self, n: int) -> list[int]:
        """A uniform permutation of ``range(n)`` (Fisher-Yates, 128 random bits per draw)."""
        perm = list(range(n))
        draws = self.rng(16 * n)
        for i in range(n - 1, 0, -1):
            j = int.from_bytes(draws[16 * i : 16 * i + 16], "little") % (i + 1)
            perm[i], perm[j] = perm[j], perm[i]
        return perm

    def _hello(self, size: int, **blobs: bytes) -> None:
        self.channel.send(
            self.peer, "hello", fields={**self.params._wire(), "size": size}, blobs=blobs
        )

    def _check_hello(self, frame: Frame, *, blobs: Sequence[str] = ()) -> int:
        frame.only(fields=[*self.params._wire(), "size"], blobs=blobs)
        theirs = PjcParams._from_frame(frame)
        if theirs != self.params:
            diff = [k for k, v in self.params.as_dict().items() if theirs.as_dict()[k] != v]
            self.channel.fail(f"parameters differ from the peer's: {', '.join(diff)}")
        return frame.int_field("size", lo=0, hi=self.params.max_set_size)

    def _send_items(self, kind: str, chunks: Iterable[dict[str, bytes]]) -> None:
        for blobs in chunks:
            self.channel.send(self.peer, kind, blobs=blobs)

    def _receive_items(
        self, kind: str, count: int, sizes: dict[str, int]
    ) -> Iterator[list[list[bytes]]]:
        """``ceil(count / CHUNK)`` messages of exactly the expected item counts."""
        for start in range(0, count, CHUNK):
            n = min(CHUNK, count - start)
            frame = self.channel.expect(self.peer, kind)
            frame.only(blobs=sizes)
            yield [
                frame.items(name, size=size, max_count=n, min_count=n)
                for name, size in sizes.items()
            ]

    # --- party a -----------------------------------------------------------------------

    def party_a(self) -> PjcResult:
        p, ka = self.params, self.rng(32)
        order = self._shuffle(len(self.ids))
        mine = [self.ids[i] for i in order]
        self._hello(len(mine))

        def mask_own(chunk: list[bytes]) -> dict[str, bytes]:
            return {
                "elements": b"".join(
                    group.mul_many(ka, group.hash_to_group(chunk, domain=self.domain))
                )
            }

        self._send_items("a-masked", self._map(mask_own, _chunks(mine)))

        hello = self.channel.expect(self.peer, "hello")
        m = self._check_hello(hello, blobs=["key"])
        hb = hello.blob("key", max_size=POINT_SIZE, size=POINT_SIZE)
        elgamal.check_subgroup(hb, what=f"{hello.what}: key")

        def mask_peer(chunk: list[list[bytes]]) -> tuple[list[bytes], list[bytes]]:
            elements, cts = chunk
            group.check_elements(elements, what="b-pairs elements")
            return group.mul_many(ka, elements), cts

        masked: list[bytes] = []
        cts: list[bytes] = []
        for chunk_masked, chunk_cts in self._map(
            mask_peer,
            self._receive_items(
                "b-pairs", m, {"elements": POINT_SIZE, "ciphertexts": CIPHERTEXT_SIZE}
            ),
        ):
            masked.extend(chunk_masked)
            cts.extend(chunk_cts)
        if len(set(masked)) != len(masked):
            self.channel.fail("b-pairs elements are not distinct")

        double: set[bytes] = set()
        for (chunk,) in self._receive_items("a-double", len(mine), {"elements": POINT_SIZE}):
            group.check_elements(chunk, what="a-double elements")
            double.update(chunk)
        if len(double) != len(mine):
            self.channel.fail("a-double elements are not distinct")

        # Constant work from here on: every ciphertext is decoded and added (to the matched
        # or to a discarded sum), and the query is sent even below the minimum, so neither a
        # failure nor the timing or size of "sum" depends on which or how many ids matched.
        chosen = [e in double for e in masked]
        size = sum(chosen)

        def partial(i: int) -> Ciphertext:
            return elgamal.select_sum(
                cts[i : i + CHUNK], chosen[i : i + CHUNK], what="b-pairs ciphertexts"
            )

        total = elgamal.sum_ciphertexts(list(self._map(partial, range(0, len(cts), CHUNK))))
        s = elgamal.random_scalar(self.rng)
        query = elgamal.add(total.c1, elgamal.base_mul(s))  # torsion-free and uniform to b
        local = elgamal.add(total.c2, elgamal.mul(s, hb))
        meets = size >= p.min_intersection
        self.channel.send(
            self.peer, "sum", fields={"meets_minimum": int(meets)}, blobs={"query": query}
        )

        reply = self.channel.expect(self.peer, "share")
        dp_on = p.epsilon is not None
        reply.only(blobs=["share", "proof", *(["noise"] if dp_on else [])])
        if not meets:  # b answered about a point of its own; nothing in it is for us
            return PjcResult(size, None, dp_on, len(mine), m, released=False)
        share = reply.blob("share", max_size=POINT_SIZE, size=POINT_SIZE)
        proof = reply.blob("proof", max_size=elgamal.PROOF_SIZE, size=elgamal.PROOF_SIZE)
        elgamal.check_subgroup(share, what=f"{reply.what}: share", allow_identity=True)
        target = query
        if dp_on:
            noise = Ciphertext.from_bytes(
                reply.blob("noise", max_size=CIPHERTEXT_SIZE, size=CIPHERTEXT_SIZE)
            )
            elgamal.check_subgroup(noise.c1, what=f"{reply.what}: noise c1", allow_identity=True)
            elgamal.check_subgroup(noise.c2, what=f"{reply.what}: noise c2", allow_identity=True)
            target = elgamal.add(query, noise.c1)
            local = elgamal.add(local, noise.c2)
        elgamal.verify_share(hb, target, share, proof, context=self._proof_context())
        tau = p.noise_bound
        value = elgamal.discrete_log(
            elgamal.sub(local, share), lo=-tau, hi=size * p.max_value + tau
        )
        if value is None:
            self.channel.fail("the decrypted sum is outside the range the parameters allow")
        return PjcResult(size, value, dp_on, len(mine), m, released=True)

    def _proof_context(self) -> bytes:
        return self.domain + b"/share"

    # --- party b -----------------------------------------------------------------------

    def party_b(self) -> PjcResult:
        p = self.params
        hello = self.channel.expect(self.peer, "hello")
        n = self._check_hello(hello)
        kb = self.rng(32)
        key = ElGamalKey.generate(rng=self.rng)
        self._hello(len(self.ids), key=key.public)

        order = self._shuffle(len(self.ids))
        ids = [self.ids[i] for i in order]
        values = [self.values[i] for i in order]
        jobs = [
            (ids[i : i + CHUNK], values[i : i + CHUNK], self.rng(64 * len(ids[i : i + CHUNK])))
            for i in range(0, len(ids), CHUNK)
        ]

        def pairs(job: tuple[list[bytes], list[int], bytes]) -> dict[str, bytes]:
            chunk_ids, chunk_values, randomness = job
            masked = group.mul_many(kb, group.hash_to_group(chunk_ids, domain=self.domain))
            cts = key.encrypt_many(chunk_values, randomness=randomness)
            return {"elements": b"".join(masked), "ciphertexts": b"".join(cts)}

        self._send_items("b-pairs", self._map(pairs, jobs))

        theirs: list[bytes] = []
        for (chunk,) in self._receive_items("a-masked", n, {"elements": POINT_SIZE}):
            group.check_elements(chunk, what="a-masked elements")
            theirs.extend(chunk)
        if len(set(theirs)) != len(theirs):
            self.channel.fail("a-masked elements are not distinct")
        # Shuffling before masking is the same as after, and lets the masked chunks stream.
        theirs = [theirs[i] for i in self._shuffle(len(theirs))]

        def mask_peer(chunk: list[bytes]) -> dict[str, bytes]:
            return {"elements": b"".join(group.mul_many(kb, chunk))}

        self._send_items("a-double", self._map(mask_peer, _chunks(theirs)))

        request = self.channel.expect(self.peer, "sum")
        request.only(fields=["meets_minimum"], blobs=["query"])
        meets = request.int_field("meets_minimum", lo=0, hi=1) == 1
        query = request.blob("query", max_size=POINT_SIZE, size=POINT_SIZE)
        elgamal.check_subgroup(query, what=f"{request.what}: query")
        dp_on = p.epsilon is not None
        # Below the minimum, answer with the same work and sizes about a point of our own
        # (never a's query), so the reply's size and timing do not tell the coordinator.
        target = query if meets else elgamal.base_mul(elgamal.random_scalar(self.rng))
        blobs: dict[str, bytes] = {}
        if dp_on:
            if self.noise is None:  # pragma: no cover - prepare() requires it
                raise InvalidInput("party b needs a noise sampler when dp_epsilon is set")
            tau = p.noise_bound
            eta = min(max(int(self.noise()), -tau), tau)
            noise = key.encrypt(eta, r=elgamal.random_scalar(self.rng))
            target = elgamal.add(target, noise.c1)
            blobs["noise"] = noise.to_bytes()
        share = key.share(target)
        proof = key.prove_share(target, share, context=self._proof_context(), rng=self.rng)
        self.channel.send(self.peer, "share", blobs={"share": share, "proof": proof, **blobs})
        return PjcResult(None, None, dp_on, len(self.ids), n, released=meets)


def _chunks(items: Sequence[T]) -> Iterator[list[T]]:
    for i in range(0, len(items), CHUNK):
        yield list(items[i : i + CHUNK])
