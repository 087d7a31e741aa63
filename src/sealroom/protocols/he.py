"""Gradient descent on CKKS-encrypted model parameters, aggregated under encryption.

A trainer ``T`` fits a linear (least squares) or logistic model on the union of
the rows held by owners ``O_1 .. O_k`` (``k >= 2``, in the order of
``params.owners``). Each round ``T`` encrypts its current parameters under its
own CKKS key; every owner turns them into the encrypted gradient of its own
rows; the owners add their gradients along a chain; ``T`` decrypts only the
sum over all owners and takes one plaintext gradient step. Owners never hold
the secret key; ``T`` never holds an owner's gradient.

Model. ``x~ = (x, 1)`` (features, then the intercept), ``theta`` in
``R^(d+1)``, ``z = x~ . theta``. Residual ``r(z, y)``: linear ``z - y``;
logistic ``s(z) - y`` with ``s(z) = 0.5 + 0.15012 z - 0.001593 z^3``, the
least-squares cubic for the sigmoid on ``[-8, 8]`` (Kim et al., BMC Med.
Genomics 2018; max error 0.114 there, and it diverges outside). Round
``t``: ``G = sum_i x~_i r(z_i, y_i)`` over all rows, ``N`` = number of rows,
``theta <- theta - lr * G / N``; ``theta_0 = 0`` (or small Gaussian from
``rng_seed``).

Why the owners' work does not depend on their row count. Put
``v = (theta, 1)`` (``d + 2`` variables; the last is the constant 1). The
residual is a polynomial of degree ``q`` (1 or 3) in ``z``, so each gradient
coordinate is a homogeneous polynomial of degree ``q`` in ``v``::

    G_k = sum_i x~_ik [ (c_0 - y_i) v_e^q + sum_{t>=1} c_t (xi_i . v)^t v_e^(q-t) ]

(``xi_i = (x~_i, 0)``, ``e`` the index of the constant, ``c_t`` the residual's
coefficients) ``= sum_m C[m, k] Phi_m(v)`` over the monomials ``Phi_m`` of
degree ``q`` in ``v`` (those with ``t`` non-constant factors are left out
when ``c_t = 0``: logistic with ``d = 3`` needs 25, padded to 32). The owner
computes its coefficient matrix ``C`` (moments of its data up to order
``q + 1``, in plaintext, once) and adds a count column (``C[(e,..,e), e] = n_j``). ``T`` encrypts the monomial vector
``Phi(v)``; an owner evaluates one ciphertext-vector x plaintext-matrix product
(TenSEAL ``CKKSVector.mm``, Halevi-Shoup diagonal method: ``P`` rotations,
multiplicative depth 1), for linear and logistic alike. This is the same
polynomial the per-sample computation evaluates, so the trainer learns exactly
the same thing; the tests check the identity against the per-sample numpy
computation.

Packing. ``D = next_pow2(d + 2)``; ``P = next_pow2(#monomials)``; ``S`` =
``poly_modulus_degree / 2`` slots. ``Phi`` is encrypted in ``P`` slots
(TenSEAL replicates it with period ``P`` over all ``S`` slots); the owner's
matrix has ``S`` columns, column ``j`` = ``2^-10 * C[:, j mod D]``, so the
product is ``2^-10 * (G, N, 0..0)`` repeated ``S/D`` times, cleanly in *every*
slot. This matters: the trainer's key decrypts all ``S`` slots, whatever the
vector's declared size, so a layout that left partial sums in unused slots
(TenSEAL's ``sum``/``dot`` do) would hand the trainer per-row terms. The
trainer averages the ``S/D`` replicas and rejects an aggregate that is not
``D``-periodic or whose padding is not zero (a CKKS overflow or a malformed
contribution).

CKKS parameters (fixed by protocol version 1). ``poly_modulus_degree`` 8192
(or 16384), coefficient modulus primes of 60, 40, 60 bits (SEAL
``CoeffModulus.Create``; the last is the key-switching prime), 160 bits in
total: below the HE Standard's 218-bit bound for 128-bit security at
``N = 8192`` (ternary secret), and SEAL refuses to load anything above it.
The scale is the 40-bit prime ``q_1`` itself, so the rescale after the one
plaintext multiplication returns exactly to the scale and no bias is
introduced. Values at the last level must stay below ``q_0 / (2 q_1) ~ 2^19``;
with the ``2^-10`` factor the aggregate sums may reach ``~2^29`` per
coordinate (standardise features and targets). Measured precision: see
``docs/protocols/he.md``.

Message flow (``r = 1..rounds``; ``view_r = SHA-256("sealroom-he-v1 view" ||
session || r || SHA-256(context) || SHA-256(weights_r))``)::

    T   -> O_j      "setup"      params, CKKS parameters, residual coefficients
                                 (each owner compares them with its own: any
                                 difference ends the run everywhere); blob
                                 context: public key + Galois keys, no secret
                                 key, no relinearisation keys
    T   -> O_j      "weights"    round r; blob ciphertext: Enc(Phi(v_r))
    O_j -> O_j+1    "partial"    round r; blobs ciphertext: A_j, view
    O_k -> T        "aggregate"  round r; blobs ciphertext: A_k, view
    T   -> O_j      "done"       rounds

``A_1 = C_1 . Enc(Phi) + Enc_pk(0)``, ``A_j = A_j-1 + C_j . Enc(Phi) +
Enc_pk(0)``. Every owner re-randomises what it forwards with a fresh
public-key encryption of zero: without it the ciphertext's ``c_1`` is a known
linear function of the weights ciphertext's ``c_1`` with the owner's data as
coefficients, readable by the next owner without any key. Each owner checks
that its predecessor's ``view`` equals its own (the trainer cannot give
different owners different keys or weights: a trainer that could would learn
one owner's gradient by zeroing the others' weights), and ``T`` checks the
last one against what it sent.

Who learns what (semi-honest). ``T``: per round the aggregate gradient sum
``G_t`` over all rows plus CKKS noise, and ``N``; nothing per owner or per
row. Owner ``O_j``: the parameters, sizes and round count; ciphertexts under
``T``'s key only (IND-CPA under RLWE, with the circular-security assumption
that Galois keys need); not ``theta``, not the model, not others' sums. The
relay: who talks to whom, sizes (fixed by ``d`` and the parameters, not by
row counts) and timing (a round's work does not depend on row counts; the
one-off coefficient computation does, and is done before the first message).
Why at least two owners: with one, the aggregate is that owner's gradient.
Caveats: over several rounds ``G_t`` as a function of ``theta_t`` reveals the
pooled moments (for least squares ``X^T X`` and ``X^T y`` after ``d + 2``
rounds), which is inherent to releasing gradients; ``T`` colluding with
``O_j``'s chain neighbours (only ``O_2`` for ``O_1``, only ``O_k-1`` for
``O_k``) decrypts ``A_j - A_j-1``, ``O_j``'s gradient, and with two owners
``T`` plus either owner has the other's; CKKS decryption noise is not flooded
(TenSEAL/SEAL offer no noise flooding), so the decrypted sum carries noise
(~1e-9 relative, measured) that depends on the pooled coefficients. A
malicious owner can add anything to the sum; a malicious trainer chooses
``theta`` freely and can learn the pooled moments in fewer rounds.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import tenseal as ts
import tenseal.sealapi as sealapi

from sealroom.errors import InvalidInput, ProtocolError
from sealroom.protocols.channel import Channel
from sealroom.protocols.wire import Frame

__all__ = [
    "COEFF_MOD_BITS",
    "MAX_FEATURES",
    "MAX_ROUNDS",
    "MAX_ROWS",
    "PROTOCOL",
    "SIGMOID_COEFFICIENTS",
    "SIGMOID_INTERVAL",
    "SUM_SCALE_BITS",
    "VERSION",
    "HeKey",
    "HeModel",
    "HeParams",
    "HeSuite",
    "contribute",
    "decode_aggregate",
    "encrypt_weights",
    "initial_weights",
    "monomial_vector",
    "owner_coefficients",
    "owner_matrix",
    "plaintext_gradient",
    "serve_as_owner",
    "suite_for",
    "train_as_trainer",
    "train_as_trainer_with",
    "train_plaintext",
]

PROTOCOL = "he"
VERSION = 1

Model = Literal["linear", "logistic"]
Array = npt.NDArray[np.float64]

SUPPORTED_DEGREES = (8192, 16384)
COEFF_MOD_BITS = (60, 40, 60)
# Sums travel multiplied by 2^-10: room for |sum| < 2^29 at the last level.
SUM_SCALE_BITS = 10
SIGMOID_INTERVAL = 8
# Residual coefficients c_0..c_3 of s(z) = 0.5 + 0.15012 z - 0.001593 z^3 (Kim et al. 2018).
SIGMOID_COEFFICIENTS = ("0.5", "0.15012", "0", "-0.001593")
_LINEAR_COEFFICIENTS = ("0", "1")
MAX_FEATURES: Mapping[str, int] = {"linear": 64, "logistic": 10}
MAX_ROUNDS = 1000
MAX_OWNERS = 64
MAX_ROWS = 1 << 20
VALUE_BOUND = 256.0
# Replicas of one aggregate slot may differ by CKKS noise only (scaled units).
_REPLICA_ABS = 2.0**-10
_REPLICA_REL = 2.0**-16
_COUNT_SLACK = 0.01
_MAX_LEARNING_RATE = Decimal(100)
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,5})(\.[0-9]{1,12})?$")
_VIEW_LABEL = b"sealroom-he-v1 view\0"
_ROW_CHUNK = 4096

K_SETUP = "setup"
K_WEIGHTS = "weights"
K_PARTIAL = "partial"
K_AGGREGATE = "aggregate"
K_DONE = "done"

_PARAM_FIELDS = ("model", "features", "rounds", "learning_rate", "owners", "poly_modulus_degree")
_SETUP_FIELDS = (*_PARAM_FIELDS, "coeff_mod_bits", "scale", "sum_scale_bits", "residual")


# --- parameters -------------------------------------------------------------------------


@dataclass(frozen=True)
class HeParams:
    """What every party agrees to before the run (the trainer sends it; owners compare)."""

    model: Model
    features: int
    rounds: int
    learning_rate: str
    owners: tuple[str, ...]
    poly_modulus_degree: int = 8192

    def __post_init__(self) -> None:
        if self.model not in MAX_FEATURES:
            raise InvalidInput(f"model must be one of {sorted(MAX_FEATURES)}")
        cap = MAX_FEATURES[self.model]
        if type(self.features) is not int or not 1 <= self.features <= cap:
            raise InvalidInput(f"features must be an integer in 1..{cap} for {self.model}")
        if type(self.rounds) is not int or not 1 <= self.rounds <= MAX_ROUNDS:
            raise InvalidInput(f"rounds must be an integer in 1..{MAX_ROUNDS}")
        if not isinstance(self.learning_rate, str) or not _DECIMAL.match(self.learning_rate):
            raise InvalidInput("learning_rate must be a plain decimal string such as '0.5'")
        try:
            rate = Decimal(self.learning_rate)
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
            raise InvalidInput("learning_rate is not a decimal") from None
        if not 0 < rate <= _MAX_LEARNING_RATE:
            raise InvalidInput(f"learning_rate must be in (0, {_MAX_LEARNING_RATE}]")
        raw: object = self.owners
        if isinstance(raw, list):  # accept a list (e.g. from JSON), store a tuple
            object.__setattr__(self, "owners", tuple(raw))
        owners = self.owners
        if not isinstance(owners, tuple) or not all(isinstance(o, str) for o in owners):
            raise InvalidInput("owners must be a sequence of party ids")
        if not 2 <= len(owners) <= MAX_OWNERS:
            # One owner's "aggregate" would be its own gradient.
            raise InvalidInput(f"he needs 2..{MAX_OWNERS} owners, got {len(owners)}")
        if len(set(owners)) != len(owners) or not all(_NAME.match(o) for o in owners):
            raise InvalidInput("owners must be distinct, valid party ids")
        if self.poly_modulus_degree not in SUPPORTED_DEGREES:
            raise InvalidInput(f"poly_modulus_degree must be one of {SUPPORTED_DEGREES}")

    @property
    def rate(self) -> float:
        return float(Decimal(self.learning_rate))

    def as_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "features": self.features,
            "rounds": self.rounds,
            "learning_rate": self.learning_rate,
            "owners": list(self.owners),
            "poly_modulus_degree": self.poly_modulus_degree,
        }


@dataclass(frozen=True)
class HeModel:
    """The trainer's result. ``samples`` is the pooled row count ``N`` (decrypted)."""

    weights: tuple[float, ...]
    intercept: float
    rounds: int
    owners: tuple[str, ...]
    params: dict[str, object]
    samples: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "weights": list(self.weights),
            "intercept": self.intercept,
            "rounds": self.rounds,
            "owners": list(self.owners),
            "params": dict(self.params),
            "samples": self.samples,
        }

    def predict(self, X: npt.ArrayLike) -> Array:
        """Linear predictor ``X w + b`` (apply the sigmoid yourself for probabilities)."""
        x = np.asarray(X, dtype=np.float64)
        return np.asarray(x @ np.asarray(self.weights) + self.intercept, dtype=np.float64)


