"""The marketplace end to end on a real coordinator and enclave: a model trained in the enclave
is published with its provenance, used for pay through predict, evaluated and reviewed by
paying users only, disputed and refunded by the arbiter; a curator's portfolio splits a reward.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from sealroom.client import flows
from sealroom.client import market as mk
from sealroom.client.http import Client
from sealroom.coordinator.keys import CoordinatorKeystore
from sealroom.coordinator.payments import InMemoryPayments
from sealroom.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PolicyDenied,
    SignatureInvalid,
    VerificationFailed,
)
from sealroom.statements import Receipt, sign_statement
from sealroom.statements.market_models import ArtifactRef, Model
from tests.client.analytics_e2e_world import exact_policy, frame, spector_columns_files, write_csv
from tests.client.client_world import now
from tests.client.market_world import PARAMS, PRICE, P, approve_all, parties, predict, publish
from tests.services import coordinator, registered_enclave


@pytest.fixture
def payments() -> InMemoryPayments:
    return InMemoryPayments()


def test_model_paid_use_evaluation_review_dispute_and_portfolio(
    tmp_path: Path, db_url: str, payments: InMemoryPayments
) -> None:
    """On SQLite and on PostgreSQL (``db_url``)."""
    with coordinator(tmp_path, db_url=db_url, payments=payments) as url:
        names = ["alice", "bob", "tina", "uma", "vic", "sam", "cora"]
        w = parties(url, tmp_path, names)
        for name, amount in (("uma", 1000), ("vic", 1000), ("tina", 0)):
            payments._balances[w[name].id] = amount  # funded accounts (the ledger's job)
        worker = registered_enclave(url)

        # --- train in the enclave; alice and bob each hold columns of spector ----------------
        a_file, b_file = spector_columns_files(tmp_path, [["GPA", "TUCE"], ["PSI", "GRADE"]])
        a = publish(w["alice"], a_file, exact_policy("train-model", PARAMS, [b_file], k=3))
        b = publish(w["bob"], b_file, exact_policy("train-model", PARAMS, [a_file], k=3))
        t = w["tina"]
        train = flows.request(t.client, t.identity, "train-model", [a, b], PARAMS, now=now())
        approve_all([w["alice"], w["bob"]], train.request)
        assert worker.step().outcome == "completed"
        out = tmp_path / "tina-train"
        trained = flows.fetch_result(
            t.client, t.identity, train.request, out, home=t.home, allow_simulated=True
        )

        # --- the model card: provenance from the receipt, artifact sealed to the enclave ------
        published = mk.publish_model(
            t.client,
            t.identity,
            out,
            name="grade model",
            description="logit of GRADE",
            price=PRICE,
            home=t.home,
            now=now(),
        )
        card = published.model
        receipt = t.client.bundle(train.request).receipt
        assert card.provenance["request"] == train.request
        assert card.provenance["receipts"] == [receipt.digest]
        assert [i["dataset"] for i in card.provenance["inputs"]] == [a, b]
        assert card.provenance["computation"]["id"] == "train-model"
        assert card.features == ("GPA", "TUCE", "PSI")
        assert card.price == PRICE
        assert (published.artifact_path.stat().st_mode & 0o777) == 0o600
        assert [m.model for m in Client(base_url=url).models().items] == [card.model]
        # Nobody else can claim the training run, and a model must be its trainer's.
        with pytest.raises(SignatureInvalid):
            w["uma"].client.publish_model(t.client.model(card.model).envelope)
        stmt = t.client.model(card.model).envelope.open(Model).statement
        uma = w["uma"]

        def claim(who: P, **update: Any) -> None:
            forged = stmt.model_copy(update={"created_at": now() + 7, **update})
            who.client.publish_model(sign_statement(forged, who.identity).envelope)

        with pytest.raises(InvalidInput, match="did not receive"):
            claim(uma, trainer=uma.id)
        swapped = tuple(reversed(stmt.provenance.inputs))
        with pytest.raises(InvalidInput, match="not those the receipt binds"):
            claim(t, provenance=stmt.provenance.model_copy(update={"inputs": swapped}))
        with pytest.raises(InvalidInput, match="the provenance must name"):
            claim(t, provenance=stmt.provenance.model_copy(update={"receipts": (train.request,)}))
        root = stmt.artifact.commitment_root
        with pytest.raises(InvalidInput, match="cannot be one of the training inputs"):
            claim(t, artifact=ArtifactRef(dataset=b, commitment_root=root))
        other = flows.publish(
            w["alice"].client,
            w["alice"].identity,
            a_file,
            title="another",
            description="",
            policy_rules=None,
            now=now(),
            home=w["alice"].home,
        ).dataset
        with pytest.raises(InvalidInput, match="artifact must be a dataset its trainer"):
            claim(t, artifact=ArtifactRef(dataset=other, commitment_root=root))
        with pytest.raises(Conflict, match="already backs"):
            claim(t, name="same weights, second card")

        # --- paid use: predictions for uma's own rows, the trainer paid per use --------------
        rows = frame("spector")[["id", "GPA", "TUCE", "PSI"]].iloc[:8]
        use_u, body = predict(w, worker, "uma", card.artifact, write_csv(tmp_path / "u.csv", rows))
        coefs = {c["name"]: float(c["estimate"]) for c in trained.body["coefficients"]}
        for pred, (_, r) in zip(body["predictions"], rows.iterrows(), strict=True):
            eta = coefs["(intercept)"] + sum(coefs[f] * r[f] for f in ("GPA", "TUCE", "PSI"))
            assert pred["id"] == str(int(r["id"]))
            assert float(pred["value"]) == pytest.approx(1 / (1 + math.exp(-eta)), rel=1e-5)
        assert "coefficients" not in body
        assert body["rows"] == 8
        assert payments.balance(w["uma"].id) == 1000 - PRICE
        assert payments.balance(t.id) == PRICE
        assert [u.status for u in w["uma"].client.model_uses(card.model).items] == ["paid"]
        use_v, _ = predict(w, worker, "vic", card.artifact, write_csv(tmp_path / "v.csv", rows))
        # Predictions on another party's rows: its policy names only itself as a requester.
        [uma_rows] = [
            d.dataset for d in Client(base_url=url).list_datasets(owner=w["uma"].id).items
        ]
        stolen = flows.request(
            w["sam"].client,
            w["sam"].identity,
            "predict",
            [card.artifact, uma_rows],
            {"id_column": "id"},
            now=now(),
        )
        assert stolen.status == "rejected"
        assert "not on the policy's allowlist" in (stolen.status_reason or "")
        assert t.client.model(card.model).paid_uses == 2
        assert {u.payer for u in t.client.model_uses(card.model).items} == {
            w["uma"].id,
            w["vic"].id,
        }

        # --- evaluations and reviews only by paying users ------------------------------------
        sam = w["sam"]
        with pytest.raises(InvalidInput, match="not a completed predict run"):
            mk.evaluate(
                sam.client, sam.identity, card.model, use_u, score="0", summary="x", now=now()
            )
        ev = mk.evaluate(
            w["uma"].client,
            w["uma"].identity,
            card.model,
            use_u,
            score="0.8",
            summary="good on my rows",
            examples=[({"GPA": "3.1"}, "0.4")],
            now=now(),
        )
        with pytest.raises(Conflict):
            mk.evaluate(
                w["uma"].client,
                w["uma"].identity,
                card.model,
                use_u,
                score="0.1",
                summary="again",
                now=now() + 1,
            )
        with pytest.raises(InvalidInput, match="own evaluation"):
            mk.review(w["uma"].client, w["uma"].identity, ev.evaluation, use_u, rating=5, now=now())
        with pytest.raises(InvalidInput):
            mk.review(sam.client, sam.identity, ev.evaluation, use_u, rating=1, now=now())
        mk.review(w["vic"].client, w["vic"].identity, ev.evaluation, use_v, rating=5, now=now())
        # The trainer: prior 1/2 over 1000, uma's 0.8 over her 100 paid.
        rep = {r.role: r for r in Client(base_url=url).reputation(t.id).roles}
        assert rep["trainer"].score == "0.527273"  # (500 + 80) / 1100
        assert rep["owner"].score == "0.500000"
        # uma as evaluator: vic's 5 stars = 1 over his 100 paid: (500 + 100) / 1100.
        rep_u = {r.role: r for r in Client(base_url=url).reputation(w["uma"].id).roles}
        assert rep_u["evaluator"].score == "0.545455"
        # alice's data trained the model: owners share the model's ratings.
        rep_a = {r.role: r for r in Client(base_url=url).reputation(w["alice"].id).roles}
        assert rep_a["owner"].score == "0.527273"

        # --- a dispute and the arbiter's refund -----------------------------------------------
        u = w["uma"]
        with pytest.raises(InvalidInput, match="less than disputed"):
            mk.file_dispute(
                u.client,
                u.identity,
                use_u,
                respondent=t.id,
                subject="result",
                amount=PRICE + 1,
                reason="too much",
                now=now(),
            )
        dispute = mk.file_dispute(
            u.client,
            u.identity,
            use_u,
            respondent=t.id,
            subject="result",
            amount=50,
            reason="predictions were off on half my rows",
            now=now(),
        )
        assert dispute.status == "open"
        # Disputes over one payment share its ceiling: 50 of 100 are disputed already.
        with pytest.raises(InvalidInput, match="already disputes 50"):
            mk.file_dispute(
                u.client,
                u.identity,
                use_u,
                respondent=t.id,
                subject="charge",
                amount=51,
                reason="again",
                now=now() + 1,
            )
        with pytest.raises(NotFound):
            sam.client.dispute(dispute.dispute)
        arbiter = CoordinatorKeystore(directory=tmp_path / "coordinator-keys").arbiter(create=False)
        assert Client(base_url=url).arbiter().party == arbiter.party_id
        # Nobody but the arbiter key resolves.
        with pytest.raises(PolicyDenied, match="arbiter"):
            mk.resolve_dispute(
                sam.client,
                sam.identity,
                dispute.dispute,
                outcome="upheld",
                refund=50,
                reason="x",
                now=now(),
            )
        with Client(base_url=url, identity=arbiter) as ac:
            done = mk.resolve_dispute(
                ac,
                arbiter,
                dispute.dispute,
                outcome="upheld",
                refund=50,
                reason="the receipt shows the run; half the rows were mis-scored",
                now=now(),
            )
        assert done.status == "upheld"
        assert done.refund == 50
        assert done.resolution is not None
        assert payments.balance(u.id) == 1000 - PRICE + 50
        assert payments.balance(t.id) == 2 * PRICE - 50
        rep = {r.role: r for r in Client(base_url=url).reputation(t.id).roles}
        assert rep["trainer"].upheld_against == 1
        assert rep["trainer"].score == "0.263636"  # 580/1100 / 2

        # --- a curator's portfolio: a reward split by weights after the fee ------------------
        cora = w["cora"]
        pf = mk.publish_portfolio(
            cora.client,
            cora.identity,
            name="spector halves",
            description="both halves",
            items=[(a, 6000), (b, 4000)],
            fee=1000,
            now=now(),
        )
        assert [(i.dataset, i.owner, i.weight) for i in pf.items] == [
            (a, w["alice"].id, 6000),
            (b, w["bob"].id, 4000),
        ]
        v = w["vic"]
        again = flows.request(v.client, v.identity, "train-model", [a, b], PARAMS, now=now())
        pledged = v.client.pledge(pf.portfolio, again.request, 500)
        assert pledged.status == "pledged"
        assert [(s.payee, s.amount) for s in pledged.shares] == [
            (cora.id, 50),
            (w["alice"].id, 270),
            (w["bob"].id, 180),
        ]
        approve_all([w["alice"], w["bob"]], again.request)
        assert worker.step().outcome == "completed"
        assert v.client.get_pledge(again.request).status == "paid"
        assert payments.balance(v.id) == 1000 - PRICE - 500
        assert payments.balance(cora.id) == 50
        assert payments.balance(w["alice"].id) == 270
        assert payments.balance(w["bob"].id) == 180
        assert isinstance(receipt.open(Receipt).statement, Receipt)


def test_unfunded_use_is_recorded_unpaid_and_gives_no_evaluation_right(
    tmp_path: Path, payments: InMemoryPayments
) -> None:
    """A predict run whose price cannot be charged completes (the enclave already released
    it) but is recorded unpaid: it counts for nothing and cannot back an evaluation."""
    with coordinator(tmp_path, payments=payments) as url:
        w = parties(url, tmp_path, ["alice", "bob", "tina", "uma"])
        worker = registered_enclave(url)
        a_file, b_file = spector_columns_files(tmp_path, [["GPA", "TUCE"], ["PSI", "GRADE"]])
        a = publish(w["alice"], a_file, exact_policy("train-model", PARAMS, [b_file], k=3))
        b = publish(w["bob"], b_file, exact_policy("train-model", PARAMS, [a_file], k=3))
        t = w["tina"]
        train = flows.request(t.client, t.identity, "train-model", [a, b], PARAMS, now=now())
        approve_all([w["alice"], w["bob"]], train.request)
        assert worker.step().outcome == "completed"
        out = tmp_path / "tina-train"
        flows.fetch_result(
            t.client, t.identity, train.request, out, home=t.home, allow_simulated=True
        )
        published = mk.publish_model(
            t.client, t.identity, out, name="m", description="", price=PRICE, home=t.home, now=now()
        )
        rows = frame("spector")[["id", "GPA", "TUCE", "PSI"]].iloc[:3]
        use, _ = predict(
            w, worker, "uma", published.model.artifact, write_csv(tmp_path / "u.csv", rows)
        )
        [u] = w["uma"].client.model_uses(published.model.model).items
        assert (u.status, u.amount) == ("unpaid", PRICE)
        assert "insufficient" in (u.reason or "")
        with pytest.raises(InvalidInput, match="not paid"):
            mk.evaluate(
                w["uma"].client,
                w["uma"].identity,
                published.model.model,
                use,
                score="1",
                summary="free lunch",
                now=now(),
            )
        assert t.client.model(published.model.model).paid_uses == 0
        assert Fraction(t.client.model(published.model.model).rating) == Fraction(1, 2)
        # Once uma has funds, the next completion settles what she owes (exactly once).
        payments._balances[w["uma"].id] = 3 * PRICE
        again, _ = predict(
            w, worker, "uma", published.model.artifact, write_csv(tmp_path / "u2.csv", rows)
        )
        uses = {u.request: u for u in w["uma"].client.model_uses(published.model.model).items}
        assert {r: u.status for r, u in uses.items()} == {use: "paid", again: "paid"}
        assert payments.balance(w["uma"].id) == PRICE
        assert payments.balance(t.id) == 2 * PRICE
        mk.evaluate(
            w["uma"].client,
            w["uma"].identity,
            published.model.model,
            use,
            score="1",
            summary="paid after all",
            now=now(),
        )


def test_free_model_through_the_party_facade_without_a_ledger(tmp_path: Path) -> None:
    """No payments backend (the default, NoPayments): a free model is used, its use recorded
    as paid with amount 0 (an evaluation right that weighs nothing), while a priced model's
    use is recorded unpaid."""
    from sealroom.client import Party

    with coordinator(tmp_path) as url:

        def make(name: str) -> Party:
            return Party.create(home=tmp_path / name, name=name, url=url, unencrypted=True)

        alice, bob, tina, uma = make("alice"), make("bob"), make("tina"), make("uma")
        worker = registered_enclave(url)
        a_file, b_file = spector_columns_files(tmp_path, [["GPA", "TUCE"], ["PSI", "GRADE"]])
        a = alice.publish(
            a_file, title="a", policy=exact_policy("train-model", PARAMS, [b_file], k=3)
        )
        b = bob.publish(
            b_file, title="b", policy=exact_policy("train-model", PARAMS, [a_file], k=3)
        )
        train = tina.request("train-model", [a.dataset, b.dataset], PARAMS)
        for owner in (alice, bob):
            owner.auto_approve(allow_simulated=True)
        assert worker.step().outcome == "completed"
        tina.result(train.request, tmp_path / "trained", allow_simulated=True)
        free = tina.publish_model(tmp_path / "trained", name="free", price=0)
        rows = frame("spector")[["id", "GPA", "TUCE", "PSI"]].iloc[:3]
        mine = uma.publish(
            write_csv(tmp_path / "u.csv", rows),
            title="my rows",
            policy={
                "allow": [{"id": "predict"}],
                "auto_approve": [{"id": "predict"}],
                "requesters": [uma.party_id],
                "k": 1,
            },
        )
        use = uma.predict(free.model.model, mine.dataset, id_column="id")
        for p in (tina, uma):
            p.auto_approve(allow_simulated=True)
        assert worker.step().outcome == "completed"
        got = uma.result(use.request, tmp_path / "uma-out", allow_simulated=True)
        assert got.body["rows"] == 3
        [u] = uma.client.model_uses(free.model.model).items
        assert (u.status, u.amount) == ("paid", 0)
        ev = uma.evaluate(free.model.model, use.request, score="1", summary="free and fine")
        assert ev.score == "1"
        # The evaluation weighs nothing: nothing was paid for the model.
        trainer = {r.role: r for r in uma.reputation(tina.party_id).roles}["trainer"]
        assert (trainer.score, trainer.weight, trainer.ignored) == ("0.500000", 0, 1)
        for p in (alice, bob, tina, uma):
            p.close()


def test_federated_model_is_published_with_its_co_signed_run(tmp_path: Path) -> None:
    """A protocol-run model: the TrainedModel and every participant's receipt travel with the
    Model and are verified as one run; the inputs are the owners' attested datasets."""
    import threading

    import numpy as np

    from sealroom.client import Party

    features = ["GPA", "TUCE", "PSI"]
    with coordinator(tmp_path) as url:

        def make(name: str) -> Party:
            return Party.create(home=tmp_path / name, name=name, url=url, unencrypted=True)

        trainer, owners = make("trainer"), [make(f"o{i}") for i in range(3)]
        df = frame("spector")
        parts = [df.iloc[i::3] for i in range(3)]
        datasets = [
            o.publish(write_csv(tmp_path / f"part{i}.csv", part), title=f"part {i}").dataset
            for i, (o, part) in enumerate(zip(owners, parts, strict=True))
        ]
        errors: list[BaseException] = []

        def join(i: int) -> None:
            try:
                x = parts[i][features].to_numpy(dtype=np.float64)
                y = parts[i]["GRADE"].to_numpy(dtype=np.float64)
                owners[i].train(
                    "federated",
                    features=features,
                    data=(x, y),
                    join=True,
                    rounds=3,
                    inputs=[datasets[i]],
                    timeout=60,
                )
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=join, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        run = trainer.train(
            "federated",
            features=features,
            start_with=[o.party_id for o in owners],
            rounds=3,
            timeout=60,
        )
        for t in threads:
            t.join(timeout=120)
        assert errors == []
        assert run.model is not None
        published = mk.publish_protocol_model(
            trainer.client,
            trainer.identity,
            run.model,
            run.record.receipts,
            target="GRADE",
            name="federated grade",
            description="",
            price=0,
            home=trainer.home,
            now=now(),
        )
        p = published.model.provenance
        assert p["kind"] == "protocol-run"
        assert p["trained_model"] == run.model.digest
        assert sorted(p["receipts"]) == sorted(r.digest for r in run.record.receipts)
        assert [i["dataset"] for i in p["inputs"]] == sorted(datasets)
        # The run's receipts must all be there: one missing is refused.
        with pytest.raises(VerificationFailed, match="no receipt from"):
            mk.publish_protocol_model(
                trainer.client,
                trainer.identity,
                run.model,
                run.record.receipts[:-1],
                target="GRADE",
                name="partial",
                description="",
                price=0,
                home=trainer.home,
                now=now(),
            )
        for party in (trainer, *owners):
            party.close()
