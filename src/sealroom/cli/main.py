"""The ``sealroom`` command line."""

from __future__ import annotations

import inspect
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from sealroom import __version__
from sealroom.cli import (
    agents,
    audit,
    checkpoint,
    credits,
    deploy,
    keys,
    market,
    party,
    protocols,
    rooms,
    services,
    ui,
    watch,
    witness,
)
from sealroom.cli.checkpoint import WitnessesRequiredOpt, WitnessOpt
from sealroom.cli.common import (
    DEFAULT_URL_VALUE,
    HomeOpt,
    JsonOpt,
    PassphraseFileOpt,
    UnencryptedOpt,
    UrlOpt,
    emit,
    fail,
    handle_errors,
    new_passphrase,
    warn_simulated,
)
from sealroom.cli.exits import ExitCode, exit_code_for, exit_codes_epilog
from sealroom.cli.fastparams import install as install_fast_params
from sealroom.errors import InvalidInput, SealroomError

if TYPE_CHECKING:
    from sealroom.verification.verify import VerificationReport

install_fast_params()  # typer would import pydantic to coerce even `version --json`

EXIT_OK, EXIT_FAILED, EXIT_USAGE = int(ExitCode.OK), int(ExitCode.ERROR), int(ExitCode.USAGE)
EXIT_VERIFICATION_FAILED = int(ExitCode.VERIFICATION_FAILED)


def wants_json(args: Sequence[str]) -> bool:
    """``--json`` anywhere on the command line (before a ``--``): errors found while parsing
    it, before any command runs, are answered as JSON too."""
    for arg in args:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


