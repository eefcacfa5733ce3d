"""The database registry, URL redaction, and the lexer that finds placeholders.

No server here: see test_capture_hostile.py for the statements sent to real ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from correlate.dialects import (
    DIALECTS,
    UnknownDatabaseError,
    for_db_system,
    for_url,
    get,
    url_scheme,
)
from correlate.fingerprint import fingerprint
from correlate.fingerprint.placeholders import split_placeholders, to_numbered
from correlate.fingerprint.tokens import tokenize
from correlate.redact import MASK, redact_url, scrub, unescaped_at, url_secrets
from correlate.store import Store, open_store

# --- Registry -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("system", "name"),
    [
        ("postgresql", "postgresql"),
        ("postgres", "postgresql"),  # what some instrumentations write
        ("PostgreSQL", "postgresql"),
        ("mysql", "mysql"),
        ("mariadb", "mariadb"),
        ("sqlite", "sqlite"),
        ("mssql", "mssql"),  # old semconv
        ("microsoft.sql_server", "mssql"),  # new semconv
        ("oracle.db", "oracle"),
        ("clickhouse", "clickhouse"),
    ],
)
def test_db_system_aliases_name_one_dialect(system: str, name: str) -> None:
    dialect = for_db_system(system)
    assert dialect is not None and dialect.name == name


@pytest.mark.parametrize(
    ("url", "name", "driver"),
    [
        ("postgresql+psycopg://u@h/db", "postgresql", "psycopg"),
        ("postgres://u@h/db", "postgresql", "psycopg"),
        ("mysql+pymysql://u@h/db", "mysql", "pymysql"),
        ("mariadb://u@h/db", "mariadb", "pymysql"),
        ("sqlite:///x.db", "sqlite", "pysqlite"),
    ],
)
def test_url_schemes(url: str, name: str, driver: str) -> None:
    dialect = for_url(url)
    assert (dialect.name, dialect.driver) == (name, driver)
    assert dialect.capture is not None


def test_unknown_names_say_what_is_known() -> None:
    assert for_db_system("nosuchdb") is None
    with pytest.raises(UnknownDatabaseError, match="known: .*postgresql"):
        get("nosuchdb")
    with pytest.raises(UnknownDatabaseError, match="cannot tell which database"):
        for_url("db2://u:hunter2@h/db")
    assert url_scheme("no scheme") == ""


def test_every_capturable_dialect_has_what_capture_needs() -> None:
    for dialect in DIALECTS.values():
        if dialect.capture is None:
            with pytest.raises(UnknownDatabaseError, match="live capture supports"):
                dialect.session_class()
            continue
        assert dialect.plan_source and dialect.sqlglot and dialect.url_schemes
        assert set(dialect.explains) <= set(DIALECTS)
        assert dialect.session_class().__name__.endswith("Session")


@pytest.mark.parametrize(
    ("name", "ident", "quoted"),
    [
        ("postgresql", 'a"b', '"a""b"'),
        ("mysql", "a`b", "`a``b`"),
        ("mssql", "a]b", "[a]]b]"),
    ],
)
def test_identifier_quoting(name: str, ident: str, quoted: str) -> None:
    assert get(name).quote_identifier(ident) == quoted


# --- Redaction ----------------------------------------------------------------------------------

SECRET_PARAMS = ("password", "sslpassword", "passfile", "sslkey", "token", "api_key", "secret")


def test_redact_url_hides_password_and_secret_parameters() -> None:
    url = (
        "postgresql://u:pw1@h:5432/db?sslmode=require&password=pw2&sslpassword=pw3"
        "&passfile=/home/u/.pgpass&sslkey=/k.pem&application_name=app"
    )
    shown = redact_url(url)
    for secret in ("pw1", "pw2", "pw3", "/home/u/.pgpass", "/k.pem", "pgpass", "k.pem"):
        assert secret not in shown
    assert shown.startswith("postgresql://u:***@h:5432/db?")
    assert "sslmode=require" in shown and "application_name=app" in shown
    assert "password=***" in shown and "passfile=***" in shown


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres:Pa55@TAIL1@127.0.0.1:5432/shop",
        "postgresql+psycopg://postgres:Pa55@TA@IL1@db.internal/shop?sslmode=require",
        "mysql+pymysql://root:Pa55@TAIL1@127.0.0.1:3306/shop",
        "postgresql://postgres:Pa55@TAIL1/x@127.0.0.1:5432/shop",
        "postgres://postgres:Pa55@TAIL1?x@127.0.0.1/shop",
    ],
)
def test_a_password_with_an_unescaped_at_is_hidden_whole(url: str) -> None:
    """The user part ends at the last "@" before the host: all of the password is hidden,
    not just what comes before its first "@"."""
    shown = redact_url(url)
    assert "Pa55" not in shown and "TAIL1" not in shown and "IL1" not in shown, shown
    assert ":***@" in shown
    assert unescaped_at(url)
    # What a driver would say of the host it was given, scrubbed.
    message = "failed to resolve host 'TAIL1@127.0.0.1' (password Pa55)"
    assert "TAIL1" not in scrub(message, url_secrets(url))
    assert "Pa55" not in scrub(message, url_secrets(url))
    # A URL object parsed from it (host "TAIL1@…") is hidden the same way.
    from sqlalchemy.engine import make_url

    if url.startswith("postgresql://postgres:Pa55@TAIL1@"):
        parsed = make_url(url)
        assert "TAIL1" not in redact_url(parsed) and "TAIL1" in str(parsed.host)
        assert "TAIL1" not in scrub(message, url_secrets(parsed))


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://me@corp:pw@127.0.0.1/shop",  # "@" in the user name, not the password
        "postgresql://app:p%40ss@127.0.0.1/shop",
        "postgresql://app@127.0.0.1/shop",
        "sqlite:///tmp/x@y.db",
    ],
)
def test_an_escaped_or_user_at_is_not_ambiguous(url: str) -> None:
    assert not unescaped_at(url)


def test_unparseable_url_is_replaced_whole() -> None:
    assert "hunter2" not in redact_url("host=db password=hunter2")


_secrets = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=6, max_size=24
).filter(lambda s: s.strip() == s and len(set(s)) > 3)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    secret=_secrets,
    where=st.sampled_from(("userinfo", *SECRET_PARAMS)),
    scheme=st.sampled_from(("postgresql+psycopg", "mysql+pymysql", "mariadb", "postgres")),
)
def test_a_secret_anywhere_in_a_url_never_shows(secret: str, where: str, scheme: str) -> None:
    encoded = quote(secret, safe="")
    if where == "userinfo":
        template = f"{scheme}://app:{{}}@db.internal:5432/shop?sslmode=require"
    else:
        template = f"{scheme}://app@db.internal/shop?sslmode=require&{where}={{}}"
    # A "secret" that is already part of the URL's public text (say "pymysq") cannot be hidden.
    skeleton = template.format("")
    assume(secret not in skeleton and encoded not in skeleton)
    url = template.format(encoded)
    shown = redact_url(url)
    assert secret not in shown and encoded not in shown
    assert MASK in shown
    # A driver that quotes its connection string back is scrubbed too.
    message = f"connection to {url} failed for {secret!r}"
    scrubbed = scrub(message, url_secrets(url))
    assert secret not in scrubbed and encoded not in scrubbed


# --- The placeholder lexer ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lexer", "statements"),
    [
        # PostgreSQL: x$y$ is an identifier, not the start of a dollar quote.
        ("SELECT 1 AS x$y$; COMMIT; SELECT 1 AS z$y$", "postgres", 3),
        ("SELECT $y$;$y$", "postgres", 1),
        # PostgreSQL ends a -- comment at \r as well as \n.
        ("SELECT 1 -- c\r; DROP TABLE t", "postgres", 2),
        # PostgreSQL nests block comments.
        ("SELECT /* a /* b */ ; */ 1", "postgres", 1),
        ("SELECT /* a /* b */ */ 1; DROP TABLE t", "postgres", 2),
        ("SELECT E'\\'; DROP TABLE t; --'", "postgres", 1),
        ("SELECT U&'d\\0061t'; SELECT 2", "postgres", 2),
        ('SELECT 1 AS "a;b"', "postgres", 1),
        # MySQL: # comments, -- needs a space, backslash escapes, /* */ does not nest.
        ("SELECT 1 # c ; x\n", "mysql", 1),
        ("SELECT 1 --x; DROP TABLE t", "mysql", 2),
        ("SELECT 1 -- x; DROP TABLE t", "mysql", 1),
        ("SELECT 'a\\'; DROP TABLE t; -- '", "mysql", 1),
        ("SELECT /* a /* b */ 1; DROP TABLE t", "mysql", 2),
        ("SELECT `a;b` FROM t", "mysql", 1),
        ("SELECT [a;b] FROM t", "sqlite", 1),
        ("SELECT 1;  ", "sqlite", 1),
    ],
)
def test_statements_are_counted_as_the_server_reads_them(
    text: str, lexer: str, statements: int
) -> None:
    assert split_placeholders(text, lexer).statements == statements


def test_an_unclosed_quote_or_comment_is_flagged() -> None:
    assert split_placeholders("SELECT 'a; DROP TABLE t", "postgres").unterminated
    assert split_placeholders("SELECT /* a", "mysql").unterminated
    assert not split_placeholders("SELECT 'a'", "mysql").unterminated


_piece = st.sampled_from(
    [
        "a",
        " ",
        "'x'",
        "'it''s'",
        '"q;"',
        "$$;$$",
        "-- c\n",
        "/* ; */",
        "%s",
        "%(n)s",
        "?",
        ":name",
        "$1",
        "::int",
        "%%",
        ",",
        "(",
        ")",
        "=",
        "1",
    ]
)


@settings(max_examples=200)
@given(st.lists(_piece, max_size=20).map(" ".join))
def test_numbered_text_keeps_everything_but_placeholders(body: str) -> None:
    text = "select " + body
    numbered, count = to_numbered(text)
    split = split_placeholders(text, None)
    driver_style = any(t.text.startswith("%") for t in split.tokens if t.kind == "param")

    def others(sql: str, undo_percent: bool) -> list[str]:
        kept = [t.text for t in tokenize(sql, None) if t.kind != "param"]
        while kept and kept[-1] == ";":
            kept.pop()
        return [k.replace("%%", "%") for k in kept] if undo_percent else kept

    # Only placeholders change: every other token reads the same afterwards.
    assert others(numbered, False) == others(text, driver_style)
    numbers = {int(n) for n in re.findall(r"\$(\d+)", numbered)} - {
        int(t.text[1:]) for t in split.tokens if t.kind == "param" and t.text.startswith("$")
    }
    assert numbers <= set(range(1, count + 1))
    assert len(numbers) == len({s.name or id(s) for s in split.slots}) or split.native


# --- statement_key (DuckDB) agrees with the tokenizer -------------------------------------------

_VALUES = st.one_of(
    st.integers(0, 10**6).map(str),
    st.text("abc xyz;'%", max_size=6).map(lambda s: "'" + s.replace("'", "''") + "'"),
)


@pytest.fixture(scope="module")
def keys_store() -> Iterator[Store]:
    with open_store(":memory:") as store:
        yield store


@settings(max_examples=60, deadline=None)
@given(
    shape=st.sampled_from(
        [
            "SELECT * FROM orders WHERE id = {0} AND note = {1}",
            "SELECT * FROM orders WHERE id IN ({0}, {1})",
            "SELECT * FROM orders WHERE id IN ({0})",
            "UPDATE orders SET note = {1} WHERE id = {0}",
            "SELECT * FROM orders WHERE x = %s AND y = {0} LIMIT {0}",
            "SELECT * FROM t WHERE a = {0} /* {1} */",
            # Oracle's numbered binds, SQL Server's named ones
            "SELECT * FROM orders WHERE x = :1 AND y IN (:2, {0}) AND z = {1}",
            "SELECT * FROM orders WHERE x = @P0 AND y = {0} AND z = @p1 + {1}",
        ]
    ),
    a=st.tuples(_VALUES, _VALUES),
    b=st.tuples(_VALUES, _VALUES),
    dialect=st.sampled_from(["postgresql", "mysql", "sqlite", "oracle", "mssql"]),
)
def test_statement_key_never_merges_what_fingerprints_tell_apart(
    keys_store: Store, shape: str, a: tuple[str, str], b: tuple[str, str], dialect: str
) -> None:
    first, second = shape.format(*a), shape.format(*b)
    k1, k2 = (
        keys_store.con.execute("SELECT statement_key(?, ?)", [dialect, t]).fetchone()[0]  # type: ignore[index]
        for t in (first, second)
    )
    if k1 == k2:
        assert fingerprint(first, dialect).id == fingerprint(second, dialect).id


_CASTS = st.sampled_from(["", "::INTEGER", "::integer", "::VARCHAR", "::int[]", "::uuid"])


@settings(max_examples=60, deadline=None)
@given(
    style=st.sampled_from(["?", "%s", "%(id_1_{n})s", "${n}"]),
    casts=st.lists(_CASTS, min_size=1, max_size=5),
    other=st.lists(_CASTS, min_size=1, max_size=5),
    dialect=st.sampled_from(["postgresql", "mysql", "sqlite"]),
)
def test_statement_key_of_cast_placeholder_lists_never_merges_what_fingerprints_tell_apart(
    keys_store: Store, style: str, casts: list[str], other: list[str], dialect: str
) -> None:
    # SQLAlchemy's expanding IN with psycopg: IN (%(id_1_1)s::INTEGER, %(id_1_2)s::INTEGER);
    # `?::INTEGER` is no placeholder to PostgreSQL's tokenizer, so its cast stays. One
    # placeholder style per run of an application (mixed styles may share a key).
    def text(items: list[str]) -> str:
        listed = ", ".join(style.format(n=n) + cast for n, cast in enumerate(items, 1))
        return f"SELECT orders.id FROM orders WHERE orders.id IN ({listed})"

    first, second = text(casts), text(other)
    k1, k2 = (
        keys_store.con.execute("SELECT statement_key(?, ?)", [dialect, t]).fetchone()[0]  # type: ignore[index]
        for t in (first, second)
    )
    if k1 == k2:
        assert fingerprint(first, dialect).id == fingerprint(second, dialect).id


# (placeholder at position n, the db.system whose drivers write it)
_BIND_STYLES = [
    ("?", "mysql"),
    ("%s", "postgresql"),
    ("%(id_{n})s", "postgresql"),
    ("${n}", "postgresql"),
    (":id_{n}", "sqlite"),
    (":{n}", "oracle"),  # Oracle's drivers number binds
    (":b{n}", "oracle"),
    ("@P{n}", "mssql"),  # Microsoft's JDBC driver
    ("@p{n}", "microsoft.sql_server"),  # SqlClient, EF Core
    ("@id{n}", "mssql"),  # Dapper's named parameters
]


@settings(max_examples=80, deadline=None)
@given(
    style=st.sampled_from(_BIND_STYLES),
    lengths=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    literal=st.booleans(),
)
def test_in_list_length_never_changes_a_statements_key(
    keys_store: Store, style: tuple[str, str], lengths: tuple[int, int], literal: bool
) -> None:
    # Whatever the placeholder style, an IN list of any length is one statement key, and
    # one fingerprint in the dialect that writes it: the key holds its placeholders.
    bind, system = style

    def text(length: int) -> str:
        listed = ", ".join(bind.format(n=n) for n in range(2, length + 2))
        other = "42" if literal else bind.format(n=1)
        return f"SELECT id FROM orders WHERE shop = {other} AND id IN ({listed})"

    first, second = text(lengths[0]), text(lengths[1])
    k1, k2 = (
        keys_store.con.execute("SELECT statement_key(?, ?)", [system, t]).fetchone()[0]  # type: ignore[index]
        for t in (first, second)
    )
    assert k1 == k2
    assert k1.startswith("placeholders: ")
    assert fingerprint(first, system).id == fingerprint(second, system).id


@pytest.mark.parametrize(
    ("system", "first", "second"),
    [
        # outside Oracle `:1` is no placeholder: a list of it and a value is two items
        ("postgresql", "SELECT * FROM t WHERE id IN (:1, 5)", "SELECT * FROM t WHERE id IN (:1)"),
        # MySQL's @x is a user variable, not a bind: a list of two is not a list of one
        ("mysql", "SELECT * FROM t WHERE id IN (@a, @b)", "SELECT * FROM t WHERE id IN (@a)"),
        # a declared T-SQL variable is a name, not a bind
        (
            "mssql",
            "DECLARE @a INT = 1; SELECT * FROM t WHERE id IN (@a, @p0)",
            "DECLARE @a INT = 1; SELECT * FROM t WHERE id IN (@a)",
        ),
        # a function's arguments are no IN list: their number is the call's shape
        ("postgresql", "SELECT coalesce($1, $2) FROM t", "SELECT coalesce($1) FROM t"),
        ("mysql", "SELECT greatest(%s, %s, %s) FROM t", "SELECT greatest(%s, %s) FROM t"),
        ("oracle", "SELECT coalesce(:1, :2) FROM t", "SELECT coalesce(:1) FROM t"),
        ("mssql", "SELECT coalesce(@P0, @P1) FROM t", "SELECT coalesce(@P0) FROM t"),
        ("sqlite", "SELECT max(?, ?) FROM t", "SELECT max(?) FROM t"),
    ],
)
def test_statement_key_keeps_apart_lists_the_dialect_reads_as_names(
    keys_store: Store, system: str, first: str, second: str
) -> None:
    k1, k2 = (
        keys_store.con.execute("SELECT statement_key(?, ?)", [system, t]).fetchone()[0]  # type: ignore[index]
        for t in (first, second)
    )
    assert fingerprint(first, system).id != fingerprint(second, system).id
    assert k1 != k2


def test_tokenizer_dialect_names_come_from_the_registry() -> None:
    lexers = {d.lexer for d in DIALECTS.values()}
    assert {"postgres", "mysql", "sqlite", "tsql", None} <= lexers
    for lexer in lexers:
        assert [t.text for t in tokenize("select 1", lexer)] == ["select", "1"]
    assert re.fullmatch(r"[a-z]+", get("postgresql").sqlglot or "")
