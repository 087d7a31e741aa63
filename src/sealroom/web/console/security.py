"""Who may drive the console: the person who holds the launch link, from its own origin only.

The console signs with this party's keys, so anything that can make it act is as
good as the keys. It listens on loopback only, and on top of that every request
must pass, in order:

1. ``Host`` names loopback (``127.0.0.1``, ``localhost``, ``[::1]``): a page of
   another site that rebinds its DNS name to 127.0.0.1 still sends its own name.
2. ``Origin``, when sent, is this console's own origin; a POST must send one (a
   browser always does): no other site's page can post a form here.
3. A session cookie, made only by ``/launch?token=...`` with the random launch
   token ``sealroom ui`` prints; other local users (and other local programs
   without the link) get 403 everywhere.
4. Every POST carries the session's CSRF token (checked by the handler that reads
   the form, in constant time).

Every response gets a strict Content-Security-Policy (``default-src 'self'``),
no framing, no referrer to other sites and no caching.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sealroom.errors import AuthenticationFailed, BodyTooLarge, UnsupportedMediaType

__all__ = [
    "CSP",
    "LOOPBACK_NAMES",
    "MAX_FORM_BYTES",
    "ConsoleGuard",
    "Session",
    "Sessions",
    "parse_form",
]

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})
MAX_FORM_BYTES = 256 * 1024
MAX_SESSIONS = 64

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    # same-origin, not no-referrer: under no-referrer a browser sends "Origin: null" on posts.
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)


@dataclass(frozen=True, slots=True)
class Session:
    """One browser's session: the cookie value and the CSRF token its forms carry."""

    id: str
    csrf: str


class Sessions:
    """The launch token and the sessions it opened (in memory: a restart logs everyone out)."""

    __slots__ = ("_by_id", "_lock", "cookie", "launch_token")

    def __init__(self, launch_token: str | None = None) -> None:
        self.launch_token = launch_token or secrets.token_urlsafe(32)
        if len(self.launch_token) < 16:
            raise AuthenticationFailed("the console's launch token is too short to be secret")
        # Cookies are not separated by port: two consoles on one machine need two names.
        self.cookie = f"sealroom_console_{secrets.token_hex(4)}"
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()

    def launch(self, token: str) -> Session:
        """A new session for whoever presents the launch token (compared in constant time)."""
        if not hmac.compare_digest(token.encode(), self.launch_token.encode()):
            raise AuthenticationFailed("the launch token is not this console's")
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
        with self._lock:
            if len(self._by_id) >= MAX_SESSIONS:
                self._by_id.pop(next(iter(self._by_id)))
            self._by_id[session.id] = session
        return session

    def find(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        with self._lock:
            candidates = list(self._by_id.values())
        found = None
        for s in candidates:  # no early exit: the time taken says nothing about the cookie
            if hmac.compare_digest(s.id.encode(), cookie.encode()):
                found = s
        return found

    def check_csrf(self, session: Session, sent: str | None) -> None:
        if sent is None or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise AuthenticationFailed("the form's CSRF token is missing or not this session's")


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if ":" in host else host


def _refuse(status: int, why: str) -> PlainTextResponse:
    return PlainTextResponse(f"refused: {why}\n", status_code=status)


class ConsoleGuard:
    """ASGI middleware: the checks 1-3 above and the security headers on every response."""

    def __init__(self, app: ASGIApp, *, sessions: Sessions) -> None:
        self.app = app
        self.sessions = sessions

    def _refusal(self, scope: Scope) -> PlainTextResponse | None:
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if _host_name(host.lower()) not in LOOPBACK_NAMES:
            return _refuse(421, "this console answers to loopback host names only")
        origin = headers.get("origin")
        if origin is not None and origin != f"http://{host}":
            return _refuse(403, "requests from another origin are not accepted")
        if scope["method"] not in ("GET", "HEAD") and origin is None:
            return _refuse(403, "a form post must say its origin")
        if scope["path"] == "/launch":
            return None
        cookies = _cookies(headers.get("cookie", ""))
        if self.sessions.find(cookies.get(self.sessions.cookie)) is None:
            return _refuse(
                403, "no console session: open the link `sealroom ui` printed in your terminal"
            )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *[(k, v) for k, v in message.get("headers", []) if k != b"cache-control"],
                    *SECURITY_HEADERS,
                ]
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


def _cookies(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in raw.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            out.setdefault(name, value)
    return out


def parse_form(content_type: str | None, body: bytes) -> Mapping[str, str]:
    """An urlencoded form (the console's only kind), one value per name, bounded in size."""
    if len(body) > MAX_FORM_BYTES:
        raise BodyTooLarge(f"a console form is at most {MAX_FORM_BYTES} bytes")
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType("the console accepts urlencoded forms only")
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise UnsupportedMediaType("a console form must be UTF-8") from None
    return {k: v[-1] for k, v in parsed.items()}
