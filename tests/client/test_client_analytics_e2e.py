"""Every analytics computation end to end: publish, request, approve, run, fetch and verify.

One real coordinator (SQLite, uvicorn in a thread) and one in-process simulated
enclave worker with its own SQL budget ledger serve the whole file. For each
computation the owners publish real statsmodels data split between them, the
requester asks, the owners approve (by policy, or by hand for content), the
enclave runs it, and every recipient fetches the result with
``flows.fetch_result`` — which verifies the proof bundle (receipt signature,
evidence, decisions, privacy spent, output commitment, log inclusion). The
verified body must equal the computation run directly on the same plaintext
files; for the DP run, the receipt must record the budget spent and a later
request beyond the owner's budget must fail at the enclave's budget step.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from sealroom.client import flows
from sealroom.client.http import Client
from sealroom.computations import default_registry
from sealroom.crypto.keys import Identity
from sealroom.crypto.keystore import Keystore
from sealroom.enclave.worker import EnclaveWorker
from sealroom.errors import PolicyDenied
from sealroom.statements import Receipt
from tests.client.analytics_e2e_world import (
    GRUNFELD_SQL,
    SQL_RULES,
    exact_policy,
    fair_columns_files,
    fair_row_files,
    frame,
    grunfeld_files,
    lift_files,
    log_file,
    policy,
    quality_files,
    quality_source,
    run_direct,
    spector_columns_files,
)
from tests.client.client_world import now
from tests.computations.join_truth import coded
from tests.services import coordinator, registered_enclave

REGISTRY = default_registry()


@dataclass(frozen=True)
class Party:
    name: str
    home: Path
    identity: Identity
    client: Client


@dataclass(frozen=True)
class World:
    url: str
    root: Path
    parties: Mapping[str, Party]
    worker: EnclaveWorker


@dataclass(frozen=True)
class Run:
    request: str
    results: Mapping[str, flows.FetchedResult]
    receipt: Receipt

    @property
    def body(self) -> Any:
        bodies = [r.body for r in self.results.values()]
        assert all(b == bodies[0] for b in bodies), "recipients got different results"
        return bodies[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("analytics")
    with coordinator(root) as url:
        parties: dict[str, Party] = {}
        for name in ("alice", "bob", "carol"):
            home = root / name
            identity = Keystore.create(home, name=name, unencrypted=True)
            client = Client(base_url=url, identity=identity)
            client.register_party(name)
            parties[name] = Party(name, home, identity, client)
        worker = registered_enclave(url)
        try:
            yield World(url=url, root=root, parties=parties, worker=worker)
        finally:
            for p in parties.values():
                p.client.close()


def publish(world: World, owner: str, path: Path, rules: Mapping[str, Any] | None) -> str:
    p = world.parties[owner]
    return flows.publish(
        p.client,
        p.identity,
        path,
        title=f"{owner}: {path.name}",
        description="real statsmodels data, split between parties",
        policy_rules=rules,
        now=now(),
        home=p.home,
    ).dataset


def request_and_approve(
    world: World,
    requester: str,
    computation: str,
    inputs: Sequence[tuple[str, str]],
    params: Mapping[str, Any],
    *,
    manual: bool = False,
) -> str:
    """Request, then each distinct owner approves (checking policy vs manual mode)."""
    req = world.parties[requester]
    view = flows.request(
        req.client, req.identity, computation, [d for _, d in inputs], params, now=now()
    )
    assert view.status == "pending", view.status_reason
    assert [p.automatic for p in view.precheck] == [not manual] * len(inputs)
    for owner in dict.fromkeys(o for o, _ in inputs):
        p = world.parties[owner]
        done = flows.approve(
            p.client, p.identity, view.request, home=p.home, allow_simulated=True, now=now()
        )
        assert {d.mode for d in done} == {"manual" if manual else "policy"}
    assert flows.status(req.client, view.request).status == "approved"
    return view.request


def finish(world: World, request: str, recipients: Sequence[str]) -> Run:
    step = world.worker.step()
    assert step.outcome == "completed", step.reason
    assert step.request == request
    results = {}
    for name in recipients:
        p = world.parties[name]
        results[name] = flows.fetch_result(
            p.client,
            p.identity,
            request,
            world.root / "out" / request[7:19] / name,
            home=p.home,
            allow_simulated=True,
        )
        assert results[name].simulated
        assert results[name].report.failures == ()
    bundle = world.parties[recipients[0]].client.bundle(request)
    receipt = bundle.receipt.open(Receipt).statement
    assert {o.recipient for o in receipt.outputs} == {
        world.parties[n].identity.party_id for n in recipients
    }
    return Run(request=request, results=results, receipt=receipt)


def run_case(
    world: World,
    *,
    computation: str,
    requester: str,
    inputs: Sequence[tuple[str, Path, Mapping[str, Any] | None]],
    params: Mapping[str, Any],
    manual: bool = False,
) -> tuple[Run, Any]:
    """The whole flow for one computation, and the direct plaintext run to compare with."""
    datasets = [(owner, publish(world, owner, path, rules)) for owner, path, rules in inputs]
    rid = request_and_approve(world, requester, computation, datasets, params, manual=manual)
    c = REGISTRY.get(computation)
    owners = list(dict.fromkeys(o for o, _, _ in inputs))
    recipients = (
        [requester] if c.release == "requester" else list(dict.fromkeys([requester, *owners]))
    )
    run = finish(world, rid, recipients)
    assert run.receipt.computation == c.ref()
    assert [d.dataset for d in run.receipt.decisions] == [d for _, d in datasets]
    assert all(d.automatic is (not manual) for d in run.receipt.decisions)
    expected = run_direct(c, [p for _, p, _ in inputs], params, [r for _, _, r in inputs])
    return run, expected


def case_dir(world: World, name: str) -> Path:
    out = world.root / "data" / name
    out.mkdir(parents=True, exist_ok=True)
    return out


# --- one test per computation ---------------------------------------------------------------


def test_sql_aggregate(world: World) -> None:
    a, b = grunfeld_files(case_dir(world, "sql"))
    params = {"sql": GRUNFELD_SQL}
    rules_a, rules_b = (
        exact_policy("sql-aggregate", params, [other], k=5, entity_column="firm", sql=SQL_RULES)
        for other in (b, a)
    )
    run, expected = run_case(
        world,
        computation="sql-aggregate",
        requester="carol",
        inputs=[("alice", a, rules_a), ("bob", b, rules_b)],
        params=params,
    )
    assert run.body == expected
    assert run.receipt.privacy_spent == ()
    assert [d.k for d in run.receipt.decisions] == [5, 5]
    assert [d.entity_column for d in run.receipt.decisions] == ["firm", "firm"]
    import pandas as pd

    ga, gb = pd.read_csv(a), pd.read_csv(b)
    joined = ga.merge(gb, on=["firm", "year"])
    truth = joined.groupby("decade").agg(
        firms=("firm", "nunique"), invest=("invest", "sum"), mean_value=("value", "mean")
    )
    assert [r[0] for r in run.body["rows"]] == list(truth.index)
    for row, (_, t) in zip(run.body["rows"], truth.iterrows(), strict=True):
        assert row[1] == t["firms"]
        assert float(row[2]) == pytest.approx(t["invest"], rel=1e-11)
        assert float(row[3]) == pytest.approx(t["mean_value"], rel=1e-11)


def test_correlation(world: World) -> None:
    a, b = fair_columns_files(case_dir(world, "corr"), ["age", "yrs_married"], ["affairs"])
    params = {"x": "yrs_married", "y": "affairs", "x_bounds": ["0", "25"], "y_bounds": ["0", "60"]}
    run, expected = run_case(
        world,
        computation="correlation",
        requester="alice",
        inputs=[
            ("alice", a, exact_policy("correlation", params, [b])),
            ("bob", b, exact_policy("correlation", params, [a])),
        ],
        params=params,
    )
    assert run.body == expected
    df = frame("fair")
    overlap = df.iloc[1000:4000:2]
    # Exact mode top-codes each side to the level k = 5 women of the other side share.
    r, _ = stats.pearsonr(overlap["yrs_married"], coded(overlap["affairs"], 5))
    assert run.body["n"] == len(overlap)
    assert float(run.body["pearson"]["estimate"]) == pytest.approx(r, rel=1e-9)


def test_aggregate_stats_three_parties(world: World) -> None:
    files = fair_row_files(case_dir(world, "agg"), 3, ["occupation", "affairs"])
    params = {"value": "affairs", "group_by": ["occupation"], "percentiles": [50]}
    rules = exact_policy("aggregate-stats", params, entity_column="id")
    run, expected = run_case(
        world,
        computation="aggregate-stats",
        requester="alice",
        inputs=[(n, f, rules) for n, f in zip(("alice", "bob", "carol"), files, strict=True)],
        params=params,
    )
    assert run.body == expected
    assert run.body["parties"] == 3
    df = frame("fair")
    for g in run.body["groups"]:
        vals = df.loc[df["occupation"] == float(g["key"][0]), "affairs"]
        assert g["stats"]["rows"] == len(vals)
        assert float(g["stats"]["sum"]) == pytest.approx(vals.sum(), rel=1e-11)


def test_intersection_overlap_and_sum(world: World) -> None:
    a, b = fair_columns_files(case_dir(world, "isect"), ["age"], ["affairs"])
    overlap, expected = run_case(
        world,
        computation="intersection-overlap",
        requester="bob",
        inputs=[
            ("alice", a, exact_policy("intersection-overlap", {}, [b])),
            ("bob", b, exact_policy("intersection-overlap", {}, [a])),
        ],
        params={},
    )
    assert overlap.body == expected
    ids_a, ids_b = set(range(0, 4000, 2)), set(range(1000, 6366))
    assert overlap.body["overlap"] == len(ids_a & ids_b)
    assert overlap.body["union"] == len(ids_a | ids_b)

    isum = {"value": "affairs", "value_bounds": ["0", "60"]}
    total, expected = run_case(
        world,
        computation="intersection-sum",
        requester="bob",
        inputs=[
            ("alice", a, exact_policy("intersection-sum", isum, [b])),
            ("bob", b, exact_policy("intersection-sum", isum, [a])),
        ],
        params=isum,
    )
    assert total.body == expected
    truth = coded(frame("fair").iloc[1000:4000:2]["affairs"], 5).sum()
    assert float(total.body["sum"]) == pytest.approx(truth, rel=1e-11)


def test_lift(world: World) -> None:
    exposure, conversions = lift_files(case_dir(world, "lift"))
    run, expected = run_case(
        world,
        computation="lift",
        requester="bob",
        inputs=[
            ("alice", exposure, exact_policy("lift", {}, [conversions])),
            ("bob", conversions, exact_policy("lift", {}, [exposure])),
        ],
        params={"confidence": "0.9"},
    )
    assert run.body == expected
    df = frame("fair")
    test = df[df["children"] > 0]
    assert run.body["test"]["n"] == len(test)
    assert run.body["test"]["conversions"] == int((test["affairs"] > 0).sum())
    assert run.body["confidence"] == "0.9"


def test_association_test(world: World) -> None:
    a, b = fair_columns_files(case_dir(world, "assoc"), ["yrs_married"], ["rate_marriage"])
    params = {
        "signal": "yrs_married",
        "signal_bounds": ["0", "25"],
        "outcome": "rate_marriage",
        "outcome_type": "numeric",
        "outcome_bounds": ["1", "5"],
    }
    run, expected = run_case(
        world,
        computation="association-test",
        requester="bob",
        inputs=[
            ("alice", a, exact_policy("association-test", params, [b])),
            ("bob", b, exact_policy("association-test", params, [a])),
        ],
        params=params,
    )
    assert run.body == expected
    overlap = frame("fair").iloc[1000:4000:2]
    r, p = stats.pearsonr(overlap["yrs_married"], overlap["rate_marriage"])
    assert float(run.body["correlation"]) == pytest.approx(r, rel=1e-9)
    assert run.body["significant"] is bool(p < 0.05)


def test_train_model(world: World) -> None:
    import statsmodels.api as sm

    a, b = spector_columns_files(case_dir(world, "model"), [["GPA", "TUCE"], ["PSI", "GRADE"]])
    params = {
        "layout": "join",
        "id_column": "id",
        "target": "GRADE",
        "features": ["GPA", "TUCE", "PSI"],
        "test_fraction": "0",
    }
    run, expected = run_case(
        world,
        computation="train-model",
        requester="carol",
        inputs=[
            ("alice", a, exact_policy("train-model", params, [b], k=3)),
            ("bob", b, exact_policy("train-model", params, [a], k=3)),
        ],
        params=params,
    )
    assert run.body == expected
    df = frame("spector")
    fit = sm.Logit(df["GRADE"], sm.add_constant(df[["GPA", "TUCE", "PSI"]])).fit(disp=0)
    got = [float(c["estimate"]) for c in run.body["coefficients"]]
    assert got == pytest.approx(list(fit.params), rel=1e-6)


def test_quality_score(world: World) -> None:
    import hashlib

    algorithm, sample = quality_files(case_dir(world, "quality"))
    params = {"precision": 2, "wall_ms": 300}
    bits = {"per_requester": "20", "total": "40"}
    # The buyer publishes its module (auto-approved by its own policy); the seller pins the
    # range, precision and limits, declares a bit budget, and decides by hand.
    buyer_rules = exact_policy("quality-score", params, bits=bits)
    seller_rules = exact_policy("quality-score", params, auto=False, bits=bits)
    buyer = publish(world, "carol", algorithm, buyer_rules)
    seller = publish(world, "bob", sample, seller_rules)
    req = world.parties["carol"]
    view = flows.request(
        req.client, req.identity, "quality-score", [buyer, seller], params, now=now()
    )
    for name in ("carol", "bob"):
        p = world.parties[name]
        flows.approve(
            p.client, p.identity, view.request, home=p.home, allow_simulated=True, now=now()
        )
    run = finish(world, view.request, ["carol"])
    assert [d.automatic for d in run.receipt.decisions] == [True, False]
    expected = run_direct(
        REGISTRY.get("quality-score"), [algorithm, sample], params, [buyer_rules, seller_rules]
    )
    assert run.body == expected
    truth = float(np.mean(frame("spector")["GRADE"]))
    assert run.body["score"] == f"{round(truth, 2):.2f}"
    assert run.body["bits"] == "6.672426"
    assert (
        run.body["algorithm_digest"]
        == "sha256:" + hashlib.sha256(quality_source().encode()).hexdigest()
    )
    assert quality_source() not in json.dumps(run.body)


def test_pattern_search_is_approved_by_hand(world: World) -> None:
    log = log_file(case_dir(world, "pattern"))
    # Even listed for automatic approval, content is never approved automatically.
    rules = policy("pattern-search", k=5)
    dataset = publish(world, "alice", log, rules)
    bob = world.parties["bob"]
    params = {"query": "quote verification failed", "max_patterns": 5}
    view = flows.request(bob.client, bob.identity, "pattern-search", [dataset], params, now=now())
    assert not view.precheck[0].automatic
    alice = world.parties["alice"]
    auto = flows.auto_approve(alice.client, alice.identity, home=alice.home, now=now())
    assert [(x.request, x.action) for x in auto if x.request == view.request] == [
        (view.request, "left")
    ]
    done = flows.approve(
        alice.client,
        alice.identity,
        view.request,
        home=alice.home,
        allow_simulated=True,
        now=now(),
        reason="read the query; fine",
    )
    assert [d.mode for d in done] == ["manual"]
    run = finish(world, view.request, ["bob"])
    assert [d.automatic for d in run.receipt.decisions] == [False]
    assert run.body == run_direct(REGISTRY.get("pattern-search"), [log], params, [rules])
    texts = [json.loads(line)["text"].lower() for line in log.read_text().splitlines()]
    matched = sum("quote verification failed" in t for t in texts)
    assert run.body["matched"] in (None, matched - matched % 5)  # rounded down to k
    assert 0 < len(run.body["patterns"]) <= 5


# --- differential privacy: spent in the receipt, refused beyond the budget -----------------------


def test_dp_aggregate_stats_spends_budget_then_refuses(world: World) -> None:
    files = fair_row_files(case_dir(world, "dp"), 3, ["occupation", "affairs"])
    budget = {
        "epsilon_per_requester": "1.5",
        "epsilon_total": "10",
        "delta_per_requester": "0.00001",
        "delta_total": "0.0001",
    }
    rules = policy("aggregate-stats", entity_column="id", dp=budget)
    names = ("alice", "bob", "carol")
    datasets = [(n, publish(world, n, f, rules)) for n, f in zip(names, files, strict=True)]
    params = {
        "value": "affairs",
        "group_by": ["occupation"],
        "percentiles": [50],
        "dp": {"epsilon": "1", "delta": "0.000001", "lower": "0", "upper": "10"},
    }
    rid = request_and_approve(world, "alice", "aggregate-stats", datasets, params)
    run = finish(world, rid, list(names))
    spent = {(c.dataset, c.epsilon, c.delta) for c in run.receipt.privacy_spent}
    assert spent == {(d, "1", "0.000001") for _, d in datasets}
    assert [d.epsilon for d in run.receipt.decisions] == ["1", "1", "1"]
    assert run.body["dp"]["epsilon"] == "1"
    assert run.body["dp"]["mechanisms"]
    assert run.body["suppressed_groups"] is None
    df = frame("fair")
    for g in run.body["groups"]:
        assert g["stats"]["entities"] is None  # no exact count is released in DP mode
        n = int((df["occupation"] == float(g["key"][0])).sum())
        assert abs(g["stats"]["rows"] - n) <= 60

    # The next run (1 more) would bring alice to 2 > 1.5: decided fine, refused by the ledger.
    again = request_and_approve(world, "alice", "aggregate-stats", datasets, params)
    step = world.worker.step()
    assert step.outcome == "failed"
    assert step.request == again
    final = flows.status(world.parties["alice"].client, again)
    assert final.status == "failed"
    assert final.status_reason is not None
    assert "budget" in final.status_reason
    assert "epsilon" in final.status_reason

    # A run that could never fit the per-requester budget is rejected when it is requested.
    bigger = {**params, "dp": {**params["dp"], "epsilon": "2"}}
    alice = world.parties["alice"]
    view = flows.request(
        alice.client,
        alice.identity,
        "aggregate-stats",
        [d for _, d in datasets],
        bigger,
        now=now(),
    )
    assert view.status == "rejected"
    assert view.status_reason is not None
    assert "more than the per-requester budget" in view.status_reason
    with pytest.raises(PolicyDenied, match="rejected"):
        flows.approve(
            alice.client,
            alice.identity,
            view.request,
            home=alice.home,
            allow_simulated=True,
            now=now(),
        )


def test_dp_intersection_sum_is_the_default_and_charges_both_inputs(world: World) -> None:
    a, b = fair_columns_files(case_dir(world, "dp-isum"), ["age"], ["affairs"])
    budget = {"epsilon_per_requester": "2", "epsilon_total": "10"}
    rules = policy("intersection-sum", entity_column="id", dp=budget)
    exact = {"value": "affairs", "value_bounds": ["0", "10"]}
    params = {**exact, "dp": {"epsilon": "1"}}
    run, _ = run_case(
        world,
        computation="intersection-sum",
        requester="bob",
        inputs=[("alice", a, rules), ("bob", b, rules)],
        params=params,
    )
    spent = {(c.epsilon, c.delta) for c in run.receipt.privacy_spent}
    assert spent == {("1", "0")}
    assert len(run.receipt.privacy_spent) == 2
    body = run.body
    assert body["rows"] is None  # no exact count next to the DP values
    assert body["mean_per_row"] is None
    assert body["dp"]["epsilon"] == "1"
    truth = frame("fair").iloc[1000:4000:2]["affairs"].clip(0, 10)
    # Laplace noise of scale 3 x 10 / 1 and discrete Laplace of scale 3: beyond 14 scales
    # with probability below 1e-6.
    assert abs(float(body["sum"]) - truth.sum()) < 14 * 30
    assert abs(body["overlap"] - len(truth)) < 14 * 3
    # The same question without dp is refused when it is asked: the policy requires DP.
    bob = world.parties["bob"]
    view = flows.request(
        bob.client,
        bob.identity,
        "intersection-sum",
        [d.dataset for d in run.receipt.decisions],
        exact,
        now=now(),
    )
    assert view.status == "rejected"
    assert view.status_reason is not None
    assert "rule dp-required" in view.status_reason


def test_dp_lift_releases_noisy_cells_only(world: World) -> None:
    exposure, conversions = lift_files(case_dir(world, "dp-lift"))
    budget = {"epsilon_per_requester": "1", "epsilon_total": "3"}
    rules = policy("lift", entity_column="id", dp=budget)
    run, _ = run_case(
        world,
        computation="lift",
        requester="alice",
        inputs=[("alice", exposure, rules), ("bob", conversions, rules)],
        params={"dp": {"epsilon": "1"}},
    )
    assert {(c.epsilon, c.delta) for c in run.receipt.privacy_spent} == {("1", "0")}
    body = run.body
    assert body["z"] is None
    assert [s["name"] for s in body["dp"]["statistics"]] == ["cells"]
    df = frame("fair")
    test = df[df["children"] > 0]
    # Two cells of discrete Laplace noise of scale 2 (conversions count at d_in = 2).
    assert abs(body["test"]["n"] - len(test)) < 2 * 14 * 2
    assert abs(body["test"]["conversions"] - int((test["affairs"] > 0).sum())) < 14 * 2
    truth = (test["affairs"] > 0).mean() - (df[df["children"] == 0]["affairs"] > 0).mean()
    assert abs(float(body["absolute_lift"]) - truth) < 0.03
    assert float(body["absolute_ci_low"]) < float(body["absolute_lift"])
    assert float(body["absolute_lift"]) < float(body["absolute_ci_high"])


def test_expired_policy_is_rejected_at_request_time(world: World) -> None:
    a, b = fair_columns_files(case_dir(world, "expired"), ["age"], ["affairs"])
    stale = policy("intersection-overlap", expires_at=now() - 60)
    da = publish(world, "alice", a, stale)
    db = publish(world, "bob", b, policy("intersection-overlap"))
    bob = world.parties["bob"]
    view = flows.request(bob.client, bob.identity, "intersection-overlap", [da, db], {}, now=now())
    assert view.status == "rejected"
    assert view.status_reason is not None
    assert "expired" in view.status_reason
    assert not view.precheck[0].allowed
