"""Running the no-trust protocols as one party: over the relay, ending in co-signed receipts.

Each run has the same three steps whatever the protocol: the parties tell
each other (through the hub, the first role) which attested datasets they
bring; the protocol runs on the channel; every party signs a
:class:`~sealroom.statements.ProtocolReceipt` and the hub hands the full set
to everyone, who verifies it. Any failure in any step ends the run on every
side with a :class:`~sealroom.errors.ProtocolError`.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sealroom.client.http import Client
from sealroom.client.relay import Session, channel_for
from sealroom.crypto.keys import Identity
from sealroom.errors import InvalidInput, SealroomError, StatementFormatError, VerificationFailed
from sealroom.protocols import pjc, psi
from sealroom.protocols.channel import DEFAULT_TIMEOUT, Channel, Transport
from sealroom.protocols.receipts import (
    RunRecord,
    exchange_receipts,
    share_all,
    sign_receipt,
    verify_run,
)
from sealroom.statements import (
    Envelope,
    ModelWeights,
    ProtocolParticipant,
    Signed,
    TrainedModel,
    canonical_json,
    output_commitment,
    parse_json_strict,
    sign_statement,
)
from sealroom.statements.envelope import MAX_ENVELOPE_SIZE
from sealroom.statements.fields import decimal_text

if TYPE_CHECKING:  # numpy and TenSEAL load only when a party trains
    from numpy.typing import ArrayLike

    from sealroom.protocols.fedavg import FedAvgConfig, OwnerData
    from sealroom.protocols.he import HeParams

__all__ = [
    "CheckedRun",
    "ProtocolRun",
    "check_run_record",
    "run_federated",
    "run_he",
    "run_pjc",
    "run_protocol",
    "run_psi",
    "share_model",
]

RunOutcome = tuple[Mapping[str, Any], Mapping[str, Any]]
"""What a run function returns: (the parameters all agreed on, what this party learned)."""
_MAX_INPUTS = 64 << 10


@dataclass(frozen=True)
class ProtocolRun:
    """What a party leaves a run with: what it learned, and the co-signed record."""

    session: Session
    learned: Mapping[str, Any]
    record: RunRecord
    model: Signed[TrainedModel] | None = field(default=None)
    """Training runs: the model statement the trainer signed (every owner checked it)."""
    intersection: tuple[bytes, ...] | None = field(default=None)
    """PSI in intersection mode, for the party that matches: the common elements (never sent)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "session": self.session.id,
            "protocol": self.session.protocol,
            "role": self.session.me,
            "learned": dict(self.learned),
            "receipts": self.record.to_dict()["receipts"],
            # Opens this party's output commitment in its receipt, if it chooses to disclose.
            "output_salt": base64.b64encode(self.record.salt).decode("ascii"),
            "model": self.model.envelope.to_dict() if self.model else None,
            # PSI in intersection mode: the common values, in full (they are this party's own).
            "intersection": (
                sorted(v.decode("utf-8", "replace") for v in self.intersection)
                if self.intersection is not None
                else None
            ),
        }


@dataclass(frozen=True, slots=True)
class CheckedRun:
    """A run record that verified: who signed, and what the holder learned (opened)."""

    protocol: str
    session: str
    role: str
    learned: Mapping[str, Any]
    signed: tuple[str, ...]
    participants: tuple[str, ...]


