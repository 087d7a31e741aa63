"""The marketplace's list views load a page's related rows in a bounded number of queries
(one per related table, not one per item), and list the same views as the single reads."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event

from sealroom.crypto.keys import Identity, b64encode
from sealroom.statements import ComputationRef, InputRef, Statement, sign_statement
from sealroom.statements.market_models import (
    ArtifactRef,
    Dispute,
    Evaluation,
    Model,
    ModelProvenance,
    Portfolio,
    PortfolioItem,
    Resolution,
    Review,
)
from sealroom.storage.engine import write_transaction
from sealroom.storage.schema import (
    disputes,
    evaluations,
    market_models,
    model_inputs,
    model_uses,
    portfolio_items,
    portfolios,
    reviews,
)
from sealroom.wire import RegisterPartyBody
from tests.coordinator.coord_helpers import World
from tests.helpers import T0, digest_hex, identity

N = 12
"""Items per list: enough that one query per item would far exceed the bound."""
MOST_QUERIES = 8
"""A list's queries whatever its length (the ids, then one per related table)."""


def _root(label: str) -> str:
    return b64encode(hashlib.sha256(label.encode()).digest())


@dataclass(frozen=True)
class Seeded:
    models: list[str]
    evaluators: list[Identity]
    curator: Identity
    arbiter: Identity


def seed_market(w: World, n: int = N) -> Seeded:
    """``n`` of everything, written straight to the tables the market's writes fill: models
    by the owner, a paid use and an evaluation of the first model by each of ``n``
    evaluators (two reviews each by the next evaluators), a paid or unpaid use and an
    evaluation of every other model by the first evaluator, ``n`` portfolios over two datasets, ``n`` disputes
    (every third resolved by the arbiter)."""
    state = w.c.state
    second = w.publish(w.owner, title="second")
    evaluators = [identity(f"evaluator-{i}") for i in range(n)]
    curator = identity("curator")
    arbiter = w.keystore.arbiter()
    uses = [w.request((w.dataset,), nonce=i + 1) for i in range(2 * n)]
    for k, who in enumerate([*evaluators, curator, w.owner]):
        pub = who.public
        body = RegisterPartyBody(
            name=f"party {k}",
            signing_key=b64encode(pub.signing_key),
            sealing_key=b64encode(pub.sealing_key),
            kem_key=None if pub.kem_key is None else b64encode(pub.kem_key),
        )
        w.c.parties.register(body, caller=who.party_id, now=T0)

    def store(conn: Any, signer: Identity, statement: Statement, at: int) -> str:
        signed = sign_statement(statement, signer)
        state.store(conn, signed.envelope, now=at)
        return signed.digest

    with write_transaction(state.engine) as conn:
        models: list[str] = []
        for i in range(n):
            model = Model(
                trainer=w.owner.party_id,
                name=f"model {i}",
                description="",
                family="binomial",
                target="y",
                features=("x",),
                metrics={"auc": f"0.{i}1"},
                provenance=ModelProvenance(
                    kind="enclave-job",
                    request=digest_hex(f"train {i}"),
                    trained_model=None,
                    receipts=(digest_hex(f"receipt {i}"),),
                    inputs=(InputRef(dataset=w.dataset, commitment_root=_root("root")),),
                    computation=ComputationRef(
                        id="train-model", version="1.0.0", code_digest=digest_hex("code")
                    ),
                ),
                artifact=ArtifactRef(
                    dataset=digest_hex(f"artifact {i}"), commitment_root=_root(f"a{i}")
                ),
                price=100 + i,
                created_at=T0 + i,
            )
            digest = store(conn, w.owner, model, T0 + i)
            conn.execute(
                market_models.insert().values(
                    model=digest,
                    trainer=w.owner.party_id,
                    name=model.name,
                    artifact=model.artifact.dataset,
                    artifact_root=model.artifact.commitment_root,
                    price=model.price,
                    created_at=T0 + i,
                    registered_at=T0 + i,
                )
            )
            conn.execute(model_inputs.insert().values(model=digest, dataset=w.dataset))
            models.append(digest)

        def use(request: str, model: str, payer: Identity, amount: int, status: str) -> None:
            conn.execute(
                model_uses.insert().values(
                    request=request,
                    model=model,
                    payer=payer.party_id,
                    payee=w.owner.party_id,
                    amount=amount,
                    receipt=digest_hex(f"use receipt {request}"),
                    status=status,
                    reason=None,
                    settled_at=T0,
                )
            )

        def evaluate(model: str, by: Identity, request: str, score: str, at: int) -> str:
            ev = Evaluation(
                evaluator=by.party_id,
                model=model,
                use=request,
                score=score,
                summary="",
                examples=(),
                created_at=at,
            )
            digest = store(conn, by, ev, at)
            conn.execute(
                evaluations.insert().values(
                    evaluation=digest,
                    model=model,
                    evaluator=by.party_id,
                    use=request,
                    score=score,
                    created_at=at,
                )
            )
            return digest

        first: list[str] = []
        for i, by in enumerate(evaluators):
            use(uses[i], models[0], by, 100 + 7 * i, "paid")
        for i, by in enumerate(evaluators):
            first.append(evaluate(models[0], by, uses[i], f"0.{i}1", T0 + 100 + i))
        for i, evaluation in enumerate(first):
            for step in (1, 2):
                j = (i + step) % n
                rv = Review(
                    reviewer=evaluators[j].party_id,
                    evaluation=evaluation,
                    use=uses[j],
                    rating=1 + (i + step) % 5,
                    comment="",
                    created_at=T0 + 200 + i,
                )
                digest = store(conn, evaluators[j], rv, T0 + 200 + i)
                conn.execute(
                    reviews.insert().values(
                        review=digest,
                        evaluation=evaluation,
                        reviewer=evaluators[j].party_id,
                        use=uses[j],
                        rating=rv.rating,
                        created_at=rv.created_at,
                    )
                )
        for i in range(1, n):
            use(uses[n + i], models[i], evaluators[0], 50 * i, "paid" if i % 2 else "unpaid")
            evaluate(models[i], evaluators[0], uses[n + i], f"0.{i}5", T0 + 300 + i)

        for i in range(n):
            pf = Portfolio(
                curator=curator.party_id,
                name=f"portfolio {i}",
                description="",
                items=(
                    PortfolioItem(dataset=second, weight=1000 + 100 * i),
                    PortfolioItem(dataset=w.dataset, weight=9000 - 100 * i),
                ),
                fee=10 * i,
                created_at=T0 + 400 + i,
            )
            digest = store(conn, curator, pf, T0 + 400 + i)
            conn.execute(
                portfolios.insert().values(
                    portfolio=digest,
                    curator=curator.party_id,
                    name=pf.name,
                    fee=pf.fee,
                    created_at=pf.created_at,
                )
            )
            conn.execute(
                portfolio_items.insert(),
                [
                    {"portfolio": digest, "dataset": it.dataset, "position": k, "weight": it.weight}
                    for k, it in enumerate(pf.items)
                ],
            )

        for i, by in enumerate(evaluators):
            d = Dispute(
                claimant=by.party_id,
                respondent=w.owner.party_id,
                subject="result" if i % 2 else "charge",
                request=uses[i],
                receipts=(digest_hex(f"use receipt {uses[i]}"),),
                amount=10 + i,
                reason="",
                created_at=T0 + 500 + i,
            )
            digest = store(conn, by, d, T0 + 500 + i)
            resolution = outcome = refund = None
            if i % 3 == 0:
                outcome, refund = ("upheld", i) if i % 2 else ("dismissed", 0)
                res = Resolution(
                    arbiter=arbiter.party_id,
                    dispute=digest,
                    outcome=outcome,
                    refund=refund,
                    reason="",
                    created_at=T0 + 600 + i,
                )
                resolution = store(conn, arbiter, res, T0 + 600 + i)
            conn.execute(
                disputes.insert().values(
                    dispute=digest,
                    claimant=by.party_id,
                    respondent=w.owner.party_id,
                    request=uses[i],
                    amount=d.amount,
                    status=outcome or "open",
                    resolution=resolution,
                    refund=refund,
                    created_at=d.created_at,
                )
            )
    return Seeded(models=models, evaluators=evaluators, curator=curator, arbiter=arbiter)


