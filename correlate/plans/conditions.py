"""Column names out of filter text and WHERE clauses, for naming an index to create.

Deliberately shallow: the plan's filter text is already normalised by the
server, so a column is an identifier directly before a comparison operator.

>>> filter_columns("(customer_id = $1)")
['customer_id']
>>> filter_columns("(((status)::text = 'paid'::text) AND (o.created_at > now()))")
['status', 'created_at']
>>> filter_columns("`test`.`orders`.`customer_id` = 7")
['customer_id']
>>> where_columns("SELECT * FROM orders o WHERE o.customer_id = ? ORDER BY id", "o")
['customer_id']
>>> index_columns("(((payload)::text ~~ ($2)::text) AND (created_at > $3) AND (kind = $1))")
['kind', 'created_at']
"""

from __future__ import annotations

import re

__all__ = ["create_index", "filter_columns", "index_columns", "table_of", "where_columns"]

_STRING = re.compile(r"'(?:[^']|'')*'")
_CAST = re.compile(r"::\s*(?:\"[^\"]+\"|[\w ]+?)(?:\[\])?(?=[\s),=<>!~]|$)")
_OPERATOR = (
    r"(?:=|<>|!=|<=|>=|<|>|!?~~\*?|!?~\*?|\bI?LIKE\b|\bNOT\s+I?LIKE\b|\bIN\b|\bNOT\s+IN\b"
    r"|\bIS\b|\bBETWEEN\b)"
)
_COLUMN = re.compile(
    r"(?P<qual>(?:[A-Za-z_][\w$]*\.)*)(?P<col>[A-Za-z_][\w$]*)\)*\s*" + _OPERATOR, re.IGNORECASE
)
_KEYWORDS = frozenset({"and", "or", "not", "null", "true", "false", "any", "all", "case", "when"})


def _clean(text: str) -> str:
    text = _STRING.sub("''", text.replace("`", "").replace('"', ""))
    return _CAST.sub("", text)


def filter_columns(text: str | None, qualifier: str | None = None) -> list[str]:
    """Columns compared in ``text``, in order, without duplicates.

    With ``qualifier``, a qualified column must be qualified by it (``o.x`` for
    ``o``); unqualified columns always count.
    """
    if not text:
        return []
    found: list[str] = []
    for match in _COLUMN.finditer(_clean(text)):
        col = match["col"]
        quals = [q for q in match["qual"].split(".") if q]
        if col.lower() in _KEYWORDS or col.startswith("$"):
            continue
        if qualifier and quals and quals[-1].lower() != qualifier.lower():
            continue
        if col not in found:
            found.append(col)
    return found


#: How well a B-tree index serves a comparison: equality first, then a range; a pattern
#: match (LIKE, ``~~``, a regular expression) only with a constant prefix and the right
#: operator class, which the plan's text does not show (asyncpg binds it as ``$2``).
_EQUALITY = re.compile(r"^(=|IN|IS)$", re.IGNORECASE)
_PATTERN = re.compile(r"^(!?~~\*?|!?~\*?|I?LIKE|NOT\s+I?LIKE)$", re.IGNORECASE)


def index_columns(text: str | None, qualifier: str | None = None) -> list[str]:
    """The columns of ``text`` in the order an index on them should take: those compared
    for equality, then by range; pattern matches are left out when any other column is
    compared (an index leading with them serves nothing)."""
    if not text:
        return []
    rank: dict[str, int] = {}
    for match in _COLUMN.finditer(_clean(text)):
        col, quals = match["col"], [q for q in match["qual"].split(".") if q]
        if col.lower() in _KEYWORDS or col.startswith("$"):
            continue
        if qualifier and quals and quals[-1].lower() != qualifier.lower():
            continue
        op = match.group(0)[len(match["qual"]) + len(col) :].strip(") \t\n")
        level = 0 if _EQUALITY.match(op) else 2 if _PATTERN.match(op) else 1
        rank[col] = min(level, rank.get(col, level))
    ordered = sorted(rank, key=lambda c: rank[c])  # stable: appearance within a level
    indexable = [c for c in ordered if rank[c] < 2]
    return indexable or ordered


_WHERE = re.compile(
    r"\bWHERE\b(?P<body>.*?)(?=\bGROUP\s+BY\b|\bORDER\s+BY\b|\bLIMIT\b|\bHAVING\b|\bWINDOW\b|;|$)",
    re.IGNORECASE | re.DOTALL,
)


def where_columns(query: str | None, table: str | None = None) -> list[str]:
    """Columns compared in the WHERE clauses of ``query`` (for SQLite, whose plan has no filter)."""
    if not query:
        return []
    found: list[str] = []
    for match in _WHERE.finditer(query):
        for col in filter_columns(match["body"], table):
            if col not in found:
                found.append(col)
    return found


