"""Where DuckDB and ClickHouse mean different things: one hook per construct.

:func:`rewrite` sees every node of a parsed DuckDB statement after its
children were rewritten, and returns the node ClickHouse should get in its
place (often a :class:`sqlglot.exp.Var` holding ClickHouse text, rendered from
children that are already ClickHouse). What sqlglot already writes correctly
for ClickHouse is left to it.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from sqlglot import exp

_MARK = "\x00p:"


def _ch(node: Any) -> str:
    return str(node.sql(dialect="clickhouse"))


def _var(text: str) -> exp.Var:
    return exp.Var(this=text)


# -- the store's macros ------------------------------------------------------------


@functools.cache
def _macros() -> dict[str, tuple[list[str], exp.Expression]]:
    """``name -> (parameters, body)`` of every ``CREATE MACRO`` in the store's DDL."""
    import sqlglot

    from correlate.schema import DDL

    found: dict[str, tuple[list[str], exp.Expression]] = {}
    pattern = re.compile(r"CREATE MACRO (\w+)\(([^)]*)\) AS\s+(.*?);\s*$", re.S | re.M)
    text = re.sub(r"^\s*--.*$", "", DDL, flags=re.M)
    for name, params, body in pattern.findall(text):
        names = [p.strip() for p in params.split(",") if p.strip()]
        tree = sqlglot.parse_one(body, read="duckdb")
        assert isinstance(tree, exp.Expression)
        found[name.lower()] = (names, tree)
    return found


def expand_macros(tree: exp.Expression) -> exp.Expression:
    """``tree`` with each call of a store macro replaced by its body."""
    macros = _macros()

    def expand(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Anonymous) and node.name.lower() in macros:
            params, body = macros[node.name.lower()]
            args = {p: a for p, a in zip(params, node.expressions, strict=False)}

            def bind(inner: exp.Expression) -> exp.Expression:
                if isinstance(inner, exp.Column) and not inner.table and inner.name in args:
                    return args[inner.name].copy()
                return inner

            return expand_macros(body.copy().transform(bind))
        return node

    return tree.transform(expand)


# -- node by node --------------------------------------------------------------------


def rewrite(node: exp.Expression) -> exp.Expression:
    """The ClickHouse form of ``node`` (its children already rewritten)."""
    hook = _HOOKS.get(type(node))
    if hook is None:
        return node
    result: exp.Expression = hook(node)
    return result


def _placeholder(node: exp.Placeholder) -> exp.Expression:
    name = node.name or "?"
    return _var(f"{_MARK}{name}\x00")


def _anonymous(node: exp.Anonymous) -> exp.Expression:
    name = node.name.lower()
    args = [_ch(a) for a in node.expressions]
    if name == "hash":
        return _var(f"cityHash64({', '.join(args)})")
    if name == "histogram":
        # a map of value -> count, NULLs not counted (ClickHouse map keys are not nullable)
        value = args[0]
        return _var(
            f"mapFilter((k, n) -> n > 0, sumMap(map(ifNull({value}, ''), toInt64({value} IS NOT NULL))))"
        )
    if name == "epoch_ns":
        return _var(f"toUnixTimestamp64Nano({args[0]})")
    return node


def _quantile(node: exp.PercentileCont) -> exp.Expression:
    value, q = _ch(node.this), node.expression
    if isinstance(q, exp.Array):
        qs = ", ".join(_ch(e) for e in q.expressions)
        return _var(f"quantilesExactInclusive({qs})({value})")
    return _var(f"quantileExactInclusive({_ch(q)})({value})")


def _median(node: exp.Median) -> exp.Expression:
    return _var(f"quantileExactInclusive(0.5)({_ch(node.this)})")


def _mode(node: exp.Mode) -> exp.Expression:
    # exact: the most frequent value (ClickHouse's topK is approximate)
    g = f"groupArray({_ch(node.this)})"
    return _var(
        f"arrayElementOrNull(arraySort(v -> (-countEqual({g}, v), v), arrayDistinct({g})), 1)"
    )


