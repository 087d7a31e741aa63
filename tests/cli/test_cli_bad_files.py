"""``sealroom dataset publish`` on malformed files, against a real coordinator.

Each bad file must give exit code 1 and exactly one ``error: ... [invalid_input]``
line on stderr naming the file (and the line, where there is one), and must
leave no trace: the coordinator's datasets and log, and the local index
``<home>/datasets.json``, are byte-for-byte what they were.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from sealroom.cli.main import app
from tests.client.client_world import TOPICS_A, write_jsonl
from tests.services import coordinator

runner = CliRunner()
BIG = 100 << 10  # a 100 KiB field: over the 64 KiB field limit, under csv's own limit
_ERROR = re.compile(r"^error: (?P<message>.+) \[(?P<code>[a-z_]+)\]$")


@dataclass(frozen=True, slots=True)
class Env:
    url: str
    home: Path
    files: Path
    env: dict[str, str]


def cli(env: Env, *args: str) -> Result:
    return runner.invoke(app, list(args), env=env.env)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("cli-bad-files")
    with coordinator(root) as url:
        home = root / "alice"
        e = Env(url, home, root / "files", {"SEALROOM_HOME": str(home), "SEALROOM_URL": url})
        e.files.mkdir()
        assert cli(e, "init", "--unencrypted-keystore", "--name", "alice").exit_code == 0
        good = write_jsonl(e.files / "good.jsonl", TOPICS_A, rows=12)
        published = cli(e, "dataset", "publish", str(good), "--json")
        assert published.exit_code == 0, published.stderr
        yield e


def state(env: Env) -> tuple[object, ...]:
    """The coordinator's datasets and log size, and the local dataset index, as bytes."""
    with httpx.Client(base_url=env.url) as http:
        datasets = http.get("/v1/datasets", params={"limit": 100}).json()
        size = http.get("/v1/log/checkpoint").text.splitlines()[1]
    return datasets, size, (env.home / "datasets.json").read_bytes()


def _jsonl(*records: object) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


ROW = {"ts": 1_700_000_000, "text": "worked on remote attestation"}

# (file name, content, what the one error line must say)
CASES: list[tuple[str, bytes, str]] = [
    ("broken.csv", b'ts,text\n1,"fine"\n2,"unterminated\n', r"broken\.csv line 3: broken CSV"),
    ("ragged.csv", b"ts,text\n1,a\n2\n", r"ragged\.csv line 3: 1 fields, the header has 2"),
    ("broken.jsonl", _jsonl(ROW) + b'{"ts": 2, "text": \n', r"broken\.jsonl line 2: broken JSON"),
    (
        "list.jsonl",
        _jsonl(ROW) + b"[1, 2]\n",
        r"list\.jsonl line 2: each line must be a JSON object",
    ),
    (
        "latin1.jsonl",
        _jsonl(ROW) + '{"ts": 2, "text": "café"}\n'.encode("latin-1"),
        r"latin1\.jsonl line 2: not valid UTF-8 \(byte 0xe9",
    ),
    (
        "latin1.csv",
        "ts,text\n1,ok\n2,naïve\n".encode("latin-1"),
        r"latin1\.csv line 3: not valid UTF-8",
    ),
    ("utf16.jsonl", _jsonl(ROW).decode().encode("utf-16"), r"utf16\.jsonl: .*UTF-16"),
    ("empty.jsonl", b"", r"empty\.jsonl: the file is empty"),
    ("blank.jsonl", b"\n \n", r"blank\.jsonl: the file is empty"),
    ("empty.csv", b"", r"empty\.csv: the file is empty"),
    ("header.csv", b"ts,text\n", r"header\.csv: the file has a header but no records"),
    (
        "huge.jsonl",
        _jsonl(ROW, ROW, {"ts": 3, "text": "y" * BIG}),
        r"huge\.jsonl line 3: field 'text' is over the limit of 65536 bytes",
    ),
    (
        "huge.csv",
        b"ts,text\n1,ok\n2," + b"y" * BIG + b"\n",
        r"huge\.csv line 3: field 'text' is over the limit",
    ),
    (
        "huger.csv",
        b"ts,text\n1,ok\n2," + b"y" * (200 << 10) + b"\n",
        r"huger\.csv line 3: a field is over the CSV field size limit",
    ),
    ("mixed.jsonl", _jsonl(ROW, {"ts": "soon", "text": "x"}), r"mixed\.jsonl: column 'ts' mixes"),
    ("notes.txt", b"hello\n", r"notes\.txt: unknown format"),
]


def one_error_line(res: Result, code: str = "invalid_input") -> str:
    assert res.exit_code == 1, (res.exit_code, res.stdout, res.stderr)
    lines = res.stderr.splitlines()
    assert len(lines) == 1, lines
    m = _ERROR.match(lines[0])
    assert m is not None, lines[0]
    assert m["code"] == code
    assert "Traceback" not in res.stdout + res.stderr
    return m["message"]


@pytest.mark.parametrize(("name", "content", "message"), CASES, ids=[c[0] for c in CASES])
def test_cli_bad_file_is_refused_and_leaves_no_trace(
    env: Env, name: str, content: bytes, message: str
) -> None:
    path = env.files / name
    path.write_bytes(content)
    before = state(env)
    res = cli(env, "dataset", "publish", str(path), "--title", name)
    assert re.search(message, one_error_line(res)), res.stderr
    assert res.stdout == ""
    assert state(env) == before


def test_cli_bad_file_json_mode_prints_one_error_document(env: Env) -> None:
    path = env.files / "bad.jsonl"
    path.write_bytes(b"{nope\n")
    before = state(env)
    res = cli(env, "dataset", "publish", str(path), "--json")
    assert "bad.jsonl line 1: broken JSON" in one_error_line(res)
    doc = json.loads(res.stdout)
    assert doc["error"]["code"] == "invalid_input"
    assert "bad.jsonl line 1" in doc["error"]["detail"]
    assert state(env) == before


def test_cli_missing_file_and_bad_policy_file(env: Env) -> None:
    before = state(env)
    missing = one_error_line(cli(env, "dataset", "publish", str(env.files / "absent.jsonl")))
    assert "absent.jsonl" in missing
    good = write_jsonl(env.files / "fine.jsonl", TOPICS_A, rows=5)
    policy = env.files / "policy.json"
    policy.write_text('{"allow": [')
    bad_json = one_error_line(
        cli(env, "dataset", "publish", str(good), "--policy", str(policy)), "statement_format"
    )
    assert f"policy file {policy}: not valid JSON" in bad_json
    policy.write_text('{"allow": [{"id": "topic-overlap", "bogus": 1}]}')
    bad_rules = one_error_line(cli(env, "dataset", "publish", str(good), "--policy", str(policy)))
    assert f"policy file {policy}: policy rules allow.0.bogus" in bad_rules
    assert state(env) == before
    # The same coordinator and keystore still publish a good file.
    ok = cli(env, "dataset", "publish", str(good), "--json")
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["rows"] == 5
