"""Jaeger JSON: the UI's "Download JSON" and the query API v1 (``/api/traces``).

Facts relied on (Jaeger's UI JSON model, jaegertracing/jaeger-ui
``packages/jaeger-ui/src/types/trace.tsx``):

- A record is ``{"data": [trace, ...], "total", "limit", "offset", "errors"}``;
  a trace is ``{"traceID", "spans": [span], "processes": {id: process}}`` and
  a process is ``{"serviceName", "tags": [tag]}``. A span names its process
  by ``processID`` (some older writers embed ``"process"`` in the span
  instead; both are read).
- ``startTime``, ``duration`` and a log's ``timestamp`` are **microseconds**
  (since the epoch for the times); the store keeps nanoseconds. Jaeger always
  writes ``duration``, so a span without one is reported, not guessed at.
  A span without ``traceID`` takes its trace's.
- The parent is the ``CHILD_OF`` reference; the ``parentSpanID`` field is
  deprecated and usually absent. A span can hold several references, some
  pointing into other traces.
- Ids are lowercase hex; a trace id may have 16 digits (64-bit). An id is
  a number written in hex, and some writers drop its leading zeros, so a hex
  id shorter than its width (32 digits for a trace, 16 for a span) is
  left-padded with zeros. An all-zero parent id means "no parent".
- A tag is ``{"key", "type", "value"}`` with type ``string``, ``bool``,
  ``int64``, ``float64`` or ``binary`` (base64). An ``int64`` too big for a
  JavaScript number arrives as a JSON *string*.
- OpenTelemetry's Jaeger mapping carries OTLP fields in tags: ``span.kind``
  (lowercase), ``otel.status_code`` (``OK``/``ERROR``),
  ``otel.status_description``, ``error=true``, ``otel.scope.name`` and
  ``otel.scope.version`` (``otel.library.*`` in older exporters). Resource
  attributes are the process tags, the service name is ``serviceName``.

How they map to the store: the CHILD_OF reference in the span's own trace is
the parent (else ``parentSpanID``, else a FOLLOWS_FROM reference in the same
trace); every other reference becomes a link with the attribute
``opentracing.ref_type`` (``child_of``/``follows_from``), as OpenTelemetry's
OpenTracing compatibility names it. Process tags become resource attributes,
with ``service.name`` from ``serviceName``. The transport tags above become
``kind``, ``status_code``, ``status_message`` and ``scope_name`` and are
removed from the attributes (an ``otel.status_code`` that is not
OK/ERROR/UNSET is kept as an attribute instead); ``error`` is a genuine
OpenTracing tag and stays (without ``otel.status_code``, the canonical
mapping reads it as the ERROR status, for every format). Logs become events named by their ``event`` field
(else ``"log"``), the other fields being the event's attributes.

A tag's plain string form and JSON text follow its declared type: ``int64``
is a JSON number (also when it came as a string), ``bool`` is true/false,
``float64`` a number (a non-finite one a string, as the OTLP reader writes
it), ``string``/``binary`` a JSON string. A value that does not fit its type
is kept as the JSON it was given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from correlate.fileio import LineBatch
from correlate.ingest.docsplit import RecordPath
from correlate.ingest.jsonschema import Schema, duckdb_type, sql_string
from correlate.ingest.spanformat import SpanFormat, json_batches
from correlate.inputs import Head

KEY_VALUES: Schema = [{"key": "VARCHAR", "type": "VARCHAR", "value": "JSON"}]

PROCESS: Schema = {"serviceName": "VARCHAR", "tags": KEY_VALUES}

SPAN: Schema = {
    "traceID": "VARCHAR",
    "spanID": "VARCHAR",
    "parentSpanID": "VARCHAR",
    "operationName": "VARCHAR",
    "references": [{"refType": "VARCHAR", "traceID": "VARCHAR", "spanID": "VARCHAR"}],
    "startTime": "VARCHAR",
    "duration": "VARCHAR",
    "tags": KEY_VALUES,
    "logs": [{"timestamp": "VARCHAR", "fields": KEY_VALUES}],
    "processID": "VARCHAR",
    "process": PROCESS,
}

#: One record: a query-API response or a UI download. ``processes`` is read as
#: a MAP keyed by process id. Measured against JSON plus a JSON-pointer lookup
#: and a second from_json per span (200k spans, 165 MB, two runs): parsing
#: plus flattening took 3.7-4.8 s with the MAP, 4.4-5.5 s with JSON. The price:
#: a processes object with a repeated key reads as NULL, so its spans get no
#: service.
DOCUMENT: Schema = {
    "data": [
        {
            "traceID": "VARCHAR",
            "spans": [SPAN],
            "processes": f"MAP(VARCHAR, {duckdb_type(PROCESS)})",
        }
    ]
}

#: Tags that only carried an OTLP field through Jaeger's model.
TRANSPORT_TAGS: tuple[str, ...] = (
    "span.kind",
    "otel.status_description",
    "otel.scope.name",
    "otel.scope.version",
    "otel.library.name",
    "otel.library.version",
    "internal.span.format",
)

_STATUS_CODES = "('OK', 'ERROR', 'UNSET')"
_EMPTY_KV = "[]::STRUCT(k VARCHAR, s VARCHAR, j VARCHAR)[]"


def hex_id_sql(expr: str, digits: int) -> str:
    """SQL: ``expr`` left-padded with zeros to ``digits`` when it is shorter hex.

    Anything that is not 1..``digits`` hex digits passes through unchanged,
    so the canonical checks can name it in the problem they report.
    """
    return (
        f"CASE WHEN regexp_full_match(trim({expr}), '[0-9A-Fa-f]{{1,{digits}}}') "
        f"THEN lpad(lower(trim({expr})), {digits}, '0') ELSE {expr} END"
    )


def parent_id_sql(expr: str) -> str:
    """SQL: a padded span id, NULL when it is all zeros (how some writers say "root")."""
    padded = hex_id_sql(expr, 16)
    return f"CASE WHEN regexp_full_match(trim({expr}), '0+') THEN NULL ELSE {padded} END"


def micros_to_ns_sql(expr: str) -> str:
    """SQL: microseconds (a JSON number or numeric string) as BIGINT nanoseconds.

    NULL when absent, not a number, or outside what BIGINT nanoseconds hold.
    """
    micros = f"coalesce(TRY_CAST({expr} AS BIGINT), TRY_CAST(TRY_CAST({expr} AS DOUBLE) AS BIGINT))"
    limit = 9_223_372_036_854_775  # BIGINT max // 1000
    return f"(CASE WHEN {micros} BETWEEN -{limit} AND {limit} THEN {micros} * 1000 END)"


def end_ns_sql(start_ns: str, duration_ns: str) -> str:
    """SQL: start + duration, NULL instead of an overflow."""
    return f"TRY_CAST(CAST({start_ns} AS HUGEINT) + {duration_ns} AS BIGINT)"


def kv_value_sql(list_expr: str, key: str) -> str:
    """SQL: the plain string value of the first attribute named ``key``."""
    return f"list_filter({list_expr}, lambda a: a.k = {sql_string(key)})[1].s"


def decode_tags_sql(list_expr: str) -> str:
    """SQL turning a list of Jaeger tags into the canonical ``(k, s, j)`` list.

    Tags without a key are dropped (there is nothing to name them by).
    """
    # Step 1: what the JSON value is; step 2: the value read as its declared
    # type (NULL when it does not fit); step 3: the string and JSON forms.
    step1 = (
        f"list_transform(list_filter({list_expr}, lambda kv: kv.key IS NOT NULL), "
        "lambda kv: {'k': kv.key, 't': lower(trim(kv.type)), 'v': kv.value, "
        "'jt': json_type(kv.value), 'plain': kv.value ->> '$'})"
    )
    as_bool = (
        "CASE WHEN a.jt = 'BOOLEAN' THEN a.plain "
        "WHEN a.jt = 'VARCHAR' AND lower(trim(a.plain)) IN ('true', 'false') "
        "THEN lower(trim(a.plain)) END"
    )
    as_int = (
        "CASE WHEN a.jt IN ('BIGINT', 'UBIGINT') THEN a.plain "
        "WHEN a.jt = 'VARCHAR' AND regexp_full_match(trim(a.plain), '[+-]?[0-9]{1,39}') "
        "THEN CAST(TRY_CAST(trim(a.plain) AS HUGEINT) AS VARCHAR) END"
    )
    as_double = (
        "CASE WHEN a.jt IN ('DOUBLE', 'BIGINT', 'UBIGINT', 'VARCHAR') "
        "THEN TRY_CAST(a.plain AS DOUBLE) END"
    )
    step2 = (
        f"list_transform({step1}, lambda a: {{'k': a.k, 't': a.t, 'v': a.v, 'jt': a.jt, "
        f"'plain': a.plain, 'b': {as_bool}, 'i': {as_int}, 'd': {as_double}}})"
    )
    double_json = (
        "CASE WHEN isfinite(a.d) THEN CAST(a.d AS VARCHAR) "
        "ELSE to_json(CAST(a.d AS VARCHAR))::VARCHAR END"
    )
    string_form = (
        "coalesce(CASE a.t WHEN 'bool' THEN a.b WHEN 'int64' THEN a.i "
        "WHEN 'float64' THEN CAST(a.d AS VARCHAR) END, a.plain)"
    )
    json_form = (
        "CASE WHEN a.t IN ('string', 'binary') AND a.plain IS NOT NULL "
        "THEN to_json(a.plain)::VARCHAR "
        "WHEN a.t = 'bool' AND a.b IS NOT NULL THEN a.b "
        "WHEN a.t = 'int64' AND a.i IS NOT NULL THEN a.i "
        f"WHEN a.t = 'float64' AND a.d IS NOT NULL THEN {double_json} "
        # The value does not fit its declared type: keep the JSON as given.
        "WHEN a.jt = 'VARCHAR' THEN to_json(a.plain)::VARCHAR "
        f"WHEN a.jt = 'DOUBLE' AND a.d IS NOT NULL THEN {double_json} "
        "WHEN a.jt IS NULL OR a.jt = 'NULL' THEN 'null' "
        "ELSE CAST(a.v AS VARCHAR) END"
    )
    return f"list_transform({step2}, lambda a: {{'k': a.k, 's': {string_form}, 'j': {json_form}}})"


def _kind_sql(tag: str) -> str:
    return f"nullif(upper(trim({tag})), '')"


def raw_spans_sql(docs: str) -> str:
    """SQL producing the ``raw`` relation from ``docs(line_no, doc)``.

    ``doc`` is a struct of :data:`DOCUMENT`.
    """
    refs = (
        "list_transform(list_filter(s.references, lambda r: r IS NOT NULL), lambda r: {"
        f"'type': upper(trim(r.refType)), "
        f"'trace_id': coalesce(lower({hex_id_sql('r.traceID', 32)}), tid), "
        f"'span_id': {hex_id_sql('r.spanID', 16)}}})"
    )
    status = f"upper(trim({kv_value_sql('tags', 'otel.status_code')}))"
    logs = (
        "list_transform(list_filter(s.logs, lambda l: l IS NOT NULL), lambda l: {"
        f"'time_ns': {micros_to_ns_sql('l.timestamp')}, "
        f"'fields': {decode_tags_sql('l.fields')}}})"
    )
    transport = ", ".join(sql_string(t) for t in TRANSPORT_TAGS)
    return f"""
