"""Owner and requester flows on the client side, one function per step (usable by agents).

Every flow re-opens the statements it acts on (signature, signer, digest) and
compares digests with the ids it asked for; nothing the coordinator says is
taken on its word. Owners seal data only to enclave evidence they verified
themselves, and only data that still matches their signed commitment.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
from pydantic_core import to_jsonable_python

from sealroom.attestation.collateral import CollateralSource, EmbeddedCollateral
from sealroom.attestation.pins import EnclavePin
from sealroom.client.checkpoints import TrustedLog
from sealroom.client.errors import WaitTimeout
from sealroom.client.http import Client, Progress
from sealroom.client.local import (
    DatasetIndex,
    LocalDataset,
    pinned_simulation_root,
    recorded_consent,
)
from sealroom.client.trust import SealingTrust, VerifiedEnclave, choose_enclave
from sealroom.client.uploads import (
    check_sealed_size,
    load_spool,
    seal_to_spool,
    spool_path,
    upload_spool,
)
from sealroom.computations import DEFAULT_K, Computation, Registry, default_registry
from sealroom.crypto.commit import DatasetCommitment, commit_table
from sealroom.crypto.files import write_private
from sealroom.crypto.keys import Identity, PublicIdentity, b64decode_strict, b64encode
from sealroom.crypto.release import RELEASE_PURPOSE, is_wrapped, unwrap
from sealroom.crypto.sealing import SealContext, open_sealed
from sealroom.errors import (
    CommitmentMismatch,
    InvalidInput,
    NotFound,
    PolicyDenied,
    VerificationFailed,
)
from sealroom.policy import Decision, PolicyRules
from sealroom.policy.compose import decide_in_room
from sealroom.protocols.queries import is_protocol
from sealroom.statements import (
    Accept,
    Approval,
    CommitmentRef,
    ComputationRequest,
    DatasetAttestation,
    Envelope,
    Liveness,
    Offer,
    Policy,
    Receipt,
    ReleasedOutput,
    Signed,
    Transfer,
    canonical_json,
    sign_statement,
)
from sealroom.verification.trust import trust_policy
from sealroom.verification.verify import VerificationReport, verify_bundle
from sealroom.wire import DatasetView, RequestStatus, RequestView, ResultView
from sealroom.wire.credits import CreditsView, OfferView, RewardsView, liveness_message

if TYPE_CHECKING:
    from sealroom.connectors.profile import DatasetCard
    from sealroom.connectors.sources import Source

__all__ = [
    "TERMINAL",
    "ApprovedInput",
    "AutoApproval",
    "CardOptions",
    "CardPreview",
    "FetchedResult",
    "Published",
    "approve",
    "auto_approve",
    "content_root",
    "exact_rule",
    "fetch_result",
    "keyword_overlap",
    "load_dataset",
    "preview_card",
    "publish",
    "reject",
    "request",
    "show",
    "status",
    "submit_request",
    "wait",
    "withdraw",
    "withdraw_dataset",
]

DEFAULT_TTL = 7 * 86_400
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "rejected", "withdrawn", "expired"})


def _check_identity(client: Client, identity: Identity) -> None:
    if client.identity is None or client.identity.party_id != identity.party_id:
        raise InvalidInput("the client must be signing as the same identity the flow acts for")


def _digest_bytes(digest: str) -> bytes:
    return bytes.fromhex(digest.removeprefix("sha256:"))


# --- publish --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Published:
    dataset: str
    policy: str | None
    log_index: int
    checkpoint_size: int
    path: Path | None  # the file, for a file source
    rows: int
    attestation: Signed[DatasetAttestation]
    source: str = ""  # how the source names itself (no secrets)


def _commitment_ref(c: DatasetCommitment) -> CommitmentRef:
    return CommitmentRef(
        format="arrow-ipc-stream/v1",
        root=b64encode(c.root),
        length=c.length,
        rows=c.rows,
        chunk_size=c.chunk_size,
    )


def _source(data: Path | Source) -> Source:
    """A path is a local file (format from its name); anything else is already a source."""
    from sealroom.connectors.sources import FileSource

    return FileSource(path=Path(data).resolve()) if isinstance(data, (str, Path)) else data


def _read_table(data: Path | Source) -> pa.Table:
    return _source(data).read()


def content_root(path: Path) -> str:
    """The content commitment root of a local file, as its attestation will name it.

    A policy pins the partner data of exact joins by this root
    (``pinned.partners``), so an owner can pin a partner's file before either
    is published.
    """
    return b64encode(commit_table(_read_table(Path(path))).root)


def exact_rule(
    computation: Computation,
    params: Mapping[str, Any],
    *,
    partners: Sequence[Path] = (),
    dp: Literal["optional", "off"] = "off",
) -> dict[str, Any]:
    """A policy ``allow`` entry that lets ``computation`` release exactly in one shape.

    The shape is ``params``' isolating parameters (defaults filled in, as a request
    gives them) and the partner files' content roots: an owner writes the one exact
    question it agrees to answer, and every other exact request is refused.
    """
    given = computation.parse_params(dict(params)).model_dump(mode="json")
    return {
        "id": computation.id,
        "dp": dp,
        "pinned": {
            "params": {name: given[name] for name in computation.isolating},
            "partners": [content_root(p) for p in partners],
        },
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class CardOptions:
    """The owner's say in its public card (k and the entity column come from its policy).

    A column names a column of the file; "" leaves that part of the card out; None
    takes ``text``, ``ts`` or ``project`` when the file has them. ``drop_terms`` are
    left out of the card, with every term that contains one as whole words.
    """

    text_column: str | None = None
    time_column: str | None = None
    project_column: str | None = None
    drop_terms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CardPreview:
    """What :func:`publish` would sign for a file: the card, its attestation fields exactly as
    they would be signed (``fields``, JSON values), and the commitment to the data."""

    card: DatasetCard
    fields: dict[str, Any]
    commitment: CommitmentRef


def _preview(
    table: pa.Table, policy_rules: Mapping[str, Any] | None, card: CardOptions
) -> CardPreview:
    from sealroom.connectors.profile import attestation_fields, profile_table

    rules = PolicyRules.parse(policy_rules) if policy_rules is not None else None
    built = profile_table(
        table,
        text_column=card.text_column,
        time_column=card.time_column,
        project_column=card.project_column,
        k=rules.k if rules is not None else DEFAULT_K,
        entity_column=rules.entity_column if rules is not None else None,
        drop_terms=card.drop_terms,
    )
    fields = attestation_fields(built)
    fields.pop("row_count")  # the commitment's, checked against it by the statement
    return CardPreview(
        card=built,
        fields=to_jsonable_python(fields, by_alias=True),
        commitment=_commitment_ref(commit_table(table)),
    )


def preview_card(
    path: Path | Source,
    *,
    policy_rules: Mapping[str, Any] | None,
    card: CardOptions = CardOptions(),
) -> CardPreview:
    """The card :func:`publish` would sign for ``path`` (a file or any source) under
    ``policy_rules``: nothing is signed or sent, so an owner can read it, drop terms, and
    look again."""
    return _preview(_read_table(path), policy_rules, card)


def publish(
    client: Client,
    identity: Identity,
    path: Path | Source,
    *,
    title: str,
    description: str,
    policy_rules: Mapping[str, Any] | None,
    now: int,
    home: Path,
    policy_name: str | None = None,
    card: CardOptions = CardOptions(),
) -> Published:
    """Profile and commit a local file or other source, sign and post its attestation (and
    policy), check the log, and remember where the data is (without secrets).

    The card is built under the policy's k and entity column (:func:`preview_card` shows
    the same card without signing anything).
    """
    _check_identity(client, identity)
    source = _source(path)
    if policy_rules is not None:
        PolicyRules.parse(policy_rules)  # refuse bad rules before anything is read or signed
    table = source.read()
    preview = _preview(table, policy_rules, card)
    del table
    policy: Signed[Policy] | None = None
    if policy_rules is not None:
        policy = sign_statement(
            Policy.build(
                owner=identity.party_id,
                name=(policy_name or f"policy for {title}")[:200],
                rules=dict(policy_rules),
                created_at=now,
            ),
            identity,
        )
    try:
        statement = DatasetAttestation.model_validate_json(
            canonical_json(
                {
                    **preview.fields,
                    "owner": identity.party_id,
                    "title": title,
                    "description": description,
                    "row_count": preview.commitment.rows,
                    "commitment": preview.commitment.model_dump(mode="json"),
                    "policy": policy.digest if policy is not None else None,
                    "created_at": now,
                }
            )
        )
    except ValueError as exc:
        raise InvalidInput(f"cannot build the dataset attestation: {exc}") from None
    attestation = sign_statement(statement, identity)
    view = client.publish_dataset(
        attestation.envelope, policy.envelope if policy is not None else None
    )
    if view.dataset != attestation.digest or view.envelope.to_json() != (
        attestation.envelope.to_json()
    ):
        raise VerificationFailed("the coordinator answered with a different dataset")
    if view.policy != (policy.digest if policy is not None else None):
        raise VerificationFailed("the coordinator recorded a different policy for the dataset")
    cp = TrustedLog(client, home).verify_inclusion(
        attestation.envelope,
        index=view.log_index,
        proof=view.inclusion.proof,
        checkpoint=view.inclusion.checkpoint,
    )
    if cp.size != view.inclusion.size:
        raise VerificationFailed("the inclusion proof's size differs from its checkpoint")
    locator = source.locator()
    file = Path(locator["path"]) if locator is not None and locator["kind"] == "file" else None
    DatasetIndex(home).record(
        LocalDataset(
            dataset=attestation.digest,
            path=file,
            title=title,
            published_at=now,
            locator=locator,
        )
    )
    return Published(
        dataset=attestation.digest,
        policy=policy.digest if policy is not None else None,
        log_index=view.log_index,
        checkpoint_size=cp.size,
        path=file,
        rows=preview.commitment.rows,
        attestation=attestation,
        source=source.name,
    )


# --- request --------------------------------------------------------------------------------


def load_dataset(
    client: Client, dataset: str, *, data_path: Path | Source | None, home: Path
) -> tuple[Signed[DatasetAttestation], pa.Table]:
    """One of this party's own datasets, read locally and checked against its signed commitment."""
    att = _open_dataset(client, dataset)
    if client.identity is None or att.statement.owner != client.identity.party_id:
        raise InvalidInput(f"dataset {dataset} belongs to {att.statement.owner}, not to this party")
    return att, _load_checked(att, data_path=data_path, home=home)


