"""OTLP/JSON: the Collector file exporter's lines, the SDK's json-file exporter,
a single (pretty-printed) ExportTraceServiceRequest, and Jaeger API v3 output
(the same shape, bare or wrapped in ``{"result": …}``).

Facts relied on (the OTLP specification's "JSON Protobuf Encoding",
https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): ids are hex strings,
case-insensitive; 64-bit integers may be strings or numbers; enums are
integers, though the Collector's reader also takes names; fields at their
default are absent and an empty ``parentSpanId`` means a root.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from correlate.fileio import LineBatch, duckdb_compression, read_head
from correlate.fileio.lines import UTF8_BOM
from correlate.ingest.canonical import (
    MAX_SPAN_NS,
    anyvalue_json,
    anyvalue_string,
    kv_json_object,
    kv_lookup,
)
from correlate.ingest.docsplit import RecordPath
from correlate.ingest.jsonschema import Schema, duckdb_type, sql_string, structure
from correlate.ingest.otlp_shape import repair
from correlate.ingest.spanformat import SpanFormat, json_batches
from correlate.inputs import Head
from correlate.semconv import SERVICE_NAME

ANY_VALUE: Schema = {
    "stringValue": "VARCHAR",
    "boolValue": "BOOLEAN",
    "intValue": "VARCHAR",
    "doubleValue": "DOUBLE",
    "bytesValue": "VARCHAR",
    "arrayValue": "JSON",
    "kvlistValue": "JSON",
}
KEY_VALUES: Schema = [{"key": "VARCHAR", "value": ANY_VALUE}]

SPAN: Schema = {
    "traceId": "VARCHAR",
    "spanId": "VARCHAR",
    "parentSpanId": "VARCHAR",
    "name": "VARCHAR",
    "kind": "VARCHAR",
    "startTimeUnixNano": "VARCHAR",
    "endTimeUnixNano": "VARCHAR",
    "attributes": KEY_VALUES,
    "events": [{"timeUnixNano": "VARCHAR", "name": "VARCHAR", "attributes": KEY_VALUES}],
    "links": [{"traceId": "VARCHAR", "spanId": "VARCHAR", "attributes": KEY_VALUES}],
    "status": {"code": "VARCHAR", "message": "VARCHAR"},
}

RESOURCE_SPANS: Schema = [
    {
        "resource": {"attributes": KEY_VALUES},
        "scopeSpans": [{"scope": {"name": "VARCHAR", "version": "VARCHAR"}, "spans": [SPAN]}],
        # OTLP before 0.19 called scopeSpans instrumentationLibrarySpans.
        "instrumentationLibrarySpans": [
            {"instrumentationLibrary": {"name": "VARCHAR"}, "spans": [SPAN]}
        ],
    }
]

#: One line or document: a request, or Jaeger v3's ``{"result": request}``.
DOCUMENT: dict[str, Schema] = {
    "resourceSpans": RESOURCE_SPANS,
    "result": {"resourceSpans": RESOURCE_SPANS},
    # Another signal's envelope: only looked at to say what such a line is (a
    # Collector file exporter shared by the traces and metrics pipelines).
    "resourceMetrics": "JSON",
    "resourceLogs": "JSON",
}

_KINDS = {
    "0": "UNSPECIFIED",
    "1": "INTERNAL",
    "2": "SERVER",
    "3": "CLIENT",
    "4": "PRODUCER",
    "5": "CONSUMER",
}
_STATUS = {"0": "UNSET", "1": "OK", "2": "ERROR"}


def _enum_sql(expr: str, names: dict[str, str], prefix: str) -> str:
    """Integers per the spec, or the names the Collector's reader also accepts."""
    cases = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in names.items())
    return (
        f"CASE trim({expr}) {cases} ELSE "
        f"nullif(upper(regexp_replace(trim({expr}), '^{prefix}', '', 'i')), '') END"
    )


def _kv_sql(list_expr: str, *, strings: bool = False) -> str:
    # The plain string form is only needed for look-ups by key (service.name);
    # span attributes are looked up in their JSON object instead.
    string = anyvalue_string("kv.value") if strings else "NULL::VARCHAR"
    return (
        f"list_transform({list_expr}, lambda kv: {{'k': kv.key, "
        f"'s': {string}, 'j': {anyvalue_json('kv.value')}}})"
    )


