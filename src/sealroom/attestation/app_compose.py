"""A dstack app compose (``app-compose.json``): what it measures, and what owners pin.

dstack measures the application as the SHA-256 of the app compose file's *exact bytes*
(``dstack-util``, ``measure_app_info``: ``sha256_file(app_compose_file)``) and extends RTMR3
with it as the ``compose-hash`` runtime event; the app id defaults to its first 20 bytes
(when no KMS assigns one), and a TD launched with a v1 config id carries
``0x01 || compose_hash`` zero-padded to 48 bytes in ``mr_config_id``. The dstack SDK's
``get_compose_hash`` hashes a *normalized* form (keys sorted, compact, UTF-8); tools that
deploy through it write that form, so a file in any other form is hashed by dstack one way
and by those tools another: :attr:`AppCompose.normalized` says which.

A compose hash pins code only if every image it runs is named by digest: a tag can be
re-pointed without changing one byte of the file. :meth:`AppCompose.unpinned_images` lists
the images that are not.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from sealroom.attestation.rtmr import RTMR_SIZE, runtime_event_digest
from sealroom.errors import InvalidInput

__all__ = [
    "APP_ID_SIZE",
    "COMPOSE_HASH_SIZE",
    "MAX_APP_COMPOSE",
    "AppCompose",
    "ExpectedEvent",
    "default_app_id",
    "mr_config_id_v1",
    "normalize",
    "rtmr3_expectations",
]

COMPOSE_HASH_SIZE = 32
APP_ID_SIZE = 20
MAX_APP_COMPOSE = 1 << 20
_PINNED = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")
_RUNNERS = ("docker-compose", "nerdctl-compose", "bash")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise InvalidInput(f"app compose: duplicate key {key!r}")
        seen[key] = value
    return seen


def _reject_constant(name: str) -> Any:
    raise InvalidInput(f"app compose: {name} is not JSON")


def normalize(document: Mapping[str, Any]) -> bytes:
    """dstack's deterministic JSON (docs/normalized-app-compose.md): sorted keys, compact,
    UTF-8 unescaped. The form the dstack SDK hashes and its deploy tools write."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


@dataclass(frozen=True, slots=True, kw_only=True)
class AppCompose:
    """A parsed app compose file; the hash is always of :attr:`raw`, the bytes dstack reads."""

    raw: bytes
    document: Mapping[str, Any]

    @classmethod
    def parse(cls, raw: bytes) -> AppCompose:
        """Parse and check the fields dstack requires; raise :class:`InvalidInput` otherwise."""
        if len(raw) > MAX_APP_COMPOSE:
            raise InvalidInput(f"app compose: over {MAX_APP_COMPOSE} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("app compose: not UTF-8") from None
        try:
            document = json.loads(
                text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant
            )
        except ValueError as exc:
            raise InvalidInput(f"app compose: not JSON ({exc})") from None
        if not isinstance(document, dict):
            raise InvalidInput("app compose: expected a JSON object")
        for name in ("manifest_version", "name", "runner"):
            if name not in document:
                raise InvalidInput(f"app compose: missing {name!r}")
        if not isinstance(document["name"], str) or not document["name"]:
            raise InvalidInput("app compose: 'name' must be a non-empty string")
        if document["runner"] not in _RUNNERS:
            raise InvalidInput(f"app compose: 'runner' must be one of {', '.join(_RUNNERS)}")
        if document["runner"] != "bash" and not isinstance(
            document.get("docker_compose_file"), str
        ):
            raise InvalidInput("app compose: 'docker_compose_file' must be a string")
        return cls(raw=raw, document=document)

    @property
    def compose_hash(self) -> bytes:
        """What dstack extends RTMR3 with: SHA-256 of the file's exact bytes."""
        return hashlib.sha256(self.raw).digest()

    @property
    def normalized(self) -> bool:
        """Whether the file is already in dstack's normalized form (so the SDK agrees)."""
        return normalize(self.document) == self.raw

    @property
    def key_provider(self) -> str:
        """``kms``, ``local``, ``tpm`` or ``none``, by dstack's rules for older fields."""
        explicit = self.document.get("key_provider")
        if isinstance(explicit, str):
            return explicit
        if self.document.get("kms_enabled") is True:
            return "kms"
        if self.document.get("local_key_provider_enabled") is True:
            return "local"
        return "none"

    def images(self) -> tuple[str, ...]:
        """The image of every service of the docker compose file (``build:`` is refused: the
        CVM would build code the compose hash does not name)."""
        if self.document["runner"] == "bash":
            return ()
        try:
            compose: Any = yaml.safe_load(self.document["docker_compose_file"])
        except yaml.YAMLError as exc:
            raise InvalidInput(f"app compose: docker_compose_file is not YAML ({exc})") from None
        services = compose.get("services") if isinstance(compose, dict) else None
        if not isinstance(services, dict) or not services:
            raise InvalidInput("app compose: docker_compose_file has no services")
        images = []
        for name, service in services.items():
            if not isinstance(service, dict):
                raise InvalidInput(f"app compose: service {name!r} is not a mapping")
            if "build" in service:
                raise InvalidInput(f"app compose: service {name!r} builds its image in the CVM")
            image = service.get("image")
            if not isinstance(image, str):
                raise InvalidInput(f"app compose: service {name!r} names no image")
            images.append(image)
        return tuple(images)

    def unpinned_images(self) -> tuple[str, ...]:
        """Images not named ``name@sha256:<digest>``: their code is not pinned by the hash."""
        return tuple(i for i in self.images() if _PINNED.fullmatch(i) is None)


def default_app_id(compose_hash: bytes) -> bytes:
    """The app id dstack measures when no KMS assigns one: the compose hash's first 20 bytes."""
    _check_hash(compose_hash)
    return compose_hash[:APP_ID_SIZE]


def mr_config_id_v1(compose_hash: bytes) -> bytes:
    """dstack's v1 ``mr_config_id``: ``0x01 || compose_hash``, zero-padded to 48 bytes."""
    _check_hash(compose_hash)
    value = b"\x01" + compose_hash
    return value + bytes(RTMR_SIZE - len(value))


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpectedEvent:
    """An RTMR3 runtime event a verifier can predict from the app compose alone."""

    name: str
    payload: bytes
    digest: bytes


def rtmr3_expectations(compose_hash: bytes, *, app_id: bytes | None) -> tuple[ExpectedEvent, ...]:
    """The predictable RTMR3 events: ``app-id`` (when known) and ``compose-hash``.

    RTMR3 itself is not predictable: ``instance-id`` differs per instance and the key
    provider's id per KMS, so verifiers replay the event log and pin these payloads instead.
    """
    _check_hash(compose_hash)
    events = []
    if app_id is not None:
        if len(app_id) != APP_ID_SIZE:
            raise InvalidInput(f"app id must be {APP_ID_SIZE} bytes")
        events.append(("app-id", app_id))
    events.append(("compose-hash", compose_hash))
    return tuple(
        ExpectedEvent(name=name, payload=payload, digest=runtime_event_digest(name, payload))
        for name, payload in events
    )


def _check_hash(compose_hash: bytes) -> None:
    if len(compose_hash) != COMPOSE_HASH_SIZE:
        raise InvalidInput(f"a compose hash is {COMPOSE_HASH_SIZE} bytes")
