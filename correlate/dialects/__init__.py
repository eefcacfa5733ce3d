"""The databases correlate knows, one :class:`Dialect` each, and the registry that finds them.

Spans, URLs, plans and parsers name databases differently: OpenTelemetry's
``db.system`` (``postgresql``, and ``db.system.name`` in newer semantic
conventions), SQLAlchemy URL schemes (``postgresql+psycopg://``, ``postgres://``),
sqlglot dialects (``postgres``), plan sources. Every place that maps such a name
to a database asks this registry, so a new alias is added once.

>>> for_db_system("postgres").name, for_url("mysql+pymysql://app@db/shop").name
('postgresql', 'mysql')
>>> get("mariadb").sqlglot, get("postgresql").quote_identifier('we"ird')
('mysql', '"we""ird"')
"""

from __future__ import annotations

from correlate.dialects.base import Dialect, UnknownDatabaseError
from correlate.dialects.registry import (
    DIALECTS,
    for_db_system,
    for_url,
    get,
    register,
    url_scheme,
)

__all__ = [
    "DIALECTS",
    "Dialect",
    "UnknownDatabaseError",
    "for_db_system",
    "for_url",
    "get",
    "register",
    "url_scheme",
]
