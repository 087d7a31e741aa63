"""What every networked CLI command shares: options, the party, output, errors, the banner.

Conventions: ``--json`` prints exactly one JSON document on stdout (also for
errors); otherwise readable text on stdout. Warnings, banners and progress go
to stderr. An error is one line ``error: <message> [<code>]`` on stderr and a
non-zero exit code.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from sealroom.attestation.simulated import SIMULATED_BANNER
from sealroom.client import Client, Party
from sealroom.client.http import DEFAULT_URL, Progress
from sealroom.crypto.keystore import resolve_home
from sealroom.errors import InvalidInput, SealroomError

__all__ = [
    "EXIT_FAILED",
    "Command",
    "HomeOpt",
    "JsonOpt",
    "UrlOpt",
    "command",
    "emit",
    "handle_errors",
    "progress_bar",
    "read_file",
    "table",
    "warn_simulated",
]

EXIT_FAILED = 1
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
DEFAULT_URL_VALUE = DEFAULT_URL


def _one_line(text: str) -> str:
    return " ".join(text.split())


@contextmanager
def handle_errors(json_output: bool) -> Iterator[None]:
    """Turn a sealroom error into one stderr line (+ a JSON error document) and exit 1."""
    try:
        yield
    except SealroomError as exc:
        message = _one_line(exc.detail or exc.public_message)
        typer.echo(f"error: {message} [{exc.code}]", err=True)
        if json_output:
            doc = {"error": {"code": exc.code, "message": exc.public_message, "detail": message}}
            typer.echo(json.dumps(doc, sort_keys=True))
        raise typer.Exit(EXIT_FAILED) from None


def emit(json_output: bool, data: Any, human: Callable[[], None]) -> None:
    if json_output:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        human()


def read_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror}") from None


def warn_simulated(*, err: bool = True) -> None:
    """The simulated-enclave banner, in red: on every command that accepts simulated evidence,
    and on every output that a simulated enclave touched."""
    typer.secho(f"!! {SIMULATED_BANNER} !!", fg="red", bold=True, err=err)


class Command:
    """One networked command's connections: this party or a public client, opened on first use
    (after the command's own checks), closed when the command ends."""

    __slots__ = ("_home", "_party", "_stack", "_url")

    def __init__(self, stack: ExitStack, url: str, home: Path | None) -> None:
        self._stack = stack
        self._url = url
        self._home = home
        self._party: Party | None = None

    def party(self) -> Party:
        """This party (its keystore from --home, $SEALROOM_HOME or ~/.sealroom), registered."""
        if self._party is None:
            home = resolve_home(self._home, os.environ)
            self._party = self._stack.enter_context(Party.open(home=home, url=self._url))
        return self._party

    def public(self) -> Client:
        """An anonymous client, for public reads (no keystore needed)."""
        return self._stack.enter_context(Client(base_url=self._url))


@contextmanager
def command(
    json_output: bool,
    *,
    url: str = DEFAULT_URL,
    home: Path | None = None,
    allow_simulated: bool = False,
) -> Iterator[Command]:
    """What every networked command starts with: the banner when it accepts a simulated
    enclave, errors as one line (:func:`handle_errors`), and its connections."""
    if allow_simulated:
        warn_simulated()
    with handle_errors(json_output), ExitStack() as stack:
        yield Command(stack, url, home)


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