def _ns_sql(expr: str) -> str:
    # Accepts "123" and 123 (and 1.23e18 as written by some JS encoders).
    return f"coalesce(TRY_CAST({expr} AS BIGINT), TRY_CAST(TRY_CAST({expr} AS DOUBLE) AS BIGINT))"


def raw_spans_sql(docs: str) -> str:
    """SQL producing the ``raw`` relation from ``docs(line_no, doc)``.

    ``doc`` is a struct of :data:`DOCUMENT`. The resource is decoded once per
    ``resourceSpans`` entry, not once per span: a batch shares one resource.
    """
    spans = f"""
       scope.name AS scope_name,
       s.traceId AS trace_id,
       s.spanId AS span_id,
       s.parentSpanId AS parent_id,
       s.name AS name,
       {_enum_sql("s.kind", _KINDS, "SPAN_KIND_")} AS kind,
       {_ns_sql("s.startTimeUnixNano")} AS start_ns,
       {_ns_sql("s.endTimeUnixNano")} AS end_ns,
       coalesce({_enum_sql("s.status.code", _STATUS, "STATUS_CODE_")}, 'UNSET') AS status_code,
       s.status.message AS status_message,
       {_kv_sql("s.attributes")} AS attrs,
       list_transform(s.events, lambda e: {{'time_ns': {_ns_sql("e.timeUnixNano")},
                                           'name': e.name,
                                           'attrs': {_kv_sql("e.attributes")}}}) AS events,
       list_transform(s.links, lambda l: {{'trace_id': l.traceId, 'span_id': l.spanId,
                                          'attrs': {_kv_sql("l.attributes")}}}) AS links"""
    # One chain of unnests, each CTE used once: DuckDB materialises a CTE that
    # is referenced twice, which here would hold the whole file in memory.
    # Before OTLP 0.19 scopeSpans was instrumentationLibrarySpans; coalesce
    # only converts it for the entries that lack scopeSpans.
    legacy = (
        "list_transform(rs.instrumentationLibrarySpans, lambda l: "
        "{'scope': {'name': l.instrumentationLibrary.name, 'version': NULL::VARCHAR}, "
        "'spans': l.spans})"
    )
    return f"""
WITH rs AS (
    SELECT line_no, unnest(coalesce(doc.resourceSpans, doc.result.resourceSpans)) AS rs
    FROM {docs}
), ss AS (
    SELECT line_no,
           {kv_lookup(_kv_sql("rs.resource.attributes", strings=True), (SERVICE_NAME,))} AS service,
           {kv_json_object(f"coalesce({_kv_sql('rs.resource.attributes')}, [])")} AS resource,
           unnest(coalesce(rs.scopeSpans, {legacy})) AS ss
    FROM rs
), sp AS (
    SELECT line_no, service, resource, ss.scope AS scope, unnest(ss.spans) AS s FROM ss
)
SELECT line_no, service, resource, [] AS res_attrs, {spans}
FROM sp
"""


def problem_docs_sql(docs: str) -> str:
    """Lines that parsed as JSON but hold no OTLP spans envelope."""
    other = (
        "{} (resource{}), not spans: not read among spans; give them a file of their own "
        "(a second file exporter for the {} pipeline){}"
    )
    metrics = sql_string(
        other.format("OTLP metrics", "Metrics", "metrics", ", which reads as otlp-metrics")
    )
    logs = sql_string(other.format("OTLP logs", "Logs", "logs", ""))
    return f"""
SELECT line_no,
       CASE WHEN doc.resourceMetrics IS NOT NULL THEN {metrics}
            WHEN doc.resourceLogs IS NOT NULL THEN {logs}
            ELSE 'not OTLP JSON (no resourceSpans array); pass --format if this is another format'
       END
FROM {docs}
WHERE doc IS NOT NULL AND doc.resourceSpans IS NULL AND doc.result.resourceSpans IS NULL
"""


def fast_docs_sql(path: Path) -> str | None:
    """``docs`` read by DuckDB's own JSON reader, for a file of OTLP/JSON lines.

    The explicit ``columns=`` schema matters: auto-detection samples lines, and
    one OTLP line holds a whole batch of spans, so on a big file it reads the
    data twice. A line without the OTLP envelope raises, so the caller falls
    back to the line-by-line reader that reports it.
    """
    compression = fast_compression(path)
    if compression is None:
        return None
    return f"""
SELECT NULL::BIGINT AS line_no, {_DOC} AS doc
FROM {_read_json(sql_string(str(path)), compression)}
WHERE {_ENVELOPE_GUARD}
"""


