"""The coordinator's tables (SQLAlchemy Core; SQLite and PostgreSQL).

Everything here is public metadata, signed statements or ciphertext: the
coordinator never stores plaintext data or results. Statements are stored as
their canonical envelope bytes, so what a client fetches is exactly what was
signed and logged; the other columns are indexes derived from them.

Full-text search objects (an SQLite FTS5 virtual table, a PostgreSQL tsvector
table with a GIN index) are dialect-specific and live outside this metadata:
see :mod:`sealroom.storage.search` and the migrations.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from sealroom.transparency import sqlstore

__all__ = [
    "all_metadata",
    "credit_accounts",
    "credit_escrows",
    "credit_offers",
    "credit_postings",
    "credit_transfers",
    "dataset_keywords",
    "datasets",
    "disputes",
    "enclaves",
    "erasures",
    "evaluations",
    "input_parts",
    "input_uploads",
    "job_deletions",
    "jobs",
    "ledger_charges",
    "market_models",
    "metadata",
    "model_inputs",
    "model_uses",
    "nonces",
    "org_members",
    "parties",
    "policies",
    "portfolio_items",
    "portfolio_requests",
    "portfolios",
    "protocol_runs",
    "request_blobs",
    "request_history",
    "request_inputs",
    "request_recipients",
    "requests",
    "results",
    "reviews",
    "room_events",
    "room_members",
    "room_runs",
    "rooms",
    "run_approvals",
    "session_messages",
    "session_participants",
    "sessions",
    "settings",
    "statements",
]

metadata = MetaData()

_DIGEST = String(71)  # "sha256:" + 64 hex
_PARTY = String(55)  # "sr1" + 52 base32
_Seq = BigInteger().with_variant(Integer(), "sqlite")  # INTEGER PRIMARY KEY is SQLite's rowid

parties = Table(
    "parties",
    metadata,
    Column("party", _PARTY, primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("name", String(200), nullable=False),
    # sealroom.text.name_key(name) for parties (one party per name); NULL for enclaves and for
    # names registered twice before names were unique (0004 keeps the first holder's).
    Column("name_key", String(200), nullable=True),
    Column("signing_key", LargeBinary(32), nullable=False),
    Column("sealing_key", LargeBinary(32), nullable=False),
    Column("registered_at", BigInteger, nullable=False),
    # The X-Wing key of a post-quantum identity (1216 bytes); NULL for legacy ones.
    Column("kem_key", LargeBinary(1216), nullable=True),
    CheckConstraint("kind IN ('party', 'enclave')", name="parties_kind"),
    Index("parties_name_key", "name_key", unique=True),
)

statements = Table(
    "statements",
    metadata,
    Column("digest", _DIGEST, primary_key=True),
    Column("type", String(100), nullable=False),
    Column("signer", _PARTY, nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("log_index", BigInteger, nullable=False, unique=True),
    Column("stored_at", BigInteger, nullable=False),
    # The salt of the leaf's commitment for a private statement (None: logged in clear).
    Column("log_salt", LargeBinary(32), nullable=True),
)

policies = Table(
    "policies",
    metadata,
    Column("policy", _DIGEST, ForeignKey("statements.digest"), primary_key=True),
    Column("owner", _PARTY, nullable=False, index=True),
)

datasets = Table(
    "datasets",
    metadata,
    Column("seq", _Seq, primary_key=True, autoincrement=True),
    Column("dataset", _DIGEST, ForeignKey("statements.digest"), nullable=False, unique=True),
    Column("owner", _PARTY, nullable=False),
    Column("title", String(200), nullable=False),
    Column("row_count", BigInteger, nullable=False),
    Column("time_start", BigInteger, nullable=True),
    Column("time_end", BigInteger, nullable=True),
    Column("policy", _DIGEST, nullable=True),
    Column("keyword_count", Integer, nullable=False),
    Column("status", String(10), nullable=False),
    Column("status_reason", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("registered_at", BigInteger, nullable=False),
    CheckConstraint("status IN ('active', 'withdrawn')", name="datasets_status"),
    Index("datasets_owner", "owner", "seq"),
    Index("datasets_status_rows", "status", "row_count", "time_start", "time_end"),
)

dataset_keywords = Table(
    "dataset_keywords",
    metadata,
    Column("term", String(100), primary_key=True),
    Column("seq", _Seq, ForeignKey("datasets.seq"), primary_key=True),
    Column("count", BigInteger, nullable=True),
    Index("dataset_keywords_seq", "seq", "term"),
)

requests = Table(
    "requests",
    metadata,
    Column("seq", _Seq, primary_key=True, autoincrement=True),
    Column("request", _DIGEST, ForeignKey("statements.digest"), nullable=False, unique=True),
    Column("requester", _PARTY, nullable=False, index=True),
    Column("computation_id", String(64), nullable=False),
    Column("computation_version", String(20), nullable=False),
    Column("status", String(10), nullable=False),
    Column("status_reason", Text, nullable=True),
    Column("precheck", Text, nullable=False),  # canonical JSON list
    Column("receipt", _DIGEST, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("registered_at", BigInteger, nullable=False),
    # Retention (the smallest of the inputs' policies, room included): the sealed results
    # of a completed request are deleted once ``results_until`` has passed.
    Column("retention_seconds", BigInteger, nullable=True),
    Column("results_until", BigInteger, nullable=True),
    Column("results_deleted_at", BigInteger, nullable=True),
    CheckConstraint(
        "status IN ('pending', 'approved', 'running', 'completed', 'failed', "
        "'rejected', 'withdrawn', 'expired')",
        name="requests_status",
    ),
    Index("requests_status_seq", "status", "seq"),
    Index("requests_results_until", "results_until"),
)

request_inputs = Table(
    "request_inputs",
    metadata,
    Column("request", _DIGEST, ForeignKey("requests.request"), primary_key=True),
    Column("dataset", _DIGEST, ForeignKey("datasets.dataset"), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("owner", _PARTY, nullable=False, index=True),
    Column("decision", String(10), nullable=False),
    Column("mode", String(10), nullable=True),
    Column("reason", Text, nullable=True),
    Column("approval", _DIGEST, nullable=True),
    Column("enclave", _DIGEST, nullable=True),
    Column("sealed_size", BigInteger, nullable=True),
    CheckConstraint("decision IN ('pending', 'approve', 'reject')", name="request_inputs_decision"),
    Index("request_inputs_dataset", "dataset"),
)

request_blobs = Table(
    "request_blobs",
    metadata,
    Column("request", _DIGEST, primary_key=True),
    Column("dataset", _DIGEST, primary_key=True),
    Column("sealed", LargeBinary, nullable=False),
)

# Chunked, resumable uploads of sealed inputs (0013): the owner declares the parts' digests
# up front, sends the parts in any order and as often as it takes, then completes the upload.
input_uploads = Table(
    "input_uploads",
    metadata,
    Column("upload", _DIGEST, primary_key=True),
    Column("request", _DIGEST, nullable=False),
    Column("dataset", _DIGEST, nullable=False),
    Column("owner", _PARTY, nullable=False),
    Column("enclave", _DIGEST, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("part_size", Integer, nullable=False),
    Column("parts", Integer, nullable=False),
    # SHA-256 of each sealed part, 32 bytes each, in order.
    Column("digests", LargeBinary, nullable=False),
    # The commitment's leaf index, sealed to the enclave (purpose "input-leaves").
    Column("leaves", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("completed_at", BigInteger, nullable=True),
    Index("input_uploads_input", "request", "dataset", unique=True),
)

input_parts = Table(
    "input_parts",
    metadata,
    Column("upload", _DIGEST, ForeignKey("input_uploads.upload"), primary_key=True),
    Column("part", Integer, primary_key=True, autoincrement=False),
    Column("sealed", LargeBinary, nullable=False),
)

request_recipients = Table(
    "request_recipients",
    metadata,
    Column("request", _DIGEST, ForeignKey("requests.request"), primary_key=True),
    Column("party", _PARTY, primary_key=True),
    Column("position", Integer, nullable=False),
    Index("request_recipients_party", "party"),
)

request_history = Table(
    "request_history",
    metadata,
    Column("id", _Seq, primary_key=True, autoincrement=True),
    Column("request", _DIGEST, ForeignKey("requests.request"), nullable=False, index=True),
    Column("status", String(10), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
)

results = Table(
    "results",
    metadata,
    Column("request", _DIGEST, ForeignKey("requests.request"), primary_key=True),
    Column("recipient", _PARTY, primary_key=True),
    Column("sealed", LargeBinary, nullable=False),
    # Commit-then-reveal (enclave/release.py): ``sealed`` is wrapped under a release key that
    # the enclave posts here, sealed to the recipient, once its charges are proved logged.
    Column("release_key", LargeBinary, nullable=True),
    Column("released_at", BigInteger, nullable=True),
)

enclaves = Table(
    "enclaves",
    metadata,
    Column("seq", _Seq, primary_key=True, autoincrement=True),
    Column("evidence", _DIGEST, ForeignKey("statements.digest"), nullable=False, unique=True),
    Column("party", _PARTY, ForeignKey("parties.party"), nullable=False, index=True),
    Column("tee", String(20), nullable=False),
    Column("simulated", Boolean, nullable=False),
    Column("registered_at", BigInteger, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("request", _DIGEST, ForeignKey("requests.request"), primary_key=True),
    Column("evidence", _DIGEST, nullable=False),
    Column("enclave", _PARTY, nullable=False),
    Column("claimed_at", BigInteger, nullable=False),
    Column("lease_until", BigInteger, nullable=False, index=True),
    # How many times the request was claimed (a lapsed lease re-queues it, up to a limit).
    Column("attempts", Integer, nullable=False, server_default="1"),
)

# Each dataset's budget ledger: a hash chain of BudgetCharge statements, one per
# (request, dataset). The primary key makes (dataset, seq) a compare-and-swap: two
# enclaves charging on the same head cannot both commit.
ledger_charges = Table(
    "ledger_charges",
    metadata,
    Column("dataset", _DIGEST, primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("request", _DIGEST, ForeignKey("requests.request"), nullable=False),
    Column("charge", _DIGEST, ForeignKey("statements.digest"), nullable=False, unique=True),
    Column("charged_at", BigInteger, nullable=False),
    Index("ledger_charges_request", "request", "dataset", unique=True),
)

# The credits ledger (sealroom.coordinator.credits): double entry in integer minor units.
# Every transfer is a logged Transfer statement; these tables are indexes derived from them
# in the same transaction. The CHECK is the last line of the no-overdraft rule (the ledger
# also debits with a conditional UPDATE); only issuance may go negative.
credit_accounts = Table(
    "credit_accounts",
    metadata,
    Column("account", String(80), primary_key=True),
    Column("balance", BigInteger, nullable=False),
    CheckConstraint("balance >= 0 OR account = 'issuance'", name="credit_accounts_no_overdraft"),
)

credit_transfers = Table(
    "credit_transfers",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("key", String(160), nullable=False, unique=True),
    Column("transfer", _DIGEST, ForeignKey("statements.digest"), nullable=False, unique=True),
    Column("kind", String(10), nullable=False),
    Column("cause", _DIGEST, nullable=True, index=True),
    # SHA-256 of the canonical (kind, cause, postings, memo): an idempotent retry matches it.
    Column("body_digest", _DIGEST, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

credit_postings = Table(
    "credit_postings",
    metadata,
    Column("seq", BigInteger, ForeignKey("credit_transfers.seq"), primary_key=True),
    Column("account", String(80), primary_key=True),
    Column("amount", BigInteger, nullable=False),
    Index("credit_postings_account", "account", "seq"),
)

# A paid request's price, fixed when it was escrowed: each input's share (JSON list of
# [dataset, owner, amount]) so settlement pays exactly what was escrowed.
credit_escrows = Table(
    "credit_escrows",
    metadata,
    Column("request", _DIGEST, ForeignKey("requests.request"), primary_key=True),
    Column("payer", _PARTY, nullable=False),
    Column("price", BigInteger, nullable=False),
    Column("fee_bps", Integer, nullable=False),
    Column("shares", Text, nullable=False),
    Column("status", String(10), nullable=False),
    CheckConstraint("status IN ('held', 'settled', 'refunded')", name="credit_escrows_status"),
)

# Negotiated terms (Offer statements), indexed for the parties they are addressed to.
credit_offers = Table(
    "credit_offers",
    metadata,
    Column("offer", _DIGEST, ForeignKey("statements.digest"), primary_key=True),
    Column("owner", _PARTY, nullable=False, index=True),
    Column("dataset", _DIGEST, nullable=False),
    Column("requester", _PARTY, nullable=True, index=True),
    Column("expires_at", BigInteger, nullable=False),
)

# The coordinator's own record of each sealed blob it erased (a sealed input when its
# request ended, a sealed result at retention): the blob's SHA-256 and size, so a party can
# match it to the enclave's signed Deletion. The coordinator is not trusted to have erased;
# this is its account, not a proof.
erasures = Table(
    "erasures",
    metadata,
    Column("id", _Seq, primary_key=True, autoincrement=True),
    Column("request", _DIGEST, ForeignKey("requests.request"), nullable=False),
    Column("kind", String(20), nullable=False),  # "sealed-input" | "sealed-result"
    Column("subject", String(71), nullable=False),  # the dataset, or the recipient party
    Column("sealed", _DIGEST, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("erased_at", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Index("erasures_request", "request"),
)

# The enclave's signed Deletion statements (stored and logged in ``statements``), by request.
job_deletions = Table(
    "job_deletions",
    metadata,
    Column("deletion", _DIGEST, ForeignKey("statements.digest"), primary_key=True),
    Column("request", _DIGEST, ForeignKey("requests.request"), nullable=False),
    Column("enclave", _PARTY, nullable=False),
    Column("erased_at", BigInteger, nullable=False),
    Index("job_deletions_request", "request"),
)

nonces = Table(
    "nonces",
    metadata,
    Column("party", _PARTY, primary_key=True),
    Column("nonce", String(32), primary_key=True),
    Column("expires_at", BigInteger, nullable=False, index=True),
)

# The relay for protocols run between parties (sealroom.coordinator.relay): the
# coordinator stores each message only as the sealed, signed bytes it was given.
sessions = Table(
    "sessions",
    metadata,
    Column("session", String(32), primary_key=True),
    Column("protocol", String(64), nullable=False),
    Column("request", _DIGEST, nullable=True),
    Column("created_by", _PARTY, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),
)

# A no-trust protocol run under a request (sealroom.protocols.queries): the relay session
# its requester started (sessions expire; this row does not), and, once complete, the JSON
# list of its co-signed receipts' statement digests (each logged).
protocol_runs = Table(
    "protocol_runs",
    metadata,
    Column("request", _DIGEST, ForeignKey("requests.request"), primary_key=True),
    Column("session", String(32), nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("completed_at", BigInteger, nullable=True),
    Column("receipts", Text, nullable=True),
    UniqueConstraint("session", name="protocol_runs_session"),
)

session_participants = Table(
    "session_participants",
    metadata,
    Column("session", String(32), ForeignKey("sessions.session"), primary_key=True),
    Column("role", String(64), primary_key=True),
    Column("party", _PARTY, nullable=False),
    Column("position", Integer, nullable=False),
    Index("session_participants_party", "party"),
    Index("session_participants_unique_party", "session", "party", unique=True),
)

session_messages = Table(
    "session_messages",
    metadata,
    Column("id", _Seq, primary_key=True, autoincrement=True),
    Column("session", String(32), ForeignKey("sessions.session"), nullable=False),
    Column("sender", String(64), nullable=False),
    Column("recipient", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("session_messages_inbox", "session", "recipient", "id"),
)

# --- rooms (issue 14) -------------------------------------------------------------------

rooms = Table(
    "rooms",
    metadata,
    Column("room", _DIGEST, ForeignKey("statements.digest"), primary_key=True),
    Column("host", _PARTY, nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("template", String(64), nullable=False),
    Column("policy", _DIGEST, ForeignKey("statements.digest"), nullable=False, unique=True),
    Column("snapshot_digest", _DIGEST, nullable=False),
    Column("risky", Boolean, nullable=False),
    Column("approvers_required", Integer, nullable=False),
    Column("region", String(64), nullable=True),
    Column("max_parties", Integer, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

room_members = Table(
    "room_members",
    metadata,
    Column("room", _DIGEST, ForeignKey("rooms.room"), primary_key=True),
    Column("party", _PARTY, ForeignKey("parties.party"), primary_key=True),
    Column("role", String(10), nullable=False),  # host | member
    Column("invitation", _DIGEST, nullable=True),
    Column("status", String(10), nullable=False),  # invited | joined
    # The joining party's own pre-check report (what its card reveals), as canonical JSON.
    Column("precheck", Text, nullable=True),
    Column("joined_at", BigInteger, nullable=True),
    # The member's newest consent statement and what it says: none | consented | withdrawn.
    Column("consent", _DIGEST, nullable=True),
    Column("consent_state", String(10), nullable=False, server_default="none"),
    Column("consent_at", BigInteger, nullable=True),
    Column("invited_at", BigInteger, nullable=False),
    Index("room_members_party", "party"),
)

room_runs = Table(
    "room_runs",
    metadata,
    Column("request", _DIGEST, ForeignKey("requests.request"), primary_key=True),
    Column("room", _DIGEST, ForeignKey("rooms.room"), nullable=False, index=True),
    # Canonical JSON of the run's parameters, for the near-identical-runs red flag.
    Column("shape", Text, nullable=False),
)

room_events = Table(
    "room_events",
    metadata,
    Column("id", _Seq, primary_key=True, autoincrement=True),
    Column("room", _DIGEST, ForeignKey("rooms.room"), nullable=False, index=True),
    Column("at", BigInteger, nullable=False),
    # created, invited, joined, consented, withdrew, run, approved, red-flag, refused, ...
    Column("kind", String(20), nullable=False),
    Column("party", _PARTY, nullable=True),
    Column("request", _DIGEST, nullable=True),
    Column("detail", Text, nullable=False),
)

org_members = Table(
    "org_members",
    metadata,
    Column("org", _PARTY, ForeignKey("parties.party"), primary_key=True),
    Column("member", _PARTY, ForeignKey("parties.party"), primary_key=True),
    Column("role", String(10), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("statement", _DIGEST, ForeignKey("statements.digest"), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("org_members_member", "member"),
)

run_approvals = Table(
    "run_approvals",
    metadata,
    Column("request", _DIGEST, ForeignKey("requests.request"), primary_key=True),
    Column("approver", _PARTY, primary_key=True),
    Column("org", _PARTY, nullable=False),
    Column("decision", String(10), nullable=False),
    Column("statement", _DIGEST, ForeignKey("statements.digest"), nullable=False),
    Column("at", BigInteger, nullable=False),
)

settings = Table(
    "settings",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)

# The marketplace (sealroom.coordinator.market): indexes over its logged statements.
# Amounts are integer minor units; the credits themselves move through the payments seam.
market_models = Table(
    "market_models",
    metadata,
    Column("model", _DIGEST, ForeignKey("statements.digest"), primary_key=True),
    Column("trainer", _PARTY, nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("artifact", _DIGEST, nullable=False, unique=True),
    Column("artifact_root", String(44), nullable=False),
    Column("price", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("registered_at", BigInteger, nullable=False),
)

# The datasets a model was trained on (its provenance inputs), for owners' reputation.
model_inputs = Table(
    "model_inputs",
    metadata,
    Column("model", _DIGEST, ForeignKey("market_models.model"), primary_key=True),
    Column("dataset", _DIGEST, primary_key=True),
    Index("model_inputs_dataset", "dataset"),
)

# One row per completed predict request of a model: a receipted use, paid or not.
model_uses = Table(
    "model_uses",
    metadata,
    Column("request", _DIGEST, ForeignKey("requests.request"), primary_key=True),
    Column("model", _DIGEST, ForeignKey("market_models.model"), nullable=False, index=True),
    Column("payer", _PARTY, nullable=False, index=True),
    Column("payee", _PARTY, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("receipt", _DIGEST, nullable=False),
    Column("status", String(10), nullable=False),
    Column("reason", Text, nullable=True),
    Column("settled_at", BigInteger, nullable=False),
    CheckConstraint("status IN ('paid', 'unpaid')", name="model_uses_status"),
)

evaluations = Table(
    "evaluations",
    metadata,
    Column("evaluation", _DIGEST, ForeignKey("statements.digest"), primary_key=True),
    Column("model", _DIGEST, ForeignKey("market_models.model"), nullable=False, index=True),
    Column("evaluator", _PARTY, nullable=False, index=True),
    # One evaluation per paid use: a use is the evaluator's ticket, spent once.
    Column("use", _DIGEST, ForeignKey("model_uses.request"), nullable=False, unique=True),
    Column("score", String(40), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

reviews = Table(
    "reviews",
    metadata,
    Column("review", _DIGEST, ForeignKey("statements.digest"), primary_key=True),
    Column("evaluation", _DIGEST, ForeignKey("evaluations.evaluation"), nullable=False),
    Column("reviewer", _PARTY, nullable=False),
    Column("use", _DIGEST, ForeignKey("model_uses.request"), nullable=False),
    Column("rating", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("reviews_once", "evaluation", "reviewer", unique=True),
)

portfolios = Table(
    "portfolios",
    metadata,
    Column("portfolio", _DIGEST, ForeignKey("statements.digest"), primary_key=True),
    Column("curator", _PARTY, nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("fee", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

portfolio_items = Table(
    "portfolio_items",
    metadata,
    Column("portfolio", _DIGEST, ForeignKey("portfolios.portfolio"), primary_key=True),
    Column("dataset", _DIGEST, ForeignKey("datasets.dataset"), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("weight", Integer, nullable=False),
)

# A request computed over a portfolio and the reward its requester pledged for it, split by
# the weights (sealroom.coordinator.market_formulas.split_reward) when it completes.
portfolio_requests = Table(
    "portfolio_requests",
    metadata,
    Column("request", _DIGEST, ForeignKey("requests.request"), primary_key=True),
    Column("portfolio", _DIGEST, ForeignKey("portfolios.portfolio"), nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),
    Column("status", String(10), nullable=False),
    Column("reason", Text, nullable=True),
    Column("settled_at", BigInteger, nullable=True),
    CheckConstraint("status IN ('pledged', 'paid', 'unpaid')", name="portfolio_requests_status"),
)

disputes = Table(
    "disputes",
    metadata,
    Column("dispute", _DIGEST, ForeignKey("statements.digest"), primary_key=True),
    Column("claimant", _PARTY, nullable=False, index=True),
    Column("respondent", _PARTY, nullable=False, index=True),
    Column("request", _DIGEST, ForeignKey("requests.request"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("status", String(10), nullable=False),
    Column("resolution", _DIGEST, nullable=True),
    Column("refund", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    CheckConstraint("status IN ('open', 'upheld', 'dismissed')", name="disputes_status"),
)


def all_metadata() -> MetaData:
    """Coordinator tables plus the transparency log's, as the migrations create them."""
    combined = MetaData()
    for source in (metadata, sqlstore.metadata):
        for table in source.tables.values():
            table.to_metadata(combined)
    return combined
