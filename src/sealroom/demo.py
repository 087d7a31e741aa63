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

Act four is a room of three parties from a template: summaries, pre-checks, consents to
the policy snapshot, a withdrawn consent, a dual approval, and an auditor pack.

Act five is the marketplace, every amount through the credits ledger: negotiated terms paid
through escrow and settled on the receipt; a curator's portfolio whose reward is split by its
weights; a model trained in the enclave, published with its provenance and used for pay
through ``predict``; an evaluation and the trainer's reputation; a dispute the arbiter upholds
with a refund; and the operator's audit of every balance from the log.
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
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from sealroom.coordinator.credits import Credits

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
    # One client for every probe: a new one per probe builds a TLS context each time, which
    # competes for the CPU with the coordinator that is starting up.
    with httpx.Client(timeout=1.0) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the coordinator exited ({proc.returncode}):\n{_tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if http.get(f"{url}/v1/health").status_code == 200:
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
    parties = {n: _party(n, work, url) for n in ROOM_PARTIES}
    try:
        code = _act_rooms(parties, work / "room-data", results, echo, timeout, root=root)
        if code != 0:
            return code
    finally:
        for p in parties.values():
            p.close()
    parties = {n: _party(n, work, url) for n in MARKET_PARTIES}
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


# --- the rooms act -------------------------------------------------------------------------

ROOM_PARTIES = (
    "Brand",
    "Retailer",
    "Publisher",
    "Retailer-Ann",
    "Retailer-Raj",
    "Publisher-Pia",
    "Publisher-Pat",
)
ROOM_OWNER_POLICY: dict[str, Any] = {
    "allow": [{"id": "intersection-overlap"}],
    "auto_approve": [{"id": "intersection-overlap"}],
    "k": 5,
    "dp": {"epsilon_per_requester": "10", "epsilon_total": "10"},
}
ROOM_RUN: dict[str, Any] = {"dp": {"epsilon": "1"}}


def _act_rooms(
    parties: dict[str, Party],
    data_dir: Path,
    results: Path,
    echo: Echo,
    timeout: float,
    *,
    root: bytes | None = None,
) -> int:
    """A room of three parties from invitation to run: a one-page summary read before a
    pre-checked join and consent, a run approved by the room's policy, a withdrawn consent
    that stops a run about to start, a risky room whose runs need two approvers of each data
    party, and an auditor pack of the room verified offline (``root``: the deployment's
    simulation root the auditor pins; None: taken from the evidence, with a warning)."""
    brand, retailer, publisher = parties["Brand"], parties["Retailer"], parties["Publisher"]
    members = {"Retailer": retailer, "Publisher": publisher}
    echo("\n" + "=" * 92)
    echo("ACT FOUR: a room (a template, invitations, consents, approvals, a withdrawal)")
    echo("=" * 92)
    data_dir.mkdir(parents=True, exist_ok=True)
    ids = {"Retailer": range(0, 3000), "Publisher": range(1500, 4500)}
    datasets: dict[str, str] = {}
    for name, party in members.items():
        path = data_dir / f"{name.lower()}.csv"
        path.write_text("id,visits\n" + "".join(f"{i},{i % 9}\n" for i in ids[name]))
        datasets[name] = party.publish(
            path, title=f"{name} customer ids", policy=ROOM_OWNER_POLICY
        ).dataset
    inputs = [datasets["Retailer"], datasets["Publisher"]]

    echo("\n24. Brand hosts a room from the psi-overlap template and invites two parties")
    room = brand.rooms.create(
        name="Shared audience sizing",
        purpose="How many customers Retailer and Publisher share, for a joint campaign.",
        template="psi-overlap",
        k=10,
        expires_at=brand.now() + 3600,
        region=None,
    )
    snap = room.room.statement.snapshot
    echo(f"   room {room.digest[:23]}...  policy snapshot {snap.digest()[:23]}...")
    echo(
        f"   allowed: {', '.join(q.id for q in snap.allowed_queries)}; k {snap.k}; DP required "
        f"(epsilon {snap.dp.epsilon_per_run} per run, {snap.dp.epsilon_total} in total); "
        f"runs approved by the room policy"
    )
    for name, party in members.items():
        brand.rooms.invite(room.digest, party.party_id)
        summary = party.rooms.summary(room.digest)
        if summary.snapshot_digest != snap.digest():
            echo("   error: the summary is not of the snapshot the room signed")
            return 1
        if name == "Retailer":
            from sealroom.audit.render import render_html
            from sealroom.crypto.files import write_private

            write_private(results / "room-summary.html", render_html(summary).encode("utf-8"))
        echo(
            f"   {name:<10} reads the one-page summary of snapshot "
            f"{summary.snapshot_digest[:23]}... ({len(summary.allowed_queries)} allowed "
            f"query, {summary.privacy_line().split(';')[0]})"
        )
        report = party.rooms.precheck(room.digest, datasets[name])
        echo(
            f"   {name:<10} pre-check (local): {report['entities']} entities >= k "
            f"{report['k']}, {len(report['schema'])} columns, card reveals "
            f"{report['card']['keywords']} keywords -> joins and consents"
        )
        party.rooms.join(room.digest, datasets[name])
        party.rooms.consent(room.digest)

    echo("\n25. Brand starts a run; each member's client approves it under the room policy")
    first = brand.rooms.run(room.digest, "intersection-overlap", inputs, ROOM_RUN)
    for party in members.values():
        party.auto_approve(allow_simulated=True)
    view = brand.wait(first.request, timeout=timeout)
    if view.status != "completed":
        echo(f"   error: the run is {view.status}: {view.status_reason}")
        return 1
    got = retailer.result(first.request, results / "room-overlap", allow_simulated=True)
    echo(f"   overlap (DP) {got.body['overlap']}, true overlap 1500; receipt verified by Retailer")

    echo("\n26. Brand starts a second run; Publisher withdraws consent before it can start")
    pending = brand.rooms.run(room.digest, "intersection-overlap", inputs, ROOM_RUN)
    publisher.rooms.withdraw_consent(room.digest, reason="legal asked to pause")
    stopped = brand.status(pending.request)
    echo(f"   the run is {stopped.status}: {stopped.status_reason}")
    try:
        brand.rooms.run(room.digest, "intersection-overlap", inputs, ROOM_RUN)
        echo("   error: a run started without Publisher's consent")
        return 1
    except PolicyDenied as exc:
        echo(f"   a new run is refused [{exc.code}]: {exc.detail}")
    if stopped.status != "withdrawn":
        return 1

    echo("\n27. a risky room (k below the template's floor): two approvers of each data party")
    for org, people in (
        (retailer, ("Retailer-Ann", "Retailer-Raj")),
        (publisher, ("Publisher-Pia", "Publisher-Pat")),
    ):
        for person in people:
            org.rooms.add_member(parties[person].party_id, "approver")
    risky = brand.rooms.create(
        name="Small-cohort sizing",
        purpose="The overlap with a lower k, for a pilot.",
        template="psi-overlap",
        k=5,
        expires_at=brand.now() + 3600,
    )
    flags = [f.detail for f in brand.rooms.show(risky.digest).view.red_flags]
    echo(f"   red flag recorded: {flags[0] if flags else '(none)'}")
    for name, party in members.items():
        brand.rooms.invite(risky.digest, party.party_id)
        party.rooms.join(risky.digest, datasets[name])
        party.rooms.consent(risky.digest)
    run = brand.rooms.run(risky.digest, "intersection-overlap", inputs, ROOM_RUN)
    parties["Retailer-Ann"].rooms.approve_run(risky.digest, run.request, org=retailer.party_id)
    try:
        retailer.approve(run.request, allow_simulated=True)
        echo("   error: one approver was enough")
        return 1
    except PolicyDenied as exc:
        echo(f"   Retailer-Ann alone: refused [{exc.code}]")
    parties["Retailer-Raj"].rooms.approve_run(risky.digest, run.request, org=retailer.party_id)
    for person in ("Publisher-Pia", "Publisher-Pat"):
        parties[person].rooms.approve_run(risky.digest, run.request, org=publisher.party_id)
    retailer.approve(run.request, allow_simulated=True)
    publisher.approve(run.request, allow_simulated=True)
    view = brand.wait(run.request, timeout=timeout)
    approvers = brand.rooms.show(risky.digest).view.runs[0].approvals
    echo(f"   with two approvers each ({len(approvers)} people signed): the run is {view.status}")
    if view.status != "completed":
        return 1
    code = _room_without_enclave(parties, datasets, echo, timeout)
    if code:
        return code
    return _room_audit(brand, room.digest, results, echo, root=root)


def _room_without_enclave(
    parties: dict[str, Party], datasets: Mapping[str, str], echo: Echo, timeout: float
) -> int:
    """Step 28: a room whose run executes as PSI between the two parties, no enclave: the
    same consent and two-person approvals, a session only the approved run opens, and the
    co-signed receipts logged."""
    from concurrent.futures import ThreadPoolExecutor

    retailer, publisher = parties["Retailer"], parties["Publisher"]
    echo("\n28. Retailer hosts a room that trusts no enclave: the overlap runs as PSI between")
    echo("    the two clients, under the same consent and two-person approvals")
    room = retailer.rooms.create(
        name="Overlap without a TEE",
        purpose="The overlap, computed by the two parties' own clients.",
        template="psi-overlap",
        k=10,
        dp="exact",
        epsilon_per_run=None,
        epsilon_total=None,
        expires_at=retailer.now() + 3600,
        protocols=True,
    ).digest
    retailer.rooms.invite(room, publisher.party_id)
    publisher.rooms.join(room, datasets["Publisher"])
    publisher.rooms.consent(room)
    params = {"mode": "cardinality", "threshold": 10, "max_set_size": 1_000_000}
    run = retailer.rooms.request_protocol(
        room, "psi", [datasets["Retailer"], datasets["Publisher"]], params
    )
    echo(f"   run {run.request[:23]}... names protocol.psi and its code digest; exact, so risky")
    for org, people in (
        (retailer, ("Retailer-Ann", "Retailer-Raj")),
        (publisher, ("Publisher-Pia", "Publisher-Pat")),
    ):
        for person in people:
            parties[person].rooms.approve_run(room, run.request, org=org.party_id)
        org.rooms.approve_protocol(run.request)
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(p.rooms.run_protocol, run.request, key_column="id", timeout=timeout)
            for p in (retailer, publisher)
        ]
        done = [f.result() for f in futures]
    view = retailer.status(run.request)
    echo(
        f"   both learned |A ∩ B| = {done[0].learned['intersection_size']} (and both set "
        f"sizes, nothing else); the run is {view.status}: {view.status_reason}"
    )
    return 0 if view.status == "completed" else 1


