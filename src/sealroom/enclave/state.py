"""The enclave's own state: its budget ledger and its release history, in one directory.

In production the directory is on dstack's encrypted, measurement-bound disk;
in simulation it is a plain directory (a temporary one unless ``--state``
names it) and protects nothing. See :mod:`sealroom.enclave.ledger` and
:mod:`sealroom.enclave.history` for what each holds.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sealroom.enclave.history import SqlReleaseHistory
from sealroom.enclave.ledger import SqlBudgetLedger

__all__ = ["EnclaveState"]


@dataclass(frozen=True, slots=True)
class EnclaveState:
    """The ledger and the history of one enclave, and the directory that holds them."""

    directory: Path
    ledger: SqlBudgetLedger
    history: SqlReleaseHistory
    temporary: bool = False

    @classmethod
    def in_directory(cls, directory: Path) -> EnclaveState:
        """Open (creating if needed) the state in ``directory``."""
        ledger = SqlBudgetLedger.in_directory(directory)
        history = SqlReleaseHistory.in_directory(directory)
        return cls(directory=directory, ledger=ledger, history=history)

    @classmethod
    def create_temporary(cls) -> EnclaveState:
        """State in a fresh temporary directory (simulation and tests), removed by close()."""
        directory = Path(tempfile.mkdtemp(prefix="sealroom-enclave-"))
        opened = cls.in_directory(directory)
        return cls(
            directory=directory, ledger=opened.ledger, history=opened.history, temporary=True
        )

    def close(self) -> None:
        self.ledger.close()
        self.history.close()
        if self.temporary:
            shutil.rmtree(self.directory, ignore_errors=True)
