"""Act three of ``sealroom demo``: parties who trust no enclave run protocols between themselves.

Everything goes through the same coordinator, now only as a relay of sealed,
signed messages; every run ends with each party holding all participants'
signed receipts, verified. Parties run in threads of this process, each with
its own keystore and HTTP client, exactly as separate programs would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from sealroom.client.http import Client
from sealroom.client.protocol_runs import (
    ProtocolRun,
    RunFn,
    federated_training,
    he_training,
    run_protocol,
)
from sealroom.client.relay import Session, join_session, open_session
from sealroom.connectors.files import read_table
from sealroom.connectors.profile import profile_table
from sealroom.crypto.keys import Identity
from sealroom.crypto.keystore import Keystore
from sealroom.errors import ProtocolError, SealroomError
from sealroom.protocols import fedavg, he, pjc, psi
from sealroom.protocols.channel import Channel

__all__ = ["act_three"]

Echo = Callable[[str], None]
# Public scaling constants for the randhie features (so CKKS sums stay in range).
FEATURES = ("idp", "lncoins", "physlm", "disea")
SCALE = {"idp": 1.0, "lncoins": 4.61, "physlm": 1.0, "disea": 58.6}


@dataclass(frozen=True)
class _Who:
    name: str
    identity: Identity
    client: Client


def _open(home: Path, url: str) -> _Who:
    entry = Keystore.load_entry(home)
    client = Client(base_url=url, identity=entry.identity)
    return _Who(name=entry.name, identity=entry.identity, client=client)


def _together(jobs: Mapping[str, Callable[[], ProtocolRun]]) -> dict[str, ProtocolRun]:
    """Run each party in its own thread; any party's failure fails the step."""
    results: dict[str, Any] = {}

    def run(name: str, job: Callable[[], ProtocolRun]) -> None:
        try:
            results[name] = job()
        except BaseException as exc:  # handed back below
            results[name] = exc

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for name, value in results.items():
        if isinstance(value, BaseException):
            if isinstance(value, SealroomError):
                raise value
            raise ProtocolError(f"{name} failed: {type(value).__name__}: {value}") from value
    if len(results) != len(jobs):
        raise ProtocolError("a party did not finish in time")
    return results


def _run(
    who: _Who,
    *,
    protocol: str,
    starter: bool,
    roles: Sequence[tuple[str, str]],
    body: Callable[[Session, Channel, Any], tuple[Mapping[str, Any], Mapping[str, Any]]]
    | None = None,
    make: Callable[[Session], RunFn] | None = None,
    dropouts: bool = False,
) -> ProtocolRun:
    if starter:
        session = open_session(who.client, protocol=protocol, roles=roles, wait=30)
    else:
        session = join_session(who.client, protocol=protocol, expect=[roles[0][1]], wait=30)
    return run_protocol(
        who.client,
        session,
        version=1,
        run=make(session)
        if make is not None
        else lambda channel, participants: body(session, channel, participants),  # type: ignore[misc]
        timeout=120,
        dropout_timeout=60 if dropouts else None,
    )


def _receipts(runs: Mapping[str, ProtocolRun], started: float) -> str:
    sets = {tuple(r.digest for r in run.record.receipts) for run in runs.values()}
    total = len(next(iter(runs.values())).session.roles)
    signed = len(next(iter(runs.values())).record.receipts)
    same = "the same verified set" if len(sets) == 1 else "DIFFERENT sets"
    took = time.monotonic() - started
    return f"{signed} of {total} participants signed; every party holds {same} ({took:.1f} s)"


