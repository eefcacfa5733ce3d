"""The analysis SQL, written once for DuckDB, as ClickHouse runs it.

The analysis is SQL over a few canonical tables (:mod:`correlate.analysis`),
written in DuckDB's dialect. Against a ClickHouse source the same statements
run in ClickHouse: sqlglot parses each as DuckDB and writes it as ClickHouse,
and the hooks below cover what the two engines mean differently, so there is
never a second hand-kept copy of any query:

- aggregates whose ClickHouse namesakes are approximate become exact ones
  (``quantile_cont``/``median`` → ``quantileExactInclusive``, ``mode`` → a count
  per distinct value); ``count`` and ``length`` are signed, as in DuckDB, so a
  difference of counts never wraps around;
- DuckDB's JSON arrow (``->>``) is NULL for a missing key, as there;
- list functions, regular expressions (both engines use RE2), ``range``,
  anti/semi joins and ``duckdb_tables()`` get their ClickHouse forms;
- the store's macros (``statement_key``, ``strip_sqlcommenter``) are expanded
  from their DuckDB definitions in :mod:`correlate.schema`;
- ``$name`` and ``?`` parameters become literals, escaped for ClickHouse
  (trace text never reaches a query any other way).

>>> to_clickhouse("SELECT quantile_cont(d, 0.95) FROM t WHERE run_id = $run", {"run": 1})
'SELECT quantileExactInclusive(0.95)(d) FROM t WHERE run_id = 1'
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from correlate.errors import CorrelateError

#: The settings every translated statement runs under: NULLs from outer joins
#: (DuckDB's meaning, not ClickHouse's default values) and correlated subqueries.
SETTINGS: dict[str, int] = {
    "join_use_nulls": 1,
    "allow_experimental_correlated_subqueries": 1,
    "enable_analyzer": 1,
    # a column keeps its meaning inside an expression whose alias shares its name
    # (``arg_min(rh, depth) AS rh, min(depth) AS depth``), as in standard SQL
    "prefer_column_name_to_alias": 1,
    # DuckDB reads `FROM (SELECT …), (SELECT …)` without aliases
    "joined_subquery_requires_alias": 0,
    # an aggregate over no rows is NULL, as in DuckDB (ClickHouse's default is 0: a run
    # without load-generator results then started at the epoch)
    "aggregate_functions_null_for_empty": 1,
}


class TranslationError(CorrelateError):
    """A statement of the analysis that has no ClickHouse form yet."""


Params = Mapping[str, Any] | Sequence[Any] | None


def literal(value: Any) -> str:
    """``value`` as a ClickHouse literal: strings escaped (backslash and quote)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    raise TranslationError(f"cannot pass a {type(value).__name__} to ClickHouse as a parameter")


def to_clickhouse(sql: str, params: Params = None, *, database: str | None = None) -> str:
    """``sql`` (DuckDB) as one ClickHouse statement, ``params`` bound as literals;
    tables named without a database (common table expressions aside) read from
    ``database`` when given."""
    template = _translate(sql, database)
    return _bind(template, params)


_EXPRESSION = "correlate_expression"


def expression_to_clickhouse(sql: str) -> str:
    """One DuckDB scalar expression as ClickHouse text.

    >>> expression_to_clickhouse("regexp_full_match(x, '[0-9]+')")
    "match(x, concat('^(?:', '[0-9]+', ')$'))"
    """
    text = to_clickhouse(f"SELECT {sql} AS {_EXPRESSION}")
    head, tail = "SELECT ", f" AS {_EXPRESSION}"
    if not (text.startswith(head) and text.endswith(tail)):
        raise TranslationError(f"not one scalar expression: {sql}")
    return text[len(head) : -len(tail)]


_MARK = "\x00p:"  # a parameter's place in a translated template


def _bind(template: str, params: Params) -> str:
    if _MARK not in template:
        return template
    positional = list(params) if isinstance(params, Sequence) else []
    named = params if isinstance(params, Mapping) else {}
    counter = iter(range(len(positional)))

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "?":
            try:
                return literal(positional[next(counter)])
            except (StopIteration, IndexError):
                raise TranslationError("a statement has more ? than parameters given") from None
        if name not in named:
            raise TranslationError(f"no value given for parameter ${name}")
        return literal(named[name])

    return re.sub("\x00p:([^\x00]+)\x00", value, template)


@functools.lru_cache(maxsize=1024)
def _translate(sql: str, database: str | None = None) -> str:
    import sqlglot
    from sqlglot import exp

    from correlate.clickhouse import hooks

    try:
        tree = sqlglot.parse_one(hooks.json_keys(hooks.system_tables(sql)), read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise TranslationError(f"cannot read a statement of the analysis: {exc}") from None
    assert isinstance(tree, exp.Expression)
    tree = hooks.guard_null_splits(hooks.expand_macros(tree))
    tree = hooks.group_recursive_anchors(tree)
    if database is not None:
        hooks.qualify_tables(tree, database)
    tree = _rewrite(tree, hooks.rewrite)
    assert isinstance(tree, exp.Expression)
    text = tree.sql(dialect="clickhouse")
    return hooks.finish(text)


def _rewrite(node: Any, fn: Any) -> Any:
    """``node`` with ``fn`` applied bottom-up (children first, so a hook that
    renders its arguments as text sees them already translated)."""
    from sqlglot import exp

    for key, value in list(node.args.items()):
        if isinstance(value, exp.Expression):
            new = _rewrite(value, fn)
            if new is not value:
                node.set(key, new)
        elif isinstance(value, list):
            node.set(
                key,
                [_rewrite(v, fn) if isinstance(v, exp.Expression) else v for v in value],
            )
    return fn(node)


__all__ = ["SETTINGS", "TranslationError", "expression_to_clickhouse", "literal", "to_clickhouse"]
