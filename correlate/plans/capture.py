"""Live capture: ask a running database how it would execute span statements.

>>> from correlate.plans.capture import Statement, explain_statements
>>> result = explain_statements(  # doctest: +SKIP
...     "postgresql+psycopg://app@db.internal/shop",
...     [Statement("fp-1", "select * from orders where customer_id = %(cid)s")],
... )
>>> result.plans[0].method, result.plans[0].plan[0]["Plan"]["Node Type"]  # doctest: +SKIP
('prepare_force_generic', 'Bitmap Heap Scan')

The raw plans come back untouched: PostgreSQL, MariaDB and MySQL as the parsed
JSON document, SQLite as the ``EXPLAIN QUERY PLAN`` rows (``id, parent, notused,
detail`` tuples). A statement that cannot be explained gets a ``reason`` (and a
``reason_code``) instead, and the capture goes on with the next one.

Placeholders
------------
A span carries the statement as the driver had it: psycopg and pymysql write
``%(name)s`` and ``%s`` (``%%`` for a literal ``%``), sqlite3 ``?`` and
``:name``; SQLAlchemy adds casts such as ``%(cid)s::INTEGER``. The values are
never recorded, so each dialect gets the best stand-in it allows. Quoted
strings, quoted identifiers, comments and PostgreSQL dollar quotes are skipped
when placeholders are looked for. If the text holds any ``%(name)s``/``%s``,
those are the placeholders (and ``?`` stays an operator, as in ``jsonb ? 'k'``);
otherwise ``?`` and ``:name`` are.

* PostgreSQL: placeholders become ``$1..$n``; the same name gets the same
  number, and nothing else in the text changes. Text that already has ``$n``
  (pg_stat_statements, server logs) is used as it is. On 16 and later,
  ``EXPLAIN (GENERIC_PLAN)`` plans it. On 15 the statement is prepared under
  ``plan_cache_mode = force_generic_plan`` and explained with ``EXECUTE q(NULL,
  …)``; the generic plan does not look at the NULLs, whereas a custom plan for
  NULL would be ``One-Time Filter: false``. PREPARE infers the parameter types;
  where it cannot ("could not determine data type of parameter $2"), that
  parameter is declared ``text`` and PREPARE is tried again, and if that fails
  too the server's message is the reason. The prepared statement is
  deallocated afterwards.
* MariaDB/MySQL have no generic plans, so each placeholder gets a literal. A
  NULL would be wrong (``col = NULL`` is never true and the plan says
  "Impossible WHERE"), and so is an arbitrary value: for a primary-key or
  unique lookup the optimizer reads the row while planning, and a value that
  does not exist gives the same "Impossible WHERE noticed after reading const
  tables". So, for ``col <op> %s``, ``col IN (%s, …)`` and ``col BETWEEN %s AND
  %s``, the column is looked up in ``information_schema.COLUMNS`` (of the
  current database, preferring a table the statement names) and one existing
  non-NULL value of it is read (``SELECT col FROM t WHERE col IS NOT NULL LIMIT
  1``) and used as the literal. When the column has no value, a default of its
  type is used (``0``, ``''``, ``'2000-01-01'``); a ``LIMIT``/``OFFSET``
  placeholder gets ``10``/``0``; any other placeholder gets ``'0'``, a string
  because a string compared with a number column can still use its index,
  while a number compared with a string column cannot. Limits: the plan is the
  plan for *that* value, so on skewed data (a hot customer) the row estimates
  and even the access path can differ from what the real values got; a column
  named only through a view or an alias that matches no table name falls back
  to the defaults; reading the sample value is a real (one-row, read-only,
  time-limited) query.
* SQLite: ``EXPLAIN QUERY PLAN`` takes placeholders as they are; every one is
  written as ``?`` and bound to NULL, which Python's sqlite3 requires and the
  plan does not look at (unless SQLite was built with STAT4, which can
  re-plan for bound values).

Safety
------
* A plain EXPLAIN plans the statement and never executes it; INSERT, UPDATE and
  DELETE are explained, never run.
* Each statement runs in its own transaction, which is always rolled back.
  PostgreSQL: ``BEGIN READ ONLY`` with ``SET LOCAL statement_timeout`` and
  ``lock_timeout``. MariaDB: ``START TRANSACTION READ ONLY`` with session
  ``max_statement_time`` and ``lock_wait_timeout`` (MySQL: ``max_execution_time``);
  MariaDB refuses even ``EXPLAIN UPDATE`` in a read-only transaction, so
  explaining DML there uses a read-write transaction that is rolled back, which
  is safe only because a plain EXPLAIN executes nothing (and analyze refuses
  DML). SQLite: the file is opened read-only with ``PRAGMA query_only``.
* ``analyze=True`` **executes the statements** (``EXPLAIN ANALYZE``, MariaDB
  ``ANALYZE FORMAT=JSON``) to measure them. It is opt-in, accepts only
  statements that read (SELECT, VALUES, TABLE, or WITH without
  INSERT/UPDATE/DELETE/MERGE; anything else is refused with a reason), still
  runs read-only, rolled back and under the timeouts, and is not done for
  statements with placeholders: the span has no values to run them with, so
  those get their plain plan and a ``note``.
* Text holding more than one statement is refused, so nothing can ride along
  behind a ``;``.
* The password is taken from the URL, or by the driver from the environment
  (``PGPASSWORD``, ``MYSQL_PWD``) or ``~/.pgpass``, and never appears in the
  result, in log records or in error messages: URLs are shown as
  ``postgresql://user:***@host/db``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from correlate.errors import DatabaseConnectionError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

log = logging.getLogger(__name__)

Dialect = Literal["postgresql", "mariadb", "mysql", "sqlite"]

#: Keywords a statement may start with for EXPLAIN to accept it.
EXPLAINABLE = frozenset(
    {"SELECT", "WITH", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "TABLE"}
)
#: Keywords a statement may start with for ``analyze=True`` to run it.
READ_ONLY_STARTS = frozenset({"SELECT", "WITH", "VALUES", "TABLE"})
_WRITING_KEYWORDS = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE"})

#: PostgreSQL settings recorded every time: the ones that move plans.
PG_SETTINGS = (
    "work_mem",
    "random_page_cost",
    "seq_page_cost",
    "effective_cache_size",
    "plan_cache_mode",
    "jit",
    "default_statistics_target",
    "max_parallel_workers_per_gather",
)
#: MariaDB/MySQL variables recorded when the server has them.
MYSQL_SETTINGS = (
    "optimizer_switch",
    "optimizer_use_condition_selectivity",
    "optimizer_search_depth",
    "join_buffer_size",
    "join_cache_level",
    "sort_buffer_size",
    "tmp_table_size",
    "eq_range_index_dive_limit",
)

_PREPARED_NAME = "correlate_explain"


#: The error a failed connection raises; kept under this name for callers of capture.
CaptureConnectionError = DatabaseConnectionError


@dataclass(frozen=True)
class Statement:
    """One statement to explain: ``key`` is the caller's id (a fingerprint),
    ``text`` the representative statement as the span had it."""

    key: str
    text: str


@dataclass(frozen=True)
class CapturedPlan:
    """What the server said about one statement.

    ``plan`` is the raw plan and ``method`` how it was obtained
    (``generic_plan``, ``prepare_force_generic``, ``explain_json``,
    ``explain_query_plan`` or ``analyze``), or both are None and ``reason`` says
    why (``reason_code`` is one of ``not_explainable``, ``refused``,
    ``syntax``, ``missing_object``, ``timeout``, ``lock_timeout``, ``error``).
    ``sql`` is the statement text actually explained (placeholders rewritten)
    and ``commands`` every command sent for it, in order.
    """

    key: str
    text: str
    sql: str | None = None
    method: str | None = None
    plan: Any = None
    reason: str | None = None
    reason_code: str | None = None
    note: str | None = None
    commands: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when a plan was captured."""
        return self.reason is None