def _open_dataset(client: Client, dataset: str) -> Signed[DatasetAttestation]:
    return _opened(client.dataset(dataset), dataset)


def _opened(view: DatasetView, dataset: str) -> Signed[DatasetAttestation]:
    """The attestation in ``view``, after checking its owner's signature and that it is ``dataset``."""
    att = view.envelope.open(DatasetAttestation)
    if att.digest != dataset or view.dataset != dataset:
        raise VerificationFailed(f"the coordinator served another statement for {dataset}")
    return att


def show(client: Client, dataset: str) -> DatasetView:
    """A dataset's public card, once its owner's signature on it checks out."""
    view = client.dataset(dataset)
    _opened(view, dataset)
    return view


def withdraw_dataset(client: Client, dataset: str, *, reason: str) -> DatasetView:
    """Withdraw one of the caller's datasets: new requests on it are refused, pending ones end."""
    view = client.withdraw_dataset(dataset, reason)
    if view.dataset != dataset or view.status != "withdrawn":
        raise VerificationFailed(f"the coordinator did not withdraw {dataset}")
    return view


def request(
    client: Client,
    identity: Identity,
    computation_id: str,
    datasets: Sequence[str],
    params: Mapping[str, Any],
    *,
    now: int,
    ttl: int = DEFAULT_TTL,
    registry: Registry | None = None,
    random: Callable[[int], bytes] = os.urandom,
    room_policy: Envelope | str | None = None,
    home: Path | None = None,
    terms: Sequence[str] = (),
    max_price: int | None = None,
) -> RequestView:
    """Build, sign and post a ComputationRequest for a computation of the local library.

    ``terms``: the digests of this party's acceptances of owners' offers (:func:`accept`);
    the inputs they cover are priced as agreed. ``max_price``: signed into the request, the
    most it may be escrowed (a higher price rejects it instead).

    ``room_policy``: a room Policy composed with every input's policy (strictest
    wins), named in the request; a digest names a policy already stored, an
    envelope (signed by the caller) is published first (idempotent). With
    ``home``, the request's log entry is checked against the log this party trusts.
    """
    _check_identity(client, identity)
    room: str | None = None
    if isinstance(room_policy, Envelope):
        signed_room = room_policy.open(Policy)
        PolicyRules.parse(signed_room.statement.rules)
        if client.post_policy(room_policy).policy != signed_room.digest:
            raise VerificationFailed("the coordinator stored another policy than the one sent")
        room = signed_room.digest
    elif room_policy is not None:
        room = room_policy
    computation = (registry or default_registry()).get(computation_id)
    computation.check_inputs(len(datasets))
    computation.parse_params(dict(params))
    recipients: list[str] = [identity.party_id]
    if computation.release == "all-parties":
        for dataset in datasets:
            owner = _open_dataset(client, dataset).statement.owner
            if owner not in recipients:
                recipients.append(owner)
    request = ComputationRequest.build(
        requester=identity.party_id,
        computation=computation.ref(),
        parameters=dict(params),
        inputs=tuple(datasets),
        recipients=tuple(recipients),
        nonce=b64encode(random(16)),
        created_at=now,
        expires_at=now + ttl,
        room_policy=room,
        terms=tuple(terms),
        max_price=max_price,
    )
    return submit_request(client, identity, request, home=home)


