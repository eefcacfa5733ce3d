"""Local ingest's DuckDB expressions, rewritten for ClickHouse by sqlglot.

The canonical columns are derived by SQL that :mod:`correlate.ingest.canonical`,
:mod:`correlate.routes` and :mod:`correlate.schema` write once, for DuckDB, from the
tables in :mod:`correlate.semconv`. :func:`clickhouse_expr` transpiles such an
expression (sqlglot, DuckDB to ClickHouse) and then fixes what the two engines
mean differently, so the views compute the same values with no second copy of a
rule:

- ``regexp_full_match(x, re)`` is ``match(x, '^(?:re)$')``; ``regexp_replace``
  without the ``g`` flag replaces the first match only (``replaceRegexpOne``);
- a list joined with ``array_to_string`` over ``string_split`` of NULL is NULL in
  DuckDB, while ClickHouse has no NULL array: the split is guarded;
- ``len`` of a list is ``length``; ``lower`` is Unicode-aware (``lowerUTF8``);
- ``TRY_CAST`` to a number is ``to…OrNull``, and a double becomes an integer
  rounded, or NULL when out of range, as DuckDB's cast does.

Both engines use RE2, so the patterns themselves carry over unchanged; ClickHouse
reads backslash escapes in string literals, and sqlglot writes them doubled.
"""

from __future__ import annotations

from typing import Any

__all__ = ["clickhouse_expr", "clickhouse_query"]

_INT_RANGES = {"INT": 2**31 - 1, "BIGINT": 2**63 - 1}


def clickhouse_expr(duckdb_sql: str) -> str:
    """The ClickHouse text of one DuckDB scalar expression.

    >>> clickhouse_expr("regexp_full_match(x, '[0-9]+')")
    "match(x, '^(?:[0-9]+)$')"
    >>> clickhouse_expr("regexp_replace(x, '^a', '')")
    "replaceRegexpOne(x, '^a', '')"
    """
    import sqlglot

    tree = sqlglot.parse_one(f"SELECT {duckdb_sql}", read="duckdb")
    # transform() does not descend into a node it replaced: repeat until nothing changes.
    text = ""
    while text != (text := tree.sql(dialect="clickhouse")):
        tree = tree.transform(_rewrite)
    select = tree.expressions[0]
    return str(select.sql(dialect="clickhouse"))


def clickhouse_query(duckdb_sql: str, database: str | None = None) -> str:
    """The ClickHouse text of one DuckDB SELECT statement (rewritten as :func:`clickhouse_expr`).

    Tables named without a database are read from ``database`` when given.
    """
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(duckdb_sql, read="duckdb")
    if database is not None:
        for table in tree.find_all(exp.Table):
            if not table.args.get("db"):
                table.set("db", exp.to_identifier(database, quoted=True))
    text = ""
    while text != (text := tree.sql(dialect="clickhouse")):
        tree = tree.transform(_rewrite)
    return text


def _call(name: str, *args: Any) -> Any:
    from sqlglot import exp

    return exp.Anonymous(this=name, expressions=list(args))


def _rewrite(node: Any) -> Any:
    from sqlglot import exp

    if isinstance(node, exp.RegexpFullMatch):
        pattern = node.expression
        if isinstance(pattern, exp.Literal) and pattern.is_string:
            anchored: exp.Expression = exp.Literal.string(f"^(?:{pattern.this})$")
        else:
            anchored = exp.Concat(
                expressions=[exp.Literal.string("^(?:"), pattern, exp.Literal.string(")$")]
            )
        return _call("match", node.this, anchored)
    if isinstance(node, exp.RegexpReplace):
        modifiers = node.args.get("modifiers")
        every = modifiers is not None and "g" in str(modifiers.this)
        name = "replaceRegexpAll" if every else "replaceRegexpOne"
        return _call(name, node.this, node.expression, node.args["replacement"])
    if isinstance(node, exp.RegexpExtract):
        group = node.args.get("group") or exp.Literal.number(0)
        return _call("regexpExtract", node.this, node.expression, group)
    if isinstance(node, exp.RegexpLike):
        return _call("match", node.this, node.expression)
    if isinstance(node, exp.Length) and isinstance(node.this, exp.ArrayFilter | exp.Array):
        return _call("length", node.this)
    if isinstance(node, exp.Lower):
        return _call("lowerUTF8", node.this)
    if isinstance(node, exp.ArrayToString):
        return _join(node)
    if isinstance(node, exp.TryCast):
        return _try_cast(node)
    return node


def _join(node: Any) -> Any:
    """``array_to_string`` as ``arrayStringConcat``; NULL when the list comes from splitting NULL."""
    from sqlglot import exp

    joined = _call("arrayStringConcat", node.this, node.expression)
    splits = list(node.this.find_all(exp.Split, exp.StringToArray))
    if not splits:
        return joined
    split = splits[0]
    source = split.this
    guarded = split.copy()
    guarded.set("this", _call("assumeNotNull", source.copy()))
    split.replace(guarded)
    return exp.If(
        this=exp.Is(this=source.copy(), expression=exp.Null()),
        true=exp.Null(),
        false=_call("arrayStringConcat", node.this, node.expression),
    )


def _try_cast(node: Any) -> Any:
    from sqlglot import exp

    target = node.to.this.name.upper() if node.to is not None else ""
    inner = node.this
    if target == "DOUBLE":
        return _call("toFloat64OrNull", _call("toString", inner))
    if target in ("INT", "BIGINT"):
        limit = _INT_RANGES[target]
        number = _call("toFloat64OrNull", _call("toString", inner))
        value = _call("round", number)
        fits = exp.and_(
            _call("isFinite", value),
            exp.LTE(this=_call("abs", value.copy()), expression=exp.Literal.number(limit)),
        )
        cast = "toInt32" if target == "INT" else "toInt64"
        return exp.If(this=fits, true=_call(cast, value.copy()), false=exp.Null())
    return node