@dataclass(frozen=True)
class ServerFacts:
    """The server as it was at capture time: ``settings`` holds only what moves plans
    (for PostgreSQL, the ``enable_*`` switches that are off among them)."""

    dialect: Dialect
    version: str
    settings: dict[str, str] = field(default_factory=dict)
    #: estimated rows per table, by plain and by schema-qualified name (PostgreSQL
    #: ``reltuples``, MySQL/MariaDB ``TABLE_ROWS``), so estimate-only plans can be
    #: judged: a scan expected to return 20 rows is only a problem on a big table
    relation_rows: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CaptureResult:
    """Plans for a batch of statements plus the facts about the server they came from."""

    url: str
    server: ServerFacts
    analyze: bool
    plans: list[CapturedPlan]

    def __iter__(self) -> Iterator[CapturedPlan]:
        return iter(self.plans)

    def __len__(self) -> int:
        return len(self.plans)

    def get(self, key: str) -> CapturedPlan | None:
        """The plan captured for ``key``, or None."""
        return next((p for p in self.plans if p.key == key), None)

    @property
    def failed(self) -> list[CapturedPlan]:
        """Statements that got a reason instead of a plan."""
        return [p for p in self.plans if not p.ok]


# --- URLs and passwords -------------------------------------------------------------------------


