"""Normalisation passes: small token-list transforms applied in the order of :data:`PASSES`.

Every pass takes and returns a token list (see :mod:`.tokens`), so the same pipeline serves
all three methods: its rendered output is what pglast or sqlglot parse, and, when neither
can, it is the fallback's normalised text. Callers may build their own tuple, e.g.
``normalize_tokens(tokens, PASSES[:-1])``.

Placeholders come out as ``$1, $2, …`` numbered in order of appearance, whatever the input
paramstyle: it is what PostgreSQL logs and ``pg_stat_statements`` show, it is valid input for
pglast and sqlglot in every dialect, and unlike ``?`` it never clashes with the jsonb ``?``
operator.

What collapses, on purpose: literal values, placeholder styles, ``::TYPE`` casts on
placeholders, IN lists and ``ARRAY[…]`` of any length, repeated ``VALUES`` rows, comments
(sqlcommenter included), whitespace, keyword and unquoted-identifier case, and needless
identifier quoting. What stays apart, on purpose: ``IN (…)`` vs ``= $1`` vs ``= ANY(…)``,
table aliases, ``TRUE``/``FALSE``/``NULL``, and column or table lists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from .tokens import Token

__all__ = [
    "COMMAND_PASSES",
    "PASSES",
    "Pass",
    "collapse_lists",
    "collapse_values_rows",
    "document_values_to_placeholders",
    "drop_comments",
    "fold_case",
    "fold_savepoint_names",
    "literals_to_placeholders",
    "normalize_tokens",
    "renumber_placeholders",
    "strip_placeholder_casts",
    "strip_trailing_semicolons",
    "unescape_driver_percent",
    "unify_placeholders",
]

Pass = Callable[[list[Token]], list[Token]]

PARAM = Token("param", "$0")  # renumbered by the last pass


def drop_comments(tokens: list[Token]) -> list[Token]:
    """Drop ``--`` and ``/* */`` comments, sqlcommenter's trailing one included."""
    return [t for t in tokens if t.kind != "comment"]


def unescape_driver_percent(tokens: list[Token]) -> list[Token]:
    """``%%`` is ``%`` in text with the drivers' ``%s`` or ``%(name)s`` placeholders.

    psycopg and pymysql send ``%%`` as ``%``, and the instrumentations record the text as
    the application gave it: Django's ORM writes its modulo as ``"t"."n" %% %s``. Read
    as written, that is an operator ``%%`` that PostgreSQL does not have and MySQL cannot
    parse, and ``n %% $1`` a fingerprint of its own, apart from ``n % $1``.

    >>> from correlate.fingerprint.tokens import render, tokenize
    >>> render(unescape_driver_percent(tokenize('SELECT ("t"."n" %% %s) FROM "t"')))
    'SELECT ("t"."n" % %s) FROM "t"'
    """
    if not any(t.kind == "param" and t.text.startswith("%") for t in tokens):
        return tokens
    return [
        Token(t.kind, t.text.replace("%%", "%"))
        if t.kind in ("op", "qident") and "%%" in t.text
        else t
        for t in tokens
    ]


def unify_placeholders(tokens: list[Token]) -> list[Token]:
    """``%(name)s``, ``%s``, ``?``, ``:name``, ``:1``, ``@P0`` and ``$1`` become one placeholder
    token (which of them are placeholders is the tokenizer's call, by dialect)."""
    return [PARAM if t.kind == "param" else t for t in tokens]


# A type keyword right before a string makes one typed literal: `interval '1 day'`.
# PostgreSQL's grammar only takes a string there, so `interval $1` would not parse.
_TYPED_LITERAL = frozenset(("date", "time", "timestamp", "timestamptz", "interval"))
# A minus after one of these is a sign, not a subtraction.
_SIGN_CONTEXT = frozenset(
    [
        "(",
        "[",
        ",",
        "=",
        "<",
        ">",
        "<=",
        ">=",
        "<>",
        "!=",
        "+",
        "-",
        "*",
        "/",
        "%",
        "select",
        "where",
        "and",
        "or",
        "not",
        "when",
        "then",
        "else",
        "in",
        "by",
        "return",
        "returning",
        "values",
        "set",
        "limit",
        "offset",
        "between",
        "like",
        "is",
        "on",
        "having",
    ]
)


