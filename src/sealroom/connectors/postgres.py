"""A PostgreSQL table or read-only query as a source, streamed in batches (psycopg 3).

Reading is fenced twice: the transaction is ``READ ONLY`` (the server refuses any
write, including ``nextval`` and data-modifying CTEs), and the query runs as a
server-side cursor (``DECLARE ... CURSOR FOR``), which takes one ``SELECT`` or
``VALUES`` and nothing else. Rows come :data:`BATCH_ROWS` at a time, so the
client holds the Arrow table and one batch. A read-only role for the owner's
publishing user is still the right thing to set up: these fences stop mistakes,
the role stops everything else.

The URL's password is used for this connection and never kept: the locator the
dataset index records has no password, so approval later finds it where libpq
looks (``PGPASSWORD``, ``~/.pgpass``, a service file).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, LiteralString, cast

import pyarrow as pa

from sealroom.connectors.types import DEFAULT_LIMITS, ReadLimits, normalise_table
from sealroom.errors import BackendUnavailable, InvalidInput

if TYPE_CHECKING:
    import psycopg

__all__ = ["BATCH_ROWS", "PostgresSource"]

BATCH_ROWS = 1 << 14
_EXTRA = (
    "reading postgresql:// sources needs the PostgreSQL driver: pip install 'sealroom[postgres]'"
)
_INTS = {"int2", "int4", "int8", "oid"}
_FLOATS = {"float4", "float8"}
_TEXTS = {"text", "varchar", "bpchar", "name", "citext", "uuid", "char"}
_WRITES = frozenset(
    [
        "INSERT",
        "UPDATE",
        "DELETE",
        "MERGE",
        "CREATE",
        "DROP",
        "ALTER",
        "TRUNCATE",
        "GRANT",
        "REVOKE",
        "COPY",
        "CALL",
        "DO",
        "VACUUM",
        "REINDEX",
        "CLUSTER",
        "LOCK",
        "SET",
        "RESET",
        "COMMENT",
        "SECURITY",
        "REFRESH",
    ]
)
_TIMES: dict[str, pa.DataType] = {
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "timestamp": pa.timestamp("us"),
    "date": pa.date32(),
}


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise InvalidInput(_EXTRA) from None
    return psycopg


@dataclass(frozen=True, slots=True, kw_only=True)
class PostgresSource:
    """``table`` (a name, optionally schema-qualified) or ``query`` in the database at
    ``conninfo`` (libpq key=value form, without password) + an optional ``password``."""

    conninfo: str
    table: str | None = None
    query: str | None = None
    password: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def parse(cls, url: str, *, table: str | None, query: str | None) -> PostgresSource:
        if (table is None) == (query is None):
            raise InvalidInput("a postgresql:// source takes exactly one of --table or --query")
        if table is not None and not table.strip():
            raise InvalidInput("--table must name a table")
        if query is not None:
            query = query.strip().rstrip(";").strip()
            if not query:
                raise InvalidInput("--query must hold a SELECT")
        _psycopg()
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        try:
            params = conninfo_to_dict(url.replace("postgres://", "postgresql://", 1))
        except (
            Exception
        ):  # psycopg.ProgrammingError; the URL is not echoed (it may hold a password)
            raise InvalidInput("the postgresql:// URL cannot be parsed") from None
        password = params.pop("password", None)
        return cls(
            conninfo=make_conninfo(**{k: str(v) for k, v in params.items()}),
            table=table,
            query=query,
            password=None if password is None else str(password),
        )

    @classmethod
    def from_locator(cls, locator: Mapping[str, str]) -> PostgresSource:
        conninfo = locator.get("conninfo")
        if not isinstance(conninfo, str):
            raise InvalidInput("the dataset index's PostgreSQL entry has no connection")
        return cls(conninfo=conninfo, table=locator.get("table"), query=locator.get("query"))

    @property
    def name(self) -> str:
        from psycopg.conninfo import conninfo_to_dict

        p = conninfo_to_dict(self.conninfo)
        where = f"postgresql://{p.get('user', '')}@{p.get('host', '')}"
        where += (f":{p['port']}" if "port" in p else "") + f"/{p.get('dbname', '')}"
        return where + (f" table {self.table}" if self.table is not None else " query")

    def locator(self) -> dict[str, str]:
        loc = {"kind": "postgresql", "conninfo": self.conninfo}
        if self.table is not None:
            loc["table"] = self.table
        if self.query is not None:
            loc["query"] = self.query
        return loc

    def read(self, *, limits: ReadLimits = DEFAULT_LIMITS) -> pa.Table:
        pg = _psycopg()
        extra = {} if self.password is None else {"password": self.password}
        try:
            conn = pg.connect(self.conninfo, connect_timeout=10, **extra)
        except pg.OperationalError as exc:
            raise BackendUnavailable(f"{self.name}: cannot connect ({_first_line(exc)})") from None
        try:
            with conn:
                conn.read_only = True
                with conn.transaction():
                    return self._read(conn, pg, limits)
        except pg.errors.ReadOnlySqlTransaction as exc:
            raise InvalidInput(
                f"{self.name}: the query tries to write ({_first_line(exc)}); only read-only "
                "queries are read"
            ) from None
        except pg.errors.SyntaxError as exc:
            verb = (self.query or "").split(maxsplit=1)[0].upper() if self.query else ""
            if verb in _WRITES:
                raise InvalidInput(
                    f"{self.name}: the query writes ({verb}); only one read-only SELECT is read"
                ) from None
            raise InvalidInput(
                f"{self.name}: not one read-only SELECT ({_first_line(exc)})"
            ) from None
        except pg.errors.FeatureNotSupported as exc:
            if "data-modifying" in str(exc):
                raise InvalidInput(
                    f"{self.name}: the query tries to write (a data-modifying WITH); only "
                    "read-only queries are read"
                ) from None
            raise InvalidInput(f"{self.name}: {_first_line(exc)}") from None
        except (pg.DataError, pg.ProgrammingError) as exc:
            raise InvalidInput(f"{self.name}: {_first_line(exc)}") from None
        except pg.OperationalError as exc:
            raise BackendUnavailable(f"{self.name}: {_first_line(exc)}") from None

    def _read(self, conn: psycopg.Connection[Any], pg: Any, limits: ReadLimits) -> pa.Table:
        from psycopg import sql

        if self.table is not None:
            found = conn.execute(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
                (self.table,),
            ).fetchone()
            if found is None:
                raise InvalidInput(f"{self.name}: no table {self.table!r} in the database")
            statement: sql.Composed | sql.SQL = sql.SQL("SELECT * FROM {}").format(
                sql.Identifier(found[0], found[1])
            )
        else:
            statement = sql.SQL(cast(LiteralString, self.query))
        batches: list[pa.Table] = []
        held = 0
        with conn.cursor(name="sealroom_source") as cur:
            cur.itersize = BATCH_ROWS
            cur.execute(statement)
            if cur.description is None:
                raise InvalidInput(f"{self.name}: the query returns no rows")
            names = [d.name for d in cur.description]
            types = [self._arrow_type(conn, d.name, d.type_code) for d in cur.description]
            while rows := cur.fetchmany(BATCH_ROWS):
                batch = _batch(rows, names, types)
                held += batch.nbytes
                if held > limits.max_bytes:
                    raise InvalidInput(
                        f"{self.name}: the data is over the limit of {limits.max_bytes} bytes"
                    )
                batches.append(batch)
        if not batches:
            raise InvalidInput(f"{self.name}: no rows")
        return normalise_table(pa.concat_tables(batches), self.name, limits)

    def _arrow_type(self, conn: psycopg.Connection[Any], column: str, oid: int) -> pa.DataType:
        info = conn.adapters.types.get(oid)
        pg_name = info.name if info is not None else f"oid {oid}"
        if info is not None and info.oid != oid and info.name in _TEXTS:
            return pa.list_(pa.string())
        if info is not None and info.oid == oid:
            if pg_name in _INTS:
                return pa.int64()
            if pg_name in _FLOATS:
                return pa.float64()
            if pg_name == "bool":
                return pa.bool_()
            if pg_name in _TEXTS:
                return pa.string()
            if pg_name in _TIMES:
                return _TIMES[pg_name]
        shown = pg_name + ("[]" if info is not None and info.oid != oid else "")
        raise InvalidInput(
            f"{self.name}: column {column!r} has PostgreSQL type {shown}, which sealroom does "
            f"not read; cast it in a --query (e.g. {column}::float8 or {column}::text)"
        )


def _batch(rows: Sequence[tuple[Any, ...]], names: list[str], types: list[pa.DataType]) -> pa.Table:
    arrays = []
    for i, t in enumerate(types):
        values = [row[i] for row in rows]
        if t == pa.string():
            values = [v if v is None or isinstance(v, str) else str(v) for v in values]
        elif pa.types.is_list(t):
            values = [
                None if v is None else [None if x is None else str(x) for x in v] for v in values
            ]
        elif t == pa.date32():
            values = [v if v is None or type(v) is date else _bad_date(v) for v in values]
        elif pa.types.is_timestamp(t):
            values = [v if v is None or isinstance(v, datetime) else _bad_date(v) for v in values]
        arrays.append(pa.array(values, type=t))
    return pa.Table.from_arrays(arrays, names=names)


def _bad_date(value: object) -> object:
    raise InvalidInput(f"a date or time value cannot be read ({type(value).__name__})")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
