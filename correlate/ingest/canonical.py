"""From a format's raw spans to canonical span rows, in one SQL statement.

Every format's reader produces a relation ``raw`` of the same shape (see
:data:`RAW_COLUMNS`); this module turns it into the columns of the ``spans``
table plus ``line_no`` and ``problem``. Validation, id normalisation and the
mapping of old and new semantic-convention names happen here, once, for all
formats.
"""

from __future__ import annotations

from correlate.ingest.jsonschema import sql_string
from correlate.routes import path_of_sql, path_template_sql
from correlate.schema import SPAN_COLUMN_NAMES
from correlate.semconv import (
    COLUMN_ATTRIBUTES,
    DATABASE_PEERS,
    ERROR_ATTRIBUTE,
    GENERIC_SQL,
    INTEGER_COLUMNS,
    SERVICE_NAME,
    URL_COLUMNS,
    URL_TEMPLATE,
)

#: An attribute after a reader has decoded it: key, plain string form, JSON text.
KV_TYPE = "STRUCT(k VARCHAR, s VARCHAR, j VARCHAR)[]"

#: The relation each reader must produce, in this order.
RAW_COLUMNS: tuple[tuple[str, str], ...] = (
    ("line_no", "BIGINT"),
    ("trace_id", "VARCHAR"),
    ("span_id", "VARCHAR"),
    ("parent_id", "VARCHAR"),
    ("name", "VARCHAR"),
    ("kind", "VARCHAR"),
    ("service", "VARCHAR"),
    ("scope_name", "VARCHAR"),
    ("start_ns", "BIGINT"),
    ("end_ns", "BIGINT"),
    ("status_code", "VARCHAR"),
    ("status_message", "VARCHAR"),
    ("attrs", KV_TYPE),
    # The resource as a JSON object text, when the reader built it once per
    # resource (cheap); otherwise NULL and ``res_attrs`` is decoded per span.
    ("resource", "VARCHAR"),
    ("res_attrs", KV_TYPE),
    ("events", f"STRUCT(time_ns BIGINT, name VARCHAR, attrs {KV_TYPE})[]"),
    ("links", f"STRUCT(trace_id VARCHAR, span_id VARCHAR, attrs {KV_TYPE})[]"),
)


def typed_raw(raw_sql: str) -> str:
    """Cast a reader's output to the exact raw column types, so readers stay honest."""
    casts = ", ".join(f"CAST({name} AS {type_}) AS {name}" for name, type_ in RAW_COLUMNS)
    return f"SELECT {casts} FROM ({raw_sql})"


#: The longest span kept: a year. Longer is no request but a mangled time (a start of 1 ns
#: and an end in 2255 are both valid int64), and it would stretch the run's timeline.
MAX_SPAN_NS = 365 * 86400 * 1_000_000_000

# Problem checks, first match wins. Each is (SQL condition, SQL reason).
_CHECKS: tuple[tuple[str, str], ...] = (
    ("trace_id IS NULL OR trace_id = ''", "'span has no trace id'"),
    ("trace_id = repeat('0', 32)", "'trace id is all zeros (invalid)'"),
    ("span_id IS NULL OR span_id = ''", "'span has no span id'"),
    ("start_ns IS NULL", "'start time is missing or not an integer'"),
    ("end_ns IS NULL", "'end time is missing or not an integer'"),
    ("start_ns < 0", "'start time ' || start_ns || ' is before 1970 (negative)'"),
    ("end_ns < start_ns", "'span ends before it starts'"),
    (
        f"end_ns - start_ns > {MAX_SPAN_NS}",
        "'span lasts ' || ((end_ns - start_ns) // 86400000000000) || ' days (more than a year)'",
    ),
)


#: Where an id that is not hex digits of the right length is kept, in the span's attributes.
ORIGINAL_ID_ATTRIBUTES = {
    "trace_id": "correlate.original_trace_id",
    "span_id": "correlate.original_span_id",
    "parent_id": "correlate.original_parent_id",
}
_ID_DIGITS = {"trace_id": 32, "span_id": 16, "parent_id": 16}


