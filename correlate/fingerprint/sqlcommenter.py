"""Read sqlcommenter comments: ``<sql> /*key='value',…*/`` (https://google.github.io/sqlcommenter/spec/).

Only the last comment at the end of the statement (before an optional ``;``) is taken, and
only when its whole body is ``key='value'`` pairs: any other comment belongs to the
statement and is left for the normaliser.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["parse_comment", "traceparent_ids"]

# A quoted value: the spec writes '…' with \' escapes; OTel's Python repr() may use "…".
_VALUE = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
_PAIR = rf"\s*[^\s=,'\"]+\s*=\s*(?:{_VALUE})\s*"
_BODY = re.compile(rf"{_PAIR}(?:,{_PAIR})*")
_PAIR_RE = re.compile(rf"\s*(?P<key>[^\s=,'\"]+)\s*=\s*(?P<value>{_VALUE})\s*")
_TAIL = re.compile(r"\*/\s*(?:;\s*)?\Z")
_ESCAPE = re.compile(r"\\(.)", re.S)


def _decode(raw: str) -> str:
    # Under pyformat the DBAPI text doubles every `%` (`sqlalchemy%%3A2.0.58`); URL-encoding
    # never yields `%%`, so undoubling first is safe for both forms.
    return unquote(_ESCAPE.sub(r"\1", raw).replace("%%", "%"))


def parse_comment(sql: str) -> tuple[str, dict[str, str]]:
    """Split a trailing sqlcommenter comment off ``sql``.

    Returns the SQL without the comment (a trailing ``;`` is kept) and the decoded pairs;
    ``(sql, {})`` when there is no such comment.

    >>> parse_comment("select 1 /*db_driver='psycopg',db_framework='sqlalchemy%%3A2.0.58'*/")
    ('select 1', {'db_driver': 'psycopg', 'db_framework': 'sqlalchemy:2.0.58'})
    >>> parse_comment("select 1 /* just a note */")
    ('select 1 /* just a note */', {})
    """
    tail = _TAIL.search(sql)
    if tail is None:
        return sql, {}
    start = sql.rfind("/*", 0, tail.start())
    if start < 0:
        return sql, {}
    body = sql[start + 2 : tail.start()]
    if not _BODY.fullmatch(body):
        return sql, {}
    pairs: dict[str, str] = {}
    for m in _PAIR_RE.finditer(body):
        pairs[_decode(m.group("key"))] = _decode(m.group("value")[1:-1])
    rest = sql[tail.start() + 2 :].strip()
    return sql[:start].rstrip() + rest, pairs


_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def traceparent_ids(value: str) -> tuple[str, str] | None:
    """``(trace_id, span_id)`` from a W3C ``traceparent``, or None if it is not valid.

    With the OpenTelemetry SQLAlchemy instrumentation the span id is the database CLIENT
    span's own id: the comment is written while that span is current.

    >>> traceparent_ids("00-2fa642aec560c36eb8481517775e4552-72da799cfec845d6-03")
    ('2fa642aec560c36eb8481517775e4552', '72da799cfec845d6')
    >>> traceparent_ids("00-00000000000000000000000000000000-72da799cfec845d6-01") is None
    True
    """
    m = _TRACEPARENT.fullmatch(value.strip().lower())
    if m is None or m.group(1) == "ff":
        return None
    trace_id, span_id = m.group(2), m.group(3)
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return trace_id, span_id
