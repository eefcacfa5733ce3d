"""Zipkin v2 JSON: ``POST /api/v2/spans`` bodies and ``GET /api/v2/trace/{id}``
(a list of spans), and ``GET /api/v2/traces`` (a list of traces, each a list of
spans).

Facts relied on (openzipkin/zipkin-api ``zipkin2-api.yaml``,
https://zipkin.io/zipkin-api/):

- A span is ``{"traceId", "id", "parentId", "name", "kind", "timestamp",
  "duration", "shared", "localEndpoint", "remoteEndpoint", "annotations",
  "tags"}``. ``timestamp`` and ``duration`` are **microseconds**; the store
  keeps nanoseconds. ``duration`` may be absent (an instant, or not known):
  the span then ends when it starts.
- ``kind`` is CLIENT, SERVER, PRODUCER or CONSUMER; absent means a local
  span, stored as INTERNAL, unless an OpenTracing-style ``span.kind`` tag
  (``client``, ``server``, ``producer``, ``consumer``) names the kind.
- Ids are lowercase hex: the trace id 16 or 32 digits, span ids 16. An id
  is a number written in hex, so a shorter hex id is left-padded with zeros
  (a 16-digit trace id becomes 32 digits), and an all-zero ``parentId``
  means "no parent".
- ``tags`` is a string-to-string map, so a number arrives as a string; its
  JSON text in the store is that string (``"200"``), and the typed columns
  (``http_status_code``…) still read it as a number.
- ``annotations`` (``{"timestamp", "value"}``) become events named ``value``.
- OpenTelemetry's Zipkin mapping carries the status in the tags
  ``otel.status_code``, ``otel.status_description`` and ``error`` (whose
  value is the error message, possibly empty), and the scope in
  ``otel.scope.name``/``otel.scope.version`` (``otel.library.*`` earlier).
  Those become ``status_code``, ``status_message`` and ``scope_name`` and are
  removed from the attributes (an ``otel.status_code`` other than
  OK/ERROR/UNSET stays), except ``error``, which is Zipkin's own tag and
  stays. An ``error`` tag without ``otel.status_code`` means ERROR
  (unless its value is ``false``); its value is the status message when
  there is no ``otel.status_description`` (the values ``""`` and ``true``
  are flags, not messages).
- ``localEndpoint.serviceName`` is the service (and resource
  ``service.name``). ``remoteEndpoint.serviceName`` becomes the attribute
  ``peer.service``; on CLIENT spans its ``ipv4`` (else ``ipv6``) and ``port``
  become ``server.address``/``server.port``. A tag of the same name wins.

**Shared span ids (B3).** With ``shared: true`` a server reports its half
of a call under the *client's* span id. Keeping both under one id would make
the run's dedupe (one span per trace id + span id) throw one half away, and
the server's work would hang off the client span. So the shared (server)
half gets a derived id: the first 16 hex digits of
``md5(<span id, lowercase> || ':shared')`` (only when its id is valid, so a
bad id is still reported as such). Its parent becomes the client
half (the original id), and spans **in the same record** whose parent is
that id and whose service is the shared span's service (the server's own
children) are re-parented to the derived id. Spans in other records or files
keep the original parent: the reader sees one record at a time. The rule is
deterministic, so re-ingesting the same data gives the same ids.
"""

from __future__ import annotations

import re

from correlate.ingest.jaeger import (
    end_ns_sql,
    hex_id_sql,
    kv_value_sql,
    micros_to_ns_sql,
    parent_id_sql,
)
from correlate.ingest.jsonschema import Schema, sql_string, structure
from correlate.ingest.spanformat import SpanFormat, json_batches
from correlate.inputs import Head

ENDPOINT: Schema = {
    "serviceName": "VARCHAR",
    "ipv4": "VARCHAR",
    "ipv6": "VARCHAR",
    "port": "VARCHAR",
}

SPAN: Schema = {
    "traceId": "VARCHAR",
    "id": "VARCHAR",
    "parentId": "VARCHAR",
    "name": "VARCHAR",
    "kind": "VARCHAR",
    "timestamp": "VARCHAR",
    "duration": "VARCHAR",
    "shared": "VARCHAR",
    "localEndpoint": ENDPOINT,
    "remoteEndpoint": ENDPOINT,
    "annotations": [{"timestamp": "VARCHAR", "value": "VARCHAR"}],
    # JSON, not MAP(VARCHAR, VARCHAR): a map with a repeated key reads as NULL,
    # which would lose every tag of the span without a word. Reading the keys
    # through JSON pointers measured no slower than the MAP (200k spans).
    "tags": "JSON",
}

