"""A party's identity on disk: one small JSON file, private to its owner, encrypted at rest.

Loading is strict and fails loudly. A keystore that is missing, corrupt,
foreign, from a newer sealroom, tampered with or readable by others raises
:class:`~sealroom.errors.KeystoreError`; nothing here ever creates a fresh
identity as a fallback, because a silently new identity would orphan every
statement the party signed and every ciphertext sealed to it.

File ``<home>/identity.json`` (mode 0600, directory 0700), version 2::

    {
      "type": "sealroom-keystore",
      "version": 2,
      "name": "<display name>",
      "party_id": "sr1...",
      "public": {"signing_key": "<b64>", "sealing_key": "<b64>",
                 "kem_key": "<b64 X-Wing public key; absent for a legacy identity>"},
      "protection": "argon2id-aes256gcm" | "unencrypted",
      # protection "argon2id-aes256gcm":
      "kdf": {"algorithm": "argon2id", "salt": "<b64, 16 bytes>",
              "iterations": 3, "lanes": 4, "memory_kib": 65536},
      "nonce": "<b64, 12 bytes>",
      "ciphertext": "<b64 AES-256-GCM of the secrets' JSON>",
      # protection "unencrypted" (only on explicit request):
      "secrets": {"signing_seed": "<b64>", "sealing_secret": "<b64>", "kem_seed": "<b64>"}
    }

The key is Argon2id(passphrase, salt) with RFC 9106's second recommended
parameters (t=3, p=4, m=64 MiB); the AEAD's associated data is the canonical
JSON of everything but the name and the ciphertext, so the public block, the
party id and the KDF parameters cannot be swapped or weakened unnoticed. The
public keys stay in the clear so that ``sealroom keys export-public`` needs no
passphrase; after decryption they must match the secrets. A wrong passphrase
raises :class:`~sealroom.errors.WrongPassphrase` and changes nothing.

Version 1 (``signing_seed`` and ``sealing_secret`` in the clear, no
post-quantum key) still loads, marked ``legacy-plaintext`` so that callers can
warn; :meth:`Keystore.encrypt` rewrites it as version 2 with the same keys and
party id.

A new directory is created 0700; an existing one is used as it is, provided
no one else can write to it (else they could swap the file). The permission
checks assume POSIX, like ssh's. A process killed mid-write can leave a
``.identity.*.tmp`` file behind (never a half-written ``identity.json``);
loading ignores it.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import stat
import tempfile
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from sealroom.crypto.files import read_private
from sealroom.crypto.keys import (
    KEM_PUBLIC_KEY_SIZE,
    KEM_SEED_SIZE,
    Identity,
    PartyId,
    PublicIdentity,
    b64decode_strict,
    b64encode,
)
from sealroom.errors import InvalidInput, KeystoreError, KeystoreLocked, WrongPassphrase
from sealroom.text import text_problem

__all__ = [
    "DEFAULT_KDF",
    "HOME_ENV",
    "KEYSTORE_FILE",
    "KEYSTORE_TYPE",
    "KEYSTORE_VERSION",
    "KdfParams",
    "Keystore",
    "KeystoreEntry",
    "PassphraseSource",
    "Protection",
    "PublicEntry",
    "resolve_home",
]

HOME_ENV = "SEALROOM_HOME"
KEYSTORE_FILE = "identity.json"
KEYSTORE_TYPE = "sealroom-keystore"
KEYSTORE_VERSION = 2
LEGACY_VERSION = 1
MAX_NAME_LENGTH = 200
# A real keystore is a few kilobytes; refusing big files keeps a wrong
# path (a dataset, a log) from being read into memory.
_MAX_FILE_SIZE = 64 * 1024
_LEGACY_FIELDS = frozenset(
    {"type", "version", "name", "party_id", "signing_seed", "sealing_secret"}
)
_COMMON_FIELDS = frozenset({"type", "version", "name", "party_id", "public", "protection"})
_ENCRYPTED_FIELDS = _COMMON_FIELDS | {"kdf", "nonce", "ciphertext"}
_UNENCRYPTED_FIELDS = _COMMON_FIELDS | {"secrets"}
ENCRYPTED: Final = "argon2id-aes256gcm"
UNENCRYPTED: Final = "unencrypted"
_AAD_DOMAIN = b"sealroom-keystore-v2 aad\x00"
_SALT_SIZE = 16
_NONCE_SIZE = 12
# Ceilings on what a file may ask for, so a hostile or corrupt keystore
# cannot make loading take minutes or gigabytes.
_MAX_MEMORY_KIB = 1 << 20
_MAX_ITERATIONS = 64
_MAX_LANES = 64
_CREATE_HINT = (
    "create one with `sealroom init --name NAME` (Keystore.create), "
    f"or set {HOME_ENV} to the directory that holds your keystore"
)

Protection = Literal["argon2id-aes256gcm", "unencrypted", "legacy-plaintext"]
PassphraseSource = str | Callable[[], str]
"""A passphrase, or a function asked for it only when the keystore is encrypted (a prompt)."""


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id parameters (RFC 9106). The default is its second recommended option."""

    iterations: int = 3
    lanes: int = 4
    memory_kib: int = 64 * 1024

    def __post_init__(self) -> None:
        for name, value, top in (
            ("iterations", self.iterations, _MAX_ITERATIONS),
            ("lanes", self.lanes, _MAX_LANES),
            ("memory_kib", self.memory_kib, _MAX_MEMORY_KIB),
        ):
            if type(value) is not int or not 1 <= value <= top:
                raise KeystoreError(f"argon2id {name} must be an integer in 1..{top}")
        if self.memory_kib < 8 * self.lanes:
            raise KeystoreError("argon2id memory_kib must be at least 8 times lanes")

    def derive(self, passphrase: bytes, salt: bytes) -> bytes:
        return Argon2id(
            salt=salt,
            length=32,
            iterations=self.iterations,
            lanes=self.lanes,
            memory_cost=self.memory_kib,
        ).derive(passphrase)


