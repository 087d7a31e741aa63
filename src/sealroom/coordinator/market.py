"""The marketplace outside credits: the model registry and its paid uses, evaluations and
reviews, curators' portfolios, disputes and their resolutions, and reputation.

Every write is a signed statement checked against what the coordinator already holds
(the receipts of completed requests, attestations, stored uses) and stored and logged in
the same transaction. Money moves only through the :class:`~.payments.Payments` seam, with
idempotency keys derived from the request or statement that caused it, and always before
the database records that it moved, so a crash between the two is repaired by retrying
(the key makes the retry a no-op for the ledger).

Who may write what (the sybil rule): an evaluation needs the evaluator's own *paid* use of
the model (a completed predict request whose price was charged); a review needs the
reviewer's own paid use of the same model; a dispute needs the claimant's own payment to
the respondent for the request it names; a resolution needs the arbiter key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import Any, TypeVar

from sqlalchemy import Column, ColumnElement, Connection, Row, and_, func, select, update

from sealroom.coordinator.market_formulas import (
    PaidUse,
    Rating,
    Reputation,
    reputation,
    split_reward,
)
from sealroom.coordinator.payments import PaymentDeclined, Payments
from sealroom.coordinator.state import State, Stored, content_roots, statement
from sealroom.crypto.keys import Identity, PartyId, b64encode
from sealroom.errors import Conflict, InvalidInput, NotFound, PolicyDenied, SignatureInvalid
from sealroom.protocols.receipts import verify_run
from sealroom.statements import (
    ComputationRequest,
    Envelope,
    InputRef,
    Receipt,
    TrainedModel,
)
from sealroom.statements.market_models import (
    Dispute,
    Evaluation,
    Model,
    Portfolio,
    Resolution,
    Review,
)
from sealroom.storage.engine import read_transaction, write_transaction
from sealroom.storage.schema import (
    datasets,
    disputes,
    evaluations,
    market_models,
    model_inputs,
    model_uses,
    parties,
    portfolio_items,
    portfolio_requests,
    portfolios,
    request_recipients,
    requests,
    reviews,
    statements,
)
from sealroom.wire.market import (
    ArbiterView,
    DisputePage,
    DisputeView,
    EvaluationPage,
    EvaluationView,
    ModelPage,
    ModelView,
    PledgeView,
    PortfolioItemView,
    PortfolioPage,
    PortfolioView,
    ReputationView,
    ReviewView,
    RoleReputation,
    ShareView,
    UseView,
)

__all__ = ["MAX_LISTED", "PREDICT", "SETTLE_BATCH", "TRAIN_MODEL", "Market"]

PREDICT = "predict"
TRAIN_MODEL = "train-model"
MAX_LISTED = 200
SETTLE_BATCH = 10
"""Owed settlements retried after each completion."""


# The views' batched loaders: one query per table for a whole page of ids (`IN (...)`), so a
# list of n items costs a few queries, not a few per item.


def _rows(
    conn: Connection, key: Column[str], keys: Sequence[str], what: str
) -> dict[str, Row[Any]]:
    """The rows of ``key``'s table whose ``key`` is one of ``keys``, by key; NotFound
    (``no <what> <key>``) for the first of ``keys`` that has none."""
    found = {str(r._mapping[key]): r for r in conn.execute(select(key.table).where(key.in_(keys)))}
    missing = next((k for k in keys if k not in found), None)
    if missing is not None:
        raise NotFound(f"no {what} {missing}")
    return found


def _envelopes(conn: Connection, digests: Sequence[str]) -> dict[str, tuple[Envelope, int]]:
    """The stored envelopes of ``digests`` with their log indexes, by digest."""
    rows = conn.execute(
        select(statements.c.digest, statements.c.envelope, statements.c.log_index).where(
            statements.c.digest.in_(digests)
        )
    ).all()
    found = {str(r[0]): (Envelope.from_json(bytes(r[1])), int(r[2])) for r in rows}
    for digest in digests:
        if digest not in found:  # pragma: no cover - every index row names a stored statement
            raise NotFound(f"no statement {digest}")
    return found


def _counts(
    conn: Connection, key: Column[str], keys: Sequence[str], *where: ColumnElement[bool]
) -> dict[str, int]:
    """How many rows of ``key``'s table (matching ``where``) each of ``keys`` has (absent: 0)."""
    rows = conn.execute(select(key, func.count()).where(key.in_(keys), *where).group_by(key)).all()
    return {str(k): int(n) for k, n in rows}


_Signal = TypeVar("_Signal", Rating, PaidUse)


def _by_item(signals: Iterable[_Signal]) -> dict[str, list[_Signal]]:
    out: dict[str, list[_Signal]] = {}
    for signal in signals:
        out.setdefault(signal.item, []).append(signal)
    return out


def _score(value: str) -> Fraction:
    return Fraction(value)