def _room_audit(brand: Party, room: str, results: Path, echo: Echo, *, root: bytes | None) -> int:
    """Step 29: the host issues an auditor pack of the first room; an auditor verifies it
    offline (then a pack with one changed byte is refused)."""
    import shutil

    from sealroom.audit.pack import PackRejected, verify_pack
    from sealroom.verification.trust import trust_policy

    echo("\n29. Brand issues an auditor pack of the first room; the auditor verifies it offline")
    out = results / "room-audit-pack"
    shutil.rmtree(out, ignore_errors=True)  # the demo's own output of an earlier run
    manifest = brand.rooms.pack(room, out, valid_for=7 * 86400, purpose="campaign audit")
    kinds = [f.role for f in manifest.files]
    echo(
        f"   {out.name}/: snapshot, {kinds.count('bundle')} run bundle(s), "
        f"{kinds.count('statement')} logged statements (room, policy, invitations, consents "
        "and the withdrawal, deletions), signed by Brand, valid 7 days"
    )
    trust = trust_policy(
        allow_simulated=True, log_key=brand.client.log_key().verifier_key, simulation_root=root
    )
    try:
        report = verify_pack(out, trust=trust, now=brand.now(), issuer=brand.party_id)
    except PackRejected as exc:
        failed = exc.report.failures
        echo(f"   error: the pack did not verify: {failed[0].name}: {failed[0].detail}")
        return 1
    echo(f"   verify-pack: all {len(report.checks)} checks passed (SIMULATED TEE)")
    tampered = results / "room-audit-pack-tampered"
    shutil.rmtree(tampered, ignore_errors=True)
    shutil.copytree(out, tampered)
    snapshot = tampered / "snapshot.json"
    snapshot.write_bytes(snapshot.read_bytes().replace(b'"k":10', b'"k":11', 1))
    try:
        verify_pack(tampered, trust=trust, now=brand.now(), issuer=brand.party_id)
    except PackRejected as exc:
        first = exc.report.failures[0]
        echo(f"   one changed byte (k 10 -> 11 in snapshot.json): REFUSED at {first.name}")
        return 0
    echo("   error: a tampered pack verified")
    return 1


