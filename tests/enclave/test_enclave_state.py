"""The enclave's own state (budget ledger, release history) is its owner's alone: 0600 files
in a 0700 directory, whatever the umask, and a file left wider than that is narrowed."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from sealroom.enclave.state import EnclaveState
from sealroom.policy.privacy import PrivacyCost
from tests.enclave.ledger_helpers import DATASET, budget_rules, req


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The common default umask, under which a careless file would be 0644."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("usual_umask")
def test_budget_and_history_files_are_created_0600(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    state = EnclaveState.in_directory(directory)
    try:
        state.ledger.charge(
            dataset=DATASET,
            requester="alice",
            cost=PrivacyCost(epsilon=Decimal(1)),
            request=req(1),
            now=1000,
            rules=budget_rules(epsilon_per_requester="1", epsilon_total="3"),
        )
    finally:
        state.close()
    assert _mode(directory) == 0o700
    files = sorted(p.name for p in directory.iterdir())
    assert {"budget.db", "history.db"} <= set(files)
    for path in directory.iterdir():
        assert _mode(path) == 0o600, path.name


@pytest.mark.usefixtures("usual_umask")
def test_a_state_file_left_readable_by_others_is_narrowed(tmp_path: Path) -> None:
    first = EnclaveState.in_directory(tmp_path)
    first.close()
    (tmp_path / "budget.db").chmod(0o644)
    (tmp_path / "history.db").chmod(0o664)
    again = EnclaveState.in_directory(tmp_path)
    again.close()
    assert _mode(tmp_path / "budget.db") == 0o600
    assert _mode(tmp_path / "history.db") == 0o600
