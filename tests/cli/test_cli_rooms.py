"""``sealroom room``: a room through the CLI, from creation to a completed run, and the
refusals a script branches on (exit codes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from sealroom.cli.exits import ExitCode
from sealroom.cli.main import app
from tests.rooms.room_world import DP_RUN, IDS, OWNER_POLICY, K, write_ids
from tests.services import SIMULATION_ROOT, coordinator, registered_enclave

runner = CliRunner()


def cli(env: dict[str, str], *args: str) -> Result:
    return runner.invoke(app, list(args), env=env)


def ok_json(res: Result) -> Any:
    assert res.exit_code == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


def test_cli_room_lifecycle(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        names = ("host", "alice", "bob", "eve")
        env = {n: {"SEALROOM_HOME": str(tmp_path / n), "SEALROOM_URL": url} for n in names}
        ids: dict[str, str] = {}
        datasets: dict[str, str] = {}
        policy = tmp_path / "policy.json"
        policy.write_text(json.dumps(OWNER_POLICY))
        for n in names:
            ids[n] = ok_json(cli(env[n], "init", "--unencrypted-keystore", "--name", n, "--json"))[
                "party"
            ]
        for n in ("alice", "bob"):
            path = write_ids(tmp_path / f"{n}.csv", IDS[n])
            datasets[n] = ok_json(
                cli(env[n], "dataset", "publish", str(path), "--policy", str(policy), "--json")
            )["dataset"]
        room = ok_json(
            cli(
                env["host"],
                "room",
                "create",
                "--template",
                "psi-overlap",
                "--name",
                "overlap",
                "--purpose",
                "size the shared customers",
                "--k",
                str(K),
                "--json",
            )
        )
        rid = room["room"]
        assert room["snapshot"]["template"]["id"] == "psi-overlap"
        for n in ("alice", "bob"):
            ok_json(cli(env["host"], "room", "invite", rid, ids[n], "--json"))
            check = ok_json(
                cli(env[n], "room", "join", rid, "--dataset", datasets[n], "--check-only", "--json")
            )
            assert check["precheck"]["ok"] is True
            ok_json(cli(env[n], "room", "join", rid, "--dataset", datasets[n], "--json"))
            # The one-page summary first: what `room consent` signs is the digest it shows.
            page = tmp_path / f"{n}-summary"
            summary = ok_json(
                cli(
                    env[n],
                    "room",
                    "summary",
                    rid,
                    "--html",
                    str(page / "s.html"),
                    "--pdf",
                    str(page / "s.pdf"),
                    "--json",
                )
            )
            assert summary["snapshot_digest"] == room["snapshot_digest"]
            assert summary["sections"]["Room"]["Room"] == rid
            assert room["snapshot_digest"] in (page / "s.html").read_text()
            assert (page / "s.pdf").read_bytes().startswith(b"%PDF")
            ok_json(cli(env[n], "room", "consent", rid, "--json"))
        members = ok_json(cli(env["bob"], "room", "members", rid, "--json"))["members"]
        assert sorted(m["consent_state"] for m in members) == ["consented", "consented", "none"]

        # A non-member sees nothing: the same answer as for a room that does not exist.
        res = cli(env["eve"], "room", "show", rid, "--json")
        assert res.exit_code == ExitCode.ERROR
        assert "not_found" in res.stdout
        assert ok_json(cli(env["eve"], "room", "list", "--json"))["rooms"] == []

        inputs = ["--dataset", datasets["alice"], "--dataset", datasets["bob"]]
        # Outside the room's allowed queries: refused as a policy denial, named.
        res = cli(
            env["host"],
            "room",
            "run",
            rid,
            "--computation",
            "intersection-sum",
            *inputs,
            "--params",
            json.dumps({"value": "score", "value_bounds": ["0", "7"]}),
            "--json",
        )
        assert res.exit_code == ExitCode.POLICY_DENIED, res.stdout + res.stderr
        assert "query_not_allowed" in res.stdout

        run = ok_json(
            cli(
                env["host"],
                "room",
                "run",
                rid,
                "--computation",
                "intersection-overlap",
                *inputs,
                "--params",
                json.dumps(DP_RUN),
                "--json",
            )
        )
        worker = registered_enclave(url)
        for n in ("alice", "bob"):
            ok_json(
                cli(env[n], "room", "approve", rid, run["request"], "--allow-simulated", "--json")
            )
        assert worker.step().outcome == "completed"
        done = cli(env["alice"], "room", "status", rid, run["request"], "--json")
        assert done.exit_code == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["status"] == "completed"

        # Withdrawing consent closes the room to new runs on that member's data.
        ok_json(cli(env["bob"], "room", "withdraw-consent", rid, "--reason", "done", "--json"))
        res = cli(
            env["host"],
            "room",
            "run",
            rid,
            "--computation",
            "intersection-overlap",
            *inputs,
            "--params",
            json.dumps(DP_RUN),
            "--json",
        )
        assert res.exit_code == ExitCode.POLICY_DENIED
        assert "consent_missing" in res.stdout

        # The auditor pack of the room: issued by the host, verified offline.
        out = tmp_path / "room-pack"
        issued = ok_json(
            cli(env["host"], "room", "pack", rid, str(out), "--valid-for", "3600", "--json")
        )
        assert issued["snapshot"] == room["snapshot_digest"]
        assert "snapshot.json" in issued["files"]
        assert sum(f.startswith("bundles/") for f in issued["files"]) == 1
        verified = ok_json(
            cli(
                {},
                "verify-pack",
                str(out),
                "--allow-simulated",
                "--simulation-root",
                SIMULATION_ROOT.public_key.hex(),
                "--issuer",
                ids["host"],
                "--json",
            )
        )
        assert verified["verified"] is True
        res = cli(env["eve"], "room", "pack", rid, str(tmp_path / "eve-pack"), "--json")
        assert res.exit_code == ExitCode.ERROR
        assert "not_found" in res.stdout
        assert not (tmp_path / "eve-pack").exists()


def test_cli_room_run_as_a_protocol(tmp_path: Path) -> None:
    """`room create --protocols`, `room run --protocol`, `room approve`, `room run-protocol`
    (the two parties as real processes, at once)."""
    import os
    import subprocess
    import sys

    from sealroom.client import Party

    with coordinator(tmp_path) as url:
        env = {
            n: {"SEALROOM_HOME": str(tmp_path / n), "SEALROOM_URL": url} for n in ("host", "alice")
        }
        ids: dict[str, str] = {}
        datasets: dict[str, str] = {}
        for n in env:
            ids[n] = ok_json(cli(env[n], "init", "--unencrypted-keystore", "--name", n, "--json"))[
                "party"
            ]
            path = write_ids(tmp_path / f"{n}.csv", IDS[n])
            datasets[n] = ok_json(cli(env[n], "dataset", "publish", str(path), "--json"))["dataset"]
        common = ["--template", "psi-overlap", "--name", "o", "--purpose", "p", "--k", str(K)]
        refused = cli(env["host"], "room", "create", *common, "--protocols", "--json")
        assert refused.exit_code == ExitCode.ERROR, refused.stdout
        rid = ok_json(
            cli(env["host"], "room", "create", *common, "--dp", "exact", "--protocols", "--json")
        )["room"]
        ok_json(cli(env["host"], "room", "invite", rid, ids["alice"], "--json"))
        ok_json(cli(env["alice"], "room", "join", rid, "--dataset", datasets["alice"], "--json"))
        ok_json(cli(env["alice"], "room", "consent", rid, "--json"))
        people = {}
        for org in env:
            for i in (1, 2):
                person = Party.create(
                    home=tmp_path / f"{org}-{i}", name=f"{org}-{i}", url=url, unencrypted=True
                )
                people[(org, i)] = person
                ok_json(
                    cli(
                        env[org],
                        "org",
                        "add-member",
                        person.party_id,
                        "--role",
                        "approver",
                        "--json",
                    )
                )
        params = json.dumps({"mode": "cardinality", "threshold": K, "max_set_size": 1_000_000})
        inputs = ["--dataset", datasets["host"], "--dataset", datasets["alice"]]
        both = cli(
            env["host"], "room", "run", rid, *inputs, "--protocol", "psi", "--computation", "x"
        )
        assert both.exit_code == ExitCode.ERROR
        request = ok_json(
            cli(
                env["host"],
                "room",
                "run",
                rid,
                *inputs,
                "--protocol",
                "psi",
                "--params",
                params,
                "--json",
            )
        )["request"]
        for (org, _), person in people.items():
            ok_json(
                cli(
                    {"SEALROOM_HOME": str(person.home), "SEALROOM_URL": url},
                    "room",
                    "approve",
                    rid,
                    request,
                    "--org",
                    ids[org],
                    "--json",
                )
            )
            person.close()
        for n in env:
            approved = ok_json(cli(env[n], "room", "approve", rid, request, "--json"))
        assert approved["status"] == "approved"
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sealroom.cli",
                    "room",
                    "run-protocol",
                    rid,
                    request,
                    "--key-column",
                    "id",
                    "--json",
                ],
                env={**os.environ, **env[n]},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for n in env
        ]
        outs = [p.communicate(timeout=120) for p in procs]
        for p, (_, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err.decode()
        learned = [json.loads(out)["learned"]["intersection_size"] for out, _ in outs]
        assert learned == [150, 150]
        done = ok_json(cli(env["alice"], "room", "status", rid, request, "--json"))
        assert done["status"] == "completed"