def _foreign_id(expr: str, digits: int) -> str:
    """SQL: true when ``expr`` is an id but not ``digits`` hex digits (a tracer's own string)."""
    return (
        f"(nullif(trim({expr}), '') IS NOT NULL "
        f"AND NOT regexp_full_match(lower(trim({expr})), '[0-9a-f]{{{digits}}}'))"
    )


def stable_id(expr: str, digits: int) -> str:
    """SQL for the id in ``expr`` as ``digits`` lowercase hex digits.

    Hex ids of that length are kept as they are; any other id (some tracers and
    test suites use strings such as ``"order-1"``) becomes the first ``digits``
    hex digits of its MD5, the same for the same string everywhere, so parents,
    children and links still meet. Empty is NULL.
    """
    return (
        f"CASE WHEN nullif(trim({expr}), '') IS NULL THEN NULL "
        f"WHEN {_foreign_id(expr, digits)} THEN left(md5(trim({expr})), {digits}) "
        f"ELSE lower(trim({expr})) END"
    )


def _original_ids() -> str:
    """SQL: the attribute entries keeping each id that :func:`stable_id` replaced."""
    entries = ", ".join(
        f"CASE WHEN {_foreign_id(column, _ID_DIGITS[column])} THEN "
        f"{{'k': {sql_string(key)}, 's': trim({column}), 'j': to_json(trim({column}))::VARCHAR}} END"
        for column, key in ORIGINAL_ID_ATTRIBUTES.items()
    )
    return f"list_filter([{entries}], lambda a: a IS NOT NULL)"


def kv_json_object(list_expr: str) -> str:
    """SQL building a JSON object text from a decoded attribute list."""
    return (
        f"'{{' || array_to_string(list_transform({list_expr}, "
        "lambda a: to_json(a.k)::VARCHAR || ':' || a.j), ',') || '}'"
    )


def kv_lookup(list_expr: str, keys: tuple[str, ...]) -> str:
    """SQL for the string value of the first of ``keys`` present in the list.

    With old and new names both present (the ``/dup`` opt-in modes), the
    preference order of ``keys`` decides, not their position in the span.
    """
    picks = [f"list_filter({list_expr}, lambda a: a.k = {sql_string(k)})[1].s" for k in keys]
    return picks[0] if len(picks) == 1 else f"coalesce({', '.join(picks)})"


def _peer_database_sql(peer: str) -> str:
    """SQL: the database a ``peer.service`` value names, lowercased, else NULL."""
    from correlate.dialects import DIALECTS

    names = {n for d in DIALECTS.values() for n in (d.name, *d.db_systems)}
    names.update(DATABASE_PEERS)
    listed = ", ".join(sql_string(n) for n in sorted(names))
    return f"CASE WHEN lower(trim({peer})) IN ({listed}) THEN lower(trim({peer})) END"