def submit_request(
    client: Client, identity: Identity, request: ComputationRequest, *, home: Path | None
) -> RequestView:
    """Sign and post ``request``; with ``home``, check its log entry against the log this
    party trusts."""
    signed = sign_statement(request, identity)
    view = client.create_request(signed.envelope)
    if view.request != signed.digest:
        raise VerificationFailed("the coordinator answered for a different request")
    if home is not None:
        TrustedLog(client, home).verify_logged(
            signed.envelope, index=view.log_index, salt=view.log_salt
        )
    return view


def offer(
    client: Client,
    identity: Identity,
    dataset: str,
    computation_id: str,
    *,
    price: int,
    usage_bonus: int,
    requester: str | None,
    now: int,
    ttl: int = DEFAULT_TTL,
    random: Callable[[int], bytes] = os.urandom,
) -> OfferView:
    """Offer negotiated terms for one of this party's datasets: ``price`` replaces the
    schedule's for that input, ``usage_bonus`` is paid on top per receipt (minor units)."""
    _check_identity(client, identity)
    signed = sign_statement(
        Offer.build(
            owner=identity.party_id,
            dataset=dataset,
            requester=requester,
            computation=computation_id,
            price=price,
            usage_bonus=usage_bonus,
            nonce=b64encode(random(16)),
            created_at=now,
            expires_at=now + ttl,
        ),
        identity,
    )
    view = client.post_offer(signed.envelope)
    if view.envelope.digest != signed.digest:
        raise VerificationFailed("the coordinator stored another offer than the one sent")
    return view


