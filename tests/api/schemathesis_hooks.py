"""Schemathesis hooks for test_api_schemathesis.py, loaded by the schemathesis CLI it runs.

Two things the OpenAPI document cannot say, and this module tells the generator:

- **Signing** (``SEALROOM_FUZZ_SIGNED=1``): every generated request is signed with the
  registered fuzzer's key over the exact bytes sent (a ``requests`` auth, applied after
  the body is serialised). Schemathesis removes it itself when it tests missing or
  invalid credentials (the ``ignored_auth`` and negative cases), so those stay unsigned.
- **Constraints between values** in *positive* cases only (negative cases are left as
  generated): a proof's index below its tree size and sizes within the log
  (``SEALROOM_FUZZ_LOG_SIZE``), two distinct datasets for an overlap, distinct session
  roles and parties with the caller among them, distinct job recipients, no search
  cursor (it is opaque: only a previous page's ``next_cursor`` is one), integers written
  as integers (JSON Schema counts ``815.0`` as one; bodies here refuse every float),
  statements that are genuinely signed (a signature is the one constraint no schema can
  state), and X-Wing public keys that are keys (an ML-KEM-768 key's 12-bit coefficients
  must be below q = 3329, which a pattern cannot say; random bytes almost never are).
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

import requests
import schemathesis
from schemathesis import Case, GenerationMode, HookContext

from sealroom.computations import default_registry
from sealroom.computations.templates import RoomSettings, draft_room
from sealroom.crypto.keys import b64encode, xwing_private_key
from sealroom.crypto.request_signing import sign_request
from sealroom.statements import (
    Accept,
    ComputationRef,
    InputRef,
    Liveness,
    Offer,
    OrgMember,
    Policy,
    Room,
    RoomConsent,
    RoomInvitation,
    RunApproval,
    sign_statement,
)
from sealroom.statements import market_models as mm
from tests.api.api_helpers import PAIR_COUNT, ROW_COUNT
from tests.helpers import attestation, identity
from tests.helpers import request as make_request

FUZZER = identity("schemathesis-fuzzer")
"""Registered by the test before the run (tests.helpers identities are deterministic)."""

_KEM_KEY = b64encode(xwing_private_key(b"\x01" * 32)[1])
"""A valid X-Wing public key, put wherever a positive case has a ``kem_key``."""

_LOG_SIZE = int(os.environ.get("SEALROOM_FUZZ_LOG_SIZE", "1"))


class _SignEachRequest(requests.auth.AuthBase):
    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        assert r.method is not None
        r.headers.update(
            sign_request(
                FUZZER, method=r.method, target=r.path_url, body=body, now=int(time.time())
            )
        )
        return r


if os.environ.get("SEALROOM_FUZZ_SIGNED") == "1":
    schemathesis.auth.set_from_requests(_SignEachRequest())  # type: ignore[attr-defined]


def _digest(seed: object) -> str:
    return "sha256:" + hashlib.sha256(repr(seed).encode()).hexdigest()


def _fresh(case: Case) -> int:
    """A per-case number, so each generated statement is new (created, not found)."""
    return int.from_bytes(hashlib.sha256(repr(case.body).encode()).digest()[:6], "big")


def _signed(statement: Any) -> dict[str, Any]:
    return sign_statement(statement, FUZZER).envelope.to_dict()


def _request(inputs: tuple[str, ...], computation: ComputationRef, n: int) -> dict[str, Any]:
    now = int(time.time())
    req = make_request(
        FUZZER,
        inputs,
        computation=computation,
        nonce=b64encode(n.to_bytes(16, "big")),
        created_at=now,
        expires_at=now + 3600,
    )
    return _signed(req)


def _now() -> int:
    return int(time.time())


def _query(case: Case) -> dict[str, Any]:
    return case.query if isinstance(case.query, dict) else {}


def _within_log(case: Case) -> None:
    q = _query(case)
    if case.path == "/v1/log/inclusion" and {"index", "size"} <= q.keys():
        size = 1 + (int(q["size"]) - 1) % _LOG_SIZE
        q.update(size=size, index=int(q["index"]) % size)
    if case.path == "/v1/log/consistency" and {"first", "second"} <= q.keys():
        second = 1 + (int(q["second"]) - 1) % _LOG_SIZE
        q.update(second=second, first=1 + (int(q["first"]) - 1) % second)


def _integers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integers(v) for v in value]
    return value


def _kem_keys(value: Any) -> None:
    if isinstance(value, dict):
        if isinstance(value.get("kem_key"), str):
            value["kem_key"] = _KEM_KEY
        for item in value.values():
            _kem_keys(item)
    elif isinstance(value, list):
        for item in value:
            _kem_keys(item)


def _market_model(n: int) -> Any:
    ref = ComputationRef(id="train-model", version="2.1.0", code_digest=_digest((n, "code")))
    root = b64encode(hashlib.sha256(repr(n).encode()).digest())
    return mm.Model(
        trainer=FUZZER.party_id,
        name=f"m{n}",
        description="",
        family="binomial",
        target="y",
        features=("x",),
        metrics={},
        provenance=mm.ModelProvenance(
            kind="enclave-job",
            request=_digest((n, "request")),
            trained_model=None,
            receipts=(_digest((n, "receipt")),),
            inputs=(InputRef(dataset=_digest((n, "input")), commitment_root=root),),
            computation=ref,
        ),
        artifact=mm.ArtifactRef(dataset=_digest((n, "artifact")), commitment_root=root),
        price=1,
        created_at=int(time.time()),
    )


# Positive cases of the marketplace's bodies: genuinely signed statements by the fuzzer that
# name things that do not exist (so a 404), or (resolutions) a key that is not the arbiter's.
_MARKET: dict[str, tuple[str, Any]] = {
    "/v1/models": ("model", _market_model),
    "/v1/evaluations": (
        "evaluation",
        lambda n: mm.Evaluation(
            evaluator=FUZZER.party_id,
            model=_digest((n, "m")),
            use=_digest((n, "u")),
            score="0.5",
            summary="",
            examples=(),
            created_at=int(time.time()),
        ),
    ),
    "/v1/reviews": (
        "review",
        lambda n: mm.Review(
            reviewer=FUZZER.party_id,
            evaluation=_digest((n, "e")),
            use=_digest((n, "u")),
            rating=3,
            comment="",
            created_at=int(time.time()),
        ),
    ),
    "/v1/portfolios": (
        "portfolio",
        lambda n: mm.Portfolio(
            curator=FUZZER.party_id,
            name=f"p{n}",
            description="",
            fee=0,
            items=(mm.PortfolioItem(dataset=_digest((n, "d")), weight=10_000),),
            created_at=int(time.time()),
        ),
    ),
    "/v1/disputes": (
        "dispute",
        lambda n: mm.Dispute(
            claimant=FUZZER.party_id,
            respondent=identity("respondent").party_id,
            subject="charge",
            request=_digest((n, "r")),
            receipts=(_digest((n, "rc")),),
            amount=1,
            reason="",
            created_at=int(time.time()),
        ),
    ),
    "/v1/disputes/{dispute}/resolution": (
        "resolution",
        lambda n: mm.Resolution(
            arbiter=FUZZER.party_id,
            dispute=_digest((n, "dispute")),
            outcome="dismissed",
            refund=0,
            reason="",
            created_at=int(time.time()),
        ),
    ),
}


def _bodies(case: Case) -> None:
    body = case.body
    if not isinstance(body, dict):
        return
    n = _fresh(case)
    path = case.path
    if path == "/v1/policies" and "policy" in body:
        rules = {"allow": [{"id": "row-count"}]}
        body["policy"] = _signed(
            Policy(owner=FUZZER.party_id, name=f"p{n}", rules=rules, created_at=int(time.time()))
        )
    elif path == "/v1/datasets" and "attestation" in body:
        body["attestation"] = _signed(attestation(FUZZER, title=f"fuzzed {n}"))
        body["policy"] = None
    elif path == "/v1/requests" and "request" in body:
        body["request"] = _request((_digest(n),), ROW_COUNT.ref(), n)
    elif path == "/v1/compute/keyword-overlap" and {"dataset_a", "dataset_b"} <= body.keys():
        if body.get("request") is not None:
            body["dataset_a"], body["dataset_b"] = _digest((n, "a")), _digest((n, "b"))
            inputs = (body["dataset_a"], body["dataset_b"])
            body["request"] = _request(inputs, PAIR_COUNT.ref(), n)
        elif body["dataset_a"] == body["dataset_b"]:
            body["dataset_b"] = f"{body['dataset_b']}-other"
    elif path == "/v1/sessions" and isinstance(body.get("participants"), list):
        for i, member in enumerate(body["participants"]):
            if isinstance(member, dict):
                member["role"] = f"r{i}"
                member["party"] = FUZZER.party_id if i == 0 else f"{member.get('party')}-{i}"
    elif path == "/v1/credits/offers" and "offer" in body:
        now = int(time.time())
        body["offer"] = _signed(
            Offer(
                owner=FUZZER.party_id,
                dataset=_digest((n, "offered")),
                requester=None,
                computation=ROW_COUNT.id,
                price=n % 1000,
                usage_bonus=0,
                nonce=b64encode(n.to_bytes(16, "big")),
                created_at=now,
                expires_at=now + 3600,
            )
        )
    elif path == "/v1/credits/accepts" and "accept" in body:
        body["accept"] = _signed(
            Accept(offer=_digest((n, "offer")), requester=FUZZER.party_id, created_at=_now())
        )
    elif path == "/v1/credits/liveness" and "liveness" in body:
        # The challenge is the ledger's signature, which only the coordinator can make: a
        # guessed one is refused as failed authentication (401), never as bad input.
        body["liveness"] = _signed(
            Liveness(
                owner=FUZZER.party_id,
                datasets=(_digest((n, "live")),),
                period=_now() // 86_400,
                challenge=b64encode(bytes(64)),
                created_at=_now(),
            )
        )
    elif path == "/v1/credits/transfers" and body.get("to") == FUZZER.party_id:
        body["to"] = identity("schemathesis-payee").party_id  # paying oneself is bad input
    elif path == "/v1/credits/quote" and "computation" in body:
        body["computation"] = ROW_COUNT.id
        body["parameters"] = {}
        body["inputs"] = [_digest((n, "quoted"))]
        body["recipients"] = [FUZZER.party_id]
        body["terms"] = [_digest((n, t)) for t in dict.fromkeys(body.get("terms") or [])][:1]
    elif path in _MARKET and _MARKET[path][0] in body:
        field, build = _MARKET[path]
        body[field] = _signed(build(n))
        if path == "/v1/models":
            body["evidence"] = []
        if path == "/v1/disputes/{dispute}/resolution" and isinstance(case.path_parameters, dict):
            case.path_parameters["dispute"] = _digest((n, "dispute"))
    elif path == "/v1/jobs/{rid}/complete" and isinstance(body.get("outputs"), list):
        for i, output in enumerate(body["outputs"]):
            if isinstance(output, dict):
                output["recipient"] = f"{output.get('recipient')}-{i}"
    elif path.startswith(("/v1/rooms", "/v1/orgs")):
        _room_bodies(case, body, n)


def _room_bodies(case: Case, body: dict[str, Any], n: int) -> None:
    """Rooms: genuinely signed statements, naming the (nonexistent) room of the path."""
    now = int(time.time())
    params = case.path_parameters if isinstance(case.path_parameters, dict) else {}
    if "room" in params:
        params["room"] = _digest(("room", n))
    if "rid" in params and case.path.startswith("/v1/rooms/"):
        params["rid"] = _digest(("run", n))
    room = params.get("room", "")
    path = case.path
    if path == "/v1/rooms" and {"room", "policy"} <= body.keys():
        settings = RoomSettings(
            name=f"room {n}", purpose="fuzzing", template="psi-overlap", k=10, expires_at=now + 3600
        )
        rules, make_snapshot = draft_room(
            settings, host=FUZZER.party_id, registry=default_registry(), now=now
        )
        # The fuzzed coordinator runs the test registry: the room's one query is row-count.
        row_count = ROW_COUNT.ref()
        rules["allow"] = [{"id": row_count.id, "min_version": row_count.version, "dp": "required"}]
        rules["auto_approve"] = [{"id": row_count.id, "min_version": row_count.version}]
        policy = sign_statement(
            Policy(owner=FUZZER.party_id, name=f"room {n}", rules=rules, created_at=now), FUZZER
        )
        snapshot = make_snapshot(policy.digest).model_copy(update={"allowed_queries": (row_count,)})
        body["policy"] = policy.envelope.to_dict()
        body["room"] = _signed(
            Room(
                host=FUZZER.party_id,
                snapshot=snapshot,
                snapshot_digest=snapshot.digest(),
                nonce=b64encode(n.to_bytes(16, "big")),
                created_at=now,
            )
        )
    elif path == "/v1/rooms/{room}/invitations" and "invitation" in body:
        invitee = identity("room-invitee").party_id
        body["invitation"] = _signed(
            RoomInvitation(room=room, host=FUZZER.party_id, invitee=invitee, created_at=now)
        )
    elif path == "/v1/rooms/{room}/consents" and "consent" in body:
        body["consent"] = _signed(
            RoomConsent(
                room=room,
                party=FUZZER.party_id,
                snapshot=_digest(n),
                decision="consent",
                reason="",
                created_at=now,
            )
        )
    elif path == "/v1/rooms/{room}/join" and "precheck" in body:
        body["precheck"] = {"ok": True, "entities": 10}
    elif path == "/v1/rooms/{room}/runs/{rid}/approvals" and "approval" in body:
        body["approval"] = _signed(
            RunApproval(
                room=room,
                request=params["rid"],
                org=identity("room-org").party_id,
                approver=FUZZER.party_id,
                decision="approve",
                reason="",
                created_at=now,
            )
        )
    elif path == "/v1/orgs/members" and "member" in body:
        body["member"] = _signed(
            OrgMember(
                org=FUZZER.party_id,
                member=identity(f"org-member-{n}").party_id,
                role="approver",
                active=True,
                created_at=now,
            )
        )


@schemathesis.hook
def map_case(context: HookContext, case: Case) -> Case:
    if case.meta is None or case.meta.generation.mode != GenerationMode.POSITIVE:
        return case
    _within_log(case)
    if case.path == "/v1/search":
        _query(case).pop("cursor", None)
    case.body = _integers(case.body)
    _kem_keys(case.body)
    _bodies(case)
    return case
