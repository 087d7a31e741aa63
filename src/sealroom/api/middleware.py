"""ASGI middleware: body limits enforced while the body is read, and a clean 500 for bugs."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sealroom.api.errors import error_response, handle_unexpected
from sealroom.coordinator.approvals import MAX_SEALED_SIZE
from sealroom.coordinator.relay import MAX_MESSAGE
from sealroom.errors import BodyTooLarge
from sealroom.wire import MAX_JSON_BODY
from sealroom.wire.uploads import MAX_PART_SIZE

__all__ = ["MAX_JSON_BODY", "MAX_SEALED_BODY", "BodyLimit", "limit_for"]

MAX_SEALED_BODY = MAX_SEALED_SIZE

_UPLOAD_PATH = re.compile(r"^/v1/requests/[^/]+/inputs/[^/]+$")
_RELAY_PATH = re.compile(r"^/v1/sessions/[^/]+/messages$")
_PART_PATH = re.compile(r"^/v1/uploads/[^/]+/parts/[^/]+$")


def limit_for(scope: Scope) -> int:
    """The body limit of the route ``scope`` addresses: sealed uploads and relayed messages
    may be large, everything else is a JSON body of at most 1 MiB."""
    if scope["method"] == "PUT" and _UPLOAD_PATH.match(scope["path"]):
        return MAX_SEALED_BODY
    if scope["method"] == "PUT" and _PART_PATH.match(scope["path"]):
        return MAX_PART_SIZE
    if scope["method"] == "POST" and _RELAY_PATH.match(scope["path"]):
        return MAX_MESSAGE
    return MAX_JSON_BODY


class BodyLimit:
    """Refuse bodies over the route's limit: by Content-Length up front, else while reading.

    Also the last line of defence for unexpected exceptions (a clean 500).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope)
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                response = error_response(
                    "body_too_large", f"the body exceeds the limit of {limit} bytes"
                )
                await response(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(f"the body exceeds the limit of {limit} bytes")
            return message

        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, tracking)
        except Exception as exc:
            # A bug: answer 500 "internal" (logged, no internals) and keep the server serving.
            if started:
                raise
            response = await handle_unexpected(Request(scope), exc)
            await response(scope, receive, send)
