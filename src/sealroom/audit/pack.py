"""The auditor's disclosure pack: proof bundles, signed statements with their log proofs, the
policy snapshot, and a manifest signed by the issuing party that says until when it holds.

A pack is a directory::

    PACK/manifest.json            an AuditPack envelope (canonical JSON), signed by the issuer
    PACK/snapshot.json            the room's policy snapshot (optional)
    PACK/bundles/NAME.json        proof bundles (verification/bundle.py), one per run
    PACK/statements/NAME.json     LoggedStatementProof: any logged statement (consents,
                                  approvals, deletions, ...) with its inclusion proof and a
                                  signed checkpoint

The manifest names every other file with its SHA-256 and size, the snapshot's digest,
the room's policy (the host-signed Policy every run of the room names) and the
computations' code digests. :func:`verify_pack` checks
everything offline and raises :class:`PackRejected` (with the full report) if anything
fails: the manifest's signature and issuer, its time window, the exact set of files
(nothing missing, nothing added, no links), every file's digest, every bundle with the
verification package's checks, every statement's signature, signer and log inclusion,
the snapshot's digest, that every run ran code the manifest (and the snapshot, if any)
names under the room's policy, and that every deletion statement refers to a run in the pack. Returning at all
means every check passed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sealroom.audit.summary import parse_snapshot, summary_from_snapshot
from sealroom.crypto.files import write_private
from sealroom.crypto.keys import Identity, PublicIdentity
from sealroom.errors import InvalidInput, SealroomError, StatementFormatError, VerificationFailed
from sealroom.statements import (
    STATEMENT_TYPES,
    ComputationRequest,
    Deletion,
    Envelope,
    ProtocolReceipt,
    Receipt,
    Room,
    RoomConsent,
    Statement,
    canonical_json,
    parse_json_strict,
    sign_statement,
)
from sealroom.statements.canonical import exact_keys
from sealroom.statements.envelope import MAX_ENVELOPE_SIZE, require_signer
from sealroom.statements.fields import DigestStr, PartyIdStr, ShortText, UnixTime
from sealroom.transparency.checkpoint import NoteVerifier, open_checkpoint
from sealroom.transparency.entries import entry_leaf_hash
from sealroom.transparency.proof import verify_inclusion
from sealroom.verification.bundle import MAX_BUNDLE_SIZE, LogProof, ProofBundle
from sealroom.verification.checks import UNPINNED_LOG_KEY_WARNING
from sealroom.verification.protocol_runs import verify_run
from sealroom.verification.trust import TrustPolicy
from sealroom.verification.verify import BundleRejected, Check, verify_bundle

__all__ = [
    "MANIFEST",
    "AuditPack",
    "LoggedStatementProof",
    "PackFile",
    "PackRejected",
    "PackReport",
    "logged_from_bundle",
    "verify_logged_statement",
    "verify_pack",
    "write_pack",
]

MANIFEST = "manifest.json"
SNAPSHOT = "snapshot.json"
LOGGED_TYPE = "sealroom.logged-statement"
LOGGED_VERSION = 1
_MAX_FILES = 1000
_MAX_FILE_SIZE = MAX_BUNDLE_SIZE
# A manifest issued a little ahead of the verifier's clock is not refused (clock skew).
_SKEW = 300
_PATH_RE = r"^(snapshot\.json|(bundles|statements)/[a-z0-9][a-z0-9._-]{0,63}\.json)$"


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class PackFile(BaseModel):
    """One member of the pack: its path (relative, fixed layout), role, digest and size."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    path: Annotated[str, Field(pattern=_PATH_RE)]
    role: Literal["bundle", "statement", "snapshot"]
    sha256: DigestStr
    size: Annotated[int, Field(ge=0, le=_MAX_FILE_SIZE)]

    @model_validator(mode="after")
    def _role_matches_path(self) -> PackFile:
        want = {"bundles": "bundle", "statements": "statement"}.get(
            self.path.split("/", 1)[0], "snapshot"
        )
        if want != self.role:
            raise ValueError(f"{self.path} is not where a {self.role} goes")
        return self


