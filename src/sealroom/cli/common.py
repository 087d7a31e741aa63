"""What every networked CLI command shares: options, the party, output, errors, the banner.

Conventions: ``--json`` prints exactly one JSON document on stdout (also for
errors); otherwise readable text on stdout. Warnings, banners and progress go
to stderr. An error is one line ``error: <message> [<code>]`` on stderr and the
exit code of :mod:`sealroom.cli.exits` for its kind.

Start-up matters (every agent step is a process): this module and the command
modules import the SDK, crypto and data libraries inside the commands, not at the top.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sealroom.cli.exits import ExitCode, exit_code_for
from sealroom.errors import InvalidInput, KeystoreError, KeystoreLocked, SealroomError

if TYPE_CHECKING:
    from sealroom.client import Client, Party
    from sealroom.client.http import Progress
    from sealroom.crypto.keystore import PassphraseSource

__all__ = [
    "EXIT_FAILED",
    "PASSPHRASE_ENV",
    "PASSPHRASE_FILE_ENV",
    "Command",
    "HomeOpt",
    "JsonOpt",
    "PassphraseFileOpt",
    "UnencryptedOpt",
    "UrlOpt",
    "command",
    "emit",
    "fail",
    "handle_errors",
    "new_passphrase",
    "passphrase_source",
    "progress_bar",
    "prompt_only",
    "read_file",
    "readable_numbers",
    "report",
    "table",
    "warn_keystore",
    "warn_simulated",
    "who",
]

EXIT_FAILED = int(ExitCode.ERROR)
DEFAULT_URL = "http://127.0.0.1:8470"
"""``sealroom.client.http.DEFAULT_URL``, repeated here so start-up need not import the SDK."""
URL_ENV = "SEALROOM_URL"

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one machine-readable JSON document on stdout.")
]
UrlOpt = Annotated[
    str,
    typer.Option("--url", envvar=URL_ENV, help=f"Coordinator URL (${URL_ENV}).", show_default=True),
]
HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="Keystore directory (default: $SEALROOM_HOME or ~/.sealroom)."),
]
PCCS_URL_ENV = "SEALROOM_PCCS_URL"
PccsUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--pccs-url",
        envvar=PCCS_URL_ENV,
        metavar="URL",
        help=(
            "Check enclave evidence with current DCAP collateral from this PCCS (Intel's PCS "
            f"or your cloud's; ${PCCS_URL_ENV}). Unreachable: the command fails (exit 9). "
            "Without it, the collateral the enclave's host sent is used, with a warning."
        ),
    ),
]
PASSPHRASE_ENV = "SEALROOM_PASSPHRASE"  # noqa: S105 - the name of a variable, not a secret
PASSPHRASE_FILE_ENV = "SEALROOM_PASSPHRASE_FILE"  # noqa: S105 - a variable name
PassphraseFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        envvar=PASSPHRASE_FILE_ENV,
        help=(
            f"Read the keystore passphrase from this file (first line; mode 0600; "
            f"${PASSPHRASE_FILE_ENV}). Otherwise ${PASSPHRASE_ENV}, then a prompt."
        ),
    ),
]
UnencryptedOpt = Annotated[
    bool,
    typer.Option(
        "--unencrypted-keystore",
        help="Store the private keys UNENCRYPTED (anyone who can read the file has them).",
    ),
]
DEFAULT_URL_VALUE = DEFAULT_URL


def _one_line(text: str) -> str:
    return " ".join(text.split())


@contextmanager
def handle_errors(json_output: bool) -> Iterator[None]:
    """Turn a sealroom error into one stderr line (+ a JSON error document) and its exit code."""
    try:
        yield
    except SealroomError as exc:
        message = _one_line(exc.detail or exc.public_message)
        fail(json_output, code=exc.code, message=exc.public_message, detail=message)
        raise typer.Exit(exit_code_for(exc)) from None


def fail(json_output: bool, *, code: str, message: str, detail: str) -> None:
    """Report an error: one line on stderr, and with ``--json`` the error document on stdout."""
    typer.echo(f"error: {_one_line(detail)} [{code}]", err=True)
    if json_output:
        doc = {"error": {"code": code, "message": message, "detail": _one_line(detail)}}
        typer.echo(json.dumps(doc, sort_keys=True))


def emit(json_output: bool, data: Any, human: Callable[[], None]) -> None:
    if json_output:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        human()


def report(
    json_output: bool,
    data: Any,
    *lines: str,
    rows: Sequence[Sequence[str]] | None = None,
    header: Sequence[str] = (),
) -> None:
    """:func:`emit` for the usual human form: ``lines``, then a :func:`table` of ``rows``
    under ``header`` when rows are given."""

    def human() -> None:
        for line in lines:
            typer.echo(line)
        if rows is not None:
            table(rows, header)

    emit(json_output, data, human)


_TINY = re.compile(r"^-?0\.0{6,}[1-9][0-9]*$")


def readable_numbers(value: Any) -> Any:
    """``value`` (a result body) for a person: a decimal string smaller than 1e-6 in magnitude
    becomes scientific notation with its significant digits ("3.2e-45", not 45 zeros);
    everything else is unchanged. ``--json`` output keeps the exact strings."""
    if isinstance(value, str) and _TINY.match(value):
        digits = value.rstrip("0").split(".")[1].lstrip("0")
        return f"{Decimal(value):.{len(digits) - 1}e}"
    if isinstance(value, dict):
        return {k: readable_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [readable_numbers(v) for v in value]
    return value


def who(party: str, names: Client | str | None = None) -> str:
    """A party as people should see it: its display name (escaped) next to its fingerprint,
    ``amiller (abcd-efgh-ijkl-mnop)``; names are not identities. ``names`` is the name, or a
    client to look it up with (best effort: the fingerprint alone if that fails)."""
    from sealroom.crypto.keys import fingerprint
    from sealroom.text import printable

    name: str | None
    if names is None or isinstance(names, str):
        name = names
    else:
        try:
            name = names.party(party).name
        except SealroomError:
            name = None
    fp = fingerprint(party)
    return f"{printable(name)} ({fp})" if name else f"party {fp}"


def read_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror}") from None


def warn_simulated(*, err: bool = True) -> None:
    """The simulated-enclave banner, in red: on every command that accepts simulated evidence,
    and on every output that a simulated enclave touched."""
    from sealroom.attestation.simulated import SIMULATED_BANNER

    typer.secho(f"!! {SIMULATED_BANNER} !!", fg="red", bold=True, err=err)


def _read_passphrase_file(path: Path) -> str:
    """The first line of ``path``, refusing a file that others can read (as the keystore)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise KeystoreError(f"cannot read passphrase file {path}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISREG(mode) and mode & 0o077:
            raise KeystoreError(
                f"passphrase file {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`"
            )
        raw = os.read(fd, 64 * 1024)
    finally:
        os.close(fd)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise KeystoreError(f"passphrase file {path} is not UTF-8 text") from None
    line = text.split("\n", 1)[0].removesuffix("\r")
    if not line:
        raise KeystoreError(f"passphrase file {path} has an empty first line")
    return line


def _configured_passphrase(passphrase_file: Path | None) -> str | None:
    """A file (the option, else ``$SEALROOM_PASSPHRASE_FILE``), else ``$SEALROOM_PASSPHRASE``."""
    if passphrase_file is not None:
        return _read_passphrase_file(passphrase_file)
    if named := os.environ.get(PASSPHRASE_FILE_ENV):
        return _read_passphrase_file(Path(named))
    if value := os.environ.get(PASSPHRASE_ENV):
        return value
    return None


def _can_prompt() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def passphrase_source(passphrase_file: Path | None = None) -> PassphraseSource:
    """How to open an encrypted keystore: the file, the environment, else a prompt on a terminal.

    Returned as a function so that nothing is read or asked unless the
    keystore turns out to be encrypted.
    """

    def obtain() -> str:
        configured = _configured_passphrase(passphrase_file)
        if configured is not None:
            return configured
        if not _can_prompt():
            raise KeystoreLocked(
                f"the keystore is encrypted: set {PASSPHRASE_ENV} or {PASSPHRASE_FILE_ENV}, "
                "pass --passphrase-file where a command offers it, or run on a terminal"
            )
        return getpass.getpass("keystore passphrase: ")

    return obtain


def prompt_only(prompt: str) -> PassphraseSource:
    """A passphrase asked on the terminal when needed (never from the environment)."""

    def obtain() -> str:
        if not _can_prompt():
            raise KeystoreLocked("the current passphrase is needed: pass --old-passphrase-file")
        return getpass.getpass(prompt)

    return obtain


def new_passphrase(passphrase_file: Path | None, *, unencrypted: bool) -> str | None:
    """The passphrase for a keystore being written, or ``None`` if the caller asked for none."""
    if unencrypted:
        if passphrase_file is not None:
            raise InvalidInput("--unencrypted-keystore and --passphrase-file exclude each other")
        return None
    configured = _configured_passphrase(passphrase_file)
    if configured is not None:
        return configured
    if not _can_prompt():
        raise KeystoreError(
            "a keystore is encrypted with a passphrase: set "
            f"{PASSPHRASE_ENV} or {PASSPHRASE_FILE_ENV}, pass --passphrase-file, run on a "
            "terminal to be asked, or pass --unencrypted-keystore to store the keys unencrypted"
        )
    first = getpass.getpass("new keystore passphrase: ")
    if not first:
        raise KeystoreError("the passphrase must not be empty")
    if getpass.getpass("repeat the passphrase: ") != first:
        raise KeystoreError("the two passphrases differ; nothing was written")
    return first


def warn_keystore(home: Path) -> None:
    """On stderr: a legacy plaintext keystore is still used, and how to encrypt it."""
    from sealroom.crypto.keystore import Keystore

    try:
        entry = Keystore.load_public(home)
    except SealroomError:
        return  # loading the keys reports the problem properly
    if entry.protection == "legacy-plaintext":
        typer.secho(
            f"warning: keystore {entry.path} stores its private keys unencrypted (an old "
            "format); encrypt it with `sealroom keys encrypt`",
            fg="yellow",
            err=True,
        )


class Command:
    """One networked command's connections: this party or a public client, opened on first use
    (after the command's own checks), closed when the command ends."""

    __slots__ = ("_home", "_party", "_pccs_url", "_stack", "_url")

    def __init__(
        self, stack: ExitStack, url: str, home: Path | None, pccs_url: str | None = None
    ) -> None:
        self._stack = stack
        self._url = url
        self._home = home
        self._pccs_url = pccs_url
        self._party: Party | None = None

    def party(self) -> Party:
        """This party (its keystore from --home, $SEALROOM_HOME or ~/.sealroom), registered."""
        if self._party is None:
            from sealroom.attestation.collateral import collateral_source
            from sealroom.client import Party
            from sealroom.crypto.keystore import resolve_home

            home = resolve_home(self._home, os.environ)
            warn_keystore(home)
            collateral = collateral_source(self._pccs_url)
            self._party = self._stack.enter_context(
                Party.open(
                    home=home,
                    url=self._url,
                    passphrase=passphrase_source(),
                    collateral=collateral,
                )
            )
        return self._party

    def public(self) -> Client:
        """An anonymous client, for public reads (no keystore needed)."""
        from sealroom.client import Client

        return self._stack.enter_context(Client(base_url=self._url))


@contextmanager
def command(
    json_output: bool,
    *,
    url: str = DEFAULT_URL,
    home: Path | None = None,
    allow_simulated: bool = False,
    pccs_url: str | None = None,
) -> Iterator[Command]:
    """What every networked command starts with: the banner when it accepts a simulated
    enclave, errors as one line (:func:`handle_errors`), and its connections."""
    if allow_simulated:
        warn_simulated()
    with handle_errors(json_output), ExitStack() as stack:
        yield Command(stack, url, home, pccs_url)


def progress_bar(label: str) -> Progress:
    """Upload/download progress on stderr: redrawn on a terminal, start and end otherwise."""
    tty = sys.stderr.isatty()

    def report(done: int, total: int) -> None:
        mib = f"{done / 2**20:.1f}/{total / 2**20:.1f} MiB"
        if tty:
            end = "\n" if done >= total else ""
            typer.echo(f"\r{label} {mib}", err=True, nl=False)
            if end:
                typer.echo("", err=True)
        elif done == 0 or done >= total:
            typer.echo(f"{label} {mib}", err=True)

    return report


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> None:
    """A plain aligned text table on stdout."""
    if not rows:
        typer.echo("(none)")
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    typer.echo("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    for r in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
