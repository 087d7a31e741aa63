"""The marketplace's formulas as pure functions: the portfolio reward split and reputation.

Both are exact (integers and fractions, never floats), so every party recomputes the same
numbers from the log, and docs/marketplace-models.md's worked examples are tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from sealroom.errors import InvalidInput
from sealroom.statements.market_models import WEIGHT_SCALE

__all__ = [
    "DISPUTE_PENALTY",
    "PRIOR",
    "PRIOR_WEIGHT",
    "RATER_CAP",
    "PaidUse",
    "Rating",
    "Reputation",
    "Share",
    "reputation",
    "split_reward",
]


# --- portfolio rewards ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Share:
    """One payee's part of a reward: ``dataset`` is None for the curator's fee."""

    payee: str
    dataset: str | None
    amount: int


def split_reward(
    amount: int, items: Sequence[tuple[str, str, int]], *, curator: str, fee: int
) -> tuple[Share, ...]:
    """Split ``amount`` (minor units) over a portfolio's ``items`` (dataset, owner, weight in
    basis points summing to 10 000) after the curator's ``fee`` (basis points).

    fee_amount = floor(amount * fee / 10 000); the rest R goes to the datasets by weight,
    each floor(R * w / 10 000), and the units left over (fewer than the number of items)
    one each to the largest remainders (R * w mod 10 000), ties to the smaller dataset
    digest (the largest-remainder method). The shares sum to ``amount`` exactly.
    """
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise InvalidInput("a reward is a non-negative integer of minor units")
    if not 0 <= fee <= WEIGHT_SCALE:
        raise InvalidInput("a curator's fee is 0..10000 basis points")
    if not items or sum(w for _, _, w in items) != WEIGHT_SCALE or any(w < 1 for *_, w in items):
        raise InvalidInput("portfolio weights are positive basis points summing to 10000")
    if len({d for d, _, _ in items}) != len(items):
        raise InvalidInput("a portfolio names each dataset once")
    fee_amount = amount * fee // WEIGHT_SCALE
    rest = amount - fee_amount
    base = {d: rest * w // WEIGHT_SCALE for d, _, w in items}
    left = rest - sum(base.values())
    by_remainder = sorted(items, key=lambda it: (-(rest * it[2] % WEIGHT_SCALE), it[0]))
    for d, _, _ in by_remainder[:left]:
        base[d] += 1
    shares = [Share(payee=curator, dataset=None, amount=fee_amount)]
    shares += [Share(payee=o, dataset=d, amount=base[d]) for d, o, _ in items]
    return tuple(shares)


# --- reputation -----------------------------------------------------------------------------

PRIOR = Fraction(1, 2)
"""The score of a subject nobody has weighed in on."""
PRIOR_WEIGHT = 1000
"""How much paid use (minor units) the prior counts as."""
RATER_CAP = 100_000
"""The most one rater's paid use of one item counts (a rich rater is still one voice)."""
DISPUTE_PENALTY = 1
"""Each upheld dispute against a subject divides its score by one more."""


@dataclass(frozen=True, slots=True)
class PaidUse:
    """A settled, receipted paid use: ``payer`` paid ``amount`` to use ``item`` (a model)."""

    payer: str
    item: str
    amount: int


@dataclass(frozen=True, slots=True)
class Rating:
    """``rater``'s value in [0, 1] for ``item`` (an evaluation's score, a review's rating)."""

    rater: str
    item: str
    value: Fraction
    at: int


@dataclass(frozen=True, slots=True)
class Reputation:
    subject: str
    score: Fraction
    weight: int
    raters: int
    ignored: int
    upheld_against: int

    @property
    def score_text(self) -> str:
        """The score rounded half-even to 6 decimals."""
        scaled = self.score * 10**6
        q, r = divmod(scaled.numerator, scaled.denominator)
        twice = 2 * r
        if twice > scaled.denominator or (twice == scaled.denominator and q % 2):
            q += 1
        return f"{q // 10**6}.{q % 10**6:06d}"


def reputation(
    subject: str,
    ratings: Iterable[Rating],
    uses: Iterable[PaidUse],
    *,
    upheld_against: int = 0,
) -> Reputation:
    """A subject's reputation: a Bayesian average of ratings weighted by the rater's paid,
    receipted use of the rated item, divided by (1 + upheld disputes against the subject).

    w(r, i) = min(sum of amounts r paid to use i, RATER_CAP), 0 for the subject itself;
    only each rater's latest rating of an item counts; then
    score = (PRIOR_WEIGHT * PRIOR + sum w * value) / (PRIOR_WEIGHT + sum w)
            / (1 + DISPUTE_PENALTY * upheld_against).
    An identity that has paid for nothing weighs nothing, so fresh identities cannot move
    a score; buying weight costs real paid use of the very item rated.
    """
    if upheld_against < 0:
        raise InvalidInput("a dispute count is non-negative")
    paid: dict[tuple[str, str], int] = {}
    for u in uses:
        if u.amount < 0:
            raise InvalidInput("a paid use has a non-negative amount")
        paid[(u.payer, u.item)] = paid.get((u.payer, u.item), 0) + u.amount
    latest: dict[tuple[str, str], Rating] = {}
    for r in ratings:
        if not 0 <= r.value <= 1:
            raise InvalidInput("a rating's value is in [0, 1]")
        key = (r.rater, r.item)
        seen = latest.get(key)
        if seen is None or (r.at, r.value) > (seen.at, seen.value):
            latest[key] = r
    total = Fraction(PRIOR_WEIGHT) * PRIOR
    weight = 0
    raters: set[str] = set()
    ignored = 0
    for (rater, item), r in sorted(latest.items()):
        w = 0 if rater == subject else min(paid.get((rater, item), 0), RATER_CAP)
        if w == 0:
            ignored += 1
            continue
        total += w * r.value
        weight += w
        raters.add(rater)
    score = total / (PRIOR_WEIGHT + weight) / (1 + DISPUTE_PENALTY * upheld_against)
    return Reputation(
        subject=subject,
        score=score,
        weight=weight,
        raters=len(raters),
        ignored=ignored,
        upheld_against=upheld_against,
    )
