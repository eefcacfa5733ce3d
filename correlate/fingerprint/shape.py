"""Fingerprinting one statement, or many at once: the pipeline the package docstring describes."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from correlate.dialects import for_db_system
from correlate.semconv import NOT_SQL_SYSTEMS

from .commands import COMMAND_SYSTEMS, fold_commands
from .normalize import (
    COMMAND_PASSES,
    PASSES,
    collapse_lists,
    collapse_values_rows,
    literals_to_placeholders,
    normalize_tokens,
    renumber_placeholders,
    strip_placeholder_casts,
    unify_placeholders,
)
from .parsers import calls_pglast, calls_sqlglot, parse_pglast, parse_sqlglot
from .placeholders import number_question_marks
from .sqlcommenter import parse_comment
from .tokens import Token, render, tokenize

Method = Literal["pglast", "sqlglot", "fallback"]


@dataclass(frozen=True)
class Fingerprint:
    """One statement's shape.

    >>> f = fingerprint("SELECT * FROM orders WHERE customer_id = %(cid)s::INTEGER LIMIT 2")
    >>> f.normalized
    'SELECT * FROM orders WHERE customer_id = $1 LIMIT $2'
    >>> f.method, f.operation, f.tables
    ('pglast', 'SELECT', ('orders',))
    >>> fingerprint("select * from ORDERS where customer_id=7 limit 5").id == f.id
    True
    """

    id: str
    normalized: str
    method: Method
    operation: str
    tables: tuple[str, ...]
    # Per-execution values (traceparent…): not part of the shape, so not part of equality.
    comment: Mapping[str, str] = field(default_factory=dict, compare=False)


#: Passes run again over a parser's output (not fold_case: the parser's case stands).
AFTER_PARSER = (
    unify_placeholders,
    literals_to_placeholders,
    strip_placeholder_casts,
    collapse_lists,
    collapse_values_rows,
    renumber_placeholders,
)


def _hash(normalized: str) -> str:
    return hashlib.blake2b(normalized.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


_DML = ("select", "insert", "update", "delete", "merge", "values")


def _operation(tokens: list[Token]) -> str:
    """The statement's verb; for ``WITH … <verb>`` the verb after the CTEs."""
    words = [t for t in tokens if t.kind == "word" or t.text in ("(", ")", ";")]
    if not words:
        return ""
    first = next((t.text.lower() for t in words if t.kind == "word"), "")
    if first != "with":
        return first.upper()
    depth = 0
    for tok in words:
        if tok.text == "(":
            depth += 1
        elif tok.text == ")":
            depth -= 1
        elif depth == 0 and tok.text.lower() in _DML:
            return tok.text.upper()
    return "WITH"


_TABLE_BEFORE = frozenset(("from", "join", "into", "update", "table"))


def _fallback_tables(tokens: list[Token]) -> tuple[str, ...]:
    """Best effort: the dotted name after FROM/JOIN/INTO/UPDATE/TABLE."""
    names: list[str] = []
    for i, tok in enumerate(tokens[:-1]):
        if tok.kind != "word" or tok.text.lower() not in _TABLE_BEFORE:
            continue
        j = i + 1
        parts: list[str] = []
        while j < len(tokens) and tokens[j].kind in ("word", "qident"):
            parts.append(tokens[j].text)
            if j + 1 < len(tokens) and tokens[j + 1].text == ".":
                j += 2
            else:
                break
        if parts and parts[0].lower() not in ("select", "lateral", "only"):
            names.append(".".join(parts))
    return tuple(dict.fromkeys(names))


def _canonical(
    text: str, tok_dialect: str | None, glot_dialect: str | None, auto: bool
) -> tuple[str, Method, tuple[str, ...]] | None:
    # Lone surrogates (from a mangled decode) cannot reach libpg_query as UTF-8; such text
    # is not SQL any server ran, so it keeps the fallback form.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    if tok_dialect == "postgres" or auto:
        parsed = parse_pglast(text)
        if parsed is not None:
            return parsed[0], "pglast", parsed[1]
    if tok_dialect != "postgres":
        parsed = parse_sqlglot(text, glot_dialect)
        if parsed is not None:
            return parsed[0], "sqlglot", parsed[1]
    return None


