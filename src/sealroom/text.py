"""Text that other parties see: display names and free text, checked where it enters.

A name or a reason typed by one party ends up on another party's terminal or page.
Control characters there can rewrite the screen (ANSI escapes, carriage returns),
and bidirectional overrides make ``"\\u202eevil"`` read as something else, so both
are refused where the text enters (keystore, API bodies, statement parsers), and
:func:`printable` escapes them on the way out for anything stored before that.
The refused characters are fixed code point ranges, so a statement valid on one
machine is valid on every other, and the API's JSON Schema states the same rule.
"""

from __future__ import annotations

import re
import unicodedata

from sealroom.errors import InvalidInput

__all__ = [
    "BIDI_CONTROLS",
    "LINES_FORBIDDEN",
    "MAX_NAME_LENGTH",
    "ONE_LINE_FORBIDDEN",
    "allowed_pattern",
    "check_display_name",
    "name_key",
    "printable",
    "text_problem",
]

MAX_NAME_LENGTH = 64
"""A display name's bound in characters: a name, not a description."""

# Fixed code point ranges, not Unicode categories: the rule must not change with the Unicode
# database of the machine that checks (a statement valid on one is valid on every other), and
# the API's JSON Schema states it as the same character class (:func:`allowed_pattern`).
_CONTROLS = ((0x00, 0x1F), (0x7F, 0x9F))
_BIDI = ((0x061C, 0x061C), (0x200E, 0x200F), (0x202A, 0x202E), (0x2066, 0x2069))
_INVISIBLE = (
    (0x00AD, 0x00AD),
    (0x180E, 0x180E),
    (0x200B, 0x200D),
    (0x2060, 0x2065),
    (0x206A, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
)
_SEPARATORS = ((0x2028, 0x2029),)
_SURROGATES = ((0xD800, 0xDFFF),)

ONE_LINE_FORBIDDEN = (*_CONTROLS, *_BIDI, *_INVISIBLE, *_SEPARATORS, *_SURROGATES)
"""Refused in names and titles: C0/C1 controls, bidi controls, invisible format characters,
line and paragraph separators, surrogates."""
LINES_FORBIDDEN = (
    (0x00, 0x08),
    (0x0B, 0x1F),
    (0x7F, 0x9F),
    *_BIDI,
    *_SEPARATORS,
    *_SURROGATES,
)
"""Refused in free text (reasons, descriptions): the same controls except newline and tab, bidi
controls, separators and surrogates; zero-width joiners (emoji sequences) are allowed."""

BIDI_CONTROLS = frozenset(chr(c) for lo, hi in _BIDI for c in range(lo, hi + 1))


def _char_class(ranges: tuple[tuple[int, int], ...]) -> re.Pattern[str]:
    """One regular-expression class of ``ranges``: the scan runs in C, not a Python loop per
    character and range (which made parsing a page of dataset statements cost ~25 ms)."""
    return re.compile("[" + "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in ranges) + "]")


_ONE_LINE_RE = _char_class(ONE_LINE_FORBIDDEN)
_LINES_RE = _char_class(LINES_FORBIDDEN)


def text_problem(text: str, *, multiline: bool) -> str | None:
    """Why ``text`` may not be shown to others, or None (see the two ``*_FORBIDDEN`` sets)."""
    found = (_LINES_RE if multiline else _ONE_LINE_RE).search(text)
    if found is None:
        return None
    i, ch = found.start(), found.group()
    kind = "bidirectional control" if ch in BIDI_CONTROLS else "control or format character"
    return f"the {kind} U+{ord(ch):04X} at position {i} is not allowed"


def allowed_pattern(*, multiline: bool, nonblank: bool = True) -> str:
    """The JSON Schema ``pattern`` (a regular expression) stating :func:`text_problem`'s rule,
    with at least one non-space character when ``nonblank``. Surrogates are left out: they
    cannot occur in the UTF-8 a server accepts (the strict JSON parser refuses them)."""
    ranges = [
        r for r in (LINES_FORBIDDEN if multiline else ONE_LINE_FORBIDDEN) if r not in _SURROGATES
    ]
    cls = "".join(f"\\u{lo:04x}" if lo == hi else f"\\u{lo:04x}-\\u{hi:04x}" for lo, hi in ranges)
    if not nonblank:
        return f"^[^{cls}]*$"
    return f"^[^{cls}]*[^{cls}\\s][^{cls}]*$"


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
    """``text`` safe for a terminal line: every character a single-line text may not hold
    becomes a visible ``\\uXXXX`` escape."""
    return _ONE_LINE_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