@dataclass(frozen=True)
class HeSuite:
    """Everything derived from the parameters: CKKS chain, packing, monomials, size limits."""

    degree: int
    primes: tuple[int, ...]
    slots: int
    variables: int  # d + 2: features, intercept, the constant 1
    width: int  # D: period of the aggregate layout
    poly_degree: int  # 1 (linear) or 3 (logistic)
    residual: tuple[str, ...]
    inputs: int  # P: slots of the weights vector
    monomials: tuple[tuple[int, ...], ...] = field(repr=False)

    @property
    def scale(self) -> int:
        return self.primes[1]

    @property
    def sum_scale(self) -> float:
        return 2.0**-SUM_SCALE_BITS

    @property
    def features(self) -> int:
        return self.variables - 2

    def ciphertext_limit(self, primes: int) -> int:
        """Upper bound of a serialised 2-component ciphertext at ``primes`` RNS primes."""
        return 2 * primes * self.degree * 8 + (64 << 10)

    @property
    def context_limit(self) -> int:
        # The public key and at most 2 log2(S) + 1 Galois keys, each 2 x (data primes)
        # components over all primes.
        keys = 2 * int(math.log2(self.slots)) + 2
        return keys * 2 * (len(self.primes) - 1) * len(self.primes) * self.degree * 8 + (1 << 20)

    def setup_fields(self, params: HeParams) -> dict[str, object]:
        return {
            **params.as_dict(),
            "coeff_mod_bits": list(COEFF_MOD_BITS),
            "scale": self.scale,
            "sum_scale_bits": SUM_SCALE_BITS,
            "residual": list(self.residual),
        }


