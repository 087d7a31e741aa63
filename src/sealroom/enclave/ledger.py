"""The enclave's privacy-budget ledger: charged atomically, exactly, before anything runs.

Every job charges each input's ledger entry BEFORE the enclave unseals or
computes anything, in one transaction that (1) takes a per-dataset lock,
(2) returns the existing charge if this (request, dataset) was already charged
(a retried job never pays twice, and a crash after charging and before release
is retried against the same charge), (3) checks the per-requester and total
epsilon, delta and bit budgets and the requester's query count in the policy's
period, and (4) records the charge. Anything over a limit raises
:class:`~sealroom.errors.PolicyDenied` naming the limit. Bits are the
information budget of exact releases whose content requester code chooses
(quality-score): a run charges log2 of the number of distinct outputs it can
give, beside its epsilon.

Amounts are exact: stored as canonical decimal strings, summed as
:class:`~decimal.Decimal` (ten charges of 0.1 exhaust a budget of 1 exactly),
never floats.

Where it lives. This local ledger is one enclave instance's own state (an
SQLite file under its state directory, or a PostgreSQL database it trusts):
a restart without that state, or a second instance, starts from zero. The
worker therefore charges the deployment's ledger in the transparency log
instead (:mod:`sealroom.enclave.charges`); this class stays for a single
enclave run by hand over a database it trusts, and its limit checks
(:func:`check_limits`) are the ones both ledgers apply.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from sealroom.crypto.files import create_private
from sealroom.errors import BackendUnavailable, PolicyDenied
from sealroom.policy.privacy import PrivacyCost
from sealroom.policy.rules import PolicyRules
from sealroom.statements import BudgetCharge, Signed
from sealroom.statements.fields import canonical_decimal

__all__ = ["BudgetLedger", "Charge", "SqlBudgetLedger", "check_limits"]

_PREC = 80


@dataclass(frozen=True, slots=True)
class Charge:
    """A charge for one (request, dataset); ``reused``: it was recorded earlier.

    ``statement``: the signed charge a logged ledger appends with the release
    (:mod:`sealroom.enclave.charges`); ``None`` for this local ledger, which
    commits the charge itself.
    """

    request: str
    dataset: str
    requester: str
    epsilon: Decimal
    delta: Decimal
    charged_at: int
    reused: bool = False
    bits: Decimal = Decimal(0)
    statement: Signed[BudgetCharge] | None = None


class BudgetLedger(Protocol):
    """Charges privacy budgets and query counts, atomically and idempotently."""

    def charge(
        self,
        *,
        dataset: str,
        requester: str,
        cost: PrivacyCost,
        request: str,
        now: int,
        rules: PolicyRules | None,
    ) -> Charge: ...


_metadata = sa.MetaData()
_locks = sa.Table(
    "budget_locks",
    _metadata,
    sa.Column("dataset", sa.String(80), primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
)
_charges = sa.Table(
    "budget_charges",
    _metadata,
    sa.Column("request", sa.String(80), primary_key=True),
    sa.Column("dataset", sa.String(80), primary_key=True),
    sa.Column("requester", sa.String(80), nullable=False),
    sa.Column("epsilon", sa.String(40), nullable=False),
    sa.Column("delta", sa.String(40), nullable=False),
    sa.Column("charged_at", sa.BigInteger, nullable=False),
    # Added after the first release: _add_bits_column upgrades older ledgers in place.
    sa.Column("bits", sa.String(40), nullable=False, server_default="0"),
    sa.Index("ix_budget_charges_dataset", "dataset"),
)


class SqlBudgetLedger:
    """A :class:`BudgetLedger` on SQLAlchemy (an SQLite file by default, or PostgreSQL)."""

    def __init__(self, *, engine: Engine) -> None:
        self._engine = engine
        for attempt in range(5):
            try:
                _metadata.create_all(engine)
                _add_bits_column(engine)
                break
            except OperationalError:  # another process created the tables at the same moment
                if attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))

    @classmethod
    def open(cls, url: str) -> SqlBudgetLedger:
        """Open (creating if needed) the ledger at a database URL."""
        args: dict[str, object] = {"timeout": 60} if url.startswith("sqlite") else {}
        return cls(engine=sa.create_engine(url, connect_args=args))

    @classmethod
    def in_directory(cls, state_dir: Path) -> SqlBudgetLedger:
        """The ledger file ``budget.db`` in the enclave's state directory (owner-only: 0600)."""
        path = (state_dir / "budget.db").resolve()
        create_private(path)
        return cls.open(f"sqlite:///{path}")

    @classmethod
    def temporary(cls) -> tuple[SqlBudgetLedger, Path]:
        """A ledger in a fresh temporary directory (simulation and tests: lost on exit)."""
        state_dir = Path(tempfile.mkdtemp(prefix="sealroom-enclave-"))
        return cls.in_directory(state_dir), state_dir

    def close(self) -> None:
        self._engine.dispose()

    def _ensure_lock_row(self, dataset: str) -> None:
        with self._engine.connect() as conn:
            if conn.execute(sa.select(_locks.c.dataset).where(_locks.c.dataset == dataset)).first():
                return
        try:
            with self._engine.begin() as conn:
                conn.execute(sa.insert(_locks).values(dataset=dataset, version=0))
        except IntegrityError:
            pass  # created concurrently

    def charge(
        self,
        *,
        dataset: str,
        requester: str,
        cost: PrivacyCost,
        request: str,
        now: int,
        rules: PolicyRules | None,
    ) -> Charge:
        """Charge ``cost`` for ``request`` on ``dataset``, or raise PolicyDenied (nothing recorded)."""
        try:
            self._ensure_lock_row(dataset)
            with self._engine.begin() as conn:
                # The per-dataset lock: a write first, so SQLite takes its write lock now and
                # PostgreSQL locks the row; every later read in the transaction is current.
                conn.execute(
                    sa.update(_locks)
                    .where(_locks.c.dataset == dataset)
                    .values(version=_locks.c.version + 1)
                )
                existing = conn.execute(
                    sa.select(_charges).where(
                        _charges.c.request == request, _charges.c.dataset == dataset
                    )
                ).first()
                if existing is not None:
                    return Charge(
                        request=request,
                        dataset=dataset,
                        requester=existing.requester,
                        epsilon=Decimal(existing.epsilon),
                        delta=Decimal(existing.delta),
                        charged_at=int(existing.charged_at),
                        reused=True,
                        bits=Decimal(existing.bits),
                    )
                rows = conn.execute(
                    sa.select(
                        _charges.c.requester,
                        _charges.c.epsilon,
                        _charges.c.delta,
                        _charges.c.bits,
                        _charges.c.charged_at,
                    ).where(_charges.c.dataset == dataset)
                ).all()
                check_limits(
                    rows, dataset=dataset, requester=requester, cost=cost, now=now, rules=rules
                )
                conn.execute(
                    sa.insert(_charges).values(
                        request=request,
                        dataset=dataset,
                        requester=requester,
                        epsilon=canonical_decimal(cost.epsilon),
                        delta=canonical_decimal(cost.delta),
                        bits=canonical_decimal(cost.bits),
                        charged_at=now,
                    )
                )
        except OperationalError as exc:
            raise BackendUnavailable(
                f"the budget ledger is unavailable ({type(exc.orig).__name__})"
            ) from None
        return Charge(
            request=request,
            dataset=dataset,
            requester=requester,
            epsilon=cost.epsilon,
            delta=cost.delta,
            charged_at=now,
            bits=cost.bits,
        )

    def spent(self, *, dataset: str, requester: str | None = None) -> tuple[Decimal, Decimal]:
        """Epsilon and delta spent on ``dataset`` (by ``requester``, or by everyone)."""
        query = sa.select(_charges.c.epsilon, _charges.c.delta).where(_charges.c.dataset == dataset)
        if requester is not None:
            query = query.where(_charges.c.requester == requester)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        with localcontext() as ctx:
            ctx.prec = _PREC
            return (
                sum((Decimal(r.epsilon) for r in rows), Decimal(0)),
                sum((Decimal(r.delta) for r in rows), Decimal(0)),
            )


