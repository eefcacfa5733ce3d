"""A forgiving SQL tokenizer and its inverse, the renderer.

Every normalisation pass works on this token list, whatever parser runs afterwards, so the
fallback for unparseable text is the same pipeline minus the parser. The tokenizer never
fails: an unterminated string or comment runs to the end of the text, and a character it does
not know becomes a one-character ``other`` token.

Dialects change what is a placeholder, whether ``"…"`` is a string (MySQL) or an
identifier, and whether backslash escapes a quote (MySQL) or ``$tag$…$tag$`` quotes a
string (PostgreSQL). ``?`` is a placeholder everywhere but in PostgreSQL, where it is a jsonb
operator. ``:name`` is one everywhere outside a ``[lo:hi]`` slice, and Oracle's drivers
also number them, ``:1``. In T-SQL ``@P0`` (Microsoft's JDBC driver) and ``@name`` (.NET
SqlClient, EF Core, Dapper) are the bound parameters, but ``@x`` is a local variable once the
batch declares it and ``@@ROWCOUNT`` a system function: those stay words
(:func:`_tsql_variables`). MySQL's ``@x`` and ``@@x`` are variables, never placeholders: they
lex as the operator ``@`` then a word, which keeps the name in the statement's shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["Kind", "Token", "render", "tokenize"]

Kind = Literal[
    "comment",  # -- … or /* … */
    "string",  # '…', E'…', $$…$$, MySQL "…"
    "number",
    "param",  # a bind placeholder in any paramstyle
    "word",  # keyword or unquoted identifier
    "qident",  # "…" or `…` or […] quoted identifier
    "op",  # operator run, or :: and friends
    "punct",  # ( ) [ ] , ; .
    "other",  # anything the tokenizer does not know
]


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    text: str


# Placeholders first: `%(name)s` and `$1` must win over `%` and `$` in operators and words.
_PARAM = r"%\([^()\s]*\)s|%s(?![A-Za-z0-9_])|\$\d+"
_NAMED = r":[A-Za-z_][A-Za-z0-9_]*"
# Oracle: `:1` as well as `:name`; Oracle names may hold `$` and `#`.
_ORACLE_BIND = r":(?:[A-Za-z_][A-Za-z0-9_$#]*|\d+)"
# T-SQL: `@name` (a parameter, or a declared variable) and `@@NAME` (a system function).
_TSQL_AT = r"@@?[A-Za-z_#\u0080-\uffff][A-Za-z0-9_@#$\u0080-\uffff]*"
_NUMBER = r"0[xX][0-9A-Fa-f]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_WORD = r"[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*"
_OPCHARS = "+-*/<>=~!@#%^&|`?"
# PostgreSQL: an operator may not end in + or - unless it also holds one of these, so
# `=-5` lexes as `=` then `-5` (scan.l). Applying it everywhere keeps `a=-5` == `a = -5`.
_OP_SPECIAL = set("~!@#%^&|`?")

_SIMPLE = re.compile(
    "|".join(
        (
            rf"(?P<param>{_PARAM})",
            rf"(?P<number>{_NUMBER})",
            rf"(?P<word>{_WORD})",
            r"(?P<cast>::|:=)",
            r"(?P<punct>[()\[\],;.])",
        )
    )
)
_SPACE = re.compile(r"\s+")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
_NAMED_RE = re.compile(_NAMED)
_ORACLE_BIND_RE = re.compile(_ORACLE_BIND)
_TSQL_AT_RE = re.compile(_TSQL_AT)
_PARAM_RE = re.compile(_PARAM)


# Where a line comment ends. PostgreSQL's scanner ends one at \r as well as \n (scan.l:
# non_newline is [^\n\r]); MySQL and SQLite at \n only.
_LINE_END_PG = re.compile(r"[\n\r]")
_LINE_END = re.compile(r"\n")
# MySQL: `--` starts a comment only when whitespace or a control character follows.
_MYSQL_DASHES_END = re.compile(r"--(?:[\x00-\x20]|$)")


def _line_comment(sql: str, i: int, mysql: bool) -> bool:
    if mysql:
        return sql.startswith("#", i) or bool(_MYSQL_DASHES_END.match(sql, i))
    return sql.startswith("--", i)


def _block_comment_end(sql: str, start: int, nested: bool) -> int:
    """Index just past the ``/* … */`` opening at ``start``; -1 if never closed.

    PostgreSQL nests block comments (``/* a /* b */ c */`` is one comment); MySQL and
    SQLite end one at the first ``*/``.
    """
    if not nested:
        end = sql.find("*/", start + 2)
        return end + 2 if end >= 0 else -1
    depth, i, n = 0, start, len(sql)
    while i < n - 1:
        pair = sql[i : i + 2]
        if pair == "/*":
            depth += 1
            i += 2
        elif pair == "*/":
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return -1


def _quoted_end(sql: str, start: int, quote: str, backslash: bool) -> int:
    """Index just past the quoted run opening at ``start``; -1 if it is never closed."""
    i = start + 1
    n = len(sql)
    while i < n:
        c = sql[i]
        if backslash and c == "\\":
            i += 2
            continue
        if c == quote:
            if i + 1 < n and sql[i + 1] == quote:  # doubled quote escapes itself
                i += 2
                continue
            return i + 1
        i += 1
    return -1


def _add(out: list[Token], kind: Kind, sql: str, start: int, end: int) -> int:
    """Append the quoted run ``sql[start:end]``; return where scanning resumes.

    A run never closed (``end == -1``) takes the rest of the text as an ``other`` token, so
    no pass treats it as a literal or comment and no parser accepts it: the statement gets
    the fallback fingerprint rather than being silently truncated.
    """
    if end < 0:
        out.append(Token("other", sql[start:]))
        return len(sql)
    out.append(Token(kind, sql[start:end]))
    return end


def tokenize(sql: str, dialect: str | None = None) -> list[Token]:
    """Split ``sql`` into tokens; whitespace is dropped, comments are kept.

    ``dialect`` is a lexer name of :mod:`correlate.dialects` (``"postgres"``, ``"mysql"``,
    ``"sqlite"``, ``"tsql"``, ``"oracle"``) or None (anything, read as PostgreSQL reads it
    but with ``?`` as a placeholder). In T-SQL and SQLite ``[…]`` quotes an identifier.

    >>> [t.text for t in tokenize("SELECT a FROM t WHERE id = %(id)s::INTEGER")]
    ['SELECT', 'a', 'FROM', 't', 'WHERE', 'id', '=', '%(id)s', '::', 'INTEGER']
    >>> [(t.kind, t.text) for t in tokenize("SELECT @@ROWCOUNT, @P0", "tsql")]
    [('word', 'SELECT'), ('word', '@@ROWCOUNT'), ('punct', ','), ('param', '@P0')]
    """
    mysql = dialect == "mysql"
    tsql = dialect == "tsql"
    binds = _ORACLE_BIND_RE if dialect == "oracle" else _NAMED_RE
    postgres = dialect in ("postgres", None)
    question_is_param = dialect != "postgres"
    out: list[Token] = []
    brackets = 0  # depth of [ ], where `lo:hi` is a slice
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        m = _SPACE.match(sql, i)
        if m:
            i = m.end()
            continue
        if _line_comment(sql, i, mysql):
            m = (_LINE_END_PG if postgres else _LINE_END).search(sql, i)
            end = n if m is None else m.start()
            out.append(Token("comment", sql[i:end]))
            i = end
            continue
        if sql.startswith("/*", i):
            i = _add(out, "comment", sql, i, _block_comment_end(sql, i, nested=postgres))
            continue
        # String prefixes: E'…' (backslash escapes), N'…', X'…', B'…', U&'…'.
        if c in "eEnNxXbBuU" and i + 1 < n:
            prefix = 3 if sql.startswith(("U&'", "u&'"), i) else 1
            if sql[i + prefix : i + prefix + 1] == "'" and (prefix == 3 or c not in "uU"):
                backslash = mysql or c in "eE"
                end = _quoted_end(sql, i + prefix, "'", backslash)
                i = _add(out, "string", sql, i, end)
                continue
        if c == "'" or (c == '"' and mysql):
            i = _add(out, "string", sql, i, _quoted_end(sql, i, c, mysql))
            continue
        if c in '"`':
            i = _add(out, "qident", sql, i, _quoted_end(sql, i, c, False))
            continue
        if c == "[" and (tsql or dialect == "sqlite"):
            end = sql.find("]", i + 1)
            i = _add(out, "qident", sql, i, end + 1 if end >= 0 else -1)
            continue
        if c == "$" and postgres:
            m = _DOLLAR_TAG.match(sql, i)
            if m:
                end = sql.find(m.group(), m.end())
                i = _add(out, "string", sql, i, end + len(m.group()) if end >= 0 else -1)
                continue
        if c == ":" and not sql.startswith("::", i):
            m = binds.match(sql, i)
            prev = out[-1] if out else None
            # `a[lo:hi]` is a slice, not a placeholder: only a `:name` outside brackets that
            # does not follow a closing bracket is a bind parameter.
            if m and brackets == 0 and (prev is None or prev.text not in (")", "]")):
                out.append(Token("param", m.group()))
                i = m.end()
                continue
        if c == "?" and question_is_param:
            out.append(Token("param", "?"))
            i += 1
            continue
        if c == "@" and tsql:
            m = _TSQL_AT_RE.match(sql, i)
            if m:
                out.append(Token("word" if m.group().startswith("@@") else "param", m.group()))
                i = m.end()
                continue
        m = _SIMPLE.match(sql, i)
        if m:
            kind = m.lastgroup
            if m.group() == "[":
                brackets += 1
            elif m.group() == "]":
                brackets = max(0, brackets - 1)
            out.append(Token("op" if kind == "cast" else kind, m.group()))  # type: ignore[arg-type]
            i = m.end()
            continue
        if c in _OPCHARS:
            # The first character always goes in, so the scan always advances.
            j = i + 1
            while j < n and sql[j] in _OPCHARS:
                if sql.startswith(("--", "/*"), j) or (sql[j] == "?" and question_is_param):
                    break
                if sql[j] == "%" and _PARAM_RE.match(sql, j):
                    break
                j += 1
            run = sql[i:j]
            if len(run) > 1 and not _OP_SPECIAL.intersection(run):
                run = run.rstrip("+-") or run[0]
            out.append(Token("op", run))
            i += len(run)
            continue
        out.append(Token("other", c))
        i += 1
    return _tsql_variables(out) if tsql else out


# T-SQL words that begin a statement: a DECLARE not ended by `;` ends at one of them.
_TSQL_STATEMENT_START = frozenset(
    [
        "begin",
        "declare",
        "delete",
        "exec",
        "execute",
        "if",
        "insert",
        "merge",
        "print",
        "return",
        "select",
        "set",
        "update",
        "while",
        "with",
    ]
)


def _tsql_variables(tokens: list[Token]) -> list[Token]:
    """Turn the ``@name`` params that are not bound values back into words.

    A name the batch declares (``DECLARE @n INT``, ``DECLARE @a INT = 1, @t TABLE (…)``) is
    a local variable wherever it appears: its name is part of the statement, as a column's
    is. So is the parameter name of an ``EXEC proc @name = …`` argument. Everything else
    spelled ``@name`` is what the driver binds: SqlClient and EF Core send ``@p0`` or
    ``@name`` through ``sp_executesql``, Microsoft's JDBC driver ``@P0``. T-SQL compares
    variable names without case, and so does this. The parameters a ``CREATE PROCEDURE p
    @a INT AS …`` declares for itself are not told apart: such DDL is no hot statement, and
    it still gets one stable fingerprint.

    >>> [t.text for t in tokenize("DECLARE @n INT = @P0; SELECT @N", "tsql") if t.kind == "param"]
    ['@P0']
    """
    declared: set[str] = set()
    named_args: set[int] = set()
    statement = ""  # the first word of the statement being read: "declare", "exec" or other
    depth = 0
    for k, tok in enumerate(tokens):
        low = tok.text.lower()
        prev = tokens[k - 1] if k else None
        if tok.kind == "punct" and low in "([":
            depth += 1
        elif tok.kind == "punct" and low in ")]":
            depth = max(0, depth - 1)
        elif low == ";" or (tok.kind == "word" and depth == 0 and low in _TSQL_STATEMENT_START):
            statement = "exec" if low == "execute" else low
        elif tok.kind == "param" and depth == 0 and prev is not None:
            listed = prev.text == "," or prev.text.lower() == statement
            if statement == "declare" and listed:
                declared.add(low)
            following = tokens[k + 1].text if k + 1 < len(tokens) else ""
            if statement == "exec" and following == "=" and prev.text != "=":
                named_args.add(k)
    return [
        Token("word", t.text)
        if t.kind == "param"
        and t.text.startswith("@")
        and (t.text.lower() in declared or k in named_args)
        else t
        for k, t in enumerate(tokens)
    ]


# Words after which `(` opens a list or subquery rather than a call; they get a space.
_SPACED_BEFORE_PAREN = frozenset(
    [
        "and",
        "as",
        "by",
        "exists",
        "from",
        "in",
        "into",
        "join",
        "not",
        "on",
        "or",
        "over",
        "returning",
        "select",
        "set",
        "then",
        "union",
        "using",
        "values",
        "when",
        "where",
        "with",
        "else",
        "except",
        "intersect",
        "lateral",
    ]
)


_CASTABLE = frozenset(("word", "qident", "param", "number", "string"))


def _space_between(a: Token, b: Token) -> bool:
    if a.text in ("(", "[") or b.text in (")", "]", ",", ";"):
        return False
    if b.text == "::":
        return not (a.kind in _CASTABLE or a.text in (")", "]"))
    if a.text == "::":
        return b.kind not in ("word", "qident")
    if a.text == "." or b.text == ".":
        # Only identifier.identifier joins tightly: `t . 5` must not re-lex as `t` `.5`.
        left = a if b.text == "." else None
        right = b if a.text == "." else None
        if left is not None:
            return left.kind not in ("word", "qident")
        assert right is not None
        return right.kind not in ("word", "qident") and right.text != "*"
    if (b.text == "[" and a.kind in ("word", "qident", "param")) or a.text == "]" == b.text:
        return False
    if b.text == "(" and a.kind in ("word", "qident"):
        return a.text.lower() in _SPACED_BEFORE_PAREN
    return True


def render(tokens: list[Token]) -> str:
    """Join tokens into text that :func:`tokenize` splits back into the same tokens.

    >>> render(tokenize("select  count( * ) from t where id in (1,2)"))
    'select count(*) from t where id in (1, 2)'
    """
    parts: list[str] = []
    prev: Token | None = None
    for tok in tokens:
        if prev is not None and _space_between(prev, tok):
            parts.append(" ")
        parts.append(tok.text)
        prev = tok
    return "".join(parts)