_FINAL_LIMIT = re.compile(
    r"\bLIMIT\s+(?:\d+|\?|\*\*\*)(?:\s*(?:,|\bOFFSET\b)\s*(?:\d+|\?|\*\*\*))?\s*;?\s*$",
    re.IGNORECASE,
)


def has_final_limit(query: str | None) -> bool:
    """Whether ``query`` ends in a LIMIT outside any parentheses: the outer query's.

    MariaDB's and MySQL's classic JSON plans have no node for a LIMIT, so a scan that
    stopped after ten rows of a ``… ORDER BY id DESC LIMIT 10`` shows the whole table as its
    estimate; the statement says why.

    >>> has_final_limit("SELECT id FROM orders ORDER BY id DESC LIMIT 10")
    True
    >>> has_final_limit("SELECT * FROM (SELECT id FROM orders LIMIT 10) t")
    False
    """
    if not query:
        return False
    match = _FINAL_LIMIT.search(query)
    if match is None:
        return False
    before = query[: match.start()]
    return before.count("(") == before.count(")")


#: sqlglot's name for each plan source's SQL
_DIALECTS = {"mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite", "postgresql": "postgres"}


def table_of(name: str | None, query: str | None, source: str | None = None) -> str | None:
    """The table ``name`` stands for in ``query``: MySQL's and MariaDB's plans name a
    table by its alias (an ORM's ``FROM `orders` AS `Order```), which no index can be
    created on. ``name`` itself when the query does not alias it or does not parse.

    >>> table_of("Order", "SELECT `Order`.`id` FROM `orders` AS `Order` WHERE `Order`.`x` = 1")
    'orders'
    >>> table_of("o", "SELECT * FROM shop.orders o WHERE o.x = 1", "postgresql")
    'shop.orders'
    >>> table_of("orders", "not sql (")
    'orders'
    """
    if not name or not query:
        return name
    from sqlglot import exp, parse_one
    from sqlglot.errors import SqlglotError

    try:
        tree = parse_one(query, read=_DIALECTS.get(source or "", "mysql"))
    except (SqlglotError, ValueError, RecursionError):
        return name
    for table in tree.find_all(exp.Table) if tree is not None else ():
        if table.alias and table.alias == name and table.name:
            return f"{table.db}.{table.name}" if table.db else table.name
    return name


def create_index(table: str, columns: list[str], source: str | None = None) -> str:
    """The statement that creates an index on ``columns`` of ``table``, as ``source``'s
    server takes it: PostgreSQL names it itself; MySQL, MariaDB and SQLite need a name.

    >>> create_index("orders", ["customer_id", "status"])
    'CREATE INDEX ON orders (customer_id, status)'
    >>> create_index("shop.orders", ["customer_id"], "mariadb")
    'CREATE INDEX orders_customer_id_idx ON shop.orders (customer_id)'
    """
    quote = "`" if source in ("mysql", "mariadb") else '"'
    cols = ", ".join(_identifier(c, quote) for c in columns)
    on = ".".join(_identifier(part, quote) for part in table.split("."))
    if source in (None, "postgresql"):
        return f"CREATE INDEX ON {on} ({cols})"
    stem = re.sub(r"[\W_]+", "_", "_".join([table.rsplit(".", 1)[-1], *columns])).strip("_")
    # a name, too: one starting with a digit or of other letters is quoted
    return f"CREATE INDEX {_identifier(stem[:60] + '_idx', quote)} ON {on} ({cols})"


def _identifier(name: str, quote: str) -> str:
    """``name`` as is when it is a plain identifier, else quoted (its quotes doubled): a
    name from a statement is the traced code's text, and the suggestion is meant to be run.

    >>> _identifier("orders", '"'), _identifier('x"; DROP TABLE y; --', '"')
    ('orders', '"x""; DROP TABLE y; --"')
    >>> _identifier("Order", "`"), _identifier("Orders", '"'), _identifier("Orders", "`")
    ('`Order`', '"Orders"', 'Orders')
    """
    # PostgreSQL folds an unquoted name to lower case: a capital needs quoting there
    plain = r"[a-z_][a-z0-9_$]*" if quote == '"' else r"[A-Za-z_][A-Za-z0-9_$]*"
    if re.fullmatch(plain, name) and name.upper() not in _RESERVED:
        return name
    return quote + name.replace(quote, quote * 2) + quote


#: words that name tables and columns in real schemas but are reserved in SQL
_RESERVED = frozenset(
    {"ORDER", "GROUP", "USER", "KEY", "INDEX", "TABLE", "SELECT", "FROM", "WHERE", "LIMIT",
     "CHECK", "DEFAULT", "DESC", "RANGE", "ROWS", "OFFSET", "END", "TO", "ALL", "ANALYSE"}
)  # fmt: skip
