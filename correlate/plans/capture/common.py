"""What every live capture shares: the statement and result types, the session base class,
and the refusals that come before any server is asked."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from correlate.errors import DatabaseConnectionError
from correlate.fingerprint.placeholders import Placeholders
from correlate.redact import redact_url, scrub, url_secrets

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

log = logging.getLogger("correlate.plans.capture")

#: Keywords a statement may start with for EXPLAIN to accept it.
EXPLAINABLE = frozenset(
    {"SELECT", "WITH", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "TABLE"}
)
#: Keywords a statement may start with for ``analyze=True`` to run it.
READ_ONLY_STARTS = frozenset({"SELECT", "WITH", "VALUES", "TABLE"})
WRITING_KEYWORDS = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE"})

#: The error a failed connection raises; kept under this name for callers of capture.
CaptureConnectionError = DatabaseConnectionError

NOT_ANALYZED_PLACEHOLDERS = (
    "not analyzed: the statement has placeholders and the span holds no values (the plan is "
    "the server's estimate, as EXPLAIN without ANALYZE gives it)"
)


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
    (``prepare_force_generic``, ``explain_json``,
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

    dialect: str
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


#: How much of a server's error message a reason keeps.
REASON_LIMIT = 200


def short_reason(message: str, limit: int = REASON_LIMIT) -> str:
    """The first line of a server's error message, at most ``limit`` characters.

    Errors can quote values the server computed; keeping them short bounds what a
    hostile statement could carry out through one, should a check ever miss it.

    >>> short_reason("division by zero" + chr(10) + "CONTEXT: SQL function")
    'division by zero'
    >>> len(short_reason("x" * 500))
    200
    """
    lines = message.strip().splitlines()
    line = lines[0].strip() if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def refusal(text: str, split: Placeholders, analyze: bool) -> tuple[str, str] | None:
    """(reason_code, reason) when the statement must not be sent at all, by the lexer's
    reading; each dialect adds its own server-grammar checks after this one."""
    if not text.strip():
        return "not_explainable", "empty statement"
    if split.unterminated:
        return "refused", "a quote or comment in the text is never closed"
    if split.statements > 1:
        return "refused", "the text holds several statements; explain them one at a time"
    first = split.first_word
    if first not in EXPLAINABLE:
        return (
            "not_explainable",
            f"{first or 'this'} statements have no query plan (only SELECT, INSERT, UPDATE, "
            "DELETE, MERGE and VALUES are explained)",
        )
    if analyze and writes(split):
        return (
            "refused",
            f"analyze runs the statement, and this {first} statement writes; "
            "only statements that just read are analyzed",
        )
    return None


def writes(split: Placeholders) -> bool:
    """True unless the statement only reads, by its keywords."""
    return split.first_word not in READ_ONLY_STARTS or bool(WRITING_KEYWORDS & set(split.words))


def refused(statement: Statement, why: tuple[str, str], sql: str | None = None) -> CapturedPlan:
    """The record of a statement that was not sent, with its reason."""
    code, reason = why
    log.info("%s: not sent (%s): %s", statement.key, code, reason)
    return CapturedPlan(statement.key, statement.text, sql=sql, reason=reason, reason_code=code)


class Session:
    """One connection to one server; subclasses speak its dialect.

    Subclasses set ``dialect`` and implement :meth:`rollback`, :meth:`facts` and
    :meth:`explain`; :meth:`open` connects through SQLAlchemy with a ``NullPool``, so
    closing really closes.
    """

    dialect: str = ""
    #: Where the driver looks for a password the URL does not give, and the default port.
    password_sources = "the URL"
    default_port = 0

    def __init__(self, url: URL, statement_timeout_ms: int, lock_timeout_ms: int) -> None:
        self.url = url
        self.statement_timeout_ms = statement_timeout_ms
        self.lock_timeout_ms = lock_timeout_ms
        self._engine: Any = None
        self._raw: Any = None

    @property
    def shown(self) -> str:
        return redact_url(self.url)

    def secrets(self) -> list[str]:
        """Values no message may show: the URL's secrets, plus any the subclass adds."""
        return url_secrets(self.url)

    def connect_args(self) -> dict[str, Any]:
        return {}

    def open(self) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.exc import DBAPIError, SQLAlchemyError
        from sqlalchemy.pool import NullPool

        try:
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
            raise self.connection_error(" ".join(str(exc).split())) from None
        except DBAPIError as exc:
            raise self.connection_error(" ".join(str(exc.orig).split())) from None
        except (SQLAlchemyError, OSError) as exc:
            raise self.connection_error(f"{type(exc).__name__}: {exc}") from None

    def connection_error(self, detail: str) -> CaptureConnectionError:
        """The error for a failed or lost connection; no secret survives in its text."""
        detail = scrub(detail, self.secrets()).rstrip(". ")
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


def relation_sizes(rows: Iterable[tuple[Any, Any, Any]]) -> dict[str, float]:
    """{table: rows} under both ``schema.table`` and ``table``; the largest wins a clash."""
    sizes: dict[str, float] = {}
    for schema, table, count in rows:
        for name in (f"{schema}.{table}", str(table)):
            sizes[name] = max(sizes.get(name, 0.0), float(count))
    return sizes