def literals_to_placeholders(tokens: list[Token]) -> list[Token]:
    """Strings and numbers become placeholders; so do a sign and a typed-literal keyword."""
    out: list[Token] = []
    for tok in tokens:
        if tok.kind not in ("string", "number"):
            out.append(tok)
            continue
        if tok.kind == "number" and out and out[-1].text in ("-", "+"):
            before = out[-2].text.lower() if len(out) > 1 else "("
            if before in _SIGN_CONTEXT:
                out.pop()
        elif (
            tok.kind == "string"
            and out
            and out[-1].kind == "word"
            and out[-1].text.lower() in _TYPED_LITERAL
            and not (len(out) > 1 and out[-2].text == "::")
        ):
            out.pop()
        out.append(PARAM)
    return out


def fold_savepoint_names(tokens: list[Token]) -> list[Token]:
    """A savepoint's name becomes a placeholder: ``SAVEPOINT "s1402_x3"`` is ``savepoint $1``.

    ORMs number their savepoints: Django names each ``s<thread id>_x<counter>`` (every
    ``get_or_create`` and nested ``atomic`` makes one), SQLAlchemy ``sa_savepoint_<n>``.
    Kept, every savepoint of a run was a statement shape of its own, seen once, and a loop
    of them no N+1. PostgreSQL's ``pg_stat_statements`` shows them the same way since 17.
    Runs after :func:`fold_case`: the verbs are lower case.

    >>> from correlate.fingerprint.tokens import render, tokenize
    >>> render(fold_savepoint_names(fold_case(tokenize('ROLLBACK TO SAVEPOINT "s1_x2"'))))
    'rollback to savepoint $0'
    """
    words = [i for i, t in enumerate(tokens) if t.kind != "comment"]
    texts = [tokens[i].text.lower() for i in words]
    if texts[:1] == ["savepoint"]:
        at = 1
    elif texts[:1] == ["release"]:
        at = 2 if texts[1:2] == ["savepoint"] else 1
    elif texts[:1] == ["rollback"]:
        at = 2 if texts[1:2] in (["work"], ["transaction"]) else 1
        if texts[at : at + 1] != ["to"]:
            return tokens
        at += 2 if texts[at + 1 : at + 2] == ["savepoint"] else 1
    else:
        return tokens
    if at >= len(words) or tokens[words[at]].kind not in ("word", "qident"):
        return tokens
    out = list(tokens)
    out[words[at]] = PARAM
    return out


# Multi-word type names a cast may carry (SQLAlchemy: `::TIMESTAMP WITHOUT TIME ZONE`).
_TYPE_TAILS: dict[str, tuple[tuple[str, ...], ...]] = {
    "timestamp": (("with", "time", "zone"), ("without", "time", "zone")),
    "time": (("with", "time", "zone"), ("without", "time", "zone")),
    "double": (("precision",),),
    "character": (("varying",),),
    "bit": (("varying",),),
}


def _skip_type(tokens: list[Token], i: int) -> int:
    """Index after the type name starting at ``i`` (a word), or ``i`` if there is none."""
    n = len(tokens)
    if i >= n or tokens[i].kind not in ("word", "qident"):
        return i
    first = tokens[i].text.lower()
    i += 1
    while i + 1 < n and tokens[i].text == "." and tokens[i + 1].kind in ("word", "qident"):
        i += 2  # schema-qualified type
    for tail in _TYPE_TAILS.get(first, ()):
        words = [t.text.lower() for t in tokens[i : i + len(tail)]]
        if tuple(words) == tail:
            i += len(tail)
            break
    if i < n and tokens[i].text == "(":  # varchar(30), numeric(10, 2)
        j = _close(tokens, i)
        if j is not None:
            i = j + 1
    while i + 1 < n and tokens[i].text == "[" and tokens[i + 1].text == "]":
        i += 2
    return i


def _close(tokens: list[Token], i: int) -> int | None:
    """Index of the bracket closing the one at ``i``, or None if it never closes."""
    opening = tokens[i].text
    closing = ")" if opening == "(" else "]"
    depth = 0
    for j in range(i, len(tokens)):
        text = tokens[j].text
        if tokens[j].kind != "punct":
            continue
        if text == opening:
            depth += 1
        elif text == closing:
            depth -= 1
            if depth == 0:
                return j
    return None


