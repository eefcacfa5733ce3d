"""Bind placeholders of each driver style, and the variables that only look like them.

Oracle's drivers write ``:1`` and ``:name``; Microsoft's JDBC driver ``@P0``; .NET SqlClient,
EF Core and Dapper ``@p0`` and ``@name``. Each is one placeholder, so executions that differ
only in values or in the driver's spelling share a fingerprint. MySQL's ``@x`` and T-SQL's
declared ``@x`` and ``@@ROWCOUNT`` are variables: their names are part of the statement.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from correlate.fingerprint import fingerprint
from correlate.fingerprint.placeholders import (
    Slot,
    number_question_marks,
    split_placeholders,
    to_numbered,
)
from correlate.fingerprint.tokens import tokenize

# --- one placeholder per driver spelling ------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "dialect"),
    [
        ("SELECT * FROM t WHERE id = :1 AND x = :2", "oracle"),  # JDBC, python-oracledb
        ("SELECT * FROM t WHERE id = :id AND x = :x", "oracle"),
        ("SELECT * FROM t WHERE id = :1 AND x = :x", "oracle.db"),  # new semconv name
        ("SELECT * FROM t WHERE id = @P0 AND x = @P1", "mssql"),  # Microsoft JDBC
        ("SELECT * FROM t WHERE id = @p0 AND x = @p1", "mssql"),  # SqlClient, EF Core
        ("SELECT * FROM t WHERE id = @id AND x = @x", "microsoft.sql_server"),  # Dapper
        ("SELECT * FROM t WHERE id = ? AND x = ?", "mssql"),  # pyodbc
    ],
)
def test_driver_placeholders_read_as_numbered_ones(sql: str, dialect: str) -> None:
    f = fingerprint(sql, dialect)
    assert f.normalized == "SELECT * FROM t WHERE id = $1 AND x = $2"
    assert f.method == "sqlglot"
    assert f.id == fingerprint("select * from t where id = 7 and x = 'a'", dialect).id


def test_oracle_assignment_is_not_a_placeholder() -> None:
    tokens = tokenize("BEGIN :out := pkg.total(:1); END;", "oracle")
    assert [t.text for t in tokens if t.kind == "param"] == [":out", ":1"]
    assert ":=" in [t.text for t in tokens if t.kind == "op"]


def test_postgresql_keeps_reading_colon_digits_as_a_slice() -> None:
    # `:1` is Oracle's; in PostgreSQL `a[1:2]` is a slice and must stay one.
    f = fingerprint("select a[1:2] from t where id = :id", "postgresql")
    assert f.normalized == "SELECT a[$1 : $2] FROM t WHERE id = $3"


# --- variables stay variables -----------------------------------------------------------


@pytest.mark.parametrize("dialect", ["mysql", "mariadb"])
def test_mysql_user_and_system_variables_are_not_placeholders(dialect: str) -> None:
    by_x = fingerprint("SELECT * FROM t WHERE id = @x", dialect)
    assert "$" not in by_x.normalized
    assert by_x.id != fingerprint("SELECT * FROM t WHERE id = @y", dialect).id
    assert by_x.id != fingerprint("SELECT * FROM t WHERE id = ?", dialect).id
    assigned = fingerprint("SET @x = 5", dialect)
    assert assigned.normalized.count("$") == 1  # the value, not the variable
    assert assigned.id == fingerprint("SET @x = 6", dialect).id
    assert assigned.id != fingerprint("SET @y = 5", dialect).id
    version = fingerprint("SELECT @@version, @@session.sql_mode", dialect)
    assert "$" not in version.normalized


def test_tsql_declared_variable_keeps_its_name() -> None:
    text = "DECLARE @since DATETIME2 = @P0; SELECT COUNT(*) FROM t WHERE created >= @since"
    f = fingerprint(text, "mssql")
    assert f.method == "sqlglot"
    assert f.normalized == (
        "DECLARE @since DATETIME2 = $1; SELECT COUNT(*) FROM t WHERE created >= @since"
    )
    other = text.replace("@since", "@until")
    assert fingerprint(other, "mssql").id != f.id


def test_tsql_declare_lists_and_table_variables() -> None:
    text = (
        "DECLARE @a INT = @p0, @t TABLE (id INT, v INT); "
        "INSERT INTO @t (id, v) VALUES (@a, @p1); SELECT id FROM @t WHERE v > @p2"
    )
    params = [t.text for t in tokenize(text, "tsql") if t.kind == "param"]
    assert params == ["@p0", "@p1", "@p2"]
    assert fingerprint(text, "mssql").method == "sqlglot"


def test_tsql_system_functions_are_words() -> None:
    f = fingerprint("INSERT INTO t (a) VALUES (@p0); SELECT @@ROWCOUNT, @@IDENTITY", "mssql")
    assert f.normalized == "INSERT INTO t(a) VALUES ($1); SELECT @@rowcount, @@identity"
    assert f.method == "sqlglot"


def test_tsql_exec_argument_names_stay() -> None:
    by_name = fingerprint("EXEC dbo.GetOrders @CustomerId = @p0, @Status = @p1", "mssql")
    assert by_name.normalized == "EXECUTE dbo.getorders @customerid = $1, @status = $2"
    literal = fingerprint("EXEC dbo.GetOrders @CustomerId = 5, @Status = 'x'", "mssql")
    assert literal.id == by_name.id


# --- split_placeholders and to_numbered -------------------------------------------------


def test_split_cuts_oracle_placeholders() -> None:
    split = split_placeholders("UPDATE t SET a = :1, b = :name WHERE id = :1", "oracle")
    # plain SQL binds `:1` once per occurrence: positional, no name to share
    assert split.slots == [Slot(None), Slot("name"), Slot(None)]
    assert split.pieces[0] == "UPDATE t SET a = "


def test_split_cuts_tsql_parameters_not_variables() -> None:
    text = "DECLARE @n INT = @P0; SELECT @n, @@ROWCOUNT FROM t WHERE a = @name OR b = @name"
    split = split_placeholders(text, "tsql")
    assert split.slots == [Slot("P0"), Slot("name"), Slot("name")]
    assert "".join(p if isinstance(p, str) else "?" for p in split.pieces) == (
        "DECLARE @n INT = ?; SELECT @n, @@ROWCOUNT FROM t WHERE a = ? OR b = ?"
    )


def test_to_numbered_reads_postgresql_only() -> None:
    # Only PostgreSQL capture numbers placeholders; `@` is an operator there.
    assert to_numbered("select a @ b from t where c = :c") == (
        "select a @ b from t where c = $1",
        1,
    )


# --- property: the spelling of a placeholder never changes the fingerprint --------------

_SHAPES = (
    "SELECT a, b FROM t WHERE id = {} AND b > {}",
    "SELECT * FROM orders WHERE customer_id IN ({}) ORDER BY id",
    "UPDATE stock SET qty = qty - {} WHERE sku = {}",
    "INSERT INTO kv (k, v) VALUES ({}, {})",
    "DELETE FROM t WHERE (a = {} OR b = {}) AND c <> {}",
)

# What each database's drivers write for the n-th value (n from 1), `{name}` a bind name.
_SPELLINGS: dict[str, tuple[str, ...]] = {
    "oracle": (":{n}", ":{name}", "?"),
    "oracle.db": (":{n}", ":{name}"),
    "mssql": ("@P{n0}", "@p{n0}", "@{name}", "?"),
    "microsoft.sql_server": ("@P{n0}", "@{name}"),
    "postgresql": ("%s", "%({name})s", "${n}", ":{name}", "?"),  # knex, JDBC: `?`
    "mysql": ("%s", "%({name})s", "?"),
    "sqlite": ("?", ":{name}"),
}

_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
_literals = st.one_of(
    st.integers(0, 10**6).map(str),
    st.text("abc xyz;'%@:", max_size=6).map(lambda s: "'" + s.replace("'", "''") + "'"),
)


@st.composite
def _filled(draw: st.DrawFn, shape: str, dialect: str) -> str:
    """``shape`` with each value a literal or any of ``dialect``'s placeholder spellings."""
    values = []
    for n in range(1, shape.count("{}") + 1):
        spelling = draw(st.sampled_from(_SPELLINGS[dialect]))
        value = spelling.format(n=n, n0=n - 1, name=draw(_names))
        values.append(draw(st.one_of(st.just(value), _literals)))
    if "IN ({})" in shape:  # a list of any length is one shape
        more = draw(st.lists(st.sampled_from(_SPELLINGS[dialect]), max_size=3))
        values[0] = ", ".join([values[0], *(s.format(n=9, n0=8, name="k") for s in more)])
    return shape.format(*values)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), shape=st.sampled_from(_SHAPES), dialect=st.sampled_from(list(_SPELLINGS)))