WITH tr AS (
    SELECT line_no, unnest(doc.data) AS t
    FROM {docs}
), sp AS (
    SELECT line_no, t.traceID AS trace_tid, t.processes AS processes, unnest(t.spans) AS s
    FROM tr
), ids AS (
    SELECT line_no, s,
           lower({hex_id_sql("coalesce(s.traceID, trace_tid)", 32)}) AS tid,
           coalesce(processes[s.processID], s.process) AS proc
    FROM sp
), decoded AS (
    SELECT line_no, s, tid, proc,
           {decode_tags_sql("s.tags")} AS tags,
           {refs} AS refs,
           {logs} AS logs
    FROM ids
), picked AS (
    SELECT *,
           coalesce(
               list_filter(refs, lambda r: r.type = 'CHILD_OF' AND r.trace_id = tid)[1].span_id,
               {parent_id_sql("s.parentSpanID")},
               list_filter(refs, lambda r: r.type = 'FOLLOWS_FROM' AND r.trace_id = tid)[1].span_id
           ) AS parent,
           CASE WHEN {status} IN {_STATUS_CODES} THEN {status} END AS otel_status,
           {micros_to_ns_sql("s.startTime")} AS start_ns,
           {micros_to_ns_sql("s.duration")} AS duration_ns
    FROM decoded
)
SELECT line_no,
       tid AS trace_id,
       {hex_id_sql("s.spanID", 16)} AS span_id,
       parent AS parent_id,
       s.operationName AS name,
       {_kind_sql(kv_value_sql("tags", "span.kind"))} AS kind,
       proc.serviceName AS service,
       coalesce({kv_value_sql("tags", "otel.scope.name")},
                {kv_value_sql("tags", "otel.library.name")}) AS scope_name,
       start_ns,
       {end_ns_sql("start_ns", "duration_ns")} AS end_ns,
       -- an error tag without otel.status_code is read in canonical, as for every format
       otel_status AS status_code,
       {kv_value_sql("tags", "otel.status_description")} AS status_message,
       list_filter(tags, lambda a: a.k NOT IN ({transport})
                   AND NOT (a.k = 'otel.status_code' AND otel_status IS NOT NULL)) AS attrs,
       NULL::VARCHAR AS resource,
       list_concat(
           CASE WHEN proc.serviceName IS NULL THEN {_EMPTY_KV}
                ELSE [{{'k': 'service.name', 's': proc.serviceName,
                       'j': to_json(proc.serviceName)::VARCHAR}}] END,
           list_filter({decode_tags_sql("proc.tags")},
                       lambda a: proc.serviceName IS NULL OR a.k <> 'service.name')
       ) AS res_attrs,
       list_transform(logs, lambda l: {{
           'time_ns': l.time_ns,
           'name': coalesce({kv_value_sql("l.fields", "event")}, 'log'),
           'attrs': list_filter(l.fields, lambda f: f.k <> 'event')}}) AS events,
       list_transform(
           list_filter(refs, lambda r: NOT (r.trace_id = tid AND r.span_id IS NOT DISTINCT FROM parent)),
           lambda r: {{'trace_id': r.trace_id, 'span_id': r.span_id,
                       'attrs': CASE WHEN r.type IN ('CHILD_OF', 'FOLLOWS_FROM')
                                THEN [{{'k': 'opentracing.ref_type', 's': lower(r.type),
                                        'j': to_json(lower(r.type))::VARCHAR}}]
                                ELSE {_EMPTY_KV} END}}) AS links
