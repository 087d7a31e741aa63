"""A party's identity on disk: one small JSON file, private to its owner.

Loading is strict and fails loudly. A keystore that is missing, corrupt,
foreign, from a newer sealroom, tampered with or readable by others raises
:class:`~sealroom.errors.KeystoreError`; nothing here ever creates a fresh
identity as a fallback, because a silently new identity would orphan every
statement the party signed and every ciphertext sealed to it.

File ``<home>/identity.json`` (mode 0600, directory 0700)::

    {
      "type": "sealroom-keystore",
      "version": 1,
      "name": "<display name>",
      "party_id": "sr1...",
      "signing_seed": "<base64 Ed25519 seed, 32 bytes>",
      "sealing_secret": "<base64 X25519 secret, 32 bytes>"
    }

A new directory is created 0700; an existing one is used as it is, provided
no one else can write to it (else they could swap the file). The permission
checks assume POSIX, like ssh's. A process killed mid-write can leave a
``.identity.*.tmp`` file behind (never a half-written ``identity.json``);
loading ignores it.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import json
import os
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealroom.crypto.keys import Identity, PartyId, b64decode_strict, b64encode
from sealroom.errors import InvalidInput, KeystoreError
from sealroom.text import text_problem

__all__ = [
    "HOME_ENV",
    "KEYSTORE_FILE",
    "KEYSTORE_TYPE",
    "KEYSTORE_VERSION",
    "Keystore",
    "KeystoreEntry",
    "resolve_home",
]

HOME_ENV = "SEALROOM_HOME"
KEYSTORE_FILE = "identity.json"
KEYSTORE_TYPE = "sealroom-keystore"
KEYSTORE_VERSION = 1
MAX_NAME_LENGTH = 200
# A real keystore is a few hundred bytes; refusing big files keeps a wrong
# path (a dataset, a log) from being read into memory.
_MAX_FILE_SIZE = 64 * 1024
_FIELDS = frozenset({"type", "version", "name", "party_id", "signing_seed", "sealing_secret"})
_CREATE_HINT = (
    "create one with `sealroom init --name NAME` (Keystore.create), "
    f"or set {HOME_ENV} to the directory that holds your keystore"
)


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
    """A loaded keystore. Its repr names the party, never the keys."""

    path: Path
    name: str
    identity: Identity

    @property
    def party_id(self) -> PartyId:
        return self.identity.party_id


class Keystore:
    """Create, load and rename the identity stored in a keystore directory."""

    __slots__ = ()

    @staticmethod
    def path(home: str | os.PathLike[str]) -> Path:
        return Path(home) / KEYSTORE_FILE

    @classmethod
    def create(cls, home: str | os.PathLike[str], *, name: str) -> Identity:
        """Generate a new identity and store it; refuse if one exists already."""
        return _create(Path(home), name=name, identity=Identity.generate()).identity

    @classmethod
    def load(cls, home: str | os.PathLike[str]) -> Identity:
        return cls.load_entry(home).identity

    @classmethod
    def load_entry(cls, home: str | os.PathLike[str]) -> KeystoreEntry:
        path = cls.path(home)
        raw = _read_private_file(path)
        name, identity = _parse(raw, path)
        return KeystoreEntry(path=path, name=name, identity=identity)

    @classmethod
    def rename(cls, home: str | os.PathLike[str], *, name: str) -> KeystoreEntry:
        """Change the display name; the keys and party id stay the same.

        This is the one operation that rewrites an existing keystore, so it
        goes through the atomic replace: a crash leaves the old file whole.
        """
        entry = cls.load_entry(home)
        _check_name(name)
        _write_atomic(entry.path, _serialise(name, entry.identity), replace=True)
        return KeystoreEntry(path=entry.path, name=name, identity=entry.identity)


def _create(home: Path, *, name: str, identity: Identity) -> KeystoreEntry:
    """Store ``identity`` (explicit so tests can pin keys)."""
    _check_name(name)
    path = home / KEYSTORE_FILE
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise KeystoreError(f"cannot create keystore directory {home}: {exc.strerror}") from None
    _check_directory(home)
    if path.exists() or path.is_symlink():
        raise KeystoreError(f"a keystore already exists at {path}; refusing to overwrite it")
    _write_atomic(path, _serialise(name, identity), replace=False)
    return KeystoreEntry(path=path, name=name, identity=identity)


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


def _serialise(name: str, identity: Identity) -> bytes:
    seed, secret = identity.private_bytes()
    document = {
        "type": KEYSTORE_TYPE,
        "version": KEYSTORE_VERSION,
        "name": name,
        "party_id": identity.party_id,
        "signing_seed": b64encode(seed),
        "sealing_secret": b64encode(secret),
    }
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
    """Read the keystore, refusing files that others can read or that we do not own.

    Checks run on the opened descriptor (``fstat``), not the path, so the
    file cannot be swapped between the check and the read; symlinks are
    refused outright.
    """
    home = path.parent
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise KeystoreError(f"no keystore at {path}: {_CREATE_HINT}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise KeystoreError(f"keystore {path} is a symbolic link; refusing it") from None
        raise KeystoreError(f"cannot open keystore {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeystoreError(f"keystore {path} is not a regular file")
        if st.st_mode & 0o077:
            raise KeystoreError(
                f"keystore {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); its private keys may have leaked. "
                f"If that is impossible, run `chmod 600 {path}`"
            )
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise KeystoreError(f"keystore {path} is owned by another user")
        if st.st_size > _MAX_FILE_SIZE:
            raise KeystoreError(f"keystore {path} is too large to be a keystore")
        chunks = []
        remaining = _MAX_FILE_SIZE + 1
        while remaining > 0:
            chunk = os.read(fd, remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        raw = b"".join(chunks)
    finally:
        os.close(fd)
    if len(raw) > _MAX_FILE_SIZE:
        raise KeystoreError(f"keystore {path} is too large to be a keystore")
    _check_directory(home)
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


def _decode_keys(document: dict[str, Any]) -> tuple[Identity | None, str | None]:
    try:
        seed = b64decode_strict(document["signing_seed"], what="signing_seed", size=32)
        secret = b64decode_strict(document["sealing_secret"], what="sealing_secret", size=32)
        return Identity.from_private_bytes(seed, secret), None
    except InvalidInput as exc:
        return None, exc.detail or exc.public_message


def _parse(raw: bytes, path: Path) -> tuple[str, Identity]:
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
    if version != KEYSTORE_VERSION:
        raise KeystoreError(
            f"keystore {path} has version {version}; this sealroom reads version "
            f"{KEYSTORE_VERSION}. Upgrade sealroom; do not recreate the keystore"
        )
    keys = set(document)
    if keys != _FIELDS:
        details = []
        if missing := sorted(_FIELDS - keys):
            details.append(f"missing {', '.join(missing)}")
        if unknown := sorted(keys - _FIELDS):
            details.append(f"unknown {', '.join(unknown)}")
        raise KeystoreError(f"keystore {path} is corrupt: {'; '.join(details)}")
    name = document["name"]
    try:
        _check_name(name)
    except KeystoreError as exc:
        raise KeystoreError(f"keystore {path} is corrupt: {exc.detail}") from None
    identity, problem = _decode_keys(document)
    if identity is None:
        raise KeystoreError(f"keystore {path} is corrupt: {problem}")
    stored_id = document["party_id"]
    if not isinstance(stored_id, str) or not hmac.compare_digest(
        stored_id.encode("utf-8", "surrogatepass"), identity.party_id.encode("ascii")
    ):
        raise KeystoreError(
            f"keystore {path} is inconsistent: its party id does not match its keys "
            "(the file was edited or assembled from different keystores)"
        )
    return name, identity