def test_placeholder_style_never_changes_the_fingerprint(
    data: st.DataObject, shape: str, dialect: str
) -> None:
    first = data.draw(_filled(shape, dialect))
    second = data.draw(_filled(shape, dialect))
    a, b = fingerprint(first, dialect), fingerprint(second, dialect)
    assert (a.id, a.normalized) == (b.id, b.normalized)
    assert a.method == b.method != "fallback"


# --- `?` on PostgreSQL: the `$n` the server sees, outside quotes and comments ----------


def test_knex_statement_has_the_fingerprint_of_the_drivers() -> None:
    # knex's span and, within it, pg's span of the same call
    knex = 'select * from "orders" where "customer_id" = ? limit ?'
    pg = 'select * from "orders" where "customer_id" = $1 limit $2'
    a, b = fingerprint(knex, "postgresql"), fingerprint(pg, "postgresql")
    assert (a.id, a.normalized, a.method) == (b.id, b.normalized, b.method)
    assert a.normalized == "SELECT * FROM orders WHERE customer_id = $1 LIMIT $2"


@pytest.mark.parametrize(
    "sql",
    ["SELECT * FROM t WHERE data ? 'k'", "SELECT * FROM t WHERE data ?| array['a', 'b']"],
)
def test_jsonb_question_mark_operator_stays_an_operator(sql: str) -> None:
    f = fingerprint(sql, "postgresql")
    assert f.method == "pglast"
    assert "?" in f.normalized