def strip_placeholder_casts(tokens: list[Token]) -> list[Token]:
    """``$1::INTEGER`` becomes ``$1``: SQLAlchemy's psycopg dialect casts most binds."""
    out: list[Token] = []
    i, n = 0, len(tokens)
    while i < n:
        tok = tokens[i]
        out.append(tok)
        i += 1
        if tok.kind != "param":
            continue
        while i + 1 < n and tokens[i].text == "::":
            end = _skip_type(tokens, i + 1)
            if end == i + 1:
                break
            i = end
    return out


def _items(tokens: list[Token], start: int, end: int) -> list[list[Token]]:
    """Split ``tokens[start:end]`` at top-level commas."""
    items: list[list[Token]] = [[]]
    depth = 0
    for tok in tokens[start:end]:
        if tok.kind == "punct" and tok.text in "([":
            depth += 1
        elif tok.kind == "punct" and tok.text in ")]":
            depth -= 1
        if depth == 0 and tok.text == "," and tok.kind == "punct":
            items.append([])
        else:
            items[-1].append(tok)
    return items


def _dedupe(items: list[list[Token]]) -> list[list[Token]]:
    kept: list[list[Token]] = []
    for item in items:
        if not kept or item != kept[-1]:
            kept.append(item)
    return kept


def _join(items: list[list[Token]]) -> list[Token]:
    out: list[Token] = []
    for k, item in enumerate(items):
        if k:
            out.append(Token("punct", ","))
        out.extend(item)
    return out


def collapse_lists(tokens: list[Token]) -> list[Token]:
    """``IN ($1, $2, $3)`` becomes ``IN ($1)``, and ``ARRAY[…]`` likewise.

    Consecutive equal items merge, so a list of placeholders (or of placeholder tuples) of
    any length collapses to one, while ``IN ($1, col)`` keeps both items.
    """
    out: list[Token] = []
    i, n = 0, len(tokens)
    while i < n:
        tok = tokens[i]
        out.append(tok)
        i += 1
        opens_list = (tok.kind == "word" and tok.text.lower() == "in" and i < n) and tokens[
            i
        ].text == "("
        opens_array = (tok.kind == "word" and tok.text.lower() == "array" and i < n) and tokens[
            i
        ].text == "["
        if not (opens_list or opens_array):
            continue
        end = _close(tokens, i)
        if end is None or (opens_list and _is_subquery(tokens, i + 1)):
            continue
        inner = collapse_lists(tokens[i + 1 : end])
        out.append(tokens[i])
        out.extend(_join(_dedupe(_items(inner, 0, len(inner)))))
        out.append(tokens[end])
        i = end + 1
    return out


def _is_subquery(tokens: list[Token], i: int) -> bool:
    return i < len(tokens) and tokens[i].text.lower() in ("select", "with", "values")


def collapse_values_rows(tokens: list[Token]) -> list[Token]:
    """``VALUES ($1, $2), ($3, $4)`` becomes ``VALUES ($1, $2)``: one shape per batch size."""
    out: list[Token] = []
    i, n = 0, len(tokens)
    while i < n:
        tok = tokens[i]
        out.append(tok)
        i += 1
        if not (tok.kind == "word" and tok.text.lower() == "values"):
            continue
        rows: list[list[Token]] = []
        j = i
        while j < n and tokens[j].text == "(":
            end = _close(tokens, j)
            if end is None:
                break
            rows.append(tokens[j : end + 1])
            j = end + 1
            if j + 1 < n and tokens[j].text == "," and tokens[j + 1].text == "(":
                j += 1
            else:
                break
        if len(rows) > 1:
            out.extend(_join(_dedupe(rows)))
            i = j
    return out


def strip_trailing_semicolons(tokens: list[Token]) -> list[Token]:
    """A trailing ``;`` (or several) does not change the statement."""
    end = len(tokens)
    while end and tokens[end - 1].text == ";":
        end -= 1
    return tokens[:end]


_SIMPLE_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")