def accept(client: Client, identity: Identity, offer_digest: str, *, now: int) -> str:
    """Accept an offer addressed to this party; name the returned digest in a request's terms."""
    _check_identity(client, identity)
    mine: dict[str, OfferView] = {v.envelope.digest: v for v in client.offers()}
    if offer_digest not in mine:
        raise NotFound(f"no offer {offer_digest} for you")
    terms = mine[offer_digest].envelope.open(Offer).statement
    if terms.requester not in (None, identity.party_id):
        raise VerificationFailed("the offer is addressed to another requester")
    signed = sign_statement(
        Accept(offer=offer_digest, requester=identity.party_id, created_at=now), identity
    )
    view = client.post_accept(signed.envelope)
    if view.envelope.digest != signed.digest:
        raise VerificationFailed("the coordinator stored another acceptance than the one sent")
    return signed.digest


def verified_credits(
    client: Client, identity: Identity, *, home: Path | None = None
) -> CreditsView:
    """This party's account, checked: every transfer is signed by the ledger key the coordinator
    publishes, posts to this account, and the postings sum to the balance shown; every escrow
    of one of this party's requests is at most the max_price it signed; with ``home``, every
    transfer is in the log this party trusts. Raises :class:`VerificationFailed` otherwise."""
    _check_identity(client, identity)
    ledger = client.credits_ledger()
    key = PublicIdentity(
        signing_key=b64decode_strict(ledger.signing_key, what="ledger key", size=32),
        sealing_key=b64decode_strict(ledger.sealing_key, what="ledger key", size=32),
    )
    if key.party_id != ledger.ledger:
        raise VerificationFailed("the published ledger key does not match its party id")
    view = client.credits()
    if view.party != identity.party_id:
        raise VerificationFailed("the coordinator answered with another party's account")
    trusted = TrustedLog(client, home) if home is not None else None
    total = 0
    for t in view.transfers:
        if t.envelope.signer != key:
            raise VerificationFailed(f"transfer {t.envelope.digest} is not signed by the ledger")
        transfer = t.envelope.open(Transfer).statement
        mine = [p.amount for p in transfer.postings if p.account == view.account]
        if len(mine) != 1:
            raise VerificationFailed(f"transfer {t.envelope.digest} does not touch your account")
        total += mine[0]
        if transfer.kind == "escrow" and transfer.cause is not None and mine[0] < 0:
            req = client.get_request(transfer.cause).envelope.open(ComputationRequest).statement
            if req.requester != identity.party_id:
                raise VerificationFailed(f"escrow {transfer.seq} names another's request")
            if req.max_price is not None and -mine[0] > req.max_price:
                raise VerificationFailed(
                    f"escrow {transfer.seq} took {-mine[0]}, above your signed max_price "
                    f"{req.max_price}"
                )
        if trusted is not None:
            trusted.verify_logged(t.envelope, index=t.log_index, salt=t.salt)
    if total != view.balance:
        raise VerificationFailed(
            f"your transfers sum to {total}, but the coordinator shows a balance of {view.balance}"
        )
    return view


def answer_liveness(
    client: Client, identity: Identity, datasets: Sequence[str], *, now: int
) -> RewardsView:
    """Answer this period's liveness challenge for ``datasets`` (base rewards). The challenge
    is checked against the ledger key first: a coordinator cannot make us sign anything else."""
    _check_identity(client, identity)
    challenge = client.liveness_challenge()
    ledger = client.credits_ledger()
    key = PublicIdentity(
        signing_key=b64decode_strict(ledger.signing_key, what="ledger key", size=32),
        sealing_key=b64decode_strict(ledger.sealing_key, what="ledger key", size=32),
    )
    if key.party_id != ledger.ledger or challenge.party != identity.party_id:
        raise VerificationFailed("the ledger key or the challenge is not for us")
    key.verify(
        b64decode_strict(challenge.challenge, what="challenge", size=64),
        liveness_message(identity.party_id, challenge.period),
        what="liveness challenge",
    )
    signed = sign_statement(
        Liveness.build(
            owner=identity.party_id,
            datasets=tuple(datasets),
            period=challenge.period,
            challenge=challenge.challenge,
            created_at=now,
        ),
        identity,
    )
    return client.post_liveness(signed.envelope)


def keyword_overlap(
    client: Client,
    identity: Identity,
    mine: str,
    theirs: str,
    *,
    now: int,
    registry: Registry | None = None,
) -> RequestView:
    """A topic overlap through the seed's call: the server drafts the request, this client
    checks the draft against what it asked and its own library, and only then signs it."""
    _check_identity(client, identity)
    draft = client.keyword_overlap_draft(mine, theirs)
    expected = (registry or default_registry()).get("topic-overlap").ref()
    if (
        draft.requester != identity.party_id
        or draft.computation != expected
        or draft.inputs != (mine, theirs)
        or identity.party_id not in draft.recipients
        or abs(draft.created_at - now) > 300
    ):
        raise VerificationFailed("the coordinator's keyword-overlap draft is not what was asked")
    signed = sign_statement(draft, identity)
    view = client.keyword_overlap_create(mine, theirs, signed.envelope)
    if view.request != signed.digest:
        raise VerificationFailed("the coordinator answered for a different request")
    return view


# --- approve --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApprovedInput:
    request: str
    dataset: str
    mode: Literal["manual", "policy"]
    reason: str
    approval: str | None
    sealed_bytes: int
    enclave: str
    simulated: bool
    warnings: tuple[str, ...]
    status: RequestStatus


