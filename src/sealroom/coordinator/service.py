"""The coordinator's services: registry, discovery, request workflow, enclaves and jobs.

Every method takes the caller (a verified party id, or none for public reads)
and ``now`` explicitly. Every state change is one database transaction that
also appends the statements it accepted to the transparency log and signs a
new checkpoint, so state and log never disagree.

The coordinator checks what it can (signatures, signers, digests, policies,
the status machine), but it is not trusted: clients check again.

Authorization: a party sees a request only if it is its requester, an input
owner or a recipient (or the enclave that claimed it); otherwise the request
does not exist for it (:class:`NotFound`, never a 403 that leaks existence).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, exists, func, or_, select, update

from sealroom import __version__
from sealroom.computations.base import Computation
from sealroom.computations.registry import Registry
from sealroom.coordinator.log import append_statement, load_log_signer, reader_log
from sealroom.crypto.keys import PartyId, PublicIdentity, b64decode_strict, b64encode
from sealroom.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidInput,
    NotFound,
    PolicyDenied,
    SignatureInvalid,
)
from sealroom.policy.compose import decide_in_room
from sealroom.policy.rules import Decision, PolicyRules
from sealroom.statements import (
    Approval,
    ComputationRequest,
    DatasetAttestation,
    EnclaveEvidence,
    Envelope,
    Policy,
    Receipt,
)
from sealroom.storage.datasets import insert_datasets
from sealroom.storage.discovery_index import DiscoveryIndex
from sealroom.storage.engine import read_transaction, write_transaction
from sealroom.storage.schema import (
    datasets,
    enclaves,
    jobs,
    nonces,
    parties,
    policies,
    request_blobs,
    request_history,
    request_inputs,
    request_recipients,
    requests,
    results,
    statements,
)
from sealroom.storage.search import SearchQuery, search
from sealroom.transparency.checkpoint import NoteSigner
from sealroom.verification.assemble import assemble_bundle

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_REQUEST_TTL",
    "KEYWORD_OVERLAP_COMPUTATION",
    "Coordinator",
    "DbNonceStore",
]

KEYWORD_OVERLAP_COMPUTATION = "topic-overlap"
DEFAULT_LEASE_SECONDS = 300
DEFAULT_REQUEST_TTL = 7 * 86_400
MAX_SEALED_SIZE = 64 << 20
_OPEN = ("pending", "approved")
_ENDED = ("completed", "failed", "rejected", "withdrawn", "expired")
_NAME_MAX = 200


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _envelope(data: object, what: str) -> Envelope:
    if not isinstance(data, dict):
        raise InvalidInput(f"{what} must be an envelope object")
    return Envelope.from_dict(data)


def _reason(data: object, what: str = "reason") -> str:
    if not isinstance(data, str) or not 0 < len(data.strip()) <= 2000:
        raise InvalidInput(f"{what} must be a non-empty string of at most 2000 characters")
    return data.strip()


class DbNonceStore:
    """Request nonces in the database: accepted once per party, purged after they expire."""

    __slots__ = ("_engine",)

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def remember(self, party: PartyId, nonce: str, *, expires_at: int, now: int) -> None:
        with write_transaction(self._engine) as conn:
            conn.execute(delete(nonces).where(nonces.c.expires_at < now))
            seen = conn.execute(
                select(nonces.c.party).where(nonces.c.party == party, nonces.c.nonce == nonce)
            ).first()
            if seen is not None:
                raise AuthenticationFailed("replayed request: this nonce was already used")
            conn.execute(nonces.insert().values(party=party, nonce=nonce, expires_at=expires_at))


@dataclass(frozen=True, slots=True)
class Stored:
    """A service result and whether it created something (201) or found it (200)."""

    view: dict[str, Any]
    created: bool


class Coordinator:
    """The coordinator's state and rules over one database (see the module docstring)."""

    def __init__(
        self,
        *,
        engine: Engine,
        registry: Registry,
        log_origin: str = "sealroom.local/log",
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self._engine = engine
        self._registry = registry
        self._signer: NoteSigner = load_log_signer(engine, log_origin)
        self._lease = lease_seconds
        self.nonces = DbNonceStore(engine)
        # Discovery's in-process index: a cache checked against the database on every query.
        self._discovery = DiscoveryIndex()

    # --- service ------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def registry(self) -> Registry:
        return self._registry

    def health(self) -> dict[str, Any]:
        with read_transaction(self._engine) as conn:
            conn.execute(select(func.count()).select_from(parties)).scalar_one()
        return {"status": "ok", "version": __version__}

    def computations(self) -> dict[str, Any]:
        return {"computations": [c.describe() for c in self._registry]}

    # --- parties ------------------------------------------------------------------------

    def public_identity(self, party: str) -> PublicIdentity:
        """The registered keys of ``party`` (for request-signature checks)."""
        with read_transaction(self._engine) as conn:
            row = conn.execute(
                select(parties.c.signing_key, parties.c.sealing_key).where(parties.c.party == party)
            ).first()
        if row is None:
            raise AuthenticationFailed("unknown party: register with POST /v1/parties first")
        return PublicIdentity(signing_key=bytes(row[0]), sealing_key=bytes(row[1]))

    @staticmethod
    def party_keys(body: dict[str, Any]) -> PublicIdentity:
        """The keys a registration body names (the request must be signed by them)."""
        try:
            return PublicIdentity(
                signing_key=b64decode_strict(
                    _str(body.get("signing_key"), "signing_key"), what="signing_key", size=32
                ),
                sealing_key=b64decode_strict(
                    _str(body.get("sealing_key"), "sealing_key"), what="sealing_key", size=32
                ),
            )
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"keys: {exc}") from None

    def register_party(self, body: dict[str, Any], *, caller: PartyId, now: int) -> Stored:
        _only(body, {"name", "signing_key", "sealing_key"}, "party registration")
        keys = self.party_keys(body)
        name = _str(body.get("name"), "name").strip()
        if not 0 < len(name) <= _NAME_MAX:
            raise InvalidInput(f"name must be 1..{_NAME_MAX} characters")
        if keys.party_id != caller:
            raise AuthenticationFailed("a registration must be signed by the key it registers")
        with write_transaction(self._engine) as conn:
            return self._register_party(conn, keys, name=name, kind="party", now=now)

    def _register_party(
        self, conn: Connection, keys: PublicIdentity, *, name: str, kind: str, now: int
    ) -> Stored:
        row = conn.execute(select(parties).where(parties.c.party == keys.party_id)).first()
        if row is not None:
            if row.name != name or row.kind != kind:
                raise Conflict(
                    f"party {keys.party_id} is already registered as {row.kind} {row.name!r}"
                )
            return Stored(_party_view(row), created=False)
        conn.execute(
            parties.insert().values(
                party=keys.party_id,
                kind=kind,
                name=name,
                signing_key=keys.signing_key,
                sealing_key=keys.sealing_key,
                registered_at=now,
            )
        )
        row = conn.execute(select(parties).where(parties.c.party == keys.party_id)).one()
        return Stored(_party_view(row), created=True)

    def get_party(self, party: str) -> dict[str, Any]:
        with read_transaction(self._engine) as conn:
            row = conn.execute(select(parties).where(parties.c.party == party)).first()
        if row is None:
            raise NotFound(f"no party {party}")
        return _party_view(row)

    # --- transparency log ---------------------------------------------------------------

    def log_key(self) -> dict[str, Any]:
        return {"verifier_key": self._signer.verifier.vkey, "origin": self._signer.name}

    def checkpoint(self) -> str:
        note = reader_log(self._engine).latest_checkpoint()
        if note is None:
            with write_transaction(self._engine) as conn:
                from sealroom.coordinator.log import log_on

                note = log_on(conn).checkpoint(self._signer)
        return note

    def log_entry(self, index: int) -> dict[str, Any]:
        log = reader_log(self._engine)
        if index < 0 or index >= log.size():
            raise NotFound(f"no log entry {index}")
        return {"index": index, "entry": json.loads(log.entry(index))}

    def inclusion(self, index: int, size: int) -> dict[str, Any]:
        log = reader_log(self._engine)
        if not 0 <= index < size:
            raise InvalidInput("index must be below size")
        proof = log.inclusion_proof(index, size)
        return {"index": index, "size": size, "proof": [b64encode(h) for h in proof]}

    def consistency(self, first: int, second: int) -> dict[str, Any]:
        log = reader_log(self._engine)
        if not 0 <= first <= second:
            raise InvalidInput("first must be at most second")
        proof = log.consistency_proof(first, second)
        return {"first": first, "second": second, "proof": [b64encode(h) for h in proof]}

    def _store(self, conn: Connection, env: Envelope, *, now: int) -> tuple[int, str, bool]:
        """Store and log a verified statement once; (log index, checkpoint, created)."""
        row = conn.execute(
            select(statements.c.log_index).where(statements.c.digest == env.digest)
        ).first()
        if row is not None:
            return int(row[0]), "", False
        index, note = append_statement(conn, env, self._signer)
        conn.execute(
            statements.insert().values(
                digest=env.digest,
                type=env.type,
                signer=env.signer.party_id,
                envelope=env.to_json(),
                log_index=index,
                stored_at=now,
            )
        )
        return index, note, True

    # --- policies -----------------------------------------------------------------------

    def put_policy(self, body: dict[str, Any], *, caller: PartyId, now: int) -> Stored:
        _only(body, {"policy"}, "policy body")
        env = _envelope(body.get("policy"), "policy")
        with write_transaction(self._engine) as conn:
            digest, index, created = self._put_policy(conn, env, caller=caller, now=now)
        return Stored({"policy": digest, "log_index": index}, created=created)

    def _put_policy(
        self, conn: Connection, env: Envelope, *, caller: PartyId, now: int
    ) -> tuple[str, int, bool]:
        signed = env.open(Policy)
        if signed.statement.owner != caller:
            raise SignatureInvalid("a policy must be published by its owner")
        PolicyRules.parse(signed.statement.rules)
        index, _, created = self._store(conn, env, now=now)
        if created:
            conn.execute(policies.insert().values(policy=env.digest, owner=caller))
        return env.digest, index, created

    def get_policy(self, digest: str) -> dict[str, Any]:
        with read_transaction(self._engine) as conn:
            env, index = self._statement(conn, digest, "sealroom.policy")
        return {"policy": digest, "envelope": env.to_dict(), "log_index": index}

    def _statement(self, conn: Connection, digest: str, kind: str) -> tuple[Envelope, int]:
        row = conn.execute(
            select(statements.c.envelope, statements.c.log_index).where(
                statements.c.digest == digest, statements.c.type == kind
            )
        ).first()
        if row is None:
            raise NotFound(f"no {kind} {digest}")
        return Envelope.from_json(bytes(row[0])), int(row[1])

    def _content_roots(self, conn: Connection, inputs: Sequence[str]) -> dict[str, str]:
        """Each input's content commitment root (what a policy pins partners by)."""
        return {
            ds: DatasetAttestation.parse_payload(
                self._statement(conn, ds, DatasetAttestation.TYPE)[0].payload
            ).commitment.root
            for ds in inputs
        }

    def _rules(self, conn: Connection, policy: str | None) -> PolicyRules | None:
        if policy is None:
            return None
        env, _ = self._statement(conn, policy, Policy.TYPE)
        return PolicyRules.parse(Policy.parse_payload(env.payload).rules)

    def _room_rules(self, conn: Connection, req: ComputationRequest) -> PolicyRules | None:
        """The rules of the room policy ``req`` names (stored first), or None."""
        if req.room_policy is None:
            return None
        known = conn.execute(
            select(policies.c.policy).where(policies.c.policy == req.room_policy)
        ).first()
        if known is None:
            raise InvalidInput(
                f"the request names room policy {req.room_policy}, which is not stored: "
                "publish it with POST /v1/policies first"
            )
        return self._rules(conn, req.room_policy)

    # --- datasets -----------------------------------------------------------------------

    def publish_dataset(self, body: dict[str, Any], *, caller: PartyId, now: int) -> Stored:
        _only(body, {"attestation", "policy"}, "dataset body", optional={"policy"})
        env = _envelope(body.get("attestation"), "attestation")
        policy_env = None if body.get("policy") is None else _envelope(body["policy"], "policy")
        signed = env.open(DatasetAttestation)
        att = signed.statement
        if att.owner != caller:
            raise SignatureInvalid("an attestation must be published by its owner")
        with write_transaction(self._engine) as conn:
            if policy_env is not None:
                if att.policy != policy_env.digest:
                    raise InvalidInput("the policy sent is not the one the attestation names")
                self._put_policy(conn, policy_env, caller=caller, now=now)
            elif att.policy is not None:
                owner = conn.execute(
                    select(policies.c.owner).where(policies.c.policy == att.policy)
                ).scalar_one_or_none()
                if owner is None:
                    raise InvalidInput(
                        f"the attestation names policy {att.policy}, which is not stored: "
                        "send it in the 'policy' field"
                    )
                if owner != caller:
                    raise InvalidInput("the attestation names another party's policy")
            index, _, created = self._store(conn, env, now=now)
            if created:
                insert_datasets(conn, [(env.digest, att)], registered_at=now)
            view = self._dataset_views(conn, [env.digest])[0]
            checkpoint_note = _latest_checkpoint(conn)
            size = _checkpoint_size(checkpoint_note)
            from sealroom.coordinator.log import log_on

            proof = log_on(conn).inclusion_proof(index, size)
        view["inclusion"] = {
            "checkpoint": checkpoint_note,
            "proof": [b64encode(h) for h in proof],
            "size": size,
        }
        return Stored(view, created=created)

    def get_dataset(self, dataset: str) -> dict[str, Any]:
        with read_transaction(self._engine) as conn:
            return self._dataset_views(conn, [dataset])[0]

    def list_datasets(self, *, owner: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
        if not 1 <= limit <= 100:
            raise InvalidInput("limit must be 1..100")
        after: int | None = None
        if cursor is not None:
            if not cursor.isdigit() or len(cursor) > 18:
                raise InvalidInput("cursor is not one this server issued")
            after = int(cursor)
        stmt = select(datasets.c.seq, datasets.c.dataset)
        if owner is not None:
            stmt = stmt.where(datasets.c.owner == owner)
        if after is not None:
            stmt = stmt.where(datasets.c.seq < after)
        stmt = stmt.order_by(datasets.c.seq.desc()).limit(limit + 1)
        with read_transaction(self._engine) as conn:
            rows = conn.execute(stmt).all()
            page = rows[:limit]
            items = self._dataset_views(conn, [str(r.dataset) for r in page])
        nxt = str(page[-1].seq) if len(rows) > limit else None
        return {"items": items, "next_cursor": nxt}

    def warm_discovery(self) -> None:
        """Load the discovery index now (seconds at 100k datasets) instead of on the first search."""
        with read_transaction(self._engine) as conn:
            self._discovery.view(conn)

    def search(self, query: SearchQuery) -> dict[str, Any]:
        with read_transaction(self._engine) as conn:
            page = search(conn, query, self._discovery)
            views = self._dataset_views(conn, [h.dataset for h in page.hits])
        return {
            "items": [
                {"dataset": v, "score": h.score, "jaccard": h.jaccard}
                for h, v in zip(page.hits, views, strict=True)
            ],
            "next_cursor": page.next_cursor,
            "total": page.total,
        }

    def _dataset_views(self, conn: Connection, ids: Sequence[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        rows = conn.execute(
            select(
                datasets.c.dataset,
                datasets.c.status,
                datasets.c.status_reason,
                statements.c.envelope,
                statements.c.log_index,
                parties.c.name,
            )
            .join(statements, statements.c.digest == datasets.c.dataset)
            .outerjoin(parties, parties.c.party == datasets.c.owner)
            .where(datasets.c.dataset.in_(list(ids)))
        ).all()
        by_id = {str(r.dataset): r for r in rows}
        out = []
        for dataset in ids:
            r = by_id.get(dataset)
            if r is None:
                raise NotFound(f"no dataset {dataset}")
            # The stored bytes were verified (signature, canonical form) when published;
            # re-checking canonical form on every read made a 100-item page cost ~25 ms.
            envelope = json.loads(bytes(r.envelope))
            att = DatasetAttestation.model_validate_json(
                b64decode_strict(envelope["payload"], what="stored attestation"), strict=True
            )
            out.append(
                {
                    "dataset": dataset,
                    "owner": att.owner,
                    "owner_name": r.name,
                    "title": att.title,
                    "description": att.description,
                    "topics": list(att.topics),
                    "keywords": [{"term": k.term, "count": k.count} for k in att.keywords],
                    "profile": att.profile.model_dump(mode="json"),
                    "row_count": att.row_count,
                    "time_range": None
                    if att.time_range is None
                    else {"start": att.time_range.start, "end": att.time_range.end},
                    "schema": [c.model_dump(mode="json") for c in att.schema_],
                    "policy": att.policy,
                    "commitment": att.commitment.model_dump(mode="json"),
                    "status": r.status,
                    "status_reason": r.status_reason,
                    "created_at": att.created_at,
                    "log_index": int(r.log_index),
                    "envelope": envelope,
                }
            )
        return out

    def withdraw_dataset(
        self, dataset: str, body: dict[str, Any], *, caller: PartyId, now: int
    ) -> dict[str, Any]:
        _only(body, {"reason"}, "withdrawal")
        reason = _reason(body.get("reason"))
        with write_transaction(self._engine) as conn:
            row = conn.execute(select(datasets).where(datasets.c.dataset == dataset)).first()
            if row is None:
                raise NotFound(f"no dataset {dataset}")
            if row.owner != caller:
                raise PolicyDenied("only the dataset's owner may withdraw it")
            if row.status != "active":
                raise Conflict("the dataset is already withdrawn")
            conn.execute(
                update(datasets)
                .where(datasets.c.dataset == dataset)
                .values(status="withdrawn", status_reason=reason)
            )
            pending = conn.execute(
                select(requests.c.request)
                .join(request_inputs, request_inputs.c.request == requests.c.request)
                .where(request_inputs.c.dataset == dataset, requests.c.status == "pending")
            ).all()
            for (req,) in pending:
                self._transition(
                    conn,
                    str(req),
                    ("pending",),
                    "rejected",
                    f"dataset {dataset} was withdrawn by its owner: {reason}",
                    now,
                )
            return self._dataset_views(conn, [dataset])[0]

    # --- requests -----------------------------------------------------------------------

    def create_request(self, body: dict[str, Any], *, caller: PartyId, now: int) -> Stored:
        _only(body, {"request"}, "request body")
        env = _envelope(body.get("request"), "request")
        return self._create_request(env, caller=caller, now=now)

    def _computation(self, req: ComputationRequest) -> Computation:
        try:
            return self._registry.resolve(req.computation)
        except NotFound as exc:
            raise InvalidInput(exc.detail) from None

    def _create_request(self, env: Envelope, *, caller: PartyId, now: int) -> Stored:
        signed = env.open(ComputationRequest)
        req = signed.statement
        if req.requester != caller:
            raise SignatureInvalid("a request must be sent by its requester")
        computation = self._computation(req)
        params = computation.parse_params(req.parameters)
        cost = computation.cost(params)
        computation.check_inputs(len(req.inputs))
        if req.expires_at <= now:
            raise InvalidInput("the request has already expired")
        with write_transaction(self._engine) as conn:
            existing = conn.execute(
                select(requests.c.request).where(requests.c.request == env.digest)
            ).first()
            if existing is not None:
                return Stored(self._request_view(conn, env.digest), created=False)
            rows = {
                str(r.dataset): r
                for r in conn.execute(
                    select(datasets).where(datasets.c.dataset.in_(list(req.inputs)))
                )
            }
            for ds in req.inputs:
                if ds not in rows:
                    raise NotFound(f"input dataset {ds} does not exist")
                if rows[ds].status != "active":
                    raise Conflict(f"input dataset {ds} has been withdrawn")
            owners = [str(rows[ds].owner) for ds in req.inputs]
            if computation.release == "requester":
                expected = {req.requester}
            else:
                expected = {req.requester, *owners}
            if set(req.recipients) != expected:
                raise InvalidInput(
                    f"{computation.id} releases to {computation.release}: recipients must be "
                    f"exactly {sorted(expected)}"
                )
            room = self._room_rules(conn, req)
            roots = self._content_roots(conn, req.inputs)
            checks: list[tuple[str, Decision]] = []
            for ds in req.inputs:
                decision, _ = decide_in_room(
                    self._rules(conn, rows[ds].policy),
                    room,
                    computation=computation,
                    request=computation.request_shape(
                        params, partners=[roots[d] for d in req.inputs if d != ds]
                    ),
                    requester=req.requester,
                    now=now,
                    cost=cost,
                )
                checks.append((ds, decision))
            index, _, _ = self._store(conn, env, now=now)
            precheck = [
                {
                    "dataset": ds,
                    "allowed": d.allowed,
                    "automatic": d.automatic,
                    "reasons": list(d.reasons),
                }
                for ds, d in checks
            ]
            conn.execute(
                requests.insert().values(
                    request=env.digest,
                    requester=req.requester,
                    computation_id=req.computation.id,
                    computation_version=req.computation.version,
                    status="pending",
                    status_reason="waiting for the input owners",
                    precheck=_json(precheck),
                    created_at=req.created_at,
                    expires_at=req.expires_at,
                    registered_at=now,
                )
            )
            conn.execute(
                request_inputs.insert(),
                [
                    {
                        "request": env.digest,
                        "dataset": ds,
                        "position": i,
                        "owner": owners[i],
                        "decision": "pending",
                    }
                    for i, ds in enumerate(req.inputs)
                ],
            )
            conn.execute(
                request_recipients.insert(),
                [
                    {"request": env.digest, "party": p, "position": i}
                    for i, p in enumerate(req.recipients)
                ],
            )
            self._history(conn, env.digest, "pending", "request received", now)
            denied = [(ds, d) for ds, d in checks if not d.allowed]
            if denied:
                ds, d = denied[0]
                self._transition(
                    conn,
                    env.digest,
                    ("pending",),
                    "rejected",
                    f"the policy of dataset {ds}"
                    f"{' (with the room policy)' if req.room_policy else ''} denies it: "
                    f"{d.reason}",
                    now,
                )
            _ = index
            return Stored(self._request_view(conn, env.digest), created=True)

    def keyword_overlap(self, body: dict[str, Any], *, caller: PartyId, now: int) -> Stored:
        """The topic-overlap shortcut: a draft to sign, or (with ``request``) its creation."""
        _only(body, {"dataset_a", "dataset_b", "request"}, "body", optional={"request"})
        a = _str(body.get("dataset_a"), "dataset_a")
        b = _str(body.get("dataset_b"), "dataset_b")
        if a == b:
            raise InvalidInput("dataset_a and dataset_b must differ")
        computation = self._registry.get(KEYWORD_OVERLAP_COMPUTATION)
        if body.get("request") is not None:
            env = _envelope(body["request"], "request")
            req = env.open(ComputationRequest).statement
            if req.computation.id != computation.id or req.inputs != (a, b):
                raise InvalidInput(
                    f"the request is not {computation.id} on exactly [dataset_a, dataset_b]"
                )
            return self._create_request(env, caller=caller, now=now)
        with read_transaction(self._engine) as conn:
            owners = []
            for ds in (a, b):
                row = conn.execute(
                    select(datasets.c.owner, datasets.c.status).where(datasets.c.dataset == ds)
                ).first()
                if row is None:
                    raise NotFound(f"no dataset {ds}")
                if row.status != "active":
                    raise Conflict(f"dataset {ds} has been withdrawn")
                owners.append(str(row.owner))
        if computation.release == "requester":
            recipients: list[str] = [caller]
        else:
            recipients = list(dict.fromkeys([str(caller), *owners]))
        params = computation.params.model_validate({}).model_dump(mode="json")
        draft = ComputationRequest.model_validate(
            {
                "requester": caller,
                "computation": computation.ref(),
                "parameters": params,
                "inputs": (a, b),
                "recipients": tuple(recipients),
                "nonce": b64encode(os.urandom(16)),
                "created_at": now,
                "expires_at": now + DEFAULT_REQUEST_TTL,
            }
        )
        return Stored({"draft": draft.model_dump(mode="json")}, created=False)

    def _history(self, conn: Connection, request: str, status: str, reason: str, now: int) -> None:
        conn.execute(
            request_history.insert().values(request=request, status=status, at=now, reason=reason)
        )

    def _transition(
        self,
        conn: Connection,
        request: str,
        allowed_from: Sequence[str],
        to: str,
        reason: str,
        now: int,
    ) -> None:
        """Move ``request`` to ``to`` from one of ``allowed_from``, or raise :class:`Conflict`."""
        moved = conn.execute(
            update(requests)
            .where(requests.c.request == request, requests.c.status.in_(list(allowed_from)))
            .values(status=to, status_reason=reason)
        )
        if moved.rowcount != 1:
            current = conn.execute(
                select(requests.c.status).where(requests.c.request == request)
            ).scalar_one_or_none()
            raise Conflict(f"the request is {current}; it cannot become {to}")
        self._history(conn, request, to, reason, now)
        if to in _ENDED:
            # No job can use them any more: sealed inputs go when the request ends, however.
            conn.execute(delete(request_blobs).where(request_blobs.c.request == request))

    def sweep(self, *, now: int) -> int:
        """Expire requests past ``expires_at``, fail jobs whose lease ran out, and delete the
        sealed results of completed requests whose retention has passed; return how many."""
        retention_due = and_(
            requests.c.results_until <= now,
            requests.c.results_deleted_at.is_(None),
            requests.c.status == "completed",
        )
        with read_transaction(self._engine) as conn:
            due = conn.execute(
                select(func.count())
                .select_from(requests)
                .where(
                    or_(
                        retention_due,
                        and_(requests.c.status.in_(_OPEN), requests.c.expires_at <= now),
                        and_(
                            requests.c.status == "running",
                            exists().where(
                                jobs.c.request == requests.c.request, jobs.c.lease_until <= now
                            ),
                        ),
                    )
                )
            ).scalar_one()
        if not due:
            return 0
        with write_transaction(self._engine) as conn:
            expired = conn.execute(
                select(requests.c.request).where(
                    requests.c.status.in_(_OPEN), requests.c.expires_at <= now
                )
            ).all()
            for (req,) in expired:
                self._transition(conn, str(req), _OPEN, "expired", "the request expired", now)
            lapsed = conn.execute(
                select(requests.c.request)
                .join(jobs, jobs.c.request == requests.c.request)
                .where(requests.c.status == "running", jobs.c.lease_until <= now)
            ).all()
            for (req,) in lapsed:
                self._transition(
                    conn,
                    str(req),
                    ("running",),
                    "failed",
                    "the enclave did not finish in time",
                    now,
                )
            retained = conn.execute(
                select(requests.c.request, requests.c.retention_seconds).where(retention_due)
            ).all()
            for req, seconds in retained:
                conn.execute(delete(results).where(results.c.request == req))
                conn.execute(delete(request_blobs).where(request_blobs.c.request == req))
                conn.execute(
                    update(requests).where(requests.c.request == req).values(results_deleted_at=now)
                )
                # Recorded without a status change: the request stays completed.
                self._history(
                    conn,
                    str(req),
                    "completed",
                    f"results deleted after retention of {int(seconds)} s",
                    now,
                )
            return len(expired) + len(lapsed) + len(retained)

    def _request_row(self, conn: Connection, request: str, caller: PartyId) -> Any:
        row = conn.execute(select(requests).where(requests.c.request == request)).first()
        if row is None or not self._visible(conn, row, caller):
            raise NotFound(f"no request {request}")
        return row

    def _visible(self, conn: Connection, row: Any, caller: PartyId) -> bool:
        if row.requester == caller:
            return True
        r = row.request
        hit = conn.execute(
            select(request_inputs.c.dataset)
            .where(request_inputs.c.request == r, request_inputs.c.owner == caller)
            .union_all(
                select(request_recipients.c.party).where(
                    request_recipients.c.request == r, request_recipients.c.party == caller
                ),
                select(jobs.c.request).where(jobs.c.request == r, jobs.c.enclave == caller),
            )
            .limit(1)
        ).first()
        return hit is not None

    def _request_view(self, conn: Connection, request: str) -> dict[str, Any]:
        row = conn.execute(
            select(requests, statements.c.envelope, statements.c.log_index)
            .join(statements, statements.c.digest == requests.c.request)
            .where(requests.c.request == request)
        ).one()
        env = Envelope.from_json(bytes(row.envelope))
        req = ComputationRequest.parse_payload(env.payload)
        inputs = conn.execute(
            select(request_inputs)
            .where(request_inputs.c.request == request)
            .order_by(request_inputs.c.position)
        ).all()
        history = conn.execute(
            select(request_history.c.status, request_history.c.at, request_history.c.reason)
            .where(request_history.c.request == request)
            .order_by(request_history.c.id)
        ).all()
        return {
            "request": request,
            "envelope": env.to_dict(),
            "requester": req.requester,
            "computation": req.computation.model_dump(mode="json"),
            "parameters": req.parameters,
            "inputs": [
                {
                    "dataset": i.dataset,
                    "owner": i.owner,
                    "decision": i.decision,
                    "mode": i.mode,
                    "reason": i.reason,
                    "approval": i.approval,
                    "sealed": i.sealed_size is not None,
                    "enclave": i.enclave,
                }
                for i in inputs
            ],
            "recipients": list(req.recipients),
            "status": row.status,
            "status_reason": row.status_reason,
            "precheck": json.loads(row.precheck),
            "history": [{"status": h.status, "at": int(h.at), "reason": h.reason} for h in history],
            "receipt": row.receipt,
            "created_at": req.created_at,
            "expires_at": req.expires_at,
            "log_index": int(row.log_index),
        }

    def get_request(self, request: str, *, caller: PartyId, now: int) -> dict[str, Any]:
        self.sweep(now=now)
        with read_transaction(self._engine) as conn:
            self._request_row(conn, request, caller)
            return self._request_view(conn, request)

    def list_requests(
        self, *, caller: PartyId, role: str | None, status: str | None, now: int
    ) -> dict[str, Any]:
        self.sweep(now=now)
        if role not in (None, "requester", "owner", "recipient"):
            raise InvalidInput("role must be requester, owner or recipient")
        as_requester = select(requests.c.request).where(requests.c.requester == caller)
        as_owner = select(request_inputs.c.request).where(request_inputs.c.owner == caller)
        as_recipient = select(request_recipients.c.request).where(
            request_recipients.c.party == caller
        )
        chosen = {"requester": [as_requester], "owner": [as_owner], "recipient": [as_recipient]}
        parts = chosen[role] if role is not None else [as_requester, as_owner, as_recipient]
        stmt = select(requests.c.request).where(or_(*(requests.c.request.in_(p) for p in parts)))
        if status is not None:
            stmt = stmt.where(requests.c.status == status)
        with read_transaction(self._engine) as conn:
            ids = [str(r) for (r,) in conn.execute(stmt.order_by(requests.c.seq.desc()).limit(500))]
            return {"items": [self._request_view(conn, r) for r in ids]}

    def inbox(self, *, caller: PartyId, now: int) -> dict[str, Any]:
        self.sweep(now=now)
        stmt = (
            select(requests.c.request)
            .join(request_inputs, request_inputs.c.request == requests.c.request)
            .where(
                request_inputs.c.owner == caller,
                request_inputs.c.decision == "pending",
                requests.c.status == "pending",
            )
            .group_by(requests.c.request, requests.c.seq)
            .order_by(requests.c.seq)
        )
        with read_transaction(self._engine) as conn:
            ids = [str(r) for (r,) in conn.execute(stmt.limit(500))]
            return {"items": [self._request_view(conn, r) for r in ids]}

    def add_approval(
        self, request: str, body: dict[str, Any], *, caller: PartyId, now: int
    ) -> dict[str, Any]:
        _only(body, {"approval"}, "approval body")
        env = _envelope(body.get("approval"), "approval")
        self.sweep(now=now)
        with write_transaction(self._engine) as conn:
            row = self._request_row(conn, request, caller)
            inp = conn.execute(
                select(request_inputs).where(
                    request_inputs.c.request == request, request_inputs.c.owner == caller
                )
            ).all()
            if not inp:
                raise NotFound(f"no input of request {request} is owned by you")
            signed = env.open(Approval)
            appr = signed.statement
            if appr.approver != caller:
                raise SignatureInvalid("an approval must be sent by its approver")
            if appr.request != request:
                raise InvalidInput("the approval names another request")
            mine = {str(i.dataset): i for i in inp}
            target = mine.get(appr.dataset)
            if target is None:
                raise NotFound(f"dataset {appr.dataset} is not an input of yours in this request")
            if target.decision != "pending":
                raise Conflict(f"input {appr.dataset} already has a decision ({target.decision})")
            if row.status != "pending":
                raise Conflict(f"the request is {row.status}; decisions are closed")
            if appr.mode == "policy":
                ds_policy = conn.execute(
                    select(datasets.c.policy).where(datasets.c.dataset == appr.dataset)
                ).scalar_one()
                if appr.policy != ds_policy:
                    raise InvalidInput("an automatic approval must name the dataset's policy")
                if appr.decision == "approve":
                    req = ComputationRequest.parse_payload(
                        self._statement(conn, request, ComputationRequest.TYPE)[0].payload
                    )
                    computation = self._computation(req)
                    params = computation.parse_params(req.parameters)
                    decision, _ = decide_in_room(
                        self._rules(conn, ds_policy),
                        self._rules(conn, req.room_policy),
                        computation=computation,
                        request=computation.request_shape(
                            params,
                            partners=[
                                root
                                for d, root in self._content_roots(conn, req.inputs).items()
                                if d != appr.dataset
                            ],
                        ),
                        requester=req.requester,
                        now=now,
                        cost=computation.cost(params),
                    )
                    if not decision.automatic:
                        raise PolicyDenied(
                            "the dataset's policy (with the room policy, if any) does not "
                            f"approve this automatically: "
                            f"{decision.reason}"
                        )
            self._store(conn, env, now=now)
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
                self._transition(
                    conn,
                    request,
                    ("pending",),
                    "rejected",
                    f"the owner of {appr.dataset} rejected it{why}",
                    now,
                )
            else:
                self._maybe_ready(conn, request, now)
            return self._request_view(conn, request)

    def _maybe_ready(self, conn: Connection, request: str, now: int) -> None:
        rows = conn.execute(
            select(
                request_inputs.c.decision, request_inputs.c.sealed_size, request_inputs.c.enclave
            ).where(request_inputs.c.request == request)
        ).all()
        ready = all(r.decision == "approve" and r.sealed_size is not None for r in rows)
        if ready and len({r.enclave for r in rows}) == 1:
            self._transition(
                conn,
                request,
                ("pending",),
                "approved",
                "every input is approved and sealed to the enclave",
                now,
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
    ) -> dict[str, Any]:
        if not sealed:
            raise InvalidInput("the sealed body is empty")
        if len(sealed) > MAX_SEALED_SIZE:
            raise InvalidInput("the sealed body is too large")
        if enclave is None:
            raise InvalidInput("header Sealroom-Enclave (the enclave evidence digest) is required")
        self.sweep(now=now)
        with write_transaction(self._engine) as conn:
            row = self._request_row(conn, request, caller)
            inp = conn.execute(
                select(request_inputs).where(
                    request_inputs.c.request == request,
                    request_inputs.c.dataset == dataset,
                    request_inputs.c.owner == caller,
                )
            ).first()
            if inp is None:
                raise NotFound(f"dataset {dataset} is not an input of yours in this request")
            if row.status != "pending":
                raise Conflict(f"the request is {row.status}; uploads are closed")
            if inp.decision != "approve":
                raise Conflict("approve the input before uploading its sealed data")
            if inp.sealed_size is not None:
                raise Conflict("this input has already been uploaded")
            known = conn.execute(
                select(enclaves.c.evidence).where(enclaves.c.evidence == enclave)
            ).first()
            if known is None:
                raise InvalidInput(f"no registered enclave evidence {enclave}")
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
            self._maybe_ready(conn, request, now)
            return self._request_view(conn, request)

    def withdraw_request(
        self, request: str, body: dict[str, Any], *, caller: PartyId, now: int
    ) -> dict[str, Any]:
        _only(body, {"reason"}, "withdrawal")
        reason = _reason(body.get("reason"))
        self.sweep(now=now)
        with write_transaction(self._engine) as conn:
            row = self._request_row(conn, request, caller)
            if row.requester != caller:
                raise PolicyDenied("only the requester may withdraw a request")
            self._transition(
                conn, request, _OPEN, "withdrawn", f"withdrawn by the requester: {reason}", now
            )
            return self._request_view(conn, request)

    def get_result(self, request: str, *, caller: PartyId, now: int) -> dict[str, Any]:
        self.sweep(now=now)
        with read_transaction(self._engine) as conn:
            req_row = self._request_row(conn, request, caller)
            if req_row.results_deleted_at is not None:
                raise NotFound(
                    f"the result was deleted by retention at {int(req_row.results_deleted_at)} "
                    f"(the inputs' policies keep results {int(req_row.retention_seconds)} s "
                    "after completion)"
                )
            row = conn.execute(
                select(results.c.sealed, requests.c.receipt)
                .join(requests, requests.c.request == results.c.request)
                .where(
                    results.c.request == request,
                    results.c.recipient == caller,
                    requests.c.status == "completed",
                )
            ).first()
            if row is None:
                raise NotFound("no result for you on this request (yet)")
            receipt, _ = self._statement(conn, str(row.receipt), Receipt.TYPE)
        return {
            "request": request,
            "recipient": caller,
            "sealed": b64encode(bytes(row.sealed)),
            "receipt": receipt.to_dict(),
        }

    def bundle(self, request: str, *, caller: PartyId, now: int) -> dict[str, Any]:
        with read_transaction(self._engine) as conn:
            row = self._request_row(conn, request, caller)
            if row.status != "completed" or row.receipt is None:
                raise NotFound("the request has no receipt yet")
            receipt, _ = self._statement(conn, str(row.receipt), Receipt.TYPE)
            rec = Receipt.parse_payload(receipt.payload)
            evidence, _ = self._statement(conn, rec.evidence, EnclaveEvidence.TYPE)
            job = self._job_parts(conn, request)
            refs = list(
                dict.fromkeys(
                    [
                        request,
                        *job["approvals"],
                        *job["attestations"],
                        *job["policies"],
                        *job["room"],
                    ]
                )
            )
            stmts = [
                Envelope.from_json(bytes(r.envelope))
                for r in conn.execute(
                    select(statements.c.digest, statements.c.envelope).where(
                        statements.c.digest.in_(refs)
                    )
                )
            ]
            order = {d: i for i, d in enumerate(refs)}
            stmts.sort(key=lambda e: order[e.digest])
            indices = {
                str(d): int(i)
                for d, i in conn.execute(
                    select(statements.c.digest, statements.c.log_index).where(
                        statements.c.digest.in_([*refs, rec.evidence, row.receipt])
                    )
                )
            }
            note = _latest_checkpoint(conn)
        bundle = assemble_bundle(
            receipt=receipt,
            evidence=evidence,
            statements=stmts,
            log=reader_log(self._engine),
            indices=indices,
            checkpoint=note,
            verifier_key=self._signer.verifier.vkey,
        )
        return bundle.to_dict()

    # --- enclaves and jobs ------------------------------------------------------------------

    @staticmethod
    def evidence_keys(body: dict[str, Any]) -> PublicIdentity:
        """The enclave key that must sign the registration call (from the evidence envelope)."""
        env = _envelope(body.get("evidence"), "evidence")
        return env.signer

    def register_enclave(self, body: dict[str, Any], *, caller: PartyId, now: int) -> Stored:
        _only(body, {"evidence"}, "enclave body")
        env = _envelope(body.get("evidence"), "evidence")
        ev = env.open(EnclaveEvidence).statement
        if env.signer.party_id != caller:
            raise AuthenticationFailed("the registration must be signed by the enclave key")
        with write_transaction(self._engine) as conn:
            self._register_party(
                conn, env.signer, name=f"enclave ({ev.tee})", kind="enclave", now=now
            )
            index, _, created = self._store(conn, env, now=now)
            if created:
                conn.execute(
                    enclaves.insert().values(
                        evidence=env.digest,
                        party=caller,
                        tee=ev.tee,
                        simulated=ev.simulated,
                        registered_at=now,
                    )
                )
        view = {
            "evidence": env.digest,
            "party": caller,
            "tee": ev.tee,
            "simulated": ev.simulated,
            "log_index": index,
        }
        return Stored(view, created=created)

    def current_enclave(self) -> dict[str, Any]:
        with read_transaction(self._engine) as conn:
            row = conn.execute(select(enclaves).order_by(enclaves.c.seq.desc()).limit(1)).first()
            if row is None:
                raise NotFound("no enclave is registered")
            env, index = self._statement(conn, str(row.evidence), EnclaveEvidence.TYPE)
        return {
            "evidence": row.evidence,
            "envelope": env.to_dict(),
            "tee": row.tee,
            "simulated": bool(row.simulated),
            "party": row.party,
            "log_index": index,
        }

    def _require_enclave(self, conn: Connection, caller: PartyId) -> None:
        kind = conn.execute(
            select(parties.c.kind).where(parties.c.party == caller)
        ).scalar_one_or_none()
        if kind != "enclave":
            raise PolicyDenied("only a registered enclave may take jobs")

    def claim_job(self, *, caller: PartyId, now: int) -> dict[str, Any] | None:
        self.sweep(now=now)
        with write_transaction(self._engine) as conn:
            self._require_enclave(conn, caller)
            mine = select(enclaves.c.evidence).where(enclaves.c.party == caller)
            not_mine = exists().where(
                request_inputs.c.request == requests.c.request,
                or_(request_inputs.c.enclave.is_(None), request_inputs.c.enclave.not_in(mine)),
            )
            row = conn.execute(
                select(requests.c.request)
                .where(requests.c.status == "approved", ~not_mine)
                .order_by(requests.c.seq)
                .limit(1)
            ).first()
            if row is None:
                return None
            request = str(row[0])
            evidence = conn.execute(
                select(request_inputs.c.enclave).where(request_inputs.c.request == request).limit(1)
            ).scalar_one()
            lease_until = now + self._lease
            conn.execute(delete(jobs).where(jobs.c.request == request))
            conn.execute(
                jobs.insert().values(
                    request=request,
                    evidence=evidence,
                    enclave=caller,
                    claimed_at=now,
                    lease_until=lease_until,
                )
            )
            self._transition(conn, request, ("approved",), "running", "claimed by the enclave", now)
            parts = self._job_parts(conn, request)
            envs = {
                str(d): Envelope.from_json(bytes(e)).to_dict()
                for d, e in conn.execute(
                    select(statements.c.digest, statements.c.envelope).where(
                        statements.c.digest.in_(
                            [
                                request,
                                *parts["approvals"],
                                *parts["attestations"],
                                *parts["policies"],
                                *parts["room"],
                            ]
                        )
                    )
                )
            }
            sizes = conn.execute(
                select(request_inputs.c.dataset, request_inputs.c.sealed_size)
                .where(request_inputs.c.request == request)
                .order_by(request_inputs.c.position)
            ).all()
        return {
            "request": envs[request],
            "approvals": [envs[d] for d in parts["approvals"]],
            "attestations": [envs[d] for d in parts["attestations"]],
            "policies": [envs[d] for d in parts["policies"]],
            "room_policy": envs[parts["room"][0]] if parts["room"] else None,
            "inputs": [{"dataset": d, "size": int(s)} for d, s in sizes],
            "evidence": evidence,
            "lease_until": lease_until,
        }

    def _job_parts(self, conn: Connection, request: str) -> dict[str, list[str]]:
        rows = conn.execute(
            select(request_inputs.c.dataset, request_inputs.c.approval, datasets.c.policy)
            .join(datasets, datasets.c.dataset == request_inputs.c.dataset)
            .where(request_inputs.c.request == request)
            .order_by(request_inputs.c.position)
        ).all()
        env, _ = self._statement(conn, request, ComputationRequest.TYPE)
        room = ComputationRequest.parse_payload(env.payload).room_policy
        return {
            "approvals": [str(r.approval) for r in rows if r.approval is not None],
            "attestations": [str(r.dataset) for r in rows],
            "policies": list(dict.fromkeys(str(r.policy) for r in rows if r.policy is not None)),
            "room": [room] if room is not None else [],
        }

    def _job(self, conn: Connection, request: str, caller: PartyId) -> Any:
        job = conn.execute(
            select(jobs).where(jobs.c.request == request, jobs.c.enclave == caller)
        ).first()
        if job is None:
            raise NotFound(f"no job {request} claimed by you")
        status = conn.execute(
            select(requests.c.status).where(requests.c.request == request)
        ).scalar_one()
        if status != "running":
            raise Conflict(f"the request is {status}, not running")
        return job

    def job_input(self, request: str, dataset: str, *, caller: PartyId, now: int) -> bytes:
        self.sweep(now=now)
        with read_transaction(self._engine) as conn:
            self._job(conn, request, caller)
            blob = conn.execute(
                select(request_blobs.c.sealed).where(
                    request_blobs.c.request == request, request_blobs.c.dataset == dataset
                )
            ).scalar_one_or_none()
        if blob is None:
            raise NotFound(f"no sealed input {dataset} in job {request}")
        return bytes(blob)

    def complete_job(
        self, request: str, body: dict[str, Any], *, caller: PartyId, now: int
    ) -> dict[str, Any]:
        _only(body, {"receipt", "outputs"}, "completion")
        env = _envelope(body.get("receipt"), "receipt")
        outputs = body.get("outputs")
        if not isinstance(outputs, list) or not outputs:
            raise InvalidInput("outputs must be a non-empty list")
        sealed: dict[str, bytes] = {}
        for o in outputs:
            if not isinstance(o, dict):
                raise InvalidInput("each output must be an object")
            _only(o, {"recipient", "sealed"}, "output")
            recipient = _str(o.get("recipient"), "recipient")
            if recipient in sealed:
                raise InvalidInput(f"two outputs for recipient {recipient}")
            sealed[recipient] = b64decode_strict(_str(o.get("sealed"), "sealed"), what="sealed")
        self.sweep(now=now)
        with write_transaction(self._engine) as conn:
            job = self._job(conn, request, caller)
            receipt = env.open(Receipt).statement
            if env.signer.party_id != caller:
                raise SignatureInvalid("the receipt must be signed by the enclave that ran the job")
            if receipt.request != request:
                raise InvalidInput("the receipt names another request")
            if receipt.evidence != job.evidence:
                raise InvalidInput("the receipt names other enclave evidence than the job")
            recipients = {
                str(p)
                for (p,) in conn.execute(
                    select(request_recipients.c.party).where(
                        request_recipients.c.request == request
                    )
                )
            }
            if set(sealed) != recipients:
                raise InvalidInput("there must be exactly one output per recipient")
            if {o.recipient for o in receipt.outputs} != recipients or len(receipt.outputs) != len(
                recipients
            ):
                raise InvalidInput("the receipt must commit to one output per recipient")
            self._store(conn, env, now=now)
            conn.execute(
                results.insert(),
                [{"request": request, "recipient": r, "sealed": s} for r, s in sealed.items()],
            )
            conn.execute(
                update(requests).where(requests.c.request == request).values(receipt=env.digest)
            )
            self._transition(
                conn, request, ("running",), "completed", "the enclave released the result", now
            )
            retention = self._retention(conn, request)
            if retention is not None:
                conn.execute(
                    update(requests)
                    .where(requests.c.request == request)
                    .values(retention_seconds=retention, results_until=now + retention)
                )
            return self._request_view(conn, request)

    def _retention(self, conn: Connection, request: str) -> int | None:
        """The smallest ``retention_seconds`` of the inputs' policies and the room's (strictest)."""
        named = [
            str(p)
            for (p,) in conn.execute(
                select(datasets.c.policy)
                .join(request_inputs, request_inputs.c.dataset == datasets.c.dataset)
                .where(request_inputs.c.request == request, datasets.c.policy.is_not(None))
            )
        ]
        env, _ = self._statement(conn, request, ComputationRequest.TYPE)
        room = ComputationRequest.parse_payload(env.payload).room_policy
        limits = [
            r.retention_seconds
            for p in dict.fromkeys([*named, *([room] if room else [])])
            if (r := self._rules(conn, p)) is not None and r.retention_seconds is not None
        ]
        return min(limits) if limits else None

    def fail_job(
        self, request: str, body: dict[str, Any], *, caller: PartyId, now: int
    ) -> dict[str, Any]:
        _only(body, {"reason"}, "failure")
        reason = _reason(body.get("reason"))
        self.sweep(now=now)
        with write_transaction(self._engine) as conn:
            self._job(conn, request, caller)
            self._transition(
                conn, request, ("running",), "failed", f"the enclave failed: {reason}", now
            )
            return self._request_view(conn, request)


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string")
    return value


def _only(body: object, keys: set[str], what: str, *, optional: set[str] | None = None) -> None:
    if not isinstance(body, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    extra = set(body) - keys
    if extra:
        raise InvalidInput(f"{what}: unknown field(s) {sorted(extra)}")
    missing = keys - (optional or set()) - set(body)
    if missing:
        raise InvalidInput(f"{what}: missing field(s) {sorted(missing)}")


def _party_view(row: Any) -> dict[str, Any]:
    return {
        "party": row.party,
        "name": row.name,
        "signing_key": b64encode(bytes(row.signing_key)),
        "sealing_key": b64encode(bytes(row.sealing_key)),
        "kind": row.kind,
        "registered_at": int(row.registered_at),
    }


def _latest_checkpoint(conn: Connection) -> str:
    from sealroom.transparency.sqlstore import checkpoints

    note = conn.execute(
        select(checkpoints.c.note).order_by(checkpoints.c.seq.desc()).limit(1)
    ).scalar_one_or_none()
    if note is None:
        raise NotFound("the log has no checkpoint yet")
    return str(note)


def _checkpoint_size(note: str) -> int:
    from sealroom.transparency.checkpoint import Checkpoint, split_note

    body, _ = split_note(note)
    return Checkpoint.from_body(body).size
