"""Locust results: the ``--csv PREFIX`` set and ``--json`` output.

Formats: Locust's docs, "Retrieve test statistics in CSV format"
(https://docs.locust.io/en/stable/retrieving-stats.html). What goes where (``tool`` is
``locust``; a row for the whole run has ``method`` and ``name`` NULL, where
Locust writes ``Aggregated``):

* ``PREFIX_stats_history.csv``: a ``load_samples`` row per line — the
  ``Timestamp`` (Unix seconds), ``User Count``, ``Requests/s`` and
  ``Failures/s`` of the run or of one endpoint (``--csv-full-history``).
* ``PREFIX_stats.csv``: ``load_summary`` rows per endpoint: metric
  ``requests`` (stats ``count``, ``failures``, ``rate`` = Requests/s,
  ``failure_rate`` = Failures/s), ``response_time_ms`` (``med``, ``avg``,
  ``min``, ``max`` and each percentile column as ``p(95)``…, named as k6
  names them) and ``content_size_bytes`` (``avg``). ``N/A`` gives no row.
* ``--json`` output: the same per endpoint — ``requests`` ``count``,
  ``failures``, ``none``; ``response_time_ms`` ``avg``, ``min``, ``max``;
  ``content_size_bytes`` ``total``; ``time_unix_s`` ``first``, ``last``.
* ``PREFIX_failures.csv``: a ``load_failures`` row per endpoint and error,
  with its count and first and last time seen (older Locust versions write
  no times: NULL).
* ``PREFIX_exceptions.csv``: a ``load_failures`` row per exception message,
  with its traceback (a quoted field over many lines) and ``nodes``.

A line with a field that does not fit (a count that is not an integer, a time
that is not one) is a problem with its line number, never a partial row.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from correlate.errors import InputError
from correlate.fileio import json_error, read_all
from correlate.ingest.loadrows import (
    CUT_SHORT,
    csv_batches,
    define_time_macros,
    register_batch,
)
from correlate.inputs import Head, LoadFormat

if TYPE_CHECKING:
    from correlate.store import Store

Problems = list[tuple[int | None, str]]

_ENDPOINT = """
    CASE WHEN coalesce("Type", '') = '' AND "Name" = 'Aggregated' THEN NULL
         ELSE nullif("Type", '') END AS method,
    CASE WHEN coalesce("Type", '') = '' AND "Name" = 'Aggregated' THEN NULL
         ELSE "Name" END AS name
