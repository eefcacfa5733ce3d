"""PostgreSQL server logs: find the plans auto_explain wrote in them.

Sources: PostgreSQL's docs, "auto_explain" (https://www.postgresql.org/docs/current/auto-explain.html)
and "Error Reporting and Logging" (https://www.postgresql.org/docs/current/runtime-config-logging.html).

With ``auto_explain.log_format = json`` each logged plan is one log message
``duration: 0.043 ms  plan:\\n{ "Query Text": …, "Plan": … }``. The three log
destinations frame that message differently:

* ``pg-stderr``: a line ``<log_line_prefix>LOG:  duration: … ms  plan:``, then
  the JSON, each line of it after a tab (how PostgreSQL continues a message);
* ``pg-csvlog``: the message is the 14th CSV column, newlines inside quotes;
* ``pg-jsonlog``: one JSON object per line, the message in ``"message"``.

Everything else in a log (connections, errors, ``statement:`` lines) is not a
plan and is passed over without a word. A plan message whose JSON is cut short
or broken becomes a :class:`LoggedPlan` with ``problem`` set, so it is counted
and reported as ``FILE:LINE: reason``.

>>> text = (
...     "2026-11-25 12:29:09.738 UTC [11522] postgres@test LOG:  duration: 0.043 ms  plan:\\n"
...     '\\t{"Query Text": "select 1", "Plan": {"Node Type": "Result"}}\\n'
...     "2026-11-25 12:29:09.864 UTC [11524] postgres@test ERROR:  relation does not exist\\n"
... )
>>> [(p.line, p.duration_ms, p.logged_at, p.text[:14]) for p in stderr_plans(text.splitlines())]
[(1, 0.043, '2026-11-25 12:29:09.738 UTC', '{"Query Text":')]
"""

from __future__ import annotations

import csv
import io
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from correlate.errors import InputError
from correlate.fileio import open_bytes
from correlate.inputs import Head, PlanFormat
from correlate.plans.load import PlanItem

__all__ = [
    "LOG_FORMATS",
    "LoggedPlan",
    "csvlog_plans",
    "detect_log",
    "jsonlog_plans",
    "log_items",
    "read_log",
    "stderr_plans",
]

TEXT_FORMAT_HINT = (
    "auto_explain wrote this plan as text; set auto_explain.log_format = json "
    "so correlate can read it"
)


@dataclass(frozen=True)
class LoggedPlan:
    """One auto_explain message: where it starts, its duration and the plan's JSON text."""

    line: int
    duration_ms: float
    text: str
    logged_at: str | None = None
    #: why this plan cannot be read (cut short, broken, text format); None when it can
    problem: str | None = None


_DURATION = r"duration: (?P<ms>\d+(?:\.\d+)?) ms  plan:"
_MESSAGE = re.compile(_DURATION + r"\n?(?P<body>.*)\Z", re.S)
_SEVERITY = r"(?:LOG|INFO|NOTICE|WARNING|DEBUG[1-5]?)"
_STDERR_PLAN = re.compile(r"^(?P<prefix>.*?)\b" + _SEVERITY + ":  " + _DURATION + r"\s*$")
_TIMESTAMP = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?(?: [A-Za-z]+|[+-]\d\d(?::?\d\d)?)?"
)
# A stderr line that starts a message: "<prefix>SEVERITY:  text"
_STDERR_MESSAGE = re.compile(
    r"\b(?:LOG|ERROR|FATAL|PANIC|WARNING|NOTICE|INFO|DEBUG[1-5]?|STATEMENT|DETAIL|HINT|CONTEXT):  "
)
# csvlog's first column, log_time: PostgreSQL writes it bare, but a CSV writer that
# quotes every field (a copy through a spreadsheet, COPY ... CSV FORCE QUOTE *,
# log shippers) puts it in quotes; both are CSV of the same columns.
_CSV_START = re.compile(r'^("?)\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [^,\n"]*\1,')
_CSV_SEVERITY = re.compile(
    r',("?)(?:LOG|ERROR|FATAL|PANIC|WARNING|NOTICE|INFO|DEBUG[1-5]?)\1,("?)[0-9A-Z]{5}\2,'
)
_CSV_MESSAGE_COLUMN = 13