def _any_value(node: exp.Expression) -> exp.Expression:
    inner = node.this if isinstance(node, exp.IgnoreNulls) else node
    if isinstance(inner, exp.AnyValue):
        return _var(f"any({_ch(inner.this)})")
    return node


def _array_agg(node: exp.ArrayAgg) -> exp.Expression:
    # DuckDB's list() keeps NULLs, groupArray drops them: wrap each value in a tuple
    this = node.this
    if isinstance(this, exp.Distinct):
        return _var(f"groupUniqArray({', '.join(_ch(e) for e in this.expressions)})")
    if isinstance(this, exp.Order) and isinstance(this.this, exp.Distinct):
        distinct, by = this.this.expressions, this.expressions
        if len(distinct) == 1 and len(by) == 1 and by[0].this == distinct[0]:
            sort = "arrayReverseSort" if by[0].args.get("desc") else "arraySort"
            return _var(f"{sort}(groupUniqArray({_ch(distinct[0])}))")
        from correlate.clickhouse.translate import TranslationError

        raise TranslationError("list(DISTINCT … ORDER BY) by another key")
    if isinstance(this, exp.Order):
        value = _ch(this.this)
        keys = this.expressions
        desc = [bool(k.args.get("desc")) for k in keys]
        if all(desc) or not any(desc):
            sort = "arrayReverseSort" if all(desc) else "arraySort"
            key = ", ".join(_ch(k.this) for k in keys)
        else:
            # mixed directions: a descending key must be numeric, and is negated
            sort = "arraySort"
            key = ", ".join(
                f"-toFloat64({_ch(k.this)})" if d else _ch(k.this)
                for k, d in zip(keys, desc, strict=True)
            )
        return _var(
            f"arrayMap(t -> t.1, {sort}(t -> t.2, groupArray(tuple({value}, tuple({key})))))"
        )
    return _var(f"arrayMap(t -> t.1, groupArray(tuple({_ch(this)})))")


def _count(node: exp.Count) -> exp.Expression:
    if isinstance(node.parent, (exp.Filter, exp.Window)):
        return node
    return _var(f"toInt64({_ch(node)})")


def _window(node: exp.Window) -> exp.Expression:
    # count(…) OVER (…): signed as everywhere, the cast around the window function
    if isinstance(node.this, (exp.Count, exp.Filter)) and (
        isinstance(node.this, exp.Count) or isinstance(node.this.this, exp.Count)
    ):
        return _var(f"toInt64({_ch(node)})")
    return node


def _filter(node: exp.Filter) -> exp.Expression:
    if isinstance(node.this, exp.Count) and not isinstance(node.parent, exp.Window):
        return _var(f"toInt64({_ch(node)})")
    if isinstance(node.this, exp.Var) and _INNER_AGGREGATE.search(node.this.name):
        # an aggregate this module expanded (list, mode): the filter goes to the
        # aggregates inside, not to the array function around them
        where = node.expression.this if isinstance(node.expression, exp.Where) else node.expression
        return _var(_push_condition(node.this.name, _ch(where)))
    return node


_INNER_AGGREGATE = re.compile(r"\b(groupArray|groupUniqArray|sumMap)\(")


def _push_condition(text: str, condition: str) -> str:
    """``text`` with each ``groupArray(x)`` as ``groupArrayIf(x, condition)``."""
    out, pos = [], 0
    for match in _INNER_AGGREGATE.finditer(text):
        if match.start() < pos:
            continue
        depth, i = 1, match.end()
        while depth and i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        out.append(text[pos : match.start()])
        out.append(f"{match.group(1)}If({text[match.end() : i - 1]}, {condition})")
        pos = i
    out.append(text[pos:])
    return "".join(out)


