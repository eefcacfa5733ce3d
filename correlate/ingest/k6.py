"""k6 results: ``--out json`` (NDJSON, also gzipped), ``--out csv``, and the two summary JSONs.

Formats: k6's docs on results output (https://grafana.com/docs/k6/latest/results-output/:
real-time JSON and CSV, end-of-test summary). What goes where:

* Every ``http_req_duration`` point is one ``client_requests`` row. k6 stamps
  a request's points with the time it ended, so ``start_unix_nano`` is that
  time minus the duration. ``trace_id`` is the point's ``metadata.trace_id``
  when the script set one (32 hex digits), else NULL; ``span_id`` is NULL
  (k6 has no span of its own). ``name`` is the ``name`` tag (which defaults
  to the URL), ``path`` the ``url`` tag, both without scheme and host.
  ``status_code`` is the ``status`` tag, 0 when there was no response;
  ``ok`` is the ``expected_response`` tag, or else status 1–399; ``error``
  the ``error`` tag (or ``error_code`` when only that is set).
  ``response_bytes`` is 0: k6 counts bytes per iteration, not per request.
  ``user`` is the ``vu`` tag when k6 was told to keep it
  (``--system-tags …,vu``), else 0 (not known).
* Every ``vus`` point is one ``load_samples`` row (``users`` = VUs, the
  aggregate: ``name`` NULL). Requests per second are not stored: they
  follow from ``client_requests``.
* A summary (``--summary-export`` or ``handleSummary()``) gives a
  ``load_summary`` row per metric and statistic (``http_req_duration`` /
  ``p(95)``, times in ms as k6 gives them; for ``http_req_failed``, as k6
  has it, ``passes`` counts the *failed* requests), a row per check
  (``metric`` ``check``, ``name`` its path, ``passes``/``fails``), and a
  ``load_thresholds`` row per threshold. ``passed`` is true when the
  threshold held: ``--summary-export`` writes ``false`` for that (its
  boolean says "failed"), ``handleSummary()`` writes ``{"ok": true}``.

In CSV, times are whole seconds unless k6 was given another
``timeFormat``; every one it offers is read (integers in s, ms, µs or ns,
told apart by size; RFC 3339 with or without fractions). Other metrics'
points are read and checked but not kept: their values are in the summary.
Each line is a row, a line passed by, or a problem with its number.
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_left
from pathlib import Path
from typing import TYPE_CHECKING, Any

from correlate.fileio import iter_line_batches, json_error, read_all
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

#: The k6 CSV header, in order (k6 ``--out csv``).
CSV_COLUMNS = (
    "metric_name",
    "timestamp",
    "metric_value",
    "check",
    "error",
    "error_code",
    "expected_response",
    "group",
    "method",
    "name",
    "proto",
    "scenario",
    "service",
    "status",
    "subproto",
    "tls_version",
    "url",
    "extra_tags",
    "metadata",
)


def _strip_origin(expr: str) -> str:
    return f"regexp_replace({expr}, '^[A-Za-z][A-Za-z0-9+.-]*://[^/]*', '')"


def _load_points(store: Store, run_id: int, file_id: int, points: str) -> tuple[int, Problems]:
    """Check the normalised points relation and insert its requests and VU samples.

    ``points`` has line_no, shape_problem, metric, time_text, value_text,
    value (DOUBLE), method, name, url, status, expected_response, error,
    error_code, vu, trace_text — all text but line_no and value.
    """
    con = store.con
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _k6_checked AS
        WITH p AS (
            SELECT *, correlate_epoch_ns(time_text) AS time_ns,
                   try(CAST(round(value * 1e6) AS BIGINT)) AS duration_ns,
                   nullif(coalesce(nullif(name, ''), url), '') AS name_or_url
            FROM {points}
        )
        SELECT *, coalesce(shape_problem, CASE
            WHEN metric IS NULL OR metric = '' THEN 'a point without its metric name'
            WHEN time_text IS NULL OR time_text = '' THEN 'a point without its time'
            WHEN time_ns IS NULL THEN 'time is not a Unix time or RFC 3339 time: ' || left(time_text, 60)
            WHEN value IS NULL OR NOT isfinite(value)
            THEN 'value is not a number: ' || left(coalesce(value_text, 'null'), 60)
            WHEN metric = 'http_req_duration' AND value < 0
            THEN 'http_req_duration is negative: ' || left(value_text, 60)
            WHEN metric = 'http_req_duration' AND (duration_ns IS NULL OR try(time_ns - duration_ns) IS NULL)
            THEN 'http_req_duration is out of range: ' || left(value_text, 60)
            WHEN metric = 'http_req_duration' AND coalesce(method, '') = ''
            THEN 'an http_req_duration point without its method tag'
            WHEN metric = 'http_req_duration' AND name_or_url IS NULL
            THEN 'an http_req_duration point without its name or url tag'
            WHEN metric = 'vus' AND (value < 0 OR value <> floor(value) OR value > 2147483647)
            THEN 'vus is not a count: ' || left(value_text, 60)
        END) AS problem
        FROM p
        """
    )
    trace = "lower(trim(trace_text))"
    req = con.execute(
        f"""
        INSERT INTO client_requests
            (run_id, file_id, trace_id, span_id, method, name, path, start_unix_nano,
             duration_ns, status_code, ok, error, response_bytes, "user")
        SELECT $run, $file,
               CASE WHEN regexp_full_match({trace}, '[0-9a-f]{{32}}')
                     AND {trace} <> repeat('0', 32) THEN {trace} END,
               NULL, method,
               coalesce(nullif({_strip_origin("name_or_url")}, ''), '/'),
               coalesce(nullif({_strip_origin("coalesce(nullif(url, ''), name_or_url)")}, ''), '/'),
               time_ns - duration_ns, duration_ns,
               coalesce(TRY_CAST(status AS INTEGER), 0) AS status_code,
               CASE WHEN expected_response IN ('true', 'false') THEN expected_response = 'true'
                    ELSE status_code BETWEEN 1 AND 399 END,
               coalesce(nullif(error, ''), 'error_code ' || nullif(error_code, '')),
               0, coalesce(TRY_CAST(vu AS INTEGER), 0)
        FROM _k6_checked WHERE problem IS NULL AND metric = 'http_req_duration' ORDER BY line_no
        """,
        {"run": run_id, "file": file_id},
    ).fetchone()
    vus = con.execute(
        """
        INSERT INTO load_samples (run_id, file_id, tool, time_unix_nano, users)
        SELECT $run, $file, 'k6', time_ns, CAST(value AS INTEGER)
        FROM _k6_checked WHERE problem IS NULL AND metric = 'vus' ORDER BY line_no
        """,
        {"run": run_id, "file": file_id},
    ).fetchone()
    problems: Problems = [
        (int(line), str(reason))
        for line, reason in con.execute(
            "SELECT line_no, problem FROM _k6_checked WHERE problem IS NOT NULL ORDER BY line_no"
        ).fetchall()
    ]
    con.execute("DROP TABLE _k6_checked")
    return (int(req[0]) if req else 0) + (int(vus[0]) if vus else 0), problems