def detect_log(head: str) -> str | None:
    """Which PostgreSQL log format ``head`` (a file's first characters) is in, or None.

    >>> detect_log('{"timestamp":"2026-11-25 12:29:07.186 UTC","pid":1,"error_severity":"LOG","message":"x"}')
    'pg-jsonlog'
    >>> detect_log('2026-11-25 12:29:07.186 UTC,,,11467,,6b06d493.2ccb,1,,2026-11-25 12:29:07 UTC,,0,LOG,00000,"x",,,,,,,,,"","postmaster",,0')
    'pg-csvlog'
    >>> detect_log("2026-11-25 12:29:07.186 UTC [11467] LOG:  starting PostgreSQL 15.20")
    'pg-stderr'
    >>> detect_log('{"resourceSpans": []}') is None
    True
    """
    text = head.lstrip("\ufeff")
    first = text.split("\n", 1)[0].rstrip("\r")
    if first.startswith("{"):
        try:
            record = json.loads(first)
        except (ValueError, RecursionError):
            # a first line longer than the head, or nested too deeply to decode:
            # PostgreSQL writes "timestamp" first
            if not re.match(r'\{\s*"timestamp"\s*:', first):
                return None
            keys = set(re.findall(r'"(\w+)"\s*:', first[:2000]))
        else:
            keys = set(record) if isinstance(record, dict) else set()
        if {"timestamp", "error_severity", "message"} <= keys:
            return "pg-jsonlog"
        return None
    if first.startswith("["):
        return None
    if _CSV_START.match(first) and _CSV_SEVERITY.search(first):
        return "pg-csvlog"
    lines = [line for line in text.split("\n")[:50] if line.strip()]
    starts = sum(1 for line in lines if _STDERR_MESSAGE.search(line))
    if starts and starts >= len([line for line in lines if not line.startswith("\t")]) // 2:
        return "pg-stderr"
    return None


def _from_message(line: int, message: str, logged_at: str | None) -> LoggedPlan | None:
    """The plan in one log message, or None when the message is not an auto_explain plan."""
    if not message.startswith("duration: "):
        return None
    match = _MESSAGE.match(message)
    if match is None:
        return None
    return _checked(line, float(match["ms"]), match["body"], logged_at)


def _checked(line: int, ms: float, body: str, logged_at: str | None) -> LoggedPlan:
    body = body.strip()
    problem = None
    if not body.startswith(("{", "[")):
        problem = (
            TEXT_FORMAT_HINT
            if body.startswith(("Query Text:", "Query Identifier:"))
            else f"auto_explain message without a JSON plan (starts {body[:30]!r})"
        )
    return LoggedPlan(line, ms, body, logged_at, problem)


def stderr_plans(lines: Iterable[str]) -> Iterator[LoggedPlan]:
    """Plans in stderr log lines (without their newlines); line numbers count from 1."""
    pending: tuple[int, float, str | None, list[str]] | None = None
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r")
        if pending is not None:
            if line.startswith("\t"):
                pending[3].append(line[1:])
                continue
            yield _checked(pending[0], pending[1], "\n".join(pending[3]), pending[2])
            pending = None
        match = _STDERR_PLAN.match(line)
        if match is not None:
            stamp = _TIMESTAMP.match(match["prefix"])
            pending = (number, float(match["ms"]), stamp.group(0) if stamp else None, [])
    if pending is not None:
        yield _checked(pending[0], pending[1], "\n".join(pending[3]), pending[2])


def csvlog_plans(stream: io.TextIOBase) -> Iterator[LoggedPlan]:
    """Plans in a csvlog stream (opened with ``newline=''``)."""
    # A plan message is often longer than the csv module's default field limit (128 KiB).
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
    reader = csv.reader(stream)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(f"not csvlog: {exc}", None, start) from None
        if len(row) > _CSV_MESSAGE_COLUMN:
            message = row[_CSV_MESSAGE_COLUMN]
            if message.startswith("duration: "):
                plan = _from_message(start, message, row[0] or None)
                if plan is not None:
                    if not _record_complete(row):
                        plan = _cut_short(plan)
                    yield plan
        start = reader.line_num + 1


def _record_complete(row: list[str]) -> bool:
    # PG15 writes 26 columns (PG13/14: 24/25); a record cut inside the message has 14
    return len(row) >= 23


def _cut_short(plan: LoggedPlan) -> LoggedPlan:
    return LoggedPlan(
        plan.line,
        plan.duration_ms,
        plan.text,
        plan.logged_at,
        plan.problem or "the log record is cut short (was the server still writing it?)",
    )


