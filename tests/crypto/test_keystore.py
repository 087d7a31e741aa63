from __future__ import annotations

import json
import os
import stat
import traceback
from pathlib import Path
from typing import Any

import pytest

from sealroom.crypto import keystore as ks
from sealroom.crypto.keys import Identity, b64encode
from sealroom.crypto.keystore import Keystore, KeystoreEntry, resolve_home
from sealroom.errors import KeystoreError

pytestmark = pytest.mark.skipif(os.name != "posix", reason="keystore permissions are POSIX")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _document(home: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(Keystore.path(home).read_text())
    return doc


def _write_document(home: Path, doc: object, *, raw: bytes | None = None) -> None:
    path = Keystore.path(home)
    path.write_bytes(raw if raw is not None else json.dumps(doc).encode())
    path.chmod(0o600)


def _load_error(home: Path) -> str:
    with pytest.raises(KeystoreError) as info:
        Keystore.load(home)
    return str(info.value)


def _legacy(home: Path, name: str, identity: Identity | None = None) -> Identity:
    """A version 1 keystore as sealroom wrote it before encryption at rest (keys in the clear)."""
    identity = identity or Identity.generate(post_quantum=False)
    seed, secret = identity.private_bytes()
    doc = {
        "type": "sealroom-keystore",
        "version": 1,
        "name": name,
        "party_id": identity.party_id,
        "signing_seed": b64encode(seed),
        "sealing_secret": b64encode(secret),
    }
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = Keystore.path(home)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    path.chmod(0o600)
    return identity


def _files(home: Path) -> list[str]:
    return sorted(p.name for p in home.iterdir())


# --- where the keystore lives ------------------------------------------------------------------


def test_home_resolution_order() -> None:
    env = {"SEALROOM_HOME": "/from/env", "HOME": "/users/ann"}
    assert resolve_home("/explicit", env) == Path("/explicit")
    assert resolve_home(Path("/explicit"), env) == Path("/explicit")
    assert resolve_home(None, env) == Path("/from/env")
    assert resolve_home(None, {"HOME": "/users/ann"}) == Path("/users/ann/.sealroom")
    # An empty setting counts as unset rather than meaning the current directory.
    assert resolve_home("", {"SEALROOM_HOME": "", "HOME": "/h"}) == Path("/h/.sealroom")


# --- create and load ---------------------------------------------------------------------------


def test_create_then_load_round_trips(home: Path) -> None:
    created = Keystore.create(home, name="Clinic A", unencrypted=True)
    loaded = Keystore.load(home)
    assert loaded.party_id == created.party_id
    assert loaded.private_bytes() == created.private_bytes()
    entry = Keystore.load_entry(home)
    assert entry.name == "Clinic A"
    assert entry.party_id == created.party_id
    assert entry.path == home / "identity.json"


def test_file_format(home: Path) -> None:
    identity = Identity.generate()
    ks._create(home, name="Clinic A", identity=identity, unencrypted=True)
    seed, secret = identity.private_bytes()
    kem_seed = identity.kem_seed()
    assert kem_seed is not None
    assert identity.public.kem_key is not None
    assert _document(home) == {
        "type": "sealroom-keystore",
        "version": 2,
        "name": "Clinic A",
        "party_id": identity.party_id,
        "protection": "unencrypted",
        "public": {
            "signing_key": b64encode(identity.public.signing_key),
            "sealing_key": b64encode(identity.public.sealing_key),
            "kem_key": b64encode(identity.public.kem_key),
        },
        "secrets": {
            "signing_seed": b64encode(seed),
            "sealing_secret": b64encode(secret),
            "kem_seed": b64encode(kem_seed),
        },
    }


def test_legacy_file_format_still_loads(home: Path) -> None:
    identity = _legacy(home, "Clinic A")
    entry = Keystore.load_entry(home)
    assert entry.protection == "legacy-plaintext"
    assert entry.party_id == identity.party_id
    assert entry.identity.private_bytes() == identity.private_bytes()
    assert not entry.identity.public.post_quantum


def test_modes_are_private_even_with_a_permissive_umask(home: Path) -> None:
    old = os.umask(0)
    try:
        Keystore.create(home, name="a", unencrypted=True)
    finally:
        os.umask(old)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE(Keystore.path(home).stat().st_mode) == 0o600


def test_keys_are_never_on_disk_with_wider_permissions(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real_fsync = os.fsync

    def spy_fsync(fd: int) -> None:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):
            seen.append(stat.S_IMODE(st.st_mode))
        real_fsync(fd)

    monkeypatch.setattr(ks.os, "fsync", spy_fsync)
    old = os.umask(0)
    try:
        Keystore.create(home, name="a", unencrypted=True)
    finally:
        os.umask(old)
    assert seen == [0o600]


def test_create_refuses_to_overwrite(home: Path) -> None:
    first = Keystore.create(home, name="first", unencrypted=True)
    before = Keystore.path(home).read_bytes()
    with pytest.raises(KeystoreError, match="already exists"):
        Keystore.create(home, name="second", unencrypted=True)
    assert Keystore.path(home).read_bytes() == before
    assert Keystore.load(home).party_id == first.party_id
    assert _files(home) == ["identity.json"]


def test_create_refuses_a_link_that_appears_meanwhile(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process wins the race after our existence check: link() must not clobber.
    real_link = os.link
    intruder = b'{"intruder": true}'

    def racing_link(src: Any, dst: Any) -> None:
        Path(dst).write_bytes(intruder)
        real_link(src, dst)

    monkeypatch.setattr(ks.os, "link", racing_link)
    with pytest.raises(KeystoreError, match="already exists"):
        Keystore.create(home, name="a", unencrypted=True)
    assert Keystore.path(home).read_bytes() == intruder
    assert _files(home) == ["identity.json"]


@pytest.mark.parametrize("name", ["", "   ", "a\nb", "x" * 201, "\ud800"])
def test_create_rejects_bad_names(home: Path, name: str) -> None:
    with pytest.raises(KeystoreError, match="name"):
        Keystore.create(home, name=name)
    assert not Keystore.path(home).exists()


def test_create_refuses_a_world_writable_home(home: Path) -> None:
    home.mkdir()
    home.chmod(0o777)
    with pytest.raises(KeystoreError, match="writable by group or others"):
        Keystore.create(home, name="a", unencrypted=True)


# --- crash safety ------------------------------------------------------------------------------


def test_failed_replace_leaves_old_keystore_and_no_temp_files(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Keystore.create(home, name="old name", unencrypted=True)
    before = Keystore.path(home).read_bytes()

    def killed(src: Any, dst: Any) -> None:
        raise OSError(5, "simulated crash during replace")

    monkeypatch.setattr(ks.os, "replace", killed)
    with pytest.raises(KeystoreError, match="cannot write keystore"):
        Keystore.rename(home, name="new name")
    assert Keystore.path(home).read_bytes() == before
    assert Keystore.load_entry(home).name == "old name"
    assert Keystore.load(home).party_id == original.party_id
    assert _files(home) == ["identity.json"]


def test_interrupt_during_write_leaves_no_keystore_and_no_temp_files(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def killed(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ks.os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        Keystore.create(home, name="a", unencrypted=True)
    assert _files(home) == []
    monkeypatch.undo()
    assert "no keystore" in _load_error(home)


def test_failed_link_leaves_no_keystore(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def killed(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ks.os, "link", killed)
    with pytest.raises(KeystoreError, match="No space left"):
        Keystore.create(home, name="a", unencrypted=True)
    assert _files(home) == []


def test_rename_keeps_keys(home: Path) -> None:
    identity = Keystore.create(home, name="old", unencrypted=True)
    entry = Keystore.rename(home, name="new")
    assert entry.name == "new"
    assert Keystore.load_entry(home).name == "new"
    assert Keystore.load(home).private_bytes() == identity.private_bytes()
    assert stat.S_IMODE(Keystore.path(home).stat().st_mode) == 0o600
    assert _files(home) == ["identity.json"]


# --- loading refuses, never invents ------------------------------------------------------------


def test_missing_keystore_says_how_to_create_one(home: Path) -> None:
    message = _load_error(home)
    assert "no keystore" in message
    assert "create" in message
    assert "SEALROOM_HOME" in message
    assert not home.exists()  # loading never creates anything


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[]", "expected a JSON object"),
        (b'{"type": "sealroom-keystore", "type": "sealroom-keystore"}', "appears twice"),
    ],
)
def test_corrupt_json(home: Path, raw: bytes, expected: str) -> None:
    _legacy(home, "a")
    _write_document(home, None, raw=raw)
    assert expected in _load_error(home)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"type": "age-identity"}, "not a sealroom keystore"),
        ({"type": None}, "no type marker"),
        ({"version": 3}, "version 3"),
        ({"version": "1"}, "version must be an integer"),
        ({"version": True}, "version must be an integer"),
        ({"extra": 1}, "unknown extra"),
        ({"name": 7}, "name"),
        ({"signing_seed": "not base64!"}, "signing_seed: not valid base64"),
        ({"sealing_secret": b64encode(b"\x01" * 31)}, "sealing_secret: expected 32 bytes"),
        ({"signing_seed": b64encode(b"\x01" * 33)}, "signing_seed: expected 32 bytes"),
        ({"signing_seed": 12}, "signing_seed"),
    ],
)
def test_malformed_fields(home: Path, change: dict[str, Any], expected: str) -> None:
    _legacy(home, "a")
    doc = _document(home)
    doc.update(change)
    _write_document(home, doc)
    assert expected in _load_error(home)