def check_run_record(doc: Any) -> CheckedRun:
    """Verify a run record as ``--out`` writes it (raises :class:`VerificationFailed`).

    Every receipt is checked together (signatures and signers, one run, one receipt per
    role, both ends of each message stream agreeing; see ``verify_run``), and the
    holder's ``learned`` is opened against the output commitment in its own receipt with
    ``output_salt``, so nobody can edit what the run gave it. Participants that did not
    sign (a protocol that tolerates dropouts) are listed, not hidden.
    """
    if not isinstance(doc, Mapping):
        raise VerificationFailed("a run record is a JSON object")
    try:
        role, salt_b64, learned = doc["role"], doc["output_salt"], doc["learned"]
        receipts = verify_run([Envelope.from_dict(e) for e in doc["receipts"]], require_all=False)
        salt = base64.b64decode(salt_b64, validate=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise VerificationFailed(f"not a run record: {type(exc).__name__} {exc}") from None
    except StatementFormatError as exc:
        raise VerificationFailed(f"a receipt does not parse: {exc.detail}") from None
    own = [r.statement for r in receipts if r.statement.role == role]
    if len(own) != 1:
        raise VerificationFailed(f"the record holds no receipt of its holder {role!r}")
    try:
        opened = output_commitment(salt, canonical_json(learned))
    except SealroomError as exc:
        raise VerificationFailed(f"learned does not open: {exc.detail}") from None
    if not hmac.compare_digest(opened, own[0].output.commitment):
        raise VerificationFailed(
            f"what the record says {role} learned is not what its receipt commits to"
        )
    first = receipts[0].statement
    return CheckedRun(
        protocol=first.protocol,
        session=first.session,
        role=role,
        learned=learned,
        signed=tuple(r.statement.role for r in receipts),
        participants=tuple(p.role for p in first.participants),
    )


Exchange = Callable[[int, int], None]
"""Progress of a protocol run: (messages, bytes) sent and received so far."""


class _Counted:
    """A transport that reports the running totals of what passes through it."""

    def __init__(self, inner: Transport, report: Exchange) -> None:
        self._inner = inner
        self._report = report
        self._messages = 0
        self._bytes = 0

    def _count(self, size: int) -> None:
        self._messages += 1
        self._bytes += size
        self._report(self._messages, self._bytes)

    def send(self, recipient: str, data: bytes) -> None:
        self._inner.send(recipient, data)
        self._count(len(data))

    def receive(self, timeout: float) -> tuple[str, bytes] | None:
        got = self._inner.receive(timeout)
        if got is not None:
            self._count(len(got[1]))
        return got


def run_protocol(
    client: Client,
    session: Session,
    *,
    version: int,
    run: Callable[[Channel, tuple[ProtocolParticipant, ...]], RunOutcome],
    inputs: Sequence[str] = (),
    peers: Sequence[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    dropout_timeout: float | None = None,
    now: Callable[[], int] | None = None,
    on_exchange: Exchange | None = None,
) -> ProtocolRun:
    """Run ``run(channel, participants) -> (parameters, learned)`` in ``session``, then
    exchange receipts.

    ``peers``: the roles this party talks to (default: all others; a star
    protocol's clients talk only to the hub). ``dropout_timeout``: for
    protocols that tolerate dropouts, how long the hub waits for stragglers
    in the bookkeeping steps. ``on_exchange(messages, bytes)`` sees the running totals of
    messages sent and received (a progress display; the protocol does not wait for it).
    """
    identity = client.identity
    if identity is None:
        raise InvalidInput("running a protocol needs a keystore")
    channel = channel_for(client, session, version=version, peers=peers, timeout=timeout)
    if on_exchange is not None:
        channel.transport = _Counted(channel.transport, on_exchange)
    hub = session.roles[0]
    with channel.guard():
        brought = share_all(
            channel,
            canonical_json(list(inputs)),
            kind="inputs",
            hub=hub,
            roles=session.roles,
            max_size=_MAX_INPUTS,
            timeout=dropout_timeout,
        )
        by_role = {r: _digests(channel, r, raw) for r, raw in brought.items()}
        participants = session.participants(by_role)
        parameters, learned = run(channel, participants)
        receipt, output, salt = sign_receipt(
            channel,
            identity=identity,
            participants=participants,
            parameters=parameters,
            output=learned,
            request=session.request,
            now=(now or client.now)(),
        )
    receipts = exchange_receipts(
        channel, receipt, hub=hub, roles=session.roles, timeout=dropout_timeout
    )
    record = RunRecord(receipts=receipts, own=receipt, output=output, salt=salt)
    return ProtocolRun(session=session, learned=learned, record=record)


def _digests(channel: Channel, role: str, raw: bytes) -> list[str]:
    value = parse_json_strict(raw, max_size=_MAX_INPUTS, what=f"inputs of {role}")
    if not isinstance(value, list) or not all(
        isinstance(v, str) and v.startswith("sha256:") and len(v) == 71 for v in value
    ):
        channel.fail(f"{role} named its inputs wrongly")
    return list(value)


def share_model(
    channel: Channel,
    session: Session,
    *,
    participants: Sequence[ProtocolParticipant],
    method: Literal["secagg-fedavg", "ckks-gradient-descent"],
    features: Sequence[str],
    family: Literal["linear", "logistic"],
    weights: Sequence[float],
    intercept: float,
    rounds: int,
    training: Mapping[str, Any],
    now: int,
    identity: Identity,
) -> Signed[TrainedModel]:
    """The trainer (the hub) signs the model statement and sends it to every peer, who checks
    that it describes this run; everyone returns the same signed statement."""
    from sealroom.protocols.receipts import code_digest

    hub = session.roles[0]
    if channel.me == hub:
        statement = TrainedModel(
            trainer=session.parties[hub].party_id,
            method=method,
            session=session.id,
            code_digest=code_digest(session.protocol),
            participants=tuple(participants),
            rounds=rounds,
            model=ModelWeights(
                family=family,
                features=tuple(features),
                weights=tuple(decimal_text(w) for w in weights),
                intercept=decimal_text(intercept),
            ),
            training=dict(training),
            issued_at=now,
        )
        signed = sign_statement(statement, identity)
        for peer in channel.peers:
            channel.send(peer, "model", blobs={"envelope": signed.envelope.to_json()})
        return signed
    frame = channel.expect(hub, "model")
    frame.only(blobs=["envelope"])
    signed = Envelope.from_json(frame.blob("envelope", max_size=MAX_ENVELOPE_SIZE)).open(
        TrainedModel
    )
    got = signed.statement
    if (
        got.session != session.id
        or got.trainer != session.parties[hub].party_id
        or got.participants != tuple(participants)
        or got.model.features != tuple(features)
        or got.rounds != rounds
    ):
        channel.fail("the trainer's model statement does not describe this run")
    return signed


def _learned(signed: Signed[TrainedModel]) -> dict[str, Any]:
    m = signed.statement.model
    return {
        "model": signed.digest,
        "family": m.family,
        "weights": list(m.weights),
        "intercept": m.intercept,
        "rounds": signed.statement.rounds,
    }


def _identity(client: Client) -> Identity:
    if client.identity is None:
        raise InvalidInput("running a protocol needs a keystore")
    return client.identity


def run_psi(
    client: Client,
    session: Session,
    *,
    elements: Iterable[bytes] = (),
    keywords: Sequence[str] | None = None,
    params: psi.PsiParams,
    workers: int = 1,
    inputs: Sequence[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
    on_exchange: Exchange | None = None,
) -> ProtocolRun:
    """Private set intersection of ``elements`` (or, for private discovery, of the normalised
    ``keywords``, compared by size only) with the session's other party."""
    found: list[tuple[bytes, ...] | None] = []

    def run(channel: Channel, _: tuple[ProtocolParticipant, ...]) -> RunOutcome:
        if keywords is not None:
            result = psi.keyword_overlap(
                channel,
                role=session.me,
                keywords=keywords,
                threshold=params.threshold,
                workers=workers,
            )
        else:
            result = psi.run_psi(
                channel, role=session.me, elements=elements, params=params, workers=workers
            )
        found.append(result.intersection)
        return params.as_dict(), result.public_summary()

    done = run_protocol(
        client,
        session,
        version=psi.VERSION,
        run=run,
        inputs=inputs,
        timeout=timeout,
        on_exchange=on_exchange,
    )
    return dataclasses.replace(done, intersection=found[0])


def run_pjc(
    client: Client,
    session: Session,
    *,
    ids: Sequence[bytes],
    values: Sequence[int] | None,
    params: pjc.PjcParams,
    workers: int = 1,
    inputs: Sequence[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
    on_exchange: Exchange | None = None,
) -> ProtocolRun:
    """Private intersection-sum: role ``a`` brings ``ids``; role ``b`` brings ``ids`` and
    ``values``, whose sum over the common ids ``a`` learns."""

    def run(channel: Channel, _: tuple[ProtocolParticipant, ...]) -> RunOutcome:
        result = pjc.run_pjc(
            channel, role=session.me, ids=ids, values=values, params=params, workers=workers
        )
        return params.as_dict(), result.public_summary()

    return run_protocol(
        client,
        session,
        version=pjc.VERSION,
        run=run,
        inputs=inputs,
        timeout=timeout,
        on_exchange=on_exchange,
    )


def run_federated(
    client: Client,
    session: Session,
    *,
    config: FedAvgConfig,
    features: Sequence[str],
    data: OwnerData | None,
    inputs: Sequence[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
    dropout_timeout: float = DEFAULT_TIMEOUT,
    on_exchange: Exchange | None = None,
) -> ProtocolRun:
    """Federated averaging over secure aggregation: the hub aggregates (``data`` None), each
    owner trains on its ``data``; the hub signs the model statement, every owner checks it.

    ``dropout_timeout``: how long anyone waits for a step of a round (the hub then goes on
    without the owners that have not answered).
    """
    from sealroom.protocols import fedavg

    identity = _identity(client)
    kept: list[Signed[TrainedModel]] = []

    def run(channel: Channel, participants: tuple[ProtocolParticipant, ...]) -> RunOutcome:
        training: dict[str, Any] = {}
        weights: Sequence[float] = (0.0,) * len(features)
        intercept = 0.0
        if channel.me == session.roles[0]:
            fitted = fedavg.train_federated_aggregator(
                channel, config=config, timeout=dropout_timeout
            )
            weights, intercept = fitted.weights, fitted.intercept
            training = {
                "config": config.as_dict(),
                "precision_bits": fitted.precision_bits,
                "round_participants": [list(r) for r in fitted.round_participants],
            }
        else:
            if data is None:
                raise InvalidInput("an owner needs its training data")
            fedavg.train_federated_owner(channel, config=config, data=data, timeout=dropout_timeout)
        signed = share_model(
            channel,
            session,
            participants=participants,
            method="secagg-fedavg",
            features=features,
            family="logistic",
            weights=weights,
            intercept=intercept,
            rounds=config.rounds,
            training=training,
            now=client.now(),
            identity=identity,
        )
        kept.append(signed)
        return config.as_dict(), _learned(signed)

    done = run_protocol(
        client,
        session,
        version=1,
        run=run,
        inputs=inputs,
        timeout=timeout,
        dropout_timeout=dropout_timeout,
        on_exchange=on_exchange,
    )
    return dataclasses.replace(done, model=kept[0])


def run_he(
    client: Client,
    session: Session,
    *,
    params: HeParams,
    features: Sequence[str],
    data: tuple[ArrayLike, ArrayLike] | None,
    inputs: Sequence[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
    on_exchange: Exchange | None = None,
) -> ProtocolRun:
    """CKKS gradient descent: the hub (trainer, ``data`` None) holds the key and the weights;
    the owners add their encrypted gradients along a chain; the trainer signs the model."""
    from sealroom.protocols import he

    identity = _identity(client)
    kept: list[Signed[TrainedModel]] = []

    def run(channel: Channel, participants: tuple[ProtocolParticipant, ...]) -> RunOutcome:
        training: dict[str, Any] = {}
        weights: Sequence[float] = (0.0,) * len(features)
        intercept = 0.0
        if channel.me == session.roles[0]:
            fitted = he.train_as_trainer(channel, params=params)
            weights, intercept = fitted.weights, fitted.intercept
            training = {"params": params.as_dict(), "samples": fitted.samples}
        else:
            if data is None:
                raise InvalidInput("an owner needs its training data")
            he.serve_as_owner(
                channel, trainer=session.roles[0], params=params, X=data[0], y=data[1]
            )
        signed = share_model(
            channel,
            session,
            participants=participants,
            method="ckks-gradient-descent",
            features=features,
            family=params.model,
            weights=weights,
            intercept=intercept,
            rounds=params.rounds,
            training=training,
            now=client.now(),
            identity=identity,
        )
        kept.append(signed)
        return params.as_dict(), _learned(signed)

    done = run_protocol(
        client,
        session,
        version=1,
        run=run,
        inputs=inputs,
        timeout=timeout,
        on_exchange=on_exchange,
    )
    return dataclasses.replace(done, model=kept[0])