# -- --out json ------------------------------------------------------------------------

_JSON_POINTS = """
    SELECT line_no,
           CASE WHEN jtype IS DISTINCT FROM 'OBJECT'
                THEN 'not a JSON object but a JSON ' || lower(coalesce(jtype, 'value'))
                     || '; each line of k6 --out json is one Metric or Point object'
                WHEN kind = 'Metric' THEN NULL
                WHEN kind IS DISTINCT FROM 'Point'
                THEN 'not a k6 Metric or Point line (type: ' || left(coalesce(kind, 'missing'), 40) || ')'
           END AS shape_problem,
           kind, metric, time_text, value_text,
           CASE WHEN value_type IN ('BIGINT', 'UBIGINT', 'DOUBLE')
                THEN try(CAST(value_text AS DOUBLE)) END AS value,
           try(json_extract_string(tags, '$.method')) AS method,
           try(json_extract_string(tags, '$.name')) AS name,
           try(json_extract_string(tags, '$.url')) AS url,
           try(json_extract_string(tags, '$.status')) AS status,
           try(json_extract_string(tags, '$.expected_response')) AS expected_response,
           try(json_extract_string(tags, '$.error')) AS error,
           try(json_extract_string(tags, '$.error_code')) AS error_code,
           try(json_extract_string(tags, '$.vu')) AS vu,
           try(json_extract_string(data, '$.metadata.trace_id')) AS trace_text
    FROM (
        SELECT line_no, jtype, kind, metric, data,
               try(json_extract_string(data, '$.time')) AS time_text,
               try(json_type(data, '$.value')) AS value_type,
               try(json_extract_string(data, '$.value')) AS value_text,
               try(json_extract(data, '$.tags')) AS tags
        FROM (
            SELECT line_no, try(json_type(text)) AS jtype,
                   try(json_extract_string(text, '$.type')) AS kind,
                   try(json_extract_string(text, '$.metric')) AS metric,
                   try(json_extract(text, '$.data')) AS data
            FROM _k6_lines WHERE coalesce(try(json_valid(text)), false)
        )
    )
"""