def _subquery(node: exp.Subquery) -> exp.Expression:
    # a correlated count(*) over no rows is 0 in DuckDB; ClickHouse's decorrelated
    # form gives NULL
    select = node.this
    if (
        isinstance(select, exp.Select)
        and len(select.expressions) == 1
        and isinstance(select.expressions[0], exp.Var)
        and select.expressions[0].name.startswith("toInt64(COUNT")
        and not isinstance(node.parent, (exp.From, exp.Join, exp.Table, exp.Exists, exp.In))
        and not node.alias
    ):
        return _var(f"coalesce({_ch(node)}, 0)")
    return node


def _length(node: exp.Length) -> exp.Expression:
    return _var(f"toInt64(length({_ch(node.this)}))")


def _int_div(node: exp.IntDiv) -> exp.Expression:
    return _var(f"intDiv({_ch(node.this)}, {_ch(node.expression)})")


def _split(node: exp.Split) -> exp.Expression:
    return _var(f"splitByString({_ch(node.expression)}, ifNull({_ch(node.this)}, ''))")


def _transform(node: exp.Transform) -> exp.Expression:
    return _var(f"arrayMap({_ch(node.expression)}, {_ch(node.this)})")


def _array_filter(node: exp.ArrayFilter) -> exp.Expression:
    return _var(f"arrayFilter({_ch(node.expression)}, {_ch(node.this)})")


def _array_to_string(node: exp.ArrayToString) -> exp.Expression:
    return _var(f"arrayStringConcat({_ch(node.this)}, {_ch(node.expression)})")


def qualify_tables(tree: exp.Expression, database: str) -> None:
    """Tables named without a database read from ``database`` (CTEs keep their names)."""
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        own = isinstance(table.this, exp.Identifier) and not table.args.get("db")
        if own and table.name not in ctes:
            table.set("db", exp.to_identifier(database, quoted=True))


def guard_null_splits(tree: exp.Expression) -> exp.Expression:
    """A list split from NULL is NULL in DuckDB, and so is its join; ClickHouse has no
    NULL array. Each join of a split becomes NULL when the split text is (and the split
    itself reads '' for NULL, see :func:`_split`). Runs before :func:`rewrite`."""

    def guard(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.ArrayToString):
            split = next(iter(node.find_all(exp.Split)), None)
            if split is not None:
                source = split.this.copy()
                return exp.If(
                    this=exp.Is(this=source, expression=exp.Null()),
                    true=exp.Null(),
                    false=node.copy(),
                )
        return node

    return tree.transform(guard, copy=False)


def group_recursive_anchors(tree: exp.Expression) -> exp.Expression:
    """``WITH RECURSIVE r AS (a UNION ALL b UNION ALL step)``: DuckDB seeds ``r`` with
    ``a`` and ``b`` and repeats ``step``; ClickHouse repeats ``b`` too, so ``r`` never
    stops growing. The seeds become one subquery, named as ``r``'s columns."""
    for with_ in tree.find_all(exp.With):
        if not with_.args.get("recursive"):
            continue
        for cte in with_.expressions:
            body = cte.this
            if not (isinstance(body, exp.Union) and isinstance(body.this, exp.Union)):
                continue
            seeds = body.this
            names = [c.name for c in cte.args["alias"].columns] if cte.args.get("alias") else []
            first = seeds
            while isinstance(first, exp.Union):
                first = first.this
            if names and isinstance(first, exp.Select):
                first.set(
                    "expressions",
                    [
                        exp.alias_(e.unalias(), n)
                        for e, n in zip(first.expressions, names, strict=True)
                    ],
                )
            body.set("this", exp.select("*").from_(seeds.subquery()))
    return tree


def _json_keys(node: exp.JSONKeys) -> exp.Expression:
    # a NULL document has no keys (ClickHouse has no nullable arrays)
    return _var(f"JSONExtractKeys(ifNull({_ch(node.this)}, '{{}}'))")


