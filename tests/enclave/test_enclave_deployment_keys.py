"""The deployment's shared enclave keys: derived from one secret, read only from a private file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sealroom.cli.services import read_deployment_secret
from sealroom.enclave.keys import deployment_identity
from sealroom.enclave.worker import make_enclave_keys
from sealroom.errors import InvalidInput


def test_workers_of_one_deployment_share_keys_and_each_has_its_own_evidence() -> None:
    secret = os.urandom(32)
    a = make_enclave_keys(now=1000, deployment_secret=secret)
    b = make_enclave_keys(now=1001, deployment_secret=secret)
    assert a.public == b.public == deployment_identity(secret).public
    assert a.evidence.digest != b.evidence.digest
    other = make_enclave_keys(now=1000, deployment_secret=os.urandom(32))
    assert other.public != a.public
    # The signing and sealing keys are independent derivations, not one key twice.
    assert a.public.signing_key != a.public.sealing_key


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(InvalidInput, match="at least 32 bytes"):
        deployment_identity(b"\x01" * 31)


def test_the_secret_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "deploy.secret"
    path.write_bytes(os.urandom(32))
    path.chmod(0o644)
    with pytest.raises(InvalidInput, match="readable by others"):
        read_deployment_secret(path)
    path.chmod(0o600)
    assert read_deployment_secret(path) == path.read_bytes()
    link = tmp_path / "link.secret"
    link.symlink_to(path)
    with pytest.raises(InvalidInput, match="cannot open"):
        read_deployment_secret(link)
    short = tmp_path / "short.secret"
    short.write_bytes(b"x" * 8)
    short.chmod(0o600)
    with pytest.raises(InvalidInput, match="at least 32 bytes"):
        read_deployment_secret(short)