MARKET_PARTIES = ("Seller", "Buyer", "Archive", "Curator", "Trainer")
TRAIN_PARAMS: dict[str, Any] = {
    "layout": "join",
    "id_column": "id",
    "target": "GRADE",
    "features": ["GPA", "TUCE", "PSI"],
    "test_fraction": "0",
}
MARKET_NUMBERS: Mapping[str, int] = MappingProxyType(
    {
        # Act five's amounts, checked by tests/test_demo_market.py.
        "trainer_grant": 300,
        "pledge": 200,
        "fee_bps": 1000,
        "weight_grades": 6000,
        "weight_method": 4000,
        "model_price": 40,
        "disputed": 20,
    }
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
    echo(
        "ACT FIVE: the marketplace: credits, escrow, a portfolio, a paid model, reputation, disputes"
    )
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
        code = _act_market_models(parties, ops, keys, db.parent / "market", echo, timeout)
        if code != 0:
            return code
        recomputed, stored = audit(engine, ops.ledger.identity.public)
        if dict(recomputed.accounts) != stored:
            echo("error: the balances recomputed from the log differ from the database")
            return 1
        echo(
            f"L. audit: all {recomputed.transfers} transfers recomputed from the log equal the "
            "database's balances; all accounts sum to zero"
        )
    finally:
        engine.dispose()
    return 0


def _spector_halves(out: Path) -> dict[str, Path]:
    """spector split by columns for training (grades: Seller, method and outcome: Archive)
    and the first rows without the outcome, the Buyer's own rows to predict on."""
    import numpy as np
    import statsmodels.api as sm  # heavy: only the acts that use public data need it

    df = sm.datasets.spector.load_pandas().data
    ids = np.arange(len(df), dtype=np.int64)
    cols = {"id": ids, **{c: df[c].to_numpy() for c in ("GPA", "TUCE", "PSI", "GRADE")}}
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "grades": pa.table({k: cols[k] for k in ("id", "GPA", "TUCE")}),
        "method": pa.table({k: cols[k] for k in ("id", "PSI", "GRADE")}),
        "rows": pa.table({k: cols[k][:8] for k in ("id", "GPA", "TUCE", "PSI")}),
    }
    paths = {}
    for name, table in tables.items():
        paths[name] = out / f"spector-{name}.csv"
        _write_csv(table, paths[name])
    return paths


