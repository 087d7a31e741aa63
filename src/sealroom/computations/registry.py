"""The computation library: look computations up by id and version, never by trust in a caller."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sealroom.computations.base import Computation
from sealroom.errors import InvalidInput, NotFound
from sealroom.statements import ComputationRef

__all__ = ["Registry", "default_registry"]


class Registry:
    __slots__ = ("_by_key",)

    def __init__(self, computations: Iterable[Computation]) -> None:
        self._by_key: dict[tuple[str, str], Computation] = {}
        for c in computations:
            key = (c.id, c.version)
            if key in self._by_key:
                raise InvalidInput(f"computation {c.id} {c.version} registered twice")
            self._by_key[key] = c

    def __iter__(self) -> Iterator[Computation]:
        return iter(sorted(self._by_key.values(), key=lambda c: (c.id, c.version)))

    def get(self, computation_id: str, version: str | None = None) -> Computation:
        """The named computation (the newest version when ``version`` is None)."""
        matches = [c for (cid, _), c in self._by_key.items() if cid == computation_id]
        if version is not None:
            matches = [c for c in matches if c.version == version]
        if not matches:
            known = ", ".join(sorted({c.id for c in self._by_key.values()}))
            raise NotFound(f"unknown computation {computation_id!r} (known: {known})")
        return max(matches, key=lambda c: tuple(int(p) for p in c.version.split(".")))

    def resolve(self, ref: ComputationRef) -> Computation:
        """The computation a request names, refusing a code digest that is not this code."""
        c = self.get(ref.id, ref.version)
        if ref.code_digest != c.code_digest:
            raise InvalidInput(
                f"{ref.id} {ref.version}: code digest {ref.code_digest} is not the code here "
                f"({c.code_digest})"
            )
        return c


def default_registry() -> Registry:
    """Every computation shipped with sealroom: each module of this package with a ``COMPUTATION``.

    Modules are imported in name order; a module that fails to import is an error, never
    silently skipped.
    """
    import importlib
    import pkgutil

    import sealroom.computations as package

    found: list[Computation] = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.ispkg:
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        computation = getattr(module, "COMPUTATION", None)
        if isinstance(computation, Computation):
            found.append(computation)
    return Registry(found)
