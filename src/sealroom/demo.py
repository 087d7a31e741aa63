"""``sealroom demo``: the reference scenario, end to end, with real processes on loopback.

A coordinator (``sealroom serve``, SQLite in a temporary directory) and a
mediator enclave (``sealroom enclave``, SIMULATED) run as separate processes.
Four parties act through the SDK exactly as an agent would: amiller publishes a
TEE-development log with a policy that approves topic overlaps automatically;
CloudMolty finds it by search and asks for a topic overlap through the seed's
``/compute/keyword-overlap`` call; NewbieMolty asks for a gap analysis, which
amiller approves by hand; every recipient opens its result and verifies its
receipt offline; an auditor re-verifies each proof bundle from files alone.

Act two runs the statistics library on real public data shipped with
statsmodels (read offline, written to CSV in the temporary directory and
split between owners): a lift of a teaching method on grades (``spector``,
split by columns), visit statistics by self-rated health over three health
plans' rows of the RAND Health Insurance Experiment (``randhie``, split by
rows) with a suppressed group, the same with DP noise whose budget a repeated
request exhausts (refused by the budget ledger in the coordinator's log), and
requester SQL that the owner admits or refuses by its analysis rules.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa

from sealroom.attestation.simulated import SIMULATED_BANNER, SimulationRoot
from sealroom.client import Client, DatasetView, FetchedResult, Party, exact_rule
from sealroom.computations import default_registry
from sealroom.connectors.files import read_table
from sealroom.crypto.files import write_private
from sealroom.errors import InvalidInput, PolicyDenied, SealroomError
from sealroom.policy import PolicyRules
from sealroom.policy.sql_rules import analyze
from sealroom.statements import ComputationRequest, Receipt, Transfer, canonical_json
from sealroom.verification.bundle import ProofBundle
from sealroom.verification.trust import trust_policy
from sealroom.verification.verify import BundleRejected, verify_bundle

__all__ = ["dataset_path", "public_data", "run_demo"]

Echo = Callable[[str], None]

AMILLER_POLICY: dict[str, Any] = {
    "allow": [{"id": "topic-overlap"}, {"id": "gap-analysis"}],
    "auto_approve": [{"id": "topic-overlap"}],
    "requesters": "any",
    "k": 5,
}
OWN_DATA_POLICY: dict[str, Any] = {
    "allow": [{"id": "topic-overlap"}, {"id": "gap-analysis"}],
    "auto_approve": [{"id": "topic-overlap"}, {"id": "gap-analysis"}],
    "requesters": "any",
    "k": 5,
}


def dataset_path(name: str) -> Path:
    """A scenario dataset shipped with the package (``amiller``, ``cloudmolty``, ``newbiemolty``)."""
    return Path(str(resources.files("sealroom") / "data" / f"{name}.jsonl"))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _process(
    args: Sequence[str], log: Path, env: Mapping[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process that is always stopped (SIGTERM, then SIGKILL) when the block ends."""
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-m", "sealroom.cli", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the coordinator exited ({proc.returncode}):\n{_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/v1/health", timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the coordinator did not answer within {timeout:g} s:\n{_tail(log)}")


