"""Input owners' side of a request: signed decisions (by hand or by policy) and sealed uploads.

A request becomes ``approved`` once every input is approved and its bytes are
uploaded, all sealed to the same enclave.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, select, update

from sealroom.coordinator.admission import AdmissionPolicy
from sealroom.coordinator.jobs import check_admitted
from sealroom.coordinator.rooms import check_dual_approval, check_region
from sealroom.coordinator.state import (
    State,
    content_roots,
    request_row,
    request_view,
    rules,
    statement,
)
from sealroom.crypto.keys import PartyId
from sealroom.errors import Conflict, InvalidInput, NotFound, PolicyDenied, SignatureInvalid
from sealroom.policy.compose import decide_in_room
from sealroom.protocols.queries import is_protocol
from sealroom.statements import Approval, ComputationRequest, EnclaveEvidence, Envelope
from sealroom.storage.engine import write_transaction
from sealroom.storage.schema import datasets, request_blobs, request_inputs, requests
from sealroom.wire import RequestView

__all__ = ["MAX_SEALED_SIZE", "Approvals", "is_protocol_run", "maybe_ready"]

MAX_SEALED_SIZE = 64 << 20


class Approvals:
    __slots__ = ("_admission", "_state")

    def __init__(self, state: State, *, admission: AdmissionPolicy) -> None:
        self._state = state
        self._admission = admission

    def approve(self, request: str, env: Envelope, *, caller: PartyId, now: int) -> RequestView:
        """Record an owner's signed decision on one input; a rejection rejects the request."""
        self._state.sweep(now=now)
        with write_transaction(self._state.engine) as conn:
            row = request_row(conn, request, caller)
            inp = conn.execute(
                select(request_inputs).where(
                    request_inputs.c.request == request, request_inputs.c.owner == caller
                )
            ).all()
            if not inp:
                raise NotFound(f"no input of request {request} is owned by you")
            appr = env.open(Approval).statement
            if appr.approver != caller:
                raise SignatureInvalid("an approval must be sent by its approver")
            if appr.request != request:
                raise InvalidInput("the approval names another request")
            target = {str(i.dataset): i for i in inp}.get(appr.dataset)
            if target is None:
                raise NotFound(f"dataset {appr.dataset} is not an input of yours in this request")
            if target.decision != "pending":
                raise Conflict(f"input {appr.dataset} already has a decision ({target.decision})")
            if row.status != "pending":
                raise Conflict(f"the request is {row.status}; decisions are closed")
            if appr.mode == "policy":
                if is_protocol_run(row):
                    raise PolicyDenied(
                        "a protocol run is approved by hand: no enclave enforces a policy on "
                        "what it releases"
                    )
                self._check_automatic(conn, request, appr, now)
            if appr.decision == "approve":
                check_dual_approval(conn, request, caller, now)
            self._state.store(conn, env, now=now)
            conn.execute(
                update(request_inputs)
                .where(
                    request_inputs.c.request == request,
                    request_inputs.c.dataset == appr.dataset,
                    request_inputs.c.decision == "pending",
                )
                .values(
                    decision=appr.decision,
                    mode=appr.mode,
                    reason=appr.reason,
                    approval=env.digest,
                )
            )
            if appr.decision == "reject":
                why = f": {appr.reason}" if appr.reason else ""
                self._state.transition(
                    conn,
                    request,
                    ("pending",),
                    "rejected",
                    f"the owner of {appr.dataset} rejected it{why}",
                    now,
                )
            else:
                maybe_ready(self._state, conn, request, now)
            return request_view(conn, request)

    def _check_automatic(self, conn: Connection, request: str, appr: Approval, now: int) -> None:
        """An approval attributed to a policy must name the dataset's policy, which must agree."""
        ds_policy = conn.execute(
            select(datasets.c.policy).where(datasets.c.dataset == appr.dataset)
        ).scalar_one()
        if appr.policy != ds_policy:
            raise InvalidInput("an automatic approval must name the dataset's policy")
        if appr.decision != "approve":
            return
        req = ComputationRequest.parse_payload(
            statement(conn, request, ComputationRequest.TYPE)[0].payload
        )
        computation = self._state.computation(req)
        params = computation.parse_params(req.parameters)
        roots = content_roots(conn, req.inputs)
        decision, _ = decide_in_room(
            rules(conn, ds_policy),
            rules(conn, req.room_policy),
            computation=computation,
            request=computation.request_shape(
                params, partners=[roots[d] for d in req.inputs if d != appr.dataset]
            ),
            requester=req.requester,
            now=now,
            cost=computation.cost(params),
        )
        if not decision.automatic:
            raise PolicyDenied(
                "the dataset's policy (with the room policy, if any) does not "
                f"approve this automatically: {decision.reason}"
            )

    def upload_input(
        self,
        request: str,
        dataset: str,
        sealed: bytes,
        *,
        enclave: str | None,
        caller: PartyId,
        now: int,
    ) -> RequestView:
        """Store an approved input's bytes, sealed to ``enclave`` (an evidence digest)."""
        if not sealed:
            raise InvalidInput("the sealed body is empty")
        if len(sealed) > MAX_SEALED_SIZE:
            raise InvalidInput("the sealed body is too large")
        if enclave is None:
            raise InvalidInput("header Sealroom-Enclave (the enclave evidence digest) is required")
        self._state.sweep(now=now)
        with write_transaction(self._state.engine) as conn:
            row = request_row(conn, request, caller)
            inp = conn.execute(
                select(request_inputs).where(
                    request_inputs.c.request == request,
                    request_inputs.c.dataset == dataset,
                    request_inputs.c.owner == caller,
                )
            ).first()
            if inp is None:
                raise NotFound(f"dataset {dataset} is not an input of yours in this request")
            if is_protocol_run(row):
                raise Conflict("a protocol run takes no sealed upload: the parties run it")
            if row.status != "pending":
                raise Conflict(f"the request is {row.status}; uploads are closed")
            if inp.decision != "approve":
                raise Conflict("approve the input before uploading its sealed data")
            if inp.sealed_size is not None:
                raise Conflict("this input has already been uploaded")
            check_admitted(conn, enclave, self._admission, now=now)
            check_region(conn, request, statement(conn, enclave, EnclaveEvidence.TYPE)[0])
            other = conn.execute(
                select(request_inputs.c.enclave).where(
                    request_inputs.c.request == request,
                    request_inputs.c.enclave.is_not(None),
                    request_inputs.c.enclave != enclave,
                )
            ).first()
            if other is not None:
                raise Conflict(
                    f"another input is sealed to enclave {other[0]}; seal to the same enclave"
                )
            conn.execute(
                request_blobs.insert().values(request=request, dataset=dataset, sealed=sealed)
            )
            conn.execute(
                update(request_inputs)
                .where(request_inputs.c.request == request, request_inputs.c.dataset == dataset)
                .values(sealed_size=len(sealed), enclave=enclave)
            )
            maybe_ready(self._state, conn, request, now)
            return request_view(conn, request)


def is_protocol_run(row: Row[Any]) -> bool:
    """Whether a ``requests`` row is a no-trust protocol run (no enclave, no uploads)."""
    return is_protocol(str(row.computation_id))


def maybe_ready(state: State, conn: Connection, request: str, now: int) -> None:
    """``approved`` once every input is approved and sealed, all to one enclave (a protocol
    run: once every input is approved; its parties then start it over the relay)."""
    rows = conn.execute(
        select(
            request_inputs.c.decision, request_inputs.c.sealed_size, request_inputs.c.enclave
        ).where(request_inputs.c.request == request)
    ).all()
    computation = conn.execute(
        select(requests.c.computation_id).where(requests.c.request == request)
    ).scalar_one()
    if is_protocol(str(computation)):
        if all(r.decision == "approve" for r in rows):
            state.transition(
                conn,
                request,
                ("pending",),
                "approved",
                "every input is approved; the parties may start the protocol",
                now,
            )
        return
    ready = all(r.decision == "approve" and r.sealed_size is not None for r in rows)
    if ready and len({r.enclave for r in rows}) == 1:
        state.transition(
            conn,
            request,
            ("pending",),
            "approved",
            "every input is approved and sealed to the enclave",
            now,
        )