def redact_url(dsn: str) -> str:
    """``dsn`` with any password replaced by ``***``; safe to show.

    >>> redact_url("postgresql+psycopg://app:s3cret@db:5432/shop")
    'postgresql+psycopg://app:***@db:5432/shop'
    >>> redact_url("not a url :: s3cret")
    '<unparseable database URL>'
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(dsn).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        # An unparseable string may hold the password anywhere in it.
        return "<unparseable database URL>"


def _scrub(message: str, secret: str | None) -> str:
    return message.replace(secret, "***") if secret else message


def _parse_url(dsn: str) -> tuple[URL, Dialect]:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if dsn.startswith("postgres://"):
        # Heroku-style URLs; SQLAlchemy only knows postgresql://.
        dsn = "postgresql://" + dsn[len("postgres://") :]
    try:
        url = make_url(dsn)
    except (ArgumentError, ValueError):
        raise CaptureConnectionError(
            "not a database URL; pass one such as postgresql+psycopg://user@host:5432/db, "
            "mysql+pymysql://user@host:3306/db or sqlite:///path/to/file.db",
            redact_url(dsn),
        ) from None
    backend = url.get_backend_name()
    # A bare scheme means psycopg2/mysqlclient to SQLAlchemy; the drivers this
    # project installs are psycopg 3 and pymysql.
    if backend == "postgresql":
        if url.get_driver_name() in ("", "psycopg2"):
            url = url.set(drivername="postgresql+psycopg")
        return url, "postgresql"
    if backend in ("mysql", "mariadb"):
        if url.get_driver_name() in ("", "mysqldb"):
            url = url.set(drivername=f"{backend}+pymysql")
        return url, "mysql"
    if backend == "sqlite":
        return url, "sqlite"
    raise CaptureConnectionError(
        f"live capture supports PostgreSQL, MariaDB/MySQL and SQLite, not {backend!r}",
        url.render_as_string(hide_password=True),
    )


# --- Lexing placeholders ------------------------------------------------------------------------

_QUOTED = {
    "postgresql": (
        r"[eE]'(?:[^'\\]|\\.|'')*'",
        r"'(?:[^']|'')*'",
        r'"(?:[^"]|"")*"',
        r"\$(?P<tag>(?:[A-Za-z_]\w*)?)\$.*?\$(?P=tag)\$",
        r"--[^\n]*",
    ),
    "mysql": (
        r"'(?:[^'\\]|\\.|'')*'",
        r'"(?:[^"\\]|\\.|"")*"',
        r"`(?:[^`]|``)*`",
        r"--(?:\s[^\n]*|$)",
        r"\#[^\n]*",
    ),
    "sqlite": (
        r"'(?:[^']|'')*'",
        r'"(?:[^"]|"")*"',
        r"`(?:[^`]|``)*`",
        r"\[[^\]]*\]",
        r"--[^\n]*",
    ),
}
_TOKENS = r"""
  (?P<pyformat>%\((?P<pyname>[^()\s]+)\)s)