def _json_scalar(node: exp.Expression) -> exp.Expression:
    # DuckDB's ->> and json_extract_string: NULL for a missing key or a JSON null,
    # the text of a number or boolean
    path = node.expression
    if isinstance(path, exp.JSONPath):
        parts = [p for p in path.expressions if not isinstance(p, exp.JSONPathRoot)]
        if len(parts) == 1 and isinstance(parts[0], exp.JSONPathKey):
            key = _literal(str(parts[0].this))
            return _var(f"JSONExtract({_ch(node.this)}, {key}, 'Nullable(String)')")
    if isinstance(path, exp.Literal) and path.is_string:
        key = path.this[2:] if path.this.startswith("$.") else path.this
        key = key[1:-1] if key.startswith('"') and key.endswith('"') else key
        return _var(f"JSONExtract({_ch(node.this)}, {_literal(key)}, 'Nullable(String)')")
    if isinstance(path, exp.Array):
        # several paths at once (DuckDB parses the document once): each one's text, listed
        each = [exp.JSONExtractScalar(this=node.this, expression=p) for p in path.expressions]
        return _var("[" + ", ".join(_ch(_json_scalar(e)) for e in each) + "]")
    # a key built at run time: '$."' || k || '"'
    key = f"replaceRegexpOne({_ch(path)}, '^\\\\$\\\\.\"?(.*?)\"?$', '\\\\1')"
    return _var(f"JSONExtract({_ch(node.this)}, {key}, 'Nullable(String)')")


def _literal(text: str) -> str:
    from correlate.clickhouse.translate import literal

    return literal(text)


def _regexp_full(node: exp.RegexpFullMatch) -> exp.Expression:
    return _var(f"match({_ch(node.this)}, concat('^(?:', {_ch(node.expression)}, ')$'))")


def _regexp_like(node: exp.RegexpLike) -> exp.Expression:
    flag = node.args.get("flag")
    pattern = _ch(node.expression)
    if flag is not None and "i" in str(flag.this):
        pattern = f"concat('(?i)', {pattern})"
    return _var(f"match({_ch(node.this)}, {pattern})")


def _regexp_replace(node: exp.RegexpReplace) -> exp.Expression:
    flags = node.args.get("modifiers")
    text = str(flags.this) if isinstance(flags, exp.Literal) else ""
    pattern = _ch(node.expression)
    inline = "".join(f for f in "is" if f in text)
    if inline:
        pattern = f"concat('(?{inline})', {pattern})"
    fn = "replaceRegexpAll" if "g" in text else "replaceRegexpOne"
    return _var(f"{fn}({_ch(node.this)}, {pattern}, {_ch(node.args['replacement'])})")


def _regexp_extract(node: exp.RegexpExtract) -> exp.Expression:
    group = node.args.get("group")
    index = _ch(group) if group is not None else "0"
    return _var(f"regexpExtract({_ch(node.this)}, {_ch(node.expression)}, {index})")


def _starts_with(node: exp.StartsWith) -> exp.Expression:
    return _var(f"startsWith({_ch(node.this)}, {_ch(node.expression)})")


_INT_LIMITS = {"INT": 2**31 - 1, "BIGINT": 2**63 - 1}


def _try_cast(node: exp.TryCast) -> exp.Expression:
    # DuckDB's TRY_CAST of text to a number: a double, or an integer rounded from one,
    # NULL when it does not parse or does not fit
    kind = node.to.this.name.upper() if node.to is not None else ""
    text = f"toFloat64OrNull(toString({_ch(node.this)}))"
    if kind == "DOUBLE":
        return _var(text)
    if kind in _INT_LIMITS:
        cast = "toInt32" if kind == "INT" else "toInt64"
        value = f"round({text})"
        return _var(
            f"if(isFinite({value}) AND abs({value}) <= {_INT_LIMITS[kind]}, {cast}({value}), NULL)"
        )
    target = re.sub(r"^Nullable\((.*)\)$", r"\1", node.to.sql(dialect="clickhouse"))
    return _var(f"accurateCastOrNull({_ch(node.this)}, {_literal(target)})")


