"""The one-page policy summary: one value, rendered to HTML and PDF (rendered back to an image)."""

from __future__ import annotations

import copy
import html
import io
import json
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from typer.testing import CliRunner

from sealroom.audit.render import render_html, render_pdf, sections
from sealroom.audit.summary import parse_snapshot, snapshot_digest, summary_from_snapshot
from sealroom.cli.exits import ExitCode
from sealroom.cli.main import app
from sealroom.crypto.keys import Identity
from sealroom.errors import StatementFormatError
from sealroom.statements import canonical_json
from tests.audit.snapshots import CODE, snapshot

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


def test_summary_pdf_renders_every_section_on_one_page() -> None:
    snap = snapshot(HOST, [A, B])
    s = summary_from_snapshot(snap)
    assert s.snapshot_digest == snapshot_digest(snap)
    text, pages, dark = _pdf_text_and_pixels(render_pdf(s))
    assert pages == 1
    assert dark > 5000  # ink on the page, not a blank render
    for needle in (
        "Policy summary: Cohort overlap 2026",
        s.snapshot_digest,
        CODE,
        "PSI overlap and cohort sizing (psi-overlap)",
        "k = 10",
        "epsilon = 1.0",
        "deleted 7 days after completion",
        "region eu-west",
        "2030-03-17",  # 1_900_000_000 as a date
        "member 0",
        "topic-overlap 2.1.0",
        "never the other party's rows",
    ):
        assert needle in text, needle


def test_summary_of_a_room_of_five_still_fits_one_page() -> None:
    members = [Identity.generate() for _ in range(5)]
    s = summary_from_snapshot(snapshot(members[0], members))
    text, pages, _ = _pdf_text_and_pixels(render_pdf(s))
    assert pages == 1
    # Each party once in full (the Parties section), elsewhere by name and fingerprint.
    for m in members:
        assert text.count(m.party_id) == 1
        assert s.display(m.party_id) in text


def test_summary_html_and_pdf_say_the_same_things() -> None:
    s = summary_from_snapshot(snapshot(HOST, [A, B]))
    page = render_html(s)
    text, _, _ = _pdf_text_and_pixels(render_pdf(s))
    for heading, rows in sections(s):
        assert f">{heading}</h2>" in page
        assert heading in text
        for label, value in rows:
            assert f">{html.escape(label)}</th>" in page
            assert html.escape(value) in page
            # The PDF wraps long values; compare their words.
            assert " ".join(value.split()[:3]) in text, value


def test_summary_html_is_escaped_self_contained_and_accessible() -> None:
    snap = snapshot(HOST, [A], title='<script>alert("x")</script> & co')
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


def test_summary_digest_changes_with_any_field() -> None:
    snap = snapshot(HOST, [A, B])
    other = copy.deepcopy(snap)
    other["extra"]["note"] = "changed"
    assert snapshot_digest(snap) != snapshot_digest(other)
    # Key order and whitespace do not matter: the digest is over canonical JSON.
    shuffled = json.dumps(dict(reversed(list(snap.items()))), indent=2).encode()
    assert snapshot_digest(parse_snapshot(shuffled)) == snapshot_digest(snap)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update(type="sealroom.policy"), "not a room policy snapshot"),
        (lambda s: s.update(version=2), "unknown policy snapshot version 2"),
        (lambda s: s.pop("title"), "title must be a non-empty string"),
        (lambda s: s.update(k=0), "k must be an integer >= 1"),
        (lambda s: s.update(k=True), "k must be an integer >= 1"),
        (lambda s: s["template"].update(code_digest="md5:1"), "template.code_digest must be"),
        (lambda s: s["outputs"][0].update(recipients=[]), "outputs[0].recipients must be"),
        (lambda s: s.update(inputs="all"), "inputs must be a list"),
        (lambda s: s.update(dp=1), "dp must be an object or null"),
    ],
)
def test_summary_refuses_a_malformed_snapshot(change: object, message: str) -> None:
    snap = snapshot(HOST, [A, B])
    change(snap)  # type: ignore[operator]
    with pytest.raises(StatementFormatError, match=message.replace("[", r"\[").replace("]", r"\]")):
        summary_from_snapshot(snap)


def test_summary_without_dp_or_retention_says_so() -> None:
    snap = snapshot(HOST, [A])
    snap.update(dp=None, retention_seconds=None, expires_at=None, region=None)
    s = summary_from_snapshot(snap)
    rows = dict(sections(s)[-1][1])
    assert "no differential-privacy noise (exact releases)" in rows["Privacy"]
    assert "no retention limit" in rows["Retention"]
    assert "never (no expiry)" in rows["Expiry"]
    assert rows["Region"] == "any region (not pinned)"


def test_cli_summary_writes_html_and_pdf(tmp_path: Path) -> None:
    snap = snapshot(HOST, [A, B])
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

    src.write_text('{"type": "sealroom.room-policy-snapshot", "version": 1}')
    bad = CliRunner().invoke(app, ["summary", str(src), "--json"])
    assert bad.exit_code == ExitCode.ERROR
    assert json.loads(bad.stdout)["error"]["code"] == "statement_format"
