"""The big-data path end to end: rows/s and peak memory per role, against pyarrow alone.

    python -m bench.bench_bigdata [--rows 10000000] [--smoke]

A real coordinator (the ``sealroom serve`` app on uvicorn, SQLite) runs in its own
process; every step runs in a fresh child process of its own, so each peak is that
step's alone (growth of ``ru_maxrss`` over the process's size after imports):

* ``publish``  the owner reads the Parquet file, profiles and commits it, signs, posts;
* ``approve``  the owner reads it again, checks it against the commitment, seals it to
  the enclave (a spool file) and uploads it in parts;
* ``compute``  the simulated enclave fetches the parts, opens and checks them straight
  into Arrow, runs aggregate-stats (grouped, with a median), seals and signs;
* ``verify``   the analyst fetches the result and verifies the proof bundle offline;
* ``pyarrow``  the baseline: ``pyarrow.parquet.read_table`` of the same file.

aggregate-stats pools two or more parties, so a partner adds 10,000 rows of the same
shape. Figures are one run on a shared, noisy machine: read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PARAMS: dict[str, Any] = {"value": "amount", "group_by": ["region"], "percentiles": [50]}
REGIONS = ["north", "south", "east", "west", "centre"]


def _rss_mib() -> float:
    """The peak resident set so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _current_mib() -> float:
    """The resident set now (the base a step's peak grows from)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def _warm() -> None:
    """Import what every step uses, so a step's peak is its work, not its imports."""
    import pyarrow.compute
    import pyarrow.parquet  # noqa: F401

    from sealroom.client import flows  # noqa: F401
    from sealroom.computations import default_registry

    default_registry()