def test_foreign_json_without_marker(home: Path) -> None:
    home.mkdir(mode=0o700)
    _write_document(home, {"private_key": "abc"})
    assert "not a sealroom keystore" in _load_error(home)


@pytest.mark.parametrize("field", ["party_id", "signing_seed", "sealing_secret"])
def test_missing_field(home: Path, field: str) -> None:
    _legacy(home, "a")
    doc = _document(home)
    del doc[field]
    _write_document(home, doc)
    assert f"missing {field}" in _load_error(home)


def test_tampered_party_id(home: Path) -> None:
    _legacy(home, "a")
    doc = _document(home)
    doc["party_id"] = Identity.generate().party_id
    _write_document(home, doc)
    assert "party id does not match its keys" in _load_error(home)


def test_key_from_another_keystore(home: Path) -> None:
    _legacy(home, "a")
    other = Identity.generate()
    doc = _document(home)
    doc["sealing_secret"] = b64encode(other.private_bytes()[1])
    _write_document(home, doc)
    assert "party id does not match its keys" in _load_error(home)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o610])
def test_refuses_group_or_world_access(home: Path, mode: int) -> None:
    _legacy(home, "a")
    Keystore.path(home).chmod(mode)
    message = _load_error(home)
    assert "accessible by group or others" in message
    assert f"{mode:04o}" in message


