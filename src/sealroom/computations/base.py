"""What a computation is: a vetted, versioned, pure function with declared privacy properties.

A computation never sees keys, statements or the network: the enclave hands it
Arrow tables that already match their commitments and a :class:`PrivacyContext`
taken from the owners' verified policies, and it returns a value of its declared
output model. Its code digest covers the source of every module it declares, so
an owner approves exactly the code that runs.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Generic, Literal

import pyarrow as pa
from pydantic import BaseModel
from typing_extensions import TypeVar

from sealroom.computations.column_uses import ColumnUse, check_column_uses
from sealroom.errors import InvalidInput
from sealroom.policy.privacy import (
    DEFAULT_K,
    ZERO_COST,
    PrivacyClass,
    PrivacyContext,
    PrivacyCost,
    RequestShape,
)
from sealroom.statements import ComputationRef, Digest
from sealroom.statements.fields import parse_object

__all__ = [
    "DEFAULT_K",
    "ZERO_COST",
    "Computation",
    "Footprint",
    "PrivacyClass",
    "PrivacyContext",
    "PrivacyCost",
    "Release",
    "Released",
    "SchemaText",
    "code_digest_of",
    "schema_text",
]

Release = Literal["all-parties", "requester"]
"""Who may receive the output: the requester and every input owner, or the requester only."""

P = TypeVar("P", bound=BaseModel, default=Any)
"""A computation's parameter model; a bare ``Computation`` (the registry's) takes any."""

_CODE_DOMAIN = b"sealroom-computation-code-v1\x00"


@dataclass(frozen=True, slots=True)
class Footprint:
    """Which entities stand behind the numbers of an exact release, for difference checks.

    ``cells[i]`` holds, for input ``i``, one set of that input's entity values (of its
    policy's entity column; row numbers when it has none) per released number; numbers
    computed on the same rows may share one set. An input that contributes nothing to
    a number (e.g. the requester's side of a join) has no cell for it.
    """

    cells: tuple[tuple[frozenset[Hashable], ...], ...]


@dataclass(frozen=True, slots=True)
class Released:
    """An exact release and its footprint (what :attr:`Computation.run_fn` may return)."""

    output: BaseModel
    footprint: Footprint


SchemaText = tuple[tuple[str, str], ...]
"""An input's columns as its attestation publishes them: (name, Arrow type as text)."""


def schema_text(schema: pa.Schema) -> SchemaText:
    """A table's schema in its attested form (what the owner's profiler publishes)."""
    return tuple((f.name, str(f.type)) for f in schema)


def code_digest_of(modules: Sequence[ModuleType]) -> Digest:
    """SHA-256 over the source of ``modules``, length-prefixed and in the order given."""
    h = hashlib.sha256(_CODE_DOMAIN)
    for module in modules:
        source = inspect.getsource(module).encode("utf-8")
        name = module.__name__.encode("utf-8")
        h.update(len(name).to_bytes(4, "big") + name + len(source).to_bytes(8, "big") + source)
    return Digest("sha256:" + h.hexdigest())


@dataclass(frozen=True, slots=True)
class Computation(Generic[P]):
    """One entry of the computation library.

    ``input_names`` fixes the meaning of each position in a request's ``inputs``
    (e.g. ``("expert", "learner")``). ``run`` must be pure and deterministic
    given its arguments; it raises :class:`InvalidInput` for data it cannot use.
    ``run_fn`` and ``cost_fn`` take the computation's own parameter model: the
    check that parameters are of that model (what :meth:`parse_params` returns)
    is made here, once for every computation.
    """

    id: str
    version: str
    summary: str
    privacy_class: PrivacyClass
    release: Release
    input_names: tuple[str, ...]
    params: type[P]
    output: type[BaseModel]
    # Returns the output, or a Released with the footprint of an exact release (the
    # enclave's difference checks need it: sealroom.enclave.history).
    run_fn: Callable[[Sequence[pa.Table], P, PrivacyContext], BaseModel | Released]
    modules: tuple[ModuleType, ...]
    # The budget a run with these parameters consumes on every input (DP computations).
    cost_fn: Callable[[P], PrivacyCost] | None = None
    # True: the last input name repeats, so the computation takes len(input_names) or more
    # inputs (e.g. aggregate-stats over 2..64 parties).
    variadic: bool = False
    # The parameters whose values can single out entities: an exact (non-DP) release is
    # allowed only when the owner's policy pins each of them (policy.rules.decide).
    isolating: tuple[str, ...] = ()
    # True when another input selects or weights the protected input's rows (a join on an
    # identifier): an exact release is then allowed only with partners the owner pins.
    selectors: bool = False
    # Checks a request against its inputs' schemas and policies before any row is read,
    # raising PolicyDenied under a named rule: the coordinator's pre-check calls it with
    # the attested schemas, and ``run_fn`` calls it again on :func:`schema_text` of the
    # tables it is given, so the same code admits in both places. None: nothing to check.
    admit_fn: Callable[[P, Sequence[SchemaText], PrivacyContext], None] | None = None
    # The columns a request with these parameters names, given the number of inputs: checked
    # against the attested schemas by the pre-check and against the tables by the enclave
    # (sealroom.computations.column_uses), so a missing column is named before anyone uploads.
    columns_fn: Callable[[P, int], Sequence[ColumnUse]] | None = None
    _digest: list[Digest] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = [n for n in self.isolating if n not in self.params.model_fields]
        if unknown:
            raise InvalidInput(f"{self.id}: isolating parameter {unknown[0]!r} is not a parameter")

    @property
    def code_digest(self) -> Digest:
        if not self._digest:
            self._digest.append(code_digest_of(self.modules))
        return self._digest[0]

    def ref(self) -> ComputationRef:
        return ComputationRef(id=self.id, version=self.version, code_digest=self.code_digest)

    def parse_params(self, raw: object) -> P:
        """Validate request parameters against the declared schema, or raise :class:`InvalidInput`."""
        return parse_object(self.params, raw, what=f"{self.id} parameter")

    def _own(self, params: BaseModel) -> P:
        if not isinstance(params, self.params):
            raise InvalidInput(
                f"{self.id} needs {self.params.__name__} (use Computation.parse_params)"
            )
        return params

    def accepts_inputs(self, n: int) -> bool:
        return n >= len(self.input_names) if self.variadic else n == len(self.input_names)

    def check_inputs(self, n: int) -> None:
        if not self.accepts_inputs(n):
            more = " or more" if self.variadic else ""
            raise InvalidInput(
                f"{self.id} takes {len(self.input_names)}{more} inputs "
                f"({', '.join(self.input_names)}{', ...' if self.variadic else ''}), got {n}"
            )

    def request_shape(self, params: BaseModel, *, partners: Iterable[str]) -> RequestShape:
        """What a request with ``params`` asks of an input whose co-inputs have the content
        commitment roots ``partners``."""
        own = self._own(params)
        values = own.model_dump(mode="json")
        return RequestShape(
            dp=self.cost(own).is_dp,
            params={name: values.get(name) for name in self.isolating},
            partners=frozenset(partners),
        )

    def admit(
        self, params: BaseModel, schemas: Sequence[SchemaText], privacy: PrivacyContext
    ) -> None:
        """Refuse (PolicyDenied, naming the rule) what the schemas and policies already rule
        out; the enclave decides again on the data."""
        self.check_inputs(len(schemas))
        self.check_columns(params, schemas)
        if self.admit_fn is not None:
            self.admit_fn(self._own(params), schemas, privacy)

    def check_columns(self, params: BaseModel, schemas: Sequence[SchemaText]) -> None:
        """Raise :class:`InvalidInput` naming the first column the request names that an
        input lacks or holds in a kind the computation cannot read."""
        if self.columns_fn is not None:
            uses = self.columns_fn(self._own(params), len(schemas))
            check_column_uses(self.id, uses, schemas, self.input_names)

    def cost(self, params: BaseModel) -> PrivacyCost:
        """What a run with ``params`` consumes; charged atomically before anything runs."""
        own = self._own(params)
        return ZERO_COST if self.cost_fn is None else self.cost_fn(own)

    def execute(
        self, inputs: Sequence[pa.Table], params: BaseModel, privacy: PrivacyContext
    ) -> tuple[BaseModel, Footprint | None]:
        """Run on tables in ``input_names`` order: the output, re-validated against
        ``output``, and the footprint of an exact release (None when not reported)."""
        self.check_inputs(len(inputs))
        if len(privacy.k) != len(inputs):
            raise InvalidInput(f"{self.id}: the privacy context has {len(privacy.k)} inputs")
        self.check_columns(params, [schema_text(t.schema) for t in inputs])
        result = self.run_fn(inputs, self._own(params), privacy)
        if not isinstance(result, Released):
            return self.output.model_validate(result.model_dump()), None
        if len(result.footprint.cells) != len(inputs):
            raise InvalidInput(f"{self.id}: a footprint needs one entry per input")
        return self.output.model_validate(result.output.model_dump()), result.footprint

    def run(
        self, inputs: Sequence[pa.Table], params: BaseModel, privacy: PrivacyContext
    ) -> BaseModel:
        """The output of :meth:`execute` alone."""
        return self.execute(inputs, params, privacy)[0]
