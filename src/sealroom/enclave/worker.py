"""The enclave worker: the process loop around :func:`sealroom.enclave.runner.execute_job`.

It creates the enclave's keys (bound to TEE evidence by a provider: the
labelled simulation by default, dstack when configured), registers the
evidence with its job source (the coordinator, reached through the SDK's
client), then claims jobs, downloads their sealed inputs, runs them and posts
the receipt and sealed outputs, or a failure with a reason that is safe to
publish. The runner checks every statement itself; this loop only moves bytes
and never trusts the job source's word.

The loop sees the coordinator only as a :class:`JobSource`, so the code inside
the TEE imports no SDK: the client satisfies the protocol structurally, and a
test can hand the loop jobs from memory.

Budgets are the deployment's, not this process's: by default the worker
charges the logged ledger (:mod:`sealroom.enclave.charges`) and posts the
signed charges with the result, which the coordinator stores together or not
at all. If another worker charged the same dataset first (a stale head), the
job is read and run again; if the request turns out to be released already,
the worker leaves it. While a job runs, a thread renews its lease; a worker
that dies stops renewing, and the job goes back to the queue for another.

Polling backs off while idle or while the coordinator is unreachable, and
the loop stops cleanly on SIGTERM/SIGINT or when a stop event is set.

After every job it ran, whatever the outcome, the worker drops its copies
of the sealed inputs and signs a :class:`~sealroom.statements.Deletion`
(what it held, when it let go) that it posts to the job source, which logs
it. A deletion the source could not take now is kept and posted again on
the next step, so a coordinator outage loses none.

Results are released commit-then-reveal (:mod:`sealroom.enclave.release`): the
posted results are wrapped, and their keys go out only after the worker proved
the request's charges are in the log. An idle worker finishes the reveals a
stopped worker of the deployment left behind.
"""

from __future__ import annotations

import functools
import logging
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

from sealroom.attestation.evidence import EvidenceProvider
from sealroom.attestation.pins import DEFAULT_MAX_EVIDENCE_AGE
from sealroom.attestation.simulated import SimulatedEnclave, SimulationRoot
from sealroom.computations import Registry, default_registry
from sealroom.crypto.keys import PartyId, PublicIdentity
from sealroom.enclave.charges import (
    CheckpointAnchor,
    LedgerSource,
    LedgerTrust,
    LoggedBudgetLedger,
)
from sealroom.enclave.keys import EnclaveKeys, deployment_identity
from sealroom.enclave.ledger import BudgetLedger
from sealroom.enclave.release import prove_charged, release_keys, wrap_outputs
from sealroom.enclave.runner import (
    ChunkedInput,
    JobFailed,
    JobMaterials,
    JobOutput,
    SealedInput,
    execute_job,
)
from sealroom.enclave.state import EnclaveState
from sealroom.errors import (
    AlreadyReleased,
    BackendUnavailable,
    Conflict,
    InvalidInput,
    NotFound,
    SealroomError,
    StaleLedgerHead,
    VerificationFailed,
)
from sealroom.statements import (
    Deletion,
    Envelope,
    HeldInput,
    Receipt,
    SealedHash,
    Signed,
    sign_statement,
)

__all__ = [
    "DEFAULT_REATTEST_AFTER",
    "ClaimedJob",
    "EnclaveWorker",
    "JobInput",
    "JobSource",
    "RegisteredEnclave",
    "StepResult",
    "make_enclave_keys",
    "make_evidence_provider",
    "stop_on_signals",
]

_log = logging.getLogger("sealroom.enclave.worker")
# Runs of one job whose charges met a moved ledger head before the worker gives up.
_STALE_RETRIES = 5

# Re-attest at half the default maximum evidence age owners accept (24 h), so an owner
# with the default bound always finds fresh evidence.
DEFAULT_REATTEST_AFTER = DEFAULT_MAX_EVIDENCE_AGE // 2
# Earlier evidence kept for jobs sealed to it (a month of re-attestations at the default).
_KEEP_EVIDENCE = 64
# Signed deletions kept for posting again while the job source cannot take them.
_KEEP_DELETIONS = 1024


