"""Session setup: statements a driver or dialect runs to learn or set a connection's state.

SQLAlchemy's dialects ask a new pool's first connection for the server version, the
current schema and session settings (``select pg_catalog.version()``, ``show
standard_conforming_strings``, ``SELECT @@sql_mode``, ``SELECT DATABASE()``), and drivers
set up each new connection (``SET NAMES utf8mb4``). They run once per connection, inside
whichever request first uses it, read no table, and say nothing about the request's own
work. A *session statement* is ``SHOW …``, ``SET`` of a setting to a value (not of a user
variable ``@x``, nor to a subquery's result), or a ``SELECT`` of nothing but server and
session functions and ``@@`` variables, with no ``FROM`` (Oracle's ``FROM dual`` aside).
The ``@@`` variables that hold the previous statement's outcome (``@@IDENTITY``,
``@@ROWCOUNT``, ``@@ERROR``, MySQL's ``@@last_insert_id``) are not the session's: an
application asks for them after each ``INSERT``, a round trip of the request's own. Nor
is a ``SET`` that a statement follows in the same text (``SET NOCOUNT ON UPDATE …``).

>>> is_session_statement("select pg_catalog.version()")
True
>>> is_session_statement("SELECT @@sql_mode")
True
>>> is_session_statement("SELECT version FROM releases")
False
>>> is_session_statement("SELECT @@IDENTITY")
False
"""

from __future__ import annotations

import re

__all__ = ["NOT_SESSION_STATEMENT", "SESSION_STATEMENT", "is_session_statement"]

_FUNCTIONS = (
    "version|current_schema|current_schemas|current_setting|current_database|database|schema"
    "|schema_name|user|current_user|session_user|connection_id|serverproperty|sys_context"
)
_ITEM = (
    rf"(@@[a-z_][a-z0-9_.]*|(pg_catalog\.)?({_FUNCTIONS})\s*\([^()]*\)"
    r"|current_user|session_user|current_schema|current_catalog)(\s+(as\s+)?[a-z_][a-z0-9_]*)?"
)

#: The pattern (RE2 and Python syntax, case-insensitive) of a session statement's text,
#: comments removed.
SESSION_STATEMENT = (
    r"(?i)^\s*(show\s[^;]*|set\s+([a-z_]|@@)[^;()]*"
    rf"|select\s+{_ITEM}(\s*,\s*{_ITEM})*(\s+from\s+(sys\.)?dual)?)\s*;?\s*$"
)

#: The pattern of a text :data:`SESSION_STATEMENT` matches that is no session statement:
#: one that names an ``@@`` variable holding the previous statement's outcome, or a
#: ``SET``/``SHOW`` followed by a statement of its own (a T-SQL batch needs no ``;``:
#: ``SET NOCOUNT ON UPDATE …``). RE2 has no lookahead to say so in one pattern.
NOT_SESSION_STATEMENT = (
    r"(?is)@@((session|local)\.)?(identity|rowcount|error|trancount|fetch_status|cursor_rows"
    r"|last_insert_id|warning_count|error_count)\b"
    r"|^\s*(set|show)\s.*\b(select|insert|update|delete|merge|upsert|replace|exec|execute"
    r"|call|create|alter|drop|truncate|grant|revoke|declare|begin|with)\b"
)

_SESSION = re.compile(SESSION_STATEMENT)
_NOT_SESSION = re.compile(NOT_SESSION_STATEMENT)


def is_session_statement(text: str) -> bool:
    """Whether ``text`` only reads or sets the connection's session (:data:`SESSION_STATEMENT`,
    not :data:`NOT_SESSION_STATEMENT`)."""
    return _SESSION.match(text) is not None and _NOT_SESSION.search(text) is None
