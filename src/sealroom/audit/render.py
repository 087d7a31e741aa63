"""The one-page policy summary as HTML and as PDF, both drawn from one :class:`PolicySummary`.

Both renderers walk the same :func:`sections` (heading, rows of label and
value), so the two documents cannot say different things. The HTML is one
self-contained file: every value escaped, inline CSS only, a CSP that forbids
loading anything, headings and a table per section with row headers for
screen readers. The PDF is drawn with ReportLab's standard fonts (nothing
embedded from outside), wraps long values, and carries the snapshot digest in
its metadata and on every page.
"""

from __future__ import annotations

import html
import io
from datetime import UTC, datetime

from sealroom.audit.summary import PolicySummary

__all__ = ["Section", "render_html", "render_pdf", "sections"]

Section = tuple[str, tuple[tuple[str, str], ...]]


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def sections(s: PolicySummary) -> tuple[Section, ...]:
    """The page's content in reading order: (heading, ((label, value), ...))."""
    room = (("Room", s.room),) if s.room else ()
    return (
        (
            "Room",
            (
                ("Title", s.title),
                *room,
                ("Host", s.display(s.host)),
                ("Purpose", s.purpose),
                ("Policy snapshot digest", s.snapshot_digest),
                ("Room policy", s.policy),
                ("Created", _when(s.created_at)),
            ),
        ),
        ("Parties", tuple((s.display(p), p) for p in s.parties())),
        (
            "Template",
            (
                ("Template", f"{s.template_title} ({s.template_id})"),
                (
                    "Risk",
                    "RISKY: " + "; ".join(s.risk_reasons)
                    if s.risky
                    else "not marked risky by its template",
                ),
            ),
        ),
        (
            "Allowed queries",
            tuple((f"{q.id} {q.version}", f"code {q.code_digest}") for q in s.allowed_queries),
        ),
        (
            "Who receives results",
            (
                ("Recipients", s.recipients),
                ("Members", f"at most {s.max_parties} parties, the host included"),
                ("Approval", s.approval_line()),
            ),
        ),
        (
            "Privacy, retention, expiry, region",
            (
                ("Privacy", s.privacy_line()),
                ("Retention", s.retention_line()),
                ("Expiry", f"the room refuses runs after {_when(s.expires_at)}"),
                (
                    "Region",
                    f"runs only on enclaves declaring region {s.region}"
                    if s.region
                    else "any region (not pinned)",
                ),
            ),
        ),
    )


def _mono(value: str) -> bool:
    """Digests and party ids are set in a monospace font (and may break anywhere)."""
    return value.startswith(("sha256:", "code sha256:", "sr1"))


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#111;background:#fff;
max-width:52rem;margin:1.5rem auto;padding:0 1rem}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.1rem;margin:1.25rem 0 .35rem;
border-bottom:2px solid #333}
table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;
padding:.3rem .5rem;border-bottom:1px solid #bbb}th{width:30%;font-weight:600}
code,.digest{font-family:ui-monospace,Menlo,Consolas,monospace;overflow-wrap:anywhere}
.note{color:#333;font-size:.9rem}
@media print{body{margin:0;max-width:none}}
"""


def render_html(s: PolicySummary) -> str:
    """One self-contained, escaped, accessible HTML page."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">",
        f'<meta name="sealroom-snapshot-digest" content="{e(s.snapshot_digest)}">',
        f"<title>Policy summary: {e(s.title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<main>",
        f"<h1>Policy summary: {e(s.title)}</h1>",
        '<p class="note">What you consent to is the policy snapshot with digest '
        f'<code class="digest">{e(s.snapshot_digest)}</code>. A consent names this digest; '
        "any change to the room's policy makes a new one.</p>",
    ]
    for n, (heading, rows) in enumerate(sections(s)):
        hid = f"s{n}"
        parts.append(f'<section aria-labelledby="{hid}">')
        parts.append(f'<h2 id="{hid}">{e(heading)}</h2>')
        parts.append("<table>")
        parts.append(f'<caption class="note" hidden>{e(heading)}</caption>')
        for label, value in rows:
            cls = ' class="digest"' if _mono(value) else ""
            parts.append(f'<tr><th scope="row">{e(label)}</th><td{cls}>{e(value)}</td></tr>')
        parts.append("</table>")
        parts.append("</section>")
    parts += ["</main>", "</body>", "</html>", ""]
    return "\n".join(parts)


def render_pdf(s: PolicySummary) -> bytes:
    """The same sections as a PDF (A4), with the snapshot digest in the footer and metadata."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=styles["BodyText"], fontSize=8.5, leading=10.5)
    label = ParagraphStyle("label", parent=body, fontName="Helvetica-Bold")
    mono = ParagraphStyle("mono", parent=body, fontName="Courier", fontSize=7.5, leading=9.5)
    h1 = ParagraphStyle("h1", parent=styles["Heading1"], fontSize=15, leading=18, spaceAfter=2)
    h2 = ParagraphStyle("h2", parent=styles["Heading2"], fontSize=10.5, leading=13, spaceBefore=5)

    def para(text: str, style: ParagraphStyle) -> Paragraph:
        # Paragraph reads a small markup language: escape everything that is data.
        return Paragraph(html.escape(text), style)

    story: list[object] = [
        para(f"Policy summary: {s.title}", h1),
        para(
            "What you consent to is the policy snapshot with digest "
            f"{s.snapshot_digest}. A consent names this digest; any change to the room's "
            "policy makes a new one.",
            body,
        ),
    ]
    width = A4[0] - 30 * mm
    for heading, rows in sections(s):
        story.append(para(heading, h2))
        data = [
            [
                para(lbl, label),
                para(val, mono if _mono(val) else body),
            ]
            for lbl, val in rows
        ]
        table = Table(data, colWidths=[0.3 * width, 0.7 * width])
        table.setStyle(
            TableStyle(
                [
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("LINEBELOW", (0, 0), (-1, -1), 0.4, colors.grey),
                    ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
                ]
            )
        )
        story.append(table)
    story.append(Spacer(1, 2 * mm))

    def footer(canvas: object, doc: object) -> None:
        canvas.saveState()  # type: ignore[attr-defined]
        canvas.setFont("Courier", 6.5)  # type: ignore[attr-defined]
        canvas.drawString(  # type: ignore[attr-defined]
            15 * mm, 8 * mm, f"sealroom policy snapshot {s.snapshot_digest}"
        )
        canvas.restoreState()  # type: ignore[attr-defined]

    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=12 * mm,
        bottomMargin=14 * mm,
        title=f"Policy summary: {s.title}",
        subject=s.snapshot_digest,
        author="sealroom",
        creator="sealroom",
        invariant=1,
    )
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return out.getvalue()
