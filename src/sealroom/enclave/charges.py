"""The deployment's budget ledger as the enclave checks it: logged charges, proved.

A dataset's budget is not this enclave's state: it is the hash chain of
:class:`~sealroom.statements.BudgetCharge` statements in the coordinator's
transparency log (:mod:`sealroom.coordinator.ledger`), shared by every
enclave instance of the deployment. Before a job is charged,
:class:`LoggedBudgetLedger` reads the dataset's whole chain and checks, trusting
nothing the coordinator says:

- the checkpoint is signed by the pinned log key and consistently extends the
  last checkpoint this enclave trusted (no rollback, no fork);
- every charge is signed, is included in that checkpoint (inclusion proof of
  its salted log commitment: charges are private statements), is for this
  dataset, and links to the one before (``seq``, ``prev``);
- the chain still holds the newest head this enclave saw for the dataset
  (a coordinator cannot hide charges this instance has seen).

It then sums the spend exactly (the limits are those of
:mod:`sealroom.enclave.ledger`) and returns a signed charge on the head it
saw. Nothing is committed here: the charge is appended by the coordinator in
the transaction that stores the release, only if it still names the head
(otherwise the worker reads again and retries), so restarts, new instances and
deleted state directories all see the same spend.

A request already charged on the dataset was already released (charge and
release are stored together): :class:`~sealroom.errors.AlreadyReleased`, and
nothing is computed again.

What the local file (``ledger-trust.json`` in the state directory) holds is a
cache of trust, not of budgets: the log key, the last trusted checkpoint, the
newest head seen per dataset and the latest witnessed time. Deleting it loses
no budget.

**The first checkpoint.** Without witnesses configured, a fresh enclave (or one
whose trust file was deleted) trusts the log's checkpoint on first use: a
coordinator could show it a fork that leaves charges out. With a
:class:`CheckpointAnchor` (m of n witness keys and a freshness bound), every read
also takes the log's cosigned checkpoint (``GET /v1/log/checkpoint``) and
requires cosignatures from m of the witnesses; a fresh enclave trusts it only
if the witnessed time (the m-th newest cosignature timestamp: m witnesses
vouch the checkpoint was current at or after it) is within ``max_age`` seconds
of its evidence time, and later cosigned checkpoints must be consistent with
what it trusts. Showing it a fork then needs m colluding witnesses.

**Checkpoint time.** With an anchor, budget periods (``max_queries`` windows) and
each charge's ``charged_at`` use the latest witnessed time, never the host's
clock, which the host sets. A coordinator that withholds newer cosignatures
can only hold that time back, which keeps old charges inside their windows
longer (stricter), never lets a window end early.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sealroom.crypto.files import write_private
from sealroom.enclave.keys import EnclaveKeys
from sealroom.enclave.ledger import Charge, check_limits
from sealroom.errors import AlreadyReleased, InvalidInput, ProofInvalid, SealroomError
from sealroom.policy.privacy import PrivacyCost
from sealroom.policy.rules import PolicyRules
from sealroom.statements import BudgetCharge, Envelope, Signed, sign_statement
from sealroom.statements.fields import canonical_decimal
from sealroom.transparency.checkpoint import Checkpoint, NoteVerifier, open_checkpoint
from sealroom.transparency.cosignature import WitnessPolicy
from sealroom.transparency.entries import entry_leaf_hash
from sealroom.transparency.monitor import advance_checkpoint
from sealroom.transparency.proof import verify_consistency, verify_inclusion

__all__ = [
    "DEFAULT_MAX_CHECKPOINT_AGE",
    "CheckpointAnchor",
    "LedgerSource",
    "LedgerTrust",
    "LoggedBudgetLedger",
    "ProvedChain",
]

TRUST_FILE = "ledger-trust.json"
#: How far (s) a fresh enclave's first witnessed checkpoint may be from its evidence time.
DEFAULT_MAX_CHECKPOINT_AGE = 600
_MAX_FILE = 16 << 20


class LoggedChargeView(Protocol):
    @property
    def envelope(self) -> Envelope: ...

    @property
    def log_index(self) -> int: ...

    @property
    def salt(self) -> bytes | None: ...

    @property
    def inclusion(self) -> Sequence[bytes]: ...


class LedgerViewLike(Protocol):
    @property
    def dataset(self) -> str: ...

    @property
    def checkpoint(self) -> str: ...

    @property
    def charges(self) -> Sequence[LoggedChargeView]: ...


class LogKeyLike(Protocol):
    @property
    def verifier_key(self) -> str: ...


class ConsistencyLike(Protocol):
    @property
    def first(self) -> int: ...

    @property
    def second(self) -> int: ...

    @property
    def proof(self) -> Sequence[bytes]: ...


class LedgerSource(Protocol):
    """The coordinator calls the ledger needs (the SDK client fits)."""

    def ledger(self, dataset: str, /) -> LedgerViewLike: ...

    def log_key(self) -> LogKeyLike: ...

    def log_consistency(self, first: int, second: int, /) -> ConsistencyLike: ...

    def log_checkpoint(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ProvedChain:
    """A dataset's charges, oldest first, each proved included in ``checkpoint``; ``time``:
    the latest witnessed time (None without a :class:`CheckpointAnchor`)."""

    dataset: str
    checkpoint: Checkpoint
    charges: tuple[Signed[BudgetCharge], ...]
    time: int | None = None

    @property
    def head(self) -> str | None:
        return self.charges[-1].digest if self.charges else None


@dataclass(frozen=True, slots=True)
class CheckpointAnchor:
    """Where a fresh enclave's first trusted checkpoint comes from: cosigned by ``witnesses``
    (m of n), witnessed within ``max_age`` seconds of the enclave's evidence time."""

    witnesses: WitnessPolicy
    max_age: int = DEFAULT_MAX_CHECKPOINT_AGE

    def __post_init__(self) -> None:
        if isinstance(self.max_age, bool) or not isinstance(self.max_age, int) or self.max_age < 1:
            raise InvalidInput("the first checkpoint's freshness bound must be at least 1 s")

    def witnessed_time(self, note: str) -> int:
        """The m-th newest verified cosignature time on ``note`` (ProofInvalid below m)."""
        found = self.witnesses.check(note)
        times = sorted((c.timestamp for c in found), reverse=True)
        return times[self.witnesses.required - 1]

    def describe(self) -> str:
        return f"witnesses {self.witnesses.describe()}, first checkpoint within {self.max_age} s"