class Market:
    """The marketplace's resource service (see the module docstring)."""

    __slots__ = ("_arbiter", "_payments", "_state")

    def __init__(self, state: State, *, payments: Payments, arbiter: Identity) -> None:
        self._state = state
        self._payments = payments
        self._arbiter = arbiter

    # --- the arbiter ------------------------------------------------------------------------

    def arbiter(self) -> ArbiterView:
        public = self._arbiter.public
        return ArbiterView(
            party=public.party_id,
            signing_key=b64encode(public.signing_key),
            sealing_key=b64encode(public.sealing_key),
        )

    # --- models -----------------------------------------------------------------------------

    def publish_model(
        self, env: Envelope, evidence: Sequence[Envelope], *, caller: PartyId, now: int
    ) -> Stored[ModelView]:
        """Store a trainer's Model after checking its provenance against the receipts: the
        training request completed with that receipt, the trainer received its result, the
        receipt binds the named inputs and code; and its artifact is the trainer's dataset."""
        model = env.open(Model).statement
        if model.trainer != caller:
            raise SignatureInvalid("a model must be published by its trainer")
        with write_transaction(self._state.engine) as conn:
            if model.provenance.kind == "enclave-job":
                if evidence:
                    raise InvalidInput("an enclave-job model takes no evidence envelopes")
                self._check_enclave_provenance(conn, model)
            else:
                self._check_protocol_provenance(conn, model, evidence, now=now)
            owner = conn.execute(
                select(datasets.c.owner, datasets.c.status).where(
                    datasets.c.dataset == model.artifact.dataset
                )
            ).first()
            if owner is None or owner.owner != model.trainer:
                raise InvalidInput("the model's artifact must be a dataset its trainer published")
            if owner.status != "active":
                raise InvalidInput("the model's artifact dataset is withdrawn")
            roots = content_roots(conn, [model.artifact.dataset])
            if roots[model.artifact.dataset] != model.artifact.commitment_root:
                raise InvalidInput("the artifact's commitment root is not its dataset's")
            taken = conn.execute(
                select(market_models.c.model).where(
                    market_models.c.artifact == model.artifact.dataset
                )
            ).scalar_one_or_none()
            if taken is not None and taken != env.digest:
                raise Conflict(f"that artifact already backs model {taken}")
            _, created = self._state.store(conn, env, now=now)
            if created:
                conn.execute(
                    market_models.insert().values(
                        model=env.digest,
                        trainer=model.trainer,
                        name=model.name,
                        artifact=model.artifact.dataset,
                        artifact_root=model.artifact.commitment_root,
                        price=model.price,
                        created_at=model.created_at,
                        registered_at=now,
                    )
                )
                conn.execute(
                    model_inputs.insert(),
                    [
                        {"model": env.digest, "dataset": d}
                        for d in sorted({i.dataset for i in model.provenance.inputs})
                    ],
                )
            view = self._model_view(conn, env.digest)
        return Stored(view, created=created)

    def _check_enclave_provenance(self, conn: Connection, model: Model) -> None:
        p = model.provenance
        assert p.request is not None
        row = conn.execute(select(requests).where(requests.c.request == p.request)).first()
        if row is None:
            raise NotFound(f"no request {p.request} (the model's training run)")
        if row.computation_id != TRAIN_MODEL:
            raise InvalidInput(f"request {p.request} is {row.computation_id}, not {TRAIN_MODEL}")
        if row.status != "completed" or row.receipt is None:
            raise InvalidInput(f"the training request {p.request} has not completed")
        if p.receipts != (row.receipt,):
            raise InvalidInput("the provenance must name the training request's one receipt")
        recipient = conn.execute(
            select(request_recipients.c.party).where(
                request_recipients.c.request == p.request,
                request_recipients.c.party == model.trainer,
            )
        ).first()
        if recipient is None:
            raise InvalidInput("the trainer did not receive that training result")
        receipt = statement(conn, row.receipt, Receipt.TYPE)[0].open(Receipt).statement
        if receipt.inputs != p.inputs:
            raise InvalidInput("the provenance inputs are not those the receipt binds")
        if receipt.computation != p.computation:
            raise InvalidInput("the provenance computation is not the one the receipt names")

    def _check_protocol_provenance(
        self, conn: Connection, model: Model, evidence: Sequence[Envelope], *, now: int
    ) -> None:
        p = model.provenance
        if not evidence or evidence[0].digest != p.trained_model:
            raise InvalidInput("send the TrainedModel the provenance names first in 'evidence'")
        trained = evidence[0].open(TrainedModel).statement
        if trained.trainer != model.trainer:
            raise InvalidInput("the TrainedModel names another trainer")
        run = verify_run(evidence[1:])
        if {r.digest for r in run} != set(p.receipts):
            raise InvalidInput("the evidence receipts are not those the provenance names")
        first = run[0].statement
        if first.session != trained.session or first.code_digest != trained.code_digest:
            raise InvalidInput("the receipts describe another run than the TrainedModel")
        if (p.computation.id, p.computation.code_digest) != (trained.method, trained.code_digest):
            raise InvalidInput("the provenance computation is not the run's method and code")
        used = sorted({d for part in trained.participants for d in part.inputs})
        roots = content_roots(conn, used)
        want = tuple(InputRef(dataset=d, commitment_root=roots[d]) for d in used)
        if tuple(sorted(p.inputs, key=lambda i: i.dataset)) != want:
            raise InvalidInput("the provenance inputs are not the run's datasets and roots")
        for e in evidence:
            self._state.store(conn, e, now=now)

    def get_model(self, model: str) -> ModelView:
        with read_transaction(self._state.engine) as conn:
            return self._model_view(conn, model)

    def list_models(self, *, trainer: str | None = None) -> ModelPage:
        query = select(market_models.c.model).order_by(market_models.c.registered_at.desc())
        if trainer is not None:
            query = query.where(market_models.c.trainer == trainer)
        with read_transaction(self._state.engine) as conn:
            ids = conn.execute(query.limit(MAX_LISTED)).scalars().all()
            return ModelPage(items=tuple(self._model_views(conn, ids)))

    def _model_view(self, conn: Connection, model: str) -> ModelView:
        return self._model_views(conn, [model])[0]

    def _model_views(self, conn: Connection, models: Sequence[str]) -> list[ModelView]:
        if not models:
            return []
        _rows(conn, market_models.c.model, models, "model")
        envelopes = _envelopes(conn, models)
        paid = _counts(conn, model_uses.c.model, models, model_uses.c.status == "paid")
        n_evals = _counts(conn, evaluations.c.model, models)
        ratings = _by_item(self._ratings_of_models(conn, models))
        uses = _by_item(self._uses_of_models(conn, models))
        views = []
        for model in models:
            env, index = envelopes[model]
            m = Model.parse_payload(env.payload)
            rated = reputation(m.trainer, ratings.get(model, []), uses.get(model, []))
            views.append(
                ModelView(
                    model=model,
                    trainer=m.trainer,
                    name=m.name,
                    description=m.description,
                    family=m.family,
                    target=m.target,
                    features=m.features,
                    metrics=dict(m.metrics),
                    provenance=m.provenance.model_dump(mode="json"),
                    artifact=m.artifact.dataset,
                    price=m.price,
                    created_at=m.created_at,
                    paid_uses=paid.get(model, 0),
                    evaluations=n_evals.get(model, 0),
                    rating=rated.score_text,
                    log_index=index,
                    envelope=env,
                )
            )
        return views

    # --- paid use ---------------------------------------------------------------------------

    def on_completed(self, request: str, now: int) -> None:
        """A completion hook (:class:`~.jobs.Jobs`): settle a predict run of a registered model
        (the requester pays the trainer its price) or a portfolio request's pledged reward,
        then retry a few earlier settlements that are still owed."""
        self.settle(request, now=now)
        self.settle_pending(now=now)

    def settle_pending(self, *, now: int, limit: int = SETTLE_BATCH) -> int:
        """Settle again up to ``limit`` completed requests whose payment is still owed: uses
        recorded unpaid (the payer's funds were short) and pledges not yet paid (a crash or a
        declined share). Their idempotency keys make a transfer that did happen a no-op.
        Returns how many are now paid."""
        with read_transaction(self._state.engine) as conn:
            owed = list(
                conn.execute(
                    select(model_uses.c.request)
                    .where(model_uses.c.status == "unpaid")
                    .order_by(model_uses.c.settled_at)
                    .limit(limit)
                ).scalars()
            )
            owed += list(
                conn.execute(
                    select(portfolio_requests.c.request)
                    .join(requests, requests.c.request == portfolio_requests.c.request)
                    .where(
                        portfolio_requests.c.status != "paid",
                        requests.c.status == "completed",
                    )
                    .limit(limit)
                ).scalars()
            )
        paid = 0
        for request in owed[:limit]:
            view = self.settle(request, now=now)
            paid += int(view is not None and view.status == "paid")
        return paid

    def settle(self, request: str, *, now: int) -> UseView | PledgeView | None:
        """Settle what a completed request owes, once (idempotent); None when it owes nothing."""
        with read_transaction(self._state.engine) as conn:
            row = conn.execute(select(requests).where(requests.c.request == request)).first()
            if row is None or row.status != "completed" or row.receipt is None:
                return None
            pledge = conn.execute(
                select(portfolio_requests.c.request).where(portfolio_requests.c.request == request)
            ).first()
            computation = row.computation_id
        if pledge is not None:
            return self._settle_pledge(request, now=now)
        if computation == PREDICT:
            return self._settle_use(request, now=now)
        return None

    def _settle_use(self, request: str, *, now: int) -> UseView | None:
        with read_transaction(self._state.engine) as conn:
            done = conn.execute(select(model_uses).where(model_uses.c.request == request)).first()
            if done is not None and done.status == "paid":
                return _use_view(done)
            row = conn.execute(select(requests).where(requests.c.request == request)).one()
            req = statement(conn, request, ComputationRequest.TYPE)[0].open(ComputationRequest)
            found = conn.execute(
                select(market_models).where(market_models.c.artifact == req.statement.inputs[0])
            ).first()
            if found is None:
                return None
            receipt = statement(conn, row.receipt, Receipt.TYPE)[0].open(Receipt).statement
        if receipt.inputs[0].commitment_root != found.artifact_root:
            return None  # pragma: no cover - the attestation fixes the root the enclave checked
        payer, payee, amount = row.requester, found.trainer, int(found.price)
        status, reason = "paid", None
        if payer != payee:
            try:
                self._payments.charge(
                    payer=payer,
                    payee=payee,
                    amount=amount,
                    idempotency_key=f"model-use:{request}",
                    memo=f"predict with model {found.model}",
                )
            except PaymentDeclined as exc:
                status, reason = "unpaid", exc.detail or exc.public_message
        else:
            amount = 0  # a trainer using its own model pays nobody
        values = {
            "model": found.model,
            "payer": payer,
            "payee": payee,
            "amount": amount,
            "receipt": row.receipt,
            "status": status,
            "reason": reason,
            "settled_at": now,
        }
        with write_transaction(self._state.engine) as conn:
            seen = conn.execute(select(model_uses).where(model_uses.c.request == request)).first()
            if seen is None:
                conn.execute(model_uses.insert().values(request=request, **values))
            elif seen.status != "paid":
                conn.execute(
                    update(model_uses).where(model_uses.c.request == request).values(**values)
                )
            return _use_view(
                conn.execute(select(model_uses).where(model_uses.c.request == request)).one()
            )

    def uses(self, model: str, *, caller: PartyId) -> tuple[UseView, ...]:
        """The caller's uses of ``model`` (as payer), or every use when it is the trainer."""
        with read_transaction(self._state.engine) as conn:
            trainer = conn.execute(
                select(market_models.c.trainer).where(market_models.c.model == model)
            ).scalar_one_or_none()
            if trainer is None:
                raise NotFound(f"no model {model}")
            query = select(model_uses).where(model_uses.c.model == model)
            if trainer != caller:
                query = query.where(model_uses.c.payer == caller)
            rows = conn.execute(query.order_by(model_uses.c.settled_at).limit(MAX_LISTED)).all()
        return tuple(_use_view(r) for r in rows)

    # --- evaluations and reviews --------------------------------------------------------------

    def evaluate(self, env: Envelope, *, caller: PartyId, now: int) -> Stored[EvaluationView]:
        """Store an evaluation by a party with its own paid use of the model (one per use)."""
        ev = env.open(Evaluation).statement
        if ev.evaluator != caller:
            raise SignatureInvalid("an evaluation must be published by its evaluator")
        with write_transaction(self._state.engine) as conn:
            trainer = conn.execute(
                select(market_models.c.trainer).where(market_models.c.model == ev.model)
            ).scalar_one_or_none()
            if trainer is None:
                raise NotFound(f"no model {ev.model}")
            if trainer == caller:
                raise InvalidInput("a trainer cannot evaluate its own model")
            _paid_use(conn, ev.use, model=ev.model, payer=caller)
            spent = conn.execute(
                select(evaluations.c.evaluation).where(evaluations.c.use == ev.use)
            ).scalar_one_or_none()
            if spent is not None and spent != env.digest:
                raise Conflict(f"that paid use already carries evaluation {spent}")
            _, created = self._state.store(conn, env, now=now)
            if created:
                conn.execute(
                    evaluations.insert().values(
                        evaluation=env.digest,
                        model=ev.model,
                        evaluator=caller,
                        use=ev.use,
                        score=ev.score,
                        created_at=ev.created_at,
                    )
                )
            view = self._evaluation_view(conn, env.digest)
        return Stored(view, created=created)

    def evaluations(self, model: str) -> EvaluationPage:
        with read_transaction(self._state.engine) as conn:
            ids = (
                conn.execute(
                    select(evaluations.c.evaluation)
                    .where(evaluations.c.model == model)
                    .order_by(evaluations.c.created_at, evaluations.c.evaluation)
                    .limit(MAX_LISTED)
                )
                .scalars()
                .all()
            )
            return EvaluationPage(items=tuple(self._evaluation_views(conn, ids)))

    def review(self, env: Envelope, *, caller: PartyId, now: int) -> Stored[ReviewView]:
        """Store a rating of another party's evaluation by a party with its own paid use of
        the same model (one review per reviewer and evaluation)."""
        rv = env.open(Review).statement
        if rv.reviewer != caller:
            raise SignatureInvalid("a review must be published by its reviewer")
        with write_transaction(self._state.engine) as conn:
            ev = conn.execute(
                select(evaluations).where(evaluations.c.evaluation == rv.evaluation)
            ).first()
            if ev is None:
                raise NotFound(f"no evaluation {rv.evaluation}")
            if ev.evaluator == caller:
                raise InvalidInput("an evaluator cannot review its own evaluation")
            _paid_use(conn, rv.use, model=ev.model, payer=caller)
            again = conn.execute(
                select(reviews.c.review).where(
                    reviews.c.evaluation == rv.evaluation, reviews.c.reviewer == caller
                )
            ).scalar_one_or_none()
            if again is not None and again != env.digest:
                raise Conflict(f"this party already reviewed that evaluation ({again})")
            index, created = self._state.store(conn, env, now=now)
            if created:
                conn.execute(
                    reviews.insert().values(
                        review=env.digest,
                        evaluation=rv.evaluation,
                        reviewer=caller,
                        use=rv.use,
                        rating=rv.rating,
                        created_at=rv.created_at,
                    )
                )
        view = ReviewView(
            review=env.digest,
            evaluation=rv.evaluation,
            reviewer=caller,
            rating=rv.rating,
            log_index=index,
            envelope=env,
        )
        return Stored(view, created=created)

    def _evaluation_view(self, conn: Connection, evaluation: str) -> EvaluationView:
        return self._evaluation_views(conn, [evaluation])[0]

    def _evaluation_views(self, conn: Connection, ids: Sequence[str]) -> list[EvaluationView]:
        if not ids:
            return []
        rows = _rows(conn, evaluations.c.evaluation, ids, "evaluation")
        envelopes = _envelopes(conn, ids)
        signals = self._review_signals(conn, evaluations.c.evaluation.in_(ids))
        ratings, uses = _by_item(signals[0]), _by_item(signals[1])
        n_reviews = _counts(conn, reviews.c.evaluation, ids)
        views = []
        for evaluation in ids:
            row = rows[evaluation]
            env, index = envelopes[evaluation]
            rated = reputation(row.evaluator, ratings.get(evaluation, []), uses.get(evaluation, []))
            views.append(
                EvaluationView(
                    evaluation=evaluation,
                    model=row.model,
                    evaluator=row.evaluator,
                    use=row.use,
                    score=row.score,
                    reviews=n_reviews.get(evaluation, 0),
                    rating=rated.score_text,
                    log_index=index,
                    envelope=env,
                )
            )
        return views

    # --- portfolios -------------------------------------------------------------------------

    def publish_portfolio(
        self, env: Envelope, *, caller: PartyId, now: int
    ) -> Stored[PortfolioView]:
        """Store a curator's portfolio of active, published datasets."""
        pf = env.open(Portfolio).statement
        if pf.curator != caller:
            raise SignatureInvalid("a portfolio must be published by its curator")
        with write_transaction(self._state.engine) as conn:
            wanted = [i.dataset for i in pf.items]
            active = set(
                conn.execute(
                    select(datasets.c.dataset).where(
                        datasets.c.dataset.in_(wanted), datasets.c.status == "active"
                    )
                ).scalars()
            )
            missing = [d for d in wanted if d not in active]
            if missing:
                raise NotFound(f"no active dataset {missing[0]}")
            _, created = self._state.store(conn, env, now=now)
            if created:
                conn.execute(
                    portfolios.insert().values(
                        portfolio=env.digest,
                        curator=caller,
                        name=pf.name,
                        fee=pf.fee,
                        created_at=pf.created_at,
                    )
                )
                conn.execute(
                    portfolio_items.insert(),
                    [
                        {
                            "portfolio": env.digest,
                            "dataset": i.dataset,
                            "position": n,
                            "weight": i.weight,
                        }
                        for n, i in enumerate(pf.items)
                    ],
                )
            view = self._portfolio_view(conn, env.digest)
        return Stored(view, created=created)

    def get_portfolio(self, portfolio: str) -> PortfolioView:
        with read_transaction(self._state.engine) as conn:
            return self._portfolio_view(conn, portfolio)

    def list_portfolios(self, *, curator: str | None = None) -> PortfolioPage:
        query = select(portfolios.c.portfolio).order_by(portfolios.c.created_at.desc())
        if curator is not None:
            query = query.where(portfolios.c.curator == curator)
        with read_transaction(self._state.engine) as conn:
            ids = conn.execute(query.limit(MAX_LISTED)).scalars().all()
            return PortfolioPage(items=tuple(self._portfolio_views(conn, ids)))

    def _portfolio_view(self, conn: Connection, portfolio: str) -> PortfolioView:
        return self._portfolio_views(conn, [portfolio])[0]

    def _portfolio_views(self, conn: Connection, ids: Sequence[str]) -> list[PortfolioView]:
        if not ids:
            return []
        _rows(conn, portfolios.c.portfolio, ids, "portfolio")
        envelopes = _envelopes(conn, ids)
        items = _items_of(conn, ids)
        views = []
        for portfolio in ids:
            env, index = envelopes[portfolio]
            pf = Portfolio.parse_payload(env.payload)
            views.append(
                PortfolioView(
                    portfolio=portfolio,
                    curator=pf.curator,
                    name=pf.name,
                    description=pf.description,
                    fee=pf.fee,
                    items=tuple(
                        PortfolioItemView(dataset=d, owner=o, weight=w)
                        for d, o, w in items.get(portfolio, [])
                    ),
                    log_index=index,
                    envelope=env,
                )
            )
        return views

    def pledge(
        self, portfolio: str, request: str, amount: int, *, caller: PartyId, now: int
    ) -> PledgeView:
        """Attach a reward to the caller's request over exactly the portfolio's datasets; it
        is split by the weights (after the curator's fee) when the request completes. Each
        owner still approves the request under its own policy."""
        with write_transaction(self._state.engine) as conn:
            pf = conn.execute(select(portfolios).where(portfolios.c.portfolio == portfolio)).first()
            if pf is None:
                raise NotFound(f"no portfolio {portfolio}")
            row = conn.execute(select(requests).where(requests.c.request == request)).first()
            if row is None or row.requester != caller:
                raise NotFound(f"no request {request}")
            if row.status not in ("pending", "approved", "running", "completed"):
                raise Conflict(f"request {request} is {row.status}: nothing to reward")
            req = statement(conn, request, ComputationRequest.TYPE)[0].open(ComputationRequest)
            items = _items(conn, portfolio)
            if set(req.statement.inputs) != {d for d, _, _ in items}:
                raise InvalidInput("the request's inputs are not exactly the portfolio's datasets")
            seen = conn.execute(
                select(portfolio_requests).where(portfolio_requests.c.request == request)
            ).first()
            if seen is not None:
                if (seen.portfolio, seen.amount) != (portfolio, amount):
                    raise Conflict("that request already carries another pledge")
            else:
                conn.execute(
                    portfolio_requests.insert().values(
                        request=request,
                        portfolio=portfolio,
                        amount=amount,
                        status="pledged",
                        reason=None,
                        settled_at=None,
                    )
                )
            completed = row.status == "completed"
        if completed:
            self._settle_pledge(request, now=now)
        with read_transaction(self._state.engine) as conn:
            return _pledge_view(conn, request)

    def _settle_pledge(self, request: str, *, now: int) -> PledgeView:
        with read_transaction(self._state.engine) as conn:
            view = _pledge_view(conn, request)
            requester = conn.execute(
                select(requests.c.requester).where(requests.c.request == request)
            ).scalar_one()
        if view.status == "paid":
            return view
        status, reason = "paid", None
        for n, share in enumerate(view.shares):
            if share.amount == 0 or share.payee == requester:
                continue
            try:
                self._payments.charge(
                    payer=requester,
                    payee=share.payee,
                    amount=share.amount,
                    idempotency_key=f"portfolio:{request}:{n}",
                    memo=f"reward for request {request} over portfolio {view.portfolio}",
                )
            except PaymentDeclined as exc:
                # Shares already paid stay paid (their keys make a retry skip them).
                status, reason = "unpaid", exc.detail or exc.public_message
                break
        with write_transaction(self._state.engine) as conn:
            conn.execute(
                update(portfolio_requests)
                .where(portfolio_requests.c.request == request)
                .values(status=status, reason=reason, settled_at=now)
            )
            return _pledge_view(conn, request)

    def get_pledge(self, request: str, *, caller: PartyId) -> PledgeView:
        with read_transaction(self._state.engine) as conn:
            view = _pledge_view(conn, request)
            requester = conn.execute(
                select(requests.c.requester).where(requests.c.request == request)
            ).scalar_one()
        if caller != requester and caller not in {s.payee for s in view.shares}:
            raise NotFound(f"no pledge on request {request}")
        return view

    # --- disputes ---------------------------------------------------------------------------

    def file_dispute(self, env: Envelope, *, caller: PartyId, now: int) -> Stored[DisputeView]:
        """Store a claimant's dispute over what it paid the respondent for a completed
        request; the request's receipt must be among the evidence it names."""
        d = env.open(Dispute).statement
        if d.claimant != caller:
            raise SignatureInvalid("a dispute must be filed by its claimant")
        with write_transaction(self._state.engine) as conn:
            row = conn.execute(select(requests).where(requests.c.request == d.request)).first()
            if row is None or row.requester != caller:
                raise NotFound(f"no request {d.request}")
            if row.receipt is None or row.receipt not in d.receipts:
                raise InvalidInput("a dispute names the request's receipt as evidence")
            paid = _paid_to(conn, d.request, payer=caller, payee=d.respondent)
            if paid == 0:
                raise InvalidInput("the claimant paid the respondent nothing for that request")
            # Open and upheld disputes over the same payment share one ceiling: what was paid.
            disputed = conn.execute(
                select(func.coalesce(func.sum(disputes.c.amount), 0)).where(
                    disputes.c.request == d.request,
                    disputes.c.claimant == caller,
                    disputes.c.respondent == d.respondent,
                    disputes.c.status != "dismissed",
                    disputes.c.dispute != env.digest,
                )
            ).scalar_one()
            if d.amount + int(disputed) > paid:
                raise InvalidInput(
                    f"the claimant paid the respondent {paid} for that request and already "
                    f"disputes {disputed} of it: less than disputed"
                )
            _, created = self._state.store(conn, env, now=now)
            if created:
                conn.execute(
                    disputes.insert().values(
                        dispute=env.digest,
                        claimant=caller,
                        respondent=d.respondent,
                        request=d.request,
                        amount=d.amount,
                        status="open",
                        resolution=None,
                        refund=None,
                        created_at=d.created_at,
                    )
                )
            view = _dispute_view(conn, env.digest)
        return Stored(view, created=created)

    def resolve(self, env: Envelope, *, dispute: str, now: int) -> DisputeView:
        """Apply the arbiter's signed resolution: refund through the seam first (idempotent
        on the dispute), then record it; a dispute is resolved once."""
        res = env.open(Resolution).statement
        if env.signer != self._arbiter.public:
            raise PolicyDenied(
                "only this coordinator's arbiter key resolves disputes", rule="arbiter-only"
            )
        if res.dispute != dispute:
            raise InvalidInput("the resolution is about another dispute")
        with read_transaction(self._state.engine) as conn:
            row = conn.execute(select(disputes).where(disputes.c.dispute == res.dispute)).first()
            if row is None:
                raise NotFound(f"no dispute {res.dispute}")
            if row.status != "open":
                if row.resolution == env.digest:
                    return _dispute_view(conn, res.dispute)
                raise Conflict(f"dispute {res.dispute} is already {row.status}")
        if res.refund > row.amount:
            raise InvalidInput(f"the refund exceeds the {row.amount} disputed")
        if res.outcome == "upheld" and res.refund:
            self._payments.refund(
                payer=row.respondent,
                payee=row.claimant,
                amount=res.refund,
                idempotency_key=f"dispute:{res.dispute}",
                memo=f"refund on dispute {res.dispute}",
            )
        with write_transaction(self._state.engine) as conn:
            self._state.store(conn, env, now=now)
            done = conn.execute(
                update(disputes)
                .where(disputes.c.dispute == res.dispute, disputes.c.status == "open")
                .values(status=res.outcome, resolution=env.digest, refund=res.refund)
            )
            if done.rowcount != 1:
                raise Conflict(f"dispute {res.dispute} was resolved meanwhile")
            return _dispute_view(conn, res.dispute)

    def disputes(self, *, caller: PartyId) -> DisputePage:
        """The disputes the caller filed or answers (the arbiter sees all)."""
        query = select(disputes.c.dispute).order_by(disputes.c.created_at.desc())
        if caller != self._arbiter.public.party_id:
            query = query.where((disputes.c.claimant == caller) | (disputes.c.respondent == caller))
        with read_transaction(self._state.engine) as conn:
            ids = conn.execute(query.limit(MAX_LISTED)).scalars().all()
            return DisputePage(items=tuple(_dispute_views(conn, ids)))

    def get_dispute(self, dispute: str, *, caller: PartyId) -> DisputeView:
        with read_transaction(self._state.engine) as conn:
            view = _dispute_view(conn, dispute)
        if caller not in (view.claimant, view.respondent, self._arbiter.public.party_id):
            raise NotFound(f"no dispute {dispute}")
        return view

    # --- reputation -------------------------------------------------------------------------

    def reputation(self, party: str) -> ReputationView:
        """The party's reputation in each role (docs/marketplace-models.md)."""
        with read_transaction(self._state.engine) as conn:
            known = conn.execute(select(parties.c.party).where(parties.c.party == party)).first()
            if known is None:
                raise NotFound(f"no party {party}")
            upheld = int(
                conn.execute(
                    select(func.count()).where(
                        disputes.c.respondent == party, disputes.c.status == "upheld"
                    )
                ).scalar_one()
            )
            filed = int(
                conn.execute(select(func.count()).where(disputes.c.claimant == party)).scalar_one()
            )
            won = int(
                conn.execute(
                    select(func.count()).where(
                        disputes.c.claimant == party, disputes.c.status == "upheld"
                    )
                ).scalar_one()
            )
            trained = list(
                conn.execute(
                    select(market_models.c.model).where(market_models.c.trainer == party)
                ).scalars()
            )
            owned = select(datasets.c.dataset).where(datasets.c.owner == party)
            from_owned = list(
                conn.execute(
                    select(model_inputs.c.model).where(model_inputs.c.dataset.in_(owned)).distinct()
                ).scalars()
            )
            curated = select(portfolio_items.c.dataset).where(
                portfolio_items.c.portfolio.in_(
                    select(portfolios.c.portfolio).where(portfolios.c.curator == party)
                )
            )
            from_curated = list(
                conn.execute(
                    select(model_inputs.c.model)
                    .where(model_inputs.c.dataset.in_(curated))
                    .distinct()
                ).scalars()
            )
            roles: list[tuple[str, Reputation]] = []
            for role, models in (
                ("trainer", trained),
                ("owner", from_owned),
                ("curator", from_curated),
            ):
                roles.append(
                    (
                        role,
                        reputation(
                            party,
                            self._ratings_of_models(conn, models),
                            self._uses_of_models(conn, models),
                            upheld_against=upheld,
                        ),
                    )
                )
            ratings, uses = self._review_signals(conn, evaluations.c.evaluator == party)
            roles.append(("evaluator", reputation(party, ratings, uses, upheld_against=upheld)))
        return ReputationView(
            party=party,
            roles=tuple(
                RoleReputation(
                    role=role,  # type: ignore[arg-type]
                    score=r.score_text,
                    weight=r.weight,
                    raters=r.raters,
                    ignored=r.ignored,
                    upheld_against=r.upheld_against,
                )
                for role, r in roles
            ),
            disputes_filed=filed,
            disputes_upheld_for=won,
        )

    def _ratings_of_models(self, conn: Connection, models: Sequence[str]) -> list[Rating]:
        if not models:
            return []
        rows = conn.execute(
            select(
                evaluations.c.evaluator,
                evaluations.c.model,
                evaluations.c.score,
                evaluations.c.created_at,
            ).where(evaluations.c.model.in_(models))
        ).all()
        return [Rating(rater=r[0], item=r[1], value=_score(r[2]), at=int(r[3])) for r in rows]

    def _uses_of_models(self, conn: Connection, models: Sequence[str]) -> list[PaidUse]:
        if not models:
            return []
        rows = conn.execute(
            select(model_uses.c.payer, model_uses.c.model, model_uses.c.amount).where(
                model_uses.c.model.in_(models), model_uses.c.status == "paid"
            )
        ).all()
        return [PaidUse(payer=r[0], item=r[1], amount=int(r[2])) for r in rows]

    def _review_signals(
        self, conn: Connection, evaluated: ColumnElement[bool]
    ) -> tuple[list[Rating], list[PaidUse]]:
        """Reviews of the evaluations ``evaluated`` selects as ratings, and each reviewer's
        paid use of the evaluated model as its weight on that evaluation (one query)."""
        review = (reviews.c.review, reviews.c.evaluation, reviews.c.reviewer, reviews.c.rating)
        rows = conn.execute(
            select(*review, reviews.c.created_at, func.coalesce(func.sum(model_uses.c.amount), 0))
            .select_from(
                reviews.join(
                    evaluations, evaluations.c.evaluation == reviews.c.evaluation
                ).outerjoin(
                    model_uses,
                    and_(
                        model_uses.c.payer == reviews.c.reviewer,
                        model_uses.c.model == evaluations.c.model,
                        model_uses.c.status == "paid",
                    ),
                )
            )
            .where(evaluated)
            .group_by(*review, reviews.c.created_at)
        ).all()
        ratings = [
            Rating(rater=r[2], item=r[1], value=Fraction(int(r[3]) - 1, 4), at=int(r[4]))
            for r in rows
        ]
        uses = [PaidUse(payer=r[2], item=r[1], amount=int(r[5])) for r in rows]
        return ratings, uses


