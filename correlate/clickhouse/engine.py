"""A DuckDB-shaped connection that runs the analysis inside ClickHouse.

:class:`Engine` gives the analysis what it uses of a DuckDB connection
(``execute(sql, params)`` with ``fetchone``/``fetchall``/``df``, and
``register``/``unregister`` of a small Arrow table) and runs every statement
in ClickHouse, translated by :mod:`correlate.clickhouse.translate`. The run's
per-span tables are built there (``CREATE TABLE … ENGINE = Memory``); only
what a statement returns crosses back, and :attr:`Engine.bytes_fetched`
counts it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from correlate.clickhouse.translate import SETTINGS, TranslationError, to_clickhouse
from correlate.errors import QueryError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


class ClickHouse(Protocol):
    """What the engine needs of a connection (:mod:`correlate.clickhouse.connection`)."""

    def query_arrow(self, sql: str) -> pa.Table: ...

    def command(self, sql: str) -> None: ...

    def insert_arrow(self, table: str, data: pa.Table) -> None: ...


#: Appended to every query: the settings travel with it (an HTTP server keeps no session).
_SETTINGS_CLAUSE = " SETTINGS " + ", ".join(f"{k} = {v}" for k, v in SETTINGS.items())


class Result:
    """A statement's rows, read the way DuckDB's result is read."""

    def __init__(self, table: pa.Table | None) -> None:
        self._table = table
        self._rows: list[tuple[Any, ...]] | None = None
        self._next = 0

    def _all(self) -> list[tuple[Any, ...]]:
        if self._rows is None:
            if self._table is None:
                self._rows = []
            else:
                columns = [_pylist(c) for c in self._table.columns]
                self._rows = list(zip(*columns, strict=True)) if columns else []
        return self._rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows = self._all()[self._next :]
        self._next = len(self._all())
        return rows

    def fetchone(self) -> tuple[Any, ...] | None:
        rows = self._all()
        if self._next >= len(rows):
            return None
        self._next += 1
        return rows[self._next - 1]

    def df(self) -> pd.DataFrame:
        import pandas as pd

        if self._table is None:
            return pd.DataFrame()
        import pyarrow as pa

        frame = self._table.to_pandas(maps_as_pydicts="strict")
        # as DuckDB gives them: integers and booleans with NULLs in pandas' nullable types
        for name, column in zip(self._table.column_names, self._table.columns, strict=True):
            if column.null_count == 0:
                continue
            if pa.types.is_integer(column.type):
                width = column.type.bit_width
                kind = f"{'U' if pa.types.is_unsigned_integer(column.type) else ''}Int{width}"
                frame[name] = pd.array(column.to_pylist(), dtype=kind)
            elif pa.types.is_boolean(column.type):
                frame[name] = pd.array(column.to_pylist(), dtype="boolean")
        return frame

    fetchdf = df

    def arrow(self) -> pa.Table | None:
        return self._table

    @property
    def description(self) -> list[tuple[str, ...]] | None:
        if self._table is None:
            return None
        return [(name,) for name in self._table.column_names]


def _pylist(column: Any) -> list[Any]:
    """A column's values as Python objects, maps as dicts (as DuckDB gives them)."""
    import pyarrow as pa

    if pa.types.is_map(column.type):
        return [None if v is None else dict(v) for v in column.to_pylist()]
    return list(column.to_pylist())


class Engine:
    """Runs DuckDB-dialect analysis statements in ClickHouse (see the module docstring)."""

    def __init__(self, conn: ClickHouse) -> None:
        self.conn = conn
        self.bytes_fetched = 0
        self.statements = 0
        #: (bytes, rows, the statement's first 200 characters) of every result, in order
        self.fetches: list[tuple[int, int, str]] = []
        self._registered: set[str] = set()

    def execute(self, sql: str, params: Any = None) -> Result:
        try:
            text = to_clickhouse(sql, params)
        except TranslationError:
            raise
        self.statements += 1
        head = text.lstrip().split(None, 1)[0].upper() if text.strip() else ""
        try:
            if head in ("CREATE", "DROP", "INSERT", "SET", "ALTER"):
                if head == "CREATE" and " ENGINE = Memory AS " in text:
                    text += _SETTINGS_CLAUSE
                self.conn.command(text)
                return Result(None)
            table = self.conn.query_arrow(text + _SETTINGS_CLAUSE)
        except Exception as exc:  # the engine's own errors are not ours to type
            raise QueryError(
                f"ClickHouse could not run a statement of the analysis: {exc}\n{text}"
            ) from None
        self.bytes_fetched += table.nbytes
        self.fetches.append((table.nbytes, table.num_rows, " ".join(sql.split())[:200]))
        return Result(table)

    def sql(self, sql: str, params: Any = None) -> Result:
        return self.execute(sql, params)

    def register(self, name: str, table: Any) -> None:
        """``table`` (Arrow, or anything pyarrow can read) as a table ``name`` until
        :meth:`unregister`."""
        import pyarrow as pa

        data = table if isinstance(table, pa.Table) else pa.table(table)
        self.conn.command(f"DROP TABLE IF EXISTS {name}")
        columns = ", ".join(f"`{f.name}` {_ch_type(f.type)}" for f in data.schema)
        self.conn.command(f"CREATE TABLE {name} ({columns}) ENGINE = Memory")
        if data.num_rows:
            self.conn.insert_arrow(name, data)
        self._registered.add(name)

    def unregister(self, name: str) -> None:
        self.conn.command(f"DROP TABLE IF EXISTS {name}")
        self._registered.discard(name)


def _ch_type(kind: Any, *, nullable: bool = True) -> str:
    """The ClickHouse type that holds an Arrow type's values (NULLs included)."""
    import pyarrow as pa

    def wrap(name: str) -> str:
        return f"Nullable({name})" if nullable else name

    if pa.types.is_boolean(kind):
        return wrap("Bool")
    if pa.types.is_integer(kind):
        return wrap(f"{'U' if pa.types.is_unsigned_integer(kind) else ''}Int{kind.bit_width}")
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return wrap("Float64")
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind):
        return wrap("String")
    if isinstance(kind, pa.ExtensionType):
        return _ch_type(kind.storage_type, nullable=nullable)
    if pa.types.is_timestamp(kind):
        unit = {"s": 0, "ms": 3, "us": 6, "ns": 9}[kind.unit]
        return wrap(f"DateTime64({unit}, 'UTC')")
    if pa.types.is_date(kind):
        return wrap("Date32")
    if pa.types.is_map(kind):
        key = _ch_type(kind.key_type, nullable=False)
        return f"Map({key}, {_ch_type(kind.item_type)})"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return f"Array({_ch_type(kind.value_type)})"
    if pa.types.is_struct(kind):
        fields = ", ".join(f"`{f.name}` {_ch_type(f.type)}" for f in kind)
        return f"Tuple({fields})"
    raise TranslationError(f"cannot hold a column of Arrow type {kind} in ClickHouse")


__all__ = ["SETTINGS", "ClickHouse", "Engine", "Result"]