class SealroomGroup(TyperGroup):
    """The root command: with ``--json``, a usage error is the JSON error document on stdout
    (``{"error": {"code": "usage", ...}}``) plus one line on stderr, exit 2, as every other
    error is."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode or not wants_json(argv):
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(argv, prog_name, complete_var, False, **extra)
        except TyperException as exc:  # click's usage errors (vendored by typer) exit 2
            fail(
                True,
                code="usage",
                message="the command line is not valid",
                detail=exc.format_message(),
            )
            sys.exit(exc.exit_code)
        except typer.Abort:
            fail(True, code="aborted", message="aborted", detail="aborted")
            sys.exit(EXIT_FAILED)
        sys.exit(code if isinstance(code, int) else EXIT_OK)


class SealroomTyper(typer.Typer):
    """Builds only the command a command line names. Typer turns every command into a click
    command (evaluating each function's annotations) before parsing; for a CLI of 40 commands
    that was most of a simple command's start-up. ``sealroom NAME ...`` builds NAME alone;
    the root's help and listing build every command's name and help line only; anything else
    (an unknown name, for its suggestion) builds the whole tree as typer does."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        argv = list(args[0] if args else kwargs.get("args") or sys.argv[1:])
        narrowed = self._narrowed(argv)
        if narrowed is None:
            return super().__call__(*args, **kwargs)
        return narrowed(*args, **kwargs)

    def _narrowed(self, argv: list[str]) -> TyperGroup | None:
        from typer.main import get_command_name, get_group

        if not argv or argv[0] in ("--help", "-h"):
            return self._listing() if argv[1:] in ([], ["--json"]) else None
        name = argv[0]
        commands = [
            c
            for c in self.registered_commands
            if (c.name or get_command_name(c.callback.__name__ if c.callback else "")) == name
        ]
        groups = [g for g in self.registered_groups if g.name == name]
        if len(commands) + len(groups) != 1:
            return None
        one = typer.Typer(**_typer_settings(self))
        one.registered_commands, one.registered_groups = commands, groups
        return get_group(one)

    def _listing(self) -> TyperGroup:
        """The root group with each command as a name and help text, no parameters (what the
        root's help shows of them; tests/cli/test_cli_startup.py compares with the full tree)."""
        from typer.main import get_command_name, get_group, solve_typer_info_defaults

        root = get_group(typer.Typer(**_typer_settings(self)))
        for c in self.registered_commands:
            assert c.callback is not None
            name = c.name or get_command_name(c.callback.__name__)
            root.commands[name] = typer.core.TyperCommand(
                name=name,
                help=inspect.cleandoc(c.help) if c.help is not None else inspect.getdoc(c.callback),
                short_help=c.short_help,
                hidden=c.hidden,
                deprecated=c.deprecated,
                rich_help_panel=c.rich_help_panel,
                rich_markup_mode=self.rich_markup_mode,
            )
        for g in self.registered_groups:
            info = solve_typer_info_defaults(g)
            if info.name:
                root.commands[info.name] = TyperGroup(
                    name=info.name,
                    help=info.help,
                    short_help=info.short_help,
                    hidden=info.hidden,
                    deprecated=info.deprecated,
                    rich_help_panel=info.rich_help_panel,
                    rich_markup_mode=self.rich_markup_mode,
                )
        return root


def _typer_settings(app: typer.Typer) -> dict[str, Any]:
    return {
        "cls": SealroomGroup,
        "no_args_is_help": True,
        "add_completion": False,
        "help": app.info.help,
        "epilog": app.info.epilog,
        "pretty_exceptions_enable": False,
        "rich_markup_mode": app.rich_markup_mode,
    }


app = SealroomTyper(
    cls=SealroomGroup,
    no_args_is_help=True,
    add_completion=False,
    help="sealroom: learn from datasets you cannot share.",
    epilog=exit_codes_epilog(),
    pretty_exceptions_enable=False,
)


@app.command()
def version(json_output: JsonOpt = False) -> None:
    """Print the sealroom version."""
    emit(json_output, {"version": __version__}, lambda: typer.echo(__version__))


def _read(path: Path, what: str, json_output: bool = False) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        detail = f"cannot read {what} {path}: {exc.strerror}"
        fail(json_output, code="usage", message="the command line is not valid", detail=detail)
        raise typer.Exit(EXIT_USAGE) from None


@app.command()
def init(
    name: Annotated[str, typer.Option("--name", help="A display name for this identity.")],
    home: Annotated[
        Path | None,
        typer.Option("--home", help="Keystore directory (default: $SEALROOM_HOME or ~/.sealroom)."),
    ] = None,
    passphrase_file: PassphraseFileOpt = None,
    unencrypted_keystore: UnencryptedOpt = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Create this party's identity (Ed25519 signing, X25519 + ML-KEM-768 sealing keys).

    The keystore is encrypted with a passphrase (argon2id): from --passphrase-file,
    $SEALROOM_PASSPHRASE, $SEALROOM_PASSPHRASE_FILE or a prompt. --unencrypted-keystore
    stores the keys in the clear instead.
    """
    from sealroom.crypto.keys import fingerprint
    from sealroom.crypto.keystore import Keystore, resolve_home

    try:
        path = resolve_home(home, os.environ)
        passphrase = new_passphrase(passphrase_file, unencrypted=unencrypted_keystore)
        identity = Keystore.create(
            path, name=name, passphrase=passphrase, unencrypted=unencrypted_keystore
        )
    except SealroomError as exc:
        fail(json_output, code=exc.code, message=exc.public_message, detail=_detail(exc))
        raise typer.Exit(exit_code_for(exc)) from None
    protection = "unencrypted" if unencrypted_keystore else "argon2id-aes256gcm"
    if json_output:
        done = {
            "party": identity.party_id,
            "fingerprint": fingerprint(identity.party_id),
            "name": name,
            "keystore": str(Keystore.path(path)),
            "protection": protection,
            "post_quantum": identity.public.post_quantum,
        }
        typer.echo(json.dumps(done, sort_keys=True))
        return
    typer.echo(f"created identity {name!r} in {Keystore.path(path)}")
    typer.echo(f"party id: {identity.party_id}")
    if unencrypted_keystore:
        typer.secho(
            "UNENCRYPTED keystore (--unencrypted-keystore): anyone who can read the file has "
            "the keys; encrypt it later with `sealroom keys encrypt`",
            fg="yellow",
            err=True,
        )
    else:
        typer.echo("keystore encrypted with your passphrase (argon2id, AES-256-GCM)")
    typer.echo(f"fingerprint: {fingerprint(identity.party_id)} (others see it next to your name)")


@app.command()
def whoami(
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """This party: its id (what a peer gives to `psi --with`), fingerprint, name, keystore and
    coordinator. Reads the keystore only; nothing is sent."""
    from sealroom.crypto.keys import fingerprint
    from sealroom.crypto.keystore import Keystore, resolve_home
    from sealroom.text import printable

    with handle_errors(json_output):
        path = resolve_home(home, os.environ)
        entry = Keystore.load_public(path)  # no passphrase: only public parts are shown
        pid = entry.party_id
        data = {
            "party": pid,
            "fingerprint": fingerprint(pid),
            "name": entry.name,
            "keystore": str(entry.path),
            "coordinator": url,
        }

        def human() -> None:
            typer.echo(f"party id     {pid}")
            typer.echo(f"fingerprint  {fingerprint(pid)}")
            typer.echo(f"name         {printable(entry.name)}")
            typer.echo(f"keystore     {entry.path}")
            typer.echo(f"coordinator  {url}")

        emit(json_output, data, human)


@app.command()
def verify(
    bundle: Annotated[Path, typer.Argument(help="Proof bundle (JSON) to verify.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    allow_simulated: Annotated[
        bool,
        typer.Option(
            "--allow-simulated",
            help="Accept evidence from a SIMULATED enclave (no hardware protection).",
        ),
    ] = False,
    result: Annotated[
        list[Path] | None,
        typer.Option("--result", help="A released output to check against the receipt."),
    ] = None,
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
            help="Pin the deployment's simulation root (hex public key): simulated evidence "
            "under any other root fails.",
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="A checkpoint of the log you trust (a signed note, e.g. the file `sealroom "
            "checkpoint show` names); the bundle's must be consistent with it.",
        ),
    ] = None,
    witness: WitnessOpt = None,
    witnesses_required: WitnessesRequiredOpt = None,
) -> None:
    """Verify a proof bundle offline: signatures, TEE evidence, references, log proofs.

    Exits 0 only if every check passes (8 if one fails, 2 for a bad command line).
    """
    from sealroom.attestation.pins import parse_simulation_root
    from sealroom.statements import ReleasedOutput
    from sealroom.transparency.cosignature import WitnessPolicy
    from sealroom.verification.bundle import ProofBundle
    from sealroom.verification.trust import trust_policy
    from sealroom.verification.verify import (
        BundleRejected,
        Check,
        VerificationReport,
        verify_bundle,
    )

    raw = _read(bundle, "bundle", json_output)
    if _is_run_record(raw):
        _verify_run_record(bundle, raw, json_output)
    try:
        outputs = [ReleasedOutput.from_json(_read(p, "result", json_output)) for p in result or []]
        if witnesses_required is not None and not witness:
            raise InvalidInput("--witnesses-required needs at least one --witness")
        policy = trust_policy(
            allow_simulated=allow_simulated,
            log_key=log_key,
            measurements=_read(measurements, "measurements", json_output) if measurements else None,
            simulation_root=parse_simulation_root(simulation_root) if simulation_root else None,
            checkpoint=_note(_read(checkpoint, "checkpoint", json_output)) if checkpoint else None,
            witnesses=WitnessPolicy.parse(witness, witnesses_required) if witness else None,
        )
    except SealroomError as exc:
        fail(json_output, code=exc.code, message=exc.public_message, detail=_detail(exc))
        raise typer.Exit(EXIT_USAGE) from None
    try:
        parsed = ProofBundle.from_json(raw)
        report = verify_bundle(parsed, trust=policy, outputs=outputs)
    except BundleRejected as exc:
        report = exc.report
    except SealroomError as exc:
        report = VerificationReport(
            checks=(Check("bundle format", False, exc.detail or exc.public_message),),
            warnings=(),
            simulated=False,
        )
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        _print_report(bundle, report)
    raise typer.Exit(EXIT_VERIFICATION_FAILED if report.failures else EXIT_OK)


def _detail(exc: SealroomError) -> str:
    return " ".join((exc.detail or exc.public_message).split())


def _is_run_record(raw: bytes) -> bool:
    """A protocol run record (``--out`` of psi, pjc, train) rather than a proof bundle."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return False
    return isinstance(doc, dict) and {"receipts", "session", "output_salt"} <= set(doc)


def _verify_run_record(path: Path, raw: bytes, json_output: bool) -> None:
    from sealroom.client.protocol_runs import check_run_record
    from sealroom.statements import parse_json_strict

    try:
        run = check_run_record(parse_json_strict(raw, max_size=64 << 20, what="run record"))
    except SealroomError as exc:
        if json_output:
            typer.echo(json.dumps({"verified": False, "error": exc.detail}, sort_keys=True))
        else:
            typer.secho(f"NOT VERIFIED: {exc.detail}", fg="red", bold=True)
        raise typer.Exit(EXIT_VERIFICATION_FAILED) from None
    missing = [r for r in run.participants if r not in run.signed]
    data = {
        "verified": True,
        "protocol": run.protocol,
        "session": run.session,
        "holder": run.role,
        "signed_by": list(run.signed),
        "not_signed_by": missing,
        "learned": dict(run.learned),
    }
    if json_output:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        typer.echo(f"Verifying the {run.protocol} run record {path}")
        typer.echo(f"  receipts of {', '.join(run.signed)} agree on one run and its messages")
        typer.echo(f"  what {run.role} learned opens its own receipt's output commitment")
        if missing:
            typer.secho(f"  no receipt from {', '.join(missing)} (dropped out)", fg="yellow")
        typer.secho(f"VERIFIED: {run.protocol} run {run.session}", fg="green", bold=True)
    raise typer.Exit(EXIT_OK)


def _note(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the --checkpoint file is not a signed note (not UTF-8 text)") from None


def _print_report(path: Path, report: VerificationReport) -> None:
    typer.echo(f"Verifying {path}")
    if report.simulated:
        warn_simulated(err=False)
    width = max(len(c.name) for c in report.checks)
    for c in report.checks:
        mark = typer.style("PASS", fg="green") if c.passed else typer.style("FAIL", fg="red")
        typer.echo(f"  {mark}  {c.name.ljust(width)}  {c.detail}")
    for w in report.warnings:
        typer.secho(f"  warning: {w}", fg="yellow")
    if report.region is not None:
        typer.echo(f"  region: the enclave's attested key document declares {report.region}")
    from sealroom.verification.verify import verdict

    typer.secho(verdict(report), fg="red" if report.failures else "green", bold=True)


@app.command()
def demo(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Leave each result and proof bundle in this (empty) directory."),
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help="The narrative goes to stderr; stdout gets one JSON document with the outcome.",
        ),
    ] = False,
) -> None:
    """Run the reference scenario end to end: coordinator, SIMULATED enclave, four parties."""
    from sealroom.demo import run_demo

    def narrate(line: str) -> None:
        typer.echo(line, err=json_output)

    try:
        code = run_demo(out, echo=narrate)
    except SealroomError as exc:
        fail(json_output, code=exc.code, message=exc.public_message, detail=_detail(exc))
        raise typer.Exit(exit_code_for(exc)) from None
    if json_output:
        files = sorted(str(p) for p in out.rglob("*") if p.is_file()) if out and code == 0 else []
        where = str(out) if out is not None else None
        doc = {"ok": code == 0, "exit_code": code, "simulated": True, "out": where, "files": files}
        typer.echo(json.dumps(doc, sort_keys=True))
    raise typer.Exit(code)


party.register(app)
services.register(app)
protocols.register(app)
witness.register(app)
checkpoint.register(app)
keys.register(app)
deploy.register(app)
agents.register(app)
credits.register(app)
watch.register(app)
rooms.register(app)
ui.register(app)
audit.register(app)
market.register(app)


def main() -> None:
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    try:
        app()
    except SealroomError as exc:  # pragma: no cover - commands catch their own
        fail(
            wants_json(sys.argv[1:]), code=exc.code, message=exc.public_message, detail=_detail(exc)
        )
        sys.exit(exit_code_for(exc))