def _paid_use(conn: Connection, use: str, *, model: str, payer: str) -> None:
    row = conn.execute(select(model_uses).where(model_uses.c.request == use)).first()
    if row is None or row.payer != payer or row.model != model:
        raise InvalidInput(f"{use} is not a completed predict run of this model by this party")
    if row.status != "paid":
        raise InvalidInput(f"the predict run {use} was not paid for")


def _paid_to(conn: Connection, request: str, *, payer: str, payee: str) -> int:
    use = conn.execute(select(model_uses).where(model_uses.c.request == request)).first()
    if use is not None:
        ok = use.status == "paid" and (use.payer, use.payee) == (payer, payee)
        return int(use.amount) if ok else 0
    pledge = conn.execute(
        select(portfolio_requests).where(portfolio_requests.c.request == request)
    ).first()
    if pledge is None or pledge.status != "paid":
        return 0
    view = _pledge_view(conn, request)
    return sum(s.amount for s in view.shares if s.payee == payee)


def _items(conn: Connection, portfolio: str) -> list[tuple[str, str, int]]:
    return _items_of(conn, [portfolio]).get(portfolio, [])


def _items_of(conn: Connection, ids: Sequence[str]) -> dict[str, list[tuple[str, str, int]]]:
    """Each portfolio's (dataset, owner, weight) items, in their order."""
    rows = conn.execute(
        select(
            portfolio_items.c.portfolio,
            portfolio_items.c.dataset,
            datasets.c.owner,
            portfolio_items.c.weight,
        )
        .join(datasets, datasets.c.dataset == portfolio_items.c.dataset)
        .where(portfolio_items.c.portfolio.in_(ids))
        .order_by(portfolio_items.c.portfolio, portfolio_items.c.position)
    ).all()
    out: dict[str, list[tuple[str, str, int]]] = {}
    for p, d, o, w in rows:
        out.setdefault(str(p), []).append((str(d), str(o), int(w)))
    return out


