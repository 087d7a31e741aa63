"""Text that other parties see: display names and free text, checked where it enters.

A name or a reason typed by one party ends up on another party's terminal or page.
Control characters there can rewrite the screen (ANSI escapes, carriage returns),
and bidirectional overrides make ``"\\u202eevil"`` read as something else, so both
are refused where the text enters (keystore, API bodies, statement parsers), and
:func:`printable` escapes them on the way out for anything stored before that.
The check uses only general categories that are stable across Unicode versions
(Cc, Cf, Cs, Zl, Zp), so a statement valid on one machine is valid on every other.
"""

from __future__ import annotations

import unicodedata

from sealroom.errors import InvalidInput

__all__ = [
    "BIDI_CONTROLS",
    "MAX_NAME_LENGTH",
    "check_display_name",
    "name_key",
    "printable",
    "text_problem",
]

MAX_NAME_LENGTH = 64
"""A display name's bound in characters: a name, not a description."""

BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
"""Arabic letter mark, LRM/RLM, the embeddings and overrides, and the isolates."""

_MULTILINE_OK = frozenset("\n\t")


def text_problem(text: str, *, multiline: bool) -> str | None:
    """Why ``text`` may not be shown to others, or None.

    Single-line text refuses every control and format character (Cc, Cf: zero-width
    and bidi characters included), surrogates and line/paragraph separators.
    Multi-line text allows newline and tab and format characters other than the bidi
    controls (emoji sequences use ZWJ), and refuses the rest.
    """
    for i, ch in enumerate(text):
        cat = unicodedata.category(ch)
        if ch in BIDI_CONTROLS:
            return f"the bidirectional control U+{ord(ch):04X} at position {i} is not allowed"
        if multiline and (ch in _MULTILINE_OK or cat == "Cf"):
            continue
        if cat in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            return f"the control or format character U+{ord(ch):04X} at position {i} is not allowed"
    return None


def check_display_name(name: str, *, what: str = "name") -> str:
    """``name`` stripped, if it is fit to show others as a name; else :class:`InvalidInput`."""
    stripped = name.strip()
    if not stripped:
        raise InvalidInput(f"the {what} must not be empty")
    if len(stripped) > MAX_NAME_LENGTH:
        raise InvalidInput(f"the {what} must be at most {MAX_NAME_LENGTH} characters")
    problem = text_problem(stripped, multiline=False)
    if problem is not None:
        raise InvalidInput(f"the {what}: {problem}")
    return stripped


def name_key(name: str) -> str:
    """The form two names are compared in: NFKC, case-folded, inner whitespace collapsed.

    "amiller", "AMiller" and "amiller" in fullwidth letters are one name on a
    coordinator. (Cross-script look-alikes are not folded; the fingerprint shown next
    to every name is what tells parties apart.)"""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def printable(text: str) -> str:
    """``text`` safe for a terminal line: every character :func:`text_problem` would refuse
    in single-line text becomes a visible ``\\uXXXX`` escape."""
    out = []
    for ch in text:
        if ch in BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)