#: One record is a JSON array whose items are spans or lists of spans; which
#: of the two is decided per item inside :func:`raw_spans_sql`. (Parsing each
#: item on its own cost 10-20% over one from_json of the whole list, and it
#: reads a list mixing both shapes, or holding junk items, without losing any.)
DOCUMENT: Schema = "JSON"

#: Tags that only carried an OTLP field through Zipkin's model.
TRANSPORT_TAGS: tuple[str, ...] = (
    "otel.status_description",
    "otel.scope.name",
    "otel.scope.version",
    "otel.library.name",
    "otel.library.version",
)

_EMPTY_KV = "[]::STRUCT(k VARCHAR, s VARCHAR, j VARCHAR)[]"


def _tags_sql(json_expr: str) -> str:
    """SQL: a JSON object of tags as the canonical ``(k, s, j)`` list.

    Keys are looked up with a JSON pointer (``/`` and ``~`` escaped), which
    takes any key text, unlike a JSONPath.
    """
    pointer = "'/' || replace(replace(key, '~', '~0'), '/', '~1')"
    return (
        f"list_transform(coalesce(json_keys({json_expr}), []), lambda key: "
        f"{{'k': key, 's': {json_expr} ->> ({pointer}), "
        f"'j': coalesce(to_json({json_expr} ->> ({pointer}))::VARCHAR, 'null')}})"
    )


def _span_kind_tag() -> str:
    """SQL: the kind an OpenTracing-style ``span.kind`` tag gives (``server``…), else NULL."""
    tag = "upper(trim(s.tags ->> '$.\"span.kind\"'))"
    return f"CASE WHEN {tag} IN ('CLIENT', 'SERVER', 'PRODUCER', 'CONSUMER') THEN {tag} END"


def _attr_sql(key: str, string_expr: str, json_expr: str) -> str:
    return f"{{'k': {sql_string(key)}, 's': {string_expr}, 'j': {json_expr}}}"


def _derived_id_sql(span_id: str) -> str:
    """The id given to the server half of a shared span (see the module docstring)."""
    return f"left(md5({span_id} || ':shared'), 16)"