| (?P<format>%s)
| (?P<percent>%%)
| (?P<qmark>\?)
| (?P<named>(?<![:\w]):(?P<name>[A-Za-z_]\w*))
| (?P<dollar>\$(?P<num>\d+))
| (?P<semicolon>;)
| (?P<word>[A-Za-z_]\w*)
"""


def _lexer(dialect: str) -> re.Pattern[str]:
    key = "mysql" if dialect in ("mysql", "mariadb") else dialect
    quoted = "|".join((*_QUOTED[key], r"/\*.*?\*/"))
    return re.compile(f"(?P<skip>{quoted})|{_TOKENS}", re.S | re.X)


@dataclass(frozen=True)
class _Slot:
    """A placeholder: ``name`` for named ones, None for positional ones."""

    name: str | None


@dataclass(frozen=True)
class _Lexed:
    pieces: tuple[str | _Slot, ...]
    keywords: tuple[str, ...]  # upper-cased words outside quotes and comments
    native_params: int  # highest $n already in the text
    statements: int


def _lex(text: str, dialect: str) -> _Lexed:
    matches = list(_lexer(dialect).finditer(text))
    driver_style = any(m.lastgroup in ("pyformat", "format") for m in matches)
    pieces: list[str | _Slot] = []
    keywords: list[str] = []
    native = 0
    statements = 1
    pos = 0
    trailing = len(text.rstrip().rstrip(";").rstrip())
    for m in matches:
        kind = m.lastgroup
        if kind in ("skip", "tag"):
            if driver_style and "%%" in m.group():
                # The drivers' % escaping knows nothing of quotes: 'a%%' was 'a%'.
                pieces.append(text[pos : m.start()] + m.group().replace("%%", "%"))
                pos = m.end()
            continue
        if kind == "word":
            keywords.append(m.group().upper())
            continue
        if kind == "dollar":
            native = max(native, int(m.group("num")))
            continue
        if kind == "semicolon":
            if m.start() < trailing:
                statements += 1
            continue
        slot: _Slot | str
        if driver_style and kind in ("pyformat", "format", "percent"):
            slot = _Slot(m.group("pyname")) if kind == "pyformat" else _Slot(None)
            if kind == "percent":
                slot = "%"
        elif not driver_style and kind in ("qmark", "named"):
            slot = _Slot(m.group("name")) if kind == "named" else _Slot(None)
        else:
            continue
        pieces.append(text[pos : m.start()])
        pieces.append(slot)
        pos = m.end()
    pieces.append(text[pos:trailing] if pos <= trailing else "")
    return _Lexed(tuple(pieces), tuple(keywords), native, statements)


def _slots(lexed: _Lexed) -> list[_Slot]:
    return [p for p in lexed.pieces if isinstance(p, _Slot)]


def to_numbered(text: str) -> tuple[str, int]:
    """``text`` with driver placeholders as PostgreSQL ``$n``, and the number of parameters.

    >>> to_numbered("select * from t where a = %(a)s and b = %s and c = %(a)s::INTEGER")
    ('select * from t where a = $1 and b = $2 and c = $1::INTEGER', 2)
    >>> to_numbered("select '?' as q, x from t where y = ? and z like 'a%'")
    ("select '?' as q, x from t where y = $1 and z like 'a%'", 1)
    """
    lexed = _lex(text, "postgresql")
    numbers: dict[str, int] = {}
    count = lexed.native_params
    out: list[str] = []
    for piece in lexed.pieces:
        if isinstance(piece, str):
            out.append(piece)
            continue
        if piece.name is not None and piece.name in numbers:
            number = numbers[piece.name]
        else:
            count += 1
            number = count
            if piece.name is not None:
                numbers[piece.name] = number
        out.append(f"${number}")
    return "".join(out), count


def _first_keyword(lexed: _Lexed) -> str:
    return lexed.keywords[0] if lexed.keywords else ""


def _refusal(text: str, lexed: _Lexed, analyze: bool) -> tuple[str, str] | None:
    """(reason_code, reason) when the statement must not be sent at all."""
    if not text.strip():
        return "not_explainable", "empty statement"
    if lexed.statements > 1:
        return "refused", "the text holds several statements; explain them one at a time"
    first = _first_keyword(lexed)
    if first not in EXPLAINABLE:
        return (
            "not_explainable",
            f"{first or 'this'} statements have no query plan (only SELECT, INSERT, UPDATE, "
            "DELETE, MERGE and VALUES are explained)",
        )
    writes = first not in READ_ONLY_STARTS or bool(_WRITING_KEYWORDS & set(lexed.keywords))
    if analyze and writes:
        return (
            "refused",
            f"analyze runs the statement, and this {first} statement writes; "
            "only statements that just read are analyzed",
        )
    return None


# --- The capture --------------------------------------------------------------------------------


def explain_statements(
    dsn: str,
    statements: Iterable[Statement | tuple[str, str]],
    *,
    analyze: bool = False,
    statement_timeout_ms: int = 5000,
    lock_timeout_ms: int = 1000,
) -> CaptureResult:
    """Explain each statement against the live database at ``dsn`` (a SQLAlchemy URL).

    ``analyze=True`` **executes** each statement that only reads (see the
    module docstring) to get measured plans; the default only plans. Every
    statement runs in a read-only transaction that is rolled back, under
    ``statement_timeout_ms`` and ``lock_timeout_ms``. A statement that cannot be
    explained gets a ``reason`` and the capture goes on; a database that cannot
    be reached raises :class:`CaptureConnectionError`.
    """
    if statement_timeout_ms <= 0 or lock_timeout_ms <= 0:
        raise ValueError("statement_timeout_ms and lock_timeout_ms must be positive")
    url, dialect = _parse_url(dsn)
    shown = url.render_as_string(hide_password=True)
    items = [s if isinstance(s, Statement) else Statement(*s) for s in statements]
    log.info("explaining %d statements on %s (analyze=%s)", len(items), shown, analyze)
    session: _Session
    if dialect == "postgresql":
        session = _PostgresSession(url, statement_timeout_ms, lock_timeout_ms)
    elif dialect == "mysql":
        session = _MySQLSession(url, statement_timeout_ms, lock_timeout_ms)
    else:
        session = _SQLiteSession(url, statement_timeout_ms, lock_timeout_ms)
    # Closing in ``finally`` covers KeyboardInterrupt too: no connection or
    # open transaction is left behind on the server.
    try:
        session.open()
        facts = session.facts()
        plans = [session.explain(item, analyze) for item in items]
    finally:
        session.close()
    return CaptureResult(url=shown, server=facts, analyze=analyze, plans=plans)


class _Session:
    """One connection to one server; subclasses speak its dialect."""

    dialect: str

    def __init__(self, url: URL, statement_timeout_ms: int, lock_timeout_ms: int) -> None:
        self.url = url
        self.statement_timeout_ms = statement_timeout_ms
        self.lock_timeout_ms = lock_timeout_ms
        self._engine: Any = None
        self._raw: Any = None

    @property
    def shown(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def connect_args(self) -> dict[str, Any]:
        return {}

    def open(self) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.exc import DBAPIError, SQLAlchemyError
        from sqlalchemy.pool import NullPool

        try:
            # NullPool: closing the DBAPI connection really closes it, and
            # dispose() leaves nothing behind.
            self._engine = create_engine(
                self.url, poolclass=NullPool, connect_args=self.connect_args()
            )
        except ImportError as exc:
            raise CaptureConnectionError(
                f"the database driver for {self.url.drivername} is not installed ({exc}); "
                "pip install 'correlate[postgres]' or 'correlate[mysql]'",
                self.shown,
            ) from None
        driver_error = self._engine.dialect.loaded_dbapi.Error
        try:
            self._raw = self._engine.raw_connection()
        except driver_error as exc:
            # The pool hands out the driver's own exception, unwrapped.
            raise self._connection_error(" ".join(str(exc).split())) from None
        except DBAPIError as exc:
            raise self._connection_error(" ".join(str(exc.orig).split())) from None
        except (SQLAlchemyError, OSError) as exc:
            raise self._connection_error(f"{type(exc).__name__}: {exc}") from None

    #: Where the driver looks for a password the URL does not give, and the default port.
    password_sources = "the URL"
    default_port = 0

    def _connection_error(self, detail: str) -> CaptureConnectionError:
        password = self.url.password
        detail = _scrub(detail, str(password) if password else None).rstrip(". ")
        host = self.url.host or "localhost"
        port = self.url.port or self.default_port
        return CaptureConnectionError(
            f"cannot connect to {self.shown}: {detail} — check the host ({host}) and port "
            f"({port}), the user name and the password ({self.password_sources}), and that "
            "the database exists",
            self.shown,
        )

    @property
    def conn(self) -> Any:
        return self._raw.driver_connection

    def close(self) -> None:
        try:
            if self._raw is not None:
                try:
                    self.rollback()
                finally:
                    self._raw.close()
                    self._raw = None
        finally:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    def rollback(self) -> None:
        raise NotImplementedError

    def facts(self) -> ServerFacts:
        raise NotImplementedError

    def explain(self, statement: Statement, analyze: bool) -> CapturedPlan:
        raise NotImplementedError


def _relation_sizes(rows: Iterable[tuple[Any, Any, Any]]) -> dict[str, float]:
    """{table: rows} under both ``schema.table`` and ``table``; the largest wins a clash."""
    sizes: dict[str, float] = {}
    for schema, table, count in rows:
        for name in (f"{schema}.{table}", str(table)):
            sizes[name] = max(sizes.get(name, 0.0), float(count))
    return sizes


# --- PostgreSQL ---------------------------------------------------------------------------------

_PG_REASONS = {
    "57014": "timeout",  # query_canceled: statement_timeout
    "55P03": "lock_timeout",  # lock_not_available
    "42601": "syntax",
    "42P01": "missing_object",  # undefined_table
    "42703": "missing_object",  # undefined_column
    "42883": "missing_object",  # undefined_function
    "3F000": "missing_object",  # invalid_schema_name
    "25006": "refused",  # read_only_sql_transaction
}
_UNTYPED_PARAM = re.compile(r"could not determine data type of parameter \$(\d+)")


class _PostgresSession(_Session):
    dialect = "postgresql"
    password_sources = "in the URL, PGPASSWORD or ~/.pgpass"
    default_port = 5432

    def connect_args(self) -> dict[str, Any]:
        # libpq reads PGPASSWORD and ~/.pgpass itself when the URL has no password.
        return {"connect_timeout": 10, "application_name": "correlate-capture"}

    def open(self) -> None:
        super().open()
        # Transactions are begun and ended by hand, one per statement.
        self.conn.autocommit = True
        self.conn.prepare_threshold = None
        self.version_num = int(self.conn.info.server_version)

    def rollback(self) -> None:
        if not self.conn.closed:
            self.conn.execute("ROLLBACK")

    def _begin(self, cur: Any) -> None:
        cur.execute("BEGIN READ ONLY")
        cur.execute(f"SET LOCAL statement_timeout = {int(self.statement_timeout_ms)}")
        cur.execute(f"SET LOCAL lock_timeout = {int(self.lock_timeout_ms)}")

    def facts(self) -> ServerFacts:
        with self.conn.cursor() as cur:
            self._begin(cur)
            try:
                cur.execute("SHOW server_version")
                version = str(cur.fetchone()[0])
                cur.execute(
                    "SELECT name, current_setting(name) FROM pg_settings "
                    "WHERE name = ANY(%s) OR (name LIKE 'enable%%' AND setting = 'off') "
                    "ORDER BY name",
                    (list(PG_SETTINGS),),
                )
                settings = {str(name): str(value) for name, value in cur.fetchall()}
                # reltuples is -1 for a table never vacuumed or analysed: no estimate.
                cur.execute(
                    "SELECT n.nspname, c.relname, c.reltuples FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relkind IN ('r', 'p', 'm') AND c.reltuples >= 0 "
                    "AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
                )
                sizes = _relation_sizes(cur.fetchall())
            finally:
                cur.execute("ROLLBACK")
        return ServerFacts("postgresql", version, settings, sizes)

    def explain(self, statement: Statement, analyze: bool) -> CapturedPlan:
        import psycopg

        lexed = _lex(statement.text, "postgresql")
        refused = _refusal(statement.text, lexed, analyze)
        if refused:
            return CapturedPlan(
                statement.key, statement.text, reason=refused[1], reason_code=refused[0]
            )
        sql, nparams = to_numbered(statement.text)
        sql = sql.strip().rstrip(";").rstrip()
        note = None
        if analyze and nparams:
            note = "not analyzed: the statement has placeholders and the span holds no values"
            analyze = False
        commands: list[str] = []
        try:
            if analyze:
                method = "analyze"
                commands.append(f"EXPLAIN (ANALYZE, BUFFERS, SETTINGS, FORMAT JSON) {sql}")
                plan = self._run(commands)
            elif nparams == 0:
                method = "explain_json"
                commands.append(f"EXPLAIN (SETTINGS, FORMAT JSON) {sql}")
                plan = self._run(commands)
            elif self.version_num >= 160000:
                method = "generic_plan"
                commands.append(f"EXPLAIN (GENERIC_PLAN, SETTINGS, FORMAT JSON) {sql}")
                plan = self._run(commands)
            else:
                method = "prepare_force_generic"
                plan = self._prepare_and_explain(sql, nparams, commands)
        except psycopg.Error as exc:
            if self.conn.closed:
                raise self._connection_error(f"the connection was lost ({exc})") from None
            code = _PG_REASONS.get(exc.sqlstate or "", "error")
            primary = exc.diag.message_primary or str(exc).strip()
            if code == "timeout":
                primary += f" (statement_timeout = {self.statement_timeout_ms} ms)"
            elif code == "lock_timeout":
                primary += f" (lock_timeout = {self.lock_timeout_ms} ms)"
            log.debug("%s: %s", statement.key, primary)
            return CapturedPlan(
                statement.key,
                statement.text,
                sql=sql,
                reason=primary,
                reason_code=code,
                note=note,
                commands=tuple(commands),
            )
        return CapturedPlan(
            statement.key,
            statement.text,
            sql=sql,
            method=method,
            plan=plan,
            note=note,
            commands=tuple(commands),
        )

    def _run(self, commands: Sequence[str], setup: Sequence[str] = ()) -> Any:
        """Run ``setup`` then ``commands`` in one read-only transaction; the last command's
        first cell, parsed, is the plan."""
        with self.conn.cursor() as cur:
            try:
                self._begin(cur)
                for command in setup:
                    cur.execute(command)
                for command in commands:
                    cur.execute(command)
                value = cur.fetchone()[0]
            finally:
                self.rollback()
        return json.loads(value) if isinstance(value, str) else value

    def _prepare_and_explain(self, sql: str, nparams: int, commands: list[str]) -> Any:
        import psycopg

        types = ["unknown"] * nparams
        nulls = ", ".join(["NULL"] * nparams)
        explain = f"EXPLAIN (SETTINGS, FORMAT JSON) EXECUTE {_PREPARED_NAME}({nulls})"
        for _attempt in range(nparams + 1):
            declared = f"({', '.join(types)})" if "text" in types else ""
            prepare = f"PREPARE {_PREPARED_NAME}{declared} AS {sql}"
            commands[:] = [
                "SET LOCAL plan_cache_mode = force_generic_plan",
                prepare,
                explain,
                "DEALLOCATE ALL",
            ]
            try:
                return self._run(commands[1:3], setup=commands[:1])
            except psycopg.errors.IndeterminateDatatype as exc:
                # "could not determine data type of parameter $2": say it is text.
                match = _UNTYPED_PARAM.search(exc.diag.message_primary or "")
                if not match or types[int(match.group(1)) - 1] == "text":
                    raise
                types[int(match.group(1)) - 1] = "text"
            finally:
                # Prepared statements belong to the session and survive ROLLBACK.
                # ALL cannot fail when PREPARE did, and psycopg's own automatic
                # prepares are switched off in open(), so ours is the only one.
                if not self.conn.closed:
                    self.conn.execute("DEALLOCATE ALL")
        raise AssertionError("unreachable: every parameter was declared text")


# --- MariaDB / MySQL ----------------------------------------------------------------------------

_MYSQL_REASONS = {
    1064: "syntax",
    1146: "missing_object",  # no such table
    1054: "missing_object",  # unknown column
    1049: "missing_object",  # unknown database
    1305: "missing_object",  # function does not exist
    1969: "timeout",  # MariaDB max_statement_time
    3024: "timeout",  # MySQL max_execution_time
    1205: "lock_timeout",  # innodb_lock_wait_timeout
    1792: "refused",  # read-only transaction
}
_COMPARED = re.compile(
    r"(?:[`\"]?(?P<qual>\w+)[`\"]?\s*\.\s*)?[`\"]?(?P<col>\w+)[`\"]?\s*"
    r"(?:<=>|<>|!=|<=|>=|=|<|>|\bNOT\s+LIKE\b|\bLIKE\b|\b(?:NOT\s+)?IN\s*\((?:[^()]*,)?"
    r"|\bBETWEEN\b(?:\s*[^\s()]+\s+AND\b)?)\s*$",
    re.I,
)
_LIMIT = re.compile(r"\b(LIMIT|OFFSET)\s*$|\bLIMIT\s*\S+\s*,\s*$", re.I)
_NUMERIC_TYPES = frozenset(
    [
        "tinyint",
        "smallint",
        "mediumint",
        "int",
        "integer",
        "bigint",
        "decimal",
        "numeric",
        "float",
        "double",
        "real",
        "bit",
        "year",
    ]
)
_TYPE_DEFAULTS = {"date": "'2000-01-01'", "datetime": "'2000-01-01 00:00:00'", "time": "'00:00:00'"}
_TYPE_DEFAULTS["timestamp"] = _TYPE_DEFAULTS["datetime"]


def _quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class _MySQLSession(_Session):
    dialect = "mysql"
    password_sources = "in the URL or MYSQL_PWD"
    default_port = 3306

    def connect_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"connect_timeout": 10}
        if self.url.password is None and os.environ.get("MYSQL_PWD"):
            # The mysql client's convention; pymysql does not read it itself.
            args["password"] = os.environ["MYSQL_PWD"]
        return args

    def _connection_error(self, detail: str) -> CaptureConnectionError:
        error = super()._connection_error(detail)
        secret = os.environ.get("MYSQL_PWD")
        if secret and secret in str(error):
            return CaptureConnectionError(_scrub(str(error), secret), self.shown)
        return error

    def open(self) -> None:
        super().open()
        conn = self.conn
        conn.autocommit(True)
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            self.version = str(cur.fetchone()[0])
            self.mariadb = "mariadb" in self.version.lower()
            seconds = self.statement_timeout_ms / 1000
            if self.mariadb:
                cur.execute(f"SET SESSION max_statement_time = {seconds:.3f}")
            else:
                # MySQL's limit covers SELECT only; DML is never executed here anyway.
                cur.execute(f"SET SESSION max_execution_time = {int(self.statement_timeout_ms)}")
            lock_seconds = max(1, math.ceil(self.lock_timeout_ms / 1000))
            cur.execute(f"SET SESSION lock_wait_timeout = {lock_seconds}")
            cur.execute(f"SET SESSION innodb_lock_wait_timeout = {lock_seconds}")
        self._literals: dict[tuple[str, str | None], str] = {}

    def rollback(self) -> None:
        if self.conn.open:
            self.conn.rollback()

    def facts(self) -> ServerFacts:
        names = ", ".join(f"'{name}'" for name in MYSQL_SETTINGS)
        with self.conn.cursor() as cur:
            cur.execute(f"SHOW SESSION VARIABLES WHERE Variable_name IN ({names})")
            settings = {str(k): str(v) for k, v in cur.fetchall()}
            cur.execute(
                "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES "
                "WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_ROWS IS NOT NULL AND TABLE_SCHEMA NOT IN "
                "('mysql', 'information_schema', 'performance_schema', 'sys')"
            )
            sizes = _relation_sizes(cur.fetchall())
        return ServerFacts("mariadb" if self.mariadb else "mysql", self.version, settings, sizes)

    def explain(self, statement: Statement, analyze: bool) -> CapturedPlan:
        import pymysql

        lexed = _lex(statement.text, "mysql")
        refused = _refusal(statement.text, lexed, analyze)
        if refused:
            return CapturedPlan(
                statement.key, statement.text, reason=refused[1], reason_code=refused[0]
            )
        note = None
        if analyze and _slots(lexed):
            note = "not analyzed: the statement has placeholders and the span holds no values"
            analyze = False
        writes = _first_keyword(lexed) not in READ_ONLY_STARTS or bool(
            _WRITING_KEYWORDS & set(lexed.keywords)
        )
        # MariaDB refuses EXPLAIN of DML inside a READ ONLY transaction; a plain
        # EXPLAIN executes nothing, and the transaction is rolled back regardless.
        begin = "START TRANSACTION" if writes else "START TRANSACTION READ ONLY"
        commands: list[str] = [begin]
        sql = ""
        try:
            with self.conn.cursor() as cur:
                try:
                    cur.execute(begin)
                    sql = self._with_literals(cur, lexed, statement.text)
                    if analyze:
                        method = "analyze"
                        command = (
                            f"ANALYZE FORMAT=JSON {sql}"
                            if self.mariadb
                            else f"EXPLAIN ANALYZE {sql}"
                        )
                    else:
                        method = "explain_json"
                        command = f"EXPLAIN FORMAT=JSON {sql}"
                    commands.append(command)
                    cur.execute(command)
                    value = cur.fetchone()[0]
                finally:
                    commands.append("ROLLBACK")
                    self.rollback()
        except pymysql.MySQLError as exc:
            if not self.conn.open:
                raise self._connection_error(f"the connection was lost ({exc})") from None
            errno = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
            message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
            return CapturedPlan(
                statement.key,
                statement.text,
                sql=sql or None,
                reason=message,
                reason_code=_MYSQL_REASONS.get(errno, "error"),
                note=note,
                commands=tuple(commands),
            )
        try:
            # MySQL's EXPLAIN ANALYZE is TREE text, not JSON; keep it as text.
            plan = json.loads(value)
        except (TypeError, ValueError):
            plan = value
        return CapturedPlan(
            statement.key,
            statement.text,
            sql=sql,
            method=method,
            plan=plan,
            note=note,
            commands=tuple(commands),
        )

    def _with_literals(self, cur: Any, lexed: _Lexed, text: str) -> str:
        out: list[str] = []
        words = {w.lower() for w in lexed.keywords}
        for piece in lexed.pieces:
            if isinstance(piece, str):
                out.append(piece)
            else:
                out.append(self._literal(cur, "".join(out), words))
        return "".join(out).strip().rstrip(";").rstrip()

    def _literal(self, cur: Any, before: str, words: set[str]) -> str:
        """A stand-in value for the placeholder that follows ``before``."""
        limit = _LIMIT.search(before[-200:])
        if limit:
            return "0" if (limit.group(1) or "").upper() == "OFFSET" else "10"
        compared = _COMPARED.search(before[-400:])
        if not compared:
            return "'0'"
        column, qualifier = compared.group("col"), compared.group("qual")
        cache_key = (column.lower(), qualifier.lower() if qualifier else None)
        if cache_key not in self._literals:
            self._literals[cache_key] = self._sample(cur, column, qualifier, words)
        return self._literals[cache_key]

    def _sample(self, cur: Any, column: str, qualifier: str | None, words: set[str]) -> str:
        cur.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND COLUMN_NAME = %s ORDER BY TABLE_NAME",
            (column,),
        )
        candidates = [(str(t), str(c), str(d).lower()) for t, c, d in cur.fetchall()]

        def rank(candidate: tuple[str, str, str]) -> int:
            table = candidate[0].lower()
            if qualifier and table == qualifier.lower():
                return 0
            return 1 if table in words else 2

        candidates = sorted((c for c in candidates if rank(c) < 2), key=rank)
        if not candidates:
            return "'0'"
        table, real_column, data_type = candidates[0]
        cur.execute(
            f"SELECT {_quote_ident(real_column)} FROM {_quote_ident(table)} "
            f"WHERE {_quote_ident(real_column)} IS NOT NULL LIMIT 1"
        )
        row = cur.fetchone()
        if row is not None:
            return str(self.conn.escape(row[0]))
        if data_type in _NUMERIC_TYPES:
            return "0"
        return _TYPE_DEFAULTS.get(data_type, "''")


# --- SQLite -------------------------------------------------------------------------------------


class _SQLiteSession(_Session):
    dialect = "sqlite"

    def open(self) -> None:
        from urllib.parse import quote

        from sqlalchemy.engine import URL

        database = self.url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            if not os.path.exists(database):
                raise CaptureConnectionError(
                    f"no SQLite database at {database}; check the path in the URL "
                    "(sqlite:///relative/path.db or sqlite:////absolute/path.db)",
                    self.shown,
                )
            # Read-only at the file level: nothing this session runs can write.
            self.url = URL.create(
                "sqlite+pysqlite",
                database=f"file:{quote(os.path.abspath(database))}",
                query={"mode": "ro", "uri": "true"},
            )
        super().open()
        self.conn.execute("PRAGMA query_only = ON")

    def rollback(self) -> None:
        self.conn.rollback()

    def facts(self) -> ServerFacts:
        import sqlite3

        return ServerFacts("sqlite", sqlite3.sqlite_version, {})

    def explain(self, statement: Statement, analyze: bool) -> CapturedPlan:
        import sqlite3

        lexed = _lex(statement.text, "sqlite")
        refused = _refusal(statement.text, lexed, analyze)
        if refused:
            return CapturedPlan(
                statement.key, statement.text, reason=refused[1], reason_code=refused[0]
            )
        # Every placeholder becomes ``?`` bound to NULL: EXPLAIN QUERY PLAN does
        # not need values, but Python's sqlite3 insists on one per parameter.
        out = [piece if isinstance(piece, str) else "?" for piece in lexed.pieces]
        nulls = [None] * len(_slots(lexed))
        sql = "".join(out).strip().rstrip(";").rstrip()
        note = "SQLite has no EXPLAIN ANALYZE; this is the plan only" if analyze else None
        command = f"EXPLAIN QUERY PLAN {sql}"
        try:
            cur = self.conn.execute(command, nulls)
            try:
                rows = [tuple(row) for row in cur.fetchall()]
            finally:
                cur.close()
        except sqlite3.Error as exc:
            message = str(exc)
            if "syntax error" in message or "incomplete input" in message:
                code = "syntax"
            elif message.startswith("no such"):
                code = "missing_object"
            else:
                code = "error"
            return CapturedPlan(
                statement.key,
                statement.text,
                sql=sql,
                reason=message,
                reason_code=code,
                note=note,
                commands=(command,),
            )
        finally:
            self.rollback()
        return CapturedPlan(
            statement.key,
            statement.text,
            sql=sql,
            method="explain_query_plan",
            plan=rows,
            note=note,
            commands=(command,),
        )
