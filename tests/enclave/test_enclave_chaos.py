"""Chaos: two real ``sealroom enclave`` processes of one deployment, one SIGKILLed mid-job 20
times at random moments (and restarted). Every job must end completed exactly once, with one
charge per input and one release, however the kills fall.

The coordinator's lease is short (2 s), so a job a dead worker held goes back to the queue and
the other worker (or the restarted one) finishes it; the ledger stores a release only with its
charges, so a run the kill cut short leaves nothing behind, and one that got its release stored
just before the kill is never run again.
"""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from sealroom.client.http import Client
from sealroom.statements import BudgetCharge, Envelope, Receipt
from sealroom.storage.schema import (
    ledger_charges,
    request_history,
    requests,
    results,
    statements,
)
from tests.enclave.charges_world import (
    ask,
    deployment_keys,
    dp_rules,
    enclave_args,
    party,
    publish_pair,
    write_secret,
)
from tests.services import coordinator

QUEUED = 3  # jobs kept waiting while kills remain to be done
MAX_JOBS = 60
KILLS = 20
LEASE = 2  # whole seconds: the coordinator's clock is integer unix time
MAX_KILLS_PER_JOB = 3  # below the coordinator's MAX_JOB_ATTEMPTS, so no job runs out of claims


class Worker:
    """One ``sealroom enclave`` process and the job it last said it claimed."""

    def __init__(self, args: list[str], events: list[str]) -> None:
        self._args = args
        self._events = events
        self.lock = threading.Lock()
        self.current: str | None = None
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            self._args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()
        return proc

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self._events.append(line.rstrip())
            words = line.split()
            with self.lock:
                if proc is not self.proc:
                    continue
                if words[:1] == ["claimed"]:
                    self.current = words[1]
                elif words[:1] in (["completed"], ["left"], ["failed"]):
                    self.current = None

    def kill_and_restart(self) -> None:
        with self.lock:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.current = None
            self.proc = self._start()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.mark.slow
# About 40 s on an idle machine; each kill restarts a process that imports the computation
# library, which takes many times longer on a loaded, shared runner.
@pytest.mark.timeout(900)
def test_two_workers_one_killed_20_times_every_job_completes_once(tmp_path: Path) -> None:
    rng = random.Random()
    with coordinator(tmp_path, lease_seconds=LEASE) as url:
        owner = party(tmp_path, url, "owner")
        requester = party(tmp_path, url, "requester")
        secret = write_secret(tmp_path / "deployment.secret")
        keys = deployment_keys(secret)
        Client(base_url=url, identity=keys.identity).register_enclave(keys.evidence.envelope)
        pair = publish_pair(owner, tmp_path, dp_rules("1000"))
        jobs = [ask(requester, owner, pair) for _ in range(QUEUED)]

        events: list[str] = []
        workers = [
            Worker(enclave_args(url, secret=secret, state=tmp_path / f"state-{i}"), events)
            for i in range(2)
        ]
        kills: Counter[str] = Counter()
        db = create_engine(f"sqlite:///{tmp_path / 'coordinator.db'}")
        started = time.monotonic()
        deadline = started + 420  # ~40 s on an idle machine; shared CI runners are slower
        checked = 0.0
        try:
            while time.monotonic() < deadline:
                killed = sum(kills.values())
                if time.monotonic() - checked > 0.3:
                    checked = time.monotonic()
                    with db.connect() as conn:
                        ended = set(
                            conn.execute(
                                select(requests.c.request).where(
                                    requests.c.status.in_(("completed", "failed"))
                                )
                            ).scalars()
                        )
                    waiting = [rid for rid in jobs if rid not in ended]
                    if killed >= KILLS and not waiting:
                        break
                    # However fast the machine, keep jobs queued until the kills are done.
                    if killed < KILLS and len(waiting) < QUEUED and len(jobs) < MAX_JOBS:
                        jobs.append(ask(requester, owner, pair))
                if killed < KILLS:
                    for victim in rng.sample(workers, len(workers)):
                        with victim.lock:
                            held = victim.current
                        if held is None or kills[held] >= MAX_KILLS_PER_JOB:
                            continue
                        time.sleep(rng.uniform(0.0, 0.1))  # a random moment of the run
                        with victim.lock:
                            still = victim.current == held
                        if still:
                            victim.kill_and_restart()
                            kills[held] += 1
                        break
                time.sleep(0.005)
        finally:
            for w in workers:
                w.stop()
            db.dispose()
        elapsed = time.monotonic() - started

        assert sum(kills.values()) == KILLS, (elapsed, kills, events[-40:])
        engine = create_engine(f"sqlite:///{tmp_path / 'coordinator.db'}")
        try:
            with engine.connect() as conn:
                history = conn.execute(
                    select(request_history.c.request, request_history.c.status)
                ).all()
                charges = conn.execute(
                    select(ledger_charges.c.request, ledger_charges.c.dataset)
                ).all()
                charge_envs = conn.execute(
                    select(statements.c.envelope).where(statements.c.type == BudgetCharge.TYPE)
                ).all()
                receipt_envs = conn.execute(
                    select(statements.c.envelope).where(statements.c.type == Receipt.TYPE)
                ).all()
                stored = conn.execute(select(results.c.request, results.c.recipient)).all()
        finally:
            engine.dispose()

    # Every job completed, exactly once.
    completed = Counter(str(r) for r, s in history if s == "completed")
    assert completed == Counter(dict.fromkeys(jobs, 1)), events[-40:]
    # One charge per (request, input), none twice; no charge was logged without its release.
    assert Counter((str(r), str(d)) for r, d in charges) == Counter(
        {(rid, ds): 1 for rid in jobs for ds in pair}
    )
    assert len(charge_envs) == len(charges)
    for ds in pair:
        chain = sorted(
            (Envelope.from_json(bytes(e)).open(BudgetCharge) for (e,) in charge_envs),
            key=lambda c: c.statement.seq,
        )
        mine = [c for c in chain if c.statement.dataset == ds]
        assert [c.statement.prev for c in mine] == [None, *(c.digest for c in mine[:-1])]
    # Nothing released twice: one receipt and one sealed result per job.
    released = Counter(
        Envelope.from_json(bytes(e)).open(Receipt).statement.request for (e,) in receipt_envs
    )
    assert released == Counter(dict.fromkeys(jobs, 1))
    # aggregate-stats releases to the requester and every input owner: one sealed result each.
    recipients = {requester.identity.party_id, owner.identity.party_id}
    assert Counter((str(r), str(p)) for r, p in stored) == Counter(
        {(rid, p): 1 for rid in jobs for p in recipients}
    )
