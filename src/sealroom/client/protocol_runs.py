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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from sealroom.client.http import Client
from sealroom.client.relay import Session, channel_for
from sealroom.crypto.keys import Identity
from sealroom.errors import InvalidInput
from sealroom.protocols.channel import DEFAULT_TIMEOUT, Channel
from sealroom.protocols.receipts import RunRecord, exchange_receipts, share_all, sign_receipt
from sealroom.statements import (
    Envelope,
    ModelWeights,
    ProtocolParticipant,
    Signed,
    TrainedModel,
    canonical_json,
    parse_json_strict,
    sign_statement,
)
from sealroom.statements.envelope import MAX_ENVELOPE_SIZE
from sealroom.statements.fields import decimal_text

__all__ = ["ProtocolRun", "run_protocol", "share_model"]

T = TypeVar("T")
_MAX_INPUTS = 64 << 10


@dataclass(frozen=True)
class ProtocolRun:
    """What a party leaves a run with: what it learned, and the co-signed record."""

    session: Session
    learned: Mapping[str, Any]
    record: RunRecord
    model: Signed[TrainedModel] | None = field(default=None)

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
        }


def run_protocol(
    client: Client,
    session: Session,
    *,
    version: int,
    run: Callable[
        [Channel, tuple[ProtocolParticipant, ...]], tuple[Mapping[str, Any], Mapping[str, Any]]
    ],
    inputs: Sequence[str] = (),
    peers: Sequence[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    dropout_timeout: float | None = None,
    now: Callable[[], int] | None = None,
) -> ProtocolRun:
    """Run ``run(channel, participants) -> (parameters, learned)`` in ``session``, then
    exchange receipts.

    ``peers``: the roles this party talks to (default: all others; a star
    protocol's clients talk only to the hub). ``dropout_timeout``: for
    protocols that tolerate dropouts, how long the hub waits for stragglers
    in the bookkeeping steps.
    """
    identity = client.identity
    if identity is None:
        raise InvalidInput("running a protocol needs a keystore")
    channel = channel_for(client, session, version=version, peers=peers, timeout=timeout)
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


RunFn = Callable[
    [Channel, tuple[ProtocolParticipant, ...]], tuple[Mapping[str, Any], Mapping[str, Any]]
]


def _learned(signed: Signed[TrainedModel]) -> dict[str, Any]:
    m = signed.statement.model
    return {
        "model": signed.digest,
        "family": m.family,
        "weights": list(m.weights),
        "intercept": m.intercept,
        "rounds": signed.statement.rounds,
    }


def federated_training(
    client: Client,
    session: Session,
    *,
    config: Any,
    features: Sequence[str],
    data: Any | None,
    kept: list[Signed[TrainedModel]],
    timeout: float = 60.0,
) -> RunFn:
    """The run for federated averaging over secure aggregation (the hub aggregates)."""
    from sealroom.protocols import fedavg

    identity = client.identity
    if identity is None:
        raise InvalidInput("training needs a keystore")

    def run(
        channel: Channel, participants: tuple[ProtocolParticipant, ...]
    ) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
        training: dict[str, Any] = {}
        weights: Sequence[float] = (0.0,) * len(features)
        intercept = 0.0
        if channel.me == session.roles[0]:
            fitted = fedavg.train_federated_aggregator(channel, config=config, timeout=timeout)
            weights, intercept = fitted.weights, fitted.intercept
            training = {
                "config": config.as_dict(),
                "precision_bits": fitted.precision_bits,
                "round_participants": [list(r) for r in fitted.round_participants],
            }
        else:
            if data is None:
                raise InvalidInput("an owner needs its training data")
            fedavg.train_federated_owner(channel, config=config, data=data, timeout=timeout)
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

    return run


def he_training(
    client: Client,
    session: Session,
    *,
    params: Any,
    features: Sequence[str],
    data: tuple[Any, Any] | None,
    kept: list[Signed[TrainedModel]],
) -> RunFn:
    """The run for CKKS gradient descent (the hub trains; owners add encrypted gradients)."""
    from sealroom.protocols import he

    identity = client.identity
    if identity is None:
        raise InvalidInput("training needs a keystore")

    def run(
        channel: Channel, participants: tuple[ProtocolParticipant, ...]
    ) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
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

    return run