def test_numbering_follows_the_highest_dollar_number() -> None:
    assert number_question_marks("select a from t where b = $2 and c = ?") == (
        "select a from t where b = $2 and c = $3"
    )


_QUOTED = st.text("ab ?:$-%", min_size=1, max_size=5)  # no quote or comment end in them
# Pieces of a statement that hold a `?` no rewrite may touch, each with a column it names.
_UNTOUCHED = st.one_of(
    _QUOTED.map(lambda s: ("a", f"'{s}'")),  # a string
    _QUOTED.map(lambda s: (f'"{s}"', "1")),  # a quoted identifier
    _QUOTED.map(lambda s: ("a", f"E'{s}'")),
    st.text("ab ?:-", max_size=5).map(lambda s: ("a", f"$q${s}$q$")),  # a dollar quote
    _QUOTED.map(lambda s: ("a", f"1 /* {s} */")),
    _QUOTED.map(lambda s: ("a", f"1 -- {s}\n")),
)


@st.composite
def _question_and_dollar(draw: st.DrawFn) -> tuple[str, str]:
    """One statement written with `?` placeholders and with `$n` ones, with strings, quoted
    identifiers and comments holding `?` among its conditions."""
    conditions = draw(st.lists(st.one_of(st.just(None), _UNTOUCHED), min_size=1, max_size=6))
    limit = draw(st.booleans())
    q_parts: list[str] = []
    n_parts: list[str] = []
    n = 0
    for condition in conditions:
        if condition is None:
            n += 1
            q_parts.append("b = ?")
            n_parts.append(f"b = ${n}")
        else:
            column, value = condition
            q_parts.append(f"{column} = {value}")
            n_parts.append(f"{column} = {value}")
    head = 'SELECT a, "x?" FROM t WHERE '
    q_text, n_text = head + " AND ".join(q_parts), head + " AND ".join(n_parts)
    if limit:
        q_text += " LIMIT ?"
        n_text += f" LIMIT ${n + 1}"
    return q_text, n_text


@settings(max_examples=200, deadline=None)
@given(_question_and_dollar())
def test_question_marks_become_numbers_outside_quotes_and_comments(
    texts: tuple[str, str],
) -> None:
    q_text, n_text = texts
    # every other character stays: the ? in strings, identifiers and comments too
    assert number_question_marks(q_text) == n_text
    a, b = fingerprint(q_text, "postgresql"), fingerprint(n_text, "postgresql")
    assert (a.id, a.normalized) == (b.id, b.normalized)
    assert a.method == b.method == "pglast"