DEFAULT_KDF = KdfParams()


def resolve_home(explicit: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Path:
    """The keystore directory: ``explicit``, else ``$SEALROOM_HOME``, else ``~/.sealroom``.

    The environment is a parameter so that callers (CLI, tests, an agent
    acting for several parties) decide where it comes from; nothing is read
    from ``os.environ`` except as the last resort for the user's home.
    """
    if explicit is not None and str(explicit) != "":
        return Path(explicit)
    configured = environ.get(HOME_ENV, "")
    if configured:
        return Path(configured)
    user_home = environ.get("HOME", "")
    return (Path(user_home) if user_home else Path.home()) / ".sealroom"


@dataclass(frozen=True, slots=True)
class KeystoreEntry:
    """A loaded keystore. Its repr names the party, never the keys.

    ``protection`` says how the file keeps the keys: encrypted with a
    passphrase, unencrypted on explicit request, or ``legacy-plaintext`` (a
    version 1 file: callers warn and point to ``sealroom keys encrypt``).
    """

    path: Path
    name: str
    identity: Identity
    protection: Protection

    @property
    def party_id(self) -> PartyId:
        return self.identity.party_id


@dataclass(frozen=True, slots=True)
class PublicEntry:
    """What a keystore says in the clear: enough to publish one's identity, no passphrase needed."""

    path: Path
    name: str
    public: PublicIdentity
    protection: Protection

    @property
    def party_id(self) -> PartyId:
        return self.public.party_id


class Keystore:
    """Create, load, rename and encrypt the identity stored in a keystore directory."""

    __slots__ = ()

    @staticmethod
    def path(home: str | os.PathLike[str]) -> Path:
        return Path(home) / KEYSTORE_FILE

    @classmethod
    def create(
        cls,
        home: str | os.PathLike[str],
        *,
        name: str,
        passphrase: str | None = None,
        unencrypted: bool = False,
        kdf: KdfParams = DEFAULT_KDF,
    ) -> Identity:
        """Generate a new (post-quantum) identity and store it; refuse if one exists already.

        Exactly one of ``passphrase`` and ``unencrypted=True``: a keystore
        without encryption is a choice the caller makes by name.
        """
        return _create(
            Path(home),
            name=name,
            identity=Identity.generate(),
            passphrase=passphrase,
            unencrypted=unencrypted,
            kdf=kdf,
        ).identity

    @classmethod
    def load(
        cls, home: str | os.PathLike[str], *, passphrase: PassphraseSource | None = None
    ) -> Identity:
        return cls.load_entry(home, passphrase=passphrase).identity

    @classmethod
    def load_entry(
        cls, home: str | os.PathLike[str], *, passphrase: PassphraseSource | None = None
    ) -> KeystoreEntry:
        """Load and check the keystore; an encrypted one needs ``passphrase``.

        ``passphrase`` may be a function: it is called only if the file is
        encrypted, so an unencrypted keystore never prompts.
        """
        path = cls.path(home)
        document = _document(_read_private_file(path), path)
        return _parse(document, path, passphrase)

    @classmethod
    def load_public(cls, home: str | os.PathLike[str]) -> PublicEntry:
        """The party's public identity from the clear part of the file (no passphrase)."""
        path = cls.path(home)
        document = _document(_read_private_file(path), path)
        if document["version"] == LEGACY_VERSION:
            entry = _parse(document, path, None)
            return PublicEntry(
                path=path,
                name=entry.name,
                public=entry.identity.public,
                protection=entry.protection,
            )
        name, public = _check_v2(document, path)
        return PublicEntry(path=path, name=name, public=public, protection=document["protection"])

    @classmethod
    def rename(cls, home: str | os.PathLike[str], *, name: str) -> PublicEntry:
        """Change the display name; keys, party id and protection stay the same.

        The name is outside the encrypted part and its associated data, so
        no passphrase is needed. The file is replaced atomically: a crash
        leaves the old file whole.
        """
        path = cls.path(home)
        document = _document(_read_private_file(path), path)
        _check_name(name)
        if document["version"] == LEGACY_VERSION:
            entry = _parse(document, path, None)
            document = dict(document)
            document["name"] = name
            _write_atomic(path, _dump(document), replace=True)
            return PublicEntry(
                path=path, name=name, public=entry.identity.public, protection=entry.protection
            )
        _, public = _check_v2(document, path)
        document = dict(document)
        document["name"] = name
        _write_atomic(path, _dump(document), replace=True)
        return PublicEntry(path=path, name=name, public=public, protection=document["protection"])

    @classmethod
    def encrypt(
        cls,
        home: str | os.PathLike[str],
        *,
        passphrase: str,
        old_passphrase: PassphraseSource | None = None,
        kdf: KdfParams = DEFAULT_KDF,
    ) -> KeystoreEntry:
        """Rewrite the keystore encrypted under ``passphrase`` (same keys, same party id).

        Works on a legacy plaintext file, an unencrypted one, or an encrypted
        one (``old_passphrase`` opens it: a passphrase change). Atomic: on
        any failure the old file stays as it was.
        """
        entry = cls.load_entry(home, passphrase=old_passphrase)
        data = _serialise(
            entry.name, entry.identity, passphrase=passphrase, unencrypted=False, kdf=kdf
        )
        _write_atomic(entry.path, data, replace=True)
        return KeystoreEntry(
            path=entry.path, name=entry.name, identity=entry.identity, protection=ENCRYPTED
        )


def _create(
    home: Path,
    *,
    name: str,
    identity: Identity,
    passphrase: str | None = None,
    unencrypted: bool = False,
    kdf: KdfParams = DEFAULT_KDF,
) -> KeystoreEntry:
    """Store ``identity`` (explicit so tests can pin keys)."""
    _check_name(name)
    data = _serialise(name, identity, passphrase=passphrase, unencrypted=unencrypted, kdf=kdf)
    path = home / KEYSTORE_FILE
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise KeystoreError(f"cannot create keystore directory {home}: {exc.strerror}") from None
    _check_directory(home)
    if path.exists() or path.is_symlink():
        raise KeystoreError(f"a keystore already exists at {path}; refusing to overwrite it")
    _write_atomic(path, data, replace=False)
    return KeystoreEntry(
        path=path,
        name=name,
        identity=identity,
        protection=UNENCRYPTED if unencrypted else ENCRYPTED,
    )


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name.strip():
        raise KeystoreError("the keystore name must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise KeystoreError(f"the keystore name must be at most {MAX_NAME_LENGTH} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise KeystoreError("the keystore name must not contain control characters")
    problem = text_problem(name, multiline=False)
    if problem is not None:
        raise KeystoreError(f"the keystore name: {problem}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise KeystoreError("the keystore name must be valid Unicode text") from None


def _passphrase_bytes(passphrase: str) -> bytes:
    """NFC-normalised UTF-8, so the same passphrase typed on two systems derives one key."""
    if not isinstance(passphrase, str) or not passphrase:
        raise KeystoreError("the passphrase must be a non-empty string")
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def _public_block(public: PublicIdentity) -> dict[str, str]:
    block = {
        "signing_key": b64encode(public.signing_key),
        "sealing_key": b64encode(public.sealing_key),
    }
    if public.kem_key is not None:
        block["kem_key"] = b64encode(public.kem_key)
    return block


def _secrets_block(identity: Identity) -> dict[str, str]:
    seed, secret = identity.private_bytes()
    block = {"signing_seed": b64encode(seed), "sealing_secret": b64encode(secret)}
    kem_seed = identity.kem_seed()
    if kem_seed is not None:
        block["kem_seed"] = b64encode(kem_seed)
    return block


def _aad(document: Mapping[str, Any]) -> bytes:
    bound = {k: v for k, v in document.items() if k not in ("name", "ciphertext")}
    return _AAD_DOMAIN + json.dumps(bound, sort_keys=True, separators=(",", ":")).encode()


def _serialise(
    name: str,
    identity: Identity,
    *,
    passphrase: str | None,
    unencrypted: bool,
    kdf: KdfParams,
) -> bytes:
    if unencrypted and passphrase is not None:
        raise KeystoreError("choose a passphrase or an unencrypted keystore, not both")
    if not unencrypted and passphrase is None:
        raise KeystoreError(
            "a keystore is encrypted with a passphrase: give one, or ask for an "
            "unencrypted keystore explicitly (--unencrypted-keystore)"
        )
    document: dict[str, Any] = {
        "type": KEYSTORE_TYPE,
        "version": KEYSTORE_VERSION,
        "name": name,
        "party_id": identity.party_id,
        "public": _public_block(identity.public),
    }
    if unencrypted:
        document["protection"] = UNENCRYPTED
        document["secrets"] = _secrets_block(identity)
        return _dump(document)
    assert passphrase is not None
    salt = os.urandom(_SALT_SIZE)
    nonce = os.urandom(_NONCE_SIZE)
    document["protection"] = ENCRYPTED
    document["kdf"] = {
        "algorithm": "argon2id",
        "salt": b64encode(salt),
        "iterations": kdf.iterations,
        "lanes": kdf.lanes,
        "memory_kib": kdf.memory_kib,
    }
    document["nonce"] = b64encode(nonce)
    key = kdf.derive(_passphrase_bytes(passphrase), salt)
    plaintext = json.dumps(_secrets_block(identity), sort_keys=True).encode()
    document["ciphertext"] = b64encode(AESGCM(key).encrypt(nonce, plaintext, _aad(document)))
    return _dump(document)


def _dump(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _write_atomic(path: Path, data: bytes, *, replace: bool) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, whole.

    ``mkstemp`` creates the temporary file with mode 0600 whatever the umask,
    so the keys are never on disk with wider permissions. A new keystore is
    linked into place (which fails if one appeared meanwhile, unlike
    ``os.replace``); an existing one is replaced.
    """
    directory = path.parent
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=".identity.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise KeystoreError(f"cannot write keystore in {directory}: {exc.strerror}") from None
    tmp = Path(tmp_name)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            tmp.unlink()
        _fsync_directory(directory)
    except FileExistsError:
        raise KeystoreError(
            f"a keystore already exists at {path}; refusing to overwrite it"
        ) from None
    except OSError as exc:
        raise KeystoreError(f"cannot write keystore {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _fsync_directory(directory: Path) -> None:
    # Makes the rename/link itself durable, not just the file contents.
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_directory(home: Path) -> None:
    try:
        st = home.stat()
    except OSError as exc:
        raise KeystoreError(f"cannot use keystore directory {home}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise KeystoreError(f"keystore home {home} is not a directory")
    if st.st_mode & 0o022:
        # Anyone who can write the directory can swap the keystore file.
        raise KeystoreError(
            f"keystore directory {home} is writable by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); run `chmod 700 {home}`"
        )
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise KeystoreError(f"keystore directory {home} is owned by another user")


def _read_private_file(path: Path) -> bytes:
    """Read the keystore (:func:`~sealroom.crypto.files.read_private`: checked on the opened
    descriptor, no symlinks, ours, 0600, bounded), then check its directory."""
    raw = read_private(path, what="keystore", max_size=_MAX_FILE_SIZE)
    if raw is None:
        raise KeystoreError(f"no keystore at {path}: {_CREATE_HINT}")
    _check_directory(path.parent)
    return raw


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError("duplicate key")
        result[key] = value
    return result


def _decode_json(raw: bytes) -> tuple[object, str | None]:
    """(document, None) or (None, problem); never an exception.

    A JSONDecodeError carries the whole document (private keys included) in
    ``.doc``, and even ``raise ... from None`` keeps it reachable as
    ``__context__``; so the caller raises outside any ``except`` block.
    """
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates), None
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON (line {exc.lineno}, column {exc.colno})"
    except ValueError:
        return None, "a field appears twice"


def _document(raw: bytes, path: Path) -> dict[str, Any]:
    """The parsed JSON object with a known type and version, or :class:`KeystoreError`."""
    document, problem = _decode_json(raw)
    if problem is not None:
        raise KeystoreError(f"keystore {path} is corrupt: {problem}")
    if not isinstance(document, dict):
        raise KeystoreError(f"keystore {path} is corrupt: expected a JSON object")
    marker = document.get("type")
    if marker != KEYSTORE_TYPE:
        raise KeystoreError(
            f"{path} is not a sealroom keystore (type marker {marker!r}, "
            f"expected {KEYSTORE_TYPE!r})"
            if isinstance(marker, str)
            else f"{path} is not a sealroom keystore (no type marker)"
        )
    version = document.get("version")
    if type(version) is not int:
        raise KeystoreError(f"keystore {path} is corrupt: version must be an integer")
    if version not in (LEGACY_VERSION, KEYSTORE_VERSION):
        raise KeystoreError(
            f"keystore {path} has version {version}; this sealroom reads versions "
            f"{LEGACY_VERSION} and {KEYSTORE_VERSION}. Upgrade sealroom; do not recreate "
            "the keystore"
        )
    return document


def _check_fields(document: Mapping[str, Any], expected: frozenset[str], path: Path) -> None:
    keys = set(document)
    if keys != expected:
        details = []
        if missing := sorted(expected - keys):
            details.append(f"missing {', '.join(missing)}")
        if unknown := sorted(keys - expected):
            details.append(f"unknown {', '.join(unknown)}")
        raise KeystoreError(f"keystore {path} is corrupt: {'; '.join(details)}")


def _decode_block(
    block: object, sizes: Mapping[str, int], optional: str, path: Path, what: str
) -> dict[str, bytes]:
    if not isinstance(block, dict):
        raise KeystoreError(f"keystore {path} is corrupt: {what} must be an object")
    _check_fields(block, frozenset(sizes) - {optional} | (set(block) & {optional}), path)
    try:
        return {k: b64decode_strict(v, what=f"{what}.{k}", size=sizes[k]) for k, v in block.items()}
    except InvalidInput as exc:
        raise KeystoreError(f"keystore {path} is corrupt: {exc.detail}") from None


_PUBLIC_SIZES = {"signing_key": 32, "sealing_key": 32, "kem_key": KEM_PUBLIC_KEY_SIZE}
_SECRET_SIZES = {"signing_seed": 32, "sealing_secret": 32, "kem_seed": KEM_SEED_SIZE}


def _check_v2(document: dict[str, Any], path: Path) -> tuple[str, PublicIdentity]:
    """Structure, name, public keys and party id of a version 2 file (no secrets touched)."""
    protection = document.get("protection")
    if protection == ENCRYPTED:
        _check_fields(document, _ENCRYPTED_FIELDS, path)
    elif protection == UNENCRYPTED:
        _check_fields(document, _UNENCRYPTED_FIELDS, path)
    else:
        raise KeystoreError(f"keystore {path} is corrupt: unknown protection {protection!r}")
    name = document["name"]
    try:
        _check_name(name)
    except KeystoreError as exc:
        raise KeystoreError(f"keystore {path} is corrupt: {exc.detail}") from None
    keys = _decode_block(document["public"], _PUBLIC_SIZES, "kem_key", path, "public")
    try:
        public = PublicIdentity(
            signing_key=keys["signing_key"],
            sealing_key=keys["sealing_key"],
            kem_key=keys.get("kem_key"),
        )
    except InvalidInput as exc:
        raise KeystoreError(f"keystore {path} is corrupt: {exc.detail}") from None
    _check_party_id(document["party_id"], public.party_id, path)
    return name, public


def _check_party_id(stored: object, actual: str, path: Path) -> None:
    if not isinstance(stored, str) or not hmac.compare_digest(
        stored.encode("utf-8", "surrogatepass"), actual.encode("ascii")
    ):
        raise KeystoreError(
            f"keystore {path} is inconsistent: its party id does not match its keys "
            "(the file was edited or assembled from different keystores)"
        )


def _identity(secrets: Mapping[str, bytes]) -> Identity:
    return Identity.from_private_bytes(
        secrets["signing_seed"], secrets["sealing_secret"], secrets.get("kem_seed")
    )


def _parse(
    document: dict[str, Any], path: Path, passphrase: PassphraseSource | None
) -> KeystoreEntry:
    if document["version"] == LEGACY_VERSION:
        return _parse_legacy(document, path)
    name, public = _check_v2(document, path)
    protection: Protection
    if document["protection"] == UNENCRYPTED:
        protection = UNENCRYPTED
        secrets = _decode_block(document["secrets"], _SECRET_SIZES, "kem_seed", path, "secrets")
    else:
        protection = ENCRYPTED
        secrets = _decrypt(document, path, passphrase)
    try:
        identity = _identity(secrets)
    except InvalidInput as exc:
        raise KeystoreError(f"keystore {path} is corrupt: {exc.detail}") from None
    if identity.public != public:
        raise KeystoreError(
            f"keystore {path} is inconsistent: its public keys do not match its private keys"
        )
    return KeystoreEntry(path=path, name=name, identity=identity, protection=protection)


def _decrypt(
    document: dict[str, Any], path: Path, passphrase: PassphraseSource | None
) -> dict[str, bytes]:
    kdf_doc = document["kdf"]
    if not isinstance(kdf_doc, dict) or set(kdf_doc) != {
        "algorithm",
        "salt",
        "iterations",
        "lanes",
        "memory_kib",
    }:
        raise KeystoreError(f"keystore {path} is corrupt: bad kdf parameters")
    if kdf_doc["algorithm"] != "argon2id":
        raise KeystoreError(f"keystore {path} uses an unknown kdf {kdf_doc['algorithm']!r}")
    try:
        params = KdfParams(
            iterations=kdf_doc["iterations"],
            lanes=kdf_doc["lanes"],
            memory_kib=kdf_doc["memory_kib"],
        )
        salt = b64decode_strict(kdf_doc["salt"], what="kdf.salt", size=_SALT_SIZE)
        nonce = b64decode_strict(document["nonce"], what="nonce", size=_NONCE_SIZE)
        ciphertext = b64decode_strict(document["ciphertext"], what="ciphertext")
    except KeystoreError as exc:
        raise KeystoreError(f"keystore {path} is corrupt: {exc.detail}") from None
    except InvalidInput as exc:
        raise KeystoreError(f"keystore {path} is corrupt: {exc.detail}") from None
    if passphrase is None:
        raise KeystoreLocked(
            f"keystore {path} is encrypted: set SEALROOM_PASSPHRASE (or SEALROOM_PASSPHRASE_FILE), "
            "or run the command on a terminal to be asked for the passphrase"
        )
    text = passphrase if isinstance(passphrase, str) else passphrase()
    key = params.derive(_passphrase_bytes(text), salt)
    try:
        plaintext = AESGCM(key).decrypt(nonce, ciphertext, _aad(document))
    except InvalidTag:
        raise WrongPassphrase(
            f"the passphrase does not open keystore {path} (or the file was modified)"
        ) from None
    secrets, problem = _decode_json(plaintext)
    if problem is not None or not isinstance(secrets, dict):
        raise KeystoreError(f"keystore {path} is corrupt: the decrypted keys are not valid")
    return _decode_block(secrets, _SECRET_SIZES, "kem_seed", path, "secrets")


def _decode_keys(document: dict[str, Any]) -> tuple[Identity | None, str | None]:
    try:
        seed = b64decode_strict(document["signing_seed"], what="signing_seed", size=32)
        secret = b64decode_strict(document["sealing_secret"], what="sealing_secret", size=32)
        return Identity.from_private_bytes(seed, secret), None
    except InvalidInput as exc:
        return None, exc.detail or exc.public_message


def _parse_legacy(document: dict[str, Any], path: Path) -> KeystoreEntry:
    """A version 1 file: keys in the clear, no post-quantum key."""
    _check_fields(document, _LEGACY_FIELDS, path)
    name = document["name"]
    try:
        _check_name(name)
    except KeystoreError as exc:
        raise KeystoreError(f"keystore {path} is corrupt: {exc.detail}") from None
    identity, problem = _decode_keys(document)
    if identity is None:
        raise KeystoreError(f"keystore {path} is corrupt: {problem}")
    _check_party_id(document["party_id"], identity.party_id, path)
    return KeystoreEntry(path=path, name=name, identity=identity, protection="legacy-plaintext")
