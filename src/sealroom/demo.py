"""``sealroom demo``: the reference scenario, end to end, with real processes on loopback.

A coordinator (``sealroom serve``, SQLite in a temporary directory) and a
mediator enclave (``sealroom enclave``, SIMULATED) run as separate processes.
Four parties act through the SDK exactly as an agent would: amiller publishes a
TEE-development log with a policy that approves topic overlaps automatically;
CloudMolty finds it by search and asks for a topic overlap through the seed's
``/compute/keyword-overlap`` call; NewbieMolty asks for a gap analysis, which
amiller approves by hand; every recipient opens its result and verifies its
receipt offline; an auditor re-verifies each proof bundle from files alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from sealroom.client.flows import (
    FetchedResult,
    approve,
    auto_approve,
    fetch_result,
    publish,
    request,
    wait,
)
from sealroom.client.http import Client
from sealroom.client.views import DatasetView, RequestView
from sealroom.computations import default_registry
from sealroom.crypto.keys import Identity
from sealroom.crypto.keystore import Keystore
from sealroom.errors import SealroomError, VerificationFailed
from sealroom.statements import canonical_json, sign_statement
from sealroom.verification.bundle import ProofBundle
from sealroom.verification.trust import trust_policy
from sealroom.verification.verify import BundleRejected, verify_bundle

__all__ = ["dataset_path", "run_demo"]

Echo = Callable[[str], None]

BANNER = "!! SIMULATED ENCLAVE: a software stand-in for Intel TDX; it protects nothing !!"
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


@dataclass(frozen=True, slots=True)
class _Party:
    name: str
    home: Path
    identity: Identity
    client: Client


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
            return client.enclave().evidence
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
        echo(BANNER)
        with _process(
            ["serve", "--db", f"sqlite:///{work / 'coordinator.db'}", "--port", str(port)],
            work / "coordinator.log",
            env,
        ) as coordinator:
            _wait_healthy(url, coordinator, work / "coordinator.log", timeout=30)
            echo(f"\ncoordinator  {url}  (pid {coordinator.pid}, SQLite {work / 'coordinator.db'})")
            with _process(
                ["enclave", "--url", url, "--poll-max", "0.5"], work / "enclave.log", env
            ) as enclave:
                with Client(base_url=url) as anon:
                    evidence = _wait_enclave(anon, enclave, work / "enclave.log", timeout=30)
                echo(
                    f"enclave      pid {enclave.pid}, evidence {evidence[:23]}... (tee: simulated)"
                )
                code = _scenario(url, work, results_dir, echo, timeout)
        echo(f"\ncoordinator and enclave stopped; {time.monotonic() - started:.1f} s in total")
        if out is not None and code == 0:
            echo(f"results and proof bundles are in {out}; check any of them with")
            echo(f"  sealroom verify --allow-simulated {out}/<name>/bundle.json")
        return code
    except (RuntimeError, SealroomError) as exc:
        detail = exc.diagnostics() if isinstance(exc, SealroomError) else str(exc)
        echo(f"error: the demo failed: {detail}")
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _party(name: str, work: Path, url: str) -> _Party:
    home = work / "homes" / name
    identity = Keystore.create(home, name=name)
    client = Client(base_url=url, identity=identity)
    client.register_party(name)
    return _Party(name=name, home=home, identity=identity, client=client)


def _scenario(url: str, work: Path, results: Path, echo: Echo, timeout: float) -> int:
    now = lambda: int(time.time())  # noqa: E731
    parties = {n: _party(n, work, url) for n in ("amiller", "CloudMolty", "NewbieMolty", "auditor")}
    try:
        return _run(parties, results, echo, now, timeout)
    finally:
        for p in parties.values():
            p.client.close()


def _run(
    parties: dict[str, _Party], results: Path, echo: Echo, now: Callable[[], int], timeout: float
) -> int:
    amiller, cloud, newbie = parties["amiller"], parties["CloudMolty"], parties["NewbieMolty"]
    echo("\n1. four parties create their keys and register")
    for p in parties.values():
        echo(f"   {p.name:<12} {p.identity.party_id}")

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
            AMILLER_POLICY,
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
        pub = publish(
            party.client,
            party.identity,
            dataset_path(data),
            title=title,
            description=description,
            policy_rules=rules,
            now=now(),
            home=party.home,
        )
        published[party.name] = pub.dataset
        echo(
            f"   {party.name:<12} {pub.rows:>5} records -> {pub.dataset[:23]}... "
            f"(log index {pub.log_index}, inclusion proof checked)"
        )
    echo("   amiller's policy: allow topic-overlap and gap-analysis, approve topic-overlap")
    echo("   automatically, k = 5 (a term counts only if it occurs in at least 5 records)")

    echo(
        '\n3. CloudMolty searches for "attestation", ranked by keyword Jaccard against its own log'
    )
    page = cloud.client.search("attestation", similar_to=published["CloudMolty"], limit=5)
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
    overlap = _keyword_overlap(cloud, published["CloudMolty"], published["amiller"], now())
    echo(f"   request {overlap.request[:23]}... status {overlap.status}")

    echo("\n5. each owner's client handles its inbox")
    for party in (cloud, amiller):
        for item in auto_approve(
            party.client, party.identity, home=party.home, allow_simulated=True, now=now()
        ):
            echo(f"   {party.name:<12} {item.action} {item.request[:23]}...: {item.reason}")

    echo("\n6. NewbieMolty asks for a gap analysis of its log against amiller's")
    gap = request(
        newbie.client,
        newbie.identity,
        "gap-analysis",
        [published["amiller"], published["NewbieMolty"]],
        {},
        now=now(),
    )
    echo(f"   request {gap.request[:23]}... status {gap.status}")
    for item in auto_approve(
        newbie.client, newbie.identity, home=newbie.home, allow_simulated=True, now=now()
    ):
        echo(f"   NewbieMolty  {item.action} {item.request[:23]}...: {item.reason}")
    left = [
        i
        for i in auto_approve(
            amiller.client, amiller.identity, home=amiller.home, allow_simulated=True, now=now()
        )
        if i.request == gap.request
    ]
    echo(f"   amiller's policy leaves it for a person: {left[0].reason if left else '-'}")
    for a in approve(
        amiller.client,
        amiller.identity,
        gap.request,
        home=amiller.home,
        allow_simulated=True,
        now=now(),
        reason="a beginner's gap analysis reveals only my topic counts; fine",
    ):
        echo(f"   amiller      approved by hand ({a.mode}) and sealed its data to the enclave")

    echo("\n7. the enclave runs both jobs (verifies every statement, unseals, checks commitments,")
    echo("   applies k, seals each result to its recipients, signs a receipt)")
    for req in (overlap.request, gap.request):
        view = wait(cloud.client if req == overlap.request else newbie.client, req, timeout=timeout)
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
        res = fetch_result(
            party.client,
            party.identity,
            req,
            results / label,
            home=party.home,
            allow_simulated=True,
        )
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

    echo("\n9. the auditor verifies every bundle from the files alone (no network)")
    trust = trust_policy(allow_simulated=True)
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


def _keyword_overlap(party: _Party, mine: str, theirs: str, now: int) -> RequestView:
    """The seed's call: take the server's draft, check it against the local library, sign it."""
    draft = party.client.keyword_overlap_draft(mine, theirs)
    expected = default_registry().get("topic-overlap").ref()
    if (
        draft.requester != party.identity.party_id
        or draft.computation != expected
        or draft.inputs != (mine, theirs)
        or party.identity.party_id not in draft.recipients
        or abs(draft.created_at - now) > 300
    ):
        raise VerificationFailed("the coordinator's keyword-overlap draft is not what was asked")
    signed = sign_statement(draft, party.identity)
    return party.client.keyword_overlap_create(mine, theirs, signed.envelope)


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