def _wait_enclave(client: Client, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the enclave exited ({proc.returncode}):\n{_tail(log)}")
        with contextlib.suppress(SealroomError):
            listed = client.enclaves().enclaves
            if listed:
                return listed[0].evidence
        time.sleep(0.1)
    raise RuntimeError(f"the enclave did not register within {timeout:g} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run_demo(out: Path | None, *, echo: Echo, timeout: float = 60.0) -> int:
    """Run the scenario; with ``out``, leave every result and proof bundle there. Returns 0 on success."""
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if any(out.iterdir()):
            echo(f"error: {out} is not empty; the demo writes fresh results and bundles there")
            return 2
    work = Path(tempfile.mkdtemp(prefix="sealroom-demo-"))
    results_dir = out if out is not None else work / "results"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALROOM_")}
    env["PYTHONUNBUFFERED"] = "1"
    started = time.monotonic()
    try:
        echo(f"sealroom demo (working files in {work})")
        echo(f"!! {SIMULATED_BANNER} !!")
        # The deployment's simulation root: the enclave attests under it, the coordinator
        # admits only enclaves under it (it admits none without an admission policy).
        root = SimulationRoot.generate()
        write_private(work / "simulation-root.seed", root.private_bytes().hex().encode())
        serve_args = ["serve", "--db", f"sqlite:///{work / 'coordinator.db'}", "--port", str(port)]
        serve_args += ["--simulation-root", root.public_key.hex()]
        with _process(serve_args, work / "coordinator.log", env) as coordinator:
            _wait_healthy(url, coordinator, work / "coordinator.log", timeout=120)
            echo(f"\ncoordinator  {url}  (pid {coordinator.pid}, SQLite {work / 'coordinator.db'})")
            enclave_args = ["enclave", "--url", url, "--poll-max", "0.5"]
            enclave_args += ["--state", str(work / "enclave-state")]
            enclave_args += ["--simulation-root-seed", str(work / "simulation-root.seed")]
            with _process(enclave_args, work / "enclave.log", env) as enclave:
                with Client(base_url=url) as anon:
                    evidence = _wait_enclave(anon, enclave, work / "enclave.log", timeout=120)
                echo(
                    f"enclave      pid {enclave.pid}, evidence {evidence[:23]}... (tee: simulated, "
                    "budgets in the coordinator's log)"
                )
                code = _scenario(url, work, results_dir, echo, timeout, root=root.public_key)
        echo(f"\ncoordinator and enclave stopped; {time.monotonic() - started:.1f} s in total")
        if out is not None and code == 0:
            echo(f"results and proof bundles are in {out}; check any of them with")
            echo(
                f"  sealroom verify --allow-simulated --simulation-root {root.public_key.hex()} "
                f"{out}/<name>/bundle.json"
            )
        return code
    except (RuntimeError, SealroomError) as exc:
        detail = exc.diagnostics() if isinstance(exc, SealroomError) else str(exc)
        echo(f"error: the demo failed: {detail}")
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _party(name: str, work: Path, url: str) -> Party:
    # Throwaway keystores in a temporary directory the demo deletes when it ends:
    # unencrypted on purpose, so that the demo runs without a prompt.
    return Party.create(home=work / "homes" / name, name=name, url=url, unencrypted=True)


def _scenario(
    url: str, work: Path, results: Path, echo: Echo, timeout: float, *, root: bytes
) -> int:
    """The acts; ``root`` is the deployment's simulation root (amiller's policy pins it)."""
    parties = {n: _party(n, work, url) for n in ("amiller", "CloudMolty", "NewbieMolty", "auditor")}
    try:
        code = _run(parties, results, echo, timeout, root=root)
        if code != 0:
            return code
    finally:
        for p in parties.values():
            p.close()
    parties = {n: _party(n, work, url) for n in ACT_TWO_PARTIES}
    try:
        code = _act_two(parties, work / "public-data", results, echo, timeout)
        if code != 0:
            return code
    finally:
        for p in parties.values():
            p.close()
    from sealroom.demo_no_trust import act_three  # numpy-heavy protocols: only this act

    names = ("amiller", "CloudMolty", "NewbieMolty", "Analyst", *PLANS)
    logs = {n: dataset_path(n.lower()) for n in ("amiller", "CloudMolty", "NewbieMolty")}
    code = act_three({n: work / "homes" / n for n in names}, logs, url, work / "no-trust", echo)
    if code != 0:
        return code
    parties = {n: _party(n, work, url) for n in ("Seller", "Buyer")}
    try:
        db = work / "coordinator.db"
        return _act_market(parties, db, Path(f"{db}.keys"), echo, timeout)
    finally:
        for p in parties.values():
            p.close()


def _run(
    parties: dict[str, Party], results: Path, echo: Echo, timeout: float, *, root: bytes
) -> int:
    amiller, cloud, newbie = parties["amiller"], parties["CloudMolty"], parties["NewbieMolty"]
    echo("\n1. four parties create their keys and register")
    for p in parties.values():
        echo(f"   {p.name:<12} {p.party_id}")

    echo(
        "\n2. each owner profiles its log locally, commits to it and publishes a signed attestation"
    )
    published = {}
    for party, data, title, description, rules in (
        (
            amiller,
            "amiller",
            "TEE development log (dstack / Phala)",
            "Work notes from building on dstack: remote attestation, reproducible builds, TLS in "
            "TEE, on-chain authorization, KMS and secrets, production debugging.",
            # amiller's data goes only to an enclave under the deployment's root.
            {**AMILLER_POLICY, "enclave": {"simulation_root": root.hex()}},
        ),
        (
            cloud,
            "cloudmolty",
            "GCP confidential VM log",
            "Notes from running confidential VMs on GCP: TDX + TPM dual attestation, SCALE "
            "encoding, cloud APIs.",
            OWN_DATA_POLICY,
        ),
        (
            newbie,
            "newbiemolty",
            "Learning log: getting started with TEEs",
            "A beginner's notes while learning containers, TEEs and attestation.",
            OWN_DATA_POLICY,
        ),
    ):
        pub = party.publish(dataset_path(data), title=title, description=description, policy=rules)
        published[party.name] = pub.dataset
        echo(
            f"   {party.name:<12} {pub.rows:>5} records -> {pub.dataset[:23]}... "
            f"(log index {pub.log_index}, inclusion proof checked)"
        )
    echo("   amiller's policy: allow topic-overlap and gap-analysis, approve topic-overlap")
    echo("   automatically, k = 5: a term counts (on the card too) only if at least 5 distinct")
    echo("   entities use it; the policy names no entity column, so each record is one")

    echo(
        '\n3. CloudMolty searches for "attestation", ranked by keyword Jaccard against its own log'
    )
    page = cloud.search("attestation", similar_to=published["CloudMolty"], limit=5)
    found = next((h for h in page.items if h.dataset.dataset == published["amiller"]), None)
    for hit in page.items:
        jac = f"{hit.jaccard:.3f}" if hit.jaccard is not None else "-"
        echo(f"   jaccard {jac}  {hit.dataset.title}  ({hit.dataset.owner_name})")
    if found is None:
        echo("   error: amiller's dataset was not found")
        return 1
    _card(found.dataset, echo)

    echo("\n4. CloudMolty asks for a topic overlap with the seed's call shape:")
    echo("   POST /v1/compute/keyword-overlap {dataset_a, dataset_b} -> a draft request to sign")
    overlap = cloud.keyword_overlap(published["CloudMolty"], published["amiller"])
    echo(f"   request {overlap.request[:23]}... status {overlap.status}")

    echo("\n5. each owner's client handles its inbox")
    for party in (cloud, amiller):
        for item in party.auto_approve(allow_simulated=True):
            echo(f"   {party.name:<12} {item.action} {item.request[:23]}...: {item.reason}")

    echo("\n6. NewbieMolty asks for a gap analysis of its log against amiller's")
    gap = newbie.request("gap-analysis", [published["amiller"], published["NewbieMolty"]])
    echo(f"   request {gap.request[:23]}... status {gap.status}")
    for item in newbie.auto_approve(allow_simulated=True):
        echo(f"   NewbieMolty  {item.action} {item.request[:23]}...: {item.reason}")
    left = [i for i in amiller.auto_approve(allow_simulated=True) if i.request == gap.request]
    echo(f"   amiller's policy leaves it for a person: {left[0].reason if left else '-'}")
    for a in amiller.approve(
        gap.request,
        allow_simulated=True,
        reason="a beginner's gap analysis reveals only my topic counts; fine",
    ):
        echo(f"   amiller      approved by hand ({a.mode}) and sealed its data to the enclave")

    echo("\n7. the enclave runs both jobs (verifies every statement, unseals, checks commitments,")
    echo("   applies k, seals each result to its recipients, signs a receipt)")
    for req in (overlap.request, gap.request):
        view = (cloud if req == overlap.request else newbie).wait(req, timeout=timeout)
        echo(
            f"   {req[:23]}... {view.status}"
            + (f": {view.status_reason}" if view.status_reason else "")
        )
        if view.status != "completed":
            return 1

    echo("\n8. recipients open and verify their results (receipt, evidence, log proofs)")
    fetched: dict[str, FetchedResult] = {}
    for label, party, req in (
        ("overlap-cloudmolty", cloud, overlap.request),
        ("overlap-amiller", amiller, overlap.request),
        ("gap-newbiemolty", newbie, gap.request),
    ):
        res = party.result(req, results / label, allow_simulated=True)
        fetched[label] = res
        echo(
            f"   {party.name:<12} VERIFIED {len(res.report.checks)} checks (SIMULATED TEE) -> {label}/"
        )
    if fetched["overlap-cloudmolty"].output.body != fetched["overlap-amiller"].output.body:
        echo("   error: the two overlap recipients got different results")
        return 1
    echo("   CloudMolty and amiller received the same overlap result")
    try:
        newbie.client.result(overlap.request)
    except SealroomError as exc:
        echo(
            f"   NewbieMolty asking for the overlap result gets: {exc.public_message} [{exc.code}]"
        )

    echo("\n   topic overlap (CloudMolty x amiller):")
    _show(fetched["overlap-cloudmolty"].body, echo)
    echo("\n   gap analysis (NewbieMolty against amiller), only NewbieMolty receives it:")
    _show(fetched["gap-newbiemolty"].body, echo)

    echo("\n9. the auditor verifies every bundle from the files alone (no network), with the")
    echo("   deployment's simulation root pinned (amiller's policy pins it too: 'enclave pins')")
    trust = trust_policy(allow_simulated=True, simulation_root=root)
    for label, res in fetched.items():
        bundle = ProofBundle.from_json(res.bundle_path.read_bytes())
        report = verify_bundle(bundle, trust=trust, outputs=list(bundle.outputs))
        echo(f"   {label:<20} VERIFIED ({len(report.checks)} checks, simulated={report.simulated})")

    echo("\n10. the same bundle with one byte of its receipt changed:")
    tampered = ProofBundle.from_json(_flip_receipt_byte(fetched["gap-newbiemolty"].bundle_path))
    try:
        verify_bundle(tampered, trust=trust, outputs=list(tampered.outputs))
    except BundleRejected as exc:
        for check in exc.report.failures:
            echo(f"   FAIL  {check.name}: {check.detail}")
        echo("   -> rejected, as it must be")
        return 0
    echo("   -> NOT rejected: this is a bug")
    return 1


def _flip_receipt_byte(bundle: Path) -> bytes:
    """Change one character of the base64 receipt payload (keeps the JSON well-formed)."""
    doc = json.loads(bundle.read_bytes())
    payload = doc["receipt"]["payload"]
    i = len(payload) // 2
    doc["receipt"]["payload"] = payload[:i] + ("A" if payload[i] != "A" else "B") + payload[i + 1 :]
    return canonical_json(doc)


def _card(view: DatasetView, echo: Echo) -> None:
    profile = view.profile
    days = profile.get("active_days")
    echo("   the card CloudMolty sees (never the raw logs):")
    echo(f"     dataset        {view.dataset}")
    echo(f"     owner          {view.owner_name} ({view.owner[:16]}...)")
    echo(f"     topics         {', '.join(view.topics)}")
    echo(
        f"     volume         {view.row_count} records, {profile.get('projects')} projects, "
        f"{days} active days"
    )
    echo(f"     primary focus  {profile.get('primary_focus')}")
    echo(f"     key expertise  {', '.join(profile.get('expertise', []))}")
    words = ", ".join(f"{k.term} ({k.count})" for k in view.keywords[:12])
    echo(f"     keywords       {words}")


def _show(body: Any, echo: Echo, indent: str = "     ") -> None:
    if not isinstance(body, dict):
        echo(indent + json.dumps(body))
        return
    for key, value in body.items():
        if isinstance(value, list) and len(value) > 8:
            shown = json.dumps(value[:8]) + f" ... (+{len(value) - 8})"
        else:
            shown = json.dumps(value)
        echo(f"{indent}{key}: {shown}")


# --- act two: statistics on real public data ---------------------------------------------------

ACT_TWO_PARTIES = ("Course", "Registrar", "PlanNorth", "PlanCentral", "PlanSouth", "Analyst")
PLANS = ("PlanNorth", "PlanCentral", "PlanSouth")
COURSE_POLICY: dict[str, Any] = {
    # "allow" is the exact lift below, with the partner's file pinned (_act_two).
    "auto_approve": [{"id": "lift"}],
    "requesters": "any",
    "k": 3,
    "entity_column": "student",
    "join_only": ["student"],
}
PLAN_POLICY: dict[str, Any] = {
    # "allow": aggregate-stats with DP or exactly by health, and one exact SQL text (_act_two).
    "auto_approve": [{"id": "aggregate-stats"}],
    "requesters": "any",
    "k": 50,
    "entity_column": "record",
    "dp": {
        "epsilon_per_requester": "1.5",
        "epsilon_total": "3",
        "delta_per_requester": "0.000002",
        "delta_total": "0.00001",
    },
    "sql": {
        "aggregations": ["count", "avg", "sum"],
        "aggregate_columns": ["mdvis"],
        "dimension_columns": ["health", "idp"],
        "filter_columns": ["health", "idp"],
        "identity_columns": ["record"],
    },
}
STATS_PARAMS: dict[str, Any] = {"value": "mdvis", "group_by": ["health"], "percentiles": [50]}
DP_PARAMS: dict[str, Any] = {
    **STATS_PARAMS,
    # One record per person (the record number is the entity): one row in one group each.
    "dp": {"epsilon": "1", "delta": "0.000001", "lower": "0", "upper": "30"},
}
SQL_ADMITTED = (
    "SELECT health, COUNT(*) AS records, AVG(mdvis) AS mean_visits FROM a "
    "GROUP BY health ORDER BY health"
)
LIFT_PARAMS: dict[str, Any] = {
    "key_exposure": "student",
    "key_conversions": "student",
    "group": "method",
    "test_value": "PSI",
    "control_value": "traditional",
    "conversion": "improved",
}
SQL_DIFFERENCING = (
    "SELECT health, COUNT(*) AS records, AVG(mdvis) AS mean_visits FROM a "
    "WHERE record <> 7001 GROUP BY health ORDER BY health"
)


def public_data() -> dict[str, pa.Table]:
    """Two public datasets shipped with statsmodels, split between the act-two owners.

    ``spector`` (Spector & Mazzeo 1980: 32 students, whether they were taught
    with the PSI method and whether their grade improved) is split by columns
    between the course and the registrar; ``randhie`` (the RAND Health
    Insurance Experiment, 20,190 person-years) is split by rows into three
    contiguous thirds, one per health plan, with self-rated health as one
    label and a record number as the entity (the data carry no person id).
    """
    import numpy as np
    import statsmodels.api as sm  # heavy: only the demo's second act needs it

    spector = sm.datasets.spector.load_pandas().data
    students = pa.array(np.arange(1, len(spector) + 1))
    rand = sm.datasets.randhie.load_pandas().data
    health = np.select(
        [rand["hlthp"] == 1, rand["hlthf"] == 1, rand["hlthg"] == 1],
        ["poor", "fair", "good"],
        default="excellent",
    )
    records = pa.table(
        {
            "record": np.arange(1, len(rand) + 1),
            "health": health.tolist(),
            "mdvis": rand["mdvis"].round().astype("int64").to_numpy(),
            "idp": rand["idp"].round().astype("int64").to_numpy(),
        }
    )
    n = records.num_rows
    cuts = (0, n // 3, 2 * n // 3, n)
    frames: dict[str, pa.Table] = {
        "Course": pa.table(
            {
                "student": students,
                "method": np.where(spector["PSI"] == 1, "PSI", "traditional").tolist(),
            }
        ),
        "Registrar": pa.table({"student": students, "improved": (spector["GRADE"] == 1).tolist()}),
    }
    for plan, lo, hi in zip(PLANS, cuts[:-1], cuts[1:], strict=True):
        frames[plan] = records.slice(lo, hi - lo)
    return frames


def _write_csv(table: pa.Table, path: Path) -> None:
    """Plain CSV (booleans as true/false), as an owner would export it."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(table.column_names)
        for row in table.to_pylist():
            writer.writerow([str(v).lower() if isinstance(v, bool) else v for v in row.values()])


def _act_two(
    parties: dict[str, Party], data_dir: Path, results: Path, echo: Echo, timeout: float
) -> int:
    course, registrar, analyst = parties["Course"], parties["Registrar"], parties["Analyst"]
    plans = [parties[p] for p in PLANS]
    central = parties["PlanCentral"]
    echo("\n" + "=" * 92)
    echo("ACT TWO: statistics on real public data (datasets bundled with statsmodels, offline)")
    echo("=" * 92)
    echo("\n11. six more parties register; each owner writes its share of a public dataset to CSV")
    data_dir.mkdir(parents=True, exist_ok=True)
    frames = public_data()
    paths: dict[str, Path] = {}
    for name, frame in frames.items():
        paths[name] = data_dir / f"{name.lower()}.csv"
        _write_csv(frame, paths[name])
    described = {
        "Course": ("spector: who was taught with PSI", "Spector & Mazzeo (1980), by columns"),
        "Registrar": ("spector: whose grade improved", "Spector & Mazzeo (1980), by columns"),
        **{
            p: (f"randhie: {p[4:].lower()} third", "RAND Health Insurance Experiment, by rows")
            for p in PLANS
        },
    }
    registry = default_registry()
    plan_rules = {
        **PLAN_POLICY,
        "allow": [
            exact_rule(registry.get("aggregate-stats"), STATS_PARAMS, dp="optional"),
            exact_rule(registry.get("sql-aggregate"), {"sql": SQL_ADMITTED}),
        ],
    }
    rules_of = {
        "Course": {
            **COURSE_POLICY,
            "allow": [exact_rule(registry.get("lift"), LIFT_PARAMS, partners=[paths["Registrar"]])],
        },
        "Registrar": {
            **COURSE_POLICY,
            "allow": [exact_rule(registry.get("lift"), LIFT_PARAMS, partners=[paths["Course"]])],
        },
        **dict.fromkeys(PLANS, plan_rules),
    }
    published: dict[str, str] = {}
    for name, (title, source) in described.items():
        party = parties[name]
        pub = party.publish(
            paths[name],
            title=title,
            description=f"{source}; statsmodels.api.datasets",
            policy=rules_of[name],
        )
        published[name] = pub.dataset
        echo(f"   {name:<12} {pub.rows:>5} rows  {title:<36} -> {pub.dataset[:23]}...")
    echo(f"   Analyst      {analyst.party_id} (requests only)")
    echo("   Course, Registrar: auto-approve one exact lift (its columns and the other's file")
    echo("   pinned by content root); k = 3 distinct students per cell")
    echo("   each plan: auto-approve aggregate-stats, with DP or exactly by health; review by hand")
    echo("   one pinned SQL text; k = 50 distinct records; DP budget epsilon 1.5 per requester")
    echo("   (3 in all); any other exact question is refused before anyone is asked")

    echo("\n12. requests: Course asks for the lift of PSI on grades; Analyst asks for visit")
    echo("    statistics by self-rated health over all three plans, exact and with DP, and two")
    echo("    SQL queries on PlanCentral's records")
    plan_ds = [published[p] for p in PLANS]
    lift = course.request("lift", [published["Course"], published["Registrar"]], LIFT_PARAMS)
    stats = analyst.request("aggregate-stats", plan_ds, STATS_PARAMS)
    dp = analyst.request("aggregate-stats", plan_ds, DP_PARAMS)
    sql_ok = analyst.request("sql-aggregate", [published["PlanCentral"]], {"sql": SQL_ADMITTED})
    sql_diff = analyst.request(
        "sql-aggregate", [published["PlanCentral"]], {"sql": SQL_DIFFERENCING}
    )
    for label, view in (
        ("lift", lift),
        ("aggregate-stats", stats),
        ("aggregate-stats + DP", dp),
        ("sql-aggregate", sql_ok),
        ("sql-aggregate", sql_diff),
    ):
        echo(f"   {label:<21} {view.request[:23]}... {view.status}")

    echo("   the SQL excluding one record was refused at once, before any owner was asked:")
    for line in textwrap.wrap(sql_diff.status_reason or "", width=86, break_on_hyphens=False):
        echo(f"     {line}")
    if sql_diff.status != "rejected":
        return 1

    echo("\n13. owners' clients: policies approve lift and aggregate-stats; PlanCentral reviews")
    echo("    the pinned SQL text against its own rules and schema (sql_rules.analyze)")
    for party in (course, registrar, *plans):
        done = party.auto_approve(allow_simulated=True)
        approved = [i for i in done if i.action == "approved"]
        left = [i for i in done if i.action == "left"]
        echo(
            f"   {party.name:<12} approved {len(approved)} by policy and sealed its data"
            + (f"; left {len(left)} for review" if left else "")
        )
    select, _, rest = SQL_ADMITTED.partition(" FROM ")
    echo(f"   PlanCentral  reviews: {select}")
    echo(f"                         FROM {rest}")
    verdict = _review_sql(central, sql_ok.request, paths["PlanCentral"])
    echo(f"                -> {verdict}")

    echo("\n14. the enclave runs the jobs (budget charged on every plan before the DP run)")
    for req, party in ((lift, course), (stats, analyst), (dp, analyst), (sql_ok, analyst)):
        view = party.wait(req.request, timeout=timeout)
        echo(
            f"   {req.request[:23]}... {view.status}"
            + (f": {view.status_reason}" if view.status_reason else "")
        )
        if view.status != "completed":
            return 1
    echo(f"   {sql_diff.request[:23]}... rejected (never reached an owner or the enclave)")

    owners = {digest: name for name, digest in published.items()}
    fetched: dict[str, FetchedResult] = {}
    for label, party, req in (
        ("lift-course", course, lift),
        ("stats-analyst", analyst, stats),
        ("stats-dp-analyst", analyst, dp),
        ("sql-analyst", analyst, sql_ok),
    ):
        fetched[label] = party.result(req.request, results / label, allow_simulated=True)

    echo("\n15. did the PSI teaching method raise grades? (lift; Course and Registrar receive it)")
    _show_lift(fetched["lift-course"].body, echo)
    _show_receipt(fetched["lift-course"], echo, owners)

    echo("\n16. outpatient visits by self-rated health, over the three plans' records")
    _show_stats(fetched["stats-analyst"].body, echo)
    small = {p: frames[p].column("health").to_pylist().count("poor") for p in PLANS}
    echo(
        f"     (the poor-health group has {sum(small.values())} records, but PlanCentral holds "
        f"only {small['PlanCentral']} < k = {PLAN_POLICY['k']}: it could subtract its own)"
    )
    _show_receipt(fetched["stats-analyst"], echo, owners)

    echo("\n17. the same with differential privacy (OpenDP; epsilon 1 charged before the run)")
    _show_stats(fetched["stats-dp-analyst"].body, echo)
    _show_receipt(fetched["stats-dp-analyst"], echo, owners)
    again = analyst.request("aggregate-stats", plan_ds, DP_PARAMS)
    for party in plans:
        party.auto_approve(allow_simulated=True)
    view = analyst.wait(again.request, timeout=timeout)
    echo(f"   Analyst asks for the DP statistics again: {view.status}")
    echo(f"     {view.status_reason}")
    if view.status != "failed" or "budget:" not in (view.status_reason or ""):
        return 1

    echo("\n18. sql-aggregate on PlanCentral's records (only Analyst receives it)")
    _show_sql(fetched["sql-analyst"].body, echo)
    _show_receipt(fetched["sql-analyst"], echo, owners)

    echo("\n19. the auditor verifies every act-two bundle from the files alone (no network)")
    trust = trust_policy(allow_simulated=True)
    for label, res in fetched.items():
        bundle = ProofBundle.from_json(res.bundle_path.read_bytes())
        report = verify_bundle(bundle, trust=trust, outputs=list(bundle.outputs))
        echo(f"   {label:<20} VERIFIED ({len(report.checks)} checks, simulated={report.simulated})")
    return 0


def _review_sql(owner: Party, request_id: str, data: Path) -> str:
    """The owner's check of requester SQL before approving: its rules, its schema, no data read."""
    view = owner.status(request_id)
    sql = view.envelope.open(ComputationRequest).statement.parameters.get("sql")
    rules = PolicyRules.parse(PLAN_POLICY)
    try:
        if not isinstance(sql, str):
            raise InvalidInput("the request carries no SQL text")
        analyze(
            sql,
            inputs={"a": (read_table(data).schema, rules.sql)},
            max_output_rows=rules.max_output_rows,
        )
    except (PolicyDenied, InvalidInput) as exc:
        detail = exc.detail or exc.public_message
        owner.reject(request_id, reason=detail)
        return f"refused and rejected: {detail}"
    owner.approve(request_id, allow_simulated=True, reason="the SQL passes my SQL analysis rules")
    return "admitted; approved by hand and sealed its data to the enclave"


def _show_receipt(res: FetchedResult, echo: Echo, names: Mapping[str, str]) -> None:
    bundle = ProofBundle.from_json(res.bundle_path.read_bytes())
    receipt = bundle.receipt.open(Receipt).statement
    ks = sorted({(d.k, d.entity_column or "rows") for d in receipt.decisions})
    auto = sum(d.automatic for d in receipt.decisions)
    spent = [c for c in receipt.privacy_spent if c.epsilon != "0" or c.delta != "0"]
    spent_text = (
        ", ".join(
            f"epsilon {c.epsilon} delta {c.delta} on {names.get(c.dataset, c.dataset)}"
            for c in spent
        )
        if spent
        else "none"
    )
    echo(
        f"   receipt VERIFIED ({len(res.report.checks)} checks): decisions on "
        f"{len(receipt.decisions)} input(s) ({auto} automatic; "
        + ", ".join(f"k={k} distinct {e}" for k, e in ks)
        + f"); privacy_spent: {spent_text}"
    )


def _show_lift(body: Any, echo: Echo) -> None:
    for arm in ("test", "control"):
        a = body[arm]
        echo(f"     {arm:<8} n {a['n']:>3}  improved {a['conversions']:>3}  rate {a['rate']}")
    echo(
        f"     absolute lift {body['absolute_lift']} "
        f"[{body['absolute_ci_low']}, {body['absolute_ci_high']}], relative lift "
        f"{body['relative_lift']}, z {body['z']}, p {body['p_value']}"
    )
    echo(f"     {body['insight']}")


def _show_stats(body: Any, echo: Echo) -> None:
    dp = body.get("dp")
    for g in body["groups"]:
        s = g["stats"]
        median = next((p["value"] for p in s["percentiles"] if p["p"] == 50), None)
        label = "/".join(str(k) for k in g["key"])
        if dp is None:
            echo(
                f"     {label:<10} records {s['rows']:>5}  "
                f"mean visits {s['mean']} [{s['ci_low']}, {s['ci_high']}]  median {median}"
            )
        else:
            echo(
                f"     {label:<10} records ~{s['rows']:>5}  mean visits ~{s['mean']}  "
                f"median ~{median}"
            )
    o = body["overall"]
    if dp is None:
        echo(
            f"     suppressed groups: {body['suppressed_groups']}; over released groups: "
            f"records {o['rows']}, mean visits {o['mean']}"
        )
        return
    echo(f"     over released groups: records ~{o['rows']}, visits ~{o['sum']}")
    echo(
        f"     DP: epsilon {dp['epsilon']} split {dp['epsilon_per_statistic'][:6]} per "
        f"statistic ({', '.join(dp['statistics'])}), each calibrated at "
        f"{dp['max_rows_per_entity']} row(s) in {dp['max_groups_per_entity']} group(s) per "
        f"record; visits clamped to [{dp['lower']}, {dp['upper']}]"
    )
    echo(
        f"     groups appear only if their noisy count reaches {dp['threshold']} (delta "
        f"{dp['delta']}): nothing is suppressed, no count is exact"
    )


def _show_sql(body: Any, echo: Echo) -> None:
    echo(f"     {' | '.join(body['columns'])}")
    for row in body["rows"]:
        echo(f"     {' | '.join(str(v) for v in row)}")
    thresholds = [r for r in body["rules_checked"] if r.startswith("entity-threshold")]
    echo(
        f"     {len(body['rules_checked'])} rules checked; "
        + "; ".join(t.removeprefix("entity-threshold: ") for t in thresholds)
    )


MARKET_POLICY = {
    "allow": [{"id": "topic-overlap"}],
    "auto_approve": [{"id": "topic-overlap"}],
    "k": 3,
}


def _act_market(parties: dict[str, Party], db: Path, keys: Path, echo: Echo, timeout: float) -> int:
    """Credits: the operator grants (``db`` and ``keys`` are the coordinator's database and keys
    directory), an owner offers terms, a requester accepts and pays through escrow, the receipt
    settles it, and the balances recompute from the log."""
    from sealroom.client import flows
    from sealroom.coordinator.credits import audit, operator_credits
    from sealroom.coordinator.keys import CoordinatorKeystore
    from sealroom.storage.engine import create_engine
    from sealroom.wire.credits import account_of

    seller, buyer = parties["Seller"], parties["Buyer"]
    echo("\n" + "=" * 92)
    echo("ACT FOUR: the marketplace: credits, negotiated terms, escrow and settlement")
    echo("=" * 92)
    sold = seller.publish(
        dataset_path("newbiemolty"), title="Onboarding log (for sale)", policy=MARKET_POLICY
    ).dataset
    mine = buyer.publish(
        dataset_path("cloudmolty"), title="Buyer's own log", policy=MARKET_POLICY
    ).dataset
    url = f"sqlite:///{db}"
    engine = create_engine(url)
    try:
        ops = operator_credits(engine, CoordinatorKeystore(directory=keys), "sealroom.local/log")
        ops.grant(buyer.party_id, 500, key="demo-welcome", memo="welcome credits", now=buyer.now())
        echo("\nA. the operator grants Buyer 500 credits (a signed, logged transfer)")
        offer = flows.offer(
            seller.client,
            seller.identity,
            sold,
            "topic-overlap",
            price=120,
            usage_bonus=10,
            requester=buyer.party_id,
            now=seller.now(),
        )
        echo("B. Seller offers its log to Buyer for topic-overlap: price 120, usage bonus 10")
        accepted = flows.accept(
            buyer.client, buyer.identity, offer.envelope.digest, now=buyer.now()
        )
        quote = buyer.client.quote(
            "topic-overlap", {"top": 10}, [sold, mine], [buyer.party_id], [accepted]
        )
        echo(f"C. Buyer accepts and quotes before signing: price {quote.price} (negotiated)")
        req = buyer.request("topic-overlap", [sold, mine], {"top": 10}, terms=[accepted])
        for party in (seller, buyer):
            party.auto_approve(allow_simulated=True)
        view = buyer.wait(req.request, timeout=timeout)
        if view.status != "completed":
            echo(f"error: the paid request ended {view.status}: {view.status_reason}")
            return 1
        b, s_ = buyer.client.credits(), seller.client.credits()
        echo(
            f"D. approved: {quote.price} escrowed; the receipt is logged: settled. Buyer "
            f"{b.balance}, Seller {s_.balance} credits"
        )
        kinds = [t.envelope.open(Transfer).statement.kind for t in b.transfers]
        echo(f"   Buyer's transfers: {', '.join(kinds)} (each a salted commitment in the log)")
        recomputed, stored = audit(engine, ops.ledger.identity.public)
        if dict(recomputed.accounts) != stored or stored.get(account_of(seller.party_id)) != 130:
            echo("error: the balances recomputed from the log differ from the database")
            return 1
        echo(
            f"E. audit: {recomputed.transfers} transfers recomputed from the log equal the "
            "database's balances; all accounts sum to zero"
        )
    finally:
        engine.dispose()
    return 0