class RegisteredEnclave(Protocol):
    """What the job source says it registered (checked against the enclave's own evidence)."""

    @property
    def evidence(self) -> str: ...

    @property
    def party(self) -> str: ...

    @property
    def tee(self) -> str: ...

    @property
    def simulated(self) -> bool: ...


class JobInput(Protocol):
    """One sealed input of a claimed job, by the digest of its dataset's attestation."""

    @property
    def dataset(self) -> str: ...


class ClaimedJob(Protocol):
    """A job as the job source hands it over: signed statements, all of them untrusted."""

    @property
    def request(self) -> Envelope: ...

    @property
    def approvals(self) -> Sequence[Envelope]: ...

    @property
    def attestations(self) -> Sequence[Envelope]: ...

    @property
    def policies(self) -> Sequence[Envelope]: ...

    @property
    def room_policy(self) -> Envelope | None: ...

    @property
    def room(self) -> Envelope | None: ...

    @property
    def consents(self) -> Sequence[Envelope]: ...

    @property
    def run_approvals(self) -> Sequence[Envelope]: ...

    @property
    def org_members(self) -> Sequence[Envelope]: ...

    @property
    def inputs(self) -> Sequence[JobInput]: ...

    @property
    def evidence(self) -> str: ...

    @property
    def lease_until(self) -> int: ...


class PendingReleaseLike(Protocol):
    @property
    def request(self) -> str: ...

    @property
    def receipt(self) -> Envelope: ...


class PendingReleasesLike(Protocol):
    @property
    def releases(self) -> Sequence[PendingReleaseLike]: ...


class JobSource(LedgerSource, Protocol):
    """Where the enclave's jobs come from: exactly what the loop calls (the SDK client fits)."""

    def register_enclave(self, evidence: Envelope, /) -> RegisteredEnclave: ...

    def claim_job(self) -> ClaimedJob | None: ...

    def job_input(self, request: str, dataset: str, /) -> bytes: ...

    def job_input_part(self, request: str, dataset: str, index: int, /) -> bytes: ...

    def renew_lease(self, request: str, /) -> object: ...

    def complete_job(
        self,
        request: str,
        receipt: Envelope,
        outputs: Mapping[PartyId, bytes],
        charges: Sequence[Envelope] = (),
        /,
    ) -> object: ...

    def fail_job(self, request: str, reason: str, /) -> object: ...

    def record_deletion(self, request: str, deletion: Envelope, /) -> object: ...
    def release_job(self, request: str, keys: Mapping[PartyId, bytes], /) -> object: ...

    def pending_releases(self) -> PendingReleasesLike: ...

    def party_identity(self, party: str, /) -> PublicIdentity: ...


_RELEASE_SCAN_SECONDS = 5.0


def _unix_now() -> int:
    return int(time.time())


def make_evidence_provider(
    *,
    tee: Literal["simulated", "dstack"] = "simulated",
    dstack_endpoint: str | None = None,
    simulation_root: SimulationRoot | None = None,
) -> EvidenceProvider:
    """The dstack guest agent, or the labelled simulation under ``simulation_root`` (the
    deployment's pinned root; a fresh one, which no coordinator admits, when None)."""
    if tee == "simulated":
        return SimulatedEnclave(simulation_root or SimulationRoot.generate())
    from sealroom.attestation.dstack import DstackProvider

    return DstackProvider(dstack_endpoint)


