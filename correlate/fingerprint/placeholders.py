"""Placeholders in a statement as a span recorded it, found by the one SQL lexer.

A span carries the statement as the driver had it: psycopg and pymysql write
``%(name)s`` and ``%s`` (``%%`` for a literal ``%``), sqlite3 ``?`` and ``:name``;
SQLAlchemy adds casts such as ``%(cid)s::INTEGER``; pg_stat_statements and server
logs write ``$1``. :func:`split_placeholders` cuts the text at its placeholders using
:func:`correlate.fingerprint.tokens.tokenize`, so quoted strings, quoted identifiers,
comments and dollar quotes are skipped exactly as fingerprinting skips them. If the
text holds any ``%(name)s``/``%s``, those are the placeholders (and ``?`` stays an
operator, as in ``jsonb ? 'k'``); otherwise ``?`` and ``:name`` are, and, read with the
lexer of their server, Oracle's ``:1`` and SQL Server's ``@P0``/``@name``.

>>> to_numbered("select * from t where a = %(a)s and b = %s and c = %(a)s::INTEGER")
('select * from t where a = $1 and b = $2 and c = $1::INTEGER', 2)
>>> to_numbered("select '?' as q, x from t where y = ? and z like 'a%'")
("select '?' as q, x from t where y = $1 and z like 'a%'", 1)
"""

from __future__ import annotations

from dataclasses import dataclass

from .tokens import Token, tokenize

__all__ = [
    "Placeholders",
    "Slot",
    "number_question_marks",
    "split_placeholders",
    "to_numbered",
]


@dataclass(frozen=True)
class Slot:
    """A placeholder: ``name`` for named ones, None for positional ones."""

    name: str | None


@dataclass(frozen=True)
class Placeholders:
    """A statement cut at its placeholders.

    ``pieces`` alternate text and :class:`Slot`; joined with each slot replaced they give
    the statement back (trailing ``;`` and whitespace dropped, ``%%`` read as ``%`` when
    the text uses the drivers' ``%`` style). ``words`` are the upper-cased words outside
    quotes and comments, ``native`` the highest ``$n`` already in the text, ``statements``
    how many statements the ``;`` outside quotes and comments separate, ``tokens`` the
    lexer's tokens, and ``unterminated`` is True when a quote or comment never closes.
    """

    pieces: tuple[str | Slot, ...]
    words: tuple[str, ...]
    native: int
    statements: int
    tokens: tuple[Token, ...]
    unterminated: bool

    @property
    def slots(self) -> list[Slot]:
        return [p for p in self.pieces if isinstance(p, Slot)]

    @property
    def first_word(self) -> str:
        return self.words[0] if self.words else ""


def split_placeholders(text: str, lexer: str | None = None) -> Placeholders:
    """Cut ``text`` at its placeholders, reading it as ``lexer`` (a tokenizer dialect)."""
    tokens = tokenize(text, lexer)
    driver_style = any(t.kind == "param" and t.text.startswith("%") for t in tokens)
    end = len(text.rstrip().rstrip(";").rstrip())
    pieces: list[str | Slot] = []
    words: list[str] = []
    native = 0
    statements = 1
    cursor = 0  # where the next token is searched: only whitespace lies between tokens
    pos = 0  # start of the text not yet in ``pieces``
    for tok in tokens:
        start = text.find(tok.text, cursor)
        cursor = start + len(tok.text)
        if tok.kind == "word":
            words.append(tok.text.upper())
        elif tok.text == ";" and tok.kind == "punct":
            if start < end:
                statements += 1
        elif tok.kind == "param":
            if tok.text.startswith("$"):
                native = max(native, int(tok.text[1:]))
                continue
            is_slot = tok.text.startswith("%") if driver_style else tok.text[0] in "?:@"
            if not is_slot:
                continue
            pieces.append(_plain(text[pos:start], driver_style))
            pieces.append(Slot(_slot_name(tok.text)))
            pos = cursor
    pieces.append(_plain(text[pos:end], driver_style) if pos <= end else "")
    unterminated = any(t.kind == "other" and len(t.text) > 1 for t in tokens)
    return Placeholders(
        tuple(pieces), tuple(words), native, statements, tuple(tokens), unterminated
    )


def _slot_name(param: str) -> str | None:
    """The name a placeholder binds by; None for a positional one.

    Oracle's ``:1`` is positional: in a SQL statement each occurrence takes a value of its
    own (``:1 … :1`` binds two), so it is given no name. SQL Server's ``@P0`` and ``@name``
    are names ``sp_executesql`` binds by, as ``:name`` and ``%(name)s`` are.
    """
    if param.startswith("%("):
        return param[2:-2]
    if param[0] in ":@" and not param[1:].isdigit():
        return param[1:]
    return None


def _plain(piece: str, driver_style: bool) -> str:
    # The drivers' % escaping knows nothing of quotes: 'a%%' was sent as 'a%'.
    return piece.replace("%%", "%") if driver_style else piece


def to_numbered(text: str) -> tuple[str, int]:
    """``text`` with driver placeholders as PostgreSQL ``$n``, and the number of parameters.

    The same name gets the same number; text that already has ``$n`` keeps it and new
    numbers follow the highest.

    The text is read as PostgreSQL reads it, because only PostgreSQL capture calls this:
    Oracle's ``:1`` and SQL Server's ``@P0`` are not placeholders here (``@`` is an operator
    to PostgreSQL). No capture explains those servers' statements; one that did would cut
    them with :func:`split_placeholders` and its own lexer, as MySQL and SQLite capture do.
    """
    split = split_placeholders(text, None)
    numbers: dict[str, int] = {}
    count = split.native
    out: list[str] = []
    for piece in split.pieces:
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


def number_question_marks(text: str) -> str:
    """``text`` with each ``?`` placeholder written as PostgreSQL's ``$n``, numbered in order
    after the highest ``$n`` it already holds; a ``?`` in a string, a quoted identifier, a
    comment or a dollar quote stays as it is, and so does the rest of the text.

    knex, JDBC drivers and the OpenTelemetry Java agent's sanitizer record PostgreSQL
    statements with ``?``, which PostgreSQL itself reads as an operator (jsonb's ``?``), so
    the text does not parse as written; the server, and the driver's own span of the same
    call, see ``$1``.

    >>> number_question_marks("select '?', a from t where b = ? and c in (?, ?) -- ?")
    "select '?', a from t where b = $1 and c in ($2, $3) -- ?"
    """
    out: list[str] = []
    tokens = tokenize(text, None)
    native = [int(t.text[1:]) for t in tokens if t.kind == "param" and t.text[0] == "$"]
    count = max(native, default=0)
    cursor = pos = 0
    for tok in tokens:
        start = text.find(tok.text, cursor)
        cursor = start + len(tok.text)
        if tok.kind == "param" and tok.text == "?":
            count += 1
            out.append(f"{text[pos:start]}${count}")
            pos = cursor
    out.append(text[pos:])
    return "".join(out)
