"""Parse PostgreSQL, MySQL, MariaDB and SQLite plans into one :class:`Plan`.

``parse_plan`` takes what a driver or a log hands you: a JSON string (psql's
``QUERY PLAN`` box with ``+`` continuations and auto_explain's ``duration: …
plan:`` prefix are stripped), a decoded list/dict, or SQLite's ``EXPLAIN QUERY
PLAN`` rows. The source is detected by key:

* ``[{"Plan": …}]``, ``{"Plan": …}``, ``{"Query Text": …, "Plan": …}`` → PostgreSQL
* ``{"query_block": …}`` → MySQL format 1 when it has ``cost_info`` or
  ``rows_examined_per_scan``, else MariaDB (10.11 has neither)
* ``{"query_plan": …}`` / ``json_schema_version`` → MySQL format 2
* rows ``(id, parent, notused, detail)`` → SQLite

>>> plan = parse_plan('''QUERY PLAN
... ------------------------------------
...  [{"Plan": {"Node Type": "Seq Scan",+
...    "Relation Name": "orders",         +
...    "Filter": "(customer_id = 7)"}}]
... (1 row)''')
>>> plan.source, plan.root.operation, plan.root.filter
('postgresql', 'seq_scan', '(customer_id = 7)')
>>> parse_plan([(2, 0, 0, "SCAN orders")]).nodes[1].operation
'seq_scan'
>>> parse_plan({"nope": 1})
Traceback (most recent call last):
...
correlate.errors.InputError: not a plan: a dict with keys ['nope']; expected PostgreSQL ...
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from correlate.errors import InputError
from correlate.plans.model import SOURCES, Plan, finish
from correlate.plans.parse_mysql import _parse_mariadb, _parse_mysql2, _parse_mysql_either
from correlate.plans.parse_postgresql import PG_NODE_FIELDS, _parse_postgresql
from correlate.plans.parse_sqlite import _is_sqlite_row, _parse_sqlite, _resolve_sqlite_aliases
from correlate.plans.parse_values import has_key, snake

__all__ = ["PG_NODE_FIELDS", "parse_plan", "plan_json", "snake", "undecorated"]


def parse_plan(raw: Any, source: str | None = None, *, query: str | None = None) -> Plan:
    """Parse one plan; ``source`` forces the dialect, ``query`` sets the query text.

    Raises :class:`~correlate.errors.InputError` saying what is wrong when
    ``raw`` is not a plan this module knows.
    """
    if source is not None and source not in SOURCES:
        raise InputError(f"unknown plan source {source!r}; use one of {', '.join(SOURCES)}")
    data = raw
    if isinstance(data, bytes | bytearray):
        data = data.decode("utf-8", errors="replace")
    if isinstance(data, str):
        data = _loads(data)
    kind = source or _detect(data)
    parser = _PARSERS[kind]
    plan = parser(data, raw)
    if query is not None:
        plan.query_text = query
        if plan.source == "sqlite":
            _resolve_sqlite_aliases(plan, query)
    return finish(plan)


_NOISE = re.compile(
    r"^\s*(QUERY PLAN|EXPLAIN|ANALYZE|-+|\(\d+ rows?\)|Time: \d+(\.\d+)? ms( \(.*\))?"
    r"|\d+ rows? in set.*)\s*$"
)
#: A line of a table's frame: psql's ASCII (``+---+``) and unicode (``├───┤``) rules, mysql's.
_FRAME = re.compile(r"^[\s+\-=|─━│┃┌┐└┘├┤┬┴┼╔╗╚╝║═╠╣╦╩╬]*$")
#: The side borders of ``\pset border 2`` (ASCII or unicode) and of mysql's tables.
_BORDERS = "|│║┃"
#: psql's continuation marks: ``+`` (ASCII line style) and ``↵`` (unicode).
_CONTINUED = ("+", "\u21b5")
#: A client prompt before the output: ``mysql> EXPLAIN …``, ``MariaDB [shop]> …``, ``db=# …``.
_PROMPT = re.compile(r"^\s*(mysql|MariaDB \[[^\]]*\]|[\w-]+=[#>])>?\s")
#: MySQL's ``end_markers_in_json=on`` comments: ``} /* table */``, ``"cost_info": { /* … */``.
#: Only right after a bracket, so a statement's own comment inside a string stays.
_END_MARKER = re.compile(r"(?<=[{}\[\]])\s*/\* [\w#.$ -]+ \*/")


def undecorated(text: str) -> str:
    """Plan JSON without what psql or mysql printed around it.

    Titles, rules and the row count go, and so do ``\\pset border 2``'s side
    borders (ASCII or unicode), continuation marks (``+``, or ``↵`` with
    ``\\pset linestyle unicode``), a ``mysql>`` prompt line and MySQL's
    ``end_markers_in_json`` comments.

    >>> undecorated("│ [  ↵│\\n│ ]   │\\n(1 row)")
    '[\\n ]'
    """
    lines = []
    for line in text.splitlines():
        stripped = line.rstrip()
        # Side borders (psql's border 2, the mysql client's table): no JSON line
        # starts or ends with one.
        if stripped.lstrip()[:1] in _BORDERS:
            stripped = stripped.lstrip()[1:]
        if stripped[-1:] in _BORDERS:
            stripped = stripped[:-1].rstrip()
        if _NOISE.match(stripped) or _FRAME.match(stripped) or _PROMPT.match(stripped):
            continue
        if stripped.endswith(_CONTINUED):
            stripped = stripped[:-1].rstrip()
        lines.append(_END_MARKER.sub("", stripped))
    return "\n".join(lines).strip()


def _loads(text: str) -> Any:
    body = undecorated(text)
    if not body:
        raise InputError("not a plan: the text is empty")
    starts = [i for i in (body.find("["), body.find("{")) if i >= 0]
    if not starts:
        raise InputError(
            "not a plan: no JSON found in the text; pass EXPLAIN (FORMAT JSON) output, "
            "MySQL/MariaDB EXPLAIN FORMAT=JSON, or SQLite EXPLAIN QUERY PLAN rows"
        )
    start = min(starts)
    try:
        data, end = json.JSONDecoder().raw_decode(body, start)
    except json.JSONDecodeError as exc:
        raise InputError(f"not a plan: invalid JSON ({exc})") from None
    except RecursionError:
        raise InputError("not a plan: the JSON is nested too deeply to read") from None
    if body[end:].strip():
        raise InputError(f"not a plan: text after the JSON: {body[end:].strip()[:60]!r}")
    return data


def plan_json(text: str) -> Any:
    """Decode plan JSON from text as psql, mysql or auto_explain print it.

    >>> plan_json("QUERY PLAN\\n----\\n [{\\"Plan\\": {}}]+\\n(1 row)")
    [{'Plan': {}}]
    """
    return _loads(text)


def _detect(data: Any) -> str:
    if isinstance(data, Mapping):
        if "Plan" in data:
            return "postgresql"
        if "query_plan" in data or "json_schema_version" in data:
            return "mysql2"
        if "query_block" in data:
            return "mysql" if has_key(data, ("cost_info", "rows_examined_per_scan")) else "mariadb"
        raise InputError(
            f"not a plan: a dict with keys {sorted(data)[:8]}; expected PostgreSQL "
            '{"Plan": …}, MySQL/MariaDB {"query_block": …} or MySQL {"query_plan": …}'
        )
    if isinstance(data, Sequence) and not isinstance(data, str):
        if len(data) == 1 and isinstance(data[0], Mapping) and "Plan" in data[0]:
            return "postgresql"
        if data and all(isinstance(d, Mapping) and "Plan" in d for d in data):
            raise InputError(
                f"not one plan: a list of {len(data)} PostgreSQL plans; parse them one at a time"
            )
        if data and all(_is_sqlite_row(r) for r in data):
            return "sqlite"
        if not data:
            raise InputError("not a plan: an empty list")
        raise InputError(
            "not a plan: a list that is neither [{'Plan': …}] nor SQLite EXPLAIN QUERY PLAN "
            f"rows (id, parent, notused, detail); first item: {str(data[0])[:80]!r}"
        )
    raise InputError(f"not a plan: got {type(data).__name__}")


_PARSERS: dict[str, Callable[[Any, Any], Plan]] = {
    "postgresql": _parse_postgresql,
    "mysql": _parse_mysql_either,
    "mysql2": _parse_mysql2,
    "mariadb": _parse_mariadb,
    "sqlite": _parse_sqlite,
}
