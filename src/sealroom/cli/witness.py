"""``sealroom witness``: run an independent transparency-log witness (C2SP tlog-witness).

A witness has its own keystore (``init`` makes one, in a directory of its own, never a
party's) and its own state: the latest checkpoint it cosigned for each log it witnesses.
Logs submit checkpoints to it (``sealroom serve --witness <vkey>@<url>``); parties and
verifiers require its cosignature by its key (``sealroom checkpoint require``, ``sealroom
verify --witness``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sealroom.cli.common import (
    HomeOpt,
    JsonOpt,
    PassphraseFileOpt,
    UnencryptedOpt,
    emit,
    handle_errors,
    new_passphrase,
    passphrase_source,
    warn_keystore,
)

if TYPE_CHECKING:
    from sealroom.transparency.cosignature import Cosigner

__all__ = ["register"]

witness_app = typer.Typer(
    no_args_is_help=True,
    help="An independent witness that cosigns a log's checkpoints only if they are consistent.",
)

DEFAULT_PORT = 8471


def _cosigner(home: Path | None, passphrase_file: Path | None = None) -> Cosigner:
    """The witness's cosigner: the signing key of its keystore, under the keystore's name."""
    from sealroom.crypto.keystore import Keystore, resolve_home
    from sealroom.transparency.cosignature import Cosigner

    path = resolve_home(home, os.environ)
    warn_keystore(path)
    entry = Keystore.load_entry(path, passphrase=passphrase_source(passphrase_file))
    seed, _ = entry.identity.private_bytes()
    return Cosigner.from_seed(entry.name, seed)


@witness_app.command("init")
def init(
    name: Annotated[
        str,
        typer.Option(
            "--name",
            envvar="SEALROOM_WITNESS_NAME",
            help="The witness's name, a schema-less URL such as witness.example/w1.",
        ),
    ],
    home: HomeOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    unencrypted_keystore: UnencryptedOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Create the witness's key in a keystore directory of its own; print its public key."""
    from sealroom.crypto.keystore import Keystore, resolve_home
    from sealroom.transparency.checkpoint import check_key_name
    from sealroom.transparency.cosignature import Cosigner

    with handle_errors(json_output):
        check_key_name(name)
        path = resolve_home(home, os.environ)
        passphrase = new_passphrase(passphrase_file, unencrypted=unencrypted_keystore)
        identity = Keystore.create(
            path, name=name, passphrase=passphrase, unencrypted=unencrypted_keystore
        )
        seed, _ = identity.private_bytes()
        vkey = Cosigner.from_seed(name, seed).key.vkey
        emit(
            json_output,
            {
                "name": name,
                "key": vkey,
                "keystore": str(Keystore.path(path)),
                "protection": "unencrypted" if unencrypted_keystore else "argon2id-aes256gcm",
            },
            lambda: typer.echo(
                f"created witness {name!r} in {Keystore.path(path)}"
                f"{' (UNENCRYPTED keystore)' if unencrypted_keystore else ''}\nkey: {vkey}"
            ),
        )


@witness_app.command("key")
def key(
    home: HomeOpt = None, passphrase_file: PassphraseFileOpt = None, json_output: JsonOpt = False
) -> None:
    """Print the witness's cosignature key (vkey), which logs and clients pin."""
    with handle_errors(json_output):
        vkey = _cosigner(home, passphrase_file).key.vkey
        emit(json_output, {"key": vkey}, lambda: typer.echo(vkey))


@witness_app.command("serve")
def serve(
    log: Annotated[
        list[str],
        typer.Option(
            "--log",
            envvar="SEALROOM_WITNESS_LOGS",
            help="The key (vkey) of a log to witness; its name is the log's origin "
            "(repeatable; a coordinator prints its key at GET /v1/log/key).",
        ),
    ],
    home: HomeOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            envvar="SEALROOM_WITNESS_STATE",
            file_okay=False,
            help="Where the latest cosigned checkpoint of each log is kept "
            "(default: <home>/witness-state).",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", envvar="SEALROOM_WITNESS_HOST", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            "--port", envvar="SEALROOM_WITNESS_PORT", min=1, max=65535, help="Port to listen on."
        ),
    ] = DEFAULT_PORT,
) -> None:
    """Serve the tlog-witness API: POST /add-checkpoint, GET /<origin hash>/checkpoint,
    GET /healthz."""
    import uvicorn

    from sealroom.api.witness import create_witness_app
    from sealroom.crypto.keystore import resolve_home
    from sealroom.transparency.checkpoint import NoteVerifier
    from sealroom.transparency.witness import Witness, WitnessState

    with handle_errors(False):
        cosigner = _cosigner(home, passphrase_file)
        logs = [NoteVerifier.from_vkey(v) for v in log]
        directory = state if state is not None else resolve_home(home, os.environ) / "witness-state"
        own = WitnessState(directory)
        try:
            witness = Witness(cosigner, logs, own)
            typer.echo(f"witness {witness.key}", err=True)
            typer.echo(
                f"witnessing {', '.join(v.name for v in logs)}; state in {directory}", err=True
            )
            uvicorn.run(
                create_witness_app(witness),
                host=host,
                port=port,
                log_level="warning",
                proxy_headers=False,
            )
        finally:
            own.close()


def register(app: typer.Typer) -> None:
    app.add_typer(witness_app, name="witness")
