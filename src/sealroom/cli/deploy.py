"""Deployment on dstack: ``sealroom app-compose`` writes the enclave's app compose, and
``sealroom measurements`` turns an app compose into the allowlist owners pin.

The allowlist is the ``--measurements`` format of ``sealroom verify`` and of owner
policies (:func:`sealroom.verification.trust.parse_measurements`): the compose hash pins the
application; ``mr_config_id`` what the TD was launched with; ``mrtd`` and ``rtmr0``-``rtmr2``
the firmware, kernel and OS image, which only the image and the VM shape determine, so they
come from dstack's own calculator (``dstack-mr measure --json``) via ``--os-measurements``.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from sealroom.cli.common import handle_errors, read_file

__all__ = ["ENCLAVE_STATE_DIR", "enclave_app_compose", "register"]

ENCLAVE_STATE_DIR = "/var/lib/sealroom/enclave"
_OS_FIELDS = ("mrtd", "rtmr0", "rtmr1", "rtmr2")
_LIST_FIELDS = ("compose_hash", "mr_config_id", *_OS_FIELDS)


class ConfigId(StrEnum):
    """Which ``mr_config_id`` values to accept (dstack's VMM chooses one per deployment)."""

    v1 = "v1"
    zero = "zero"


def enclave_app_compose(image: str, *, name: str = "sealroom-enclave") -> bytes:
    """The dstack app compose of the sealroom enclave, in dstack's normalized form.

    The enclave talks to a coordinator named by ``SEALROOM_URL``, the one variable the
    deployer may set (``allowed_envs``): the coordinator is untrusted whoever runs it, so
    choosing it changes nothing an owner relies on. Its state (the budget ledger and release
    history) lives on a volume, which dstack keeps on the CVM's encrypted disk; keys come
    from the KMS, so they follow the measured app and not the machine.
    """
    from sealroom.attestation.app_compose import AppCompose, normalize

    docker_compose = (
        "services:\n"
        "  enclave:\n"
        f"    image: {image}\n"
        f'    command: ["sealroom", "enclave", "--dstack", "--state", "{ENCLAVE_STATE_DIR}"]\n'
        "    environment:\n"
        "      SEALROOM_URL: ${SEALROOM_URL}\n"
        "    volumes:\n"
        "      - /var/run/dstack.sock:/var/run/dstack.sock\n"
        "      - enclave-state:/var/lib/sealroom\n"
        "    restart: always\n"
        "volumes:\n"
        "  enclave-state:\n"
    )
    document = {
        "allowed_envs": ["SEALROOM_URL"],
        "docker_compose_file": docker_compose,
        "gateway_enabled": False,
        "kms_enabled": True,
        "key_provider": "kms",
        "manifest_version": 2,
        "name": name,
        "no_instance_id": False,
        "public_logs": False,
        "public_sysinfo": True,
        "public_tcbinfo": True,
        "runner": "docker-compose",
        "secure_time": True,
    }
    raw = normalize(document)
    parsed = AppCompose.parse(raw)
    unpinned = parsed.unpinned_images()
    if unpinned:
        from sealroom.errors import InvalidInput

        raise InvalidInput(
            f"--image must name the image by digest (name@sha256:<64 hex>), got {unpinned[0]!r}: "
            "a tag can be re-pointed without changing the compose hash"
        )
    return raw


def note(text: str) -> None:
    typer.echo(text, err=True)


def _emit(data: bytes, out: Path | None) -> None:
    if out is None:
        typer.echo(data.decode("utf-8"), nl=False)
        return
    from sealroom.crypto.files import write_private

    write_private(out, data)
    typer.echo(f"wrote {out}", err=True)


def app_compose(
    image: Annotated[
        str,
        typer.Option(
            "--image",
            envvar="SEALROOM_IMAGE",
            help="The sealroom image by digest, e.g. ghcr.io/you/sealroom@sha256:<64 hex>.",
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="The app's name in dstack.")] = (
        "sealroom-enclave"
    ),
    out: Annotated[
        Path | None, typer.Option("--out", dir_okay=False, help="Write here (default: stdout).")
    ] = None,
) -> None:
    """Write the enclave's dstack app compose (normalized JSON) for an image pinned by digest."""
    with handle_errors(False):
        _emit(enclave_app_compose(image, name=name), out)


def _os_measurements(path: Path) -> dict[str, str]:
    """``dstack-mr measure --json`` output: mrtd, rtmr0, rtmr1, rtmr2 as 48-byte hex."""
    from sealroom.errors import InvalidInput

    try:
        value: Any = json.loads(read_file(path, "OS measurements"))
    except ValueError:
        raise InvalidInput(f"OS measurements {path}: not JSON") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"OS measurements {path}: expected a JSON object")
    found = {}
    for field in _OS_FIELDS:
        item = value.get(field)
        if not isinstance(item, str):
            raise InvalidInput(f"OS measurements {path}: {field} must be a hex string")
        found[field] = item.lower().removeprefix("0x")
    return found


