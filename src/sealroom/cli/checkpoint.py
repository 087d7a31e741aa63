"""``sealroom checkpoint``: what this party trusts of the coordinator's log.

``show`` advances the trusted checkpoint to the coordinator's latest (with a consistency
proof) and says where it is kept, for ``sealroom verify --checkpoint``; ``require`` makes
every later check demand m of n witness cosignatures; ``prove`` adds to a bundle the
consistency proof an offline verifier needs to relate it to a trusted checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sealroom.cli.common import (
    DEFAULT_URL_VALUE,
    HomeOpt,
    JsonOpt,
    UrlOpt,
    emit,
    handle_errors,
    read_file,
)

if TYPE_CHECKING:
    from sealroom.client.checkpoints import TrustedLog

__all__ = ["WitnessOpt", "WitnessesRequiredOpt", "register"]

WitnessOpt = Annotated[
    list[str] | None,
    typer.Option("--witness", help="A witness's cosignature key (vkey) (repeatable)."),
]
WitnessesRequiredOpt = Annotated[
    int | None,
    typer.Option(
        "--witnesses-required",
        min=1,
        help="How many of the --witness keys must have cosigned (default: all).",
    ),
]

checkpoint_app = typer.Typer(
    no_args_is_help=True,
    help="This party's trusted checkpoint of the coordinator's log, and the witnesses it requires.",
)


@contextmanager
def _trusted_log(url: str, home: Path | None, json_output: bool) -> Iterator[TrustedLog]:
    """The coordinator's log as this party trusts it; errors end the command in one line."""
    from sealroom.client.checkpoints import TrustedLog
    from sealroom.client.http import Client
    from sealroom.crypto.keystore import resolve_home

    with handle_errors(json_output), Client(base_url=url) as client:
        yield TrustedLog(client, resolve_home(home, os.environ))


@checkpoint_app.command("show")
def show(
    url: UrlOpt = DEFAULT_URL_VALUE, home: HomeOpt = None, json_output: JsonOpt = False
) -> None:
    """Advance to the coordinator's latest checkpoint (consistently) and print it."""
    from sealroom.crypto.keys import b64encode
    from sealroom.transparency.cosignature import cosignatures

    with _trusted_log(url, home, json_output) as log:
        cp = log.latest()
        policy = log.witness_policy()
        note = log.trusted_note() or ""
        cosigned = cosignatures(note, policy.witnesses) if policy is not None else ()
        doc = {
            "origin": cp.origin,
            "size": cp.size,
            "root_hash": b64encode(cp.root_hash),
            "log_key": log.log_key,
            "file": str(log.checkpoint_path),
            "witnesses_required": policy.describe() if policy is not None else None,
            "cosigned_by": [{"witness": c.witness.vkey, "time": c.timestamp} for c in cosigned],
        }

        def human() -> None:
            typer.echo(f"{cp.origin}: size {cp.size}, root {b64encode(cp.root_hash)}")
            typer.echo(f"trusted checkpoint: {log.checkpoint_path}")
            if policy is not None:
                typer.echo(f"witnesses required: {policy.describe()}")
                for c in cosigned:
                    typer.echo(f"  cosigned by {c.witness.label} at unix time {c.timestamp}")

        emit(json_output, doc, human)


@checkpoint_app.command("require")
def require(
    witness: WitnessOpt = None,
    witnesses_required: WitnessesRequiredOpt = None,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """From now on, trust the coordinator's checkpoints only with these witnesses' cosignatures."""
    from sealroom.transparency.cosignature import WitnessPolicy

    with _trusted_log(url, home, json_output) as log:
        policy = WitnessPolicy.parse(witness or [], witnesses_required)
        path = log.require_witnesses(policy)
        emit(
            json_output,
            {"log_key": log.log_key, "witnesses_required": policy.describe(), "file": str(path)},
            lambda: typer.echo(f"checkpoints of {log.log_key} now need {policy.describe()}"),
        )


@checkpoint_app.command("prove")
def prove(
    bundle: Annotated[Path, typer.Argument(help="The proof bundle to add a proof to.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the bundle with the proof.")],
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="The trusted checkpoint to relate the bundle to (default: this party's).",
        ),
    ] = None,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Add the consistency proof between a bundle's checkpoint and a trusted one (online)."""
    from sealroom.crypto.files import write_private
    from sealroom.errors import InvalidInput
    from sealroom.verification.bundle import ProofBundle

    with _trusted_log(url, home, json_output) as log:
        parsed = ProofBundle.from_json(read_file(bundle, "bundle"))
        if checkpoint is None:
            log.latest()
        source = checkpoint if checkpoint is not None else log.checkpoint_path
        try:
            note = read_file(source, "checkpoint").decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{source} is not a signed note (not UTF-8 text)") from None
        proved = log.prove(parsed, note)
        write_private(out, proved.to_json())
        sizes = [c.size for c in proved.log.consistency]
        emit(
            json_output,
            {"bundle": str(out), "consistency_sizes": sizes},
            lambda: typer.echo(f"wrote {out} (consistency proofs to sizes {sizes or 'none'})"),
        )


def register(app: typer.Typer) -> None:
    app.add_typer(checkpoint_app, name="checkpoint")
