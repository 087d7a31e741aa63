"""The one-page policy summary: one value, rendered to HTML and PDF (rendered back to an image)."""

from __future__ import annotations

import copy
import html
import io
import json
import re
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from typer.testing import CliRunner

from sealroom.audit.render import render_html, render_pdf, sections
from sealroom.audit.summary import (
    parse_snapshot,
    room_summary,
    snapshot_digest,
    summary_from_snapshot,
)
from sealroom.cli.exits import ExitCode
from sealroom.cli.main import app
from sealroom.crypto.keys import Identity, b64encode
from sealroom.errors import StatementFormatError
from sealroom.statements import Room, RoomSnapshot, canonical_json, sign_statement
from tests.audit.snapshots import CREATED, POLICY, code, snapshot

HOST, A, B = Identity.generate(), Identity.generate(), Identity.generate()


def _pdf_text_and_pixels(pdf: bytes) -> tuple[str, int, int]:
    doc = pdfium.PdfDocument(pdf)
    try:
        pages = len(doc)
        text = ""
        dark = 0
        for i in range(pages):
            page = doc[i]
            text += page.get_textpage().get_text_range()
            image = page.render(scale=1).to_pil().convert("L")
            dark += sum(image.histogram()[:128])
            buf = io.BytesIO()
            image.save(buf, format="PNG")
            assert buf.getvalue().startswith(b"\x89PNG")
        return " ".join(text.split()), pages, dark
    finally:
        doc.close()


def names(*parties: Identity) -> dict[str, str]:
    return {p.party_id: f"member {n}" for n, p in enumerate(parties)}


def test_summary_pdf_renders_every_section_on_one_page() -> None:
    snap = snapshot(HOST)
    s = summary_from_snapshot(snap, room="sha256:" + "cd" * 32, names=names(HOST, A, B))
    assert s.snapshot_digest == snapshot_digest(snap)
    text, pages, dark = _pdf_text_and_pixels(render_pdf(s))
    assert pages == 1
    assert dark > 5000  # ink on the page, not a blank render
    for needle in (
        "Policy summary: Cohort overlap 2026",
        s.snapshot_digest,
        "sha256:" + "cd" * 32,
        POLICY,
        code(snap),
        "PSI overlap and cohort sizing (psi-overlap)",
        "k = 10",
        "epsilon = 1 per run, 4 in total",
        "deleted 7 days after completion",
        "region eu-west",
        "2030-03-17",  # 1_900_000_000 as a date
        "member 1",
        "intersection-overlap 2.2.0",
        "no one else",
    ):
        assert needle in text, needle


def test_summary_of_a_room_of_five_still_fits_one_page() -> None:
    members = [Identity.generate() for _ in range(5)]
    s = summary_from_snapshot(snapshot(members[0]), names=names(*members))
    text, pages, _ = _pdf_text_and_pixels(render_pdf(s))
    assert pages == 1
    # Each party once in full (the Parties section), elsewhere by name and fingerprint.
    for m in members:
        assert text.count(m.party_id) == 1
        assert s.display(m.party_id) in text


def test_summary_html_and_pdf_say_the_same_things() -> None:
    s = summary_from_snapshot(snapshot(HOST, k=5), names=names(HOST, A, B))
    page = render_html(s)
    text, _, _ = _pdf_text_and_pixels(render_pdf(s))
    assert html.escape("RISKY: k 5 is below the template's floor 10") in page
    for heading, rows in sections(s):
        assert f">{heading}</h2>" in page
        assert heading in text
        for label, value in rows:
            assert f">{html.escape(label)}</th>" in page
            assert html.escape(value) in page
            # The PDF wraps long values; compare their words.
            assert " ".join(value.split()[:3]) in text, value


def test_summary_html_is_escaped_self_contained_and_accessible() -> None:
    snap = snapshot(HOST, title='<script>alert("x")</script> & co')
    page = render_html(summary_from_snapshot(snap))
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in page
    assert '<html lang="en">' in page
    assert 'scope="row"' in page
    assert "default-src 'none'" in page
    for external in ("http://", "https://", "src=", "<link", "@import", "url("):
        assert external not in page
    # The PDF's markup language gets the same escaping.
    text, _, _ = _pdf_text_and_pixels(render_pdf(summary_from_snapshot(snap)))
    assert '<script>alert("x")</script> & co' in text


