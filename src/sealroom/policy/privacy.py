"""The privacy vocabulary that policies decide in and computations obey.

Policies own these types: a policy states a threshold ``k``, a budget and the
columns that may never leave, and the enclave hands a computation the same
values as a :class:`PrivacyContext`. The policy engine judges a computation by
what it declares (:class:`ComputationInfo`), never by importing the library, so
the arrow runs one way: computations depend on policy, not the reverse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Protocol

from sealroom.errors import InvalidInput

__all__ = [
    "DEFAULT_K",
    "ZERO_COST",
    "ComputationInfo",
    "DpMode",
    "PrivacyClass",
    "PrivacyContext",
    "PrivacyCost",
    "RequestShape",
]

PrivacyClass = Literal["aggregate", "model", "content"]
"""``aggregate``: counts and statistics only. ``model``: trained parameters.
``content``: may reveal (redacted) record text, so never approved automatically."""

DEFAULT_K = 5
"""Minimum number of records a term or group must occur in before it may be released."""


DpMode = Literal["required", "optional", "off"]
"""How a policy lets a computation release: ``required``, only differentially private
measurements; ``optional``, DP or an exact release of the owner's pinned shape; ``off``, only
exact releases of the pinned shape."""


class ComputationInfo(Protocol):
    """What a policy needs to know about a computation to decide on it.

    ``isolating`` names the parameters whose values can single out entities (group-by
    sets, percentiles, filters, feature lists, a score's range, SQL text); ``selectors``
    says whether another input selects or weights the protected input's rows (a join on
    an identifier). A computation with either is *requester-parametrised*: what it
    releases depends on choices the requester makes, so a policy lets it release
    exactly only in a shape the owner pinned.
    """

    @property
    def id(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def privacy_class(self) -> PrivacyClass: ...

    @property
    def isolating(self) -> tuple[str, ...]: ...

    @property
    def selectors(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class RequestShape:
    """What one request asks of one input, in the terms a policy decides on.

    ``dp``: the run releases only differentially private measurements (it charges a
    budget). ``params``: the computation's isolating parameters with their values, as
    JSON values. ``partners``: the content commitment roots of the request's OTHER inputs
    (``attestation.commitment.root``).
    """

    dp: bool
    params: Mapping[str, Any]
    partners: frozenset[str]


@dataclass(frozen=True, slots=True)
class PrivacyCost:
    """The budget one run consumes on each input; charged before it runs.

    ``epsilon`` and ``delta``: differential privacy. ``bits``: the most information an
    exact release whose content a requester's code chooses can carry (log2 of the number
    of distinct outputs; quality-score), charged against the policy's bit budget.
    """

    epsilon: Decimal = Decimal(0)
    delta: Decimal = Decimal(0)
    bits: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if self.epsilon < 0 or self.delta < 0 or self.delta >= 1 or self.bits < 0:
            raise InvalidInput("a privacy cost needs epsilon >= 0, 0 <= delta < 1 and bits >= 0")

    @property
    def is_zero(self) -> bool:
        return self.epsilon == 0 and self.delta == 0 and self.bits == 0

    @property
    def is_dp(self) -> bool:
        """The run releases only differentially private measurements (it spends epsilon)."""
        return self.epsilon != 0 or self.delta != 0


ZERO_COST = PrivacyCost()


@dataclass(frozen=True, slots=True)
class PrivacyContext:
    """Output-privacy parameters from the owners' verified (and composed) policies.

    Every tuple has one entry per input, in request order. ``k`` counts distinct
    entities of ``entity_columns[i]`` (or rows when that is None). Columns in
    ``never_output`` must not appear in any output; ``join_only`` columns may be
    used to join or match and nothing else. ``max_output_rows`` caps row-shaped
    outputs (None: no cap). ``cost`` is the budget already charged for this run:
    a DP computation must spend at most that.
    """

    k: tuple[int, ...]
    entity_columns: tuple[str | None, ...] = ()
    never_output: tuple[frozenset[str], ...] = ()
    join_only: tuple[frozenset[str], ...] = ()
    max_output_rows: int | None = None
    cost: PrivacyCost = ZERO_COST
    # Per input: the owner's SQL analysis rules (the validated JSON object of the policy's
    # ``sql`` rules), for computations that admit requester SQL; None when not declared.
    analysis: tuple[Mapping[str, Any] | None, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.k)
        if not self.k or any(k < 1 for k in self.k):
            raise InvalidInput("every input needs a threshold k of at least 1")
        # Omitted per-input tuples mean "nothing declared" for every input.
        for name, empty in (
            ("entity_columns", None),
            ("never_output", frozenset()),
            ("join_only", frozenset()),
            ("analysis", None),
        ):
            value = getattr(self, name)
            if value == ():
                object.__setattr__(self, name, (empty,) * n)
            elif len(value) != n:
                raise InvalidInput(f"privacy context: {name} needs one entry per input")
        if self.max_output_rows is not None and self.max_output_rows < 1:
            raise InvalidInput("max_output_rows must be at least 1")

    @classmethod
    def uniform(cls, n_inputs: int, k: int = DEFAULT_K) -> PrivacyContext:
        return cls(k=(k,) * n_inputs)
