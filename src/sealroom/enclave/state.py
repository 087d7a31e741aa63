"""The enclave's own state: its release history, its trust in the log, a local ledger.

In production the directory is on dstack's encrypted, measurement-bound disk;
in simulation it is a plain directory (a temporary one unless ``--state``
names it) and protects nothing. Budgets are not kept here: the worker charges
the deployment's ledger in the log (:mod:`sealroom.enclave.charges`, whose
trust cache, ``ledger-trust.json``, lives in this directory); the local
:mod:`sealroom.enclave.ledger` is for an enclave run by hand. See
:mod:`sealroom.enclave.history` for the release history.
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
