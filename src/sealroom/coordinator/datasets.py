"""Policies, datasets and discovery: publication, listing, search and withdrawal.

A dataset's id is its attestation's digest; its card is the attestation's
public fields. The coordinator never sees the data itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import Connection, select, update

from sealroom.coordinator.log import log_on
from sealroom.coordinator.state import (
    State,
    Stored,
    checkpoint_size,
    latest_checkpoint,
    statement,
)
from sealroom.coordinator.state import (
    rules as stored_rules,
)
from sealroom.crypto.keys import PartyId, fingerprint
from sealroom.errors import Conflict, InvalidInput, NotFound, PolicyDenied, SignatureInvalid
from sealroom.policy.rules import PolicyRules
from sealroom.statements import DatasetAttestation, Envelope, Policy, Receipt
from sealroom.statements.fields import canonical_decimal
from sealroom.storage.datasets import insert_datasets
from sealroom.storage.discovery_index import DiscoveryIndex
from sealroom.storage.engine import read_transaction, write_transaction
from sealroom.storage.schema import (
    datasets,
    parties,
    policies,
    request_inputs,
    requests,
    statements,
)
from sealroom.storage.search import SearchQuery, search
from sealroom.wire import (
    BudgetView,
    DatasetPage,
    DatasetView,
    Inclusion,
    PolicyCreated,
    PolicyView,
    PublishDatasetBody,
    PublishedDataset,
    RequesterBudget,
    SearchHit,
    SearchPage,
)

__all__ = ["MAX_PAGE", "Datasets"]

MAX_PAGE = 100


class Datasets:
    __slots__ = ("_discovery", "_state")

    def __init__(self, state: State, *, discovery: DiscoveryIndex | None = None) -> None:
        self._state = state
        # Discovery's in-process index: a cache checked against the database on every query.
        self._discovery = discovery if discovery is not None else DiscoveryIndex()

    # --- policies -----------------------------------------------------------------------

    def put_policy(self, policy: Envelope, *, caller: PartyId, now: int) -> Stored[PolicyCreated]:
        with write_transaction(self._state.engine) as conn:
            index, created = self._put_policy(conn, policy, caller=caller, now=now)
        return Stored(PolicyCreated(policy=policy.digest, log_index=index), created=created)

    def _put_policy(
        self, conn: Connection, env: Envelope, *, caller: PartyId, now: int
    ) -> tuple[int, bool]:
        signed = env.open(Policy)
        if signed.statement.owner != caller:
            raise SignatureInvalid("a policy must be published by its owner")
        PolicyRules.parse(signed.statement.rules)
        index, created = self._state.store(conn, env, now=now)
        if created:
            conn.execute(policies.insert().values(policy=env.digest, owner=caller))
        return index, created

    def get_policy(self, digest: str) -> PolicyView:
        with read_transaction(self._state.engine) as conn:
            env, index = statement(conn, digest, Policy.TYPE)
        return PolicyView(policy=digest, envelope=env, log_index=index)

    # --- datasets -----------------------------------------------------------------------

    def publish(
        self, body: PublishDatasetBody, *, caller: PartyId, now: int
    ) -> Stored[PublishedDataset]:
        """Store the attestation (and the policy it names, when sent) with an inclusion proof."""
        env, policy_env = body.attestation, body.policy
        att = env.open(DatasetAttestation).statement
        if att.owner != caller:
            raise SignatureInvalid("an attestation must be published by its owner")
        with write_transaction(self._state.engine) as conn:
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
            index, created = self._state.store(conn, env, now=now)
            if created:
                insert_datasets(conn, [(env.digest, att)], registered_at=now)
            view = self._views(conn, [env.digest])[0]
            note = latest_checkpoint(conn)
            size = checkpoint_size(note)
            proof = log_on(conn).inclusion_proof(index, size)
        published = PublishedDataset(
            **dict(view),
            inclusion=Inclusion(checkpoint=note, proof=tuple(proof), size=size),
        )
        return Stored(published, created=created)

    def get(self, dataset: str) -> DatasetView:
        with read_transaction(self._state.engine) as conn:
            return self._views(conn, [dataset])[0]

    def page(self, *, owner: str | None, limit: int, cursor: str | None) -> DatasetPage:
        """Newest first; ``cursor`` is the sequence number the previous page ended after."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be 1..{MAX_PAGE}")
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
        with read_transaction(self._state.engine) as conn:
            rows = conn.execute(stmt).all()
            page = rows[:limit]
            items = self._views(conn, [str(r.dataset) for r in page])
        nxt = str(page[-1].seq) if len(rows) > limit else None
        return DatasetPage(items=tuple(items), next_cursor=nxt)

    def withdraw(self, dataset: str, reason: str, *, caller: PartyId, now: int) -> DatasetView:
        """Mark the dataset withdrawn; requests still waiting on it are rejected with the reason."""
        reason = reason.strip()
        with write_transaction(self._state.engine) as conn:
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
                self._state.transition(
                    conn,
                    str(req),
                    ("pending",),
                    "rejected",
                    f"dataset {dataset} was withdrawn by its owner: {reason}",
                    now,
                )
            return self._views(conn, [dataset])[0]

    # --- privacy budget ------------------------------------------------------------------

    def budget(self, dataset: str, *, caller: PartyId) -> BudgetView:
        """The dataset's DP budget and its use per requester, for its owner only, summed from
        the receipts stored here (see :class:`BudgetView` for what that can and cannot know)."""
        with read_transaction(self._state.engine) as conn:
            row = conn.execute(
                select(datasets.c.owner, datasets.c.policy).where(datasets.c.dataset == dataset)
            ).first()
            if row is None:
                raise NotFound(f"no dataset {dataset}")
            if row.owner != caller:
                raise PolicyDenied("only the dataset's owner sees its privacy budget")
            policy_rules = stored_rules(conn, row.policy)
            found = conn.execute(
                select(requests.c.requester, statements.c.envelope)
                .join(request_inputs, request_inputs.c.request == requests.c.request)
                .join(statements, statements.c.digest == requests.c.receipt)
                .where(request_inputs.c.dataset == dataset, requests.c.receipt.is_not(None))
                .order_by(requests.c.seq)
            ).all()
            spent: dict[str, tuple[int, Decimal, Decimal]] = {}
            simulated = 0
            for requester, raw in found:
                receipt = Receipt.parse_payload(Envelope.from_json(bytes(raw)).payload)
                simulated += receipt.simulated
                runs, eps, delta = spent.get(str(requester), (0, Decimal(0), Decimal(0)))
                for charge in receipt.privacy_spent:
                    if charge.dataset == dataset:
                        eps += Decimal(charge.epsilon)
                        delta += Decimal(charge.delta)
                spent[str(requester)] = (runs + 1, eps, delta)
            names = dict(
                conn.execute(
                    select(parties.c.party, parties.c.name).where(parties.c.party.in_(list(spent)))
                ).all()
            )
        dp = policy_rules.dp if policy_rules is not None else None
        bits = policy_rules.bits if policy_rules is not None else None
        eps_all = sum((e for _, e, _ in spent.values()), Decimal(0))
        delta_all = sum((d for _, _, d in spent.values()), Decimal(0))

        def left(budget: str | None, used: Decimal, cap: Decimal | None = None) -> str | None:
            if budget is None:
                return None
            rest = max(Decimal(budget) - used, Decimal(0))
            return canonical_decimal(rest if cap is None else min(rest, cap))

        eps_left = left(dp.epsilon_total if dp else None, eps_all)
        delta_left = left(dp.delta_total if dp else None, delta_all)
        return BudgetView(
            dataset=dataset,
            policy=row.policy,
            source=(
                "summed from the enclave-signed receipts this coordinator holds; the enclave's "
                "ledger is the source of truth (spent here is a lower bound, remaining an upper "
                "bound); bits are charged in the ledger only"
            ),
            epsilon_total=dp.epsilon_total if dp else None,
            delta_total=dp.delta_total if dp else None,
            epsilon_per_requester=dp.epsilon_per_requester if dp else None,
            delta_per_requester=dp.delta_per_requester if dp else None,
            bits_total=bits.total if bits else None,
            bits_per_requester=bits.per_requester if bits else None,
            epsilon_spent=canonical_decimal(eps_all),
            delta_spent=canonical_decimal(delta_all),
            epsilon_remaining=eps_left,
            delta_remaining=delta_left,
            receipts=len(found),
            simulated_receipts=simulated,
            requesters=tuple(
                RequesterBudget(
                    requester=who,
                    requester_name=names.get(who),
                    requester_fingerprint=fingerprint(who),
                    runs=runs,
                    epsilon_spent=canonical_decimal(eps),
                    delta_spent=canonical_decimal(delta),
                    epsilon_remaining=left(
                        dp.epsilon_per_requester if dp else None,
                        eps,
                        Decimal(eps_left) if eps_left is not None else None,
                    ),
                    delta_remaining=left(
                        dp.delta_per_requester if dp else None,
                        delta,
                        Decimal(delta_left) if delta_left is not None else None,
                    ),
                )
                for who, (runs, eps, delta) in sorted(spent.items())
            ),
        )

    # --- discovery ----------------------------------------------------------------------

    def warm_discovery(self) -> None:
        """Load the discovery index now (seconds at 100k datasets) instead of on the first search."""
        with read_transaction(self._state.engine) as conn:
            self._discovery.view(conn)

    def search(self, query: SearchQuery) -> SearchPage:
        with read_transaction(self._state.engine) as conn:
            page = search(conn, query, self._discovery)
            views = self._views(conn, [h.dataset for h in page.hits])
        return SearchPage(
            items=tuple(
                SearchHit(dataset=v, score=h.score, jaccard=h.jaccard)
                for h, v in zip(page.hits, views, strict=True)
            ),
            next_cursor=page.next_cursor,
            total=page.total,
        )

    def _views(self, conn: Connection, ids: Sequence[str]) -> list[DatasetView]:
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
            envelope = Envelope.from_dict(json.loads(bytes(r.envelope)))
            att = DatasetAttestation.model_validate_json(envelope.payload, strict=True)
            out.append(
                DatasetView(
                    dataset=dataset,
                    owner=att.owner,
                    owner_name=r.name,
                    owner_fingerprint=fingerprint(att.owner),
                    title=att.title,
                    description=att.description,
                    topics=att.topics,
                    keywords=att.keywords,
                    profile=att.profile.model_dump(mode="json"),
                    row_count=att.row_count,
                    time_range=att.time_range,
                    schema_=tuple(c.model_dump(mode="json") for c in att.schema_),
                    policy=att.policy,
                    commitment=att.commitment.model_dump(mode="json"),
                    status=r.status,
                    status_reason=r.status_reason,
                    created_at=att.created_at,
                    log_index=int(r.log_index),
                    envelope=envelope,
                )
            )
        return out