@dataclass(frozen=True, slots=True)
class _Mine:
    attestation: Signed[DatasetAttestation]
    decision: Decision
    policy: str | None
    already_approved: bool
    # The enclave pins of the dataset's policy and the room's (each must hold).
    pins: tuple[EnclavePin, ...] = ()
    # The region the dataset's policy or the room pins (composition refuses two).
    region: str | None = None


def _open_request(
    client: Client, request_id: str
) -> tuple[RequestView, Signed[ComputationRequest]]:
    view = client.get_request(request_id)
    req = view.envelope.open(ComputationRequest)
    if req.digest != request_id or view.request != request_id:
        raise VerificationFailed(f"the coordinator served another statement for {request_id}")
    return view, req


def _resolve(registry: Registry, req: Signed[ComputationRequest]) -> Computation:
    ref = req.statement.computation
    if is_protocol(ref.id):
        raise PolicyDenied(
            f"{ref.id} is a protocol run between the parties: approve it by hand "
            "(`sealroom room approve ROOM REQUEST`), never by policy"
        )
    try:
        return registry.resolve(ref)
    except (InvalidInput, NotFound) as exc:
        raise PolicyDenied(
            f"the request runs {ref.id} {ref.version} with code {ref.code_digest}, which this "
            f"client does not have: {exc.detail}"
        ) from None


def _my_inputs(
    client: Client,
    identity: Identity,
    view: RequestView,
    req: Signed[ComputationRequest],
    computation: Computation,
    *,
    now: int,
    home: Path | None = None,
) -> list[_Mine]:
    """The caller's inputs still waiting for it, each with its policy's decision at ``now``.

    The decision is on the dataset's own policy composed with the request's room
    policy, if it names one (strictest wins), as the enclave decides; in a room, it is a
    refusal unless this party's own recorded decision (in ``home``) is a consent.
    """
    # The same decision the enclave makes: with the run's DP cost, so a policy never
    # approves (automatically or not) a run its budget could not cover.
    params = computation.parse_params(req.statement.parameters)
    cost = computation.cost(params)
    room, host = _room_rules(client, req)
    refused = _without_my_consent(room, host, req, identity=identity, home=home)
    mine: list[_Mine] = []
    for item in view.inputs:
        if item.owner != identity.party_id or item.dataset not in req.statement.inputs:
            continue
        if item.decision == "reject" or item.sealed:
            continue
        att = _open_dataset(client, item.dataset)
        if att.statement.owner != identity.party_id:
            continue
        rules: PolicyRules | None = None
        if att.statement.policy is not None:
            pview = client.policy(att.statement.policy)
            policy = pview.envelope.open(Policy)
            if policy.digest != att.statement.policy or policy.statement.owner != identity.party_id:
                raise VerificationFailed(f"the coordinator served another policy for {att.digest}")
            rules = PolicyRules.parse(policy.statement.rules)
        decision, _ = decide_in_room(
            rules,
            room,
            computation=computation,
            request=computation.request_shape(
                params,
                partners=[
                    _open_dataset(client, d).statement.commitment.root
                    for d in req.statement.inputs
                    if d != item.dataset
                ],
            ),
            requester=req.statement.requester,
            now=now,
            cost=cost,
        )
        if refused is not None:
            decision = Decision(
                False, False, (*decision.reasons, refused), (*decision.failed, refused)
            )
        mine.append(
            _Mine(
                attestation=att,
                decision=decision,
                policy=att.statement.policy,
                already_approved=item.decision == "approve",
                pins=tuple(
                    pin
                    for r in (rules, room)
                    if r is not None and (pin := r.enclave_pin) is not None
                ),
                region=next(
                    (r.region for r in (rules, room) if r is not None and r.region is not None),
                    None,
                ),
            )
        )
    return mine


def _room_rules(
    client: Client, req: Signed[ComputationRequest]
) -> tuple[PolicyRules | None, str | None]:
    """The rules of the room policy the request names (checked against its digest) and its
    owner (a room's host), or (None, None)."""
    digest = req.statement.room_policy
    if digest is None:
        return None, None
    room = client.policy(digest).envelope.open(Policy)
    if room.digest != digest:
        raise VerificationFailed(f"the coordinator served another policy for room {digest}")
    return PolicyRules.parse(room.statement.rules), room.statement.owner


def _without_my_consent(
    room: PolicyRules | None,
    host: str | None,
    req: Signed[ComputationRequest],
    *,
    identity: Identity,
    home: Path | None,
) -> str | None:
    """Why this member's client will not approve a room run: its own recorded decision on
    the room is not a consent (a withdrawal, or none), whatever the coordinator says."""
    if room is None or not room.consent_required or home is None or host == identity.party_id:
        return None
    digest = req.statement.room_policy
    assert digest is not None  # a room policy was found for it
    decision = recorded_consent(home, digest)
    if decision == "consent":
        return None
    state = "withdrew its consent to" if decision == "withdraw" else "has not consented to"
    return f"rule room-consent: this party {state} the room whose policy is {digest}"


