"""Redaction of identifying tokens in free text, before any text leaves the enclave.

Private helper of ``pattern-search``, which matches, groups and releases only
redacted text. Best effort: a detector finds what it was written for, and free
text holds identifiers no pattern knows (a person's name, a diagnosis, a host
with a one-word name); the computation says so in its output, with the classes
below. Each class is replaced by a fixed placeholder, applied in this order
(earlier classes win over later ones):

===========  ================  ====================================================================
class        placeholder       what, and by which detector
===========  ================  ====================================================================
key          ``<key>``         PEM blocks; credential formats (OpenAI/Anthropic ``sk-``, Stripe
                               ``sk_live_``..., GitHub ``ghp_``/``github_pat_``, GitLab ``glpat-``,
                               Slack ``xox?-``, AWS ``AKIA``/``ASIA``, Google ``AIza``, npm, PyPI);
                               JSON web tokens
url          ``<url>``         ``scheme://...`` (hosts, credentials, paths and query tokens in it)
email        ``<email>``       ``local@domain.tld``
uuid         ``<uuid>``        8-4-4-4-12 hex
secret       ``<secret>``      the value after a secret's name: ``password``/``token``/``api key``/
                               ``key``/``auth``... with ``=`` or ``:``, ``bearer X``, and in prose
                               ("the password is X", "password for the box was X", "my PIN is X";
                               quoted values whole), unless the value is a plain word ("the token
                               is expired")
token        ``<token>``       a run of 20+ base64/hex characters mixing letters and digits
card         ``<card>``        13-19 digits (single spaces or dashes between groups) that pass the
                               Luhn check (python-stdnum)
phone        ``<phone>``       phone numbers found by Google's libphonenumber (``phonenumbers``):
                               international (``+``) numbers that are possible, national numbers
                               valid in one of :data:`PHONE_REGIONS`
national-id  ``<national-id>``  national identity numbers in their usual written shape, checked by
                               python-stdnum: US SSN, Canadian SIN, UK NHS number, Spanish DNI/NIE,
                               Italian codice fiscale, French NIR, Brazilian CPF, Indian Aadhaar
                               and PAN; UK NINO by shape (no checksum exists)
account      ``<account>``     IBANs (python-stdnum)
ip           ``<ip>``          IPv4 (each octet <= 255, optional port) and IPv6 (validated)
path         ``<path>``        absolute (``/a/b``), home (``~/a``), relative (``./a``, ``../a``)
                               and Windows (``C:\\a``) paths of at least two components
hostname     ``<hostname>``    dotted names ending in a top-level domain (generic, internal such
                               as ``.internal``/``.local``/``.corp``, or a country code with three
                               labels or more), with a port and a path when they follow
id           ``<id>``          hex strings of 8+ characters holding a digit, ``0x`` numbers,
                               ``#123`` references, words that join letters and 4+ digits with
                               ``-`` or ``_`` (``cvm-48213``), any word holding a run of 6+ digits,
                               and digit groups joined by single spaces, dots or dashes holding 7+
                               digits in all (account numbers, dates, numbers no detector knew)
===========  ================  ====================================================================

A number in the shape of a card or a national id that fails its checksum is
still redacted (``<id>``): whether a value is redacted never depends on its
checksum, only which placeholder it gets.

Deliberately not redacted (tested): versions (``0.5.3``), short technical
tokens (``x509``, ``sha256``, ``tpm2``, ``rtmr3``), file names without a
directory (``docker-compose.yml``, ``setup.py``), word pairs with a slash
(``and/or``), dotted identifiers (``compute.instances.get``, ``user.id``), the
word "key" without a value, short numbers ("16 ms", "port 8443").
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import Literal, get_args

import phonenumbers
from stdnum import iban, luhn
from stdnum.br import cpf
from stdnum.ca import sin
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.gb import nhs
from stdnum.in_ import aadhaar, pan
from stdnum.it import codicefiscale
from stdnum.us import ssn

__all__ = ["CLASSES", "PHONE_REGIONS", "RedactionClass", "redact"]

RedactionClass = Literal[
    "key",
    "url",
    "email",
    "uuid",
    "secret",
    "token",
    "card",
    "phone",
    "national-id",
    "account",
    "ip",
    "path",
    "hostname",
    "id",
]
CLASSES: tuple[RedactionClass, ...] = get_args(RedactionClass)

PHONE_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "IN")
"""Regions whose national phone formats are looked for (international numbers need none)."""

Replacement = str | Callable[[re.Match[str]], str]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|$)", re.S)
_KNOWN_KEY = re.compile(
    r"\b(?:sk-(?:ant-)?[A-Za-z0-9_-]{16,}|[sr]k_(?:live|test)_[A-Za-z0-9]{10,}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}|(?:AKIA|ASIA)[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}"
    r"|npm_[A-Za-z0-9]{36}|pypi-[A-Za-z0-9_-]{50,}"
    r"|eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,})"
)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s<>\"')\]]+")
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_UUID = re.compile(
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
)

_PW_NAMES = r"password|passwd|passphrase|passcode|pwd|pw|pin(?:\s*code)?"
_SECRET_NAME = (
    rf"(?:{_PW_NAMES}|secret(?:[_ -]?key)?|client[_ -]?secret|token|api[_ -]?key"
    r"|access[_ -]?key|private[_ -]?key|credentials?)"
)
_VALUE = r"(?!<)(\"[^\"\n]{1,200}\"|'[^'\n]{1,200}'|[^\s,;\"']+)"
_SECRET_ASSIGN = re.compile(
    rf"(?i)\b((?:{_SECRET_NAME}|pass|auth|key)\s*[:=]\s*|bearer\s+){_VALUE}"
)
# What the secret is for, between its name and its value: "password for the staging box is".
_WHAT_FOR = r"(?:\s+(?:for|of|on|to)\s+(?:(?:the|my|our|a)\s+)?[\w.@-]+(?:\s+[\w.@-]+)?)?"
_SECRET_PROSE = re.compile(
    rf"(?i)\b((?:({_PW_NAMES})|{_SECRET_NAME}){_WHAT_FOR}\s+"
    rf"(?:is|was|are|were|(?:set|changed|reset)\s+to)\s*:?\s*){_VALUE}"
)
_PLAIN_WORDS = _words(
    """
    a an the this that it its not now no yes still also being been being too very just
    in on at of for to from by with as same different ok fine good bad
    wrong invalid incorrect correct valid expired missing empty required optional rotated revoked
    set unset reset changed stored saved cached hashed salted encrypted generated derived leaked
    compromised weak strong stale known unknown shared visible hidden present absent null none
    needed used accepted rejected refused ignored enabled disabled checked verified broken
    fixed out correctly properly securely there here what which where
    """
)
_HIGH_ENTROPY = re.compile(r"(?<![A-Za-z0-9+/_=-])[A-Za-z0-9+/_=-]{20,}(?![A-Za-z0-9+/_=-])")
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_IPV4 = re.compile(r"(?<![\w.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?::\d{1,5})?(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
_PATH = re.compile(
    r"(?<![\w/])(?:~|\.{1,2})?/[\w.@%+-]+(?:/[\w.@%+-]*)+"
    r"|(?<![\w/])(?:~|\.{1,2})/[\w.@%+-]+"
    r"|\b[A-Za-z]:\\[\w.\\ -]+"
)
_HOST = re.compile(
    r"(?<![\w.@/-])((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,24}))"
    r"(?::\d{1,5})?(?:/[^\s<>\"')\]]*)?(?![\w-])",
    re.I,
)
_ID = re.compile(
    r"\b0x[0-9a-fA-F]{4,}\b"
    r"|\b(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"
    r"|(?<![\w#])#\d+\b"
    r"|\b[A-Za-z]+(?:[-_][A-Za-z]*)*[-_](?=[A-Za-z0-9]*(?:\d[A-Za-z]*){4})[A-Za-z0-9]+\b"
)
_DIGIT_WORD = re.compile(r"\b(?=\w*?\d{6})\w+")
_DIGIT_GROUPS = re.compile(r"(?<![\w.-])\d+(?:[ .-]\d+)+(?![\w-])")
_MANY_DIGITS = re.compile(r"(?:\d\D{0,3}){6}\d")

# Top-level domains a dotted name may end in to be a host: generic and internal ones always;
# a country code (libphonenumber's region codes, less those that are common file
# extensions) with three labels or more, or alone after a name for the popular ones.
_GENERIC_TLDS = _words(
    """
    com net org edu gov mil int info biz io ai dev app cloud tech online site xyz tv me co
    internal local localdomain localhost lan home corp intranet test example invalid onion arpa
    """
)
_POPULAR_CC = _words("uk eu de fr nl ch at se dk fi es jp cn ru br au ca nz ie cz")
_FILE_EXTENSIONS = _words("py sh md rs pl cc so ps am ml mk ac hs cs ts js rb go gz xz")
_COUNTRY_TLDS = (
    frozenset(r.lower() for r in phonenumbers.SUPPORTED_REGIONS) | {"uk", "eu"}
) - _FILE_EXTENSIONS

# National ids in their usual written shape, with the python-stdnum check that names them
# (None: no checksum exists); a shape only one kind of id has is redacted whatever its check.
# Each starts a word with at most six letters before its first digit.
_NATIONAL_IDS: tuple[tuple[str, Callable[[str], bool] | None, bool], ...] = (
    (r"\d{3}-\d{2}-\d{4}\b", ssn.is_valid, False),
    (r"\d{3}\.\d{3}\.\d{3}-\d{2}\b", cpf.is_valid, False),
    (r"\d{3}[ -]\d{3}[ -]\d{4}\b", nhs.is_valid, False),
    (r"\d{3}[ -]\d{3}[ -]\d{3}\b", sin.is_valid, False),
    (r"\d{4} \d{4} \d{4}\b", aadhaar.is_valid, False),
    (r"[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}\b", nir.is_valid, False),
    (r"(?i:[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z])\b", codicefiscale.is_valid, True),
    (r"(?i:\d{8}-?[A-Z])\b", dni.is_valid, False),
    (r"(?i:[XYZ]-?\d{7}-?[A-Z])\b", nie.is_valid, False),
    (r"[A-Z]{5}\d{4}[A-Z]\b", pan.is_valid, True),
    (r"[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b", None, True),  # UK NINO
)
_NATIONAL_ID = re.compile(
    r"(?<!\w)(?=[A-Za-z]{0,6}[ -]?\d)(?:"
    + "|".join(f"(?P<n{i}>{p})" for i, (p, _, _) in enumerate(_NATIONAL_IDS))
    + ")"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")


_END = re.compile(r"[.,:!?]+$")


def _placed(placeholder: str, text: str) -> str:
    """``placeholder`` keeping the punctuation ``text`` ends with: a sentence's full stop
    after a path or a password is not part of it, and clauses are cut at it."""
    end = _END.search(text)
    return placeholder + (end.group(0) if end else "")


def _ending(placeholder: str) -> Callable[[re.Match[str]], str]:
    return lambda m: _placed(placeholder, m.group(0))


def _assigned(m: re.Match[str]) -> str:
    return m.group(1) + _placed("<secret>", m.group(2))


def _told(m: re.Match[str]) -> str:
    """A secret's value in prose: after a password's name anything but a plain word ("the
    password is wrong"); after another secret's name ("the token was refreshed") only a value
    that is not a word."""
    value = m.group(3)
    word = value.isalpha()
    if word and (m.group(2) is None or value.lower() in _PLAIN_WORDS):
        return m.group(0)
    return m.group(1) + _placed("<secret>", value)


def _entropy(m: re.Match[str]) -> str:
    text = m.group(0)
    letters = sum(c.isalpha() for c in text)
    digits = sum(c.isdigit() for c in text)
    if letters and digits >= 2 and not text.startswith("<"):
        return "<token>"
    return text


def _card(m: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", m.group(0))
    return "<card>" if 13 <= len(digits) <= 19 and luhn.is_valid(digits) else m.group(0)


def _spans_replaced(text: str, spans: Iterable[tuple[int, int]], placeholder: str) -> str:
    out: list[str] = []
    pos = 0
    for start, end in sorted(spans):
        if start < pos:  # overlaps a span already replaced
            if end > pos:
                pos = end
            continue
        out += [text[pos:start], placeholder]
        pos = end
    return "".join(out) + text[pos:]


def _phones(text: str) -> str:
    if not _MANY_DIGITS.search(text):
        return text  # no run of 7 digits: no phone number to look for
    spans = [
        (m.start, m.end)
        for m in phonenumbers.PhoneNumberMatcher(
            text, "ZZ", leniency=phonenumbers.Leniency.POSSIBLE
        )
    ]
    for region in PHONE_REGIONS:
        spans += [
            (m.start, m.end)
            for m in phonenumbers.PhoneNumberMatcher(
                text, region, leniency=phonenumbers.Leniency.VALID
            )
        ]
    return _spans_replaced(text, spans, "<phone>")


def _national_id(m: re.Match[str]) -> str:
    _, check, distinct = _NATIONAL_IDS[int(str(m.lastgroup)[1:])]
    if check is None or check(m.group(0)):
        return "<national-id>"
    return "<id>" if distinct else m.group(0)


def _iban(m: re.Match[str]) -> str:
    return "<account>" if iban.is_valid(m.group(0)) else m.group(0)


def _ip4(m: re.Match[str]) -> str:
    return "<ip>" if all(int(g) <= 255 for g in m.groups()) else m.group(0)


def _ip6(m: re.Match[str]) -> str:
    text = m.group(0)
    if text.count(":") < 2:
        return text
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return text
    return "<ip>"


def _host(m: re.Match[str]) -> str:
    labels = m.group(1).lower().split(".")
    tld = labels[-1]
    if (
        tld in _GENERIC_TLDS
        or (tld in _COUNTRY_TLDS and len(labels) >= 3)
        or (tld in _POPULAR_CC and len(labels) == 2)
    ):
        return _placed("<hostname>", m.group(0))
    return m.group(0)


def _digit_groups(m: re.Match[str]) -> str:
    return "<id>" if sum(c.isdigit() for c in m.group(0)) >= 7 else m.group(0)


def _sub(
    pattern: re.Pattern[str], replacement: Replacement, *, when: Callable[[str], bool] | None = None
) -> Callable[[str], str]:
    """A step; ``when`` is a cheap test that the pattern can match at all (a speed-up only)."""
    if when is None:
        return lambda text: pattern.sub(replacement, text)
    return lambda text: pattern.sub(replacement, text) if when(text) else text


def _names_a_secret(text: str) -> bool:
    low = text.lower()
    return any(
        w in low for w in ("pass", "pw", "pin", "secret", "token", "key", "cred", "auth", "bearer")
    )


def _has(pattern: str) -> Callable[[str], bool]:
    compiled = re.compile(pattern)
    return lambda text: compiled.search(text) is not None


_STEPS: tuple[Callable[[str], str], ...] = (
    _sub(_PEM, "<key>"),
    _sub(_KNOWN_KEY, "<key>"),
    _sub(_URL, _ending("<url>")),
    _sub(_EMAIL, "<email>"),
    _sub(_UUID, "<uuid>"),
    _sub(_SECRET_ASSIGN, _assigned, when=_names_a_secret),
    _sub(_SECRET_PROSE, _told, when=_names_a_secret),
    _sub(_HIGH_ENTROPY, _entropy),
    _sub(_CARD, _card),
    _phones,
    _sub(_NATIONAL_ID, _national_id),
    _sub(_IBAN, _iban),
    _sub(_IPV4, _ip4),
    _sub(_IPV6, _ip6),
    _sub(_PATH, _ending("<path>")),
    _sub(_HOST, _host, when=_has(r"\.[A-Za-z]")),
    _sub(_ID, "<id>"),
    _sub(_DIGIT_WORD, "<id>", when=_has(r"\d{6}")),
    _sub(_DIGIT_GROUPS, _digit_groups),
)


def redact(text: str) -> str:
    """``text`` with every token of :data:`CLASSES` replaced by its placeholder."""
    for step in _STEPS:
        text = step(text)
    return text