FROM picked
"""


def problem_docs_sql(docs: str) -> str:
    """Records that parsed as JSON but are not a Jaeger response, and traces without spans."""
    return f"""
SELECT line_no,
       'not Jaeger JSON (no "data" array of traces); pass --format if this is another format'
FROM {docs}
WHERE doc IS NOT NULL AND doc.data IS NULL
UNION ALL
SELECT line_no, 'trace ' || n || ' of "data" has no "spans" array; skipped'
FROM (
    SELECT line_no, unnest(doc.data) AS t, generate_subscripts(doc.data, 1) AS n
    FROM {docs}
    WHERE doc IS NOT NULL
)
WHERE t IS NULL OR t.spans IS NULL
"""


#: Where the spans of a (pretty-printed) document are, in each shape it may have.
RECORD_PATHS: tuple[RecordPath, ...] = (
    ("data", "*", "spans", "*"),  # the query API's response
    ("spans", "*"),  # a bare trace
    ("*", "spans", "*"),  # a list of traces
    ("*",),  # a list of spans
)


def _enveloped(text: str) -> str:
    """A record in the query API's envelope: a bare trace object, a list of traces or a
    list of spans (as some tools save them) becomes ``{"data": [traces]}``."""
    if text.lstrip().startswith('{"data"'):
        return text
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return text  # reported as malformed (or nested too deeply) by the reader
    if isinstance(value, dict) and "data" not in value and isinstance(value.get("spans"), list):
        return json.dumps({"data": [value]})
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        if all("spans" in v for v in value):
            return json.dumps({"data": value})
        if all("spanID" in v for v in value):
            return json.dumps({"data": [{"spans": value}]})
    return text


def enveloped_batches(path: Path) -> Iterator[LineBatch]:
    """:func:`json_batches`, each record in the query API's envelope (:func:`_enveloped`)."""
    for batch in json_batches(path, RECORD_PATHS):
        batch.lines = [_enveloped(line) for line in batch.lines]
        yield batch


