"""The relay for protocols run between parties: sessions and opaque messages."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from starlette.concurrency import run_in_threadpool

from sealroom.api.auth import (
    ApiDep,
    Caller,
    SignedBody,
    SignedBytes,
    signed,
    signed_bytes,
    signed_json,
)
from sealroom.api.routes.common import BINARY, answer, json_body, raw_body
from sealroom.coordinator.relay import MAX_MESSAGE, MAX_WAIT
from sealroom.wire import CreateSessionBody, MessagePosted, SessionList, SessionView

__all__ = ["router"]

router = APIRouter(tags=["relay"])
Signed = Annotated[Caller, Depends(signed)]


@router.post(
    "/v1/sessions",
    status_code=201,
    response_model=SessionView,
    openapi_extra=json_body(CreateSessionBody),
    description="Signed by a participant; a reused session id is 409.",
)
def create_session(
    call: Annotated[SignedBody[CreateSessionBody], Depends(signed_json(CreateSessionBody))],
    api: ApiDep,
    response: Response,
) -> SessionView:
    stored = api.coordinator.relay.create_session(
        call.body, caller=call.caller.party, now=call.caller.now
    )
    return answer(stored, response)


@router.get("/v1/sessions", response_model=SessionList)
def list_sessions(caller: Signed, api: ApiDep) -> SessionList:
    return api.coordinator.relay.list_sessions(caller=caller.party, now=caller.now)


@router.get("/v1/sessions/{sid}", response_model=SessionView)
def get_session(sid: str, caller: Signed, api: ApiDep) -> SessionView:
    return api.coordinator.relay.get_session(sid, caller=caller.party, now=caller.now)


@router.post(
    "/v1/sessions/{sid}/messages",
    status_code=201,
    response_model=MessagePosted,
    openapi_extra=raw_body(
        f"One protocol message (at most {MAX_MESSAGE >> 20} MiB): an Ed25519 signature by the "
        "sender, then the message sealed to the recipient. Opaque to the coordinator."
    ),
)
def post_message(
    sid: str,
    call: Annotated[SignedBytes, Depends(signed_bytes("sealed message"))],
    api: ApiDep,
    to: Annotated[str, Query(description="The recipient's role.")],
) -> MessagePosted:
    return api.coordinator.relay.post_message(
        sid, to, call.body, caller=call.caller.party, now=call.caller.now
    )


@router.get(
    "/v1/sessions/{sid}/messages",
    response_class=Response,
    description="With `wait`, the request is held until a message for the caller arrives "
    f"(on any coordinator replica) or `wait` seconds (at most {MAX_WAIT:g}) pass: push "
    "delivery without a poll per message. Every wait is its own signed request.",
    responses={
        200: {
            "description": "The caller's next message after `after`, as posted; its index and "
            "sender role in the Sealroom-Index and Sealroom-Sender headers",
            "content": {"application/octet-stream": {"schema": BINARY}},
        },
        204: {"description": "No message (within `wait`)"},
    },
)
async def next_message(
    sid: str,
    caller: Signed,
    api: ApiDep,
    after: Annotated[int, Query(ge=-1, le=2**62)] = -1,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT, description="Seconds to hold the request (long poll).")
    ] = 0.0,
) -> Response:
    relay = api.coordinator.relay
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    with relay.watch(sid, caller=caller.party) as watch:
        while True:
            watch.clear()
            found = await run_in_threadpool(
                relay.next_message, sid, after=after, caller=caller.party, now=caller.now
            )
            remaining = deadline - loop.time()
            if found is not None or remaining <= 0:
                break
            await watch.wait_async(remaining)
    if found is None:
        return Response(status_code=204)
    index, sender, body = found
    return Response(
        content=body,
        media_type="application/octet-stream",
        headers={"sealroom-index": str(index), "sealroom-sender": sender},
    )