def raw_spans_sql(docs: str) -> str:
    """SQL producing the ``raw`` relation from ``docs(line_no, doc)``; ``doc`` is JSON."""
    span = sql_string(structure(SPAN))
    spans = sql_string(structure([SPAN]))
    remote = "s.remoteEndpoint"
    address = f"coalesce({remote}.ipv4, {remote}.ipv6)"
    port = f"trim({remote}.port)"
    port_json = f"coalesce(CAST(TRY_CAST({port} AS INTEGER) AS VARCHAR), to_json({port})::VARCHAR)"
    peer = _attr_sql(
        "peer.service", f"{remote}.serviceName", f"to_json({remote}.serviceName)::VARCHAR"
    )
    server_address = _attr_sql("server.address", address, f"to_json({address})::VARCHAR")
    server_port = _attr_sql("server.port", port, port_json)
    # A tag of the same name wins over what the endpoint says.
    endpoint_attrs = f"""list_filter([
               CASE WHEN {remote}.serviceName IS NOT NULL THEN {peer} END,
               CASE WHEN kind = 'CLIENT' AND {address} IS NOT NULL THEN {server_address} END,
               CASE WHEN kind = 'CLIENT' AND {port} IS NOT NULL THEN {server_port} END
           ], lambda a: a IS NOT NULL AND NOT list_contains(list_transform(tags, lambda t: t.k), a.k))"""
    status = f"upper(trim({kv_value_sql('tags', 'otel.status_code')}))"
    error_value = "list_filter(tags, lambda a: a.k = 'error')[1]"
    transport = ", ".join(sql_string(t) for t in TRANSPORT_TAGS)
    valid_id = "regexp_full_match(ids.sid, '[0-9a-f]{16}')"
    return f"""
WITH items AS (
    SELECT line_no, unnest(from_json(doc, '["JSON"]')) AS item
    FROM {docs}
    WHERE json_type(doc) = 'ARRAY'
), sp AS (
    SELECT line_no,
           unnest(CASE WHEN json_type(item) = 'ARRAY' THEN from_json(item, {spans})
                       ELSE [from_json(item, {span})] END) AS s
    FROM items
), ids AS (
    SELECT line_no, s,
           lower({hex_id_sql("s.traceId", 32)}) AS tid,
           lower({hex_id_sql("s.id", 16)}) AS sid,
           lower({parent_id_sql("s.parentId")}) AS pid,
           coalesce(lower(trim(s.shared)) = 'true', false) AS shared,
           s.localEndpoint.serviceName AS service
    FROM sp
), server_halves AS (
    SELECT DISTINCT line_no, tid, sid, service FROM ids WHERE shared AND {valid_id}
), linked AS (
    SELECT ids.*,
           CASE WHEN ids.shared AND {valid_id} THEN {_derived_id_sql("ids.sid")}
                ELSE ids.sid END AS span_id,
           CASE WHEN ids.shared AND {valid_id} THEN ids.sid
                WHEN h.sid IS NOT NULL THEN {_derived_id_sql("ids.pid")}
                ELSE ids.pid END AS parent_id,
           coalesce(nullif(upper(trim(s.kind)), ''), {_span_kind_tag()}, 'INTERNAL') AS kind,
           {_tags_sql("s.tags")} AS tags,
           {micros_to_ns_sql("s.timestamp")} AS start_ns,
           coalesce({micros_to_ns_sql("s.duration")}, 0) AS duration_ns
    FROM ids
    LEFT JOIN server_halves h
      ON NOT ids.shared AND h.line_no = ids.line_no AND h.tid = ids.tid AND h.sid = ids.pid
         AND h.service IS NOT DISTINCT FROM ids.service
), status AS (
    SELECT *,
           CASE WHEN {status} IN ('OK', 'ERROR', 'UNSET') THEN {status} END AS otel_status,
           {error_value} AS error_tag
    FROM linked
), decided AS (
    -- an error tag without otel.status_code (ERROR unless it says false) is read
    -- in canonical, as for every format; here it only gives the message
    SELECT *, otel_status AS status_code,
           coalesce(otel_status = 'ERROR', error_tag IS NOT NULL
                    AND lower(trim(coalesce(error_tag.s, ''))) <> 'false') AS is_error
    FROM status
)
SELECT line_no,
       tid AS trace_id,
       span_id,
       parent_id,
       s.name AS name,
       kind,
       service,
       coalesce({kv_value_sql("tags", "otel.scope.name")},
                {kv_value_sql("tags", "otel.library.name")}) AS scope_name,
       start_ns,
       {end_ns_sql("start_ns", "duration_ns")} AS end_ns,
       status_code,
       coalesce({kv_value_sql("tags", "otel.status_description")},
                CASE WHEN is_error AND lower(trim(error_tag.s)) NOT IN ('', 'true')
                     THEN error_tag.s END) AS status_message,
       list_concat(
           list_filter(tags, lambda a: a.k NOT IN ({transport})
                       AND NOT (a.k = 'otel.status_code' AND otel_status IS NOT NULL)),
           {endpoint_attrs}
       ) AS attrs,
       NULL::VARCHAR AS resource,
       CASE WHEN service IS NULL THEN {_EMPTY_KV}
            ELSE [{_attr_sql("service.name", "service", "to_json(service)::VARCHAR")}] END AS res_attrs,
       list_transform(list_filter(s.annotations, lambda a: a IS NOT NULL),
                      lambda a: {{'time_ns': {micros_to_ns_sql("a.timestamp")}, 'name': a.value,
                                  'attrs': {_EMPTY_KV}}}) AS events,
       [] AS links
FROM decided
"""


def problem_docs_sql(docs: str) -> str:
    """Records that parsed as JSON but are not a JSON array."""
    return f"""
SELECT line_no,
       'not Zipkin v2 JSON (a JSON array of spans, or of traces, was expected); '
       || 'pass --format if this is another format'
FROM {docs}
WHERE doc IS NOT NULL AND coalesce(json_type(doc), '') <> 'ARRAY'
"""


def sniff(head: Head) -> bool:
    """Zipkin v2 JSON: a list of spans with ``traceId``, or an empty list of traces."""
    text = head.stripped
    if head.binary or not text.startswith("["):
        return False
    if '"traceId"' in text and ('"localEndpoint"' in text or '"id"' in text):
        return True
    return re.fullmatch(r"\[\s*(\[\s*\]\s*,?\s*)*\]\s*", text) is not None


FORMAT = SpanFormat(
    name="zipkin",
    help="Zipkin v2 JSON: a list of spans, or a list of traces",
    sniff=sniff,
    schema=DOCUMENT,
    raw_sql=raw_spans_sql,
    envelope_problems_sql=problem_docs_sql,
    # A document is not cut into records per span: a shared span's server half is
    # re-parented within its record (above), which needs the whole trace.
    batches=json_batches,
)
