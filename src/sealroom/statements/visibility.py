"""Which statements the public may read: the rest are logged as salted commitments.

Public: what the API serves anyone (dataset attestations, policies, enclave evidence, the
marketplace's models, portfolios, evaluations and reviews;
checkpoints are not statements). Every other type, including types added later (budget
charges, ...), is private unless listed here: a forgotten type stays hidden rather than
leaking (fail closed). The marketplace's credit transfers, offers, acceptances and liveness
answers are deliberately private: they say who pays whom for computing on whose data
(docs/decisions.md, "Transfers, offers, acceptances and liveness answers are private").
"""

from __future__ import annotations

from sealroom.statements.market_models import Evaluation, Model, Portfolio, Review
from sealroom.statements.models import DatasetAttestation, EnclaveEvidence, Policy

__all__ = ["PUBLIC_TYPES", "is_public"]

PUBLIC_TYPES: frozenset[str] = frozenset(
    {
        DatasetAttestation.TYPE,
        Policy.TYPE,
        EnclaveEvidence.TYPE,
        # The marketplace's public cards: models, portfolios, evaluations and reviews are
        # served to anyone (a rating nobody can audit is worth nothing). Disputes and
        # resolutions stay private to their parties; reputation shows only their counts.
        Model.TYPE,
        Portfolio.TYPE,
        Evaluation.TYPE,
        Review.TYPE,
    }
)


def is_public(statement_type: str) -> bool:
    """Whether a statement of this type is logged in clear (else as a salted commitment)."""
    return statement_type in PUBLIC_TYPES