def plan_tables(out: Path) -> dict[str, Path]:
    """Each plan's third of randhie (as in act two) with the training columns, as CSV files."""
    import statsmodels.api as sm

    rand = sm.datasets.randhie.load_pandas().data
    n = len(rand)
    cuts = (0, n // 3, 2 * n // 3, n)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for plan, lo, hi in zip(
        ("PlanNorth", "PlanCentral", "PlanSouth"), cuts[:-1], cuts[1:], strict=True
    ):
        part = rand.iloc[lo:hi]
        path = out / f"{plan.lower()}-training.csv"
        with path.open("w", encoding="utf-8") as f:
            f.write("record,mdvis," + ",".join(FEATURES) + "\n")
            for i, row in enumerate(part.itertuples(index=False), start=lo + 1):
                cells = [str(i), str(round(row.mdvis))] + [
                    repr(float(getattr(row, c))) for c in FEATURES
                ]
                f.write(",".join(cells) + "\n")
        paths[plan] = path
    return paths


def act_three(
    homes: Mapping[str, Path], logs: Mapping[str, Path], url: str, work: Path, echo: Echo
) -> int:
    """Run act three with the keystores of acts one and two; 0 on success."""
    who = {name: _open(home, url) for name, home in homes.items()}
    data = {**logs, **plan_tables(work)}
    try:
        echo("\n" + "=" * 92)
        echo("ACT THREE: no enclave trusted: protocols run between the parties' own clients")
        echo("=" * 92)
        echo("   The coordinator only relays messages sealed to each recipient and signed by")
        echo("   each sender; it learns who takes part, message sizes and timing.")
        _discovery(who, data, echo)
        _intersection_sum(who, data, echo)
        _federated(who, data, echo)
        _homomorphic(who, data, echo)
        return 0
    finally:
        for w in who.values():
            w.client.close()


def _keywords(path: Path) -> list[str]:
    return [
        t for t, _ in profile_table(read_table(path), k=1, max_keywords=psi.KEYWORD_MAX).keywords
    ]


def _discovery(who: Mapping[str, _Who], data: Mapping[str, Path], echo: Echo) -> None:
    amiller, cloud, newbie = who["amiller"], who["CloudMolty"], who["NewbieMolty"]
    echo("\n20. private discovery, before any request: amiller and CloudMolty compare their")
    echo("    FULL keyword sets (not just the 30 on each public card) by PSI (cardinality);")
    echo("    each learns the overlap and the other's set size, never a keyword")
    sets = {n: _keywords(data[n]) for n in ("amiller", "CloudMolty", "NewbieMolty")}
    roles = [("a", amiller.identity.party_id), ("b", cloud.identity.party_id)]

    def side(w: _Who, starter: bool, terms: list[str], k: int) -> Callable[[], ProtocolRun]:
        def body(s: Session, ch: Channel, _: Any) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
            result = psi.keyword_overlap(ch, role=s.me, keywords=terms, threshold=k)
            params = psi.PsiParams(mode="cardinality", threshold=k, max_set_size=psi.KEYWORD_MAX)
            return params.as_dict(), result.public_summary()

        return lambda: _run(w, protocol="psi", starter=starter, roles=roles_for[w.name], body=body)

    roles_for = {"amiller": roles, "CloudMolty": roles}
    started = time.monotonic()
    runs = _together(
        {
            "amiller": side(amiller, True, sets["amiller"], 0),
            "CloudMolty": side(cloud, False, sets["CloudMolty"], 0),
        }
    )
    learned = runs["amiller"].learned
    expected = len(
        {psi.normalize_keyword(t) for t in sets["amiller"]}
        & {psi.normalize_keyword(t) for t in sets["CloudMolty"]}
    )
    jaccard = Fraction(str(learned["jaccard"]))
    echo(
        f"    amiller {learned['own_size']} keywords, CloudMolty {learned['peer_size']}: "
        f"{learned['intersection_size']} in common, Jaccard {float(jaccard):.3f} "
        f"(plaintext check: {expected} in common)"
    )
    echo(f"    receipts: {_receipts(runs, started)}")

    echo("\n    NewbieMolty asks the same of amiller with a threshold of 1000 common keywords:")
    roles_for.clear()
    roles_for.update(
        {
            "NewbieMolty": [("a", newbie.identity.party_id), ("b", amiller.identity.party_id)],
            "amiller": [("a", newbie.identity.party_id), ("b", amiller.identity.party_id)],
        }
    )
    try:
        _together(
            {
                "NewbieMolty": side(newbie, True, sets["NewbieMolty"], 1000),
                "amiller": side(amiller, False, sets["amiller"], 1000),
            }
        )
        raise ProtocolError("the threshold run should have stopped below its threshold")
    except ProtocolError as exc:
        echo(f"    both stop with: {exc.detail}  (no size is revealed to either user)")