def _load_checked(
    att: Signed[DatasetAttestation], *, data_path: Path | Source | None, home: Path
) -> pa.Table:
    """The owner's data, re-read and checked against the signed commitment."""
    from sealroom.connectors.sources import from_locator

    source: Source
    if data_path is None:
        entry = DatasetIndex(home).get(att.digest)
        if entry is not None and entry.locator is not None:
            source = from_locator(entry.locator)
        elif entry is not None and entry.path is not None:
            source = _source(entry.path)  # an index written before sources had locators
        else:
            raise NotFound(
                f"no local file recorded for dataset {att.digest} in "
                f"{DatasetIndex(home).path}"
                + (" (it was read from stdin)" if entry is not None else "")
                + "; pass the data file explicitly (--data FILE)"
            )
    else:
        source = _source(data_path)
    table = source.read()
    ref = att.statement.commitment
    got = commit_table(table, chunk_size=ref.chunk_size)
    expected_root = b64decode_strict(ref.root, what="commitment root", size=32)
    if got.root != expected_root or got.length != ref.length or got.rows != ref.rows:
        raise CommitmentMismatch(
            f"{source.name} no longer matches the commitment published for {att.digest} "
            f"({got.rows} rows / {got.length} bytes now, {ref.rows} rows / {ref.length} bytes "
            "published); refusing to seal changed data — publish it again as a new dataset"
        )
    return table


def _approve_one(
    client: Client,
    identity: Identity,
    req: Signed[ComputationRequest],
    mine: _Mine,
    enclave: VerifiedEnclave,
    *,
    mode: Literal["manual", "policy"],
    reason: str,
    table: pa.Table | None,
    home: Path,
    now: int,
    progress: Progress | None,
) -> ApprovedInput:
    """Approve, seal and upload one input (``table``: its checked data, or None to read it
    again from the dataset index)."""
    att = mine.attestation
    ref = att.statement.commitment
    commitment = DatasetCommitment(
        root=b64decode_strict(ref.root, what="commitment root", size=32),
        length=ref.length,
        rows=ref.rows,
        chunk_size=ref.chunk_size,
    )
    # The limit is checked before anything is read, sealed or signed.
    check_sealed_size(commitment, enclave.public)
    path = spool_path(home, req.digest, att.digest)
    spool = load_spool(path, enclave=enclave.digest)  # a killed upload resumes from here
    if spool is None:
        if table is None:
            table = _load_checked(att, data_path=None, home=home)
        spool = seal_to_spool(
            table,
            commitment,
            enclave.public,
            enclave.digest,
            SealContext(
                request_digest=_digest_bytes(req.digest),
                recipient=enclave.public.party_id,
                purpose="input",
            ),
            path,
        )
    del table
    approval_digest: str | None = None
    if not mine.already_approved:
        approval = sign_statement(
            Approval(
                request=req.digest,
                dataset=att.digest,
                approver=identity.party_id,
                decision="approve",
                mode=mode,
                policy=mine.policy if mode == "policy" else None,
                reason=reason[:2000],
                conditions=(),
                created_at=now,
            ),
            identity,
        )
        client.post_approval(req.digest, approval.envelope)
        approval_digest = approval.digest
    view = upload_spool(client, req.digest, att.digest, spool, progress=progress)
    return ApprovedInput(
        request=req.digest,
        dataset=att.digest,
        mode=mode,
        reason=reason,
        approval=approval_digest,
        sealed_bytes=spool.size,
        enclave=enclave.digest,
        simulated=enclave.simulated,
        warnings=enclave.warnings,
        status=view.status,
    )


def approve(
    client: Client,
    identity: Identity,
    request_id: str,
    *,
    home: Path,
    data_path: Path | Source | None = None,
    allow_simulated: bool = False,
    now: int,
    reason: str = "approved by the owner",
    registry: Registry | None = None,
    measurements: bytes | None = None,
    simulation_root: bytes | None = None,
    collateral: CollateralSource | None = None,
    progress: Progress | None = None,
) -> list[ApprovedInput]:
    """Approve the caller's inputs of a request, and seal and upload their data to the enclave.

    The data and the enclave evidence are checked before anything is signed,
    so a refusal leaves no half-made approval behind. The approval is
    attributed to the dataset's policy when that policy approves it
    automatically, else it is a manual approval with ``reason``.
    """
    _check_identity(client, identity)
    view, req = _open_request(client, request_id)
    if view.status != "pending":
        raise PolicyDenied(f"request {request_id} is {view.status}; nothing to approve")
    computation = _resolve(registry or default_registry(), req)
    mine = _my_inputs(client, identity, view, req, computation, now=now, home=home)
    if not mine:
        raise NotFound(f"request {request_id} has no input of yours waiting for a decision")
    if data_path is not None and len(mine) > 1:
        raise InvalidInput("the request uses several of your datasets; approve from the index")
    for item in mine:
        if not item.decision.allowed:
            raise PolicyDenied(
                f"your policy for {item.attestation.digest} does not allow this request "
                f"({item.decision.reason}); reject it instead"
            )
    TrustedLog(client, home).latest()  # never seal data through a coordinator showing a fork
    enclave = choose_enclave(
        client,
        pins=[p for item in mine for p in item.pins],
        trust=SealingTrust(
            allow_simulated=allow_simulated,
            measurements=measurements,
            simulation_root=simulation_root,
            collateral=collateral or EmbeddedCollateral(),
        ),
        home=home,
        now=now,
        required=_sealed_to(view),
        region=next((item.region for item in mine if item.region is not None), None),
    )
    # Check every input before signing anything. Named data (one input) is read once and
    # kept: it may be a stream (stdin) that cannot be read twice.
    checked = [_load_checked(item.attestation, data_path=data_path, home=home) for item in mine[:1]]
    for item in mine[1:]:
        _load_checked(item.attestation, data_path=data_path, home=home)
    done = []
    for i, item in enumerate(mine):
        automatic = item.decision.automatic and item.policy is not None
        done.append(
            _approve_one(
                client,
                identity,
                req,
                item,
                enclave,
                mode="policy" if automatic else "manual",
                reason=item.decision.reason if automatic else reason,
                table=checked.pop() if i == 0 else None,
                home=home,
                now=now,
                progress=progress,
            )
        )
    return done