def fast_files_docs_sql(paths: list[Path], positions: str) -> str:
    """``docs`` of several files of OTLP/JSON lines in one read, each file's lines
    numbered by its position in ``paths``.

    ``positions`` is a relation ``(name, pos)`` of the paths as given and their
    positions; ``line_no`` of each doc is its file's ``pos`` (within one file the
    fast path has no line numbers, and a file with a problem is read again on its
    own). Every path must have passed :func:`fast_compression` with one answer.
    """
    compression = fast_compression(paths[0])
    assert compression is not None
    names = "[" + ", ".join(sql_string(str(p)) for p in paths) + "]"
    # read_json with the nested columns= schema costs ~6 ms a file to set up;
    # reading each line as JSON text and parsing it with from_json, 0.3 ms.
    return f"""
SELECT * FROM (
    SELECT p.pos AS line_no, from_json(r.json, {sql_string(structure(DOCUMENT))}) AS doc
    FROM read_json_objects({names}, format = 'newline_delimited', filename = true,
                           compression = {sql_string(compression)},
                           maximum_object_size = {MAX_LINE_BYTES}) r
    JOIN {positions} p ON r.filename = p.name
)
WHERE CASE WHEN doc.resourceSpans IS NOT NULL OR doc.result.resourceSpans IS NOT NULL THEN true
           ELSE error('correlate: not an OTLP line') END
"""


def pieces_docs_sql(paths: list[Path], positions: str, *, lenient: bool) -> str:
    """``docs`` of several uncompressed files of OTLP/JSON lines (pieces of one file) in
    one read with the nested schema, each doc's ``line_no`` its file's ``pos``.

    ``lenient`` reads a line DuckDB cannot parse as a doc without an envelope (and a
    value of the wrong type as NULL): only for finding which pieces have a problem,
    never for keeping spans. Otherwise a line without the envelope raises.
    """
    names = "[" + ", ".join(sql_string(str(p)) for p in paths) + "]"
    # Lenient reading wants only what the rough checks look at: not building
    # attribute, event and link vectors makes it about half the cost.
    read = _read_json(names, "none", _CHECKED if lenient else DOCUMENT)[:-1] + ", filename = true"
    read += ", ignore_errors = true)" if lenient else ")"
    return f"""
SELECT line_no, {_DOC} AS doc
FROM (SELECT p.pos AS line_no, r.resourceSpans, r.result
      FROM {read} r JOIN {positions} p ON r.filename = p.name)
WHERE {"true" if lenient else _ENVELOPE_GUARD}
"""


def suspect_doc_sql(doc: str) -> str:
    """SQL: ``doc`` has no envelope, or a span without ids or with impossible times.

    A rough, cheap form of the span checks of :mod:`correlate.ingest.canonical`,
    for finding damaged pieces of a file without unnesting it.
    """
    spans = (
        f"flatten(list_transform(coalesce({doc}.resourceSpans, {doc}.result.resourceSpans), "
        "lambda r: flatten(list_transform(coalesce(r.scopeSpans, []), "
        "lambda ss: coalesce(ss.spans, [])))))"
    )
    start, end = "TRY_CAST(s.startTimeUnixNano AS BIGINT)", "TRY_CAST(s.endTimeUnixNano AS BIGINT)"
    bad_span = (
        "coalesce(trim(s.traceId), '') = '' OR coalesce(trim(s.spanId), '') = '' "
        f"OR trim(s.traceId) = repeat('0', 32) OR {start} IS NULL OR {end} IS NULL "
        f"OR {start} < 0 OR {end} < {start} OR {end} - {start} > {MAX_SPAN_NS}"
    )
    return (
        f"({doc}.resourceSpans IS NULL AND {doc}.result.resourceSpans IS NULL) "
        f"OR coalesce(list_bool_or(list_transform({spans}, lambda s: {bad_span})), false)"
    )


_CHECKED_SPANS: Schema = [
    {
        "scopeSpans": [
            {
                "spans": [
                    {
                        key: "VARCHAR"
                        for key in ("traceId", "spanId", "startTimeUnixNano", "endTimeUnixNano")
                    }
                ]
            }
        ]
    }
]
#: The part of :data:`DOCUMENT` that :func:`suspect_doc_sql` reads.
_CHECKED: dict[str, Schema] = {
    "resourceSpans": _CHECKED_SPANS,
    "result": {"resourceSpans": _CHECKED_SPANS},
}


