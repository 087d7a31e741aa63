"""Publishing from PostgreSQL, S3 and stdin, then approving from the same sources, end to end.

Real PostgreSQL, a real S3 server (moto's, over HTTP on loopback), a real
coordinator and a (simulated, labelled) enclave; stdin through a real ``sealroom``
process. Approval re-reads each source from the dataset index's locator (which
holds no secret) and refuses a source whose data changed since it was published.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from typer.testing import CliRunner, Result

from sealroom.cli.main import app
from tests.client.client_world import TOPICS_A, TOPICS_B, write_jsonl
from tests.connectors.s3_server import S3_ENV, moto_s3
from tests.services import coordinator, registered_enclave

runner = CliRunner()


def cli(env: dict[str, str], *args: str) -> Result:
    return runner.invoke(app, list(args), env=env)


def ok_json(res: Result) -> Any:
    assert res.exit_code == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


def fails(res: Result, code: str) -> str:
    assert res.exit_code == 1, res.stdout + res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.endswith(f"[{code}]"), last
    assert "Traceback" not in res.stdout + res.stderr
    return last


@pytest.fixture
def pg_table(postgres_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(libpq URL, schema.table) holding the rows of a TOPICS_A file."""
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    schema = f"src_{uuid.uuid4().hex[:12]}"
    rows = [
        json.loads(line)
        for line in write_jsonl(tmp_path / "a.jsonl", TOPICS_A).read_text().splitlines()
    ]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".notes (ts int8, text text)')
        with conn.cursor().copy(f'COPY "{schema}".notes (ts, text) FROM STDIN') as copy:
            for r in rows:
                copy.write_row((r["ts"], r["text"]))
    try:
        yield url, f"{schema}.notes"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_publish_and_approve_from_postgres_and_s3(
    tmp_path: Path, pg_table: tuple[str, str]
) -> None:
    pg_url, table = pg_table
    with moto_s3() as endpoint, coordinator(tmp_path) as url:
        env = {
            name: {"SEALROOM_HOME": str(tmp_path / name), "SEALROOM_URL": url, **S3_ENV}
            for name in ("alice", "bob")
        }
        for name, e in env.items():
            ok_json(cli(e, "init", "--unencrypted-keystore", "--name", name, "--json"))
        s3 = boto3.session.Session(
            **{
                "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
                "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
                "region_name": S3_ENV["AWS_DEFAULT_REGION"],
            }
        ).client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="bob-data")
        b_file = write_jsonl(tmp_path / "b.jsonl", TOPICS_B)
        s3.put_object(
            Bucket="bob-data", Key="logs/b.jsonl.gz", Body=gzip.compress(b_file.read_bytes())
        )

        # A query that writes is refused before anything is signed or sent.
        refused = fails(
            cli(
                env["alice"],
                "dataset",
                "publish",
                pg_url,
                "--query",
                f"DELETE FROM {table}",
                "--title",
                "x",
                "--json",
            ),
            "invalid_input",
        )
        assert "the query writes (DELETE)" in refused
        a = ok_json(cli(env["alice"], "dataset", "publish", pg_url, "--table", table, "--json"))
        assert a["rows"] == 60
        assert a["path"] is None
        assert a["source"].endswith(f"table {table}")
        shown = ok_json(cli(env["bob"], "dataset", "show", a["dataset"], "--json"))
        assert shown["title"] == table  # the table's name, not the server's address

        b = ok_json(
            cli(
                env["bob"],
                "dataset",
                "publish",
                "s3://bob-data/logs/b.jsonl.gz",
                "--endpoint",
                endpoint,
                "--json",
            )
        )
        assert b["rows"] == 60
        index = json.loads((tmp_path / "bob" / "datasets.json").read_text())
        assert index["datasets"][b["dataset"]]["source"] == {
            "kind": "s3",
            "url": "s3://bob-data/logs/b.jsonl.gz",
            "endpoint": endpoint,
        }
        assert S3_ENV["AWS_SECRET_ACCESS_KEY"] not in json.dumps(index)

        rid = ok_json(
            cli(
                env["bob"],
                "request",
                "topic-overlap",
                "--dataset",
                a["dataset"],
                "--dataset",
                b["dataset"],
                "--json",
            )
        )["request"]
        worker = registered_enclave(url)
        # Each owner's data is read again from its source (no --data), checked, sealed.
        for name in ("alice", "bob"):
            approved = ok_json(cli(env[name], "approve", rid, "--allow-simulated", "--json"))
            assert approved["approved"][0]["status"] in ("pending", "approved")
        assert worker.step().outcome == "completed"
        got = ok_json(
            cli(
                env["bob"],
                "result",
                rid,
                "--out",
                str(tmp_path / "out"),
                "--allow-simulated",
                "--json",
            )
        )
        assert got["verified"] is True

        # The table changes after publishing: approval refuses to seal it.
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"INSERT INTO {table} VALUES (1, 'worked on something new')")
        again = ok_json(
            cli(
                env["bob"],
                "request",
                "topic-overlap",
                "--dataset",
                a["dataset"],
                "--dataset",
                b["dataset"],
                "--json",
            )
        )["request"]
        changed = fails(
            cli(env["alice"], "approve", again, "--allow-simulated", "--json"),
            "commitment_mismatch",
        )
        assert f"table {table} no longer matches the commitment" in changed


