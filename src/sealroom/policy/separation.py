"""Which counts one release may hold together: entity sets equal, or at least k apart.

Two numbers released together whose entity sets differ by 1 to k - 1 entities
release a third by subtraction: a count (or a fact) about fewer than k entities
("12 entities write 'hiv', 10 write 'hiv test'": 2 write the one without the
other). The enclave's difference check (:mod:`sealroom.enclave.history`)
refuses such a release outright. A computation that chooses what it lists (a
ranked list of terms or patterns) keeps its release inside the rule instead:
it walks its list best first and leaves out each number whose entity set
:class:`Separated` does not admit, so what it releases passes the enclave's
check and no count below k can be derived from two of its numbers.

Equal sets are admitted: two numbers on the same entities are the same number.
"""

from __future__ import annotations

from collections.abc import Hashable, Set

from sealroom.errors import InvalidInput

__all__ = ["Separated"]


class Separated:
    """The entity sets of one release so far, pairwise equal or at least ``k`` entities apart.

    Only sets whose sizes differ by less than ``k`` can be closer than ``k``, so a
    check compares a new set with the sets of nearly its size only.
    """

    __slots__ = ("_by_size", "_k")

    def __init__(self, k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidInput(f"k must be an integer of at least 1, got {k!r}")
        self._k = k
        self._by_size: dict[int, list[frozenset[Hashable]]] = {}

    def admits(self, members: Set[Hashable]) -> bool:
        """Whether ``members`` is equal to, or at least k entities away from, every set held."""
        n = len(members)
        for size in range(max(0, n - self._k + 1), n + self._k):
            for held in self._by_size.get(size, ()):
                if 0 < len(members ^ held) < self._k:
                    return False
        return True

    def admit(self, members: Set[Hashable]) -> bool:
        """Hold ``members`` and return True if :meth:`admits` it; otherwise change nothing."""
        if self._k == 1:
            return True  # every difference is at least 1: nothing to hold
        if not self.admits(members):
            return False
        frozen = frozenset(members)
        same = self._by_size.setdefault(len(frozen), [])
        if frozen not in same:
            same.append(frozen)
        return True
