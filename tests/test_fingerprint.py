"""Unit and property tests for correlate.fingerprint (golden classes: test_fingerprint_golden)."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from correlate.fingerprint import fingerprint, fingerprint_many, parse_comment, traceparent_ids
from correlate.fingerprint.normalize import PASSES, normalize_tokens
from correlate.fingerprint.tokens import render, tokenize

TP = "00-2fa642aec560c36eb8481517775e4552-72da799cfec845d6-03"
HEX16 = re.compile(r"[0-9a-f]{16}\Z")


# --- sqlcommenter -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected_sql", "pairs"),
    [
        (
            f"select 1 /*db_driver='psycopg',db_framework='sqlalchemy%3A2.0.58',traceparent='{TP}'*/",
            "select 1",
            {"db_driver": "psycopg", "db_framework": "sqlalchemy:2.0.58", "traceparent": TP},
        ),
        # pyformat doubles `%` in what the DBAPI (and db.statement) sees
        (
            "select 1 /*db_framework='sqlalchemy%%3A2.0.58'*/",
            "select 1",
            {"db_framework": "sqlalchemy:2.0.58"},
        ),
        # the comment goes before a trailing `;`, which stays
        ("select 1 /*route='%2Fcheckout'*/;", "select 1;", {"route": "/checkout"}),
        # spec escaping: \' inside a value; `%27` is a URL-encoded quote
        (
            r"select 1 /*action='it\'s',controller='a%27b'*/",
            "select 1",
            {"action": "it's", "controller": "a'b"},
        ),
        # Python repr() may quote with double quotes
        ('select 1 /*k="v"*/', "select 1", {"k": "v"}),
        # a URL-encoded key
        ("select 1 /*my%20key='v%2Cw'*/", "select 1", {"my key": "v,w"}),
        # only the LAST comment is sqlcommenter; the earlier one belongs to the statement
        ("select /* hint */ 1 /*a='1'*/", "select /* hint */ 1", {"a": "1"}),
        # not key='value' pairs: left alone
        ("select 1 /* just a note */", "select 1 /* just a note */", {}),
        ("select 1 /*a=1*/", "select 1 /*a=1*/", {}),
        ("select 1 /*a='1'*/ + 2", "select 1 /*a='1'*/ + 2", {}),
        ("select 1", "select 1", {}),
        ("", "", {}),
        ("*/", "*/", {}),
    ],
)
def test_parse_comment(sql: str, expected_sql: str, pairs: dict[str, str]) -> None:
    assert parse_comment(sql) == (expected_sql, pairs)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (TP, ("2fa642aec560c36eb8481517775e4552", "72da799cfec845d6")),
        (TP.upper(), ("2fa642aec560c36eb8481517775e4552", "72da799cfec845d6")),
        ("00-2fa642aec560c36eb8481517775e4552-72da799cfec845d6", None),
        ("ff-2fa642aec560c36eb8481517775e4552-72da799cfec845d6-01", None),
        ("00-" + "0" * 32 + "-72da799cfec845d6-01", None),
        ("00-2fa642aec560c36eb8481517775e4552-" + "0" * 16 + "-01", None),
        ("garbage", None),
    ],
)
def test_traceparent_ids(value: str, expected: tuple[str, str] | None) -> None:
    assert traceparent_ids(value) == expected


def test_comment_is_returned_but_not_part_of_identity() -> None:
    plain = fingerprint("select * from t where id = %(id)s", "postgresql")
    commented = fingerprint(
        f"select * from t where id = %(id)s /*traceparent='{TP}'*/", "postgresql"
    )
    assert commented == plain
    assert commented.comment == {"traceparent": TP}
    assert plain.comment == {}
    assert hash(commented) == hash(plain)


# --- normalisation details ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "dialect", "normalized"),
    [
        (
            "select a from t where b = %(x)s::TIMESTAMP WITHOUT TIME ZONE",
            "postgresql",
            "SELECT a FROM t WHERE b = $1",
        ),
        (
            "select a from t where b = %(x)s::VARCHAR(30)::text",
            "postgresql",
            "SELECT a FROM t WHERE b = $1",
        ),
        ("select a::text from t", "postgresql", "SELECT a::text FROM t"),  # not a placeholder
        ("select a from t offset 5 limit 10", "postgresql", "SELECT a FROM t LIMIT $1 OFFSET $2"),
        ("select a from t where b = 1 - 2", "postgresql", "SELECT a FROM t WHERE b = $1 - $2"),
        ("select a from t where b=-5", "postgresql", "SELECT a FROM t WHERE b = $1"),
        (
            "select a from t where b = true and c is null",
            "postgresql",
            "SELECT a FROM t WHERE b = true AND c IS NULL",
        ),
        ("select $$a 'quoted' body$$", "postgresql", "SELECT $1"),
        (
            "select a from t where (x, y) in ((1, 2), (3, 4))",
            "postgresql",
            "SELECT a FROM t WHERE (x, y) IN (($1, $2))",
        ),
        (
            "select a from t where x in (select y from u where z in (1, 2))",
            "postgresql",
            "SELECT a FROM t WHERE x IN (SELECT y FROM u WHERE z IN ($1))",
        ),
        (
            "select a from t where x in (1, b, 2)",
            "postgresql",
            "SELECT a FROM t WHERE x IN ($1, b, $2)",
        ),
        ("SELECT a FROM t WHERE b = 'x' -- note", "sqlite", "SELECT a FROM t WHERE b = $1"),
        ('select a from t where b = "str"', "mysql", "SELECT a FROM t WHERE b = $1"),
    ],
)
def test_normalized(sql: str, dialect: str | None, normalized: str) -> None:
    assert fingerprint(sql, dialect).normalized == normalized


def test_no_space_in_values_list_does_not_break_sqlglot() -> None:
    # sqlglot cannot tokenize `($1,$2,$3)`.
    f = fingerprint("select a from t where x in ($1,$2,$3)", "sqlite")
    assert f.method == "sqlglot"
    assert f.normalized == "SELECT a FROM t WHERE x IN ($1)"


def test_nul_byte_is_not_truncated_by_libpg_query() -> None:
    f = fingerprint("select 1\x00 from t", "postgresql")
    assert f.method == "fallback"
    assert f.id != fingerprint("select 1", "postgresql").id


@pytest.mark.parametrize(
    ("sql", "dialect", "operation", "tables"),
    [
        (
            "with r as (select 1 from a) update b set x = 1 from r",
            "postgresql",
            "UPDATE",
            ("a", "b"),
        ),
        ("delete from s.t where id = 1", "postgresql", "DELETE", ("s.t",)),
        ("select * from a join b on a.id = b.id", "mysql", "SELECT", ("a", "b")),
        ("insert into kv values (?, ?)", "sqlite", "INSERT", ("kv",)),
        ("set statement_timeout = 3000", "postgresql", "SET", ()),
        ("selec x frm y", "postgresql", "SELEC", ()),
        ("updat t st x = 1 from z", "postgresql", "UPDAT", ("z",)),
    ],
)
def test_operation_and_tables(
    sql: str, dialect: str | None, operation: str, tables: tuple[str, ...]
) -> None:
    f = fingerprint(sql, dialect)
    assert (f.operation, f.tables) == (operation, tables)


def test_passes_are_an_editable_tuple() -> None:
    assert all(callable(p) for p in PASSES)
    tokens = tokenize("select 1 /* keep? */", "postgresql")
    without_drop = tuple(p for p in PASSES if p.__name__ != "drop_comments")
    assert "/* keep? */" in render(normalize_tokens(tokens, without_drop))


def test_fingerprint_many_dedupes_and_counts() -> None:
    stmts = [
        ("select 1", "postgresql"),
        ("select 1", "postgresql"),
        ("select 2", "postgresql"),
        ("selec 2", "postgresql"),
        ("select ?", "sqlite"),
    ]
    fps = fingerprint_many(stmts)
    assert len(fps) == 4
    assert fps.counts() == {"pglast": 2, "fallback": 1, "sqlglot": 1}


# --- properties ---------------------------------------------------------------------------

DIALECTS = st.sampled_from(
    [None, "postgresql", "mysql", "mariadb", "sqlite", "mssql", "oracle", "other"]
)

_words = st.sampled_from(
    [
        "select",
        "from",
        "where",
        "and",
        "or",
        "in",
        "not",
        "null",
        "is",
        "like",
        "limit",
        "offset",
        "order",
        "by",
        "group",
        "having",
        "join",
        "on",
        "insert",
        "into",
        "values",
        "update",
        "set",
        "delete",
        "with",
        "as",
        "case",
        "when",
        "then",
        "else",
        "end",
        "union",
        "all",
        "distinct",
        "t",
        "u",
        "orders",
        "id",
        "name",
        "a",
        "b",
        "c",
        "count",
        "sum",
        "now",
        "declare",
        "exec",
        "int",
    ]
)
_atoms = st.one_of(
    _words,
    st.sampled_from(["(", ")", ",", "*", "=", "<>", "-", "+", ".", "::", ";", "[", "]", "?"]),
    st.sampled_from(["%s", "%(x)s", "$1", ":name", "'str'", "'it''s'", '"Q"', "`b`", "$$x$$"]),
    # Oracle's numbered binds; T-SQL's parameters, variables and system functions
    st.sampled_from([":1", "@P0", "@p1", "@x", "@@rowcount", ":="]),
    st.integers(-1000, 1000).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["/* c */", "-- c\n", "/*a='1'*/", "'unterminated", "/* open", "\x00"]),
)
sqlish = st.lists(_atoms, max_size=30).map(" ".join)
hostile = st.one_of(st.text(max_size=200), sqlish)


@settings(max_examples=400, deadline=None)
@given(sql=hostile, dialect=DIALECTS)
def test_never_raises_and_is_well_formed(sql: str, dialect: str | None) -> None:
    f = fingerprint(sql, dialect)
    assert HEX16.match(f.id)
    assert f.method in ("pglast", "sqlglot", "fallback")
    assert isinstance(f.tables, tuple)


@settings(max_examples=400, deadline=None)
@given(sql=hostile, dialect=DIALECTS)
# Found by this test: T-SQL quotes identifiers as [..], and its renderer writes literals.
@example(sql='"0"', dialect="mssql")
@example(sql="!0", dialect="mssql")
# and: sqlglot renders MySQL's `VALUES!0` as text it will not parse again
@example(sql="VALUES!0", dialect="mysql")
# and: sqlglot renders `;END` as `END`, which it renders as `end`
@example(sql=";END", dialect="mysql")
# and: a sqlcommenter look-alike inside an unclosed comment was split off, once per pass
@example(sql="/*/*0=''*//*0=''*/", dialect=None)
def test_idempotent(sql: str, dialect: str | None) -> None:
    f = fingerprint(sql, dialect)
    again = fingerprint(f.normalized, dialect)
    assert again.normalized == f.normalized
    assert again.id == f.id


@settings(max_examples=100, deadline=None)
@given(sql=hostile, dialect=DIALECTS)
def test_deterministic(sql: str, dialect: str | None) -> None:
    assert fingerprint(sql, dialect) == fingerprint(sql, dialect)


@pytest.mark.parametrize(
    "sql",
    [
        "'",
        '"',
        "`",
        "/*",
        "$$",
        "select 'a",
        "select $tag$ x",
        "\x00",
        "\ud800",
        "(((((",
        "%(",
        ":",
    ],
)
def test_hostile_text_falls_back(sql: str) -> None:
    assert fingerprint(sql, "postgresql").method == "fallback"


def test_tokenize_render_round_trip_on_normalised_text() -> None:
    text = "SELECT a.b, t.* FROM t WHERE x = ANY(ARRAY[$1]) AND y::int > - $2"
    assert render(tokenize(text, "postgresql")) == text


def test_stable_id_across_processes() -> None:
    # A pinned id: blake2b of the normalised text. If this fails, normalisation changed.
    f = fingerprint("SELECT * FROM orders WHERE customer_id = %(cid)s LIMIT 2", "postgresql")
    assert f.id == "efe6a132f0afc2d6"


@settings(max_examples=80, deadline=None)
@given(
    pairs=st.lists(st.tuples(hostile, DIALECTS), min_size=1, max_size=6),
    lists=st.lists(st.integers(1, 4), min_size=1, max_size=3),
)
def test_many_at_once_gives_what_one_at_a_time_gives(
    pairs: list[tuple[str, str | None]], lists: list[int]
) -> None:
    # fingerprint_many parses each normalised shape once; texts that share one (an IN list
    # of another length, other literals, a sqlcommenter comment) must still come out as
    # fingerprint() makes them, comment and all.
    variants = [
        (f"SELECT a FROM t WHERE b IN ({', '.join(str(i) for i in range(n))}) /*k='{n}'*/", d)
        for n, (_, d) in zip(lists, pairs, strict=False)
    ]
    statements = pairs + variants
    found = fingerprint_many(statements)
    for sql, dialect in statements:
        one = fingerprint(sql, dialect)
        assert found[(sql, dialect)] == one
        assert found[(sql, dialect)].comment == one.comment


@pytest.mark.parametrize("dialect", ["db2", "h2", "hsqldb", "derby", "trino", None])
def test_a_locking_read_keeps_its_lock_in_every_dialect(dialect: str | None) -> None:
    # sqlglot's generic dialect writes `FOR UPDATE` as nothing (with a warning): the locking
    # read of a JDBC application on DB2 or H2 would be its plain read, and lock_contention
    # would never see it lock
    locking = fingerprint("select * from products where id = ? for update", dialect)
    plain = fingerprint("select * from products where id = ?", dialect)
    assert locking.normalized.lower().endswith("for update") and locking.id != plain.id
