"""Afterwards: the one-page policy summary, deletion records, and the auditor's disclosure pack.

``sealroom summary SNAPSHOT.json --html F --pdf F`` renders a room policy snapshot;
``sealroom deletions RID`` shows what was erased for a request (and can save each signed
Deletion with its log proof); ``sealroom pack issue OUT ...`` writes a signed, time-bound
disclosure pack; ``sealroom verify-pack PACK`` verifies one offline.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sealroom.cli.common import (
    DEFAULT_URL_VALUE,
    HomeOpt,
    JsonOpt,
    UrlOpt,
    command,
    emit,
    fail,
    handle_errors,
    read_file,
    warn_simulated,
)
from sealroom.cli.exits import ExitCode
from sealroom.errors import InvalidInput, SealroomError

if TYPE_CHECKING:
    from sealroom.audit.pack import PackReport
    from sealroom.audit.summary import PolicySummary

__all__ = ["register"]

pack_app = typer.Typer(
    no_args_is_help=True, help="Auditor disclosure packs: issue one (verify with verify-pack)."
)


def _write(path: Path, data: bytes) -> None:
    from sealroom.crypto.files import write_private

    try:
        write_private(path, data)
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror}") from None


def summary(
    snapshot: Annotated[Path, typer.Argument(help="A room policy snapshot (JSON).")],
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the page as HTML here.")
    ] = None,
    pdf: Annotated[Path | None, typer.Option("--pdf", help="Write the page as PDF here.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Render a room policy snapshot as the one-page summary participants read before consenting
    (HTML and PDF from the same data). Without --html/--pdf, prints the digest and sections."""
    with handle_errors(json_output):
        from sealroom.audit.summary import parse_snapshot, summary_from_snapshot

        s = summary_from_snapshot(parse_snapshot(read_file(snapshot, "snapshot")))
        emit_summary(s, html=html, pdf=pdf, json_output=json_output)


def emit_summary(
    s: PolicySummary, *, html: Path | None, pdf: Path | None, json_output: bool
) -> None:
    """Write the summary's HTML and PDF (0600) where asked, and print its digest and sections."""
    from sealroom.audit.render import render_html, render_pdf, sections

    written = []
    if html is not None:
        _write(html, render_html(s).encode("utf-8"))
        written.append(str(html))
    if pdf is not None:
        _write(pdf, render_pdf(s))
        written.append(str(pdf))
    doc = {
        "snapshot_digest": s.snapshot_digest,
        "written": written,
        "sections": {h: dict(rows) for h, rows in sections(s)},
    }

    def human() -> None:
        typer.echo(f"Policy summary of {s.title!r}, snapshot {s.snapshot_digest}")
        for heading, rows in sections(s):
            typer.echo(f"{heading}:")
            for label, value in rows:
                typer.echo(f"  {label}: {value}")
        for w in written:
            typer.echo(f"wrote {w}")

    emit(json_output, doc, human)


def deletions(
    request_id: Annotated[str, typer.Argument(help="The request (digest).")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Save each signed Deletion with its log proof here (files for `pack issue "
            "--statement`).",
        ),
    ] = None,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """What was erased for a request: the enclave's signed Deletions (each checked: signature,
    signer, log inclusion) and the coordinator's own account of the sealed blobs it erased."""
    with command(json_output, url=url, home=home) as cmd:
        from sealroom.client.audit import deletion_proofs
        from sealroom.statements import Deletion

        # Checked as an auditor would: the coordinator cannot slip in a forged one.
        view, proofs = deletion_proofs(cmd.party().client, request_id)
        saved = []
        for p in proofs:
            if out is not None:
                path = out / f"deletion-{p.envelope.digest.removeprefix('sha256:')[:16]}.json"
                _write(path, p.to_json())
                saved.append(str(path))
        opened = [Deletion.parse_payload(p.envelope.payload) for p in proofs]
        doc = {
            "request": request_id,
            "deletions": [
                {
                    "digest": p.envelope.digest,
                    "enclave": d.enclave,
                    "outcome": d.outcome,
                    "erased_at": d.erased_at,
                    "method": d.method,
                    "inputs": [i.model_dump(mode="json") for i in d.inputs],
                    "receipt": d.receipt,
                }
                for p, d in zip(proofs, opened, strict=True)
            ],
            "erasures": [e.model_dump(mode="json") for e in view.erasures],
            "saved": saved,
        }

        def human() -> None:
            typer.echo(f"Deletions for {request_id}")
            if not opened:
                typer.echo("  no signed deletion from the enclave yet")
            for d in opened:
                typer.echo(
                    f"  enclave {d.enclave} erased {len(d.inputs)} sealed input(s) at "
                    f"{d.erased_at} ({d.outcome}; {d.method})"
                )
            for e in view.erasures:
                typer.echo(
                    f"  coordinator erased {e.kind} {e.sealed} ({e.size} bytes) at "
                    f"{e.erased_at}: {e.reason}"
                )
            for s in saved:
                typer.echo(f"  saved {s}")

        emit(json_output, doc, human)