def _merge(into: dict[str, list[str]], path: Path) -> dict[str, Any]:
    from sealroom.errors import InvalidInput
    from sealroom.verification.trust import parse_measurements

    raw = read_file(path, "allowlist")
    parse_measurements(raw)  # refuse to extend a file that would not load
    existing: dict[str, Any] = json.loads(raw)
    for field in _LIST_FIELDS:
        into[field] = [*existing.get(field, []), *into[field]]
    extra = {k: v for k, v in existing.items() if k not in _LIST_FIELDS}
    if not all(isinstance(v, list) for v in extra.values()):
        raise InvalidInput(f"allowlist {path}: every field must be a list")
    return extra


def measurements(
    app_compose_file: Annotated[
        Path, typer.Argument(metavar="APP_COMPOSE", help="The app-compose.json dstack runs.")
    ],
    os_measurements: Annotated[
        list[Path] | None,
        typer.Option(
            "--os-measurements",
            help="MRTD and RTMR0-2 of the OS image and VM shape, as `dstack-mr measure --json` "
            "prints them (repeatable: one per image or VM shape accepted).",
        ),
    ] = None,
    config_id: Annotated[
        list[ConfigId] | None,
        typer.Option(
            "--config-id",
            help="mr_config_id values to accept: v1 (0x01 || compose hash) and/or zero (a TD "
            "launched without one; the compose hash is then bound by RTMR3 alone). "
            "Default: both.",
        ),
    ] = None,
    merge: Annotated[
        Path | None,
        typer.Option(
            "--merge",
            dir_okay=False,
            help="An existing allowlist to extend (e.g. the previous release's): its values "
            "are kept.",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", dir_okay=False, help="Write here (default: stdout).")
    ] = None,
    allow_tags: Annotated[
        bool,
        typer.Option(
            "--unsafe-allow-tags",
            help="UNSAFE: accept images named by tag, whose code the compose hash does not pin.",
        ),
    ] = False,
) -> None:
    """Compute the allowlist entry owners pin for an app compose (JSON for `verify
    --measurements` and owner policies); notes on stderr say what is and is not pinned."""
    from sealroom.attestation.app_compose import (
        AppCompose,
        default_app_id,
        mr_config_id_v1,
        normalize,
        rtmr3_expectations,
    )
    from sealroom.errors import InvalidInput
    from sealroom.verification.trust import parse_measurements

    with handle_errors(False):
        compose = AppCompose.parse(read_file(app_compose_file, "app compose"))
        unpinned = compose.unpinned_images()
        if unpinned and not allow_tags:
            raise InvalidInput(
                f"image {unpinned[0]!r} is not named by digest (name@sha256:<64 hex>): a tag "
                "can be re-pointed without changing the compose hash, so pinning it pins no code"
            )
        digest = compose.compose_hash
        ids = {
            ConfigId.v1: mr_config_id_v1(digest).hex(),
            ConfigId.zero: bytes(48).hex(),
        }
        allowlist: dict[str, list[str]] = {
            "compose_hash": [digest.hex()],
            "mr_config_id": [ids[c] for c in dict.fromkeys(config_id or list(ConfigId))],
            **{field: [] for field in _OS_FIELDS},
        }
        for path in os_measurements or []:
            for field, value in _os_measurements(path).items():
                allowlist[field].append(value)
        extra = _merge(allowlist, merge) if merge is not None else {}
        document = {
            **extra,
            **{k: list(dict.fromkeys(v)) for k, v in allowlist.items() if v},
        }
        data = (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
        parse_measurements(data)  # what verifiers will load: sizes and hex checked here

        note(f"compose hash {digest.hex()} (SHA-256 of the file's bytes, as dstack measures it)")
        if not compose.normalized:
            note(
                "warning: the file is not in dstack's normalized form; dstack hashes these bytes, "
                "but tools that normalize first (the dstack SDK, Phala Cloud) deploy "
                f"{hashlib.sha256(normalize(compose.document)).hexdigest()}"
            )
        if unpinned:
            note(f"UNSAFE: images named by tag are not pinned: {', '.join(unpinned)}")
        app_id = default_app_id(digest) if compose.key_provider != "kms" else None
        for event in rtmr3_expectations(digest, app_id=app_id):
            note(f"RTMR3 event {event.name}: payload {event.payload.hex()}")
        if app_id is None:
            note("RTMR3 event app-id: assigned by the KMS (not pinned here)")
        note("RTMR3 events instance-id and key-provider vary per instance; RTMR3 is replayed")
        if not os_measurements and not any(document.get(f) for f in _OS_FIELDS):
            note(
                "warning: no --os-measurements: mrtd and rtmr0-2 are empty, so verifiers accept "
                "no evidence (fail closed) until they are added"
            )
        _emit(data, out)


def register(app: typer.Typer) -> None:
    app.command("app-compose")(app_compose)
    app.command("measurements")(measurements)
