"""Plan files: EXPLAIN output saved to a file, and the statement next to it.

Two kinds, detected from the content:

* ``pg-explain``: PostgreSQL ``EXPLAIN (FORMAT JSON)``, with or without
  ANALYZE/BUFFERS/VERBOSE/SETTINGS, bare (``[{"Plan": …}]``) or as psql prints
  it (the ``QUERY PLAN`` header, the ``----`` line, ``+`` at line ends and the
  ``(1 row)`` footer); also an auto_explain object ``{"Query Text": …, "Plan": …}``.
* ``mysql-explain``: MySQL/MariaDB ``EXPLAIN FORMAT=JSON`` or ``ANALYZE
  FORMAT=JSON`` (``{"query_block": …}``, MySQL's ``{"query_plan": …}``), bare or
  under the ``EXPLAIN``/``ANALYZE`` column title the mysql client prints.

The statement a plan is for comes from a ``.sql`` file with the same stem
(``q1.json`` + ``q1.sql``), else from the plan's own ``Query Text`` (auto_explain,
MySQL format 2's ``query``).

>>> plan_file_kind(' QUERY PLAN\\n------\\n [{"Plan": {"Node Type": "Result"}}]\\n(1 row)')
'pg-explain'
>>> plan_file_kind('EXPLAIN\\n{"query_block": {"select_id": 1}}')
'mysql-explain'
>>> plan_file_kind('{"resourceSpans": []}') is None
True
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from correlate.errors import InputError
from correlate.fileio import read_all, without_codec_suffix
from correlate.inputs import Head, PlanFormat
from correlate.plans.load import PlanItem
from correlate.plans.parse import plan_json, undecorated
from correlate.plans.pglog import LOG_FORMATS

__all__ = [
    "PLAN_FILE_FORMATS",
    "detect_plan_input",
    "plan_file_kind",
    "plan_items",
    "read_plan_file",
    "statement_file",
]

_TITLE = re.compile(r"^[\s|│]*QUERY PLAN[\s|│]*$", re.M)
_PG_START = re.compile(r'^\[?\s*\{\s*"(?:Plan|Query Text)"\s*:')
_MYSQL_START = re.compile(r'^\{\s*"(?:query_block|query_plan|query_optimization)"\s*:')


def _body(text: str) -> str:
    """The text without psql/mysql decoration: header lines and ``+`` continuation marks.

    What psql printed before the ``QUERY PLAN`` title (an echoed command with
    ``-e``, the ``SET`` of an earlier ``-c``) goes too, and ``\\timing``'s line.
    """
    text = text.lstrip("\ufeff")
    title = _TITLE.search(text[:4096])
    if title is not None:
        text = text[title.start() :]
    return undecorated(text)


def plan_file_kind(head: str) -> str | None:
    """``pg-explain``, ``mysql-explain``, or None when ``head`` does not start a plan."""
    body = _unescape_batch(_body(head))
    if _PG_START.match(body):
        return "pg-explain"
    if _MYSQL_START.match(body) or (
        re.match(r'^\{\s*"query"\s*:', body) and '"query_plan"' in body
    ):
        return "mysql-explain"
    return None


def detect_plan_input(path: Path) -> str | None:
    """The plan-file or PostgreSQL-log format of ``path`` (compressed or not), or None.

    One of :data:`PLAN_FILE_FORMATS` or :data:`correlate.plans.pglog.LOG_FORMATS`.
    """
    head = Head.of(path)
    formats = (*PLAN_FILE_FORMATS, *LOG_FORMATS)
    return next((f.name for f in formats if f.sniff is not None and f.sniff(head)), None)


def _unescape_batch(body: str) -> str:
    """``mysql -B`` writes a JSON cell on one line with ``\\n`` and ``\\t`` escaped."""
    if "\n" in body or "\\n" not in body or not body.startswith("{"):
        return body
    return re.sub(
        r"\\([nt\\0])", lambda m: {"n": "\n", "t": "\t", "\\": "\\", "0": "\0"}[m[1]], body
    )


def statement_file(path: Path) -> Path | None:
    """The ``.sql`` file next to plan file ``path`` with the same stem, if there is one.

    >>> statement_file(Path("plans/q1.json.gz")) is None  # no such file here
    True
    """
    name = without_codec_suffix(path.name)
    stem = name.rsplit(".", 1)[0] if "." in name else name
    candidate = path.with_name(stem + ".sql")
    return candidate if candidate.is_file() and candidate != path else None


def read_plan_file(path: Path) -> tuple[list[Any], str | None]:
    """The decoded plan(s) in ``path`` and the statement from its ``.sql`` file (or None).

    A PostgreSQL file may hold several plans (``[{"Plan": …}, {"Plan": …}]``);
    each is returned on its own. Raises :class:`InputError` when the file is not
    a plan.
    """
    data = read_all(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"not UTF-8 text (byte 0x{data[exc.start]:02x})", path, line) from None
    try:
        decoded = plan_json(_unescape_batch(_body(text)))
    except InputError as exc:
        raise InputError(exc.reason, path, 1) from None
    plans = (
        list(decoded)
        if isinstance(decoded, list)
        and len(decoded) > 1
        and all(isinstance(d, dict) for d in decoded)
        else [decoded]
    )
    sql_path = statement_file(path)
    statement = None
    if sql_path is not None:
        try:
            statement = sql_path.read_text(encoding="utf-8", errors="replace").strip() or None
        except OSError as exc:
            raise InputError(f"cannot read the statement file: {exc}", sql_path) from None
    return plans, statement


def plan_items(path: Path) -> list[PlanItem]:
    """The plans of plan file ``path``; a file that is no plan is one item with its problem."""
    try:
        plans, statement = read_plan_file(path)
    except InputError as exc:
        # a broken plan file is a skipped record, like a broken span line
        return [PlanItem(exc.line, None, problem=exc.reason)]
    return [PlanItem(1, plan, statement) for plan in plans]


def _plan_kind(head: Head) -> str | None:
    return plan_file_kind(head.text) if head.text_like else None


def _sniff(kind: str) -> Callable[[Head], bool]:
    return lambda head: head.once(_plan_kind) == kind


#: The plan-file formats.
PLAN_FILE_FORMATS: tuple[PlanFormat, ...] = (
    PlanFormat(
        name="pg-explain",
        help="PostgreSQL EXPLAIN (FORMAT JSON) output, bare or as psql prints it",
        sniff=_sniff("pg-explain"),
        items=plan_items,
        method="file",
    ),
    PlanFormat(
        name="mysql-explain",
        help="MySQL/MariaDB EXPLAIN FORMAT=JSON (or ANALYZE FORMAT=JSON) output",
        sniff=_sniff("mysql-explain"),
        items=plan_items,
        method="file",
    ),
)