def suite_for(params: HeParams) -> HeSuite:
    """The CKKS parameters and the packing for ``params`` (deterministic)."""
    return _suite(params.model, params.features, params.poly_modulus_degree)


@functools.lru_cache(maxsize=64)
def _suite(model: str, features: int, degree: int) -> HeSuite:
    moduli = sealapi.CoeffModulus.Create(degree, list(COEFF_MOD_BITS))
    primes = tuple(int(m.value()) for m in moduli)
    variables = features + 2
    poly_degree = 1 if model == "linear" else 3
    residual = _LINEAR_COEFFICIENTS if model == "linear" else SIGMOID_COEFFICIENTS
    # Only monomials whose coefficient can be non-zero: the cubic sigmoid has no
    # z^2 term, so those with exactly one copy of the constant drop out.
    monomials = tuple(
        mono
        for mono in itertools.combinations_with_replacement(range(variables), poly_degree)
        if mono.count(variables - 1) == poly_degree
        or Fraction(residual[poly_degree - mono.count(variables - 1)]) != 0
    )
    slots = degree // 2
    inputs = _next_pow2(len(monomials))
    width = _next_pow2(variables)
    if inputs > slots or width > slots:  # pragma: no cover - MAX_FEATURES keeps this away
        raise InvalidInput("too many features for one ciphertext")
    return HeSuite(
        degree=degree,
        primes=primes,
        slots=slots,
        variables=variables,
        width=width,
        poly_degree=poly_degree,
        residual=residual,
        monomials=monomials,
        inputs=inputs,
    )


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def initial_weights(params: HeParams, rng_seed: int | None) -> Array:
    """``theta_0`` (features then intercept): zeros, or N(0, 0.01^2) from ``rng_seed``.

    SEAL draws its encryption randomness from the OS and cannot be seeded
    through TenSEAL; the seed only fixes the starting point, so a run and its
    plaintext reference start from the same weights.
    """
    if rng_seed is None:
        return np.zeros(params.features + 1)
    return np.random.default_rng(rng_seed).normal(0.0, 0.01, size=params.features + 1)


