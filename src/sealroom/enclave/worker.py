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

Polling backs off while idle or while the coordinator is unreachable, and
the loop stops cleanly on SIGTERM/SIGINT or when a stop event is set.
"""

from __future__ import annotations

import logging
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
from sealroom.crypto.keys import PartyId
from sealroom.enclave.keys import EnclaveKeys
from sealroom.enclave.runner import JobFailed, JobMaterials, execute_job
from sealroom.enclave.state import EnclaveState
from sealroom.errors import BackendUnavailable, SealroomError, VerificationFailed
from sealroom.statements import Envelope

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

# Re-attest at half the default maximum evidence age owners accept (24 h), so an owner
# with the default bound always finds fresh evidence.
DEFAULT_REATTEST_AFTER = DEFAULT_MAX_EVIDENCE_AGE // 2
# Earlier evidence kept for jobs sealed to it (a month of re-attestations at the default).
_KEEP_EVIDENCE = 64


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
    def inputs(self) -> Sequence[JobInput]: ...

    @property
    def evidence(self) -> str: ...


class JobSource(Protocol):
    """Where the enclave's jobs come from: exactly what the loop calls (the SDK client fits)."""

    def register_enclave(self, evidence: Envelope, /) -> RegisteredEnclave: ...

    def claim_job(self) -> ClaimedJob | None: ...

    def job_input(self, request: str, dataset: str, /) -> bytes: ...

    def complete_job(
        self, request: str, receipt: Envelope, outputs: Mapping[PartyId, bytes], /
    ) -> object: ...

    def fail_job(self, request: str, reason: str, /) -> object: ...


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


def make_enclave_keys(
    *,
    tee: Literal["simulated", "dstack"] = "simulated",
    now: int,
    dstack_endpoint: str | None = None,
    provider: EvidenceProvider | None = None,
) -> EnclaveKeys:
    """Fresh enclave keys with evidence from ``provider`` (default: :func:`make_evidence_provider`)."""
    if provider is None:
        provider = make_evidence_provider(tee=tee, dstack_endpoint=dstack_endpoint)
    return EnclaveKeys.create_at_time(
        provider, tee="simulated" if tee == "simulated" else "tdx", now=now
    )


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one :meth:`EnclaveWorker.step` did."""

    outcome: Literal["idle", "completed", "failed"]
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
        "_on_event",
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
    ) -> None:
        self._source = source
        self._keys = keys
        # Every evidence of these keys, by digest: a job names the one its inputs were sealed to.
        self._known: dict[str, EnclaveKeys] = {keys.evidence.digest: keys}
        self._provider = provider
        self._reattest_after = reattest_after
        self._state = state
        self._registry = registry or default_registry()
        self._clock = clock
        self._idle_min = idle_min
        self._idle_max = idle_max
        self._on_event = on_event
        self._registered: str | None = None

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
        """Claim at most one job and finish it (complete or fail); re-attest when due."""
        due = self._keys.evidence.statement.created_at + self._reattest_after
        if self._provider is not None and self._clock() >= due:
            self.reattest()
        if self._registered is None:
            self.register()
        job = self._source.claim_job()
        if job is None:
            return StepResult("idle")
        request_id = job.request.digest
        self._event(f"claimed {request_id}")
        try:
            keys = self._known.get(job.evidence)
            if keys is None:
                raise VerificationFailed(
                    "the job's inputs are sealed to other enclave evidence than this enclave's"
                )
            materials = self._materials(job)
            output = execute_job(
                materials,
                keys=keys,
                registry=self._registry,
                ledger=self._state.ledger,
                history=self._state.history,
                now=self._clock(),
            )
        except JobFailed as exc:
            return self._fail(request_id, exc.reason)
        except BackendUnavailable:
            raise  # the lease runs out and the coordinator fails the job; retry the loop
        except SealroomError as exc:
            return self._fail(request_id, _safe_reason(exc))
        except Exception:  # a bug must not crash the loop nor leak anything
            _log.exception("unexpected error in job %s", request_id)
            return self._fail(request_id, "internal error in the enclave worker")
        self._source.complete_job(request_id, output.receipt.envelope, output.sealed_outputs)
        self._event(f"completed {request_id}: receipt {output.receipt.digest}")
        return StepResult("completed", request_id)

    def _materials(self, job: ClaimedJob) -> JobMaterials:
        request_id = job.request.digest
        sealed = {i.dataset: self._source.job_input(request_id, i.dataset) for i in job.inputs}
        return JobMaterials(
            request=job.request,
            approvals=tuple(job.approvals),
            attestations=tuple(job.attestations),
            policies=tuple(job.policies),
            sealed_inputs=sealed,
            room_policy=job.room_policy,
        )

    def _fail(self, request_id: str, reason: str) -> StepResult:
        self._source.fail_job(request_id, reason[:2000])
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