def load_json(store: Store, run_id: int, file_id: int, path: Path) -> tuple[int, Problems]:
    """Read k6 ``--out json`` NDJSON (plain or gzipped)."""
    import pyarrow as pa

    con = store.con
    define_time_macros(con)
    added = 0
    problems: Problems = []
    for batch in iter_line_batches(path):
        problems.extend(batch.bad)
        if not batch.lines:
            continue
        con.register(
            "_k6_lines",
            pa.table(
                {
                    "line_no": pa.array(batch.numbers, pa.int64()),
                    "text": pa.array(batch.lines, pa.large_string()),
                }
            ),
        )
        try:
            invalid = con.execute(
                "SELECT line_no FROM _k6_lines WHERE NOT coalesce(try(json_valid(text)), false) "
                "ORDER BY line_no"
            ).fetchall()
            for (line,) in invalid:
                if line == batch.unterminated_line:
                    problems.append((line, CUT_SHORT))
                else:
                    error = json_error(batch.lines[bisect_left(batch.numbers, line)])
                    problems.append((line, error[1] if error else "not valid JSON"))
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _k6_points AS "
                f"SELECT * FROM ({_JSON_POINTS}) WHERE kind IS DISTINCT FROM 'Metric'"
            )
        finally:
            con.unregister("_k6_lines")
        n, found = _load_points(store, run_id, file_id, "_k6_points")
        con.execute("DROP TABLE _k6_points")
        added += n
        problems.extend(found)
    problems.sort(key=lambda p: (p[0] is None, p[0] or 0))
    return added, problems


# -- --out csv -------------------------------------------------------------------------


def load_csv(store: Store, run_id: int, file_id: int, path: Path) -> tuple[int, Problems]:
    """Read k6 ``--out csv``, whatever its ``timeFormat``."""
    con = store.con
    define_time_macros(con)
    added = 0
    problems: Problems = []
    required = ("metric_name", "timestamp", "metric_value")
    for batch in csv_batches(path, CSV_COLUMNS, required=required, what="k6's --out csv"):
        problems.extend(batch.bad)
        if not batch.size:
            continue
        register_batch(con, "_k6_csv", batch)
        try:
            con.execute(
                """
                CREATE OR REPLACE TEMP TABLE _k6_points AS
                SELECT line_no, NULL::VARCHAR AS shape_problem, metric_name AS metric,
                       trim("timestamp") AS time_text, metric_value AS value_text,
                       TRY_CAST(trim(metric_value) AS DOUBLE) AS value,
                       method, name, url, status, expected_response, error, error_code,
                       nullif(regexp_extract(extra_tags, '(^|&)vu=([^&]*)', 2), '') AS vu,
                       nullif(regexp_extract(metadata, '(^|&)trace_id=([^&]*)', 2), '') AS trace_text
                FROM _k6_csv
                """
            )
        finally:
            con.unregister("_k6_csv")
        n, found = _load_points(store, run_id, file_id, "_k6_points")
        con.execute("DROP TABLE _k6_points")
        added += n
        problems.extend(found)
    problems.sort(key=lambda p: (p[0] is None, p[0] or 0))
    return added, problems


# -- summaries -------------------------------------------------------------------------