def _lower(node: exp.Lower) -> exp.Expression:
    return _var(f"lowerUTF8({_ch(node.this)})")


def _left(node: exp.Left) -> exp.Expression:
    # DuckDB counts characters, ClickHouse's left() bytes
    return _var(f"leftUTF8({_ch(node.this)}, {_ch(node.expression)})")


def _upper(node: exp.Upper) -> exp.Expression:
    return _var(f"upperUTF8({_ch(node.this)})")


def _logical_or(node: exp.LogicalOr) -> exp.Expression:
    return _var(f"max({_ch(node.this)})")


def _logical_and(node: exp.LogicalAnd) -> exp.Expression:
    return _var(f"min({_ch(node.this)})")


def _array_distinct(node: exp.ArrayDistinct) -> exp.Expression:
    return _var(f"arrayDistinct({_ch(node.this)})")


def _flatten(node: exp.Flatten) -> exp.Expression:
    return _var(f"arrayFlatten({_ch(node.this)})")


def _array_sort(node: exp.ArraySort) -> exp.Expression:
    return _var(f"arraySort({_ch(node.this)})")


def _window_shift(node: exp.Expression) -> exp.Expression:
    # lead/lag past a partition's end: NULL as in DuckDB, not the type's default
    if isinstance(node, (exp.Lead, exp.Lag)) and node.args.get("default") is None:
        name = "lead" if isinstance(node, exp.Lead) else "lag"
        offset = node.args.get("offset")
        extra = f", {_ch(offset)}" if offset is not None else ""
        return _var(f"{name}(toNullable({_ch(node.this)}){extra})")
    return node


def _slice(node: exp.Bracket) -> exp.Expression:
    # DuckDB's list[a:b] (1-based, inclusive)
    if len(node.expressions) == 1 and isinstance(node.expressions[0], exp.Slice):
        bounds = node.expressions[0]
        lo = _ch(bounds.this) if bounds.this is not None else "1"
        if bounds.expression is None:
            return _var(f"arraySlice({_ch(node.this)}, {lo})")
        hi = _ch(bounds.expression)
        return _var(f"arraySlice({_ch(node.this)}, {lo}, greatest(({hi}) - ({lo}) + 1, 0))")
    return node


#: Expressions that are true or false: ClickHouse gives them as UInt8 (1/0), DuckDB as
#: BOOLEAN, and a boolean column must stay one (a report says ``true``, not ``1``).
_PREDICATES = (
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.And,
    exp.Or,
    exp.Not,
    exp.Is,
    exp.Like,
    exp.ILike,
    exp.In,
    exp.Between,
    exp.Exists,
    exp.NullSafeEQ,
    exp.NullSafeNEQ,
    exp.RegexpLike,
    exp.RegexpFullMatch,
    exp.StartsWith,
)


def _boolean(e: exp.Expression) -> bool:
    if isinstance(e, exp.Paren):
        return _boolean(e.this)
    if isinstance(e, exp.Coalesce):
        return _boolean(e.this)
    return isinstance(e, _PREDICATES)


def _select(node: exp.Select) -> exp.Expression:
    for i, e in enumerate(node.expressions):
        inner = e.this if isinstance(e, exp.Alias) else e
        if _boolean(inner):
            wrapped = _var(f"toBool({_ch(inner)})")
            if isinstance(e, exp.Alias):
                e.set("this", wrapped)
            else:
                node.expressions[i].replace(exp.alias_(wrapped, inner.sql(), quoted=True))
    # DuckDB names ``p.th`` as ``th``; ClickHouse may keep the qualifier
    names = [e.alias_or_name for e in node.expressions]
    for i, e in enumerate(node.expressions):
        if (
            isinstance(e, exp.Column)
            and e.table
            and not isinstance(e.this, exp.Star)
            and names.count(e.name) == 1
        ):
            node.expressions[i].replace(exp.alias_(e.copy(), e.name, quoted=False))
    return node