def _cohort_and_visits(data: Mapping[str, Path]) -> tuple[list[int], list[int], list[int]]:
    north = read_table(data["PlanNorth"])
    records = north.column("record").to_pylist()
    visits = north.column("mdvis").to_pylist()
    # The analyst's study cohort: every 7th record number across all plans.
    cohort = list(range(1, 20_191, 7))
    return cohort, records, visits


def _intersection_sum(who: Mapping[str, _Who], data: Mapping[str, Path], echo: Echo) -> None:
    analyst, north = who["Analyst"], who["PlanNorth"]
    cohort, records, visits = _cohort_and_visits(data)
    params = pjc.PjcParams(min_intersection=50, max_value=1000)
    echo("\n21. private intersection-sum (Private Join and Compute): Analyst holds a cohort of")
    echo(
        f"    {len(cohort)} record numbers, PlanNorth its {len(records)} records with visit counts;"
    )
    echo("    Analyst learns how many of its cohort PlanNorth holds and their total visits only")
    roles = [("a", analyst.identity.party_id), ("b", north.identity.party_id)]

    def side(w: _Who, starter: bool, role: str) -> Callable[[], ProtocolRun]:
        def body(s: Session, ch: Channel, _: Any) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
            if role == "a":
                result = pjc.run_pjc(
                    ch, role="a", ids=[str(r).encode() for r in cohort], params=params
                )
            else:
                result = pjc.run_pjc(
                    ch,
                    role="b",
                    ids=[str(r).encode() for r in records],
                    values=visits,
                    params=params,
                )
            return params.as_dict(), result.public_summary()

        return lambda: _run(w, protocol="pjc", starter=starter, roles=roles, body=body)

    started = time.monotonic()
    runs = _together({"Analyst": side(analyst, True, "a"), "PlanNorth": side(north, False, "b")})
    got = runs["Analyst"].learned
    members = set(cohort)
    truth = sum(v for r, v in zip(records, visits, strict=True) if r in members)
    count = sum(1 for r in records if r in members)
    echo(
        f"    Analyst learns: {got['intersection_size']} common records, {got['sum']} visits "
        f"(plaintext check: {count}, {truth}); PlanNorth learns the cohort's size only"
    )
    echo(f"    receipts: {_receipts(runs, started)}")