def fingerprint(sql: str, dialect: str | None = None) -> Fingerprint:
    """Fingerprint one statement; never raises on text, however broken.

    ``dialect`` is the span's ``db.system`` / ``db.system.name`` (``postgresql``,
    ``mysql``, ``mariadb``, ``sqlite``…); None tries PostgreSQL, then sqlglot's generic
    dialect.

    >>> a = fingerprint("SELECT id FROM `Orders` WHERE id IN (?, ?, ?)", "mysql")
    >>> b = fingerprint("select id from orders where id in (1)", "mariadb")
    >>> a.id == b.id, a.normalized, a.method
    (True, 'SELECT id FROM orders WHERE id IN ($1)', 'sqlglot')
    >>> fingerprint("select 'unterminated from t", "postgresql").method
    'fallback'
    """
    return _fingerprint(sql, dialect, None)


#: The shape of normalised tokens in one dialect: ``(normalized, method, operation, tables)``.
_Shape = tuple[str, Method, str, tuple[str, ...]]
_ShapeKey = tuple[tuple[tuple[str, str], ...], str | None, str | None, bool, bool]


def _fingerprint(
    sql: str, dialect: str | None, shapes: dict[_ShapeKey, _Shape] | None
) -> Fingerprint:
    """:func:`fingerprint`, the parsing step shared through ``shapes`` when given.

    Everything after the first normalisation depends only on its tokens and the
    dialect, so texts that differ in literal values or list lengths (`IN (1, 2)`,
    `IN (3)`) are tokenized each but parsed once.
    """
    key = (dialect or "").strip().lower()
    auto = key in ("", "other_sql")
    parse = key not in NOT_SQL_SYSTEMS  # Redis's `GET ?` is a command, not SQL
    # The registry knows old and new db.system values; a name it does not know may still
    # be a sqlglot dialect. None (unknown) tries PostgreSQL first, then sqlglot's generic one.
    known = None if auto else for_db_system(key)
    tok_dialect, glot_dialect = (known.lexer, known.sqlglot) if known else (None, None)
    if not auto and known is None:
        glot_dialect = _sqlglot_dialect(key)
    body, comment = parse_comment(sql)
    if comment and not _ends_in_block_comment(sql, tok_dialect):
        # what looked like a trailing sqlcommenter comment is inside an unclosed comment
        # or string (`/*/*a='b'*/`): it is part of the text, not a comment of its own
        body, comment = sql, {}
    verb: str | None = None
    if key in COMMAND_SYSTEMS:
        body, verb = fold_commands(body)
    passes = PASSES if parse else COMMAND_PASSES
    tokens = normalize_tokens(tokenize(body, tok_dialect), passes)
    shape = _shape_of(tokens, tok_dialect, glot_dialect, auto, parse, shapes)
    if shape[1] == "fallback" and tok_dialect == "postgres" and parse and "?" in body:
        # `?` is jsonb's operator to PostgreSQL, but knex and JDBC write their placeholders
        # so: where the text does not parse as written, read them as the `$n` the server sees
        numbered = number_question_marks(body)
        if numbered != body:
            tokens = normalize_tokens(tokenize(numbered, tok_dialect), passes)
            again = _shape_of(tokens, tok_dialect, glot_dialect, auto, parse, shapes)
            shape = shape if again[1] == "fallback" else again
    normalized, method, operation, tables = shape
    operation = verb or operation
    return Fingerprint(
        id=_hash(normalized),
        normalized=normalized,
        method=method,
        operation=operation,
        tables=tables,
        comment=comment,
    )


def _shape_of(
    tokens: list[Token],
    tok_dialect: str | None,
    glot_dialect: str | None,
    auto: bool,
    parse: bool,
    shapes: dict[_ShapeKey, _Shape] | None,
) -> _Shape:
    """:func:`_shape`, looked up in and added to ``shapes`` when given."""
    if shapes is None:
        return _shape(tokens, tok_dialect, glot_dialect, auto, parse)
    shape_key = (tuple((t.kind, t.text) for t in tokens), tok_dialect, glot_dialect, auto, parse)
    found = shapes.get(shape_key)
    if found is None:
        found = shapes[shape_key] = _shape(tokens, tok_dialect, glot_dialect, auto, parse)
    return found


