"""The log's public reads: public statements in clear, private ones only as commitments."""

from __future__ import annotations

from sqlalchemy import select

from sealroom.coordinator.log import append_statement, log_on
from sealroom.crypto.merkle import leaf_hash
from sealroom.statements import sign_statement
from sealroom.storage.engine import read_transaction, write_transaction
from sealroom.storage.schema import statements
from sealroom.transparency.entries import commitment_entry, statement_commitment
from tests.coordinator.coord_helpers import World
from tests.helpers import T0, request


def test_public_statements_are_served_private_ones_only_as_commitments(w: World) -> None:
    rid = w.request((w.dataset,))
    view = w.c.requests.get(rid, caller=w.requester.party_id, now=T0 + 20)
    assert view.log_salt is not None
    public = w.c.log.entry(0)
    assert public.entry is not None
    assert public.entry.digest == w.dataset
    assert public.commitment is None
    private = w.c.log.entry(view.log_index)
    assert private.entry is None
    assert private.commitment == statement_commitment(view.log_salt, view.envelope.to_json())
    assert private.leaf_hash == leaf_hash(commitment_entry(private.commitment))
    with read_transaction(w.c.state.engine) as conn:
        salts = dict(conn.execute(select(statements.c.type, statements.c.log_salt)).all())
    assert salts["sealroom.dataset-attestation"] is None
    assert salts["sealroom.computation-request"] == view.log_salt


def test_a_private_statement_logged_in_clear_before_is_withheld(w: World) -> None:
    # As a coordinator from before commitments logged it: the request itself is the leaf.
    env = sign_statement(request(w.requester, (w.dataset,)), w.requester).envelope
    with write_transaction(w.c.state.engine) as conn:
        index, _ = append_statement(conn, env, w.c.state.signer)
    served = w.c.log.entry(index)
    assert served.entry is None
    assert served.commitment is None
    assert served.leaf_hash == leaf_hash(env.to_json())  # still checkable against the tree


def test_a_leaf_that_is_no_statement_shows_only_its_hash(w: World) -> None:
    with write_transaction(w.c.state.engine) as conn:
        index = log_on(conn).append(b"not a statement")
    served = w.c.log.entry(index)
    assert (served.entry, served.commitment) == (None, None)
    assert served.leaf_hash == leaf_hash(b"not a statement")