_REGION = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def make_enclave_keys(
    *,
    tee: Literal["simulated", "dstack"] = "simulated",
    now: int,
    dstack_endpoint: str | None = None,
    provider: EvidenceProvider | None = None,
    deployment_secret: bytes | None = None,
    region: str | None = None,
) -> EnclaveKeys:
    """Enclave keys with evidence from ``provider`` (default: :func:`make_evidence_provider`).

    The keys are fresh, or with ``deployment_secret`` the deployment's shared
    keys (:func:`~sealroom.enclave.keys.deployment_identity`). Under dstack
    without a secret given, the secret is the KMS-derived app key.
    """
    if region is not None and not _REGION.fullmatch(region):
        raise InvalidInput(
            f"region {region!r}: use 1-64 of a-z, 0-9, '.', '_', '-' (starting with a letter "
            "or digit), e.g. eu-west"
        )
    if provider is None:
        provider = make_evidence_provider(tee=tee, dstack_endpoint=dstack_endpoint)
    if deployment_secret is None and tee == "dstack":
        from sealroom.attestation.dstack import DstackProvider

        if isinstance(provider, DstackProvider):
            deployment_secret = provider.app_key()
    identity = deployment_identity(deployment_secret) if deployment_secret is not None else None
    return EnclaveKeys.create_at_time(
        provider,
        tee="simulated" if tee == "simulated" else "tdx",
        now=now,
        identity=identity,
        region=region,
    )


