"""Names are not identities: one party per name on a coordinator, names others see are clean,
and every view that shows a name shows the fingerprint of the id behind it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from sealroom.api.app import create_app
from sealroom.api.testing import run_in_thread
from sealroom.client import Party
from sealroom.crypto.keys import fingerprint, matches_fingerprint
from sealroom.errors import NameTaken, StatementFormatError
from sealroom.statements import DatasetAttestation, sign_statement
from sealroom.storage.engine import create_engine
from sealroom.storage.migrate import upgrade
from sealroom.text import name_key, printable
from tests.api.api_helpers import Client, Clock, test_registry
from tests.helpers import T0, attestation, identity
from tests.services import coordinator

MIGRATIONS = Path(upgrade.__code__.co_filename).parent / "migrations"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[httpx.Client, Clock]]:
    clock = Clock(T0)
    app = create_app(db_url=f"sqlite:///{tmp_path / 'c.db'}", registry=test_registry(), clock=clock)
    with run_in_thread(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield http, clock


def _error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert body["code"] == code, body
    detail: str = body["detail"]
    return detail


def test_a_taken_name_cannot_be_registered_again(env: tuple[httpx.Client, Clock]) -> None:
    http, clock = env
    amiller = Client(http, identity("amiller"), clock)
    assert amiller.register("amiller").status_code == 201
    # Same keys, same name: idempotent. Another party, the same name in any spelling: refused.
    assert amiller.register("amiller").status_code == 200
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in "amiller")
    for n, spelling in enumerate(("amiller", "AMiller", " amiller ", fullwidth)):
        impostor = Client(http, identity(f"impostor {spelling}"), clock)
        detail = _error(impostor.register(spelling), 409, "name_taken")
        assert fingerprint(amiller.identity.party_id) in detail
        assert impostor.register(f"amiller{n}").status_code == 201
    shown = http.get(f"/v1/parties/{amiller.identity.party_id}").json()
    assert shown["name"] == "amiller"
    assert shown["fingerprint"] == fingerprint(amiller.identity.party_id)


@pytest.mark.parametrize(
    "name",
    ["bad\nname\x00", "\u202eevil", "tab\there", "zero\u200bwidth", "\x1b[31mred", "x" * 65, " "],
)
def test_names_others_see_are_clean(env: tuple[httpx.Client, Clock], name: str) -> None:
    http, clock = env
    who = Client(http, identity("someone"), clock)
    _error(who.register(name), 400, "invalid_input")
    assert http.get(f"/v1/parties/{who.identity.party_id}").status_code == 404


def test_free_text_others_see_is_clean(env: tuple[httpx.Client, Clock]) -> None:
    http, clock = env
    alice = Client(http, identity("alice"), clock)
    alice.register("alice")
    env_ = sign_statement(attestation(alice.identity, title="ok"), alice.identity)
    r = alice.call("POST", "/v1/datasets", {"attestation": env_.envelope.to_dict(), "policy": None})
    assert r.status_code == 201, r.text
    dataset = r.json()["dataset"]
    assert r.json()["owner_fingerprint"] == fingerprint(alice.identity.party_id)
    _error(
        alice.call("POST", f"/v1/datasets/{dataset}/withdraw", {"reason": "gone\u202e"}),
        400,
        "invalid_input",
    )
    assert http.get(f"/v1/datasets/{dataset}").json()["status"] != "withdrawn"


@pytest.mark.parametrize("title", ["\u202eevil", "line\nbreak", "bell\x07"])
def test_statement_parser_refuses_controls_in_titles(title: str) -> None:
    alice = identity("alice")
    signed = sign_statement(attestation(alice, title="placeholder"), alice)
    payload = signed.envelope.payload.replace(
        b'"placeholder"', f'"{title}"'.encode("unicode_escape")
    )
    with pytest.raises(StatementFormatError):
        DatasetAttestation.parse_payload(payload)


def test_descriptions_keep_lines_but_not_overrides() -> None:
    alice = identity("alice")
    att = attestation(alice, title="t")
    ok = att.model_copy(update={"description": "two\nlines\twith a tab 👩‍💻"})
    DatasetAttestation.model_validate(ok.model_dump(by_alias=True))
    bad = att.model_copy(update={"description": "fine \u2067hidden\u2069"})
    with pytest.raises(ValueError, match="U\\+2067"):
        DatasetAttestation.model_validate(bad.model_dump(by_alias=True))


def test_fingerprints() -> None:
    pid = identity("x").party_id
    fp = fingerprint(pid)
    assert len(fp.replace("-", "")) == 16
    assert matches_fingerprint(pid, fp)
    assert matches_fingerprint(pid, fp.upper().replace("-", " "))
    assert matches_fingerprint(pid, pid)
    assert not matches_fingerprint(pid, fp[:-1])  # fewer than 80 bits
    assert not matches_fingerprint(identity("y").party_id, fp)
    assert name_key(" A  Miller ") == name_key("a miller")
    assert printable("a\u202eb\nc") == "a\\u202eb\\u000ac"


def test_the_sdk_refuses_a_taken_name(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        with Party.create(home=tmp_path / "a", name="amiller", url=url, unencrypted=True):
            pass
        with pytest.raises(NameTaken, match="taken"):
            Party.create(home=tmp_path / "b", name="AMILLER", url=url, unencrypted=True)


def _upgrade_to(engine: sa.Engine, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def test_migration_keeps_the_first_holder_of_a_duplicated_name(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    _upgrade_to(engine, "0003")
    first, later, enclave = "sr1" + "b" * 52, "sr1" + "a" * 52, "sr1" + "c" * 52
    rows = [(later, "party", "Amiller", 2), (first, "party", "amiller", 1)]
    rows.append((enclave, "enclave", "enclave (simulated)", 3))
    with engine.begin() as conn:
        for party, kind, name, at in rows:
            conn.execute(
                sa.text(
                    "INSERT INTO parties (party, kind, name, signing_key, sealing_key, "
                    "registered_at) VALUES (:p, :k, :n, :s, :s, :a)"
                ),
                {"p": party, "k": kind, "n": name, "s": b"k" * 32, "a": at},
            )
    upgrade(engine)
    with engine.begin() as conn:
        keys = dict(conn.execute(sa.text("SELECT party, name_key FROM parties")).all())
        names = dict(conn.execute(sa.text("SELECT party, name FROM parties")).all())
    assert keys == {first: "amiller", later: None, enclave: None}
    assert names[later] == "Amiller"  # kept, shown with its fingerprint; no one can take it anew
    engine.dispose()


def test_docs_pages_load_only_local_assets(env: tuple[httpx.Client, Clock]) -> None:
    http, _ = env
    for page in ("/docs", "/redoc"):
        r = http.get(page)
        assert r.status_code == 200, r.text
        refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", r.text)
        refs += re.findall(r"""(?:url|spec-url)\s*[:=]\s*["']([^"']+)["']""", r.text)
        assert refs, r.text
        for ref in refs:
            assert ref.startswith("/"), (page, ref)
            assert not ref.startswith("//"), (page, ref)
        assert "http://" not in r.text, page
        assert "https://" not in r.text, page
        asset = "swagger-ui-bundle.js" if page == "/docs" else "redoc.standalone.js"
        assert f"/docs/assets/{asset}" in refs
        for ref in refs:
            got = http.get(ref)
            assert got.status_code == 200, (page, ref)
            assert len(got.content) > 1000 or ref.endswith(".json"), ref
    assert http.get("/docs/assets/../../etc/passwd").status_code == 404
    assert http.get("/docs/assets/core.py").status_code == 404
