"""Credits on the wire: the published pricing function, quotes, ledger views, and the audit.

Everything here is pure and shared by the coordinator and the SDK, so a requester
computes the same quote the coordinator will escrow (``sealroom quote``) and any
party holding transfer openings recomputes balances without trusting the
coordinator's database (:func:`recompute_balances`). docs/marketplace.md states
the formulas; its worked example is :data:`WORKED_EXAMPLE`, checked by a test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field

from sealroom.crypto.keys import PublicIdentity
from sealroom.errors import InvalidInput, StatementFormatError, VerificationFailed
from sealroom.statements import Envelope, Transfer
from sealroom.statements.fields import BoundedObject, NonNegInt
from sealroom.statements.models import MAX_AMOUNT, AccountStr
from sealroom.transparency.entries import check_opening
from sealroom.wire.base import WireModel
from sealroom.wire.fields import B64Field, DigestStr, EnvelopeField, PartyIdStr

__all__ = [
    "BPS",
    "MIB",
    "WORKED_EXAMPLE",
    "AcceptBody",
    "Balances",
    "CreditsView",
    "DirectTransferBody",
    "InputPrice",
    "LedgerKeyView",
    "LivenessBody",
    "LivenessChallenge",
    "OfferBody",
    "OfferList",
    "OfferView",
    "PriceSchedule",
    "PricedInput",
    "Quote",
    "QuoteBody",
    "RewardItem",
    "RewardsView",
    "TransferView",
    "account_of",
    "apply_terms",
    "liveness_message",
    "price_request",
    "recompute_balances",
    "settlement_postings",
]

BPS = 10_000
"""Basis points: multipliers and fees are integers over this."""
MIB = 1 << 20

Amount = Annotated[int, Field(ge=0, le=MAX_AMOUNT)]
Bps = Annotated[int, Field(ge=0, le=100 * BPS)]


def account_of(party: str) -> str:
    """A party's ledger account."""
    return f"party:{party}"


class PriceSchedule(WireModel):
    """The deployment's published pricing function (all amounts in integer minor units).

    ``enabled`` False: every computation is free and nothing is escrowed.
    """

    enabled: bool
    base_per_input: Amount
    per_1k_rows: Amount
    per_mib: Amount
    class_bps: Annotated[dict[str, Bps], Field(max_length=8)]
    exact_bps: Bps
    dp_bps: Bps
    fee_bps: Annotated[int, Field(ge=0, le=BPS)]
    # Mutual benefit: free when the requester brings an input and every owner is a recipient.
    free_tier: bool
    # Base reward: paid from the rewards pool per listed dataset per period in which its
    # owner's client answered a liveness challenge (0: no base rewards).
    base_reward: Amount = 0
    reward_period: Annotated[int, Field(ge=60, le=366 * 86_400)] = 86_400

    @classmethod
    def disabled(cls) -> PriceSchedule:
        return cls(
            enabled=False,
            base_per_input=0,
            per_1k_rows=0,
            per_mib=0,
            class_bps={},
            exact_bps=BPS,
            dp_bps=BPS,
            fee_bps=0,
            free_tier=True,
        )


@dataclass(frozen=True, slots=True)
class PricedInput:
    """What the price of one input depends on: public facts of its attestation."""

    dataset: str
    owner: str
    rows: int
    length: int


class InputPrice(WireModel):
    dataset: DigestStr
    owner: PartyIdStr
    rows: NonNegInt
    bytes: NonNegInt
    amount: Amount


