"""What correlate knows about one database: :class:`Dialect`."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

from correlate.errors import CorrelateError

#: DB-API paramstyles (PEP 249) plus PostgreSQL's own ``$1``.
Paramstyle = Literal["pyformat", "format", "qmark", "named", "numeric", "dollar"]


class UnknownDatabaseError(CorrelateError):
    """A database name or URL scheme no registered dialect claims."""


@dataclass(frozen=True)
class Dialect:
    """One database and every name it goes by.

    ``db_systems`` are the span attribute values that mean it (old and new
    OpenTelemetry semantic conventions); ``url_schemes`` the SQLAlchemy backend
    names of its URLs, ``driver`` the driver a bare scheme gets; ``sqlglot`` and
    ``lexer`` the dialect names for sqlglot and :func:`correlate.fingerprint.tokens.tokenize`;
    ``plan_source`` the name its plans carry (None: correlate reads no plans of it);
    ``explains`` the databases (canonical names) whose statements its server can
    plan; ``capture`` the ``module:Class`` of its live-capture session, imported
    only when used.
    """

    name: str
    title: str
    db_systems: tuple[str, ...] = ()
    url_schemes: tuple[str, ...] = ()
    driver: str | None = None
    sqlglot: str | None = None
    lexer: str | None = None
    plan_source: str | None = None
    placeholders: tuple[Paramstyle, ...] = ()
    identifier_quote: str = '"'
    explains: tuple[str, ...] = ()
    capture: str | None = None

    def quote_identifier(self, name: str) -> str:
        """``name`` quoted as an identifier, its quote character doubled inside."""
        q = self.identifier_quote
        if q == "[":
            return f"[{name.replace(']', ']]')}]"
        return f"{q}{name.replace(q, q + q)}{q}"

    def session_class(self) -> type[Any]:
        """The live-capture session class; :class:`UnknownDatabaseError` when there is none."""
        if self.capture is None:
            raise UnknownDatabaseError(
                f"live capture supports PostgreSQL, MariaDB/MySQL and SQLite, not {self.title}"
            )
        module, _, attr = self.capture.partition(":")
        cls: type[Any] = getattr(importlib.import_module(module), attr)
        return cls
