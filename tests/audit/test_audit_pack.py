"""The auditor disclosure pack: issued over a real run, verified offline, and refused after any
change to any of its files, its manifest or its time window."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sealroom.audit.pack import (
    MANIFEST,
    AuditPack,
    LoggedStatementProof,
    PackRejected,
    logged_from_bundle,
    verify_logged_statement,
    verify_pack,
    write_pack,
)
from sealroom.cli.exits import ExitCode
from sealroom.cli.main import app
from sealroom.client.audit import logged_statements as _logged
from sealroom.crypto.keys import Identity
from sealroom.errors import InvalidInput
from sealroom.statements import (
    Approval,
    Deletion,
    Digest,
    Envelope,
    canonical_json,
    sign_statement,
)
from sealroom.transparency.checkpoint import NoteSigner
from sealroom.transparency.entries import committed_entry
from sealroom.transparency.log import MemoryLogStore, TransparencyLog
from sealroom.verification.bundle import LogEntryProof, LogProof, ProofBundle
from sealroom.verification.trust import TrustPolicy, trust_policy
from tests.audit.snapshots import snapshot
from tests.audit.world import audited_run
from tests.services import SIMULATION_ROOT

runner = CliRunner()


@dataclass(frozen=True)
class Material:
    bundle: ProofBundle
    deletions: tuple[LoggedStatementProof, ...]
    approvals: tuple[LoggedStatementProof, ...]
    issuer: Identity
    log_key: str
    snapshot: bytes
    cli_pack: Path
    cli_issue_stdout: str
    # Signs a Deletion with the enclave's key, posts it to the coordinator, returns its proof.
    post_deletion: Callable[[Deletion], LoggedStatementProof]
    url: str
    home: Path
    request: str


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Material]:
    """One real run (coordinator, enclave worker, two parties); its bundle, deletion and
    approvals with their proofs; and a pack issued by `sealroom pack issue` against it."""
    tmp = tmp_path_factory.mktemp("audit-pack")
    with audited_run(tmp) as run:
        b = run.bob_client
        bundle = b.bundle(run.request)
        key = b.log_key().verifier_key
        deletions = tuple(_logged(b.deletions(run.request), key))
        approvals = tuple(
            logged_from_bundle(bundle, e.digest)
            for e in bundle.statements
            if e.type == Approval.TYPE
        )
        # A room's snapshot (its queries include the one that ran), but not the room this run
        # ran in: packing them together is refused (tests/rooms packs a room's real runs).
        snap = canonical_json(snapshot(run.bob, template="research-stats"))
        issued = runner.invoke(
            app,
            [
                "pack",
                "issue",
                str(tmp / "cli-pack"),
                "--request",
                run.request,
                "--valid-for",
                "3600",
                "--url",
                run.url,
                "--home",
                str(tmp / "bob"),
                "--json",
            ],
        )
        assert issued.exit_code == ExitCode.OK, issued.output

        def post_deletion(deletion: Deletion) -> LoggedStatementProof:
            env = sign_statement(deletion, run.worker._keys.identity).envelope
            run.worker._source.record_deletion(run.request, env)  # type: ignore[attr-defined]
            logged = _logged(b.deletions(run.request), key)
            return next(p for p in logged if p.envelope.digest == env.digest)

        yield Material(
            bundle=bundle,
            deletions=deletions,
            approvals=approvals,
            issuer=run.bob,
            log_key=key,
            snapshot=snap,
            cli_pack=tmp / "cli-pack",
            cli_issue_stdout=issued.stdout,
            post_deletion=post_deletion,
            url=run.url,
            home=tmp / "bob",
            request=run.request,
        )


def _trust(m: Material) -> TrustPolicy:
    return trust_policy(
        allow_simulated=True, log_key=m.log_key, simulation_root=SIMULATION_ROOT.public_key
    )


def _pack(m: Material, out: Path, *, now: int | None = None, **options: object) -> Path:
    write_pack(
        out,
        issuer=options.pop("issuer", m.issuer),  # type: ignore[arg-type]
        purpose="quarterly audit",
        not_after=(now or int(time.time())) + 3600,
        now=now or int(time.time()),
        bundles=options.pop("bundles", (m.bundle,)),  # type: ignore[arg-type]
        statements=options.pop("statements", (*m.deletions, *m.approvals)),  # type: ignore[arg-type]
        snapshot=options.pop("snapshot", None),  # type: ignore[arg-type]
        audience=options.pop("audience", None),  # type: ignore[arg-type]
    )
    assert not options
    return out


def _rejected(
    m: Material, pack: Path, match: str, *, trust: TrustPolicy | None = None, **options: object
) -> PackRejected:
    with pytest.raises(PackRejected) as info:
        verify_pack(pack, trust=trust or _trust(m), now=int(time.time()), **options)  # type: ignore[arg-type]
    details = " | ".join(f"{c.name}: {c.detail}" for c in info.value.report.failures)
    assert match in details, details
    return info.value


def test_pack_verifies_offline_with_every_member(material: Material, tmp_path: Path) -> None:
    pack = _pack(material, tmp_path / "pack")
    report = verify_pack(
        pack, trust=_trust(material), now=int(time.time()), issuer=material.issuer.party_id
    )
    names = [c.name for c in report.checks]
    assert names[:3] == ["manifest", "time window", "members"]
    assert sum(n.startswith("bundle ") for n in names) == 1
    assert sum(n.startswith("statement ") for n in names) == len(material.deletions) + len(
        material.approvals
    )
    assert len(material.deletions) == 1
    assert len(material.approvals) == 2
    assert any(n.startswith("deletion ") and "names a run" in n for n in names)
    assert report.simulated
    assert all(c.passed for c in report.checks)
    assert report.manifest is not None
    assert report.manifest.issuer == material.issuer.party_id
    for f in pack.rglob("*"):
        if f.is_file():
            assert f.stat().st_mode & 0o777 == 0o600


def _members(pack: Path) -> list[str]:
    return sorted(p.relative_to(pack).as_posix() for p in pack.rglob("*") if p.is_file())


def test_pack_fails_after_a_flipped_byte_in_any_file(material: Material, tmp_path: Path) -> None:
    pristine = _pack(material, tmp_path / "pristine")
    members = _members(pristine)
    assert len(members) == 1 + 1 + 3  # manifest, bundle, statements
    for n, member in enumerate(members):
        copy = tmp_path / f"flip-{n}"
        shutil.copytree(pristine, copy)
        target = copy / member
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x01
        target.write_bytes(bytes(data))
        want = "manifest" if member == MANIFEST else "digest differs"
        failure = _rejected(material, copy, want)
        assert failure.report.failures[0].name == ("manifest" if member == MANIFEST else "members")


def test_pack_fails_with_a_file_removed_or_added(material: Material, tmp_path: Path) -> None:
    pristine = _pack(material, tmp_path / "pristine")
    removed = tmp_path / "removed"
    shutil.copytree(pristine, removed)
    gone = next(p for p in _members(removed) if p.startswith("statements/"))
    (removed / gone).unlink()
    _rejected(material, removed, f"missing: {gone}")

    added = tmp_path / "added"
    shutil.copytree(pristine, added)
    (added / "bundles" / "999-extra.json").write_bytes(material.bundle.to_json())
    _rejected(material, added, "not in the manifest: bundles/999-extra.json")

    linked = tmp_path / "linked"
    shutil.copytree(pristine, linked)
    (linked / "notes.json").symlink_to(linked / MANIFEST)
    _rejected(material, linked, "link or special file")

    nested = tmp_path / "nested"
    shutil.copytree(pristine, nested)
    (nested / "extra").mkdir()
    _rejected(material, nested, "unexpected directory extra")

    empty = tmp_path / "empty"
    empty.mkdir()
    _rejected(material, empty, f"no {MANIFEST}")


def _resigned(pack: Path, signer: Identity, **changes: object) -> None:
    """Rewrite the manifest with ``changes``, signed by ``signer``."""
    env = Envelope.from_json((pack / MANIFEST).read_bytes())
    manifest = env.open(AuditPack).statement
    if "issuer" not in changes:
        changes["issuer"] = signer.party_id
    changed = manifest.model_copy(update=changes)
    (pack / MANIFEST).write_bytes(sign_statement(changed, signer).envelope.to_json())


def test_pack_fails_after_any_change_to_the_manifest(material: Material, tmp_path: Path) -> None:
    pristine = _pack(material, tmp_path / "pristine")
    # A changed payload under the old signature.
    tampered = tmp_path / "tampered"
    shutil.copytree(pristine, tampered)
    doc = json.loads((tampered / MANIFEST).read_bytes())
    env = Envelope.from_json((tampered / MANIFEST).read_bytes())
    payload = json.loads(env.payload)
    payload["not_after"] += 86400
    import base64

    doc["payload"] = base64.b64encode(canonical_json(payload)).decode()
    (tampered / MANIFEST).write_bytes(canonical_json(doc))
    _rejected(material, tampered, "signature")

    # Re-signed by someone else: refused when the verifier names the issuer it expects.
    other = Identity.generate()
    resigned = tmp_path / "resigned"
    shutil.copytree(pristine, resigned)
    _resigned(resigned, other)
    _rejected(material, resigned, "not by", issuer=material.issuer.party_id)

    # Re-signed by the issuer, but dropping a member from the list: the file is then extra.
    shorter = tmp_path / "shorter"
    shutil.copytree(pristine, shorter)
    manifest = Envelope.from_json((shorter / MANIFEST).read_bytes()).open(AuditPack).statement
    _resigned(shorter, material.issuer, files=manifest.files[1:])
    _rejected(material, shorter, "not in the manifest")

    # A code digest the run did not use is fine, but dropping the run's is not.
    no_code = tmp_path / "no-code"
    shutil.copytree(pristine, no_code)
    _resigned(no_code, material.issuer, code=())
    _rejected(material, no_code, "not among the manifest's code digests")


def test_pack_expires(material: Material, tmp_path: Path) -> None:
    issued = int(time.time())
    pack = _pack(material, tmp_path / "pack", now=issued)
    verify_pack(pack, trust=_trust(material), now=issued + 3599)
    with pytest.raises(PackRejected) as info:
        verify_pack(pack, trust=_trust(material), now=issued + 3600)
    assert "expired" in info.value.report.failures[0].detail
    with pytest.raises(PackRejected, match="time window"):
        verify_pack(pack, trust=_trust(material), now=issued - 3600)


def test_pack_cross_checks_its_contents(material: Material, tmp_path: Path) -> None:
    # A deletion for a run whose bundle is not in the pack.
    alone = _pack(material, tmp_path / "alone", bundles=())
    _rejected(material, alone, "no verified proof bundle in the pack for request")
    # A room's snapshot with a run that did not run in that room: refused when written.
    with pytest.raises(InvalidInput, match="did not run in this room"):
        _pack(material, tmp_path / "other", snapshot=material.snapshot)
    assert not (tmp_path / "other").exists()
    # Another log key pinned than the one that signed the checkpoints.
    pinned = trust_policy(allow_simulated=True, log_key=_other_log_key(material))
    failure = _rejected(
        material, _pack(material, tmp_path / "pinned"), "different log key", trust=pinned
    )
    assert len(failure.report.failures) == 4  # the bundle and all three statements
    # Simulated evidence is refused unless the verifier allows it.
    strict = _rejected(
        material, _pack(material, tmp_path / "strict"), "TEE evidence", trust=trust_policy()
    )
    # The deletion then names no verified run either.
    assert [c.name.split()[0] for c in strict.report.failures] == ["bundle", "deletion"]


def test_pack_holds_proofs_from_one_log_only(material: Material, tmp_path: Path) -> None:
    """An approval logged (validly) in another log: each proof verifies, the pack does not."""
    approval = material.approvals[0].envelope
    other_log = TransparencyLog(MemoryLogStore())
    signer = NoteSigner.from_seed("other.example/log", hashlib.sha256(b"other").digest())
    index = other_log.append(committed_entry(approval.to_json(), None))
    checkpoint = other_log.checkpoint(signer)
    elsewhere = LoggedStatementProof(
        envelope=approval,
        log=LogProof(
            verifier_key=signer.verifier.vkey,
            checkpoint=checkpoint,
            entries=(
                LogEntryProof(
                    digest=Digest(approval.digest),
                    index=index,
                    proof=tuple(other_log.inclusion_proof(index, index + 1)),
                ),
            ),
        ),
    )
    pack = _pack(material, tmp_path / "two-logs", statements=(*material.deletions, elsewhere))
    failure = _rejected(
        material, pack, "from 2 different logs", trust=trust_policy(allow_simulated=True)
    )
    assert [c.name for c in failure.report.failures] == ["one log"]


def test_pack_deletion_must_match_its_receipt(material: Material, tmp_path: Path) -> None:
    """A deletion, validly signed and logged, that names inputs the run did not have."""
    honest = material.deletions[0].envelope.open(Deletion).statement
    assert honest.receipt == material.bundle.receipt.digest
    partial = material.post_deletion(
        honest.model_copy(update={"inputs": honest.inputs[:1], "erased_at": honest.erased_at + 1})
    )
    pack = _pack(material, tmp_path / "partial", statements=(partial,))
    failure = _rejected(material, pack, "not those of receipt")
    assert [c.name.split()[0] for c in failure.report.failures] == ["deletion"]


def _other_log_key(m: Material) -> str:
    name, rest = m.log_key.split("+", 1)
    return f"{name}x+{rest}"


def test_pack_writer_refuses_to_overwrite_or_pack_nothing(
    material: Material, tmp_path: Path
) -> None:
    out = tmp_path / "pack"
    out.mkdir()
    with pytest.raises(InvalidInput, match="exists already"):
        _pack(material, out)
    with pytest.raises(InvalidInput, match="at least one"):
        _pack(material, tmp_path / "none", bundles=(), statements=())
    assert not (tmp_path / "none").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["pack"]


def test_cli_issue_and_verify_pack(material: Material, tmp_path: Path) -> None:
    issued = json.loads(material.cli_issue_stdout)
    assert issued["issuer"] == material.issuer.party_id
    assert any(f.startswith("bundles/") for f in issued["files"])
    assert any(f.startswith("statements/") for f in issued["files"])
    assert "snapshot.json" not in issued["files"]
    args = [
        "verify-pack",
        str(material.cli_pack),
        "--allow-simulated",
        "--log-key",
        material.log_key,
        "--issuer",
        material.issuer.party_id,
        "--json",
    ]
    ok = runner.invoke(app, args)
    assert ok.exit_code == ExitCode.OK, ok.output
    doc = json.loads(ok.stdout)
    assert doc["verified"] is True
    assert doc["simulated"] is True
    assert doc["issuer"] == material.issuer.party_id
    human = runner.invoke(app, args[:-1])
    assert human.exit_code == ExitCode.OK
    assert "VERIFIED (simulated TEE)" in human.stdout

    broken = tmp_path / "broken"
    shutil.copytree(material.cli_pack, broken)
    victim = next(p for p in (broken / "statements").iterdir())
    victim.write_bytes(b"{}")
    bad = runner.invoke(app, ["verify-pack", str(broken), "--allow-simulated", "--json"])
    assert bad.exit_code == ExitCode.VERIFICATION_FAILED
    assert json.loads(bad.stdout)["verified"] is False
    human_bad = runner.invoke(app, ["verify-pack", str(broken), "--allow-simulated"])
    assert "NOT VERIFIED" in human_bad.stdout


def test_cli_deletions_shows_and_saves_checked_proofs(material: Material, tmp_path: Path) -> None:
    out = tmp_path / "deletions"
    args = ["deletions", material.request, "--url", material.url, "--home", str(material.home)]
    result = runner.invoke(app, [*args, "--out", str(out), "--json"])
    assert result.exit_code == ExitCode.OK, result.output
    doc = json.loads(result.stdout)
    assert doc["deletions"][0]["outcome"] == "completed"
    assert doc["deletions"][0]["method"] == "released-process-memory"
    assert {e["kind"] for e in doc["erasures"]} >= {"sealed-input"}
    assert len(doc["saved"]) == len(doc["deletions"])
    for saved in doc["saved"]:
        proof = LoggedStatementProof.from_json(Path(saved).read_bytes())
        verify_logged_statement(proof, trust_policy(log_key=material.log_key))
        assert Path(saved).stat().st_mode & 0o777 == 0o600
    human = runner.invoke(app, args)
    assert human.exit_code == ExitCode.OK
    assert "erased 2 sealed input(s)" in human.stdout
    stranger = runner.invoke(app, ["deletions", "sha256:" + "00" * 32, *args[2:], "--json"])
    assert stranger.exit_code == ExitCode.ERROR
    assert json.loads(stranger.stdout)["error"]["code"] == "not_found"