# --- the arithmetic, in plaintext -----------------------------------------------------


def monomial_vector(suite: HeSuite, theta: Array) -> Array:
    """``Phi(v)`` for ``v = (theta, 1)``, zero-padded to ``P`` slots (what the trainer encrypts)."""
    v = np.append(np.asarray(theta, dtype=np.float64), 1.0)
    out = np.zeros(suite.inputs)
    for p, mono in enumerate(suite.monomials):
        out[p] = math.prod(float(v[u]) for u in mono)
    return out


def _residual_floats(suite: HeSuite) -> list[float]:
    return [float(Fraction(c)) for c in suite.residual]


def residual(suite: HeSuite, z: Array, y: Array) -> Array:
    """``r(z, y)``: ``z - y`` or ``s(z) - y`` with the cubic sigmoid."""
    c = _residual_floats(suite)
    acc = np.full_like(z, c[-1])
    for coef in reversed(c[:-1]):  # Horner
        acc = acc * z + coef
    return np.asarray(acc - y, dtype=np.float64)


def plaintext_gradient(params: HeParams, X: npt.ArrayLike, y: npt.ArrayLike, theta: Array) -> Array:
    """``(G, N)``: the per-row gradient sum ``sum_i x~_i r(z_i, y_i)`` and the row count."""
    suite = suite_for(params)
    x, yy = _check_data(params, X, y)
    xt = np.hstack([x, np.ones((x.shape[0], 1))])
    g = xt.T @ residual(suite, xt @ np.asarray(theta, dtype=np.float64), yy)
    return np.append(g, float(x.shape[0]))