def derived_sql(
    index: dict[str, int], error_present: str | None = None
) -> tuple[dict[str, str], str, str, str, str]:
    """SQL for the columns read from several sources at once, and ``mapped_from``.

    Returns ``(helpers, db_system, status_code, http_target_template,
    mapped_from)``: ``helpers`` names the values the others use more
    than once (computed once per span, a layer below them), the others are
    over the columns the attribute mapping produced (``db_system`` there is
    from ``db.system``-like names only) and ``_sem``. ``error_present`` is the
    SQL saying the span has the error attribute (default: a look-up in the
    ``attributes`` JSON); :mod:`correlate.clickhouse.views` reads a map instead.
    """
    statement_keys = COLUMN_ATTRIBUTES["db_statement"]
    only_sql_query = " AND ".join(f"_sem[{index[k]}] IS NULL" for k in statement_keys[:-1])
    sql_query_expr = f"({only_sql_query} AND _sem[{index[statement_keys[-1]]}] IS NOT NULL)"
    sql_query = "_sql_query"
    # peer.service names the callee; a database's name there makes the call a
    # database call (not for the server side, which is the callee itself).
    peer_db_expr = (
        f"CASE WHEN kind IS DISTINCT FROM 'SERVER' THEN {_peer_database_sql('peer_service')} END"
    )
    # OpenTracing's db.type "sql" says only "some SQL database": a database
    # named by peer.service is more precise.
    generic = f"(db_system IS NULL OR lower(db_system) = {sql_string(GENERIC_SQL)})"
    peer_db = "_peer_db"
    from_peer = f"({generic} AND {peer_db} IS NOT NULL)"
    db_system = (
        f"CASE WHEN {from_peer} THEN {peer_db} ELSE coalesce(db_system, "
        f"CASE WHEN {sql_query} THEN {sql_string(GENERIC_SQL)} END) END"
    )
    error = f"_sem[{index[ERROR_ATTRIBUTE]}]"
    if error_present is None:
        error_present = f"json_type(attributes, {sql_string(f'$.{ERROR_ATTRIBUTE}')}) IS NOT NULL"
    from_error = (
        f"(coalesce(status_code, 'UNSET') = 'UNSET' AND {error_present} "
        f"AND lower(trim(coalesce({error}, ''))) <> 'false')"
    )
    status = f"CASE WHEN {from_error} THEN 'ERROR' ELSE coalesce(status_code, 'UNSET') END"
    # "GET /prices/{sku}": OpenTelemetry and Brave name an HTTP span by its
    # method and route (or url.template); the path of such a name is a route.
    name_path_expr = f"nullif(regexp_extract(name, '^(?i:{_HTTP_METHODS}) (/[^ ?#]*)$', 1), '')"
    name_path = "_name_path"
    url_template = f"_sem[{index[URL_TEMPLATE]}]"
    http = f"(http_route IS NOT NULL OR url_path IS NOT NULL OR {url_template} IS NOT NULL)"
    from_name = path_template_sql(name_path)
    template = (
        f"CASE WHEN {http} THEN coalesce(http_route, {url_template}, {from_name}, "
        f"{path_template_sql('url_path')}) END"
    )
    entries = []
    for column, keys in COLUMN_ATTRIBUTES.items():
        if len(keys) > 1:
            whens = " ".join(
                f"WHEN _sem[{index[k]}] IS NOT NULL THEN {sql_string(f'{column}<-{k}')}"
                for k in keys[1:]
            )
            first = f"_sem[{index[keys[0]]}] IS NOT NULL"
            if column == "db_system":
                first = f"{first} OR {from_peer}"
            entries.append(f"CASE WHEN {first} THEN NULL {whens} END")
    entries.append(
        f"CASE WHEN {from_peer} THEN 'db_system<-peer.service' "
        f"WHEN db_system IS NULL AND {sql_query} THEN 'db_system<-sql.query' END"
    )
    entries.append(f"CASE WHEN {from_error} THEN 'status_code<-{ERROR_ATTRIBUTE}' END")
    entries.append(
        f"CASE WHEN {http} AND http_route IS NULL AND {url_template} IS NULL THEN "
        f"CASE WHEN {name_path} IS NOT NULL THEN 'http_target_template<-name' "
        "ELSE 'http_target_template<-url_path' END END"
    )
    listed = f"list_filter([{', '.join(entries)}], lambda m: m IS NOT NULL)"
    mapped_from = f"CASE WHEN len({listed}) > 0 THEN {listed} END"
    helpers = {"_peer_db": peer_db_expr, "_name_path": name_path_expr, "_sql_query": sql_query_expr}
    return helpers, db_system, status, template, mapped_from


_HTTP_METHODS = "GET|HEAD|POST|PUT|DELETE|CONNECT|OPTIONS|TRACE|PATCH"


def semantic_paths() -> list[str]:
    """Every attribute name a span column is read from, in the order of ``_sem``."""
    paths: list[str] = []
    for keys in COLUMN_ATTRIBUTES.values():
        paths.extend(k for k in keys if k not in paths)
    paths.extend(k for k in (URL_TEMPLATE, ERROR_ATTRIBUTE) if k not in paths)
    return paths


