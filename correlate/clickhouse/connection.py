"""A ``clickhouse://`` or ``chdb://`` URL, and one small connection interface over both.

``clickhouse://[user[:password]@]host[:port]/DATABASE?table=otel_traces&metrics_prefix=otel_metrics&secure=1``
talks to a server over HTTP (clickhouse-connect; port 8123, or 8443 with ``secure``).
``chdb://PATH`` opens a chDB session directory in this process (created if missing),
``chdb://:memory:`` a throwaway one; the database is then ``?database=`` (default
``default``, as the exporter's). Both give a :class:`Connection` with the same four
methods, so the export, the views and the analysis engine never ask which it is.

>>> source = parse_url("clickhouse://reader:s3cret@ch.example:8123/otel?table=spans_v2")
>>> source.display, source.tables.database, source.tables.traces
('clickhouse://reader@ch.example:8123/otel?table=spans_v2', 'otel', 'spans_v2')
>>> parse_url("chdb://:memory:").path
':memory:'
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from correlate.clickhouse.otel_schema import (
    DEFAULT_DATABASE,
    DEFAULT_METRICS_PREFIX,
    DEFAULT_TRACES_TABLE,
    HISTOGRAM_COLUMNS,
    NUMBER_COLUMNS,
    TRACE_COLUMNS,
    OtelTables,
    quote_string,
)
from correlate.errors import CorrelateError
from correlate.quiet import quiet

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "ClickHouseError",
    "Connection",
    "MissingTableError",
    "SchemaMismatchError",
    "Source",
    "connect",
    "parse_url",
]

INSTALL_HINT = "pip install 'correlate[clickhouse]'"
_PARAMETERS = ("table", "metrics_prefix", "database", "secure")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class ClickHouseError(CorrelateError):
    """A ClickHouse source that cannot be used as asked; ``url`` never holds the password."""

    def __init__(self, message: str, url: str = "") -> None:
        self.url = url
        super().__init__(message)


class MissingTableError(ClickHouseError):
    """The table the URL points at is not there."""


class SchemaMismatchError(ClickHouseError):
    """The table is there but lacks a column the exporter's schema has."""


@dataclass(frozen=True)
class Source:
    """A parsed source URL: where to connect and where the exporter's tables are."""

    scheme: str  # "clickhouse" or "chdb"
    tables: OtelTables
    path: str = ""  # chdb: the session directory, or ":memory:"
    host: str = ""
    port: int | None = None
    user: str = ""
    password: str = field(default="", repr=False)
    secure: bool = False

    @property
    def display(self) -> str:
        """The URL without its password, for messages."""
        query = []
        if self.scheme == "chdb" and self.tables.database != DEFAULT_DATABASE:
            query.append(f"database={self.tables.database}")
        if self.tables.traces != DEFAULT_TRACES_TABLE:
            query.append(f"table={self.tables.traces}")
        if self.tables.metrics_prefix != DEFAULT_METRICS_PREFIX:
            query.append(f"metrics_prefix={self.tables.metrics_prefix}")
        if self.secure:
            query.append("secure=1")
        tail = f"?{'&'.join(query)}" if query else ""
        if self.scheme == "chdb":
            return f"chdb://{self.path}{tail}"
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"clickhouse://{user}{self.host}{port}/{self.tables.database}{tail}"