def owner_coefficients(params: HeParams, X: npt.ArrayLike, y: npt.ArrayLike) -> Array:
    """The owner's ``P x D`` matrix ``C`` with ``C^T Phi(v) = 2^-10 (G, N, 0..)``.

    Row ``m`` (a monomial with ``q`` copies of the constant, ``t = deg - q``
    others, multiset ``R``): ``c_t * mult(R) * sum_i x~_ik prod_{u in R} x~_iu``
    (``c_0 - y_i`` in place of ``c_t`` when ``t = 0``); ``mult(R)`` is the
    number of orderings of ``R``. Computed in row chunks: memory
    ``O(chunk * P)``, time ``O(n * P * d)``, once per run.
    """
    suite = suite_for(params)
    x, yy = _check_data(params, X, y)
    n, d = x.shape
    e = suite.variables - 1
    coefs = _residual_floats(suite)
    out = np.zeros((suite.inputs, suite.width))
    rests: list[tuple[int, ...]] = []
    weights = np.zeros(len(suite.monomials))
    zero_degree = -1
    for p, mono in enumerate(suite.monomials):
        rest = tuple(u for u in mono if u != e)
        rests.append(rest)
        if not rest:
            zero_degree = p
        counts = [rest.count(u) for u in set(rest)]
        weights[p] = (
            coefs[len(rest)]
            * math.factorial(len(rest))
            / math.prod(math.factorial(c) for c in counts)
        )
    for lo in range(0, n, _ROW_CHUNK):
        xt = np.hstack([x[lo : lo + _ROW_CHUNK], np.ones((min(_ROW_CHUNK, n - lo), 1))])
        feats = np.ones((xt.shape[0], len(rests)))
        for p, rest in enumerate(rests):
            for u in rest:
                feats[:, p] *= xt[:, u]
        block = (feats * weights).T @ xt  # (monomials, d + 1)
        block[zero_degree] -= xt.T @ yy[lo : lo + _ROW_CHUNK]
        out[: len(rests), : d + 1] += block
    out[zero_degree, e] = float(n)
    return out * suite.sum_scale


def train_plaintext(
    params: HeParams,
    parts: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]],
    *,
    rng_seed: int | None = None,
) -> HeModel:
    """The same gradient descent in plaintext numpy (the reference the HE run must match)."""
    theta = initial_weights(params, rng_seed)
    xs = [_check_data(params, X, y) for X, y in parts]
    x = np.vstack([p[0] for p in xs])
    y = np.concatenate([p[1] for p in xs])
    n = x.shape[0]
    for _ in range(params.rounds):
        g = plaintext_gradient(params, x, y, theta)
        theta = theta - params.rate * g[:-1] / n
    return _model(params, theta, n)


def _model(params: HeParams, theta: Array, samples: int) -> HeModel:
    return HeModel(
        weights=tuple(float(t) for t in theta[:-1]),
        intercept=float(theta[-1]),
        rounds=params.rounds,
        owners=params.owners,
        params=params.as_dict(),
        samples=samples,
    )


def _check_data(params: HeParams, X: npt.ArrayLike, y: npt.ArrayLike) -> tuple[Array, Array]:
    try:
        x = np.asarray(X, dtype=np.float64)
        yy = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInput("X and y must be numeric arrays") from None
    if x.ndim != 2 or x.shape[1] != params.features:
        raise InvalidInput(f"X must have shape (rows, {params.features})")
    if yy.shape != (x.shape[0],):
        raise InvalidInput("y must have one value per row of X")
    if not 1 <= x.shape[0] <= MAX_ROWS:
        raise InvalidInput(f"an owner must hold 1..{MAX_ROWS} rows")
    if not (np.isfinite(x).all() and np.isfinite(yy).all()):
        raise InvalidInput("X and y must be finite")
    if np.abs(x).max() > VALUE_BOUND or np.abs(yy).max() > VALUE_BOUND:
        raise InvalidInput(f"values must be within +-{VALUE_BOUND:g}; standardise them first")
    if params.model == "logistic" and not np.isin(yy, (0.0, 1.0)).all():
        raise InvalidInput("logistic labels must be 0 or 1")
    return x, yy


# --- CKKS objects ------------------------------------------------------------------------


