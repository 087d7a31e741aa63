"""``dataset publish --dry-run`` shows the exact card that publishing signs, and the owner's say in it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from sealroom.cli.main import app
from sealroom.client.http import Client
from sealroom.statements import DatasetAttestation
from tests.connectors.clinic_notes import write_clinic_notes
from tests.services import coordinator

runner = CliRunner()

CARD_FIELDS = ("keywords", "topics", "schema", "time_range", "profile")


def run(env: dict[str, str], *args: str) -> Result:
    return runner.invoke(app, list(args), env=env)


def ok_json(res: Result) -> Any:
    assert res.exit_code == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


def test_dry_run_signs_and_sends_nothing_and_obeys_the_policys_k(tmp_path: Path) -> None:
    data = write_clinic_notes(tmp_path / "notes.jsonl")
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"allow": [{"id": "topic-overlap"}], "k": 50}))
    # No keystore and no coordinator: a dry run needs neither.
    env = {"SEALROOM_HOME": str(tmp_path / "nobody"), "SEALROOM_URL": "http://127.0.0.1:9"}
    args = ("dataset", "publish", str(data), "--policy", str(policy), "--dry-run")
    doc = ok_json(run(env, *args, "--text-column", "note", "--json"))
    assert (doc["dry_run"], doc["signed"], doc["k"], doc["entity_column"]) == (
        True,
        False,
        50,
        None,
    )
    assert doc["columns"] == {"text": "note", "time": None, "project": None}
    terms = {kw["term"] for kw in doc["card"]["keywords"]}
    assert "ward round" in terms
    assert not any(w in json.dumps(doc).lower() for w in ("zebulon", "leukaemia"))
    assert all(kw["count"] >= 50 for kw in doc["card"]["keywords"])
    assert not (tmp_path / "nobody").exists()
    human = run(env, *args, "--text-column", "note")
    assert human.exit_code == 0, human.stderr
    assert "dry run: nothing was signed or sent" in human.stdout
    assert "k = 50 distinct records" in human.stdout
    assert "ward round: 194" in human.stdout


def test_owner_drops_terms_and_names_the_columns(tmp_path: Path) -> None:
    data = write_clinic_notes(tmp_path / "notes.jsonl")
    env = {"SEALROOM_HOME": str(tmp_path / "nobody")}
    base = ("dataset", "publish", str(data), "--dry-run", "--json", "--text-column", "note")
    plain = ok_json(run(env, *base))
    assert plain["k"] == 5  # no policy: the default threshold
    assert "patient zebulon quixote" in {kw["term"] for kw in plain["card"]["keywords"]}
    drops = tmp_path / "drops.txt"
    drops.write_text("# names\nQuixote\n\n")
    doc = ok_json(
        run(
            env,
            *base,
            "--drop-term",
            "zebulon",
            "--drop-terms",
            str(drops),
            "--time-column",
            "when",
            "--project-column",
            "ward",
        )
    )
    assert doc["dropped"] == ["quixote", "zebulon"]
    assert not any(w in json.dumps(doc["card"]) for w in ("zebulon", "quixote"))
    assert doc["card"]["profile"]["projects"] == 4
    assert doc["card"]["profile"]["active_days"] == 2
    assert doc["card"]["time_range"] == {"start": 1699920000, "end": 1700092799}  # whole days
    assert doc["columns"] == {"text": "note", "time": "when", "project": "ward"}
    for flag, column, why in (
        ("--time-column", "nowhere", "the time column 'nowhere' is not in the file"),
        ("--time-column", "who", "the time column 'who' is string, not a timestamp"),
        ("--text-column", "when", "the text column 'when' is timestamp"),
    ):
        bad = run(env, *base, flag, column)
        assert bad.exit_code == 1
        assert why in bad.stderr


def test_the_published_card_is_the_dry_runs(tmp_path: Path) -> None:
    data = write_clinic_notes(tmp_path / "notes.jsonl")
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps({"allow": [{"id": "topic-overlap"}], "k": 10, "entity_column": "who"})
    )
    with coordinator(tmp_path) as url:
        env = {"SEALROOM_HOME": str(tmp_path / "owner"), "SEALROOM_URL": url}
        assert run(env, "init", "--unencrypted-keystore", "--name", "owner").exit_code == 0
        args = ("dataset", "publish", str(data), "--policy", str(policy), "--text-column", "note")
        args += ("--project-column", "ward", "--drop-term", "routine")
        preview = ok_json(run(env, *args, "--dry-run", "--json"))
        assert preview["entity_column"] == "who"
        assert max(kw["count"] for kw in preview["card"]["keywords"]) <= 70  # clinicians
        published = ok_json(run(env, *args, "--json"))
        view = Client(base_url=url).dataset(published["dataset"])
        signed = view.envelope.open(DatasetAttestation).statement.model_dump(mode="json")
        assert {f: signed[f] for f in CARD_FIELDS} == preview["card"]
        assert signed["commitment"] == preview["commitment"]
        assert not any("routine" in kw["term"] for kw in signed["keywords"])
