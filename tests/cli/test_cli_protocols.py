"""`sealroom psi | pjc | train`: several parties as separate processes on one machine, talking
through a real coordinator on loopback, each leaving with a verified co-signed record."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sealroom.crypto.keystore import Keystore
from sealroom.protocols.receipts import verify_run
from sealroom.statements import Envelope
from tests.services import coordinator


def _env(tmp_path: Path, url: str, name: str) -> dict[str, str]:
    home = tmp_path / name
    if not home.exists():
        Keystore.create(home, name=name, unencrypted=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALROOM_")}
    return {**env, "SEALROOM_HOME": str(home), "SEALROOM_URL": url}


def _party_id(tmp_path: Path, name: str) -> str:
    return Keystore.load_entry(tmp_path / name).identity.party_id


def _run_all(
    commands: dict[str, tuple[dict[str, str], list[str]]], timeout: float = 240
) -> dict[str, Any]:
    """Start every party's command at once; all must succeed; their --json documents."""
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "sealroom.cli", *args, "--json", "--timeout", "60"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name, (env, args) in commands.items()
    }
    done = {name: proc.communicate(timeout=timeout) for name, proc in procs.items()}
    failed = {n: e.decode()[-2000:] for n, (_, e) in done.items() if procs[n].returncode != 0}
    assert not failed, failed
    return {name: json.loads(stdout) for name, (stdout, _) in done.items()}


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _check_record(docs: dict[str, Any]) -> None:
    """Every party holds the same, complete, verifiable set of receipts."""
    sets = {name: [Envelope.from_dict(e).digest for e in d["receipts"]] for name, d in docs.items()}
    assert len({tuple(v) for v in sets.values()}) == 1
    first = next(iter(docs.values()))
    verify_run([Envelope.from_dict(e) for e in first["receipts"]])