def test_publish_and_approve_from_stdin_in_real_processes(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "a.jsonl", TOPICS_A, rows=12)
    csv_text = "ts;text\n" + "".join(
        f"{r['ts']};{r['text']}\n" for r in map(json.loads, data.read_text().splitlines())
    )
    piped = gzip.compress(csv_text.encode())
    with coordinator(tmp_path) as url:
        env = {
            name: {**os.environ, "SEALROOM_HOME": str(tmp_path / name), "SEALROOM_URL": url}
            for name in ("alice", "bob")
        }
        for name, e in env.items():
            ok_json(cli(e, "init", "--unencrypted-keystore", "--name", name, "--json"))

        def sealroom(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
            return subprocess.run(
                [sys.executable, "-m", "sealroom.cli", *args],
                input=stdin,
                env=env["alice"],
                capture_output=True,
                timeout=180,
                check=False,
            )

        guessed = sealroom(
            "dataset", "publish", "-", "--format", "csv", "--title", "notes", stdin=piped
        )
        assert guessed.returncode == 1
        assert b"stdin line 1: the header is one column but contains ';'" in guessed.stderr
        done = sealroom(
            "dataset",
            "publish",
            "-",
            "--format",
            "csv",
            "--delimiter",
            ";",
            "--title",
            "notes",
            "--json",
            stdin=piped,
        )
        assert done.returncode == 0, done.stderr
        a = json.loads(done.stdout)
        assert a["rows"] == 12
        assert a["source"] == "stdin"
        index = json.loads((tmp_path / "alice" / "datasets.json").read_text())
        assert "source" not in index["datasets"][a["dataset"]]
        assert "path" not in index["datasets"][a["dataset"]]

        b_file = write_jsonl(tmp_path / "b.jsonl", TOPICS_B)
        b = ok_json(cli(env["bob"], "dataset", "publish", str(b_file), "--json"))
        rid = ok_json(
            cli(
                env["bob"],
                "request",
                "topic-overlap",
                "--dataset",
                a["dataset"],
                "--dataset",
                b["dataset"],
                "--json",
            )
        )["request"]
        worker = registered_enclave(url)
        nothing = fails(
            cli(env["alice"], "approve", rid, "--allow-simulated", "--json"), "not_found"
        )
        assert "(it was read from stdin)" in nothing
        # Other bytes on stdin are refused against the commitment; the same bytes seal.
        other = sealroom(
            "approve",
            rid,
            "--data",
            "-",
            "--format",
            "csv",
            "--delimiter",
            ";",
            "--allow-simulated",
            "--json",
            stdin=gzip.compress(csv_text.encode()[:-40] + b"\n"),
        )
        assert other.returncode == 1
        assert b"[commitment_mismatch]" in other.stderr
        approved = sealroom(
            "approve",
            rid,
            "--data",
            "-",
            "--format",
            "csv",
            "--delimiter",
            ";",
            "--allow-simulated",
            "--json",
            stdin=piped,
        )
        assert approved.returncode == 0, approved.stderr
        ok_json(cli(env["bob"], "approve", rid, "--allow-simulated", "--json"))
        assert worker.step().outcome == "completed"