class LedgerTrust:
    """The enclave's cache of trust in the log: key, last checkpoint, newest head per dataset.

    One JSON file, replaced atomically (0600) under a file lock, so several
    threads or processes on one state directory never lose an update.
    """

    __slots__ = ("_lock", "_path")

    def __init__(self, directory: Path) -> None:
        self._path = Path(directory) / TRUST_FILE
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self._path

    @contextmanager
    def locked(self) -> Iterator[dict[str, Any]]:
        """The document, to read and change; written back when the block ends without error."""
        with self._lock:
            self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self._path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                doc = self._read()
                before = json.dumps(doc, sort_keys=True)
                yield doc
                after = json.dumps(doc, sort_keys=True)
                if after != before:
                    write_private(self._path, after.encode() + b"\n")
            finally:
                os.close(fd)

    def _read(self) -> dict[str, Any]:
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return {"version": 1, "log_key": None, "checkpoint": None, "heads": {}}
        try:
            doc = json.loads(raw[:_MAX_FILE])
            if not isinstance(doc, dict) or doc.get("version") != 1:
                raise ValueError("not a version 1 document")
            if not isinstance(doc.get("heads"), dict):
                raise ValueError("heads is not an object")
            return doc
        except ValueError as exc:
            raise InvalidInput(
                f"{self._path} is damaged ({exc}); remove it to trust the log anew"
            ) from None


