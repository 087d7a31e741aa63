"""Redaction of identifying tokens in free text, before any text leaves the enclave.

Private helper of ``pattern-search``. Each class is replaced by a fixed
placeholder, applied in this order (earlier classes win over later ones):

=========  ===========  ==================================================================
class      placeholder  what
=========  ===========  ==================================================================
key        ``<key>``    PEM blocks; well-known credential formats (``sk-``, ``ghp_``,
                        ``xoxb-``, ``AKIA``..., ``AIza``...); JSON web tokens
url        ``<url>``    ``scheme://...`` (hosts, paths and query tokens inside it)
email      ``<email>``  ``local@domain.tld``
uuid       ``<uuid>``   8-4-4-4-12 hex
token      ``<token>``  the value after ``password``/``secret``/``token``/``api key``/
                        ``key``/``auth`` followed by ``=`` or ``:``; and any run of 20+
                        base64/hex characters mixing letters and digits
ip         ``<ip>``     IPv4 (each octet <= 255, optional port) and IPv6 (validated)
path       ``<path>``   absolute (``/a/b``), home (``~/a``), relative (``./a``, ``../a``)
                        and Windows (``C:\\a``) paths of at least two components
id         ``<id>``     hex strings of 8+ characters holding a digit, ``0x`` numbers,
                        digit runs of 6+, ``#123`` references, and words that join
                        letters and 4+ digits with ``-`` or ``_`` (``cvm-48213``)
=========  ===========  ==================================================================

Deliberately not redacted (tested): versions (``0.5.3``), short technical
tokens (``x509``, ``sha256``, ``tpm2``, ``rtmr3``), file names without a
directory (``docker-compose.yml``), word pairs with a slash (``and/or``),
dotted identifiers (``compute.instances.get``), the word "key" without a value.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Literal

__all__ = ["CLASSES", "RedactionClass", "redact"]

RedactionClass = Literal["key", "url", "email", "uuid", "token", "ip", "path", "id"]
CLASSES: tuple[RedactionClass, ...] = ("key", "url", "email", "uuid", "token", "ip", "path", "id")

_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|$)", re.S)
_KNOWN_KEY = re.compile(
    r"\b(?:sk-[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}|eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"
    r"\.[A-Za-z0-9_-]{5,})"
)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s<>\"')\]]+")
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_UUID = re.compile(
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
)
_SECRET_ASSIGN = re.compile(
    r"(?i)\b((?:password|passwd|pwd|secret|token|api[_ -]?key|access[_ -]?key|private[_ -]?key"
    r"|auth|bearer|key)\s*[:=]\s*|bearer\s+)(?!<)([^\s,;]+)"
)
_HIGH_ENTROPY = re.compile(r"(?<![A-Za-z0-9+/_=-])[A-Za-z0-9+/_=-]{20,}(?![A-Za-z0-9+/_=-])")
_IPV4 = re.compile(r"(?<![\w.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?::\d{1,5})?(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
_PATH = re.compile(
    r"(?<![\w/])(?:~|\.{1,2})?/[\w.@%+-]+(?:/[\w.@%+-]*)+"
    r"|(?<![\w/])(?:~|\.{1,2})/[\w.@%+-]+"
    r"|\b[A-Za-z]:\\[\w.\\ -]+"
)
_ID = re.compile(
    r"\b0x[0-9a-fA-F]{4,}\b"
    r"|\b(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"
    r"|\b\d{6,}\b"
    r"|(?<![\w#])#\d+\b"
    r"|\b[A-Za-z]+(?:[-_][A-Za-z]*)*[-_](?=[A-Za-z0-9]*(?:\d[A-Za-z]*){4})[A-Za-z0-9]+\b"
)


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


def _entropy(m: re.Match[str]) -> str:
    text = m.group(0)
    letters = sum(c.isalpha() for c in text)
    digits = sum(c.isdigit() for c in text)
    if letters and digits >= 2 and not text.startswith("<"):
        return "<token>"
    return text


_STEPS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (_PEM, "<key>"),
    (_KNOWN_KEY, "<key>"),
    (_URL, "<url>"),
    (_EMAIL, "<email>"),
    (_UUID, "<uuid>"),
    (_SECRET_ASSIGN, lambda m: m.group(1) + "<token>"),
    (_HIGH_ENTROPY, _entropy),
    (_IPV4, _ip4),
    (_IPV6, _ip6),
    (_PATH, "<path>"),
    (_ID, "<id>"),
)


def redact(text: str) -> str:
    """``text`` with every token of :data:`CLASSES` replaced by its placeholder."""
    for pattern, replacement in _STEPS:
        text = pattern.sub(replacement, text)
    return text