class _HeldParts:
    """Fetches the parts of a chunked input, hashing each as it first arrives in order into
    ``held[dataset]`` (:class:`~sealroom.statements.SealedHash`, as the coordinator names the
    same parts when it erases them); the entry appears with the first part, so an input never
    fetched is not claimed as held, and a job that stops early names the prefix it held."""

    __slots__ = ("_dataset", "_fetch", "_held", "_next")

    def __init__(
        self, fetch: Callable[[int], bytes], held: dict[str, SealedHash], dataset: str
    ) -> None:
        self._fetch = fetch
        self._held = held
        self._dataset = dataset
        self._next = 0

    def __call__(self, index: int) -> bytes:
        piece = self._fetch(index)
        if index == self._next:
            self._held.setdefault(self._dataset, SealedHash()).update(piece)
            self._next += 1
        return piece


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one :meth:`EnclaveWorker.step` did."""

    # "abandoned": the request was released by another run, or taken back; nothing posted.
    outcome: Literal["idle", "completed", "failed", "abandoned"]
    request: str | None = None
    reason: str | None = None


class EnclaveWorker:
    """Claims and runs jobs for one enclave identity from one job source.

    The source must act as the enclave (the SDK client signs with the enclave's
    key): the coordinator refuses a registration signed by anyone else, and
    :meth:`register` checks the party and evidence it recorded.
    """

    __slots__ = (
        "_clock",
        "_idle_max",
        "_idle_min",
        "_keys",
        "_known",
        "_ledger",
        "_next_release_scan",
        "_on_event",
        "_pending_deletions",
        "_provider",
        "_reattest_after",
        "_registered",
        "_registry",
        "_source",
        "_state",
    )

    def __init__(
        self,
        *,
        source: JobSource,
        keys: EnclaveKeys,
        state: EnclaveState,
        registry: Registry | None = None,
        clock: Callable[[], int] = _unix_now,
        idle_min: float = 0.25,
        idle_max: float = 5.0,
        on_event: Callable[[str], None] | None = None,
        provider: EvidenceProvider | None = None,
        reattest_after: int = DEFAULT_REATTEST_AFTER,
        ledger: BudgetLedger | None = None,
        log_key: str | None = None,
        anchor: CheckpointAnchor | None = None,
    ) -> None:
        self._source = source
        self._keys = keys
        # Every evidence of these keys, by digest: a job names the one its inputs were sealed to.
        self._known: dict[str, EnclaveKeys] = {keys.evidence.digest: keys}
        self._provider = provider
        self._reattest_after = reattest_after
        self._state = state
        # The deployment's logged ledger unless a caller hands another (tests, a single
        # enclave over a database it trusts).
        # ``anchor``: the witnesses (m of n) a fresh enclave's first checkpoint needs, fresh
        # against this worker's current evidence (it re-attests).
        self._ledger: BudgetLedger = ledger or LoggedBudgetLedger(
            source=source,
            keys=keys,
            trust=LedgerTrust(state.directory),
            log_key=log_key,
            anchor=anchor,
            evidence_time=lambda: self._keys.evidence.statement.created_at,
        )
        self._registry = registry or default_registry()
        self._clock = clock
        self._idle_min = idle_min
        self._idle_max = idle_max
        self._on_event = on_event
        self._registered: str | None = None
        # (request, signed Deletion) not yet accepted by the job source, oldest first.
        self._pending_deletions: list[tuple[str, Envelope]] = []
        self._next_release_scan = 0.0

    @property
    def evidence_digest(self) -> str:
        return self._keys.evidence.digest

    def _event(self, message: str) -> None:
        _log.info("%s", message)
        if self._on_event is not None:
            self._on_event(message)

    def register(self) -> str:
        """Publish the evidence with the job source; returns its digest."""
        view = self._source.register_enclave(self._keys.evidence.envelope)
        if view.evidence != self._keys.evidence.digest or view.party != self._keys.public.party_id:
            raise VerificationFailed("the coordinator registered different enclave evidence")
        self._registered = view.evidence
        label = "SIMULATED" if view.simulated else view.tee
        self._event(f"registered enclave {view.party} ({label}), evidence {view.evidence}")
        return view.evidence

    def register_when_ready(
        self,
        *,
        timeout: float,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> str:
        """:meth:`register`, retrying while the coordinator cannot be reached (it may be starting)."""
        deadline = monotonic() + timeout
        delay = 0.1
        while True:
            try:
                return self.register()
            except BackendUnavailable:
                if monotonic() + delay > deadline:
                    raise
                self._event(f"coordinator not reachable yet; retrying in {delay:.1f} s")
                sleep(delay)
                delay = min(delay * 2, 5.0)

    def reattest(self) -> str:
        """Fresh evidence for the same keys, registered: owners refuse evidence older than
        their ``max_evidence_age``. Jobs sealed to earlier evidence still run."""
        if self._provider is None:
            raise VerificationFailed("this enclave worker has no evidence provider to re-attest")
        self._keys = self._keys.reattest_at_time(self._provider, now=self._clock())
        self._known[self._keys.evidence.digest] = self._keys
        while len(self._known) > _KEEP_EVIDENCE:  # the oldest first (dicts keep order)
            del self._known[next(iter(self._known))]
        self._registered = None
        return self.register()

    def step(self) -> StepResult:
        """Claim at most one job and finish it (complete, fail, or leave it to another run);
        re-attest first when due."""
        due = self._keys.evidence.statement.created_at + self._reattest_after
        if self._provider is not None and self._clock() >= due:
            self.reattest()
        if self._registered is None:
            self.register()
        self._post_deletions()
        job = self._source.claim_job()
        if job is None:
            self._release_pending()
            return StepResult("idle")
        request_id = job.request.digest
        self._event(f"claimed {request_id}")
        held: dict[str, SealedHash] = {}
        issued: list[Signed[Receipt]] = []
        try:
            with self._renewing(job):
                result = self._finish(job, held, issued)
        except BaseException:
            # Interrupted (the coordinator went away, or the process is stopping): the job goes
            # back to the queue, and what this run held is accounted for all the same.
            if held:
                self._erase(job, held, [], StepResult("abandoned", request_id), post=False)
            raise
        self._erase(job, held, issued, result)
        return result

    def _erase(
        self,
        job: ClaimedJob,
        held: dict[str, SealedHash],
        issued: list[Signed[Receipt]],
        result: StepResult,
        *,
        post: bool = True,
    ) -> None:
        """Drop the sealed inputs of a finished job, sign what was held, and post it (or, with
        ``post=False``, keep it for the next step)."""
        request_id = job.request.digest
        outcome = result.outcome
        if outcome == "idle":  # pragma: no cover - a claimed job always ends otherwise
            return
        released = issued[-1] if issued and outcome == "completed" else None
        roots = (
            {i.dataset: i.commitment_root for i in released.statement.inputs}
            if released is not None
            else {}
        )
        inputs = tuple(
            HeldInput(
                dataset=dataset,
                sealed=hashed.digest(),
                sealed_size=hashed.size,
                commitment_root=roots.get(dataset),
            )
            for dataset, hashed in sorted(held.items())
        )
        held.clear()
        issued.clear()
        keys = self._known.get(job.evidence, self._keys)
        deletion = Deletion(
            request=request_id,
            enclave=keys.public.party_id,
            evidence=keys.evidence.digest,
            outcome=outcome,
            receipt=released.digest if released is not None else None,
            inputs=inputs,
            outputs_held=len(released.statement.outputs) if released is not None else 0,
            method="released-process-memory",
            erased_at=self._clock(),
        )
        signed = sign_statement(deletion, keys.identity)
        self._pending_deletions.append((request_id, signed.envelope))
        del self._pending_deletions[:-_KEEP_DELETIONS]
        if post:
            self._post_deletions()

    def _post_deletions(self) -> None:
        """Post the signed deletions the job source has not taken yet (oldest first)."""
        while self._pending_deletions:
            request_id, envelope = self._pending_deletions[0]
            try:
                self._source.record_deletion(request_id, envelope)
            except BackendUnavailable:
                return  # kept for the next step
            except SealroomError as exc:  # refused: keeping it would only repeat the refusal
                self._event(f"{request_id}: deletion not recorded ({_safe_reason(exc)})")
            else:
                self._event(f"{request_id}: deletion {envelope.digest} recorded")
            self._pending_deletions.pop(0)

    def _finish(
        self, job: ClaimedJob, held: dict[str, SealedHash], issued: list[Signed[Receipt]]
    ) -> StepResult:
        request_id = job.request.digest
        for _attempt in range(_STALE_RETRIES):
            try:
                output = self._execute(job, held)
            except JobFailed as exc:
                if isinstance(exc.cause, AlreadyReleased):
                    return self._abandon(request_id, exc.reason)
                return self._fail(request_id, exc.reason)
            except BackendUnavailable:
                raise  # the lease runs out and the job goes back to the queue; retry the loop
            except SealroomError as exc:
                return self._fail(request_id, _safe_reason(exc))
            except Exception:  # a bug must not crash the loop nor leak anything
                _log.exception("unexpected error in job %s", request_id)
                return self._fail(request_id, "internal error in the enclave worker")
            try:
                # Commit: the results go out wrapped; their keys only after the proof below.
                wrapped = wrap_outputs(self._keys.identity, request_id, output.sealed_outputs)
                self._source.complete_job(
                    request_id, output.receipt.envelope, wrapped, output.charges
                )
            except StaleLedgerHead:
                self._event(f"{request_id}: another charge came first; reading the ledger again")
                continue
            except Conflict as exc:  # released by another run, or the lease was taken back
                return self._abandon(request_id, _safe_reason(exc))
            issued.append(output.receipt)
            if isinstance(self._ledger, LoggedBudgetLedger):
                self._ledger.stored(output.charges)
            self._event(f"completed {request_id}: receipt {output.receipt.digest}")
            self._release(output.receipt)
            return StepResult("completed", request_id)
        return self._fail(
            request_id, f"budget: the ledger kept moving; gave up after {_STALE_RETRIES} tries"
        )

    def _execute(self, job: ClaimedJob, held: dict[str, SealedHash]) -> JobOutput:
        # The evidence the job's inputs were sealed to, if it is one of this worker's (its
        # receipt then names what the owners checked); else the inputs were sealed to the
        # deployment's keys under another worker's evidence, and opening them proves it.
        return execute_job(
            self._materials(job, held),
            keys=self._known.get(job.evidence, self._keys),
            registry=self._registry,
            ledger=self._ledger,
            history=self._state.history,
            now=self._clock(),
        )

    @contextmanager
    def _renewing(self, job: ClaimedJob) -> Iterator[None]:
        """Renew the job's lease in a thread while the block runs (a third of it each time)."""
        request_id = job.request.digest
        period = max(0.2, (job.lease_until - self._clock()) / 3)
        done = threading.Event()

        def renew() -> None:
            while not done.wait(period):
                try:
                    self._source.renew_lease(request_id)
                except BackendUnavailable:
                    continue
                except SealroomError as exc:
                    self._event(f"{request_id}: lease not renewed ({exc.public_message})")
                    return

        thread = threading.Thread(target=renew, name="lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(10)

    def _release(self, receipt: Signed[Receipt]) -> bool:
        """Prove the request's charges are logged, then post its results' keys (reveal).
        False (and nothing posted) when the proof fails or the coordinator is away: the
        reveal stays pending, for this worker's next idle step or another worker."""
        request_id = receipt.statement.request
        try:
            prove_charged(self._ledger, receipt)
            keys = release_keys(self._keys.identity, receipt, self._source.party_identity)
            self._source.release_job(request_id, keys)
        except BackendUnavailable as exc:
            self._event(f"{request_id}: release pending ({exc.public_message})")
            return False
        except SealroomError as exc:
            self._event(f"withheld {request_id}: {_safe_reason(exc)}")
            return False
        self._event(f"released {request_id}")
        return True

    def _release_pending(self) -> None:
        """Reveal what a stopped worker of this deployment completed but did not release
        (looked for at most every few seconds while idle)."""
        if time.monotonic() < self._next_release_scan:
            return
        self._next_release_scan = time.monotonic() + _RELEASE_SCAN_SECONDS
        for pending in self._source.pending_releases().releases:
            try:
                receipt = pending.receipt.open(Receipt)
            except SealroomError as exc:
                self._event(f"withheld {pending.request}: {_safe_reason(exc)}")
                continue
            if receipt.statement.request != pending.request:
                self._event(f"withheld {pending.request}: the receipt names another request")
                continue
            self._release(receipt)

    def _materials(self, job: ClaimedJob, held: dict[str, SealedHash]) -> JobMaterials:
        # The inputs are sealed to this deployment's keys under some worker's evidence (the
        # job names which); opening them is what proves they are ours.
        request_id = job.request.digest
        sealed: dict[str, SealedInput] = {}
        for i in job.inputs:
            # Job sources from before chunked uploads name no parts: one body each.
            parts = getattr(i, "parts", 0)
            leaves = getattr(i, "leaves", None)
            if parts and leaves is not None:
                sealed[i.dataset] = ChunkedInput(
                    count=int(parts),
                    fetch=_HeldParts(
                        functools.partial(self._source.job_input_part, request_id, i.dataset),
                        held,
                        i.dataset,
                    ),
                    leaves=bytes(leaves),
                )
            else:
                blob = self._source.job_input(request_id, i.dataset)
                held[i.dataset] = SealedHash(blob)
                sealed[i.dataset] = blob
        return JobMaterials(
            request=job.request,
            approvals=tuple(job.approvals),
            attestations=tuple(job.attestations),
            policies=tuple(job.policies),
            sealed_inputs=sealed,
            room_policy=job.room_policy,
            room=job.room,
            consents=tuple(job.consents),
            run_approvals=tuple(job.run_approvals),
            org_members=tuple(job.org_members),
        )

    def _abandon(self, request_id: str, reason: str) -> StepResult:
        self._event(f"left {request_id}: {reason}")
        return StepResult("abandoned", request_id, reason)

    def _fail(self, request_id: str, reason: str) -> StepResult:
        try:
            self._source.fail_job(request_id, reason[:2000])
        except (Conflict, NotFound) as exc:  # another run finished it, or the lease was taken back
            return self._abandon(request_id, f"{reason} (not posted: {exc.public_message})")
        self._event(f"failed {request_id}: {reason}")
        return StepResult("failed", request_id, reason)

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set; back off while idle or while the coordinator is down."""
        delay = self._idle_min
        while not stop.is_set():
            try:
                result = self.step()
            except BackendUnavailable as exc:
                self._event(f"coordinator unavailable ({exc.detail}); retrying")
                stop.wait(delay)
                delay = min(delay * 2, self._idle_max)
                continue
            if result.outcome == "idle":
                stop.wait(delay)
                delay = min(delay * 2, self._idle_max)
            else:
                delay = self._idle_min


def _safe_reason(exc: SealroomError) -> str:
    return f"{exc.public_message}: {exc.detail}" if exc.detail else exc.public_message


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGTERM/SIGINT while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, frame: object) -> None:
        stop.set()

    for s in previous:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