def _add_bits_column(engine: Engine) -> None:
    """Give a ledger created before bit budgets its ``bits`` column (every old charge: 0)."""
    columns = {c["name"] for c in sa.inspect(engine).get_columns("budget_charges")}
    if "bits" in columns:
        return
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "ALTER TABLE budget_charges ADD COLUMN bits VARCHAR(40) NOT NULL DEFAULT '0'"
                )
            )
    except DBAPIError:  # another process added it at the same moment
        columns = {c["name"] for c in sa.inspect(engine).get_columns("budget_charges")}
        if "bits" not in columns:
            raise


def check_limits(
    rows: Sequence[Any],
    *,
    dataset: str,
    requester: str,
    cost: PrivacyCost,
    now: int,
    rules: PolicyRules | None,
) -> None:
    """Raise PolicyDenied naming the first limit this charge would break, with its rule's name
    (the words the pre-check uses: ``dp-budget``, ``bits-budget``; and ``max-queries``)."""
    if cost.is_dp and (rules is None or rules.dp is None):
        raise PolicyDenied(
            f"rule dp-budget: dataset {dataset}: the computation spends differential-privacy "
            "budget and the policy sets none",
            rule="dp-budget",
        )
    if cost.bits and (rules is None or rules.bits is None):
        raise PolicyDenied(
            f"rule bits-budget: dataset {dataset}: the computation releases up to {cost.bits} "
            "bits chosen by requester code and the policy sets no bit budget",
            rule="bits-budget",
        )
    if rules is None:
        return
    with localcontext() as ctx:
        ctx.prec = _PREC
        if rules.bits is not None and cost.bits:
            mine = [r for r in rows if r.requester == requester]
            for scope, subset, limit in (
                ("per-requester", mine, rules.bits.per_requester),
                ("total", rows, rules.bits.total),
            ):
                spent = sum((Decimal(r.bits) for r in subset), Decimal(0))
                if spent + cost.bits > Decimal(limit):
                    remaining = max(Decimal(limit) - spent, Decimal(0))
                    raise PolicyDenied(
                        f"rule bits-budget: dataset {dataset}: the {scope} bit budget {limit} "
                        f"has {canonical_decimal(remaining)} left; this run needs "
                        f"{canonical_decimal(cost.bits)}",
                        rule="bits-budget",
                    )
        if rules.dp is not None and cost.is_dp:
            mine = [r for r in rows if r.requester == requester]
            checks = (
                ("epsilon", "per-requester", mine, cost.epsilon, rules.dp.epsilon_per_requester),
                ("epsilon", "total", rows, cost.epsilon, rules.dp.epsilon_total),
                ("delta", "per-requester", mine, cost.delta, rules.dp.delta_per_requester),
                ("delta", "total", rows, cost.delta, rules.dp.delta_total),
            )
            for what, scope, subset, amount, limit in checks:
                if amount == 0:
                    continue
                spent = sum((Decimal(getattr(r, what)) for r in subset), Decimal(0))
                if spent + amount > Decimal(limit):
                    remaining = max(Decimal(limit) - spent, Decimal(0))
                    raise PolicyDenied(
                        f"rule dp-budget: dataset {dataset}: the {scope} {what} budget {limit} "
                        f"has {canonical_decimal(remaining)} left; this run needs "
                        f"{canonical_decimal(amount)}",
                        rule="dp-budget",
                    )
    if rules.max_queries is not None:
        since = now - rules.max_queries.period_seconds
        recent = sum(1 for r in rows if r.requester == requester and r.charged_at > since)
        if recent >= rules.max_queries.count:
            raise PolicyDenied(
                f"rule max-queries: dataset {dataset}: requester {requester} has used {recent} "
                f"of {rules.max_queries.count} queries in the last "
                f"{rules.max_queries.period_seconds} s",
                rule="max-queries",
            )