#: A doc of the fast paths, shaped as :data:`DOCUMENT` (metrics and logs lines never
#: reach them: the envelope guard refuses a line without spans).
_DOC = (
    "{'resourceSpans': resourceSpans, 'result': result, "
    "'resourceMetrics': NULL::JSON, 'resourceLogs': NULL::JSON}"
)

_ENVELOPE_GUARD = (
    "CASE WHEN resourceSpans IS NOT NULL OR result.resourceSpans IS NOT NULL THEN true "
    "ELSE error('correlate: not an OTLP line') END"
)


def _read_json(names: str, compression: str, document: dict[str, Schema] | None = None) -> str:
    columns = (
        "{"
        + ", ".join(
            f"{sql_string(k)}: {sql_string(duckdb_type(v))}"
            for k, v in (document or DOCUMENT).items()
        )
        + "}"
    )
    return (
        f"read_json({names}, format = 'newline_delimited', columns = {columns}, "
        f"compression = {sql_string(compression)}, maximum_object_size = {MAX_LINE_BYTES})"
    )


def fast_compression(path: Path) -> str | None:
    """DuckDB's ``compression =`` for ``path`` when the fast path can read it, else None."""
    head = read_head(path, 4096)
    # DuckDB's readers skip a byte order mark before the first line, as the line reader does
    first_line = head.split(b"\n", 1)[0].removeprefix(UTF8_BOM).strip()
    if not first_line.startswith(b"{") or (b"\n" in head and first_line == b"{"):
        return None  # a pretty-printed document: small, the line reader handles it
    # None when DuckDB cannot read it by name (a codec it lacks, a name it would
    # take as a glob pattern): the line reader reads it
    return duckdb_compression(path)


#: The longest line the fast path accepts; a file with longer lines goes to the
#: line reader, which takes any length. DuckDB allocates twice this for its
#: read buffer, so it must stay well under the memory cap.
MAX_LINE_BYTES = 16 * 1024 * 1024


#: Where the spans of a (pretty-printed) document are: each is a record of its own.
RECORD_PATHS: tuple[RecordPath, ...] = (
    ("resourceSpans", "*", "scopeSpans", "*", "spans", "*"),
    ("result", "resourceSpans", "*", "scopeSpans", "*", "spans", "*"),
)


def batches(path: Path) -> Iterator[LineBatch]:
    """:func:`~correlate.ingest.spanformat.json_batches`, a document cut at its spans."""
    return json_batches(path, RECORD_PATHS)


def sniff(head: Head) -> bool:
    """An OTLP/JSON line or document: a JSON object that names ``resourceSpans``; or
    OTLP/JSON lines after a damaged first line (a file cut at its start), which is then
    reported with its line number like any other bad line."""
    text = head.stripped
    if head.binary or ('"resourceSpans"' not in text and '"resource_spans"' not in text):
        return False
    if re.match(r'\{\s*"(trace|batches)"\s*:', text) or TEMPO_V2_TRACE.search(text):
        return False  # Grafana Tempo's answers: tempo's (base64 ids)
    if text.startswith("{"):
        return True
    whole_lines = text.split("\n")[1:-1]  # the head's last line may be cut by the head
    return any(_otlp_line(line) for line in whole_lines[:_SNIFF_LINES])


#: Grafana Tempo's /api/v2/traces answer's trace, wherever its other keys put it.
TEMPO_V2_TRACE = re.compile(r'"trace"\s*:\s*\{\s*"resourceSpans"\s*:')
#: How many lines after a damaged first one the sniffer looks at for an OTLP/JSON line.
_SNIFF_LINES = 3


def _otlp_line(line: str) -> bool:
    line = line.strip()
    return line.startswith("{") and line.endswith("}") and '"resource' in line[:40]


FORMAT = SpanFormat(
    name="otlp-json",
    help="OTLP/JSON: Collector file exporter lines, SDK json-file exporter, one document, "
    "Jaeger API v3",
    sniff=sniff,
    schema=DOCUMENT,
    raw_sql=raw_spans_sql,
    envelope_problems_sql=problem_docs_sql,
    batches=batches,
    fast_docs=fast_docs_sql,
    repair=repair,
    fast_compression=fast_compression,
    fast_files_docs=fast_files_docs_sql,
    pieces_docs=pieces_docs_sql,
    suspect_doc_sql=suspect_doc_sql,
    # Jaeger v3's {"result": …} holds it too.
    envelope_key=b'"resourceSpans"',
)