@dataclass(frozen=True)
class HeKey:
    """The trainer's key for one run: the secret-key context and what owners get of it."""

    context: Any = field(repr=False)
    public: bytes = field(repr=False)

    @classmethod
    def generate(cls, suite: HeSuite) -> HeKey:
        """A fresh key pair and Galois keys for ``suite`` (the public part serialised once)."""
        ctx = ts.context(
            ts.SCHEME_TYPE.CKKS, suite.degree, coeff_mod_bit_sizes=list(COEFF_MOD_BITS)
        )
        ctx.global_scale = float(suite.scale)
        ctx.generate_galois_keys()
        # Public key and Galois keys; no secret key, no relinearisation keys (never needed).
        public = ctx.serialize(
            save_public_key=True,
            save_secret_key=False,
            save_galois_keys=True,
            save_relin_keys=False,
        )
        return cls(context=ctx, public=bytes(public))


@functools.lru_cache(maxsize=len(SUPPORTED_DEGREES))
def _reference_parms_ids(degree: int) -> tuple[list[int], list[int]]:
    """(first, last) parms_id of the agreed parameters: equal ids = identical N and primes."""
    parms = sealapi.EncryptionParameters(sealapi.SCHEME_TYPE.CKKS)
    parms.set_poly_modulus_degree(degree)
    parms.set_coeff_modulus(sealapi.CoeffModulus.Create(degree, list(COEFF_MOD_BITS)))
    ctx = sealapi.SEALContext(parms, True, sealapi.SEC_LEVEL_TYPE.TC128)
    return list(ctx.first_parms_id()), list(ctx.last_parms_id())


def _load_public_context(frame: Frame, suite: HeSuite) -> Any:
    blob = frame.blob("context", max_size=suite.context_limit)
    try:
        ctx = ts.context_from(blob)
        seal = ctx.seal_context().data
        ids = (list(seal.first_parms_id()), list(seal.last_parms_id()))
        private = bool(ctx.is_private()) or bool(ctx.has_secret_key())
        usable = bool(ctx.has_public_key()) and bool(ctx.has_galois_keys())
        scale = float(ctx.global_scale)
    except Exception:  # TenSEAL/SEAL raise assorted types on bad bytes
        raise ProtocolError(f"{frame.what}: context is not a valid TenSEAL context") from None
    if ids != _reference_parms_ids(suite.degree):
        raise ProtocolError(f"{frame.what}: context parameters are not the agreed CKKS parameters")
    if private:
        raise ProtocolError(f"{frame.what}: context carries a secret key; refusing it")
    if not usable:
        raise ProtocolError(f"{frame.what}: context lacks the public key or Galois keys")
    if scale != float(suite.scale):
        raise ProtocolError(f"{frame.what}: context scale is not the agreed scale")
    # The evaluation behaviour is ours to choose, not the sender's.
    ctx.auto_rescale = True
    ctx.auto_relin = True
    ctx.auto_mod_switch = True
    return ctx


def _load_vector(ctx: Any, frame: Frame, suite: HeSuite, *, size: int, top: bool) -> Any:
    """A CKKS vector from ``frame``'s ciphertext blob, checked before any use.

    TenSEAL trusts the serialised ``size`` (a larger one reads past the
    decoded slots); it is checked here, with the level, the scale and the
    ciphertext shape. (The vector's separate "init scale", which TenSEAL
    stamps on results, is not readable from Python: the owner checks its own
    result instead, see :func:`_check_result`.)
    """
    primes = len(suite.primes) - 1 if top else 1
    blob = frame.blob("ciphertext", max_size=suite.ciphertext_limit(primes))
    first, last = _reference_parms_ids(suite.degree)
    try:
        vec = ts.ckks_vector_from(ctx, blob)
        cts = vec.ciphertext()
        ok = (
            vec.size() == size
            and len(cts) == 1
            and cts[0].size() == 2
            and cts[0].coeff_modulus_size() == primes
            and list(cts[0].parms_id()) == (first if top else last)
            and cts[0].scale == float(suite.scale)
        )
    except Exception:  # TenSEAL/SEAL raise assorted types on bad bytes
        raise ProtocolError(f"{frame.what}: ciphertext is not a valid CKKS vector") from None
    if not ok:
        raise ProtocolError(
            f"{frame.what}: ciphertext has the wrong size, level or scale for this round"
        )
    return vec


def _check_result(vec: Any, suite: HeSuite, weights: Frame) -> None:
    cts = vec.ciphertext()
    last = _reference_parms_ids(suite.degree)[1]
    if not (
        vec.size() == suite.slots
        and len(cts) == 1
        and cts[0].size() == 2
        and list(cts[0].parms_id()) == last
        and cts[0].scale == float(suite.scale)
    ):
        raise ProtocolError(
            f"{weights.what}: weights ciphertext leads to a result of the wrong scale"
        )