def semantic_columns(index: dict[str, int]) -> dict[str, str]:
    """column → SQL over ``_sem`` (the values of :func:`semantic_paths`, 1-based ``index``)."""
    mapped = {}
    for column, keys in COLUMN_ATTRIBUTES.items():
        picks = [f"_sem[{index[k]}]" for k in keys]
        value = picks[0] if len(picks) == 1 else f"coalesce({', '.join(picks)})"
        if column in INTEGER_COLUMNS:
            value = f"TRY_CAST(TRY_CAST({value} AS DOUBLE) AS INTEGER)"
        elif column in URL_COLUMNS:
            value = path_of_sql(value)
        mapped[column] = value
    return mapped


def canonical_select(raw: str = "raw") -> str:
    """SQL selecting canonical span columns, ``line_no`` and ``problem`` from ``raw``.

    The attributes object is built once as JSON text (valid by construction:
    keys and values pass through ``to_json`` or numeric casts), and every
    semantic-convention column is read from it with one multi-path extract.
    Then the columns read from several sources at once: ``db_system`` (also
    from a database named by ``peer.service``, or ``sql`` for a ``sql.query``),
    ``status_code`` (also from an ``error`` attribute), the route template
    ``http_target_template`` and ``mapped_from``.
    """
    problem = "CASE " + " ".join(f"WHEN {cond} THEN {reason}" for cond, reason in _CHECKS) + " END"
    paths = semantic_paths()
    index = {key: i + 1 for i, key in enumerate(paths)}
    path_list = ", ".join(sql_string(f'$."{key}"') for key in paths)
    mapped = [f"{value} AS {column}" for column, value in semantic_columns(index).items()]
    helpers, db_system, status, template, mapped_from = derived_sql(index)
    columns = {
        "run_id": "NULL::INTEGER",
        "file_id": "NULL::INTEGER",
        "trace_id": "trace_id",
        "span_id": "span_id",
        "parent_id": "parent_id",
        "name": "name",
        "kind": "kind",
        "service": "service",
        "scope_name": "scope_name",
        "start_ns": "start_ns",
        "end_ns": "end_ns",
        # Computed wide: a span the checks reject may still have ends an int64 cannot subtract.
        "duration_ns": "TRY_CAST(end_ns::HUGEINT - start_ns AS BIGINT)",
        "status_code": "status_code",
        "status_message": "nullif(status_message, '')",
        "attributes": "attributes",
        "resource": "resource",
        "events": (
            "list_transform(events, lambda e: {'time_ns': e.time_ns, 'name': e.name, "
            f"'attributes': {kv_json_object('e.attrs')}}})"
        ),
        "links": (
            f"list_transform(links, lambda l: {{'trace_id': {stable_id('l.trace_id', 32)}, "
            f"'span_id': {stable_id('l.span_id', 16)}, 'attributes': {kv_json_object('l.attrs')}}})"
        ),
        "http_target_template": "http_target_template",
        "mapped_from": "mapped_from",
    }
    for column in COLUMN_ATTRIBUTES:
        columns[column] = column
    assert set(columns) == set(SPAN_COLUMN_NAMES), set(columns) ^ set(SPAN_COLUMN_NAMES)
    select_list = ",\n       ".join(f"{columns[c]} AS {c}" for c in SPAN_COLUMN_NAMES)
    service = kv_lookup("res_attrs", (SERVICE_NAME,))
    return f"""
SELECT line_no, {problem} AS problem,
       {select_list}
FROM (
    SELECT * REPLACE ({db_system} AS db_system, {status} AS status_code),
           {template} AS http_target_template,
           {mapped_from} AS mapped_from
    FROM (
        SELECT *, {", ".join(f"{sql} AS {name}" for name, sql in helpers.items())}
        FROM (
        SELECT *, {", ".join(mapped)}
        FROM (
            SELECT *, json_extract_string(attributes, [{path_list}]) AS _sem
            FROM (
                SELECT * EXCLUDE (attrs, res_attrs) REPLACE (
                           {stable_id("trace_id", 32)} AS trace_id,
                           {stable_id("span_id", 16)} AS span_id,
                           {stable_id("parent_id", 16)} AS parent_id,
                           coalesce(service, {service}) AS service,
                           coalesce(resource, {kv_json_object("coalesce(res_attrs, [])")}) AS resource,
                           coalesce(events, []) AS events,
                           coalesce(links, []) AS links
                       ),
                       {kv_json_object(f"list_concat(coalesce(attrs, []), {_original_ids()})")}
                           AS attributes
                FROM {raw}
            )
        )
        )
    )
)
"""