def _write_rows(path: Path, rows: int, seed: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    block = 1_000_000
    schema = pa.schema([("id", pa.int64()), ("region", pa.string()), ("amount", pa.float64())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, block):
            n = min(block, rows - start)
            writer.write_table(
                pa.table(
                    {
                        "id": np.arange(start, start + n, dtype=np.int64),
                        "region": np.array(REGIONS)[rng.integers(0, len(REGIONS), n)],
                        "amount": np.round(rng.gamma(2.0, 50.0, n), 2),
                    },
                    schema=schema,
                )
            )


# --- the roles, each run in a child process ---------------------------------------------------


def _state(work: Path) -> dict[str, Any]:
    return json.loads((work / "state.json").read_text())


def _save(work: Path, **changes: Any) -> None:
    path = work / "state.json"
    state = json.loads(path.read_text()) if path.exists() else {}
    state.update(changes)
    path.write_text(json.dumps(state))


def _client(work: Path, name: str) -> Any:
    from sealroom.client.http import Client
    from sealroom.crypto.keystore import Keystore

    return Client(base_url=_state(work)["url"], identity=Keystore.load(work / name))


def _rules() -> dict[str, Any]:
    from sealroom.client.flows import exact_rule
    from sealroom.computations import DEFAULT_K, default_registry

    rule = exact_rule(default_registry().get("aggregate-stats"), PARAMS, partners=[])
    return {
        "allow": [rule],
        "auto_approve": [{"id": "aggregate-stats"}],
        "k": DEFAULT_K,
        "entity_column": "id",
    }


def _serve(work: Path) -> None:
    import threading

    from sealroom.api.app import create_app
    from sealroom.api.testing import run_in_thread
    from sealroom.attestation.pins import EnclavePin
    from sealroom.attestation.simulated import SimulationRoot
    from sealroom.computations import default_registry
    from sealroom.coordinator.admission import AdmissionPolicy

    root = SimulationRoot.from_private_bytes(bytes.fromhex(_state(work)["root"]))
    app = create_app(
        db_url=f"sqlite:///{work / 'coordinator.db'}",
        registry=default_registry(),
        keys_dir=work / "coordinator-keys",
        admission=AdmissionPolicy(pin=EnclavePin(simulation_root=root.public_key)),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with run_in_thread(app) as url:
        (work / "url").write_text(url)
        stop.wait()


def _role(role: str, work: Path) -> dict[str, Any]:
    from sealroom.client import flows
    from sealroom.crypto.keystore import Keystore

    state = _state(work)
    now = int(time.time())
    if role == "setup":
        from sealroom.attestation.simulated import SimulationRoot
        from sealroom.enclave.state import EnclaveState
        from sealroom.enclave.worker import (
            EnclaveWorker,
            make_enclave_keys,
            make_evidence_provider,
        )

        for name in ("owner", "partner", "analyst"):
            identity = Keystore.create(work / name, name=name, unencrypted=True)
            with _client(work, name) as client:
                client.register_party(name)
            del identity
        root = SimulationRoot.from_private_bytes(bytes.fromhex(state["root"]))
        provider = make_evidence_provider(simulation_root=root)
        secret = bytes.fromhex(state["deployment"])
        keys = make_enclave_keys(now=now, provider=provider, deployment_secret=secret)
        from sealroom.client.http import Client

        with Client(base_url=state["url"], identity=keys.identity) as source:
            worker = EnclaveWorker(
                source=source, keys=keys, state=EnclaveState.create_temporary(), provider=provider
            )
            worker.register()
        with _client(work, "partner") as client:
            partner = flows.publish(
                client,
                Keystore.load(work / "partner"),
                work / "partner.parquet",
                title="partner",
                description="bench",
                policy_rules=_rules(),
                now=now,
                home=work / "partner",
            )
        return {"partner": partner.dataset}
    if role == "pyarrow":
        import pyarrow.parquet as pq

        before = _current_mib()
        t0 = time.perf_counter()
        table = pq.read_table(work / "rows.parquet")
        seconds = time.perf_counter() - t0
        return {"seconds": seconds, "peak_mib": _rss_mib() - before, "rows": table.num_rows}
    _warm()
    before = _current_mib()
    t0 = time.perf_counter()
    out: dict[str, Any] = {}
    if role == "publish":
        with _client(work, "owner") as client:
            out["dataset"] = flows.publish(
                client,
                Keystore.load(work / "owner"),
                work / "rows.parquet",
                title="rows",
                description="bench",
                policy_rules=_rules(),
                now=now,
                home=work / "owner",
            ).dataset
        with _client(work, "analyst") as client:
            out["request"] = flows.request(
                client,
                Keystore.load(work / "analyst"),
                "aggregate-stats",
                [out["dataset"], state["partner"]],
                PARAMS,
                now=now,
            ).request
    elif role == "approve":
        for name in ("owner", "partner"):
            with _client(work, name) as client:
                done = flows.approve(
                    client,
                    Keystore.load(work / name),
                    state["request"],
                    home=work / name,
                    allow_simulated=True,
                    now=now,
                )
                if name == "owner":
                    out["sealed_bytes"] = done[0].sealed_bytes
        out["status"] = done[0].status
    elif role == "compute":
        out.update(_compute(work, state))
    elif role == "verify":
        with _client(work, "analyst") as client:
            fetched = flows.fetch_result(
                client,
                Keystore.load(work / "analyst"),
                state["request"],
                work / "out",
                home=work / "analyst",
                allow_simulated=True,
            )
            if fetched.report.failures:
                raise SystemExit(f"verification failed: {fetched.report.failures}")
            out["groups"] = len(fetched.body["groups"])
    else:
        raise SystemExit(f"unknown role {role}")
    out["seconds"] = time.perf_counter() - t0
    out["peak_mib"] = _rss_mib() - before
    return out


def _compute(work: Path, state: dict[str, Any]) -> dict[str, Any]:
    from sealroom.attestation.simulated import SimulationRoot
    from sealroom.client.http import Client
    from sealroom.enclave.state import EnclaveState
    from sealroom.enclave.worker import EnclaveWorker, make_enclave_keys, make_evidence_provider

    root = SimulationRoot.from_private_bytes(bytes.fromhex(state["root"]))
    provider = make_evidence_provider(simulation_root=root)
    keys = make_enclave_keys(
        now=int(time.time()),
        provider=provider,
        deployment_secret=bytes.fromhex(state["deployment"]),
    )
    with Client(base_url=state["url"], identity=keys.identity) as source:
        worker = EnclaveWorker(
            source=source, keys=keys, state=EnclaveState.create_temporary(), provider=provider
        )
        worker.register()
        step = worker.step()
    if step.outcome != "completed":
        raise SystemExit(f"the job did not complete: {step.outcome} {step.reason}")
    return {"outcome": step.outcome}


def _run_child(role: str, work: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_bigdata", "--role", role, "--work", str(work)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{role} failed:\n{done.stdout}{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _bench(rows: int, *, quiet: bool) -> None:
    from sealroom.attestation.simulated import SimulationRoot

    with tempfile.TemporaryDirectory(prefix="bench-bigdata-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        _write_rows(work / "rows.parquet", rows, seed=13)
        _write_rows(work / "partner.parquet", 10_000, seed=7)
        written = time.perf_counter() - t0
        _save(
            work,
            root=SimulationRoot.generate().private_bytes().hex(),
            deployment=os.urandom(32).hex(),  # the simulated deployment's shared enclave keys
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_bigdata", "--role", "serve", "--work", str(work)]
        )
        try:
            deadline = time.monotonic() + 60
            while not (work / "url").exists():
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the coordinator did not start")
                time.sleep(0.1)
            _save(work, url=(work / "url").read_text())
            _save(work, **_run_child("setup", work))
            results = {}
            for role in ("publish", "approve", "compute", "verify", "pyarrow"):
                results[role] = _run_child(role, work)
                _save(
                    work, **{k: v for k, v in results[role].items() if k in ("dataset", "request")}
                )
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    if quiet:
        return
    print(f"rows: {rows:,} (+10,000 partner rows); Parquet written in {written:.1f} s")
    print(f"sealed upload: {results['approve']['sealed_bytes'] / (1 << 20):.1f} MiB")
    base = results["pyarrow"]
    print(f"{'step':<10} {'seconds':>9} {'rows/s':>12} {'peak MiB':>9} {'peak vs pyarrow':>16}")
    for role in ("publish", "approve", "compute", "verify", "pyarrow"):
        r = results[role]
        ratio = r["peak_mib"] / base["peak_mib"] if base["peak_mib"] > 0 else float("nan")
        print(
            f"{role:<10} {r['seconds']:>9.2f} {rows / r['seconds']:>12,.0f} "
            f"{r['peak_mib']:>9.0f} {ratio:>15.2f}x"
        )
    total = sum(results[r]["seconds"] for r in ("publish", "approve", "compute", "verify"))
    print(
        f"end to end: {total:.1f} s, {rows / total:,.0f} rows/s; "
        f"{total / base['seconds']:.0f}x the time of reading the file with pyarrow alone"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--smoke", action="store_true", help="once, at 20,000 rows, no figures")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "serve":
        _serve(args.work)
        return 0
    if args.role:
        print(json.dumps(_role(args.role, args.work)))
        return 0
    _bench(20_000 if args.smoke else args.rows, quiet=args.smoke)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