def _pledge_view(conn: Connection, request: str) -> PledgeView:
    row = conn.execute(
        select(portfolio_requests).where(portfolio_requests.c.request == request)
    ).first()
    if row is None:
        raise NotFound(f"no pledge on request {request}")
    pf = conn.execute(select(portfolios).where(portfolios.c.portfolio == row.portfolio)).one()
    shares = split_reward(
        int(row.amount), _items(conn, row.portfolio), curator=pf.curator, fee=int(pf.fee)
    )
    return PledgeView(
        request=request,
        portfolio=row.portfolio,
        amount=int(row.amount),
        status=row.status,
        reason=row.reason,
        shares=tuple(ShareView(payee=s.payee, dataset=s.dataset, amount=s.amount) for s in shares),
    )


def _use_view(row: Any) -> UseView:
    return UseView(
        request=row.request,
        model=row.model,
        payer=row.payer,
        payee=row.payee,
        amount=int(row.amount),
        receipt=row.receipt,
        status=row.status,
        reason=row.reason,
    )


def _dispute_view(conn: Connection, dispute: str) -> DisputeView:
    return _dispute_views(conn, [dispute])[0]


def _dispute_views(conn: Connection, ids: Sequence[str]) -> list[DisputeView]:
    if not ids:
        return []
    rows = _rows(conn, disputes.c.dispute, ids, "dispute")
    resolutions = [r.resolution for r in rows.values() if r.resolution is not None]
    envelopes = _envelopes(conn, [*ids, *resolutions])
    views = []
    for dispute in ids:
        row = rows[dispute]
        env = envelopes[dispute][0]
        views.append(
            DisputeView(
                dispute=dispute,
                claimant=row.claimant,
                respondent=row.respondent,
                subject=Dispute.parse_payload(env.payload).subject,
                request=row.request,
                amount=int(row.amount),
                status=row.status,
                refund=None if row.refund is None else int(row.refund),
                envelope=env,
                resolution=None if row.resolution is None else envelopes[row.resolution][0],
            )
        )
    return views