def parse_url(url: str) -> Source:
    """The :class:`Source` a ``clickhouse://`` or ``chdb://`` URL names."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("clickhouse", "chdb", "clickhouses"):
        raise ClickHouseError(
            f"not a ClickHouse URL: {_shown(url)!r}; expected "
            "clickhouse://[user[:password]@]host[:port]/database?table=otel_traces "
            "or chdb://PATH (a chDB session directory)",
            _shown(url),
        )
    location, _, query = rest.partition("?")
    params = _params(query, url)
    if scheme == "chdb":
        if not location:
            raise ClickHouseError("chdb:// needs a path: chdb://PATH or chdb://:memory:", url)
        tables = _tables(params, params.get("database", DEFAULT_DATABASE), url)
        return Source("chdb", tables, path=unquote(location))
    parts = urlsplit(f"//{location}")
    try:
        port = parts.port
    except ValueError:
        raise ClickHouseError(f"bad port in {_shown(url)!r}", _shown(url)) from None
    if not parts.hostname:
        raise ClickHouseError(f"no host in {_shown(url)!r}", _shown(url))
    database = unquote(parts.path.strip("/")) or params.get("database", DEFAULT_DATABASE)
    secure = scheme == "clickhouses" or params.get("secure", "").lower() in ("1", "true", "yes")
    return Source(
        "clickhouse",
        _tables(params, database, url),
        host=parts.hostname,
        port=port,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        secure=secure,
    )


def _shown(url: str) -> str:
    """``url`` with any password in its user part replaced by ``***``."""
    return re.sub(r"^([^:/?#]+://[^:@/?#]*):[^@/?#]*@", r"\1:***@", url)


def _params(query: str, url: str) -> dict[str, str]:
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = sorted(set(params) - set(_PARAMETERS))
    if unknown:
        raise ClickHouseError(
            f"unknown parameter {unknown[0]!r} in {_shown(url)!r}; known: {', '.join(_PARAMETERS)}",
            _shown(url),
        )
    return params


def _tables(params: dict[str, str], database: str, url: str) -> OtelTables:
    tables = OtelTables(
        database=database,
        traces=params.get("table", DEFAULT_TRACES_TABLE),
        metrics_prefix=params.get("metrics_prefix", DEFAULT_METRICS_PREFIX),
    )
    for what, name in (
        ("database", tables.database),
        ("table", tables.traces),
        ("metrics_prefix", tables.metrics_prefix),
    ):
        if not _NAME.match(name):
            raise ClickHouseError(
                f"{what} {name!r} in {_shown(url)!r} is not a plain ClickHouse name "
                "(letters, digits, _ . -)",
                _shown(url),
            )
    return tables


class Connection:
    """A connection to ClickHouse (a server, or chDB in this process).

    ``query_arrow`` runs a query and returns its rows as Arrow, ``command`` runs a
    statement, ``insert_arrow`` appends an Arrow table to a table in one bulk insert.
    """

    source: Source

    def query_arrow(self, sql: str) -> pa.Table:
        raise NotImplementedError

    def command(self, sql: str) -> None:
        raise NotImplementedError

    def insert_arrow(self, table: str, data: pa.Table) -> None:
        """Append ``data`` to ``table`` (a quoted, qualified name), columns matched by name."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def using(self, tables: OtelTables) -> Connection:
        """This connection's session, pointed at other exporter tables (close the original)."""
        other = copy.copy(self)
        other.source = replace(self.source, tables=tables)
        return other

    def columns(self, table: str, database: str | None = None) -> dict[str, str]:
        """Column name → type of ``table``; empty when there is no such table."""
        database = database or self.source.tables.database
        result = self.query_arrow(
            "SELECT name, type FROM system.columns "
            f"WHERE database = {quote_string(database)} AND table = {quote_string(table)} "
            "ORDER BY position"
        )
        return dict(
            zip(result.column("name").to_pylist(), result.column("type").to_pylist(), strict=True)
        )

    def require_traces(self) -> dict[str, str]:
        """The traces table's columns, after checking it has every column the views read."""
        return self._require(self.source.tables.traces, TRACE_COLUMNS, "table")

    def require_metrics(self, kind: str) -> dict[str, str]:
        """A metrics table's columns (``gauge``, ``sum``, ``histogram``), checked likewise."""
        needed = HISTOGRAM_COLUMNS if kind == "histogram" else NUMBER_COLUMNS
        return self._require(self.source.tables.metrics(kind), needed, "metrics_prefix")

    def _require(self, table: str, needed: tuple[str, ...], parameter: str) -> dict[str, str]:
        columns = self.columns(table)
        where = f"{self.source.tables.database}.{table}"
        if not columns:
            raise MissingTableError(
                f"no table {where} in {self.source.display}: point at the exporter's "
                f"tables with ?{parameter}=NAME (and the database in the URL), or create "
                "them with `correlate export RUN --to URL`",
                self.source.display,
            )
        missing = [c for c in needed if c not in columns]
        if missing:
            raise SchemaMismatchError(
                f"{where} in {self.source.display} has no column {missing[0]!r} "
                f"(missing: {', '.join(missing)}): it is not the OpenTelemetry "
                "clickhouseexporter's schema (see docs/scale.md, supported schema)",
                self.source.display,
            )
        return columns


