"""``sealroom keys``: this party's keystore and the public keys others need from it.

``export-public`` prints the public identity document (what a correspondent pins or
seals to) from the clear part of the keystore: no passphrase. ``encrypt`` rewrites
a keystore encrypted under a passphrase (an old plaintext one, an unencrypted one,
or an encrypted one under a new passphrase). ``log-key`` prints the transparency-log
key this party pinned for a coordinator, offline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from sealroom.cli.common import (
    DEFAULT_URL_VALUE,
    HomeOpt,
    JsonOpt,
    UrlOpt,
    emit,
    handle_errors,
    new_passphrase,
    passphrase_source,
    prompt_only,
)

__all__ = ["PUBLIC_IDENTITY_TYPE", "register"]

PUBLIC_IDENTITY_TYPE = "sealroom-public-identity"

keys_app = typer.Typer(
    no_args_is_help=True,
    help="This party's keystore: export its public identity, encrypt it, show pinned log keys.",
)


@keys_app.command("export-public")
def export_public(home: HomeOpt = None) -> None:
    """Print this party's public identity document (JSON on stdout); needs no passphrase."""
    from sealroom.crypto.keys import b64encode
    from sealroom.crypto.keystore import Keystore, resolve_home

    with handle_errors(False):
        entry = Keystore.load_public(resolve_home(home, os.environ))
        public = entry.public
        doc: dict[str, Any] = {
            "type": PUBLIC_IDENTITY_TYPE,
            "version": 1,
            "name": entry.name,
            "party_id": entry.party_id,
            "signing_key": b64encode(public.signing_key),
            "sealing_key": b64encode(public.sealing_key),
            "post_quantum": public.post_quantum,
        }
        if public.kem_key is not None:
            doc["kem_key"] = b64encode(public.kem_key)
        typer.echo(json.dumps(doc, indent=2, sort_keys=True))


@keys_app.command("encrypt")
def encrypt(
    home: HomeOpt = None,
    passphrase_file: Annotated[
        Path | None,
        typer.Option(
            "--passphrase-file",
            help="Read the NEW passphrase from this file (first line; mode 0600). "
            "Otherwise $SEALROOM_PASSPHRASE_FILE, $SEALROOM_PASSPHRASE, or a prompt (twice).",
        ),
    ] = None,
    old_passphrase_file: Annotated[
        Path | None,
        typer.Option(
            "--old-passphrase-file",
            help="For an encrypted keystore: read its current passphrase from this file "
            "(otherwise a prompt).",
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Encrypt this party's keystore under a passphrase (same keys, same party id).

    For a keystore that is already encrypted this changes the passphrase: the old one
    comes from --old-passphrase-file or a prompt. On any failure the file stays as it was.
    """
    from sealroom.crypto.keystore import Keystore, resolve_home

    with handle_errors(json_output):
        path = resolve_home(home, os.environ)
        before = Keystore.load_public(path)
        old = None
        if before.protection == "argon2id-aes256gcm":
            old = (
                passphrase_source(old_passphrase_file)
                if old_passphrase_file is not None
                else prompt_only("current keystore passphrase: ")
            )
        passphrase = new_passphrase(passphrase_file, unencrypted=False) or ""
        entry = Keystore.encrypt(path, passphrase=passphrase, old_passphrase=old)
        emit(
            json_output,
            {
                "party": entry.party_id,
                "keystore": str(entry.path),
                "protection": entry.protection,
                "was": before.protection,
                "post_quantum": entry.identity.public.post_quantum,
            },
            lambda: _say_encrypted(
                entry.path, before.protection, entry.identity.public.post_quantum
            ),
        )


def _say_encrypted(path: Path, was: str, post_quantum: bool) -> None:
    typer.echo(f"encrypted {path} (argon2id, AES-256-GCM; was {was})")
    if not post_quantum:
        typer.echo(
            "note: this identity has no post-quantum key, so data sealed to it uses the "
            "X25519-only suite; a new identity (`sealroom init`) gets one"
        )


@keys_app.command("log-key")
def log_key(
    url: UrlOpt = DEFAULT_URL_VALUE, home: HomeOpt = None, json_output: JsonOpt = False
) -> None:
    """Print the transparency-log key pinned for the coordinator at --url (offline).

    The key is pinned on first contact (e.g. `sealroom checkpoint show`); compare it
    with the one the operator publishes before you rely on it.
    """
    from sealroom.client.local import COORDINATORS_FILE, pinned_log_key
    from sealroom.crypto.keystore import resolve_home
    from sealroom.errors import NotFound

    with handle_errors(json_output):
        home_path = resolve_home(home, os.environ)
        key = pinned_log_key(home_path, url)
        if key is None:
            raise NotFound(
                f"no log key pinned for {url} in {home_path / COORDINATORS_FILE}; run "
                f"`sealroom checkpoint show --url {url}` to pin it on first use"
            )
        emit(json_output, {"url": url, "log_key": key}, lambda: typer.echo(key))


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