class LoggedBudgetLedger:
    """A :class:`~sealroom.enclave.ledger.BudgetLedger` over the deployment's logged charges.

    ``log_key``: the log's note verifier key, pinned by configuration; without
    it the key is trusted on first use and then kept in the trust file.
    """

    __slots__ = ("_anchor", "_evidence_time", "_keys", "_pinned", "_source", "_trust")

    def __init__(
        self,
        *,
        source: LedgerSource,
        keys: EnclaveKeys,
        trust: LedgerTrust,
        log_key: str | None = None,
        anchor: CheckpointAnchor | None = None,
        evidence_time: Callable[[], int] | None = None,
    ) -> None:
        self._source = source
        self._keys = keys
        self._trust = trust
        self._pinned = NoteVerifier.from_vkey(log_key) if log_key is not None else None
        self._anchor = anchor
        # The enclave's current evidence time (a worker re-attests; default: these keys').
        self._evidence_time = evidence_time or (lambda: keys.evidence.statement.created_at)

    @property
    def anchor(self) -> CheckpointAnchor | None:
        return self._anchor

    def read(self, dataset: str) -> ProvedChain:
        """The dataset's chain, proved against a checkpoint consistent with the trusted one."""
        # The cosigned checkpoint first: it lags the latest, so the view below extends it.
        witnessed = self._source.log_checkpoint() if self._anchor is not None else None
        view = self._source.ledger(dataset)
        if view.dataset != dataset:
            raise ProofInvalid(f"the coordinator answered the ledger of {view.dataset}")
        with self._trust.locked() as doc:
            verifier = self._verifier(doc)
            trusted = open_checkpoint(doc["checkpoint"], verifier) if doc["checkpoint"] else None
            if witnessed is not None:
                trusted = self._witnessed(doc, trusted, witnessed, verifier)
            checkpoint = advance_checkpoint(trusted, view.checkpoint, verifier, self._consistency)
            charges = _prove_chain(dataset, view, checkpoint)
            seen = doc["heads"].get(dataset)
            if seen is not None:
                seq, digest = int(seen[0]), str(seen[1])
                if seq >= len(charges) or charges[seq].digest != digest:
                    raise ProofInvalid(
                        f"the ledger of {dataset} no longer holds charge {digest} at {seq}, "
                        "which this enclave saw: the coordinator hid or rewrote charges"
                    )
            if charges:
                doc["heads"][dataset] = [len(charges) - 1, charges[-1].digest]
            if trusted is None or checkpoint.size > trusted.size:
                doc["checkpoint"] = view.checkpoint
            when = doc.get("checkpoint_time") if self._anchor is not None else None
        return ProvedChain(
            dataset=dataset,
            checkpoint=checkpoint,
            charges=charges,
            time=None if when is None else int(when),
        )

    def _witnessed(
        self, doc: dict[str, Any], trusted: Checkpoint | None, note: str, verifier: NoteVerifier
    ) -> Checkpoint:
        """Check the cosigned ``note`` (m of n, fresh on first use, consistent with what is
        trusted); record its witnessed time; return what is trusted now."""
        assert self._anchor is not None
        cosigned = open_checkpoint(note, verifier)
        when = self._anchor.witnessed_time(note)
        if trusted is None:
            evidence = self._evidence_time()
            if abs(when - evidence) > self._anchor.max_age:
                raise ProofInvalid(
                    f"the log's first witnessed checkpoint is not fresh: witnessed at {when}, "
                    f"the enclave's evidence at {evidence}, bound {self._anchor.max_age} s"
                )
            doc["checkpoint"] = note
            now_trusted = cosigned
        elif cosigned.size >= trusted.size:
            now_trusted = advance_checkpoint(trusted, note, verifier, self._consistency)
            doc["checkpoint"] = note
        else:
            # An older cosigned checkpoint must be a prefix of the trusted one.
            proof = self._consistency(cosigned.size, trusted.size) if cosigned.size else []
            try:
                if cosigned.size:
                    verify_consistency(
                        cosigned.size, trusted.size, proof, cosigned.root_hash, trusted.root_hash
                    )
            except ProofInvalid as exc:
                raise ProofInvalid(
                    f"fork: the witnessed size {cosigned.size} is not a prefix of the trusted "
                    f"size {trusted.size}: {exc}"
                ) from exc
            now_trusted = trusted
        doc["checkpoint_time"] = max(int(doc.get("checkpoint_time") or 0), when)
        return now_trusted

    def stored(self, charges: Sequence[Envelope]) -> None:
        """Remember charges the coordinator accepted (with their release) as seen heads, so a
        later view that leaves them out is caught."""
        with self._trust.locked() as doc:
            for env in charges:
                c = env.open(BudgetCharge).statement
                seen = doc["heads"].get(c.dataset)
                if seen is None or int(seen[0]) < c.seq:
                    doc["heads"][c.dataset] = [c.seq, env.digest]

    def _verifier(self, doc: dict[str, Any]) -> NoteVerifier:
        stored = doc.get("log_key")
        if self._pinned is not None:
            if stored is not None and stored != self._pinned.vkey:
                raise ProofInvalid(
                    f"the trust file {self._trust.path} names another log key than the pinned one"
                )
            doc["log_key"] = self._pinned.vkey
            return self._pinned
        if stored is None:
            stored = self._source.log_key().verifier_key
            doc["log_key"] = stored
        return NoteVerifier.from_vkey(str(stored))

    def _consistency(self, first: int, second: int) -> list[bytes]:
        view = self._source.log_consistency(first, second)
        if (view.first, view.second) != (first, second):
            raise ProofInvalid("the coordinator answered a consistency proof for other sizes")
        return list(view.proof)

    def charge(
        self,
        *,
        dataset: str,
        requester: str,
        cost: PrivacyCost,
        request: str,
        now: int,
        rules: PolicyRules | None,
    ) -> Charge:
        """A signed charge on the dataset's proved head, or PolicyDenied (nothing is sent)."""
        chain = self.read(dataset)
        # Witnessed time where there is one (the host sets the enclave's clock).
        if chain.time is not None:
            now = chain.time
        for c in chain.charges:
            if c.statement.request == request:
                raise AlreadyReleased(
                    f"request {request} is already charged on {dataset} ({c.digest}); "
                    "a charge is stored only with its release"
                )
        check_limits(
            [c.statement for c in chain.charges],
            dataset=dataset,
            requester=requester,
            cost=cost,
            now=now,
            rules=rules,
        )
        statement = BudgetCharge(
            dataset=dataset,
            request=request,
            requester=requester,
            epsilon=canonical_decimal(cost.epsilon),
            delta=canonical_decimal(cost.delta),
            bits=canonical_decimal(cost.bits),
            seq=len(chain.charges),
            prev=chain.head,
            enclave=self._keys.public.party_id,
            evidence=self._keys.evidence.digest,
            charged_at=now,
        )
        return Charge(
            request=request,
            dataset=dataset,
            requester=requester,
            epsilon=cost.epsilon,
            delta=cost.delta,
            charged_at=now,
            bits=cost.bits,
            statement=sign_statement(statement, self._keys.identity),
        )


def _prove_chain(
    dataset: str, view: LedgerViewLike, checkpoint: Checkpoint
) -> tuple[Signed[BudgetCharge], ...]:
    out: list[Signed[BudgetCharge]] = []
    prev: str | None = None
    for position, item in enumerate(view.charges):
        try:
            charge = item.envelope.open(BudgetCharge)
        except SealroomError as exc:
            raise ProofInvalid(f"charge {position} of {dataset} does not open: {exc}") from None
        c = charge.statement
        if c.dataset != dataset or c.seq != position or c.prev != prev:
            raise ProofInvalid(
                f"charge {charge.digest} does not continue the chain of {dataset} at {position}"
            )
        if not 0 <= item.log_index < checkpoint.size:
            raise ProofInvalid(f"charge {charge.digest} is not within the checkpoint")
        verify_inclusion(
            item.log_index,
            checkpoint.size,
            entry_leaf_hash(item.envelope.to_json(), item.salt),
            list(item.inclusion),
            checkpoint.root_hash,
        )
        out.append(charge)
        prev = charge.digest
    return tuple(out)
