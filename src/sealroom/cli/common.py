"""What every networked CLI command shares: options, the party session, output, errors.

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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from sealroom.client.http import DEFAULT_URL, Client, Progress
from sealroom.crypto.keys import Identity
from sealroom.crypto.keystore import Keystore, resolve_home
from sealroom.errors import Conflict, InvalidInput, SealroomError

__all__ = [
    "EXIT_FAILED",
    "HomeOpt",
    "JsonOpt",
    "Session",
    "UrlOpt",
    "emit",
    "handle_errors",
    "open_session",
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


def warn_simulated() -> None:
    """The banner shown every time a command is told to accept simulated evidence."""
    line = "!" * 78
    typer.secho(line, fg="red", bold=True, err=True)
    typer.secho(
        "!! --allow-simulated: accepting a SIMULATED enclave. It is software only and\n"
        "!! protects NOTHING from whoever runs it. Development and tests only.",
        fg="red",
        bold=True,
        err=True,
    )
    typer.secho(line, fg="red", bold=True, err=True)


@dataclass(frozen=True, slots=True)
class Session:
    client: Client
    identity: Identity
    name: str
    home: Path


def open_session(url: str, home: Path | None) -> Session:
    """Load the keystore, connect, and make sure the party is registered (idempotent)."""
    path = resolve_home(home, os.environ)
    entry = Keystore.load_entry(path)
    client = Client(base_url=url, identity=entry.identity)
    try:
        client.register_party(entry.name)
    except Conflict:
        pass  # registered earlier under another display name; the keys are what count
    except SealroomError:
        client.close()
        raise
    return Session(client=client, identity=entry.identity, name=entry.name, home=path)


def public_client(url: str) -> Client:
    return Client(base_url=url)


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