def load_summary(store: Store, run_id: int, file_id: int, path: Path) -> tuple[int, Problems]:
    """Read a ``--summary-export`` or ``handleSummary()`` JSON document."""
    data = read_all(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return 0, [(data.count(b"\n", 0, exc.start) + 1, "not UTF-8 text")]
    error = json_error(text)
    if error is not None:
        cut = not text.endswith("\n") and "Expecting" in error[1]
        return 0, [(error[0], CUT_SHORT if cut else error[1])]
    doc = json.loads(text)
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), dict):
        return 0, [(1, "not a k6 summary: no metrics object")]
    handle = "state" in doc or any(
        isinstance(m, dict) and isinstance(m.get("values"), dict) for m in doc["metrics"].values()
    )
    stats: list[tuple[str, str | None, str, float | None]] = []
    thresholds: list[tuple[str, str, bool]] = []
    problems: Problems = []
    for metric, body in doc["metrics"].items():
        if not isinstance(body, dict):
            problems.append((None, f"metric {metric!r}: not an object"))
            continue
        values = body.get("values") if handle else body
        if not isinstance(values, dict):
            problems.append((None, f"metric {metric!r}: no values object"))
            continue
        for stat, value in values.items():
            if stat == "thresholds":
                continue
            if not _is_number(value):
                problems.append((None, f"metric {metric!r}: {stat} is not a number: {value!r:.60}"))
                continue
            stats.append((metric, None, stat, float(value)))
        for threshold, verdict in (body.get("thresholds") or {}).items():
            passed = _threshold_passed(verdict, handle)
            if passed is None:
                problems.append(
                    (
                        None,
                        f"metric {metric!r}: threshold {threshold!r} has no verdict: {verdict!r:.60}",
                    )
                )
                continue
            thresholds.append((metric, threshold, passed))
    for check, passes, fails in _checks(doc.get("root_group")):
        stats.extend([("check", check, "passes", passes), ("check", check, "fails", fails)])
    con = store.con
    if stats:
        con.executemany(
            "INSERT INTO load_summary (run_id, file_id, tool, metric, name, stat, value) "
            "VALUES (?, ?, 'k6', ?, ?, ?, ?)",
            [(run_id, file_id, *row) for row in stats],
        )
    if thresholds:
        con.executemany(
            "INSERT INTO load_thresholds VALUES (?, ?, 'k6', ?, ?, ?)",
            [(run_id, file_id, *row) for row in thresholds],
        )
    return len(stats) + len(thresholds), problems


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and abs(value) < 1e308
    )


def _threshold_passed(verdict: Any, handle: bool) -> bool | None:
    # The inversion: --summary-export's boolean (k6 docs, "summary export") says the
    # threshold *failed*; handleSummary's {"ok": …} says it held.
    if handle:
        ok = verdict.get("ok") if isinstance(verdict, dict) else None
        return ok if isinstance(ok, bool) else None
    return (not verdict) if isinstance(verdict, bool) else None


def _checks(group: Any) -> list[tuple[str, float, float]]:
    """(check path, passes, fails) for every check in the group tree."""
    found: list[tuple[str, float, float]] = []
    if not isinstance(group, dict):
        return found
    checks = group.get("checks")
    items = (
        checks.values() if isinstance(checks, dict) else checks if isinstance(checks, list) else []
    )
    for check in items:
        if (
            isinstance(check, dict)
            and _is_number(check.get("passes"))
            and _is_number(check.get("fails"))
        ):
            name = str(check.get("path") or check.get("name") or "")
            found.append((name, float(check["passes"]), float(check["fails"])))
    groups = group.get("groups")
    subgroups = (
        groups.values() if isinstance(groups, dict) else groups if isinstance(groups, list) else []
    )
    for sub in subgroups:
        found.extend(_checks(sub))
    return found


__all__ = ["CSV_COLUMNS", "load_csv", "load_json", "load_summary"]


# -- telling the files apart -------------------------------------------------------


def _first_line_json(head: Head) -> Any:
    try:
        return json.loads(head.first_line)
    except (ValueError, RecursionError):  # nested too deeply: not a k6 line either
        return None


def _sniff_json(head: Head) -> bool:
    if not head.text_like or not head.stripped.startswith("{"):
        return False
    line = head.once(_first_line_json)
    return isinstance(line, dict) and line.get("type") in ("Metric", "Point") and "metric" in line


def _sniff_csv(head: Head) -> bool:
    return head.text_like and head.first_line.startswith("metric_name,timestamp,metric_value,")


def _sniff_summary(head: Head) -> bool:
    text = head.stripped
    # k6's own metric names too: a summary cut short may have lost root_group at its end.
    return (
        head.text_like
        and text.startswith("{")
        and re.search(r'"metrics"\s*:\s*\{', text) is not None
        and re.search(
            r'"(root_group|state|options|vus|http_reqs|iterations|iteration_duration)"\s*:', text
        )
        is not None
    )


FORMATS = (
    LoadFormat(
        name="k6-json",
        help="k6 --out json (NDJSON, or compressed)",
        sniff=_sniff_json,
        load=load_json,
    ),
    LoadFormat(name="k6-csv", help="k6 --out csv, any timeFormat", sniff=_sniff_csv, load=load_csv),
    LoadFormat(
        name="k6-summary",
        help="k6 --summary-export or handleSummary() JSON",
        sniff=_sniff_summary,
        load=load_summary,
    ),
)