class AuditPack(Statement):
    """The pack's manifest, signed by the issuing party: what is in it and until when it holds.

    ``audience`` names the auditor it was issued to (``None``: whoever holds it). After
    ``not_after`` the pack no longer verifies: the issuer vouched for it that long."""

    TYPE: ClassVar[str] = "sealroom.audit-pack"
    VERSION: ClassVar[int] = 1
    MAX_PAYLOAD: ClassVar[int] = 1 << 20

    issuer: PartyIdStr
    audience: PartyIdStr | None
    purpose: ShortText
    issued_at: UnixTime
    not_after: UnixTime
    snapshot: DigestStr | None
    # The snapshot's ``policy``: the room Policy statement every packed run must name.
    room_policy: DigestStr | None
    code: Annotated[tuple[DigestStr, ...], Field(max_length=256)]
    files: Annotated[tuple[PackFile, ...], Field(max_length=_MAX_FILES)]

    @model_validator(mode="after")
    def _consistent(self) -> AuditPack:
        if self.not_after <= self.issued_at:
            raise ValueError("not_after must be after issued_at")
        paths = [f.path for f in self.files]
        if len(set(paths)) != len(paths):
            raise ValueError("files name a path twice")
        if (self.snapshot is None) != (SNAPSHOT not in paths):
            raise ValueError("the snapshot digest is named exactly when snapshot.json is packed")
        if (self.snapshot is None) != (self.room_policy is None):
            raise ValueError("the room policy is named exactly when a snapshot is packed")
        return self

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.issuer, signer, role="issuer")