# The marker of an auto_explain message as it appears inside a jsonlog line.
_JSONLOG_MARK = re.compile(r'"message"\s*:\s*"duration: ([0-9.]+) ms  plan:\\n')


def jsonlog_plans(lines: Iterable[str]) -> Iterator[LoggedPlan]:
    """Plans in jsonlog lines; only lines that hold an auto_explain message are decoded."""
    for number, line in enumerate(lines, start=1):
        if "  plan:" not in line or _JSONLOG_MARK.search(line) is None:
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            match = _JSONLOG_MARK.search(line)
            assert match is not None
            yield LoggedPlan(
                number,
                float(match.group(1)),
                line,
                None,
                "the log line is cut short or is not valid JSON (was the server still writing it?)",
            )
            continue
        if not isinstance(record, dict) or not isinstance(record.get("message"), str):
            continue
        stamp = record.get("timestamp")
        plan = _from_message(number, record["message"], stamp if isinstance(stamp, str) else None)
        if plan is not None:
            yield plan


def read_log(path: Path, kind: str) -> Iterator[LoggedPlan]:
    """The plans in the log file ``path`` (compressed or not) of format ``kind`` (:data:`LOG_FORMATS`)."""
    names = [f.name for f in LOG_FORMATS]
    if kind not in names:
        raise InputError(f"unknown log format {kind!r}; use one of {', '.join(names)}")
    _refuse_other_files(path, kind)
    try:
        stream = open_bytes(path)
    except OSError as exc:
        raise InputError(f"cannot read: {exc}", path) from None
    with io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="") as text:
        try:
            if kind == "pg-csvlog":
                yield from csvlog_plans(text)
            else:
                lines = (line.rstrip("\n") for line in text)
                yield from (stderr_plans if kind == "pg-stderr" else jsonlog_plans)(lines)
        except InputError as exc:
            raise InputError(exc.reason, path, exc.line) from None
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"compressed stream is damaged or cut short ({exc})", path) from None


def _refuse_other_files(path: Path, kind: str) -> None:
    """:class:`InputError` when not one line at the start of ``path`` is a ``kind`` log line.

    A log holds many lines that are not plans, passed over without a word; a file
    with no line of the log's own kind at all is another file (``--format`` forced
    on it), not a log without plans.
    """
    head = Head.of(path)
    if head.empty:
        return
    lines = head.text.split("\n")[:200] if head.text_like else []
    looks = {
        "pg-csvlog": lambda line: bool(_CSV_START.match(line) and _CSV_SEVERITY.search(line)),
        "pg-jsonlog": lambda line: line.startswith("{") and '"error_severity"' in line,
        "pg-stderr": lambda line: _STDERR_MESSAGE.search(line) is not None,
    }[kind]
    if not any(looks(line.lstrip("\ufeff")) for line in lines):
        raise InputError(
            f"not a PostgreSQL {kind.removeprefix('pg-')} log: no line at its start is one; "
            "leave --format out to detect the file's format",
            path,
        )


def log_items(kind: str) -> Callable[[Path], Iterator[PlanItem]]:
    """The reader of log format ``kind`` for ingest: each logged plan as a :class:`PlanItem`."""

    def items(path: Path) -> Iterator[PlanItem]:
        for p in read_log(path, kind):
            yield PlanItem(p.line, p.text, None, p.duration_ms, p.logged_at, p.problem)

    return items


def _log_kind(head: Head) -> str | None:
    return detect_log(head.text) if head.text_like else None


def _sniff(kind: str) -> Callable[[Head], bool]:
    return lambda head: head.once(_log_kind) == kind


#: The log formats.
LOG_FORMATS: tuple[PlanFormat, ...] = tuple(
    PlanFormat(
        name=name,
        help=help_,
        sniff=_sniff(name),
        items=log_items(name),
        method="auto_explain",
    )
    for name, help_ in (
        (
            "pg-stderr",
            "PostgreSQL stderr log (log_destination = 'stderr') with auto_explain JSON plans",
        ),
        (
            "pg-csvlog",
            "PostgreSQL csvlog (log_destination = 'csvlog') with auto_explain JSON plans",
        ),
        (
            "pg-jsonlog",
            "PostgreSQL jsonlog (log_destination = 'jsonlog', PG15+) with auto_explain JSON plans",
        ),
    )
)