def _shape(
    tokens: list[Token], tok_dialect: str | None, glot_dialect: str | None, auto: bool, parse: bool
) -> _Shape:
    text = render(tokens)
    canonical = _canonical(text, tok_dialect, glot_dialect, auto) if parse else None
    method: Method
    if canonical is None:
        normalized, method, tables = text, "fallback", _fallback_tables(tokens)
    else:
        # The parser may reorder clauses (LIMIT before OFFSET) or write literals of its own
        # (T-SQL's `!0` becomes `NOT … <> 0`): run the value passes again, case left as the
        # parser wrote it, so the text is a fixed point of the whole pipeline.
        rendered, method, tables = canonical
        parsed_tokens = normalize_tokens(tokenize(rendered, tok_dialect), AFTER_PARSER)
        normalized = render(parsed_tokens)
        again = render(normalize_tokens(tokenize(normalized, tok_dialect), PASSES))
        second = _canonical(again, tok_dialect, glot_dialect, auto)
        if second is None or _after_parser(second[0], tok_dialect) != normalized:
            # The parser's own rendering does not parse again (sqlglot writes MySQL's
            # `VALUES !0` as `VALUES ((NOT …))`, which it then refuses), or parses to
            # something else (`;END` renders as `END`, which renders as `end`): a second
            # fingerprint would differ. Take the fallback now instead.
            normalized, method, tables = text, "fallback", _fallback_tables(tokens)
        else:
            tokens = parsed_tokens
    return normalized, method, _operation(tokens), tables


def table_free_calls(sql: str, dialect: str | None = None) -> tuple[str, ...] | None:
    """The functions ``sql`` calls when it is one SELECT that reads no table (``()`` for
    ``SELECT 1``): its time is then its own work, which no index shortens. None when it
    reads a table, is some other statement, or does not parse. ``dialect`` as in
    :func:`fingerprint`.

    >>> table_free_calls("SELECT pg_sleep($1)", "postgresql")
    ('pg_sleep',)
    >>> table_free_calls("SELECT SLEEP(?) AS held FROM nm_customers", "mysql") is None
    True
    """
    key = (dialect or "").strip().lower()
    if key in NOT_SQL_SYSTEMS:
        return None
    known = None if key in ("", "other_sql") else for_db_system(key)
    if known is None or known.lexer == "postgres":
        found = calls_pglast(sql)
        if found is not None or known is not None:
            return found
    return calls_sqlglot(sql, known.sqlglot if known else _sqlglot_dialect(key) if key else None)


def _ends_in_block_comment(sql: str, tok_dialect: str | None) -> bool:
    """Whether ``sql``'s last token (a final ``;`` aside) is a ``/* */`` comment of its own."""
    tokens = [t for t in tokenize(sql, tok_dialect) if t.text != ";"]
    return bool(tokens) and tokens[-1].kind == "comment" and tokens[-1].text.startswith("/*")


def _after_parser(rendered: str, tok_dialect: str | None) -> str:
    return render(normalize_tokens(tokenize(rendered, tok_dialect), AFTER_PARSER))


def _sqlglot_dialect(name: str) -> str | None:
    from sqlglot.dialects.dialect import Dialect

    try:
        Dialect.get_or_raise(name)
    except ValueError:
        return None
    return name


class FingerprintMap(dict[tuple[str, str | None], Fingerprint]):
    """``{(statement, dialect): Fingerprint}``, as returned by :func:`fingerprint_many`."""

    def counts(self) -> Counter[str]:
        """How many distinct statements each method handled (``fallback`` = unparsed)."""
        return Counter(f.method for f in self.values())


def fingerprint_many(statements: Iterable[tuple[str, str | None]]) -> FingerprintMap:
    """Fingerprint ``(statement, dialect)`` pairs, each distinct pair once.

    >>> fps = fingerprint_many([("select 1", None), ("select 1", None), ("select 2", None)])
    >>> len(fps), fps[("select 1", None)].id == fps[("select 2", None)].id
    (2, True)
    >>> dict(fps.counts())
    {'pglast': 2}
    """
    out = FingerprintMap()
    shapes: dict[_ShapeKey, _Shape] = {}
    for key in statements:
        if key not in out:
            out[key] = _fingerprint(*key, shapes)
    return out