def sniff(head: Head) -> bool:
    """Jaeger JSON: an object with ``"data": [traces]``, or an empty search result; also a
    bare trace object or a bare list of Jaeger traces or spans."""
    text = head.stripped
    if head.binary:
        return False
    if text.startswith("[") or (text.startswith("{") and not re.search(r'"data"\s*:', text)):
        # Jaeger's own spelling: traceID, spanID and operationName (Zipkin writes traceId).
        return '"traceID"' in text and '"spanID"' in text and '"operationName"' in text
    if not text.startswith("{"):
        return False
    if re.search(r'"data"\s*:\s*\[', text) and ('"traceID"' in text or '"spans"' in text):
        return True
    # An empty search result is one short line; the ConsoleSpanExporter's
    # pretty-printed spans (a "context" and "SpanKind.…") are not Jaeger.
    console = '"context"' in text and '"SpanKind.' in text
    return '"data"' in text and text.count("\n") <= 1 and '"traceID"' not in text and not console


FORMAT = SpanFormat(
    name="jaeger",
    help='Jaeger JSON: UI download or query API v1 ({"data": [traces]}), a bare trace '
    "or list of spans",
    sniff=sniff,
    schema=DOCUMENT,
    raw_sql=raw_spans_sql,
    envelope_problems_sql=problem_docs_sql,
    batches=enveloped_batches,
)
