"""Act three of ``sealroom demo``: parties who trust no enclave run protocols between themselves.

Everything goes through the same coordinator, now only as a relay of sealed,
signed messages; every run ends with each party holding all participants'
signed receipts, verified. Parties run in threads of this process, each with
its own keystore and HTTP client, exactly as separate programs would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from sealroom.client import Party, ProtocolRun
from sealroom.connectors.files import read_table
from sealroom.connectors.profile import profile_table
from sealroom.errors import ProtocolError, SealroomError
from sealroom.protocols import fedavg, he, psi
from sealroom.statements import TrainedModel

__all__ = ["act_three"]

Echo = Callable[[str], None]
# Public scaling constants for the randhie features (so CKKS sums stay in range).
FEATURES = ("idp", "lncoins", "physlm", "disea")
SCALE = {"idp": 1.0, "lncoins": 4.61, "physlm": 1.0, "disea": 58.6}


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


def _model(run: ProtocolRun) -> TrainedModel:
    """The model statement the trainer signed (every owner checked it against the run)."""
    if run.model is None:
        raise ProtocolError("the training run ended without a model statement")
    return run.model.statement


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
    who = {name: Party.open(home=home, url=url) for name, home in homes.items()}
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
            w.close()


def _keywords(path: Path) -> list[str]:
    return [
        t for t, _ in profile_table(read_table(path), k=1, max_keywords=psi.KEYWORD_MAX).keywords
    ]


def _discovery(who: Mapping[str, Party], data: Mapping[str, Path], echo: Echo) -> None:
    amiller, cloud, newbie = who["amiller"], who["CloudMolty"], who["NewbieMolty"]
    echo("\n20. private discovery, before any request: amiller and CloudMolty compare their")
    echo("    FULL keyword sets (not just the 30 on each public card) by PSI (cardinality);")
    echo("    each learns the overlap and the other's set size, never a keyword")
    sets = {n: _keywords(data[n]) for n in ("amiller", "CloudMolty", "NewbieMolty")}

    def side(w: Party, other: Party, *, starts: bool, k: int) -> Callable[[], ProtocolRun]:
        terms = sets[w.name]
        if starts:
            return lambda: w.psi(
                keywords=terms, threshold=k, start_with=[other.party_id], timeout=120
            )
        return lambda: w.psi(
            keywords=terms, threshold=k, join=True, expect=[other.party_id], timeout=120
        )

    started = time.monotonic()
    runs = _together(
        {
            "amiller": side(amiller, cloud, starts=True, k=0),
            "CloudMolty": side(cloud, amiller, starts=False, k=0),
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
    try:
        _together(
            {
                "NewbieMolty": side(newbie, amiller, starts=True, k=1000),
                "amiller": side(amiller, newbie, starts=False, k=1000),
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


def _intersection_sum(who: Mapping[str, Party], data: Mapping[str, Path], echo: Echo) -> None:
    analyst, north = who["Analyst"], who["PlanNorth"]
    cohort, records, visits = _cohort_and_visits(data)
    echo("\n21. private intersection-sum (Private Join and Compute): Analyst holds a cohort of")
    echo(
        f"    {len(cohort)} record numbers, PlanNorth its {len(records)} records with visit counts;"
    )
    echo("    Analyst learns how many of its cohort PlanNorth holds and their total visits only")

    def analyst_side() -> ProtocolRun:
        ids = [str(r).encode() for r in cohort]
        return analyst.pjc(
            ids, start_with=[north.party_id], min_intersection=50, max_value=1000, timeout=120
        )

    def north_side() -> ProtocolRun:
        ids = [str(r).encode() for r in records]
        return north.pjc(
            ids,
            visits,
            join=True,
            expect=[analyst.party_id],
            min_intersection=50,
            max_value=1000,
            timeout=120,
        )

    started = time.monotonic()
    runs = _together({"Analyst": analyst_side, "PlanNorth": north_side})
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


def _federated(who: Mapping[str, Party], data: Mapping[str, Path], echo: Echo) -> None:
    plans = ("PlanNorth", "PlanCentral", "PlanSouth")
    analyst = who["Analyst"]
    rounds = 10
    echo("\n22. federated logistic regression over secure aggregation: the three plans train")
    echo(f"    'any outpatient visit' on {', '.join(FEATURES)}; Analyst aggregates and sees only")
    echo(f"    sums of fixed-point updates, {rounds} rounds")
    arrays = {p: _plan_arrays(data, p) for p in plans}

    def side(w: Party, plan: str | None) -> Callable[[], ProtocolRun]:
        return lambda: w.train(
            "federated",
            features=FEATURES,
            data=None if plan is None else arrays[plan],
            start_with=[who[p].party_id for p in plans] if plan is None else (),
            join=plan is not None,
            expect=[analyst.party_id] if plan is not None else (),
            rounds=rounds,
            learning_rate="1",
            timeout=120,
            dropout_timeout=60,
        )

    started = time.monotonic()
    runs = _together({"Analyst": side(analyst, None), **{p: side(who[p], p) for p in plans}})
    model = _model(runs["Analyst"])
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


def _homomorphic(who: Mapping[str, Party], data: Mapping[str, Path], echo: Echo) -> None:
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
    arrays = {p: _plan_arrays(data, p) for p in owners_names}

    def side(w: Party, plan: str | None) -> Callable[[], ProtocolRun]:
        return lambda: w.train(
            "he",
            features=FEATURES,
            data=None if plan is None else arrays[plan],
            start_with=[who[p].party_id for p in owners_names] if plan is None else (),
            join=plan is not None,
            expect=[analyst.party_id] if plan is not None else (),
            model=params.model,
            rounds=rounds,
            learning_rate=params.learning_rate,
            timeout=120,
        )

    started = time.monotonic()
    runs = _together({"Analyst": side(analyst, None), **{p: side(who[p], p) for p in owners_names}})
    model = _model(runs["Analyst"])
    reference = he.train_plaintext(params, [arrays[p] for p in owners_names])
    enc = [float(v) for v in model.model.weights] + [float(model.model.intercept)]
    diff = max(
        abs(a - b) for a, b in zip(enc, [*reference.weights, reference.intercept], strict=True)
    )
    echo(f"    model statement {runs['Analyst'].learned['model'][:23]}... signed by Analyst;")
    echo(f"    the same descent in plaintext differs by at most {diff:.1e} (CKKS precision)")
    echo(f"    receipts: {_receipts(runs, started)}")
