"""The real parsers: pglast for PostgreSQL, sqlglot for the other dialects.

Each takes the token pipeline's rendered text (placeholders already ``$n``, literals gone)
and returns the parser's canonical rendering of it plus the tables it reads or writes, or
None when the text does not parse. Both libraries are imported on first use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from correlate.quiet import quiet

__all__ = ["Parsed", "calls_pglast", "calls_sqlglot", "parse_pglast", "parse_sqlglot"]

Parsed = tuple[str, tuple[str, ...]]


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            for key, value in cur.items():
                if isinstance(value, dict | list):
                    yield key, value
                    stack.append(value)
        elif isinstance(cur, list):
            stack.extend(cur)


def _unique(names: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def parse_pglast(text: str) -> Parsed | None:
    """Deparse ``text`` through libpg_query; None if PostgreSQL's grammar rejects it.

    >>> parse_pglast("select a from public.t t1 left outer join u on true where x in ($1)")
    ('SELECT a FROM public.t t1 LEFT JOIN u ON true WHERE x IN ($1)', ('public.t', 'u'))
    """
    from pglast import parser

    # libpg_query reads a C string: it would silently parse only the text before a NUL.
    if "\x00" in text:
        return None
    try:
        tree = json.loads(parser.parse_sql_json(text))
        if not tree.get("stmts"):
            return None
        deparsed = parser.deparse_protobuf(parser.parse_sql_protobuf(text))
    except (parser.ParseError, parser.DeparseError, RecursionError):
        return None
    ctes: set[str] = set()
    tables: list[str] = []
    # _walk is depth-first from the end; sort by location to report in reading order.
    found: list[tuple[int, str]] = []
    for key, value in _walk(tree):
        if key == "CommonTableExpr" and isinstance(value, dict):
            ctes.add(value.get("ctename", ""))
        elif key in ("RangeVar", "relation") and isinstance(value, dict) and "relname" in value:
            parts = [value.get("catalogname"), value.get("schemaname"), value["relname"]]
            found.append((value.get("location", 0), ".".join(p for p in parts if p)))
    for _loc, name in sorted(found):
        if name not in ctes:
            tables.append(name)
    return deparsed, _unique(tables)


def parse_sqlglot(text: str, dialect: str | None) -> Parsed | None:
    """Regenerate ``text`` through sqlglot in ``dialect``; None if sqlglot cannot parse it.

    >>> parse_sqlglot("select a from `t` where x in ($1)", "mysql")
    ('SELECT a FROM `t` WHERE x IN ($1)', ('t',))
    """
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ErrorLevel, SqlglotError

    quiet("sqlglot")  # its "Falling back to parsing as a Command" warnings
    if "\x00" in text:
        return None
    try:
        trees = [t for t in sqlglot.parse(text, read=dialect) if t is not None]
        if not trees:
            return None
        # what the dialect cannot write is an error, not left out (`FOR UPDATE` in the
        # generic dialect would be written as nothing: a locking read as a plain one)
        sql = "; ".join(
            t.sql(dialect=dialect, comments=False, unsupported_level=ErrorLevel.RAISE)
            for t in trees
        )
    except (SqlglotError, RecursionError):
        return None
    tables: list[str] = []
    for tree in trees:
        ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            if not table.name:
                continue
            parts = [table.catalog, table.db, table.name]
            name = ".".join(p for p in parts if p)
            if name not in ctes:
                tables.append(name)
    return sql, _unique(tables)


#: The statements whose time, when they read no table, is their own work.
_SELECTS = ("SelectStmt",)


def calls_pglast(text: str) -> tuple[str, ...] | None:
    """The functions one SELECT that reads no table calls, through libpg_query: ``()`` for
    ``SELECT 1``; None when it reads a table, is not one SELECT, or does not parse.

    >>> calls_pglast("SELECT pg_sleep($1), now()"), calls_pglast("SELECT 1")
    (('pg_sleep', 'now'), ())
    >>> calls_pglast("SELECT count(*) FROM t") is None, calls_pglast("SET a = 1") is None
    (True, True)
    """
    from pglast import parser

    if "\x00" in text:
        return None
    try:
        stmts = json.loads(parser.parse_sql_json(text)).get("stmts", [])
    except (parser.ParseError, RecursionError):
        return None
    if len(stmts) != 1 or next(iter(stmts[0].get("stmt", {})), "") not in _SELECTS:
        return None
    found: list[tuple[int, str]] = []
    for key, value in _walk(stmts[0]):
        if key in ("RangeVar", "relation"):
            return None
        if key == "FuncCall" and isinstance(value, dict):
            names = [n["String"]["sval"] for n in value.get("funcname", ()) if "String" in n]
            found.append((value.get("location", 0), names[-1] if names else "?"))
    return _unique([name for _, name in sorted(found)])


def calls_sqlglot(text: str, dialect: str | None) -> tuple[str, ...] | None:
    """:func:`calls_pglast` through sqlglot in ``dialect``.

    >>> calls_sqlglot("SELECT SLEEP($1)", "mysql"), calls_sqlglot("SELECT $1", "mysql")
    (('SLEEP',), ())
    >>> calls_sqlglot("SELECT a FROM `t`", "mysql") is None
    True
    """
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    quiet("sqlglot")
    if "\x00" in text:
        return None
    try:
        trees = [t for t in sqlglot.parse(text, read=dialect) if t is not None]
    except (SqlglotError, RecursionError):
        return None
    if len(trees) != 1 or not isinstance(trees[0], exp.Select):
        return None
    if any(trees[0].find_all(exp.Table, exp.From, exp.Join)):
        return None
    names = [
        f.name if isinstance(f, exp.Anonymous) else f.sql_name()
        for f in trees[0].find_all(exp.Func)
        if not isinstance(f, exp.Cast)
    ]
    return _unique(names)