def test_summary_digest_is_the_rooms_and_changes_with_any_field() -> None:
    host = Identity.generate()
    snap = snapshot(host)
    # The digest the summary shows is the one the rooms' model (and so every consent) names.
    assert summary_from_snapshot(snap).snapshot_digest == (
        RoomSnapshot.model_validate_json(canonical_json(snap)).digest()
    )
    other = copy.deepcopy(snap)
    other["max_parties"] = 6  # not a line of its own on the page, still in the digest
    assert summary_from_snapshot(other).snapshot_digest != snapshot_digest(snap)
    # Key order and whitespace do not matter: the digest is over canonical JSON.
    shuffled = json.dumps(dict(reversed(list(snap.items()))), indent=2).encode()
    assert snapshot_digest(parse_snapshot(shuffled)) == snapshot_digest(snap)


def test_summary_of_a_signed_room_is_its_consented_digest() -> None:
    snap = snapshot(HOST)
    model = RoomSnapshot.model_validate_json(canonical_json(snap))
    room = sign_statement(
        Room.build(
            host=HOST.party_id,
            snapshot=model,
            snapshot_digest=model.digest(),
            nonce=b64encode(b"\x00" * 16),
            created_at=CREATED,
        ),
        HOST,
    )
    s = room_summary(room.statement, room_id=room.digest)
    assert s.snapshot_digest == room.statement.snapshot_digest
    assert s.room == room.digest


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update(format="sealroom.policy"), "not a room policy snapshot"),
        (lambda s: s.pop("name"), "name: Field required"),
        (lambda s: s.update(k=0), "k: Input should be greater than or equal to 2"),
        (lambda s: s.update(k=True), "k: Input should be a valid integer"),
        (lambda s: s["allowed_queries"][0].update(code_digest="md5:1"), "allowed_queries.0"),
        (lambda s: s.update(recipients="everyone"), "recipients"),
        (lambda s: s.update(dp=1), "dp: Input should be an object"),
        (lambda s: s.update(extra={"note": "hidden"}), "extra: Extra inputs are not permitted"),
        # A value the model would rewrite: the page would not show what the digest covers.
        (lambda s: s["dp"].update(epsilon_per_run="1.0"), "dp"),
        (lambda s: s["template"].update(risky=True), "template"),
    ],
)
def test_summary_refuses_a_malformed_snapshot(change: object, message: str) -> None:
    snap = snapshot(HOST)
    change(snap)  # type: ignore[operator]
    with pytest.raises(StatementFormatError, match=re.escape(message)):
        summary_from_snapshot(snap)


def test_summary_without_dp_or_region_says_so() -> None:
    s = summary_from_snapshot(snapshot(HOST, dp="exact", region=None))
    rows = dict(sections(s)[-1][1])
    assert "no differential-privacy noise required (exact releases allowed)" in rows["Privacy"]
    assert "deleted 7 days after completion" in rows["Retention"]
    assert "2030-03-17" in rows["Expiry"]
    assert rows["Region"] == "any region (not pinned)"
    risk = dict(sections(s)[2][1])["Risk"]
    assert risk.startswith("RISKY: ")
    assert "exact (non-DP) releases" in risk


def test_cli_summary_writes_html_and_pdf(tmp_path: Path) -> None:
    snap = snapshot(HOST)
    src = tmp_path / "snapshot.json"
    src.write_bytes(canonical_json(snap))
    html, pdf = tmp_path / "out" / "summary.html", tmp_path / "out" / "summary.pdf"
    result = CliRunner().invoke(
        app, ["summary", str(src), "--html", str(html), "--pdf", str(pdf), "--json"]
    )
    assert result.exit_code == ExitCode.OK, result.output
    doc = json.loads(result.stdout)
    assert doc["snapshot_digest"] == snapshot_digest(snap)
    assert doc["written"] == [str(html), str(pdf)]
    assert html.stat().st_mode & 0o777 == 0o600
    assert snapshot_digest(snap) in html.read_text()
    text, pages, _ = _pdf_text_and_pixels(pdf.read_bytes())
    assert pages == 1
    assert snapshot_digest(snap) in text

    src.write_text('{"format": "sealroom.room-policy/v1", "name": "x"}')
    bad = CliRunner().invoke(app, ["summary", str(src), "--json"])
    assert bad.exit_code == ExitCode.ERROR
    assert json.loads(bad.stdout)["error"]["code"] == "statement_format"