@dataclass(frozen=True, slots=True)
class AutoApproval:
    request: str
    dataset: str
    action: Literal["approved", "left"]
    reason: str
    result: ApprovedInput | None


def auto_approve(
    client: Client,
    identity: Identity,
    *,
    home: Path,
    allow_simulated: bool = False,
    now: int,
    registry: Registry | None = None,
    measurements: bytes | None = None,
    simulation_root: bytes | None = None,
    collateral: CollateralSource | None = None,
    progress: Progress | None = None,
) -> list[AutoApproval]:
    """Approve exactly the inbox items whose dataset policy approves automatically; leave the rest."""
    _check_identity(client, identity)
    registry = registry or default_registry()
    out: list[AutoApproval] = []
    trust = SealingTrust(
        allow_simulated=allow_simulated,
        measurements=measurements,
        simulation_root=simulation_root,
        collateral=collateral or EmbeddedCollateral(),
    )
    checked_log = False
    for item in client.inbox():
        view, req = _open_request(client, item.request)
        if view.status != "pending":
            continue
        try:
            computation = _resolve(registry, req)
        except PolicyDenied as exc:
            for inp in view.inputs:
                if inp.owner == identity.party_id and inp.decision == "pending":
                    out.append(_left(req.digest, inp.dataset, exc.detail or ""))
            continue
        for mine in _my_inputs(client, identity, view, req, computation, now=now, home=home):
            if not (mine.decision.automatic and mine.policy is not None):
                out.append(_left(req.digest, mine.attestation.digest, mine.decision.reason))
                continue
            if not checked_log:
                TrustedLog(client, home).latest()  # no sealing through a forked coordinator
                checked_log = True
            # Chosen per input: its policy's pins, and the enclave its co-inputs went to.
            enclave = choose_enclave(
                client,
                pins=mine.pins,
                trust=trust,
                home=home,
                now=now,
                required=_sealed_to(client.get_request(req.digest)),
                region=mine.region,
            )
            result = _approve_one(
                client,
                identity,
                req,
                mine,
                enclave,
                mode="policy",
                reason=mine.decision.reason,
                table=None,
                home=home,
                now=now,
                progress=progress,
            )
            out.append(
                AutoApproval(
                    request=req.digest,
                    dataset=mine.attestation.digest,
                    action="approved",
                    reason=mine.decision.reason,
                    result=result,
                )
            )
    return out


def _pinned_root(home: Path, base_url: str) -> bytes | None:
    known = pinned_simulation_root(home, base_url)
    return None if known is None else bytes.fromhex(known)


def _sealed_to(view: RequestView) -> str | None:
    """The enclave evidence the request's inputs are already sealed to (all go to one)."""
    return next((i.enclave for i in view.inputs if i.enclave is not None), None)


def _left(request_id: str, dataset: str, reason: str) -> AutoApproval:
    return AutoApproval(
        request=request_id, dataset=dataset, action="left", reason=reason, result=None
    )


# --- reject, withdraw, status, wait -------------------------------------------------------------


def reject(
    client: Client, identity: Identity, request_id: str, *, reason: str, now: int
) -> RequestView:
    """Reject the request (one signed rejection of one of the caller's inputs ends it)."""
    _check_identity(client, identity)
    if not reason.strip():
        raise InvalidInput("a rejection needs a reason")
    view, req = _open_request(client, request_id)
    pending = [i for i in view.inputs if i.owner == identity.party_id and i.decision == "pending"]
    if not pending:
        raise NotFound(f"request {request_id} has no input of yours waiting for a decision")
    rejection = sign_statement(
        Approval(
            request=req.digest,
            dataset=pending[0].dataset,
            approver=identity.party_id,
            decision="reject",
            mode="manual",
            policy=None,
            reason=reason[:2000],
            conditions=(),
            created_at=now,
        ),
        identity,
    )
    return client.post_approval(req.digest, rejection.envelope)


def withdraw(client: Client, request_id: str, *, reason: str) -> RequestView:
    return client.withdraw_request(request_id, reason)


def status(client: Client, request_id: str) -> RequestView:
    """The request's current view, after checking the served envelope is that request."""
    view, _ = _open_request(client, request_id)
    return view