def _balances(parties: Mapping[str, Party]) -> dict[str, int]:
    return {n: p.client.credits().balance for n, p in parties.items()}


def _show_balances(echo: Echo, label: str, balances: Mapping[str, int]) -> None:
    shown = ", ".join(f"{n} {b}" for n, b in balances.items())
    echo(f"   {label}: {shown} (sum {sum(balances.values())})")


def _settled(check: Callable[[], bool], timeout: float) -> bool:
    """Settlement follows the completion in the coordinator: poll briefly for it."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _act_market_models(
    parties: Mapping[str, Party],
    ops: Credits,
    keys: Path,
    work: Path,
    echo: Echo,
    timeout: float,
) -> int:
    """A curator's portfolio and a reward split by its weights, a model trained in the enclave
    and published with its provenance, paid use through predict, an evaluation, reputation,
    and a dispute the arbiter upholds with a refund; every amount through the credits ledger."""
    from sealroom.client import market as mk
    from sealroom.coordinator.keys import CoordinatorKeystore

    n = MARKET_NUMBERS
    seller, buyer, archive = parties["Seller"], parties["Buyer"], parties["Archive"]
    curator, trainer = parties["Curator"], parties["Trainer"]
    registry = default_registry()
    files = _spector_halves(work)
    pinned = {
        "grades": exact_rule(registry.get("train-model"), TRAIN_PARAMS, partners=[files["method"]]),
        "method": exact_rule(registry.get("train-model"), TRAIN_PARAMS, partners=[files["grades"]]),
    }
    train_policy = {"auto_approve": [{"id": "train-model"}], "requesters": "any", "k": 3}
    grades = seller.publish(
        files["grades"],
        title="Course grades (spector)",
        policy={**train_policy, "allow": [pinned["grades"]]},
    ).dataset
    method = archive.publish(
        files["method"],
        title="Teaching method and outcome (spector)",
        policy={**train_policy, "allow": [pinned["method"]]},
    ).dataset
    portfolio = curator.curate(
        name="spector, both halves",
        description="grades and teaching method of the same 32 students",
        items=[(grades, n["weight_grades"]), (method, n["weight_method"])],
        fee=n["fee_bps"],
    )
    echo("")
    echo(
        f"F. Curator signs a portfolio: Seller's grades {n['weight_grades']} bp, Archive's "
        f"teaching method {n['weight_method']} bp, curator's fee {n['fee_bps']} bp"
    )
    ops.grant(
        trainer.party_id,
        n["trainer_grant"],
        key="demo-trainer",
        memo="trainer's credits",
        now=trainer.now(),
    )
    before = _balances(parties)
    _show_balances(echo, "balances", before)
    train = trainer.request("train-model", [grades, method], TRAIN_PARAMS)
    pledge = trainer.client.pledge(portfolio.portfolio, train.request, n["pledge"])
    names: dict[str, str] = {p.party_id: name for name, p in parties.items()}
    split = ", ".join(f"{names[s.payee]} {s.amount}" for s in pledge.shares)
    echo(f"G. Trainer asks to train a model on the portfolio and pledges {n['pledge']}: {split}")
    for party in (seller, archive):
        party.auto_approve(allow_simulated=True)
    view = trainer.wait(train.request, timeout=timeout)
    if view.status != "completed":
        echo(f"error: the training request ended {view.status}: {view.status_reason}")
        return 1
    if not _settled(lambda: trainer.client.get_pledge(train.request).status == "paid", timeout):
        echo("error: the portfolio's reward was not paid")
        return 1
    _show_balances(echo, "trained; the reward is split and paid", _balances(parties))
    trainer.result(train.request, work / "trained", allow_simulated=True)
    published = trainer.publish_model(
        work / "trained",
        name="grade model",
        description="logit of GRADE on GPA, TUCE and PSI",
        price=n["model_price"],
    )
    card = published.model
    inputs = ", ".join(i["dataset"][:19] + "..." for i in card.provenance["inputs"])
    code = card.provenance["computation"]
    echo(
        f"H. Trainer publishes {card.name!r} at {card.price} per use; its provenance: the "
        f"train-model receipt {card.provenance['receipts'][0][:19]}..., inputs {inputs}, "
        f"code {code['id']} {code['version']} {code['code_digest'][:19]}...; the weights stay "
        "sealed in a predict-only artifact"
    )
    own_rows = buyer.publish(
        files["rows"],
        title="Buyer's students",
        policy={
            "allow": [{"id": "predict"}],
            "auto_approve": [{"id": "predict"}],
            "requesters": [buyer.party_id],
            "k": 1,
        },
    ).dataset
    use = buyer.predict(card.model, own_rows, id_column="id")
    for party in (trainer, buyer):
        party.auto_approve(allow_simulated=True)
    view = buyer.wait(use.request, timeout=timeout)
    if view.status != "completed":
        echo(f"error: the predict request ended {view.status}: {view.status_reason}")
        return 1
    predictions = buyer.result(use.request, work / "predictions", allow_simulated=True)

    def paid() -> bool:
        return [u.status for u in buyer.client.model_uses(card.model).items] == ["paid"]

    if not _settled(paid, timeout):
        echo("error: the model's use was not paid")
        return 1
    first = predictions.body["predictions"][0]
    echo(
        f"I. Buyer runs predict on its own {predictions.body['rows']} rows, both sealed to the "
        f"enclave (student {first['id']}: {first['value']}); Buyer pays {card.price} to Trainer"
    )
    _show_balances(echo, "balances", _balances(parties))
    evaluation = buyer.evaluate(
        card.model,
        use.request,
        score="0.8",
        summary="sensible probabilities on my students",
        examples=[({k: str(v) for k, v in first.items() if k != "value"}, str(first["value"]))],
    )
    rep = {r.role: r for r in buyer.reputation(trainer.party_id).roles}["trainer"]
    echo(
        f"J. Buyer (a paying user) rates the model 0.8 in a signed evaluation "
        f"{evaluation.evaluation[:19]}...; Trainer's reputation as trainer: {rep.score} "
        f"(weight {rep.weight}: paid use)"
    )
    dispute = buyer.dispute(
        use.request,
        respondent=trainer.party_id,
        amount=n["disputed"],
        reason="two of my students were scored the wrong way round",
    )
    before = _balances(parties)
    arbiter = CoordinatorKeystore(directory=keys).arbiter(create=False)
    with Client(base_url=buyer.url, identity=arbiter) as client:
        done = mk.resolve_dispute(
            client,
            arbiter,
            dispute.dispute,
            outcome="upheld",
            refund=n["disputed"],
            reason="the receipt binds the run; the refund is the disputed amount",
            now=buyer.now(),
        )
    after = _balances(parties)
    rep = {r.role: r for r in buyer.reputation(trainer.party_id).roles}["trainer"]
    echo(
        f"K. Buyer disputes {n['disputed']} of the charge citing the receipt; the arbiter "
        f"upholds it and refunds {done.refund}; Trainer's reputation: {rep.score} "
        f"({rep.upheld_against} upheld against)"
    )
    _show_balances(echo, "before", before)
    _show_balances(echo, "after", after)
    return 0