def _join(node: exp.Join) -> exp.Expression:
    kind = (node.kind or "").upper()
    if kind in ("ANTI", "SEMI") and not node.side:
        node.set("side", "LEFT")
    return node


def _series(node: exp.Table) -> exp.Expression:
    series = node.this
    if not isinstance(series, exp.GenerateSeries):
        return node
    start, end = _ch(series.args["start"]), _ch(series.args["end"])
    step = series.args.get("step")
    if step is not None and _ch(step) != "1":
        from correlate.clickhouse.translate import TranslationError

        raise TranslationError("range() with a step")
    exclusive = bool(series.args.get("is_end_exclusive"))
    count = f"greatest(({end}) - ({start}){'' if exclusive else ' + 1'}, 0)"
    alias = node.args.get("alias")
    column = "i"
    name = "series"
    if isinstance(alias, exp.TableAlias):
        name = alias.name or name
        if alias.columns:
            column = alias.columns[0].name
    query = f"(SELECT toInt64(number) + ({start}) AS {column} FROM numbers(toUInt64({count})))"
    return exp.Table(this=_var(query), alias=exp.TableAlias(this=exp.to_identifier(name)))


def _create(node: exp.Create) -> exp.Expression:
    if (node.args.get("kind") or "").upper() != "TABLE" or node.expression is None:
        return node
    return _var(
        f"CREATE OR REPLACE TABLE {_ch(node.this)} ENGINE = Memory AS {_ch(node.expression)}"
    )


_HOOKS: dict[type, Any] = {
    exp.Placeholder: _placeholder,
    exp.Anonymous: _anonymous,
    exp.PercentileCont: _quantile,
    exp.Median: _median,
    exp.Mode: _mode,
    exp.IgnoreNulls: _any_value,
    exp.AnyValue: _any_value,
    exp.ArrayAgg: _array_agg,
    exp.Count: _count,
    exp.Filter: _filter,
    exp.Window: _window,
    exp.Length: _length,
    exp.IntDiv: _int_div,
    exp.Split: _split,
    exp.Transform: _transform,
    exp.ArrayFilter: _array_filter,
    exp.ArrayToString: _array_to_string,
    exp.JSONKeys: _json_keys,
    exp.JSONExtractScalar: _json_scalar,
    exp.RegexpFullMatch: _regexp_full,
    exp.RegexpLike: _regexp_like,
    exp.RegexpReplace: _regexp_replace,
    exp.RegexpExtract: _regexp_extract,
    exp.StartsWith: _starts_with,
    exp.TryCast: _try_cast,
    exp.Lower: _lower,
    exp.Left: _left,
    exp.Upper: _upper,
    exp.LogicalOr: _logical_or,
    exp.LogicalAnd: _logical_and,
    exp.ArrayDistinct: _array_distinct,
    exp.Flatten: _flatten,
    exp.ArraySort: _array_sort,
    exp.Lead: _window_shift,
    exp.Lag: _window_shift,
    exp.Join: _join,
    exp.Subquery: _subquery,
    exp.Select: _select,
    exp.Bracket: _slice,
    exp.Table: _series,
    exp.Create: _create,
}


def finish(text: str) -> str:
    """Last touches on the generated text."""
    return text


def json_keys(sql: str) -> str:
    """DuckDB reads ``j->>'a.b'`` (no ``$``) as the key ``a.b``, not a path; sqlglot
    parses both alike, so plain keys are written as quoted path keys first."""
    return re.sub(r"(->>?)\s*'([^'$][^'\"]*)'", lambda m: f"{m.group(1)}'$.\"{m.group(2)}\"'", sql)


def system_tables(sql: str) -> str:
    """``duckdb_tables()`` lookups as ClickHouse's ``system.tables`` of the work database."""
    if "duckdb_tables()" not in sql:
        return sql
    sql = sql.replace("duckdb_tables()", "system.tables")
    sql = re.sub(r"\btemporary\b", "database = currentDatabase()", sql)
    return re.sub(r"\btable_name\b", "name", sql)