def test_psi_cardinality_and_intersection_between_two_processes(tmp_path: Path) -> None:
    a_ids = [f"user{i}@example.org" for i in range(0, 300)]
    b_ids = [f"user{i}@example.org" for i in range(200, 450)]
    _write_csv(tmp_path / "a.csv", ["email"], [[x] for x in a_ids])
    _write_csv(tmp_path / "b.csv", ["email"], [[x] for x in b_ids])
    with coordinator(tmp_path) as url:
        ea, eb = _env(tmp_path, url, "alice"), _env(tmp_path, url, "bob")
        bob = _party_id(tmp_path, "bob")
        docs = _run_all(
            {
                "alice": (
                    ea,
                    ["psi", "--with", bob, "--data", str(tmp_path / "a.csv"), "--column", "email"],
                ),
                "bob": (
                    eb,
                    ["psi", "--join", "--data", str(tmp_path / "b.csv"), "--column", "email"],
                ),
            }
        )
        for d in docs.values():
            assert d["learned"]["intersection_size"] == 100
        _check_record(docs)

        out = tmp_path / "run.json"
        docs = _run_all(
            {
                "alice": (
                    ea,
                    [
                        "psi",
                        "--with",
                        bob,
                        "--mode",
                        "intersection",
                        "--data",
                        str(tmp_path / "a.csv"),
                        "--column",
                        "email",
                        "--out",
                        str(out),
                    ],
                ),
                "bob": (
                    eb,
                    [
                        "psi",
                        "--join",
                        "--mode",
                        "intersection",
                        "--data",
                        str(tmp_path / "b.csv"),
                        "--column",
                        "email",
                    ],
                ),
            }
        )
        record = json.loads(out.read_text())
        assert record["receipts"] == docs["alice"]["receipts"]
        _check_record(docs)
        # The record keeps the intersection in full, private to its holder.
        assert record["intersection"] == sorted(set(a_ids) & set(b_ids))
        assert out.stat().st_mode & 0o777 == 0o600
        assert docs["bob"]["intersection"] is None

        # `sealroom verify` checks a run record: the receipts, and that what the holder
        # learned opens its own receipt's commitment.
        verify = [sys.executable, "-m", "sealroom.cli", "verify", "--json"]
        ok = subprocess.run([*verify, str(out)], capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0, ok.stderr
        checked = json.loads(ok.stdout)
        assert (checked["protocol"], checked["holder"]) == ("psi", record["role"])
        assert checked["not_signed_by"] == []
        edited = tmp_path / "edited.json"
        learned = {**record["learned"], "intersection_size": 101}
        edited.write_text(json.dumps({**record, "learned": learned}))
        bad = subprocess.run([*verify, str(edited)], capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1
        assert "not what its receipt commits to" in json.loads(bad.stdout)["error"]


def test_psi_with_mismatched_parameters_fails_on_both_sides(tmp_path: Path) -> None:
    _write_csv(tmp_path / "a.csv", ["k"], [[i] for i in range(50)])
    with coordinator(tmp_path) as url:
        ea, eb = _env(tmp_path, url, "alice"), _env(tmp_path, url, "bob")
        bob = _party_id(tmp_path, "bob")
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "sealroom.cli", *args, "--json", "--timeout", "30"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for env, args in (
                (
                    ea,
                    [
                        "psi",
                        "--with",
                        bob,
                        "--threshold",
                        "5",
                        "--data",
                        str(tmp_path / "a.csv"),
                        "--column",
                        "k",
                    ],
                ),
                (
                    eb,
                    [
                        "psi",
                        "--join",
                        "--threshold",
                        "6",
                        "--data",
                        str(tmp_path / "a.csv"),
                        "--column",
                        "k",
                    ],
                ),
            )
        ]
        for p in procs:
            stdout, stderr = p.communicate(timeout=120)
            assert p.returncode == 1, stderr
            assert json.loads(stdout)["error"]["code"] == "protocol_error"


def test_pjc_between_two_processes(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    ids_a = [f"c{i}" for i in range(0, 400)]
    ids_b = [f"c{i}" for i in range(250, 700)]
    values = rng.integers(0, 500, size=len(ids_b)).tolist()
    expected = sum(v for i, v in zip(ids_b, values, strict=True) if i in set(ids_a))
    _write_csv(tmp_path / "a.csv", ["id"], [[x] for x in ids_a])
    _write_csv(
        tmp_path / "b.csv", ["id", "spend"], [[i, v] for i, v in zip(ids_b, values, strict=True)]
    )
    with coordinator(tmp_path) as url:
        ea, eb = _env(tmp_path, url, "alice"), _env(tmp_path, url, "bob")
        bob = _party_id(tmp_path, "bob")
        docs = _run_all(
            {
                "alice": (
                    ea,
                    [
                        "pjc",
                        "--with",
                        bob,
                        "--data",
                        str(tmp_path / "a.csv"),
                        "--max-value",
                        "1000",
                    ],
                ),
                "bob": (
                    eb,
                    [
                        "pjc",
                        "--join",
                        "--data",
                        str(tmp_path / "b.csv"),
                        "--value-column",
                        "spend",
                        "--max-value",
                        "1000",
                    ],
                ),
            }
        )
        assert docs["alice"]["learned"]["intersection_size"] == 150
        assert docs["alice"]["learned"]["sum"] == expected
        assert docs["bob"]["learned"].get("sum") is None
        _check_record(docs)


def _spector_parts(tmp_path: Path, parts: int) -> list[Path]:
    sm = pytest.importorskip("statsmodels.api")
    df = sm.datasets.spector.load_pandas().data
    paths = []
    table = df[["GPA", "TUCE", "PSI", "GRADE"]].to_numpy()
    for i, chunk in enumerate(np.array_split(table, parts)):
        # Features scaled by public constants (4.0 grade points, 30 test points), as the HE
        # protocol asks: CKKS carries sums of products of features within a fixed range.
        rows = [[float(g) / 4, float(t) / 30, float(p), int(y)] for g, t, p, y in chunk]
        paths.append(_write_csv(tmp_path / f"owner{i}.csv", ["gpa", "tuce", "psi", "grade"], rows))
    return paths


@pytest.mark.parametrize("flag", ["--federated", "--he"])
def test_training_across_owners(tmp_path: Path, flag: str) -> None:
    owners = 3 if flag == "--federated" else 2
    paths = _spector_parts(tmp_path, owners)
    common = [
        "--features",
        "gpa,tuce,psi",
        "--label",
        "grade",
        "--rounds",
        "3",
        "--learning-rate",
        "0.5",
    ]
    with coordinator(tmp_path) as url:
        envs = {f"o{i}": _env(tmp_path, url, f"o{i}") for i in range(owners)}
        trainer_env = _env(tmp_path, url, "trainer")
        ids = [_party_id(tmp_path, f"o{i}") for i in range(owners)]
        commands: dict[str, tuple[dict[str, str], list[str]]] = {
            "trainer": (
                trainer_env,
                ["train", flag, *[a for p in ids for a in ("--with", p)], *common],
            )
        }
        for i, p in enumerate(paths):
            commands[f"o{i}"] = (
                envs[f"o{i}"],
                ["train", flag, "--join", "--data", str(p), *common],
            )
        docs = _run_all(commands)
        models = {d["learned"]["model"] for d in docs.values()}
        assert len(models) == 1
        model = Envelope.from_dict(docs["trainer"]["model"])
        assert model.digest in models
        _check_record(docs)