def _plan_arrays(
    data: Mapping[str, Path], plan: str
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    t = read_table(data[plan])
    x = np.column_stack(
        [np.asarray(t.column(f).to_pylist(), dtype=np.float64) / SCALE[f] for f in FEATURES]
    )
    y = (np.asarray(t.column("mdvis").to_pylist()) > 0).astype(np.float64)
    return x, y


def _federated(who: Mapping[str, _Who], data: Mapping[str, Path], echo: Echo) -> None:
    plans = ("PlanNorth", "PlanCentral", "PlanSouth")
    analyst = who["Analyst"]
    rounds = 10
    echo("\n22. federated logistic regression over secure aggregation: the three plans train")
    echo(f"    'any outpatient visit' on {', '.join(FEATURES)}; Analyst aggregates and sees only")
    echo(f"    sums of fixed-point updates, {rounds} rounds")
    roles = [("aggregator", analyst.identity.party_id)] + [
        (f"o{i + 1}", who[p].identity.party_id) for i, p in enumerate(plans)
    ]
    owners = tuple(r for r, _ in roles[1:])
    config = fedavg.FedAvgConfig(
        aggregator="aggregator",
        owners=owners,
        features=len(FEATURES),
        rounds=rounds,
        learning_rate=1.0,
    )
    arrays = {p: _plan_arrays(data, p) for p in plans}
    kept: dict[str, list[Any]] = {}

    def side(w: _Who, plan: str | None) -> Callable[[], ProtocolRun]:
        def make(s: Session) -> RunFn:
            data = None if plan is None else fedavg.OwnerData(*arrays[plan])
            mine = kept.setdefault(w.name, [])
            return federated_training(
                w.client, s, config=config, features=FEATURES, data=data, kept=mine
            )

        return lambda: _run(
            w, protocol="secagg", starter=plan is None, roles=roles, make=make, dropouts=True
        )

    started = time.monotonic()
    runs = _together({"Analyst": side(analyst, None), **{p: side(who[p], p) for p in plans}})
    model = kept["Analyst"][0].statement
    x_all = np.vstack([arrays[p][0] for p in plans])
    y_all = np.concatenate([arrays[p][1] for p in plans])
    ref_w, ref_b = fedavg.fit_centralized(x_all, y_all, rounds=rounds, learning_rate=1.0)
    fed = [float(v) for v in model.model.weights] + [float(model.model.intercept)]
    diff = max(abs(a - b) for a, b in zip(fed, [*ref_w, ref_b], strict=True))
    echo(f"    model statement {runs['Analyst'].learned['model'][:23]}... signed by Analyst:")
    for name, wgt in zip(FEATURES, model.model.weights, strict=True):
        echo(f"      {name:>10} {float(wgt):+.4f}")
    echo(f"      {'intercept':>10} {float(model.model.intercept):+.4f}")
    echo(f"    same gradient descent on the pooled rows: largest difference {diff:.1e}")
    echo(f"    receipts: {_receipts(runs, started)}; each owner's receipt commits to the model")


def _homomorphic(who: Mapping[str, _Who], data: Mapping[str, Path], echo: Echo) -> None:
    analyst = who["Analyst"]
    owners_names = ("PlanNorth", "PlanSouth")
    rounds = 4
    params = he.HeParams(
        model="logistic",
        features=len(FEATURES),
        rounds=rounds,
        learning_rate="1",
        owners=("o1", "o2"),
    )
    echo("\n23. homomorphic training (CKKS): Analyst encrypts the weights, PlanNorth and PlanSouth")
    echo("    each compute an encrypted gradient on their rows and add it along a chain; only the")
    echo(f"    sum reaches Analyst, who decrypts it, {rounds} rounds")
    roles = [("trainer", analyst.identity.party_id)] + [
        (f"o{i + 1}", who[p].identity.party_id) for i, p in enumerate(owners_names)
    ]
    arrays = {p: _plan_arrays(data, p) for p in owners_names}
    kept: dict[str, list[Any]] = {}

    def side(w: _Who, plan: str | None) -> Callable[[], ProtocolRun]:
        def make(s: Session) -> RunFn:
            data = None if plan is None else arrays[plan]
            mine = kept.setdefault(w.name, [])
            return he_training(w.client, s, params=params, features=FEATURES, data=data, kept=mine)

        return lambda: _run(w, protocol="he", starter=plan is None, roles=roles, make=make)

    started = time.monotonic()
    runs = _together({"Analyst": side(analyst, None), **{p: side(who[p], p) for p in owners_names}})
    model = kept["Analyst"][0].statement
    reference = he.train_plaintext(params, [arrays[p] for p in owners_names])
    enc = [float(v) for v in model.model.weights] + [float(model.model.intercept)]
    diff = max(
        abs(a - b) for a, b in zip(enc, [*reference.weights, reference.intercept], strict=True)
    )
    echo(f"    model statement {runs['Analyst'].learned['model'][:23]}... signed by Analyst;")
    echo(f"    the same descent in plaintext differs by at most {diff:.1e} (CKKS precision)")
    echo(f"    receipts: {_receipts(runs, started)}")