def _reserved() -> frozenset[str]:
    # Words that must stay quoted as identifiers somewhere; a superset is harmless.
    words = (
        "all alter analyse analyze and any array as asc between both by case cast check collate "
        "column constraint create cross current_date current_time current_timestamp "
        "current_user default delete desc distinct do drop else end except exists false fetch "
        "for foreign from full grant group having ilike in index inner insert intersect into is "
        "join key keys lateral leading left like limit localtime natural not null offset on only "
        "or order outer over primary range references returning right row rows select set some "
        "table then to trailing true union unique update user using values when where window "
        "with"
    )
    return frozenset(words.split())


_RESERVED = _reserved()


def fold_case(tokens: list[Token]) -> list[Token]:
    """Lower-case unquoted words and unquote identifiers that do not need quotes.

    ```Orders``` and ``orders`` are one table in MySQL; ``"orders"`` and ``orders`` are one in
    PostgreSQL, but ``"Orders"`` is not, so a double-quoted name is only unquoted when it is
    already lower case.
    """
    out: list[Token] = []
    for tok in tokens:
        if tok.kind == "word":
            tok = Token("word", tok.text.lower())
        elif tok.kind == "qident" and len(tok.text) > 2 and tok.text[0] == tok.text[-1]:
            name = tok.text[1:-1]
            if tok.text[0] == "`":
                name = name.lower()
            if _SIMPLE_NAME.match(name) and name not in _RESERVED:
                tok = Token("word", name)
        out.append(tok)
    return out


def renumber_placeholders(tokens: list[Token]) -> list[Token]:
    """Number placeholders ``$1, $2, …`` in order of appearance."""
    out: list[Token] = []
    k = 0
    for tok in tokens:
        if tok.kind == "param":
            k += 1
            tok = Token("param", f"${k}")
        out.append(tok)
    return out


PASSES: tuple[Pass, ...] = (
    drop_comments,
    fold_case,  # early, so later passes compare `IN` and `in` alike
    unescape_driver_percent,  # before placeholders lose their paramstyle
    unify_placeholders,
    fold_savepoint_names,
    literals_to_placeholders,
    strip_placeholder_casts,
    collapse_lists,
    collapse_values_rows,
    strip_trailing_semicolons,
    renumber_placeholders,
)


def document_values_to_placeholders(tokens: list[Token]) -> list[Token]:
    """In a document store's JSON command, quoted values become placeholders (an array of
    them one), as literals do in SQL; keys (a ``:`` follows) stay, and so does the value of
    the document's first key, the collection the command is on.

    >>> from correlate.fingerprint.tokens import render, tokenize
    >>> doc = '{"find": "orders", "filter": {"email": "a@b.c", "tag": {"$in": ["x", "y"]}}}'
    >>> render(document_values_to_placeholders(tokenize(doc)))
    '{ "find" : "orders", "filter" : { "email" : $0, "tag" : { "$in" : [$0] } } }'
    """
    texts = [t.text for t in tokens]
    collection = 3 if texts[:1] == ["{"] and texts[2:3] == [":"] else -1
    out: list[Token] = []
    for i, tok in enumerate(tokens):
        if (
            tok.kind == "qident"
            and tok.text[:1] == '"'
            and i != collection
            and texts[i + 1 : i + 2] != [":"]
        ):
            tok = PARAM
        if tok == PARAM and len(out) > 1 and out[-1].text == "," and out[-2] == PARAM:
            out.pop()  # ["a", "b"] is [$0], however many
            continue
        out.append(tok)
    return out


#: The passes for a key-value or document store's commands (``semconv.NOT_SQL_SYSTEMS``):
#: first its quoted values, which SQL's passes would read as quoted names.
COMMAND_PASSES: tuple[Pass, ...] = (document_values_to_placeholders, *PASSES)


def normalize_tokens(tokens: list[Token], passes: Iterable[Pass] = PASSES) -> list[Token]:
    """Run ``passes`` in order.

    >>> from correlate.fingerprint.tokens import render, tokenize
    >>> render(normalize_tokens(tokenize("SELECT * FROM t WHERE id IN (%(a)s, %(b)s) /*x*/")))
    'select * from t where id in ($1)'
    """
    for p in passes:
        tokens = p(tokens)
    return tokens