# SQL decoding an OTLP AnyValue struct ``v`` (see otlp_json.ANY_VALUE) into a
# plain string form and a JSON text. Arrays and key-value lists are decoded one
# level deep (``["a", 2]``, ``{"k": "v"}``); anything nested deeper keeps its
# OTLP encoding, as JSON.
_AV_STRUCTURE = (
    '{"stringValue":"VARCHAR","boolValue":"BOOLEAN","intValue":"VARCHAR","doubleValue":"DOUBLE",'
    '"bytesValue":"VARCHAR","arrayValue":"JSON","kvlistValue":"JSON"}'
)


def anyvalue_string(v: str) -> str:
    return (
        f"coalesce({v}.stringValue, {v}.intValue, CAST({v}.boolValue AS VARCHAR), "
        f"CAST({v}.doubleValue AS VARCHAR), {v}.bytesValue, "
        f"{_array_json(v)}, {_kvlist_json(v)})"
    )


def _scalar_json(v: str) -> str:
    return (
        f"CASE WHEN {v}.stringValue IS NOT NULL THEN to_json({v}.stringValue)::VARCHAR "
        f"WHEN {v}.intValue IS NOT NULL THEN coalesce(CAST(TRY_CAST({v}.intValue AS HUGEINT) AS VARCHAR), "
        f"to_json({v}.intValue)::VARCHAR) "
        f"WHEN {v}.boolValue IS NOT NULL THEN CAST({v}.boolValue AS VARCHAR) "
        f"WHEN {v}.doubleValue IS NOT NULL THEN CASE WHEN isfinite({v}.doubleValue) "
        f"THEN CAST({v}.doubleValue AS VARCHAR) ELSE to_json(CAST({v}.doubleValue AS VARCHAR))::VARCHAR END "
        f"WHEN {v}.bytesValue IS NOT NULL THEN to_json({v}.bytesValue)::VARCHAR "
        f"WHEN {v}.arrayValue IS NOT NULL THEN CAST({v}.arrayValue AS VARCHAR) "
        f"WHEN {v}.kvlistValue IS NOT NULL THEN CAST({v}.kvlistValue AS VARCHAR) "
        "ELSE 'null' END"
    )


def _array_json(v: str) -> str:
    items = f"from_json(json_extract({v}.arrayValue, '$.values'), '[{_AV_STRUCTURE}]')"
    return f"'[' || array_to_string(list_transform({items}, lambda x: {_scalar_json('x')}), ',') || ']'"


def _kvlist_json(v: str) -> str:
    pairs = (
        f"from_json(json_extract({v}.kvlistValue, '$.values'), "
        f'\'[{{"key":"VARCHAR","value":{_AV_STRUCTURE}}}]\')'
    )
    return (
        f"'{{' || array_to_string(list_transform({pairs}, "
        f"lambda p: to_json(p.key)::VARCHAR || ':' || {_scalar_json('p.value')}), ',') || '}}'"
    )


def anyvalue_json(v: str) -> str:
    return (
        f"CASE WHEN {v}.arrayValue IS NOT NULL THEN coalesce({_array_json(v)}, '[]') "
        f"WHEN {v}.kvlistValue IS NOT NULL THEN coalesce({_kvlist_json(v)}, '{{}}') "
        f"ELSE {_scalar_json(v)} END"
    )