def connect(url: str | Source) -> Connection:
    """Open the connection a URL names (see the module docstring)."""
    source = parse_url(url) if isinstance(url, str) else url
    if source.scheme == "chdb":
        return _ChdbConnection(source)
    return _HttpConnection(source)


class _ChdbConnection(Connection):
    def __init__(self, source: Source) -> None:
        try:
            from chdb import session
        except ImportError:
            raise ClickHouseError(
                f"{source.display} needs chDB: pip install 'correlate[chdb]'", source.display
            ) from None
        self.source = source
        if source.path != ":memory:":
            Path(source.path).mkdir(parents=True, exist_ok=True)
        try:
            if source.path == ":memory:":
                self._session = session.Session()
            else:
                self._session = session.Session(source.path)
        except RuntimeError as exc:  # a second session directory in one process
            raise ClickHouseError(
                f"cannot open {source.display}: {exc} (chDB runs one session directory "
                "per process: close the other connection first)",
                source.display,
            ) from None

    def _run(self, sql: str, fmt: str) -> Any:
        try:
            return self._session.query(sql, fmt)
        except RuntimeError as exc:  # chDB's errors (ChdbError) are RuntimeErrors
            raise _translate(str(exc), self.source) from None

    def query_arrow(self, sql: str) -> pa.Table:
        return self._run(sql, "ArrowTable")

    def command(self, sql: str) -> None:
        self._run(sql, "CSV")

    def insert_arrow(self, table: str, data: pa.Table) -> None:
        names = ", ".join(f"`{c}`" for c in data.column_names)
        arrow_data = data  # noqa: F841 - chDB's Python() reads it from this frame
        self._run(f"INSERT INTO {table} ({names}) SELECT {names} FROM Python(arrow_data)", "CSV")

    def close(self) -> None:
        self._session.close()


class _HttpConnection(Connection):
    def __init__(self, source: Source) -> None:
        try:
            import clickhouse_connect
            from clickhouse_connect.driver.exceptions import Error
        except ImportError:
            raise ClickHouseError(
                f"{source.display} needs clickhouse-connect: {INSTALL_HINT}", source.display
            ) from None
        self.source = source
        self._error = Error
        quiet("clickhouse_connect")  # a warning of its own before each error we explain
        try:
            self._client = clickhouse_connect.get_client(
                host=source.host,
                port=source.port or (8443 if source.secure else 8123),
                username=source.user or None,
                password=source.password,
                database=source.tables.database,
                secure=source.secure,
            )
        except Error as exc:
            raise _translate(str(exc), source, connecting=True) from None

    def query_arrow(self, sql: str) -> pa.Table:
        try:
            return self._client.query_arrow(sql)
        except self._error as exc:
            raise _translate(str(exc), self.source) from None

    def command(self, sql: str) -> None:
        try:
            self._client.command(sql)
        except self._error as exc:
            raise _translate(str(exc), self.source) from None

    def insert_arrow(self, table: str, data: pa.Table) -> None:
        try:
            self._client.insert_arrow(table, data)
        except self._error as exc:
            raise _translate(str(exc), self.source) from None

    def close(self) -> None:
        self._client.close()


def _translate(message: str, source: Source, *, connecting: bool = False) -> ClickHouseError:
    """A ClickHouse error as a :class:`ClickHouseError` that says what to do, password-free."""
    text = message.replace(source.password, "***") if source.password else message
    text = text.strip().splitlines()[0][:400] if text.strip() else "no detail"
    if "UNKNOWN_TABLE" in text or "UNKNOWN_DATABASE" in text:
        return MissingTableError(
            f"{source.display}: {text}. Point at the exporter's tables with "
            "?table=NAME&metrics_prefix=PREFIX and the database in the URL",
            source.display,
        )
    if connecting or re.search(r"Connection refused|Max retries|timed out|resolve", text):
        return ClickHouseError(
            f"cannot reach ClickHouse at {source.display}: {text} "
            "(is the server running, and is the port its HTTP port, 8123 or 8443?)",
            source.display,
        )
    return ClickHouseError(f"ClickHouse at {source.display} said: {text}", source.display)