@contextmanager
def counting(w: World) -> Iterator[list[str]]:
    """The SQL statements run on the coordinator's engine inside the block."""
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(str(args[2]))

    engine = w.c.state.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _queries(w: World, read: Callable[[], Any]) -> tuple[Any, int]:
    with counting(w) as seen:
        out = read()
    return out, len(seen)


def test_listing_models_takes_a_bounded_number_of_queries(w: World) -> None:
    s = seed_market(w)
    page, queries = _queries(w, w.c.market.list_models)
    assert [m.model for m in page.items] == s.models[::-1]
    assert queries <= MOST_QUERIES, queries
    assert list(page.items) == [w.c.market.get_model(m) for m in s.models[::-1]]


def test_listing_evaluations_takes_a_bounded_number_of_queries(w: World) -> None:
    s = seed_market(w)
    page, queries = _queries(w, lambda: w.c.market.evaluations(s.models[0]))
    assert len(page.items) == N
    assert all(e.reviews == 2 for e in page.items)
    assert queries <= MOST_QUERIES, queries


def test_listing_portfolios_takes_a_bounded_number_of_queries(w: World) -> None:
    s = seed_market(w)
    page, queries = _queries(w, w.c.market.list_portfolios)
    assert len(page.items) == N
    assert queries <= MOST_QUERIES, queries
    assert list(page.items) == [w.c.market.get_portfolio(p.portfolio) for p in page.items]
    assert {p.curator for p in page.items} == {s.curator.party_id}


def test_listing_disputes_takes_a_bounded_number_of_queries(w: World) -> None:
    s = seed_market(w)
    page, queries = _queries(w, lambda: w.c.market.disputes(caller=s.arbiter.party_id))
    assert len(page.items) == N
    assert sum(d.resolution is not None for d in page.items) == len(range(0, N, 3))
    assert queries <= MOST_QUERIES, queries


def test_reputation_takes_a_bounded_number_of_queries(w: World) -> None:
    s = seed_market(w)
    view, queries = _queries(w, lambda: w.c.market.reputation(s.evaluators[0].party_id))
    evaluator = next(r for r in view.roles if r.role == "evaluator")
    assert evaluator.raters == 2
    assert queries <= 2 * MOST_QUERIES, queries