class Quote(WireModel):
    """The price of one request under a schedule, per input, before anything is signed."""

    computation: str
    privacy_class: str
    mode: Literal["exact", "dp"]
    free: bool
    why_free: str | None
    inputs: tuple[InputPrice, ...]
    price: Amount
    fee_bps: Annotated[int, Field(ge=0, le=BPS)]
    fee: Amount
    # The inputs priced by negotiated terms (an accepted Offer) rather than the schedule.
    negotiated: tuple[DigestStr, ...] = ()


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def price_request(
    schedule: PriceSchedule,
    *,
    computation: str,
    privacy_class: str,
    dp: bool,
    inputs: Sequence[PricedInput],
    requester: str,
    recipients: Sequence[str],
) -> Quote:
    """The published pricing function (docs/marketplace.md, "Pricing").

    For each input: ``ceil((base + ceil(rows/1000)*per_1k_rows + ceil(bytes/MiB)*per_mib)
    * class_bps * mode_bps / BPS**2)``; the price is their sum; the platform fee is
    ``price - sum(input - floor(input * fee_bps / BPS))`` (owners get the floor of their
    share after fee, the platform the rest, so nothing is lost to rounding).
    """
    mode: Literal["exact", "dp"] = "dp" if dp else "exact"
    owners = {i.owner for i in inputs}
    why_free: str | None = None
    if not schedule.enabled:
        why_free = "this coordinator does not charge for computations"
    elif schedule.free_tier and requester in owners and owners <= set(recipients) | {requester}:
        why_free = "free tier: the requester brings an input and every owner gets the result"
    if why_free is None and privacy_class not in schedule.class_bps:
        raise InvalidInput(f"the price schedule has no rate for privacy class {privacy_class!r}")
    priced: list[InputPrice] = []
    for i in inputs:
        amount = 0
        if why_free is None:
            units = (
                schedule.base_per_input
                + _ceil_div(i.rows, 1000) * schedule.per_1k_rows
                + _ceil_div(i.length, MIB) * schedule.per_mib
            )
            mode_bps = schedule.dp_bps if dp else schedule.exact_bps
            amount = _ceil_div(units * schedule.class_bps[privacy_class] * mode_bps, BPS * BPS)
        if amount > MAX_AMOUNT:
            raise InvalidInput(f"the price of input {i.dataset} exceeds the largest amount")
        priced.append(
            InputPrice(dataset=i.dataset, owner=i.owner, rows=i.rows, bytes=i.length, amount=amount)
        )
    price = sum(p.amount for p in priced)
    if price > MAX_AMOUNT:
        raise InvalidInput("the price exceeds the largest amount")
    owners_get = sum(p.amount - p.amount * schedule.fee_bps // BPS for p in priced)
    return Quote(
        computation=computation,
        privacy_class=privacy_class,
        mode=mode,
        free=why_free is not None,
        why_free=why_free,
        inputs=tuple(priced),
        price=price,
        fee_bps=schedule.fee_bps,
        fee=price - owners_get,
    )


def apply_terms(quote: Quote, negotiated: Mapping[str, int]) -> Quote:
    """``quote`` with the inputs in ``negotiated`` (dataset -> offer price + usage bonus)
    priced as agreed instead of by the schedule; the fee rule is the same."""
    if not negotiated:
        return quote
    inputs = tuple(
        i.model_copy(update={"amount": negotiated[i.dataset]}) if i.dataset in negotiated else i
        for i in quote.inputs
    )
    price = sum(i.amount for i in inputs)
    if price > MAX_AMOUNT:
        raise InvalidInput("the price exceeds the largest amount")
    owners_get = sum(i.amount - i.amount * quote.fee_bps // BPS for i in inputs)
    return quote.model_copy(
        update={
            "inputs": inputs,
            "price": price,
            "fee": price - owners_get,
            "free": price == 0,
            "why_free": None if price else (quote.why_free or "the negotiated terms are free"),
            "negotiated": tuple(sorted(negotiated)),
        }
    )


def settlement_postings(
    escrow: str, shares: Sequence[tuple[str, int]], fee_bps: int
) -> list[tuple[str, int]]:
    """The postings that settle ``escrow`` (holding the sum of ``shares``, one per input as
    (owner, amount)): each owner its share minus the fee rounded down, the platform the rest."""
    total = sum(a for _, a in shares)
    paid: dict[str, int] = {}
    for owner, amount in shares:
        net = amount - amount * fee_bps // BPS
        if net:
            paid[account_of(owner)] = paid.get(account_of(owner), 0) + net
    fee = total - sum(paid.values())
    postings = [(escrow, -total), *paid.items()]
    if fee:
        postings.append(("platform", fee))
    return postings


# --- views ----------------------------------------------------------------------------------


class LedgerKeyView(WireModel):
    """The key every Transfer is signed with, and the schedule in force."""

    ledger: PartyIdStr
    signing_key: str
    sealing_key: str
    pricing: PriceSchedule


class TransferView(WireModel):
    """A transfer statement, where it is in the log, and the salt that opens its commitment."""

    envelope: EnvelopeField
    log_index: NonNegInt
    salt: B64Field | None


class CreditsView(WireModel):
    """One party's account: its balance and every transfer that touched it, oldest first."""

    party: PartyIdStr
    account: AccountStr
    balance: int
    transfers: tuple[TransferView, ...]


class DirectTransferBody(WireModel):
    """A direct payment from the signing caller to another party."""

    to: PartyIdStr
    amount: Annotated[int, Field(ge=1, le=MAX_AMOUNT)]
    key: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    memo: Annotated[str, Field(max_length=500)] = ""


class QuoteBody(WireModel):
    """What a request would name: the quote is computed before it is signed."""

    computation: Annotated[str, Field(min_length=1, max_length=64)]
    parameters: BoundedObject
    inputs: Annotated[tuple[DigestStr, ...], Field(min_length=1, max_length=64)]
    recipients: Annotated[tuple[PartyIdStr, ...], Field(min_length=1, max_length=64)]
    terms: Annotated[tuple[DigestStr, ...], Field(max_length=64)] = ()


class OfferBody(WireModel):
    offer: EnvelopeField


class AcceptBody(WireModel):
    accept: EnvelopeField


class OfferView(WireModel):
    """An Offer (or Accept) statement, where it is in the log, and its commitment's salt."""

    envelope: EnvelopeField
    log_index: NonNegInt
    salt: B64Field | None


class OfferList(WireModel):
    """Unexpired offers the caller made or that are addressed to it (or to anyone)."""

    items: tuple[OfferView, ...]


class LivenessChallenge(WireModel):
    """This period's challenge for the caller: the ledger key's signature over
    ``sealroom-liveness-v1:<party>:<period>`` (unforgeable, nothing stored)."""

    party: PartyIdStr
    period: NonNegInt
    period_ends_at: NonNegInt
    challenge: str


class LivenessBody(WireModel):
    liveness: EnvelopeField


class RewardItem(WireModel):
    dataset: DigestStr
    amount: Amount
    paid: bool
    reason: str


class RewardsView(WireModel):
    """What one liveness answer earned: the base reward per dataset, or why not."""

    period: NonNegInt
    items: tuple[RewardItem, ...]


def liveness_message(party: str, period: int) -> bytes:
    """What the ledger key signs to make a party's challenge for a period."""
    return f"sealroom-liveness-v1:{party}:{period}".encode()


# --- the audit ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Balances:
    """Balances recomputed from the transfers alone, and how many transfers were read."""

    accounts: Mapping[str, int]
    transfers: int
    head: str | None


def recompute_balances(
    opened: Sequence[tuple[bytes, Envelope, bytes | None]], ledger: PublicIdentity
) -> Balances:
    """Every balance from the log: ``opened`` is each transfer's log entry with its envelope
    and salt (None: logged in clear), in chain order.

    Raises :class:`VerificationFailed` unless every entry opens to its envelope, every
    transfer is signed by ``ledger``, and they form one unbroken chain from seq 0 (a
    missing, repeated or reordered transfer is caught), and no account but issuance
    ever went negative.
    """
    balances: dict[str, int] = {}
    prev: str | None = None
    for n, (entry, env, salt) in enumerate(opened):
        if salt is None:
            if entry != env.to_json():
                raise VerificationFailed(f"log entry {n} is not transfer {env.digest}")
        else:
            try:
                check_opening(entry, env.to_json(), salt)
            except StatementFormatError:
                raise VerificationFailed(f"log entry {n} does not open to {env.digest}") from None
        if env.signer != ledger:
            raise VerificationFailed(f"transfer {env.digest} is not signed by the ledger key")
        t = env.open(Transfer).statement
        if t.seq != n or t.prev != prev:
            raise VerificationFailed(
                f"transfer {env.digest} is at {t.seq} after {t.prev}; expected {n} after {prev}"
            )
        for p in t.postings:
            balances[p.account] = balances.get(p.account, 0) + p.amount
            if balances[p.account] < 0 and p.account != "issuance":
                raise VerificationFailed(f"transfer {t.seq} overdraws {p.account}")
        prev = env.digest
    return Balances(accounts=balances, transfers=len(opened), head=prev)


# The worked example of docs/marketplace.md: the test parses the doc's numbers and checks them
# against price_request over these values.
WORKED_EXAMPLE = PriceSchedule(
    enabled=True,
    base_per_input=500,
    per_1k_rows=20,
    per_mib=100,
    class_bps={"aggregate": 10_000, "model": 20_000, "content": 40_000},
    exact_bps=15_000,
    dp_bps=10_000,
    fee_bps=500,
    free_tier=True,
    base_reward=3,
    reward_period=86_400,
)
