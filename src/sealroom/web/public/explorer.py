"""The dataset explorer's form: query strings to the API's own :class:`SearchQuery`.

The explorer ranks with the coordinator's search (the code ``GET /v1/search``
calls), so a page and the API agree on every result and its order; this module
only turns a browser's form (dates, comma-separated keywords, empty fields) into
that query, with the API's bounds, and says clearly what is wrong with bad input.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sealroom.coordinator.datasets import MAX_PAGE
from sealroom.errors import InvalidInput, SealroomError
from sealroom.policy.rules import PolicyRules
from sealroom.statements import Envelope, Policy
from sealroom.storage.search import SearchQuery

__all__ = [
    "FORM_FIELDS",
    "PAGE_SIZE",
    "PolicySummary",
    "SearchForm",
    "day",
    "policy_summary",
]

PAGE_SIZE = 20
MAX_COUNT = 2**62 - 1
MAX_KEYWORDS = 32
MAX_Q = 500
_WORD = re.compile(r"\w")
FORM_FIELDS = ("q", "keywords", "owner", "min_rows", "max_rows", "from", "to", "similar_to")


def _int(form: Mapping[str, str], name: str, label: str) -> int | None:
    raw = form.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) > MAX_COUNT:
        raise InvalidInput(f"{label} must be a whole number of rows, got {raw[:24]!r}")
    return int(raw)


def _date(form: Mapping[str, str], name: str, label: str, *, end: bool) -> int | None:
    """A YYYY-MM-DD day (UTC) as unix time: its first second, or its last with ``end``."""
    raw = form.get(name, "").strip()
    if not raw:
        return None
    try:
        day_ = dt.date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{label} must be a date as YYYY-MM-DD, got {raw[:24]!r}") from None
    start = int(dt.datetime(day_.year, day_.month, day_.day, tzinfo=dt.UTC).timestamp())
    seconds = start + 86_399 if end else start
    if seconds < 0:
        raise InvalidInput(f"{label} must be after 1970-01-01")
    return seconds


def day(seconds: int) -> str:
    """Unix time as a UTC day, how the explorer shows time ranges."""
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True, slots=True)
class SearchForm:
    """The explorer's form as the reader filled it in, and the API query it stands for."""

    values: dict[str, str]
    keywords: tuple[str, ...]
    query: SearchQuery

    @classmethod
    def parse(cls, form: Mapping[str, str]) -> SearchForm:
        """Raise :class:`InvalidInput` naming the field for anything the API would refuse."""
        values = {k: form.get(k, "").strip() for k in FORM_FIELDS}
        q = values["q"] or None
        if q is not None and (len(q) > MAX_Q or not _WORD.search(q)):
            raise InvalidInput(
                f"the search text must be at most {MAX_Q} characters with a letter or digit"
            )
        keywords = tuple(
            dict.fromkeys(k.strip() for k in values["keywords"].split(",") if k.strip())
        )
        if len(keywords) > MAX_KEYWORDS:
            raise InvalidInput(f"at most {MAX_KEYWORDS} keywords, got {len(keywords)}")
        if any(len(k) > 200 for k in keywords):
            raise InvalidInput("a keyword is at most 200 characters")
        min_rows = _int(form, "min_rows", "at least (rows)")
        max_rows = _int(form, "max_rows", "at most (rows)")
        if min_rows is not None and max_rows is not None and min_rows > max_rows:
            raise InvalidInput("'at least' rows is more than 'at most' rows")
        time_from = _date(form, "from", "from", end=False)
        time_to = _date(form, "to", "to", end=True)
        if time_from is not None and time_to is not None and time_from > time_to:
            raise InvalidInput("the 'from' date is after the 'to' date")
        cursor = form.get("cursor", "").strip() or None
        if cursor is not None and len(cursor) > 1000:
            raise InvalidInput("this page link is not one the explorer made")
        query = SearchQuery(
            q=q,
            keywords=keywords,
            owner=values["owner"] or None,
            min_rows=min_rows,
            max_rows=max_rows,
            time_from=time_from,
            time_to=time_to,
            similar_to=values["similar_to"] or None,
            limit=PAGE_SIZE,
            cursor=cursor,
        )
        return cls(values=values, keywords=keywords, query=query)

    @property
    def filtered(self) -> bool:
        return any(self.values.values())

    def link(self, *, cursor: str | None = None, **changes: str) -> str:
        """This search's URL (with ``changes``), at ``cursor``'s page."""
        params = [(k, v) for k, v in {**self.values, **changes}.items() if v]
        if cursor is not None:
            params.append(("cursor", cursor))
        return "/datasets" + ("?" + urlencode(params) if params else "")


assert PAGE_SIZE <= MAX_PAGE


@dataclass(frozen=True, slots=True)
class PolicySummary:
    """A dataset policy in plain words, for its card (the signed policy is linked too)."""

    name: str
    lines: tuple[tuple[str, str], ...]


def _rule_names(rules: Sequence[Any]) -> str:
    return ", ".join(r.id for r in rules) or "none"


def policy_summary(envelope: Envelope) -> PolicySummary:
    """What the owner's signed policy allows, line by line; an unreadable policy says so."""
    policy = Policy.model_validate_json(envelope.payload, strict=True)
    try:
        rules = PolicyRules.parse(policy.rules)
    except SealroomError as exc:
        detail = exc.detail or exc.public_message
        return PolicySummary(policy.name, (("rules", f"not understood here: {detail}"),))
    lines: list[tuple[str, str]] = [
        ("computations allowed", _rule_names(rules.allow)),
        ("approved automatically", _rule_names(rules.auto_approve)),
        (
            "who may ask",
            "anyone"
            if rules.requesters == "any"
            else f"{len(rules.requesters)} listed parties only",
        ),
        ("released groups need", f"at least {rules.k} distinct entities"),
    ]
    if rules.dp is None:
        lines.append(("differential privacy", "no DP computation may run"))
    else:
        lines.append(
            (
                "DP budget",
                f"epsilon {rules.dp.epsilon_per_requester} per requester, "
                f"{rules.dp.epsilon_total} in total; delta {rules.dp.delta_per_requester} "
                f"per requester, {rules.dp.delta_total} in total",
            )
        )
    if rules.max_queries is not None:
        lines.append(
            (
                "query limit",
                f"{rules.max_queries.count} jobs per requester every "
                f"{rules.max_queries.period_seconds} s",
            )
        )
    if rules.never_output:
        lines.append(("never released", ", ".join(rules.never_output)))
    if rules.join_only:
        lines.append(("only joined on", ", ".join(rules.join_only)))
    if rules.max_output_rows is not None:
        lines.append(("output rows", f"at most {rules.max_output_rows}"))
    lines.append(("requester SQL", "not admitted" if rules.sql is None else "admitted under rules"))
    if rules.enclave is not None:
        lines.append(("enclave", "pinned by the owner (data is sealed only to that enclave)"))
    if rules.expires_at is not None:
        lines.append(("expires", day(rules.expires_at)))
    return PolicySummary(policy.name, tuple(lines))
