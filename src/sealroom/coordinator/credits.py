"""The credits ledger: double entry in integer minor units, every transfer a logged statement.

The API other modules use is small. Inside a service's write transaction: ``ledger =
ledger_of(state)``, then :meth:`CreditLedger.pay` (a payer pays one or more payees, less
the platform fee: paid model use, a curator's share) or, for anything else, :func:`post`
(one balanced transfer). Both are idempotent by key. In their own transactions:
:meth:`Credits.grant` and :meth:`Credits.transfer` (a party's direct payment). And the
request hooks :meth:`CreditLedger.escrow` / :meth:`CreditLedger.close` that
:meth:`State.transition` calls: escrow when a request is approved, settle to the owners
(minus the platform fee) when it completes with a logged receipt, refund when it is
rejected, fails, is withdrawn or expires. Use ``state.transition``, never the bare
:func:`~sealroom.coordinator.state.transition`, or money does not move with the status.

Why it holds under concurrency and crashes: every write runs in one serialized write
transaction (``BEGIN IMMEDIATE`` on SQLite, the log-head row lock on PostgreSQL:
:mod:`sealroom.storage.engine`) that also appends the signed :class:`Transfer` to the
transparency log. A debit is a conditional ``UPDATE ... WHERE balance >= amount``,
and a CHECK constraint refuses any negative balance but issuance's. So a transfer, its
postings, its balances and its log entry commit together or not at all, and a killed
process leaves either all of them or none.

Transfers are private statements (salted log commitments: who paid whom for which
request is nobody else's business); each party reads its own with their salts
(:meth:`Credits.account`), and :func:`sealroom.wire.credits.recompute_balances`
recomputes every balance from the log entries and their openings.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from sqlalchemy import Connection, Engine, literal, or_, select, update

from sealroom.computations.base import Computation
from sealroom.computations.registry import Registry
from sealroom.coordinator.keys import CoordinatorKeystore
from sealroom.coordinator.payments import PaymentDeclined, check_transfer
from sealroom.coordinator.payments import Transfer as PaymentTransfer
from sealroom.coordinator.state import State, Stored, statement
from sealroom.crypto.files import read_private, write_private
from sealroom.crypto.keys import Identity, PartyId, PublicIdentity, b64decode_strict, b64encode
from sealroom.errors import (
    AuthenticationFailed,
    BackendUnavailable,
    Conflict,
    IdempotencyMismatch,
    InsufficientCredits,
    InvalidInput,
    KeystoreError,
    NotFound,
    PolicyDenied,
    SealroomError,
)
from sealroom.protocols.queries import is_protocol
from sealroom.statements import (
    Accept,
    ComputationRequest,
    DatasetAttestation,
    Envelope,
    Liveness,
    Offer,
    Posting,
    Signed,
    Transfer,
    canonical_json,
    sign_statement,
)
from sealroom.statements.models import TransferKind
from sealroom.storage.engine import read_transaction, write_transaction
from sealroom.storage.schema import (
    credit_accounts,
    credit_escrows,
    credit_offers,
    credit_postings,
    credit_transfers,
    datasets,
    parties,
    request_inputs,
    requests,
    settings,
    statements,
)
from sealroom.transparency.sqlstore import leaves
from sealroom.wire.credits import (
    Balances,
    CreditsView,
    DirectTransferBody,
    LedgerKeyView,
    LivenessChallenge,
    OfferList,
    OfferView,
    PricedInput,
    PriceSchedule,
    Quote,
    QuoteBody,
    RewardItem,
    RewardsView,
    TransferView,
    account_of,
    apply_terms,
    liveness_message,
    price_request,
    recompute_balances,
    settlement_postings,
)

__all__ = [
    "LEDGER_KEY_FILE",
    "CreditLedger",
    "Credits",
    "LedgerPayments",
    "Posted",
    "audit",
    "ledger_identity",
    "ledger_of",
    "operator_credits",
    "post",
]

LEDGER_KEY_FILE = "ledger-key.json"
_KEY_TYPE = "sealroom.coordinator-ledger-key"
_VKEY = "ledger_vkey"

_log = logging.getLogger("sealroom.credits")


# --- the ledger key -------------------------------------------------------------------------


def ledger_identity(keystore: CoordinatorKeystore, engine: Engine) -> Identity:
    """The key every Transfer is signed with: in ``<keys>/ledger-key.json`` (0600), created
    once; the database keeps only its public key, so a keystore from another deployment is
    refused and a lost key is never silently replaced (that would be a second ledger)."""
    path = keystore.directory / LEDGER_KEY_FILE
    with write_transaction(engine) as conn:
        stored = conn.execute(
            select(settings.c.value).where(settings.c.name == _VKEY)
        ).scalar_one_or_none()
        raw = read_private(path, what="coordinator ledger key")
        if raw is None:
            if stored is not None:
                raise KeystoreError(
                    f"this database's ledger key is missing: no {path}. Restore that file; a "
                    "new key would be a different ledger"
                )
            identity = Identity.generate(post_quantum=False)
            signing, sealing = identity.private_bytes()
            doc = {
                "type": _KEY_TYPE,
                "version": 1,
                "signing": b64encode(signing),
                "sealing": b64encode(sealing),
            }
            write_private(path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
        else:
            try:
                doc = json.loads(raw)
                if set(doc) != {"type", "version", "signing", "sealing"}:
                    raise ValueError("fields")
                if doc["type"] != _KEY_TYPE or doc["version"] != 1:
                    raise ValueError("type")
                identity = Identity.from_private_bytes(
                    b64decode_strict(doc["signing"], what="ledger key", size=32),
                    b64decode_strict(doc["sealing"], what="ledger key", size=32),
                )
            except (ValueError, TypeError, SealroomError):
                raise KeystoreError(f"{path} is not a coordinator ledger key") from None
        vkey = identity.public.signing_key
        if stored is None:
            conn.execute(settings.insert().values(name=_VKEY, value=vkey))
        elif not hmac.compare_digest(bytes(stored), vkey):
            raise Conflict(f"the ledger key in {path} is not this database's ledger key")
    return identity


# --- posting one transfer -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Posted:
    """A transfer and whether this call created it (False: the idempotency key's earlier one)."""

    transfer: Signed[Transfer]
    log_index: int
    created: bool


def _body_digest(
    kind: str, cause: str | None, postings: Sequence[tuple[str, int]], memo: str
) -> str:
    body = {
        "kind": kind,
        "cause": cause,
        "postings": [[a, n] for a, n in sorted(postings)],
        "memo": memo,
    }
    return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()


def post(
    state: State,
    ledger: Identity,
    conn: Connection,
    *,
    key: str,
    kind: TransferKind,
    cause: str | None,
    postings: Sequence[tuple[str, int]],
    memo: str,
    now: int,
) -> Posted:
    """Apply one balanced transfer in ``conn``'s (write) transaction and log it.

    The same ``key`` with the same body returns the stored transfer (a retry after a lost
    answer moves nothing twice); with another body it raises :class:`IdempotencyMismatch`.
    Raises :class:`InsufficientCredits` if a debit would overdraw an account (nothing is
    applied: the caller's transaction rolls back).
    """
    body = _body_digest(kind, cause, postings, memo)
    done = conn.execute(
        select(credit_transfers.c.transfer, credit_transfers.c.body_digest).where(
            credit_transfers.c.key == key
        )
    ).first()
    if done is not None:
        if not hmac.compare_digest(str(done.body_digest), body):
            raise IdempotencyMismatch(f"idempotency key {key!r} names another transfer")
        env, index = statement(conn, str(done.transfer), Transfer.TYPE)
        return Posted(env.open(Transfer), index, created=False)
    head = conn.execute(
        select(credit_transfers.c.seq, credit_transfers.c.transfer)
        .order_by(credit_transfers.c.seq.desc())
        .limit(1)
    ).first()
    seq, prev = (0, None) if head is None else (int(head.seq) + 1, str(head.transfer))
    try:
        signed = sign_statement(
            Transfer(
                ledger=ledger.party_id,
                seq=seq,
                prev=prev,
                key=key,
                kind=kind,
                cause=cause,
                postings=tuple(Posting(account=a, amount=n) for a, n in postings),
                memo=memo,
                created_at=now,
            ),
            ledger,
        )
    except ValueError as exc:
        raise InvalidInput(f"not a valid transfer: {exc}") from None
    for account, amount in postings:
        if amount < 0 and account != "issuance":
            debited = conn.execute(
                update(credit_accounts)
                .where(credit_accounts.c.account == account, credit_accounts.c.balance >= -amount)
                .values(balance=credit_accounts.c.balance + amount)
            )
            if debited.rowcount != 1:
                raise InsufficientCredits(f"{account} does not hold {-amount}")
        else:
            moved = conn.execute(
                update(credit_accounts)
                .where(credit_accounts.c.account == account)
                .values(balance=credit_accounts.c.balance + amount)
            )
            if moved.rowcount != 1:
                conn.execute(credit_accounts.insert().values(account=account, balance=amount))
    index, _ = state.store(conn, signed.envelope, now=now)
    conn.execute(
        credit_transfers.insert().values(
            seq=seq,
            key=key,
            transfer=signed.digest,
            kind=kind,
            cause=cause,
            body_digest=body,
            created_at=now,
        )
    )
    conn.execute(
        credit_postings.insert(),
        [{"seq": seq, "account": a, "amount": n} for a, n in postings],
    )
    return Posted(signed, index, created=True)


# --- the ledger and the request hooks -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreditLedger:
    """The ledger key and the price schedule: what escrow, settlement and refunds need."""

    identity: Identity
    pricing: PriceSchedule

    def quote(self, state: State, conn: Connection, req: ComputationRequest, now: int) -> Quote:
        """The price of ``req``: the published schedule over its inputs' attestations, with
        the inputs its accepted offers (``req.terms``) cover priced as agreed.

        Raises :class:`InvalidInput` for terms that do not apply to this request."""
        computation = state.computation(req)
        params = computation.parse_params(req.parameters)
        dp = computation.cost_fn is not None and computation.cost_fn(params).epsilon > Decimal(0)
        inputs: list[PricedInput] = []
        for ds in req.inputs:
            env, _ = statement(conn, ds, DatasetAttestation.TYPE)
            att = DatasetAttestation.parse_payload(env.payload)
            inputs.append(
                PricedInput(
                    dataset=ds, owner=att.owner, rows=att.row_count, length=att.commitment.length
                )
            )
        quote = price_request(
            self.pricing,
            computation=computation.id,
            privacy_class=computation.privacy_class,
            dp=dp,
            inputs=inputs,
            requester=req.requester,
            recipients=req.recipients,
        )
        owners = {i.dataset: i.owner for i in inputs}
        negotiated: dict[str, int] = {}
        for digest in req.terms:
            negotiated.update(_agreed(conn, digest, req, computation.id, owners, now))
        return apply_terms(quote, negotiated)

    def pay(
        self,
        state: State,
        conn: Connection,
        *,
        payer: str,
        payees: Sequence[tuple[str, int]],
        key: str,
        cause: str | None,
        memo: str,
        now: int,
        fee_bps: int | None = None,
    ) -> Posted:
        """Pay each payee its amount from ``payer``'s account, in ``conn``'s transaction; each
        share less ``floor(share * fee_bps / BPS)`` (default: the schedule's fee), the platform
        the rest. For the other marketplace services (paid model use, a curator's share).
        Idempotent by ``key``; :class:`InsufficientCredits` if the payer cannot cover it."""
        fee = self.pricing.fee_bps if fee_bps is None else fee_bps
        total = sum(a for _, a in payees)
        if total <= 0 or any(a < 0 for _, a in payees):
            raise InvalidInput("a payment moves a positive amount to each payee")
        if payer in {p for p, _ in payees}:
            raise InvalidInput("a party cannot pay itself")
        # Settle from the payer's account as if it were an escrow holding exactly the total.
        postings = settlement_postings(account_of(payer), list(payees), fee)
        return post(
            state,
            self.identity,
            conn,
            key=key,
            kind="transfer",
            cause=cause,
            postings=postings,
            memo=memo,
            now=now,
        )

    def escrow(self, state: State, conn: Connection, request: str, now: int) -> str | None:
        """Move the request's price from the requester into its escrow account; return why
        not (the request is then rejected) if the requester's balance does not cover it."""
        held = conn.execute(
            select(credit_escrows.c.status).where(credit_escrows.c.request == request)
        ).first()
        if held is not None:
            # Approved again (a lapsed lease re-queues a running job): already escrowed.
            return None
        env, _ = statement(conn, request, ComputationRequest.TYPE)
        req = ComputationRequest.parse_payload(env.payload)
        if is_protocol(req.computation.id):
            return None  # the parties run it themselves: nothing is sold through the ledger
        try:
            quote = self.quote(state, conn, req, now)
        except (InvalidInput, NotFound) as exc:
            return f"the request's terms do not apply: {exc.detail}"
        if quote.free:
            return None
        if req.max_price is not None and quote.price > req.max_price:
            return (
                f"the price of {quote.price} exceeds the requester's signed max_price of "
                f"{req.max_price}"
            )
        payer = account_of(req.requester)
        try:
            with conn.begin_nested():
                post(
                    state,
                    self.identity,
                    conn,
                    key=f"escrow:{request}",
                    kind="escrow",
                    cause=request,
                    postings=[(payer, -quote.price), (f"escrow:{request}", quote.price)],
                    memo=f"escrow for {quote.computation} ({quote.mode})",
                    now=now,
                )
        except InsufficientCredits:
            return (
                f"the requester's balance does not cover the price of {quote.price} "
                "(see `sealroom quote`)"
            )
        conn.execute(
            credit_escrows.insert().values(
                request=request,
                payer=req.requester,
                price=quote.price,
                fee_bps=quote.fee_bps,
                shares=json.dumps([[i.dataset, i.owner, i.amount] for i in quote.inputs]),
                status="held",
            )
        )
        return None

    def close(self, state: State, conn: Connection, request: str, to: str, now: int) -> None:
        """Settle (``completed``) or refund (any other end) the request's escrow, if it has one."""
        row = conn.execute(
            select(credit_escrows).where(
                credit_escrows.c.request == request, credit_escrows.c.status == "held"
            )
        ).first()
        if row is None:
            return
        escrow = f"escrow:{request}"
        if to == "completed":
            receipt = conn.execute(
                select(requests.c.receipt).where(requests.c.request == request)
            ).scalar_one()
            shares = [(str(owner), int(amount)) for _, owner, amount in json.loads(row.shares)]
            post(
                state,
                self.identity,
                conn,
                key=f"settle:{request}",
                kind="settle",
                cause=receipt,
                postings=settlement_postings(escrow, shares, int(row.fee_bps)),
                memo=f"settled on receipt {receipt}",
                now=now,
            )
            status = "settled"
        else:
            post(
                state,
                self.identity,
                conn,
                key=f"refund:{request}",
                kind="refund",
                cause=request,
                postings=[(escrow, -int(row.price)), (account_of(str(row.payer)), int(row.price))],
                memo=f"refund: the request was {to}",
                now=now,
            )
            status = "refunded"
        conn.execute(
            update(credit_escrows).where(credit_escrows.c.request == request).values(status=status)
        )


# --- the service ----------------------------------------------------------------------------


def _opened_view(conn: Connection, digest: str) -> TransferView:
    row = conn.execute(
        select(statements.c.envelope, statements.c.log_index, statements.c.log_salt).where(
            statements.c.digest == digest
        )
    ).one()
    return TransferView(
        envelope=Envelope.from_json(bytes(row.envelope)),
        log_index=int(row.log_index),
        salt=None if row.log_salt is None else bytes(row.log_salt),
    )


def _opened_offer(conn: Connection, digest: str) -> OfferView:
    view = _opened_view(conn, digest)
    return OfferView(envelope=view.envelope, log_index=view.log_index, salt=view.salt)


class Credits:
    """Accounts, grants, direct payments and quotes."""

    __slots__ = ("_ledger", "_state")

    def __init__(self, state: State, ledger: CreditLedger) -> None:
        self._state = state
        self._ledger = ledger

    @property
    def ledger(self) -> CreditLedger:
        return self._ledger

    def key(self) -> LedgerKeyView:
        pub = self._ledger.identity.public
        return LedgerKeyView(
            ledger=self._ledger.identity.party_id,
            signing_key=b64encode(pub.signing_key),
            sealing_key=b64encode(pub.sealing_key),
            pricing=self._ledger.pricing,
        )

    def balance(self, account: str) -> int:
        with read_transaction(self._state.engine) as conn:
            return _balance(conn, account)

    def account(self, *, caller: PartyId) -> CreditsView:
        """The caller's balance and every transfer that touched it, with their salts."""
        account = account_of(caller)
        with read_transaction(self._state.engine) as conn:
            digests = conn.execute(
                select(credit_transfers.c.transfer)
                .join(credit_postings, credit_postings.c.seq == credit_transfers.c.seq)
                .where(credit_postings.c.account == account)
                .order_by(credit_transfers.c.seq)
            ).all()
            return CreditsView(
                party=caller,
                account=account,
                balance=_balance(conn, account),
                transfers=tuple(_opened_view(conn, str(d)) for (d,) in digests),
            )

    def offer(self, env: Envelope, *, caller: PartyId, now: int) -> Stored[OfferView]:
        """Store and log an owner's Offer for one of its active datasets."""
        offer = env.open(Offer).statement
        if offer.owner != caller:
            raise PolicyDenied("an offer is signed by the dataset's owner")
        if offer.expires_at <= now:
            raise InvalidInput("the offer has already expired")
        with write_transaction(self._state.engine) as conn:
            owner = conn.execute(
                select(datasets.c.owner).where(
                    datasets.c.dataset == offer.dataset, datasets.c.status == "active"
                )
            ).scalar_one_or_none()
            if owner != caller:
                raise NotFound(f"no active dataset {offer.dataset} of yours")
            _computation(self._state, offer.computation)
            _, created = self._state.store(conn, env, now=now)
            if created:
                conn.execute(
                    credit_offers.insert().values(
                        offer=env.digest,
                        owner=offer.owner,
                        dataset=offer.dataset,
                        requester=offer.requester,
                        expires_at=offer.expires_at,
                    )
                )
            return Stored(_opened_offer(conn, env.digest), created=created)

    def accept(self, env: Envelope, *, caller: PartyId, now: int) -> Stored[OfferView]:
        """Store and log a requester's acceptance of an unexpired offer addressed to it."""
        accept = env.open(Accept).statement
        if accept.requester != caller:
            raise PolicyDenied("an acceptance is signed by the requester")
        with write_transaction(self._state.engine) as conn:
            row = conn.execute(
                select(credit_offers).where(credit_offers.c.offer == accept.offer)
            ).first()
            if row is None or row.requester not in (None, caller):
                raise NotFound(f"no offer {accept.offer} for you")
            if int(row.expires_at) <= now:
                raise Conflict(f"offer {accept.offer} expired")
            _, created = self._state.store(conn, env, now=now)
            return Stored(_opened_offer(conn, env.digest), created=created)

    def offers(self, *, caller: PartyId, now: int) -> OfferList:
        """Unexpired offers the caller made or may accept."""
        with read_transaction(self._state.engine) as conn:
            rows = conn.execute(
                select(credit_offers.c.offer)
                .where(
                    credit_offers.c.expires_at > now,
                    or_(
                        credit_offers.c.owner == caller,
                        credit_offers.c.requester == caller,
                        credit_offers.c.requester.is_(None),
                    ),
                )
                .order_by(credit_offers.c.expires_at)
                .limit(500)
            ).all()
            return OfferList(items=tuple(_opened_offer(conn, str(r)) for (r,) in rows))

    def challenge(self, *, caller: PartyId, now: int) -> LivenessChallenge:
        """The caller's liveness challenge for the current reward period."""
        period = now // self._ledger.pricing.reward_period
        return LivenessChallenge(
            party=caller,
            period=period,
            period_ends_at=(period + 1) * self._ledger.pricing.reward_period,
            challenge=b64encode(self._ledger.identity.sign(liveness_message(caller, period))),
        )

    def liveness(self, env: Envelope, *, caller: PartyId, now: int) -> RewardsView:
        """Pay the base reward, from the rewards pool, for each listed dataset the owner's
        signed answer to this period's challenge names: once per dataset per period, and only
        for a dataset used in a settled paid computation within :data:`EARNING_WINDOW_PERIODS`
        periods (publishing is free, so an unused dataset earns nothing, and keeping a sybil
        dataset earning costs a paid run, with its fee, every window)."""
        live = env.open(Liveness).statement
        if live.owner != caller:
            raise PolicyDenied("a liveness answer is signed by the datasets' owner")
        expected = self.challenge(caller=caller, now=now)
        # A challenge-response: a stale or wrong challenge fails authentication.
        if live.period != expected.period:
            raise AuthenticationFailed(
                f"the answer is for period {live.period}; the current period is {expected.period}"
            )
        if not hmac.compare_digest(live.challenge.encode(), expected.challenge.encode()):
            raise AuthenticationFailed("the answer does not carry this period's challenge")
        amount = self._ledger.pricing.base_reward
        since = now - EARNING_WINDOW_PERIODS * self._ledger.pricing.reward_period
        items: list[RewardItem] = []
        with write_transaction(self._state.engine) as conn:
            self._state.store(conn, env, now=now)
            for ds in live.datasets:
                owner = conn.execute(
                    select(datasets.c.owner).where(
                        datasets.c.dataset == ds, datasets.c.status == "active"
                    )
                ).scalar_one_or_none()
                reason = "paid"
                if owner != caller:
                    reason = "not a listed dataset of yours"
                elif amount == 0:
                    reason = "this coordinator pays no base reward"
                elif not _used_in_paid_run(conn, ds, since):
                    reason = (
                        "not used in a settled paid computation in the last "
                        f"{EARNING_WINDOW_PERIODS} periods"
                    )
                if reason != "paid":
                    items.append(RewardItem(dataset=ds, amount=0, paid=False, reason=reason))
                    continue
                try:
                    with conn.begin_nested():
                        posted = post(
                            self._state,
                            self._ledger.identity,
                            conn,
                            key=f"reward:{live.period}:{ds}",
                            kind="reward",
                            cause=env.digest,
                            postings=[("rewards", -amount), (account_of(caller), amount)],
                            memo=f"base reward, period {live.period}",
                            now=now,
                        )
                except IdempotencyMismatch:
                    posted = None
                except InsufficientCredits:
                    items.append(
                        RewardItem(
                            dataset=ds, amount=0, paid=False, reason="the rewards pool is empty"
                        )
                    )
                    continue
                if posted is None or not posted.created:
                    items.append(
                        RewardItem(
                            dataset=ds, amount=0, paid=False, reason="already paid this period"
                        )
                    )
                else:
                    items.append(RewardItem(dataset=ds, amount=amount, paid=True, reason="paid"))
        return RewardsView(period=live.period, items=tuple(items))

    def fund_rewards(self, amount: int, *, key: str, memo: str, now: int) -> Posted:
        """Issue ``amount`` new credits into the rewards pool (the operator's act)."""
        return self._issue(None, amount, key=key, memo=memo, now=now)

    def grant(self, party: str, amount: int, *, key: str, memo: str, now: int) -> Posted:
        """Issue ``amount`` new credits to ``party`` (the operator's act; logged like any other)."""
        return self._issue(party, amount, key=key, memo=memo, now=now)

    def _issue(self, party: str | None, amount: int, *, key: str, memo: str, now: int) -> Posted:
        """A grant out of issuance to a registered ``party`` (None: the rewards pool)."""
        if amount <= 0:
            raise InvalidInput("a grant is a positive amount")
        with write_transaction(self._state.engine) as conn:
            if party is not None:
                _require_party(conn, party)
            return post(
                self._state,
                self._ledger.identity,
                conn,
                key=key,
                kind="grant",
                cause=None,
                postings=[
                    ("issuance", -amount),
                    ("rewards" if party is None else account_of(party), amount),
                ],
                memo=memo,
                now=now,
            )

    def transfer(
        self, body: DirectTransferBody, *, caller: PartyId, now: int
    ) -> Stored[TransferView]:
        """A direct payment the caller signed: from its account to ``body.to``."""
        if body.to == caller:
            raise InvalidInput("a party cannot pay itself")
        with write_transaction(self._state.engine) as conn:
            _require_party(conn, body.to)
            posted = post(
                self._state,
                self._ledger.identity,
                conn,
                # Scoped by payer: one party's keys never collide with another's.
                key=f"pay:{caller}:{body.key}",
                kind="transfer",
                cause=None,
                postings=[(account_of(caller), -body.amount), (account_of(body.to), body.amount)],
                memo=body.memo,
                now=now,
            )
            return Stored(_opened_view(conn, posted.transfer.digest), created=posted.created)

    def quote(self, body: QuoteBody, *, caller: PartyId, now: int) -> Quote:
        """The price a request with these parts would be escrowed at."""
        comp = self._state.registry.get(body.computation)  # unknown: 404
        with read_transaction(self._state.engine) as conn:
            req = ComputationRequest.build(
                requester=caller,
                computation=comp.ref(),
                parameters=body.parameters,
                inputs=body.inputs,
                recipients=body.recipients,
                nonce=b64encode(bytes(16)),
                created_at=now,
                expires_at=now + 1,
                terms=body.terms,
            )
            return self._ledger.quote(self._state, conn, req, now)


def _agreed(
    conn: Connection,
    digest: str,
    req: ComputationRequest,
    computation: str,
    owners: dict[str, str],
    now: int,
) -> dict[str, int]:
    """The input an accepted offer prices, and its agreed amount (price + usage bonus)."""
    env, _ = statement(conn, digest, Accept.TYPE)
    accept = Accept.parse_payload(env.payload)
    if accept.requester != req.requester:
        raise InvalidInput(f"acceptance {digest} is not the requester's")
    offer_env, _ = statement(conn, accept.offer, Offer.TYPE)
    offer = Offer.parse_payload(offer_env.payload)
    if owners.get(offer.dataset) != offer.owner:
        raise InvalidInput(f"offer {accept.offer} is not for an input of this request")
    if offer.requester not in (None, req.requester):
        raise InvalidInput(f"offer {accept.offer} is addressed to another requester")
    if offer.computation != computation:
        raise InvalidInput(f"offer {accept.offer} is for computation {offer.computation}")
    if offer.expires_at <= now:
        raise InvalidInput(f"offer {accept.offer} expired")
    return {offer.dataset: offer.price + offer.usage_bonus}


class LedgerPayments:
    """The marketplace's :class:`~.payments.Payments` seam over this ledger: each charge or
    refund is one logged, signed transfer in its own write transaction (the market calls it
    outside its own), idempotent by key; a payer who cannot cover it is declined, nothing
    moved. Zero amounts move nothing and log nothing."""

    __slots__ = ("_clock", "_ledger", "_state")

    def __init__(
        self, state: State, ledger: CreditLedger, *, clock: Callable[[], int] | None = None
    ) -> None:
        self._state = state
        self._ledger = ledger
        self._clock = clock or (lambda: int(time.time()))

    def _move(
        self,
        kind: Literal["charge", "refund"],
        payer: str,
        payee: str,
        amount: int,
        key: str,
        memo: str,
    ) -> PaymentTransfer:
        check_transfer(payer, payee, amount, key)
        done = PaymentTransfer(key, kind, payer, payee, amount, memo)
        if amount == 0:
            return done
        # The market's keys are free-form: the ledger's is their digest, in its own namespace.
        ledger_key = "market:" + hashlib.sha256(f"{kind}:{key}".encode()).hexdigest()
        try:
            with write_transaction(self._state.engine) as conn:
                post(
                    self._state,
                    self._ledger.identity,
                    conn,
                    key=ledger_key,
                    kind="refund" if kind == "refund" else "transfer",
                    cause=None,
                    postings=[(account_of(payer), -amount), (account_of(payee), amount)],
                    memo=memo[:500],
                    now=self._clock(),
                )
        except InsufficientCredits as exc:
            raise PaymentDeclined(exc.detail) from None
        return done

    def charge(
        self, *, payer: str, payee: str, amount: int, idempotency_key: str, memo: str
    ) -> PaymentTransfer:
        return self._move("charge", payer, payee, amount, idempotency_key, memo)

    def refund(
        self, *, payer: str, payee: str, amount: int, idempotency_key: str, memo: str
    ) -> PaymentTransfer:
        return self._move("refund", payer, payee, amount, idempotency_key, memo)


def ledger_of(state: State) -> CreditLedger:
    """The credits ledger ``state`` runs with (every coordinator has one)."""
    if not isinstance(state.credits, CreditLedger):
        raise BackendUnavailable("this coordinator runs without a credits ledger")
    return state.credits


def operator_credits(engine: Engine, keystore: CoordinatorKeystore, log_origin: str) -> Credits:
    """The credits service over a (migrated) coordinator database, for the operator's grants
    and audits outside the server (``sealroom credits grant|audit``)."""
    state = State(
        engine=engine, registry=Registry([]), signer=keystore.log_signer(engine, log_origin)
    )
    ledger = CreditLedger(
        identity=ledger_identity(keystore, engine), pricing=PriceSchedule.disabled()
    )
    return Credits(state, ledger)


def audit(engine: Engine, ledger: PublicIdentity) -> tuple[Balances, dict[str, int]]:
    """(balances recomputed from the log's entries and the transfers' openings, the
    database's balances), read in one snapshot; they must be equal."""
    with read_transaction(engine) as conn:
        rows = conn.execute(
            select(statements.c.envelope, statements.c.log_salt, leaves.c.entry)
            .join(credit_transfers, credit_transfers.c.transfer == statements.c.digest)
            .join(leaves, leaves.c.idx == statements.c.log_index)
            .order_by(credit_transfers.c.seq)
        ).all()
        stored = {
            str(a): int(b)
            for a, b in conn.execute(select(credit_accounts.c.account, credit_accounts.c.balance))
        }
    opened = [
        (bytes(r.entry), Envelope.from_json(bytes(r.envelope)), _salt(r.log_salt)) for r in rows
    ]
    return recompute_balances(opened, ledger), stored


def _salt(value: bytes | None) -> bytes | None:
    return None if value is None else bytes(value)


def _computation(state: State, computation: str) -> Computation:
    try:
        return state.registry.get(computation)
    except NotFound as exc:
        raise InvalidInput(exc.detail) from None


# A dataset earns base rewards while it was an input of a settled paid request within this
# many reward periods (docs/marketplace.md, "Rewards").
EARNING_WINDOW_PERIODS = 30


def _used_in_paid_run(conn: Connection, dataset: str, since: int) -> bool:
    hit = conn.execute(
        select(credit_escrows.c.request)
        .join(request_inputs, request_inputs.c.request == credit_escrows.c.request)
        .join(
            credit_transfers,
            credit_transfers.c.key == literal("settle:") + credit_escrows.c.request,
        )
        .where(
            request_inputs.c.dataset == dataset,
            credit_escrows.c.status == "settled",
            credit_transfers.c.created_at >= since,
        )
        .limit(1)
    ).first()
    return hit is not None


def _balance(conn: Connection, account: str) -> int:
    value = conn.execute(
        select(credit_accounts.c.balance).where(credit_accounts.c.account == account)
    ).scalar_one_or_none()
    return 0 if value is None else int(value)


def _require_party(conn: Connection, party: str) -> None:
    kind = conn.execute(select(parties.c.kind).where(parties.c.party == party)).scalar_one_or_none()
    if kind != "party":
        raise NotFound(f"no party {party}")