def encrypt_weights(ctx: Any, suite: HeSuite, theta: Array) -> bytes:
    """``Enc(Phi(theta, 1))`` in ``P`` slots (TenSEAL replicates it over all ``S``)."""
    return bytes(ts.ckks_vector(ctx, monomial_vector(suite, theta).tolist()).serialize())


def owner_matrix(suite: HeSuite, coefficients: Array) -> Any:
    """The ``P x S`` plaintext matrix: ``C`` tiled so every slot of the product is clean."""
    tiled = np.tile(coefficients, (1, suite.slots // suite.width))
    # An encoded plaintext's largest coefficient is at least scale * sqrt(2) * max|v| / N,
    # so entries below N / (2 sqrt(2) scale) may encode to a zero plaintext, which SEAL
    # refuses to multiply (a "transparent" product). They are below CKKS's precision anyway:
    # make them exactly zero, which TenSEAL skips; every row left encodes to a non-zero one.
    tiled[np.abs(tiled) < suite.degree / (2 * math.sqrt(2) * suite.scale)] = 0.0
    return ts.plain_tensor(tiled)


def contribute(ctx: Any, suite: HeSuite, weights: Any, matrix: Any, incoming: Any | None) -> Any:
    """``incoming + C . Enc(Phi) + Enc_pk(0)``: one owner's step of the chain.

    The fresh encryption of zero re-randomises the result (TenSEAL 0.3's
    ``mm`` happens to seed its accumulator with one too; we do not rely on it).
    """
    mine = weights.mm(matrix)
    if incoming is not None:
        mine = incoming + mine
    return mine + ts.ckks_vector(ctx, [0.0] * suite.slots)


def _view(session: str, round_: int, context_digest: bytes, weights: bytes) -> bytes:
    h = hashlib.sha256(_VIEW_LABEL)
    h.update(session.encode())
    h.update(round_.to_bytes(4, "big"))
    h.update(context_digest)
    h.update(hashlib.sha256(weights).digest())
    return h.digest()


def decode_aggregate(suite: HeSuite, values: npt.ArrayLike) -> tuple[Array, float]:
    """``(G, N)`` from all ``S`` decrypted slots; a non-periodic layout is a ProtocolError."""
    slots = np.asarray(values, dtype=np.float64)
    if slots.shape != (suite.slots,) or not np.isfinite(slots).all():
        raise ProtocolError("the aggregate does not decrypt to the agreed number of slots")
    replicas = slots.reshape(suite.slots // suite.width, suite.width)
    mean = replicas.mean(axis=0)
    tol = _REPLICA_ABS + _REPLICA_REL * float(np.abs(mean).max())
    if (
        float(np.abs(replicas - mean).max()) > tol
        or float(np.abs(mean[suite.variables :]).max(initial=0.0)) > tol
    ):
        raise ProtocolError(
            "the aggregate is not well formed (CKKS overflow: standardise the data; "
            "or an owner sent a malformed contribution)"
        )
    sums = mean / suite.sum_scale
    return sums[: suite.variables - 1], float(sums[suite.variables - 1])


# --- the protocol ------------------------------------------------------------------------


def train_as_trainer(channel: Channel, *, params: HeParams, rng_seed: int | None = None) -> HeModel:
    """Run ``params.rounds`` rounds with the owners; the trained model (trainer only)."""
    return train_as_trainer_with(
        channel, params=params, key=None, initial=initial_weights(params, rng_seed)
    )


def train_as_trainer_with(
    channel: Channel, *, params: HeParams, key: HeKey | None, initial: Array
) -> HeModel:
    """:func:`train_as_trainer` with the key and the starting point injected.

    ``key=None`` makes a fresh one, which is what a real run must do: reusing
    a key across runs links them, and a key leaked in one run opens the other
    runs' running sums. Tests pass one to skip key generation and to decrypt
    what they intercept.
    """
    suite = suite_for(params)
    theta = np.asarray(initial, dtype=np.float64).copy()
    if theta.shape != (params.features + 1,) or not np.isfinite(theta).all():
        raise InvalidInput(f"initial weights must be {params.features + 1} finite numbers")
    with channel.guard():
        if channel.me in params.owners or not set(params.owners) <= set(channel.peers):
            raise ProtocolError("the trainer must not be an owner, and every owner must be a peer")
        key = HeKey.generate(suite) if key is None else key
        ctx, context_blob = key.context, key.public
        context_digest = hashlib.sha256(context_blob).digest()
        for owner in params.owners:
            channel.send(
                owner, K_SETUP, fields=suite.setup_fields(params), blobs={"context": context_blob}
            )
        last = params.owners[-1]
        samples: int | None = None
        for r in range(1, params.rounds + 1):
            weights = encrypt_weights(ctx, suite, theta)
            view = _view(channel.session, r, context_digest, weights)
            for owner in params.owners:
                channel.send(owner, K_WEIGHTS, fields={"round": r}, blobs={"ciphertext": weights})
            frame = channel.expect(last, K_AGGREGATE)
            frame.only(fields=["round"], blobs=["ciphertext", "view"])
            frame.int_field("round", lo=r, hi=r)
            if not hmac.compare_digest(frame.blob("view", max_size=32, size=32), view):
                raise ProtocolError(f"{frame.what}: the owners did not see the weights sent")
            vec = _load_vector(ctx, frame, suite, size=suite.slots, top=False)
            grad, count = decode_aggregate(suite, vec.decrypt())
            samples = _check_count(count, samples, params)
            theta = theta - params.rate * grad / samples
        for owner in params.owners:
            channel.send(owner, K_DONE, fields={"rounds": params.rounds})
        assert samples is not None  # rounds >= 1
        return _model(params, theta, samples)


def _check_count(count: float, previous: int | None, params: HeParams) -> int:
    n = round(count)
    if abs(count - n) > _COUNT_SLACK or not len(params.owners) <= n <= MAX_ROWS * len(
        params.owners
    ):
        raise ProtocolError("the aggregate row count is not a plausible integer")
    if previous is not None and n != previous:
        raise ProtocolError("the aggregate row count changed between rounds")
    return n


def serve_as_owner(
    channel: Channel,
    *,
    trainer: str,
    params: HeParams,
    X: npt.ArrayLike,
    y: npt.ArrayLike,
) -> None:
    """Contribute this owner's encrypted gradient to every round; returns when the trainer is done."""
    suite = suite_for(params)
    try:
        if channel.me not in params.owners or trainer in params.owners:
            raise InvalidInput("this party must be an owner and the trainer must not be one")
        if trainer not in channel.peers:
            raise InvalidInput(f"{trainer!r} is not a peer in this session")
        # Done before any message arrives, so no round's timing depends on the row count.
        coefficients = owner_coefficients(params, X, y)
    except InvalidInput:
        with contextlib.suppress(ProtocolError):
            channel.fail("an owner's local input was rejected")
        raise
    matrix = owner_matrix(suite, coefficients)
    index = params.owners.index(channel.me)
    previous = params.owners[index - 1] if index > 0 else None
    following = params.owners[index + 1] if index + 1 < len(params.owners) else None
    with channel.guard():
        setup = channel.expect(trainer, K_SETUP)
        setup.only(fields=_SETUP_FIELDS, blobs=["context"])
        expected = suite.setup_fields(params)
        for name in _SETUP_FIELDS:
            if not _same_json(setup.fields[name], expected[name]):
                raise ProtocolError(f"{setup.what}: {name} does not match this owner's parameters")
        ctx = _load_public_context(setup, suite)
        context_digest = hashlib.sha256(
            setup.blob("context", max_size=suite.context_limit)
        ).digest()
        for r in range(1, params.rounds + 1):
            frame = channel.expect(trainer, K_WEIGHTS)
            frame.only(fields=["round"], blobs=["ciphertext"])
            frame.int_field("round", lo=r, hi=r)
            weights = _load_vector(ctx, frame, suite, size=suite.inputs, top=True)
            view = _view(channel.session, r, context_digest, frame.blobs["ciphertext"])
            incoming = None
            if previous is not None:
                before = channel.expect(previous, K_PARTIAL)
                before.only(fields=["round"], blobs=["ciphertext", "view"])
                before.int_field("round", lo=r, hi=r)
                if not hmac.compare_digest(before.blob("view", max_size=32, size=32), view):
                    raise ProtocolError(
                        f"{before.what}: the trainer sent different owners different weights"
                    )
                incoming = _load_vector(ctx, before, suite, size=suite.slots, top=False)
            out = contribute(ctx, suite, weights, matrix, incoming)
            _check_result(out, suite, frame)
            channel.send(
                following if following is not None else trainer,
                K_PARTIAL if following is not None else K_AGGREGATE,
                fields={"round": r},
                blobs={"ciphertext": out.serialize(), "view": view},
            )
        done = channel.expect(trainer, K_DONE)
        done.only(fields=["rounds"])
        done.int_field("rounds", lo=params.rounds, hi=params.rounds)


def _same_json(a: object, b: object) -> bool:
    """Equality that does not let ``True == 1`` or ``[1] == (1,)`` through."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    return a == b