@dataclass(frozen=True, slots=True)
class LoggedStatementProof:
    """A signed statement with its log inclusion proof against a signed checkpoint.

    ``log`` carries exactly one entry, for the envelope (with the salt that opens its
    commitment when it was logged privately)."""

    envelope: Envelope
    log: LogProof

    def to_json(self) -> bytes:
        return canonical_json(
            {
                "type": LOGGED_TYPE,
                "version": LOGGED_VERSION,
                "envelope": self.envelope.to_dict(),
                "log": self.log.to_dict(),
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> LoggedStatementProof:
        value = parse_json_strict(data, max_size=MAX_ENVELOPE_SIZE, what="logged statement")
        d = exact_keys(value, {"type", "version", "envelope", "log"}, "logged statement")
        if d["type"] != LOGGED_TYPE or d["version"] != LOGGED_VERSION:
            raise StatementFormatError(
                f"not a logged statement v{LOGGED_VERSION} (type {d['type']!r})"
            )
        proof = cls(envelope=Envelope.from_dict(d["envelope"]), log=LogProof.from_dict(d["log"]))
        if len(proof.log.entries) != 1 or proof.log.entries[0].digest != proof.envelope.digest:
            raise StatementFormatError("a logged statement carries one log entry, for itself")
        if proof.to_json() != bytes(data):
            raise StatementFormatError("logged statement is not in canonical (RFC 8785) form")
        return proof


def logged_from_bundle(bundle: ProofBundle, digest: str) -> LoggedStatementProof:
    """A statement a bundle carries (receipt, evidence, request, approvals, ...) with its
    proof from the bundle's log, to be packed on its own."""
    envelope = next(
        (e for e in (bundle.receipt, bundle.evidence, *bundle.statements) if e.digest == digest),
        None,
    )
    entry = bundle.log.entry_for(digest)
    if envelope is None or entry is None:
        raise InvalidInput(f"the bundle carries no logged statement {digest}")
    log = LogProof(
        verifier_key=bundle.log.verifier_key, checkpoint=bundle.log.checkpoint, entries=(entry,)
    )
    return LoggedStatementProof(envelope=envelope, log=log)


def _check_room_terms(env: Envelope, manifest: AuditPack) -> None:
    """With a snapshot packed, a room or consent statement must be about exactly it: a consent
    to other terms (or another room) is not evidence of consent to these."""
    if manifest.snapshot is None:
        return
    if env.type == Room.TYPE:
        named = Room.parse_payload(env.payload).snapshot_digest
    elif env.type == RoomConsent.TYPE:
        named = RoomConsent.parse_payload(env.payload).snapshot
    else:
        return
    if named != manifest.snapshot:
        raise VerificationFailed(
            f"the {env.type} statement names snapshot {named}, not the packed {manifest.snapshot}"
        )


def _room_policies(receipt: Receipt) -> set[str | None]:
    """The room policies the enclave enforced on the run's inputs (signed in its receipt)."""
    return {d.room_policy for d in receipt.decisions}


# --- writing ---------------------------------------------------------------------------------


def _name(role: str, n: int, digest: str) -> str:
    return f"{role}/{n:03d}-{digest.removeprefix('sha256:')[:16]}.json"


def write_pack(
    out: Path,
    *,
    issuer: Identity,
    purpose: str,
    not_after: int,
    now: int,
    bundles: Sequence[ProofBundle] = (),
    statements: Sequence[LoggedStatementProof] = (),
    snapshot: bytes | None = None,
    audience: str | None = None,
) -> AuditPack:
    """Write a signed pack to the new directory ``out``, whole or not at all (files 0600).

    The code digests are the runs' (each receipt's computation); the room policy is the
    snapshot's (every run must have run under it). A snapshot is canonicalised first, so its file's digest is its own."""
    if out.exists():
        raise InvalidInput(f"{out} exists already: a pack is written to a new directory")
    if not bundles and not statements:
        raise InvalidInput("a pack needs at least one proof bundle or statement")
    files: dict[str, tuple[str, bytes]] = {}
    for n, b in enumerate(bundles):
        files[_name("bundles", n, b.receipt.digest)] = ("bundle", b.to_json())
    for n, st in enumerate(statements):
        files[_name("statements", n, st.envelope.digest)] = ("statement", st.to_json())
    snap_digest = room_policy = None
    if snapshot is not None:
        parsed = parse_snapshot(snapshot)
        summary = summary_from_snapshot(parsed)
        snap_digest, room_policy = summary.snapshot_digest, summary.policy
        files[SNAPSHOT] = ("snapshot", canonical_json(parsed))
        allowed = {q.code_digest for q in summary.allowed_queries}
        for b in bundles:
            receipt = Receipt.parse_payload(b.receipt.payload)
            if (
                _room_policies(receipt) != {room_policy}
                or receipt.computation.code_digest not in allowed
            ):
                raise InvalidInput(
                    f"the run {receipt.request} did not run in this room (its policy or code "
                    "is not the snapshot's)"
                )
    code = tuple(
        dict.fromkeys(
            Receipt.parse_payload(b.receipt.payload).computation.code_digest for b in bundles
        )
    )
    manifest = AuditPack.build(
        issuer=issuer.public.party_id,
        audience=audience,
        purpose=purpose,
        issued_at=now,
        not_after=not_after,
        snapshot=snap_digest,
        room_policy=room_policy,
        code=code,
        files=tuple(
            PackFile(path=path, role=role, sha256=_sha256(data), size=len(data))  # type: ignore[arg-type]
            for path, (role, data) in sorted(files.items())
        ),
    )
    signed = sign_statement(manifest, issuer)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for path, (_, data) in files.items():
            write_private(tmp / path, data)
        write_private(tmp / MANIFEST, signed.envelope.to_json())
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


# --- verifying -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PackReport:
    """Every check of a pack, in order, with what it established."""

    checks: tuple[Check, ...]
    warnings: tuple[str, ...]
    simulated: bool
    manifest: AuditPack | None

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "verified": not self.failures and bool(self.checks),
            "simulated": self.simulated,
            "issuer": m.issuer if m is not None else None,
            "audience": m.audience if m is not None else None,
            "issued_at": m.issued_at if m is not None else None,
            "not_after": m.not_after if m is not None else None,
            "warnings": list(self.warnings),
            "checks": [
                {"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks
            ],
        }


class PackRejected(VerificationFailed):
    """At least one check of the pack failed; ``report`` says which and why."""

    code = "pack_rejected"
    public_message = "the disclosure pack did not verify"

    def __init__(self, report: PackReport) -> None:
        self.report = report
        names = ", ".join(c.name for c in report.failures) or "no checks ran"
        super().__init__(f"failed checks: {names}")

    def diagnostics(self) -> str:
        lines = [super().diagnostics()]
        lines += [f"  - {c.name}: {c.detail}" for c in self.report.failures]
        return "\n".join(lines)


@dataclass
class _Run:
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # The check under way: a failure before the members are read is reported under it.
    stage: str = "manifest"

    def passed(self, name: str, detail: str) -> None:
        self.checks.append(Check(name, True, detail))

    def failed(self, name: str, detail: str) -> None:
        self.checks.append(Check(name, False, detail))


def _members(root: Path) -> dict[str, Path]:
    """Every entry under ``root`` by relative path; links and special files are refused."""
    found: dict[str, Path] = {}
    pending = [root]
    while pending:
        directory = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                path = Path(entry.path)
                rel = path.relative_to(root).as_posix()
                mode = entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISDIR(mode):
                    if rel not in ("bundles", "statements"):
                        raise VerificationFailed(f"unexpected directory {rel} in the pack")
                    pending.append(path)
                elif stat.S_ISREG(mode):
                    found[rel] = path
                else:
                    raise VerificationFailed(f"{rel} is a link or special file, not a pack member")
                if len(found) > _MAX_FILES + 1:
                    raise VerificationFailed(f"the pack holds more than {_MAX_FILES} files")
    return found


def _read(path: Path, limit: int) -> bytes:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise VerificationFailed(f"{path.name} is larger than {limit} bytes")
    return data


def verify_logged_statement(proof: LoggedStatementProof, trust: TrustPolicy) -> tuple[str, bool]:
    """Open the statement as its type and check its inclusion; (description, key pinned)."""
    env = proof.envelope
    cls = STATEMENT_TYPES.get(env.type)
    if cls is None:
        raise VerificationFailed(f"unknown statement type {env.type}: cannot check its signer")
    env.open(cls)
    pinned, named = trust.log_key, proof.log.verifier_key
    if pinned is not None and pinned != named:
        raise VerificationFailed("the statement's proof names a different log key from the pinned")
    checkpoint = open_checkpoint(proof.log.checkpoint, NoteVerifier.from_vkey(named))
    entry = proof.log.entries[0]
    verify_inclusion(
        entry.index,
        checkpoint.size,
        entry_leaf_hash(env.to_json(), entry.salt),
        entry.proof,
        checkpoint.root_hash,
    )
    return (
        f"{env.type} signed by {env.signer.party_id}, in the log at index {entry.index} "
        f"of {checkpoint.size}",
        pinned is not None,
    )


def verify_pack(
    root: Path, *, trust: TrustPolicy, now: int, issuer: str | None = None
) -> PackReport:
    """Verify the pack at ``root`` offline; return the report or raise :class:`PackRejected`.

    ``issuer``: the party the verifier expects to have issued it (None: any, reported)."""
    run = _Run()
    manifest: AuditPack | None = None
    simulated = False
    try:
        manifest, members = _check_manifest(root, run, now=now, issuer=issuer)
    except SealroomError as exc:
        run.failed(run.stage, exc.detail or exc.public_message)
        raise PackRejected(PackReport(tuple(run.checks), (), True, manifest)) from None
    except OSError as exc:
        run.failed(run.stage, f"the pack cannot be read ({exc.strerror})")
        raise PackRejected(PackReport(tuple(run.checks), (), True, manifest)) from None
    receipts: dict[str, Receipt] = {}
    deletions: list[tuple[str, Deletion]] = []
    # Protocol runs (no enclave, no bundle): their requests and co-signed receipts.
    run_requests: dict[str, ComputationRequest] = {}
    run_receipts: dict[str, list[Envelope]] = {}
    allowed: set[str] | None = None
    logs: set[str] = set()  # the log keys the members' proofs name
    for member in manifest.files:
        name = f"{member.role} {member.path}"
        try:
            data = members[member.path]
            if member.role == "bundle":
                bundle = ProofBundle.from_json(data)
                try:
                    report = verify_bundle(bundle, trust=trust)
                except BundleRejected as exc:
                    failed = "; ".join(f"{c.name}: {c.detail}" for c in exc.report.failures)
                    raise VerificationFailed(failed) from None
                simulated = simulated or report.simulated
                logs.add(bundle.log.verifier_key)
                run.warnings.extend(f"{member.path}: {w}" for w in report.warnings)
                receipt = Receipt.parse_payload(bundle.receipt.payload)
                if receipt.computation.code_digest not in manifest.code:
                    raise VerificationFailed(
                        f"the run's code {receipt.computation.code_digest} is not among the "
                        "manifest's code digests"
                    )
                ran_under = _room_policies(receipt)
                if manifest.room_policy is not None and ran_under != {manifest.room_policy}:
                    raise VerificationFailed(
                        f"the run ran under room policy {sorted(map(str, ran_under))}, not the "
                        f"room's {manifest.room_policy}"
                    )
                receipts[bundle.receipt.digest] = receipt
                run.passed(
                    name,
                    f"all {len(report.checks)} bundle checks passed: {receipt.computation.id} "
                    f"{receipt.computation.version} on request {receipt.request}"
                    + (" (SIMULATED TEE)" if report.simulated else ""),
                )
            elif member.role == "statement":
                proof = LoggedStatementProof.from_json(data)
                detail, pinned = verify_logged_statement(proof, trust)
                logs.add(proof.log.verifier_key)
                if not pinned and UNPINNED_LOG_KEY_WARNING not in run.warnings:
                    run.warnings.append(UNPINNED_LOG_KEY_WARNING)
                env = proof.envelope
                if env.type == Deletion.TYPE:
                    deletions.append((member.path, Deletion.parse_payload(env.payload)))
                elif env.type == ComputationRequest.TYPE:
                    run_requests[env.digest] = ComputationRequest.parse_payload(env.payload)
                elif env.type == ProtocolReceipt.TYPE:
                    named = ProtocolReceipt.parse_payload(env.payload).request
                    run_receipts.setdefault(str(named), []).append(env)
                _check_room_terms(proof.envelope, manifest)
                run.passed(name, detail)
            else:
                parsed = parse_snapshot(data)
                if canonical_json(parsed) != data:
                    raise VerificationFailed("the snapshot is not in canonical (RFC 8785) form")
                summary = summary_from_snapshot(parsed)
                if summary.snapshot_digest != manifest.snapshot:
                    raise VerificationFailed(
                        f"the snapshot's digest {summary.snapshot_digest} is not the manifest's"
                    )
                if summary.policy != manifest.room_policy:
                    raise VerificationFailed("the snapshot's room policy is not the manifest's")
                allowed = {str(q.code_digest) for q in summary.allowed_queries}
                stray = [c for c in manifest.code if c not in allowed]
                if stray:
                    raise VerificationFailed(
                        f"code {stray[0]} ran but is not among the snapshot's allowed queries"
                    )
                run.passed(
                    name,
                    f"policy snapshot {summary.snapshot_digest} ({summary.title!r}, host "
                    f"{summary.host}); every run's code is among its allowed queries",
                )
        except SealroomError as exc:
            run.failed(name, exc.detail or exc.public_message)
    for request, group in sorted(run_receipts.items()):
        name = f"protocol run {request}"
        try:
            done = verify_run(group, require_all=True)
            first = done[0].statement
            req = run_requests.get(request)
            if req is None:
                raise VerificationFailed("the pack holds the run's receipts, not its request")
            if req.room_policy != manifest.room_policy:
                raise VerificationFailed("the run was not requested under the room's policy")
            if first.code_digest != req.computation.code_digest:
                raise VerificationFailed("the receipts name other code than the request")
            if canonical_json(first.parameters) != canonical_json(req.parameters):
                raise VerificationFailed("the run used other parameters than the request's")
            if allowed is None or first.code_digest not in allowed:
                raise VerificationFailed(
                    f"code {first.code_digest} ran but is not among the snapshot's allowed queries"
                )
            run.passed(
                name,
                f"{len(done)} co-signed receipts verify as one {first.protocol} run of the "
                "request, with its parameters and an allowed query's code",
            )
        except SealroomError as exc:
            run.failed(name, exc.detail or exc.public_message)
    for path, d in deletions:
        name = f"deletion {path} names a run in the pack"
        ran = receipts.get(d.receipt) if d.receipt is not None else None
        if ran is not None:
            held = {i.dataset: i.commitment_root for i in d.inputs}
            if held != {i.dataset: i.commitment_root for i in ran.inputs}:
                run.failed(name, f"the deletion's inputs are not those of receipt {d.receipt}")
            else:
                run.passed(name, f"the enclave erased the inputs of receipt {d.receipt}")
        elif d.receipt is None and any(r.request == d.request for r in receipts.values()):
            run.passed(name, f"the enclave erased what it held for request {d.request}")
        else:
            run.failed(name, f"no verified proof bundle in the pack for request {d.request}")
    if len(logs) > 1:
        run.failed("one log", f"the members' proofs come from {len(logs)} different logs")
    elif logs:
        run.passed("one log", "every proof in the pack is from the same log")
    result = PackReport(tuple(run.checks), tuple(run.warnings), simulated, manifest)
    if result.failures or not result.checks:
        raise PackRejected(result)
    return result


def _check_manifest(
    root: Path, run: _Run, *, now: int, issuer: str | None
) -> tuple[AuditPack, dict[str, bytes]]:
    """The opened manifest and every member's bytes, each matching its digest and size."""
    if not root.is_dir() or root.is_symlink():
        raise VerificationFailed(f"{root} is not a pack directory")
    found = _members(root)
    if MANIFEST not in found:
        raise VerificationFailed(f"the pack has no {MANIFEST}")
    env = Envelope.from_json(_read(found.pop(MANIFEST), MAX_ENVELOPE_SIZE))
    manifest = env.open(AuditPack).statement
    if issuer is not None and manifest.issuer != issuer:
        raise VerificationFailed(f"issued by {manifest.issuer}, not by {issuer}")
    run.passed(
        "manifest",
        f"signed by the issuer {manifest.issuer}"
        + (f" for {manifest.audience}" if manifest.audience else "")
        + (" (issuer not pinned: pass --issuer to require one)" if issuer is None else ""),
    )
    run.stage = "time window"
    if manifest.issued_at > now + _SKEW:
        raise VerificationFailed(f"the pack is dated {manifest.issued_at}, after now ({now})")
    if now >= manifest.not_after:
        raise VerificationFailed(
            f"the pack expired at {manifest.not_after} (now {now}); ask the issuer for a new one"
        )
    run.passed("time window", f"valid from {manifest.issued_at} until {manifest.not_after}")
    run.stage = "members"
    listed = {f.path: f for f in manifest.files}
    extra = sorted(set(found) - set(listed))
    missing = sorted(set(listed) - set(found))
    if extra or missing:
        raise VerificationFailed(
            "the files differ from the manifest's"
            + (f"; not in the manifest: {', '.join(extra)}" if extra else "")
            + (f"; missing: {', '.join(missing)}" if missing else "")
        )
    data: dict[str, bytes] = {}
    for path, member in listed.items():
        body = _read(found[path], _MAX_FILE_SIZE)
        if len(body) != member.size or _sha256(body) != member.sha256:
            raise VerificationFailed(f"{path} is not the file the manifest names (digest differs)")
        data[path] = body
    run.passed("members", f"exactly the {len(listed)} files the manifest names, each unchanged")
    return manifest, data