def wait(
    client: Client,
    request_id: str,
    *,
    until: Collection[str] = TERMINAL,
    timeout: float,
    progress: Callable[[RequestView], None] | None = None,
    interval: float = 0.5,
    max_interval: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> RequestView:
    """Poll until the request reaches a status in ``until`` (or any terminal one)."""
    deadline = monotonic() + timeout
    delay = interval
    last: str | None = None
    while True:
        view = status(client, request_id)
        if progress is not None and view.status != last:
            progress(view)
        last = view.status
        if view.status in until or view.status in TERMINAL:
            return view
        remaining = deadline - monotonic()
        if remaining <= 0:
            raise WaitTimeout(f"request {request_id} is still {view.status} after {timeout:g} s")
        sleep(min(delay, remaining))
        delay = min(delay * 1.5, max_interval)


# --- result ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchedResult:
    request: str
    body: Any
    output: ReleasedOutput
    report: VerificationReport
    result_path: Path
    bundle_path: Path

    @property
    def simulated(self) -> bool:
        return self.report.simulated


#: How long a completed result may wait for its release key (s): the enclave posts it right
#: after proving its charges; far longer means the charges are not in the log.
RELEASE_WAIT = 30.0


def _released(client: Client, served: ResultView, wait: float) -> ResultView:
    """``served`` once its release key is posted (asking again for up to ``wait`` s)."""
    deadline = time.monotonic() + wait
    interval = 0.05
    while served.release_key is None and is_wrapped(served.sealed):
        if time.monotonic() >= deadline:
            raise NotFound(
                "the enclave has not released this result's key: it does so only once the "
                "request's budget charges are proved in the log (try again later)"
            )
        time.sleep(interval)
        interval = min(interval * 2, 1.0)
        served = client.result(served.request)
    return served


def _unwrapped(served: ResultView, identity: Identity) -> bytes:
    """The sealed result inside the wrapping, opened with the released key. (Results stored
    before commit-then-reveal are not wrapped: nobody but the enclave could have wrapped or
    unwrapped them, so serving one unwrapped gains a coordinator nothing.)"""
    if served.release_key is None:
        return served.sealed
    key = open_sealed(
        served.release_key,
        identity,
        SealContext(
            request_digest=_digest_bytes(served.request),
            recipient=identity.party_id,
            purpose=RELEASE_PURPOSE,
        ),
    )
    return unwrap(served.sealed, key, request=served.request, recipient=identity.party_id)


def fetch_result(
    client: Client,
    identity: Identity,
    request_id: str,
    out_dir: Path,
    *,
    home: Path,
    allow_simulated: bool = False,
    measurements: bytes | None = None,
    simulation_root: bytes | None = None,
    release_wait: float = RELEASE_WAIT,
    on_step: Callable[[str], None] | None = None,
) -> FetchedResult:
    """Download, open and verify the caller's result; write result.json and bundle.json.

    The result opens only with the release key the enclave posts after it proved the
    request's budget charges are logged (commit-then-reveal); ``release_wait`` is how long
    to wait for that key after completion. ``on_step`` is told each step as it starts (a
    progress display)."""
    step = on_step or (lambda _: None)
    _check_identity(client, identity)
    step("downloading the sealed result")
    served = client.result(request_id)
    if served.request != request_id or served.recipient != identity.party_id:
        raise VerificationFailed("the coordinator served a result for another request or party")
    served = _released(client, served, release_wait)
    step("opening it with this party's key")
    plain = open_sealed(
        _unwrapped(served, identity),
        identity,
        SealContext(
            request_digest=_digest_bytes(request_id), recipient=identity.party_id, purpose="result"
        ),
    )
    output = ReleasedOutput.from_json(plain)
    if output.request != request_id or output.recipient != identity.party_id:
        raise VerificationFailed("the opened result names another request or recipient")
    step("downloading the proof bundle")
    bundle = client.bundle(request_id)
    receipt = bundle.receipt.open(Receipt)
    if receipt.statement.request != request_id or receipt.digest != served.receipt.digest:
        raise VerificationFailed("the proof bundle's receipt is not this request's receipt")
    step("verifying signatures, TEE evidence and log proofs")
    log = TrustedLog(client, home)
    report = verify_bundle(
        bundle,
        trust=trust_policy(
            allow_simulated=allow_simulated,
            log_key=log.log_key,
            measurements=measurements,
            simulation_root=simulation_root or _pinned_root(home, client.base_url),
        ),
        outputs=[output],
    )
    log.accept(bundle.log.checkpoint)  # consistent with (and witnessed as) this party requires
    try:
        body = json.loads(output.body)
    except ValueError:
        raise VerificationFailed("the verified result body is not JSON") from None
    # The opened result, and the bundle that carries it with the request's private
    # statements: the owner's alone (0600), each written whole.
    step("writing result.json and bundle.json")
    out_dir = Path(out_dir)
    result_path = out_dir / "result.json"
    bundle_path = out_dir / "bundle.json"
    write_private(result_path, output.to_json())
    write_private(bundle_path, dataclasses.replace(bundle, outputs=(output,)).to_json())
    return FetchedResult(
        request=request_id,
        body=body,
        output=output,
        report=report,
        result_path=result_path,
        bundle_path=bundle_path,
    )