@pack_app.command("issue")
def issue(
    out: Annotated[Path, typer.Argument(help="The pack directory to create (must not exist).")],
    request: Annotated[
        list[str] | None,
        typer.Option(
            "--request", help="A completed request to include: its proof bundle and deletions."
        ),
    ] = None,
    statement: Annotated[
        list[Path] | None,
        typer.Option(
            "--statement",
            help="A logged statement file (consent, approval, deletion...) to include.",
        ),
    ] = None,
    snapshot: Annotated[
        Path | None, typer.Option("--snapshot", help="The room's policy snapshot (JSON).")
    ] = None,
    valid_for: Annotated[
        int,
        typer.Option("--valid-for", min=60, help="Seconds the pack holds (its not-after time)."),
    ] = 30 * 86400,
    audience: Annotated[
        str | None, typer.Option("--audience", help="The auditor's party id it is issued to.")
    ] = None,
    purpose: Annotated[str, typer.Option("--purpose")] = "audit disclosure",
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Issue a signed, time-bound disclosure pack: the requests' proof bundles and their
    deletions, any other logged statements, and the policy snapshot."""
    with command(json_output, url=url, home=home) as cmd:
        from sealroom.audit.pack import LoggedStatementProof
        from sealroom.client.audit import issue_pack

        extra = [LoggedStatementProof.from_json(read_file(p, "statement")) for p in statement or []]
        snap = read_file(snapshot, "snapshot") if snapshot is not None else None
        party = cmd.party()
        manifest = issue_pack(
            party.client,
            party.identity,
            out,
            now=int(time.time()),
            valid_for=valid_for,
            requests=request or (),
            statements=extra,
            snapshot=snap,
            audience=audience,
            purpose=purpose,
        )
        doc = {
            "pack": str(out),
            "issuer": manifest.issuer,
            "not_after": manifest.not_after,
            "files": [f.path for f in manifest.files],
        }
        emit(
            json_output,
            doc,
            lambda: typer.echo(
                f"wrote {out}: {len(manifest.files)} files, signed by {manifest.issuer}, "
                f"valid until {manifest.not_after}"
            ),
        )


def verify_pack(
    pack: Annotated[Path, typer.Argument(help="The pack directory.")],
    issuer: Annotated[
        str | None, typer.Option("--issuer", help="Require this party to have issued it.")
    ] = None,
    allow_simulated: Annotated[
        bool,
        typer.Option(
            "--allow-simulated",
            help="Accept evidence from a SIMULATED enclave (no hardware protection).",
        ),
    ] = False,
    log_key: Annotated[
        str | None,
        typer.Option("--log-key", help="Pin the transparency log's verifier key (C2SP vkey)."),
    ] = None,
    measurements: Annotated[
        Path | None,
        typer.Option("--measurements", help="JSON allowlist of TDX measurements to accept."),
    ] = None,
    simulation_root: Annotated[
        str | None,
        typer.Option(
            "--simulation-root",
            envvar="SEALROOM_SIMULATION_ROOT",
            help="Pin the deployment's simulation root (hex public key).",
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Verify a disclosure pack offline with one command: the signed manifest and its time
    window, every file's digest, every proof bundle, every statement and its log proof, the
    policy snapshot. Exits 0 only if every check passes (8 if one fails)."""
    from sealroom.attestation.pins import parse_simulation_root
    from sealroom.audit.pack import PackRejected, PackReport, verify_pack
    from sealroom.verification.trust import trust_policy
    from sealroom.verification.verify import Check

    try:
        policy = trust_policy(
            allow_simulated=allow_simulated,
            log_key=log_key,
            measurements=read_file(measurements, "measurements") if measurements else None,
            simulation_root=parse_simulation_root(simulation_root) if simulation_root else None,
        )
    except SealroomError as exc:
        fail(json_output, code=exc.code, message=exc.public_message, detail=exc.detail or "")
        raise typer.Exit(int(ExitCode.USAGE)) from None
    try:
        report = verify_pack(pack, trust=policy, now=int(time.time()), issuer=issuer)
    except PackRejected as exc:
        report = exc.report
    except SealroomError as exc:  # pragma: no cover - verify_pack reports, never raises others
        report = PackReport(
            (Check("pack", False, exc.detail or exc.public_message),), (), True, None
        )
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        _print(pack, report)
    failed = report.failures or not report.checks
    raise typer.Exit(int(ExitCode.VERIFICATION_FAILED) if failed else int(ExitCode.OK))


def _print(path: Path, report: PackReport) -> None:
    typer.echo(f"Verifying the disclosure pack {path}")
    if report.simulated:
        warn_simulated(err=False)
    width = max(len(c.name) for c in report.checks)
    for c in report.checks:
        mark = typer.style("PASS", fg="green") if c.passed else typer.style("FAIL", fg="red")
        typer.echo(f"  {mark}  {c.name.ljust(width)}  {c.detail}")
    for w in report.warnings:
        typer.secho(f"  warning: {w}", fg="yellow")
    total, failed = len(report.checks), len(report.failures)
    if failed:
        typer.secho(f"NOT VERIFIED: {failed} of {total} checks failed.", fg="red", bold=True)
    else:
        label = " (simulated TEE)" if report.simulated else ""
        typer.secho(f"VERIFIED{label}: all {total} checks passed.", fg="green", bold=True)


def register(app: typer.Typer) -> None:
    app.command("summary")(summary)
    app.command("deletions")(deletions)
    app.command("verify-pack")(verify_pack)
    app.add_typer(pack_app, name="pack")