"""


def _problems(con: Any, table: str) -> Problems:
    rows = con.execute(
        f"SELECT line_no, problem FROM {table} WHERE problem IS NOT NULL ORDER BY line_no"
    ).fetchall()
    return [(int(line), str(reason)) for line, reason in rows]


def _each_batch(
    store: Store,
    path: Path,
    names: tuple[str, ...] | None,
    check_sql: str | Callable[[dict[str, list[str | None]]], str],
    insert_sql: str,
    params: dict[str, Any],
    *,
    required: tuple[str, ...] = (),
    what: str = "a Locust CSV file",
) -> tuple[int, Problems]:
    """Per batch: ``check_sql`` (a SELECT over ``_locust_csv``, or a function of the
    batch's columns giving one) into ``_locust_checked``, then ``insert_sql`` from it."""
    con = store.con
    define_time_macros(con)
    added = 0
    problems: Problems = []
    for batch in csv_batches(path, names, required=required, what=what):
        problems.extend(batch.bad)
        # Judged from the header even without rows: another format's file of one line
        # would otherwise be read as a Locust file of no rows.
        select = check_sql(batch.columns) if callable(check_sql) else check_sql
        if not batch.size:
            continue
        register_batch(con, "_locust_csv", batch)
        try:
            con.execute("CREATE OR REPLACE TEMP TABLE _locust_checked AS " + select)
        finally:
            con.unregister("_locust_csv")
        row = con.execute(insert_sql, params).fetchone()
        added += int(row[0]) if row else 0
        problems.extend(_problems(con, "_locust_checked"))
        con.execute("DROP TABLE _locust_checked")
    problems.sort(key=lambda p: (p[0] is None, p[0] or 0))
    return added, problems


def _number_problem(column: str, type_: str, what: str) -> str:
    return (
        f'WHEN TRY_CAST(trim("{column}") AS {type_}) IS NULL '
        + ("" if type_ != "DOUBLE" else f'OR NOT isfinite(TRY_CAST(trim("{column}") AS DOUBLE)) ')
        + f"THEN '{column} is not {what}: ' || left(coalesce(\"{column}\", 'missing'), 60)"
    )


# -- stats history ---------------------------------------------------------------------

HISTORY_COLUMNS = ("Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s")


def load_history(store: Store, run_id: int, file_id: int, path: Path) -> tuple[int, Problems]:
    """``PREFIX_stats_history.csv`` into ``load_samples``."""
    check = f"""
        SELECT line_no, {_ENDPOINT},
               try(TRY_CAST(trim("Timestamp") AS BIGINT) * 1000000000) AS time_ns,
               TRY_CAST(trim("User Count") AS INTEGER) AS users,
               TRY_CAST(trim("Requests/s") AS DOUBLE) AS rps,
               TRY_CAST(trim("Failures/s") AS DOUBLE) AS fps,
               CASE
                   WHEN "Name" IS NULL OR "Name" = '' THEN 'Name is empty'
                   WHEN try(TRY_CAST(trim("Timestamp") AS BIGINT) * 1000000000) IS NULL
                   THEN 'Timestamp is not Unix seconds: ' || left(coalesce("Timestamp", 'missing'), 60)
                   {_number_problem("User Count", "INTEGER", "a count")}
                   WHEN TRY_CAST(trim("User Count") AS INTEGER) < 0
                   THEN 'User Count is negative: ' || "User Count"
                   {_number_problem("Requests/s", "DOUBLE", "a number")}
                   {_number_problem("Failures/s", "DOUBLE", "a number")}
               END AS problem
        FROM _locust_csv
    """
    insert = """
        INSERT INTO load_samples
            (run_id, file_id, tool, time_unix_nano, users, requests_per_s, failures_per_s, method, name)
        SELECT $run, $file, 'locust', time_ns, users, rps, fps, method, name
        FROM _locust_checked WHERE problem IS NULL ORDER BY line_no
    """
    return _each_batch(
        store,
        path,
        HISTORY_COLUMNS,
        check,
        insert,
        {"run": run_id, "file": file_id},
        # without any of these every record would be a problem
        required=("Timestamp", "User Count", "Name", "Requests/s", "Failures/s"),
        what="Locust's PREFIX_stats_history.csv",
    )


# -- stats -----------------------------------------------------------------------------

#: Column of PREFIX_stats.csv → (metric, stat). Percentile columns (``95%``) are added by name.
STATS_COLUMNS: dict[str, tuple[str, str]] = {
    "Request Count": ("requests", "count"),
    "Failure Count": ("requests", "failures"),
    "Requests/s": ("requests", "rate"),
    "Failures/s": ("requests", "failure_rate"),
    "Median Response Time": ("response_time_ms", "med"),
    "Average Response Time": ("response_time_ms", "avg"),
    "Min Response Time": ("response_time_ms", "min"),
    "Max Response Time": ("response_time_ms", "max"),
    "Average Content Size": ("content_size_bytes", "avg"),
}
_PERCENT = re.compile(r"([0-9]+(?:\.[0-9]+)?)%")


def _stat_of(column: str) -> tuple[str, str] | None:
    if column in STATS_COLUMNS:
        return STATS_COLUMNS[column]
    m = _PERCENT.fullmatch(column)
    return ("response_time_ms", f"p({m.group(1)})") if m else None


def load_stats(store: Store, run_id: int, file_id: int, path: Path) -> tuple[int, Problems]:
    """``PREFIX_stats.csv`` into ``load_summary``, one row per endpoint and statistic."""

    def check(columns: dict[str, list[str | None]]) -> str:
        # Only known names reach the SQL: the header's other columns are never quoted into it.
        known = [(c, stat) for c in columns if c != "line_no" and (stat := _stat_of(c))]
        if "Timestamp" in columns:  # its percentiles and Requests/s would pass for a summary
            raise InputError(
                "this is Locust's PREFIX_stats_history.csv (it has a Timestamp column), not "
                "PREFIX_stats.csv; pass --format locust-history or leave --format out",
                path,
                1,
            )
        if "Name" not in columns or not known:
            header = ", ".join(c for c in columns if c != "line_no")[:120]
            raise InputError(
                f"not Locust's PREFIX_stats.csv (columns: {header}); it needs Name and "
                "statistic columns such as Request Count or 95%; pass another --format "
                "or leave --format out to detect it",
                path,
                1,
            )
        bad = " ".join(
            f"WHEN \"{c}\" IS NOT NULL AND trim(\"{c}\") NOT IN ('', 'N/A') "
            f'AND NOT coalesce(isfinite(TRY_CAST(trim("{c}") AS DOUBLE)), false) '
            f"THEN '{c} is not a number: ' || left(\"{c}\", 60)"
            for c, _ in known
        )
        structs = ", ".join(
            f"{{'metric': '{metric}', 'stat': '{stat}', 'raw': \"{c}\"}}"
            for c, (metric, stat) in known
        )
        stats = (
            f"[{structs}]" if structs else "[]::STRUCT(metric VARCHAR, stat VARCHAR, raw VARCHAR)[]"
        )
        return f"""
            SELECT line_no, {_ENDPOINT}, {stats} AS stats,
                   CASE WHEN "Name" IS NULL OR "Name" = '' THEN 'Name is empty' {bad} END AS problem
            FROM _locust_csv
        """

    insert = """
        INSERT INTO load_summary (run_id, file_id, tool, metric, method, name, stat, value)
        SELECT $run, $file, 'locust', s.metric, method, name, s.stat, CAST(trim(s.raw) AS DOUBLE)
        FROM (SELECT line_no, method, name, unnest(stats) AS s FROM _locust_checked
              WHERE problem IS NULL)
        WHERE s.raw IS NOT NULL AND trim(s.raw) NOT IN ('', 'N/A')
        ORDER BY line_no
    """
    return _each_batch(store, path, None, check, insert, {"run": run_id, "file": file_id})


# -- failures and exceptions -------------------------------------------------------------

FAILURE_COLUMNS = ("Method", "Name", "Error", "Occurrences", "First Seen", "Last Seen")


def load_failures(store: Store, run_id: int, file_id: int, path: Path) -> tuple[int, Problems]:
    """``PREFIX_failures.csv`` into ``load_failures``."""
    check = f"""
        SELECT line_no, nullif("Method", '') AS method, nullif("Name", '') AS name, "Error" AS error,
               TRY_CAST(trim("Occurrences") AS BIGINT) AS occurrences,
               correlate_rfc3339_ns(trim("First Seen")) AS first_ns,
               correlate_rfc3339_ns(trim("Last Seen")) AS last_ns,
               CASE
                   WHEN "Error" IS NULL OR "Error" = '' THEN 'Error is empty'
                   {_number_problem("Occurrences", "BIGINT", "a count")}
                   WHEN coalesce("First Seen", '') <> '' AND correlate_rfc3339_ns(trim("First Seen")) IS NULL
                   THEN 'First Seen is not an ISO time: ' || left("First Seen", 60)
                   WHEN coalesce("Last Seen", '') <> '' AND correlate_rfc3339_ns(trim("Last Seen")) IS NULL
                   THEN 'Last Seen is not an ISO time: ' || left("Last Seen", 60)
               END AS problem
        FROM _locust_csv
    """
    insert = """
        INSERT INTO load_failures (run_id, file_id, tool, method, name, error, occurrences,
                                   first_seen_unix_nano, last_seen_unix_nano)
        SELECT $run, $file, 'locust', method, name, error, occurrences, first_ns, last_ns
        FROM _locust_checked WHERE problem IS NULL ORDER BY line_no
    """
    return _each_batch(
        store,
        path,
        FAILURE_COLUMNS,
        check,
        insert,
        {"run": run_id, "file": file_id},
        required=("Error", "Occurrences"),
        what="Locust's PREFIX_failures.csv",
    )


EXCEPTION_COLUMNS = ("Count", "Message", "Traceback", "Nodes")


def load_exceptions(store: Store, run_id: int, file_id: int, path: Path) -> tuple[int, Problems]:
    """``PREFIX_exceptions.csv`` into ``load_failures`` (method and name NULL)."""
    check = f"""
        SELECT line_no, "Message" AS error, TRY_CAST(trim("Count") AS BIGINT) AS occurrences,
               nullif("Traceback", '') AS traceback, nullif("Nodes", '') AS nodes,
               CASE
                   WHEN "Message" IS NULL THEN 'Message is missing'
                   {_number_problem("Count", "BIGINT", "a count")}
               END AS problem
        FROM _locust_csv
    """
    insert = """
        INSERT INTO load_failures (run_id, file_id, tool, error, occurrences, traceback, nodes)
        SELECT $run, $file, 'locust', error, occurrences, traceback, nodes
        FROM _locust_checked WHERE problem IS NULL ORDER BY line_no
    """
    return _each_batch(
        store,
        path,
        EXCEPTION_COLUMNS,
        check,
        insert,
        {"run": run_id, "file": file_id},
        required=("Count", "Message"),
        what="Locust's PREFIX_exceptions.csv",
    )


# -- --json ----------------------------------------------------------------------------

#: Field of a --json entry → (metric, stat).
JSON_FIELDS: dict[str, tuple[str, str]] = {
    "num_requests": ("requests", "count"),
    "num_failures": ("requests", "failures"),
    "num_none_requests": ("requests", "none"),
    "min_response_time": ("response_time_ms", "min"),
    "max_response_time": ("response_time_ms", "max"),
    "total_content_length": ("content_size_bytes", "total"),
    "start_time": ("time_unix_s", "first"),
    "last_request_timestamp": ("time_unix_s", "last"),
}


def load_json(store: Store, run_id: int, file_id: int, path: Path) -> tuple[int, Problems]:
    """Locust ``--json`` output (a list of per-endpoint objects) into ``load_summary``, and
    its requests and failures per second into ``load_samples`` (one row per endpoint and
    second; users are not in this output)."""
    data = read_all(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return 0, [(data.count(b"\n", 0, exc.start) + 1, "not UTF-8 text")]
    error = json_error(text)
    if error is not None:
        cut = not text.rstrip(" \t").endswith("\n") and "Expecting" in error[1]
        return 0, [(error[0], CUT_SHORT if cut else error[1])]
    doc = json.loads(text)
    if not isinstance(doc, list):
        return 0, [(1, "not Locust --json output: not a list of endpoints")]
    rows: list[tuple[str, str | None, str, str, float]] = []
    samples: list[tuple[int, float, float, str | None, str]] = []
    problems: Problems = []
    for i, entry in enumerate(doc, start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            problems.append((None, f"entry {i}: not an endpoint object with a name"))
            continue
        if not any(f in entry for f in (*JSON_FIELDS, "total_response_time")):
            problems.append(
                (None, f"entry {i} ({entry['name']!r:.60}): none of Locust's statistics "
                 "(num_requests, …): not Locust --json output")
            )  # fmt: skip
            continue
        method = entry.get("method") if isinstance(entry.get("method"), str) else None
        found: list[tuple[str, str | None, str, str, float]] = []
        bad = [
            f for f in (*JSON_FIELDS, "total_response_time") if f in entry and not _number(entry[f])
        ]
        if bad:
            problems.append((None, f"entry {i} ({entry['name']!r:.60}): {bad[0]} is not a number"))
            continue
        for name, (metric, stat) in JSON_FIELDS.items():
            if entry.get(name) is not None:
                found.append((entry["name"], method, metric, stat, float(entry[name])))
        n = entry.get("num_requests")
        if _number(entry.get("total_response_time")) and _number(n) and n:
            found.append(
                (
                    entry["name"],
                    method,
                    "response_time_ms",
                    "avg",
                    float(entry["total_response_time"]) / n,
                )
            )
        rows.extend(found)
        per_second, bad_second = _per_second(entry)
        if bad_second:
            problems.append((None, f"entry {i} ({entry['name']!r:.60}): {bad_second}"))
        samples.extend((t, reqs, fails, method, entry["name"]) for t, reqs, fails in per_second)
    if rows:
        store.con.executemany(
            "INSERT INTO load_summary (run_id, file_id, tool, name, method, metric, stat, value) "
            "VALUES (?, ?, 'locust', ?, ?, ?, ?, ?)",
            [(run_id, file_id, *row) for row in rows],
        )
    if samples:
        store.con.executemany(
            "INSERT INTO load_samples (run_id, file_id, tool, time_unix_nano, requests_per_s, "
            "failures_per_s, method, name) VALUES (?, ?, 'locust', ?, ?, ?, ?, ?)",
            [(run_id, file_id, *sample) for sample in samples],
        )
    return len(rows) + len(samples), problems


def _per_second(entry: dict[str, Any]) -> tuple[list[tuple[int, float, float]], str | None]:
    """An endpoint's ``num_reqs_per_sec`` / ``num_fail_per_sec`` as (time ns, requests,
    failures) per second, or the reason they cannot be read."""
    reqs, fails = entry.get("num_reqs_per_sec"), entry.get("num_fail_per_sec") or {}
    if reqs is None:
        return [], None
    if not isinstance(reqs, dict) or not isinstance(fails, dict):
        return [], "num_reqs_per_sec is not an object of seconds"
    out = []
    for second, count in reqs.items():
        failed = fails.get(second, 0)
        if not str(second).isdigit() or not _number(count) or not _number(failed):
            return [], f"num_reqs_per_sec has {second!r}: {count!r}, not epoch seconds: a count"
        out.append((int(second) * 1_000_000_000, float(count), float(failed)))
    return sorted(out), None


def _number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and abs(value) < 1e308
    )


__all__ = ["load_exceptions", "load_failures", "load_history", "load_json", "load_stats"]


# -- telling the files apart -------------------------------------------------------


def _csv_header(start: str) -> Callable[[Head], bool]:
    """A sniffer for the CSV file whose header starts ``start``."""

    def sniff(head: Head) -> bool:
        return head.text_like and head.first_line.startswith(start)

    return sniff


def _sniff_json(head: Head) -> bool:
    text = head.stripped
    return (
        head.text_like
        and text.startswith("[")
        and '"num_requests"' in text
        and '"num_reqs_per_sec"' in text
    )


FORMATS = (
    LoadFormat(
        name="locust-history",
        help="Locust --csv PREFIX_stats_history.csv",
        sniff=_csv_header("Timestamp,User Count,Type,Name,"),
        load=load_history,
    ),
    LoadFormat(
        name="locust-stats",
        help="Locust --csv PREFIX_stats.csv",
        sniff=_csv_header("Type,Name,Request Count,Failure Count,"),
        load=load_stats,
    ),
    LoadFormat(
        name="locust-failures",
        help="Locust --csv PREFIX_failures.csv",
        sniff=_csv_header("Method,Name,Error,Occurrences"),
        load=load_failures,
    ),
    LoadFormat(
        name="locust-exceptions",
        help="Locust --csv PREFIX_exceptions.csv",
        sniff=_csv_header("Count,Message,Traceback,Nodes"),
        load=load_exceptions,
    ),
    LoadFormat(name="locust-json", help="Locust --json output", sniff=_sniff_json, load=load_json),
)