def test_refuses_a_world_writable_directory(home: Path) -> None:
    _legacy(home, "a")
    home.chmod(0o757)
    assert "writable by group or others" in _load_error(home)


def test_refuses_a_symlink(home: Path, tmp_path: Path) -> None:
    _legacy(home, "a")
    real = tmp_path / "elsewhere.json"
    Keystore.path(home).rename(real)
    Keystore.path(home).symlink_to(real)
    assert "symbolic link" in _load_error(home)


def test_refuses_a_directory_in_place_of_the_file(home: Path) -> None:
    home.mkdir(mode=0o700)
    Keystore.path(home).mkdir(mode=0o700)
    assert "not a regular file" in _load_error(home)


def test_refuses_a_huge_file(home: Path) -> None:
    _legacy(home, "a")
    _write_document(home, None, raw=b" " * (65 * 1024))
    assert "too large" in _load_error(home)


# --- secrets stay secret -----------------------------------------------------------------------


def _secrets(identity: Identity) -> list[str]:
    seed, secret = identity.private_bytes()
    return [b64encode(seed), b64encode(secret), seed.hex(), secret.hex()]


def test_repr_never_shows_private_keys(home: Path) -> None:
    identity = _legacy(home, "a")
    entry = Keystore.load_entry(home)
    assert isinstance(entry, KeystoreEntry)
    for text in (repr(identity), repr(entry), str(entry)):
        assert identity.party_id in text
        for secret in _secrets(identity):
            assert secret not in text


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text.replace('"version": 1', '"version": 1,'),  # JSON syntax error
        lambda text: text.replace('"party_id": "sr1', '"party_id": "sr1x'),
        lambda text: text.replace('"type": "sealroom-keystore"', '"type": "other"'),
    ],
)
def test_errors_never_carry_private_keys(home: Path, damage: Any) -> None:
    identity = _legacy(home, "a")
    path = Keystore.path(home)
    path.write_text(damage(path.read_text()))
    with pytest.raises(KeystoreError) as info:
        Keystore.load(home)
    rendered = "".join(traceback.format_exception(info.value)) + info.value.diagnostics()
    for secret in _secrets(identity):
        assert secret not in rendered
    # No chained exception may hold the document (JSONDecodeError keeps it in .doc,
    # and ``from None`` still leaves it reachable as __context__).
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
