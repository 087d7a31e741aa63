"""The seam through which the marketplace moves credits: a small :class:`Payments` protocol.

The model registry, portfolios and disputes decide *who* pays *whom* *how much* and
*why*; the credits ledger (double-entry, logged transfers, escrow) decides whether it can
happen and records it. Every call names an idempotency key derived from the signed
statement or request that caused it, so a retried settlement never pays twice and a key
reused for a different transfer is refused.

:class:`InMemoryPayments` is a complete, thread-safe implementation without durability,
for tests and single-process demos; :class:`NoPayments` (the default when nothing is
wired) declines every non-zero transfer, so a paid use is never recorded as paid when no
ledger stands behind it (fail closed).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from sealroom.errors import Conflict, InvalidInput

__all__ = [
    "InMemoryPayments",
    "NoPayments",
    "PaymentDeclined",
    "Payments",
    "Transfer",
    "check_transfer",
]


class PaymentDeclined(Conflict):
    """The payments backend refused a transfer (no funds, no backend); nothing moved."""


@dataclass(frozen=True, slots=True)
class Transfer:
    """One transfer the backend made: ``amount`` minor units from ``payer`` to ``payee``."""

    key: str
    kind: Literal["charge", "refund"]
    payer: str
    payee: str
    amount: int
    memo: str


class Payments(Protocol):
    """What the marketplace needs from the credits ledger."""

    def charge(
        self, *, payer: str, payee: str, amount: int, idempotency_key: str, memo: str
    ) -> Transfer:
        """Move ``amount`` from ``payer`` to ``payee`` once per key; raise
        :class:`PaymentDeclined` (nothing moved) when it cannot."""
        ...

    def refund(
        self, *, payer: str, payee: str, amount: int, idempotency_key: str, memo: str
    ) -> Transfer:
        """Move ``amount`` back from ``payer`` (who was paid) to ``payee`` once per key."""
        ...


def check_transfer(payer: str, payee: str, amount: int, key: str) -> None:
    """What every :class:`Payments` refuses before anything moves (InvalidInput)."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise InvalidInput("an amount is a non-negative integer of minor units")
    if payer == payee:
        raise InvalidInput("a transfer needs two different parties")
    if not key or len(key) > 200:
        raise InvalidInput("an idempotency key has 1-200 characters")


class InMemoryPayments:
    """Balances in memory: complete semantics (no overdraft, idempotent keys), no durability."""

    def __init__(self, balances: Mapping[str, int] | None = None) -> None:
        self._lock = threading.Lock()
        self._balances: dict[str, int] = dict(balances or {})
        self._done: dict[str, Transfer] = {}

    def balance(self, party: str) -> int:
        with self._lock:
            return self._balances.get(party, 0)

    def transfers(self) -> tuple[Transfer, ...]:
        with self._lock:
            return tuple(self._done.values())

    def _move(self, t: Transfer) -> Transfer:
        check_transfer(t.payer, t.payee, t.amount, t.key)
        with self._lock:
            seen = self._done.get(t.key)
            if seen is not None:
                if seen != t:
                    raise Conflict(f"idempotency key {t.key!r} was used for another transfer")
                return seen
            if self._balances.get(t.payer, 0) < t.amount:
                raise PaymentDeclined(f"{t.payer} cannot pay {t.amount}: insufficient balance")
            self._balances[t.payer] = self._balances.get(t.payer, 0) - t.amount
            self._balances[t.payee] = self._balances.get(t.payee, 0) + t.amount
            self._done[t.key] = t
            return t

    def charge(
        self, *, payer: str, payee: str, amount: int, idempotency_key: str, memo: str
    ) -> Transfer:
        return self._move(Transfer(idempotency_key, "charge", payer, payee, amount, memo))

    def refund(
        self, *, payer: str, payee: str, amount: int, idempotency_key: str, memo: str
    ) -> Transfer:
        return self._move(Transfer(idempotency_key, "refund", payer, payee, amount, memo))


class NoPayments:
    """No ledger wired: zero-amount transfers succeed (free use), anything else is declined."""

    def _zero(
        self, kind: Literal["charge", "refund"], t: tuple[str, str, int, str, str]
    ) -> Transfer:
        payer, payee, amount, key, memo = t
        check_transfer(payer, payee, amount, key)
        if amount:
            raise PaymentDeclined("no payments backend is configured on this coordinator")
        return Transfer(key, kind, payer, payee, 0, memo)

    def charge(
        self, *, payer: str, payee: str, amount: int, idempotency_key: str, memo: str
    ) -> Transfer:
        return self._zero("charge", (payer, payee, amount, idempotency_key, memo))

    def refund(
        self, *, payer: str, payee: str, amount: int, idempotency_key: str, memo: str
    ) -> Transfer:
        return self._zero("refund", (payer, payee, amount, idempotency_key, memo))
