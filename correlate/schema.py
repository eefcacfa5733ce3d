"""The store's tables, and how an older store file is brought up to date.

The schema is a few canonical tables (``runs``, ``files``, ``spans``,
``problems``) so the analysis can stay plain SQL over them. Column names of
``spans`` follow the canonical model in :data:`SPAN_COLUMNS`; every ingest
format produces exactly these.
"""

from __future__ import annotations

SCHEMA_VERSION = 8
#: The last schema version whose migration re-keys statements (``statement_key``).
REKEYED = 8

#: Canonical span columns, in table order, with their DuckDB types.
SPAN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "INTEGER NOT NULL"),
    ("file_id", "INTEGER NOT NULL"),
    ("trace_id", "VARCHAR NOT NULL"),
    ("span_id", "VARCHAR NOT NULL"),
    ("parent_id", "VARCHAR"),
    ("name", "VARCHAR"),
    ("kind", "VARCHAR"),
    ("service", "VARCHAR"),
    ("scope_name", "VARCHAR"),
    ("start_ns", "BIGINT NOT NULL"),
    ("end_ns", "BIGINT NOT NULL"),
    ("duration_ns", "BIGINT NOT NULL"),
    ("status_code", "VARCHAR"),
    ("status_message", "VARCHAR"),
    ("http_method", "VARCHAR"),
    ("http_route", "VARCHAR"),
    ("http_status_code", "INTEGER"),
    ("url_path", "VARCHAR"),
    ("db_system", "VARCHAR"),
    ("db_statement", "VARCHAR"),
    ("db_namespace", "VARCHAR"),
    ("db_operation", "VARCHAR"),
    ("server_address", "VARCHAR"),
    ("server_port", "INTEGER"),
    ("attributes", "JSON"),
    ("resource", "JSON"),
    ("events", "STRUCT(time_ns BIGINT, name VARCHAR, attributes JSON)[]"),
    ("links", "STRUCT(trace_id VARCHAR, span_id VARCHAR, attributes JSON)[]"),
)

#: Span columns added in schema 4, kept last so a migrated table has the same
#: column order as a new one: the service a span calls (``peer.service``); the
#: route template an HTTP span served or called (``correlate.routes``); and
#: ``column<-attribute`` for every column filled from an older or foreign name.
TAG_SPAN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("peer_service", "VARCHAR"),
    ("http_target_template", "VARCHAR"),
    ("mapped_from", "VARCHAR[]"),
)
SPAN_COLUMNS += TAG_SPAN_COLUMNS

SPAN_COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in SPAN_COLUMNS)

_SPANS_DDL = ",\n    ".join(f"{name} {type_}" for name, type_ in SPAN_COLUMNS)

DDL = f"""
CREATE TABLE meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);
CREATE SEQUENCE run_id_seq START 1;
CREATE TABLE runs (
    run_id INTEGER PRIMARY KEY DEFAULT nextval('run_id_seq'),
    name VARCHAR NOT NULL UNIQUE,
    labels MAP(VARCHAR, VARCHAR),
    created TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    source VARCHAR,
    start_ns BIGINT,
    end_ns BIGINT,
    span_count BIGINT NOT NULL DEFAULT 0,
    trace_count BIGINT NOT NULL DEFAULT 0,
    services VARCHAR[],
    skipped_count BIGINT NOT NULL DEFAULT 0,
    duplicate_count BIGINT NOT NULL DEFAULT 0
);
CREATE SEQUENCE file_id_seq START 1;
CREATE TABLE files (
    file_id INTEGER PRIMARY KEY DEFAULT nextval('file_id_seq'),
    run_id INTEGER NOT NULL,
    path VARCHAR NOT NULL,
    size BIGINT NOT NULL,
    sha256 VARCHAR NOT NULL,
    format VARCHAR NOT NULL,
    ingested TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    -- spans for span files; rows for a run directory's companion files
    records_read BIGINT NOT NULL,
    records_added BIGINT NOT NULL,
    duplicates BIGINT NOT NULL,
    skipped BIGINT NOT NULL,
    UNIQUE (run_id, sha256)
);
-- Every record an ingest skipped, with where and why: nothing is dropped unseen.
CREATE TABLE problems (
    file_id INTEGER NOT NULL,
    line BIGINT,
    reason VARCHAR NOT NULL
);
CREATE TABLE spans (
    {_SPANS_DDL}
);
-- A run directory's companion files (docs/run-directory.md), one table per kind,
-- columns named as the files' fields. Written by correlate.ingest.rundir, which
-- documents them and checks they stay in step with its field lists.
CREATE TABLE pool_checkouts (
    run_id INTEGER NOT NULL,
    file_id INTEGER NOT NULL,
    pid BIGINT NOT NULL,
    pool VARCHAR NOT NULL,
    trace_id VARCHAR,
    request_span_id VARCHAR,
    connect_span_id VARCHAR,
    span_id VARCHAR,
    route VARCHAR,
    request_name VARCHAR,
    start_unix_nano BIGINT NOT NULL,
    acquired_unix_nano BIGINT,
    returned_unix_nano BIGINT,
    wait_ns BIGINT NOT NULL,
    hold_ns BIGINT,
    new_connection BOOLEAN NOT NULL,
    location VARCHAR,
    thread VARCHAR NOT NULL,
    outcome VARCHAR NOT NULL,
    error VARCHAR,
    leak_suspect BOOLEAN NOT NULL,
    request_end_unix_nano BIGINT
);
CREATE TABLE pool_samples (
    run_id INTEGER NOT NULL,
    file_id INTEGER NOT NULL,
    time_unix_nano BIGINT NOT NULL,
    pid BIGINT NOT NULL,
    pool VARCHAR NOT NULL,
    pool_class VARCHAR NOT NULL,
    size INTEGER,
    max_overflow INTEGER,
    capacity INTEGER,
    checked_out INTEGER NOT NULL,
    checked_in INTEGER,
    overflow INTEGER,
    -- NULL where the pool's OpenTelemetry metrics do not say (schema 6)
    waiters INTEGER,
    timeouts_total BIGINT,
    checkouts_total BIGINT,
    leak_suspects_open INTEGER
);
CREATE TABLE pool_leaks (
    run_id INTEGER NOT NULL,
    file_id INTEGER NOT NULL,
    detected_unix_nano BIGINT NOT NULL,
    pid BIGINT NOT NULL,
    pool VARCHAR NOT NULL,
    trace_id VARCHAR,
    request_span_id VARCHAR,
    connect_span_id VARCHAR,
    span_id VARCHAR,
    route VARCHAR,
    request_name VARCHAR,
    location VARCHAR,
    thread VARCHAR NOT NULL,
    checked_out_unix_nano BIGINT NOT NULL,
    request_end_unix_nano BIGINT NOT NULL,
    held_ns BIGINT NOT NULL
);
-- trace_id and span_id are NULL for a request sent without trace context
-- (k6 without a metadata trace_id); such a request joins no server span.
CREATE TABLE client_requests (
    run_id INTEGER NOT NULL,
    file_id INTEGER NOT NULL,
    trace_id VARCHAR,
    span_id VARCHAR,
    method VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    start_unix_nano BIGINT NOT NULL,
    duration_ns BIGINT NOT NULL,
    status_code INTEGER NOT NULL,
    ok BOOLEAN NOT NULL,
    error VARCHAR,
    response_bytes BIGINT NOT NULL,
    user INTEGER NOT NULL
);
-- run.json as written, one row per run.json file read.
CREATE TABLE run_info (
    run_id INTEGER NOT NULL,
    file_id INTEGER NOT NULL,
    info JSON
);
"""

# What the load generator's own results said (correlate.ingest.k6, correlate.ingest.locust,
# documented in correlate.ingest.loadgen). Shared by a new store and the migration from 1.
LOAD_DDL = """
-- The load over time: one row per sample (k6 vus points, Locust stats history).
CREATE TABLE load_samples (
    run_id INTEGER NOT NULL,
    file_id INTEGER NOT NULL,
    tool VARCHAR NOT NULL,
    time_unix_nano BIGINT NOT NULL,
    users INTEGER,
    requests_per_s DOUBLE,
    failures_per_s DOUBLE,
    -- the endpoint of a per-endpoint row; both NULL for the whole run
    method VARCHAR,
    name VARCHAR
);
-- End-of-run statistics: k6 summaries per metric, Locust per endpoint (name NULL: all).
CREATE TABLE load_summary (
    run_id INTEGER NOT NULL,
    file_id INTEGER NOT NULL,
    tool VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,
    method VARCHAR,
    name VARCHAR,
    stat VARCHAR NOT NULL,
    value DOUBLE
);
-- k6 thresholds, passed = true when the threshold held (each summary format says it its own way).
CREATE TABLE load_thresholds (
    run_id INTEGER NOT NULL,
    file_id INTEGER NOT NULL,
    tool VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,
    threshold VARCHAR NOT NULL,
    passed BOOLEAN NOT NULL
);
-- Locust failures (per endpoint and error) and exceptions (per message, with traceback).
CREATE TABLE load_failures (
    run_id INTEGER NOT NULL,
    file_id INTEGER NOT NULL,
    tool VARCHAR NOT NULL,
    method VARCHAR,
    name VARCHAR,
    error VARCHAR NOT NULL,
    occurrences BIGINT NOT NULL,
    first_seen_unix_nano BIGINT,
    last_seen_unix_nano BIGINT,
    traceback VARCHAR,
    nodes VARCHAR
);
"""
DDL += LOAD_DDL

# Statement fingerprints and query plans (correlate.statements, correlate.plans.store).
# An item of a list of placeholders, as the key sees it once numbers are ? (Oracle's
# `:1` is then `:?`). `:name` is a bind in every dialect's tokenizer; `:1` only in
# Oracle's; `@name` only in T-SQL's, and not in a batch that DECLAREs its variables
# (which ones are variables the key cannot tell).
_LIST_ITEM = r"\$?\?|%s|%\([A-Za-z0-9_]*\)s|:[A-Za-z_][A-Za-z0-9_]*"
_ORACLE_LIST_ITEM = r"\$?\?|:\?|:[A-Za-z_][A-Za-z0-9_$#]*"
_TSQL_LIST_ITEM = _LIST_ITEM + r"|@[A-Za-z_][A-Za-z0-9_@#$]*"
#: ``db.system`` values of the dialects with binds of their own (correlate.dialects).
ORACLE_SYSTEMS = ("oracle", "oracle.db")
TSQL_SYSTEMS = ("mssql", "microsoft.sql_server")


def _collapse(item: str) -> str:
    """SQL replacing, in ``v``, each ``IN`` list of ``item`` by ``IN (?)``. Only an ``IN``
    list: the normaliser keeps a function's arguments (``coalesce($1, $2)``) and a
    ``VALUES`` row as they are, so the key must too."""
    pattern = rf"(\b[Ii][Nn]\s*)\(\s*({item})(\s*,\s*({item}))*\s*\)"
    return f"regexp_replace(v, '{pattern}', '\\1(?)', 'g')"


def _systems(names: tuple[str, ...]) -> str:
    return ", ".join(f"'{n}'" for n in names)


_STATEMENT_KEY_DDL = f"""
-- A trailing sqlcommenter comment makes every statement text unique; the
-- statement's identity is its text without it. Used by the table and view below.
CREATE MACRO strip_sqlcommenter(sql) AS
    regexp_replace(sql, '\\s*/\\*([^*]|\\*[^/])*=''([^*]|\\*[^/])*\\*/\\s*(;\\s*)?$', '');
-- Texts that differ only in literal values share a key (quoted strings and numbers
-- become ?, lists of them and of placeholders collapse), so each shape is fingerprinted
-- once in Python however many literal variants and list lengths a run has. The full
-- normaliser merges at least what the key merges.
-- Why regexes and not correlate.fingerprint.tokens: this runs vectorised inside
-- DuckDB over every span of a run, before any Python sees a text. It need not
-- find placeholders exactly, only never give one key to texts the tokenizer
-- tells apart; tests/test_dialects.py checks that on generated statements. What a
-- placeholder is depends on the dialect: the key takes the span's db.system.
-- A text that holds placeholders (?, %s, %(name)s, $1, :name, :1, @name) keys apart
-- from its literal variants: `id = ?` and `id = 42` look alike once literals become ?,
-- but one may parse where the other cannot, and then they fingerprint apart;
-- which came first must not decide the other's fingerprint.
CREATE MACRO statement_key_values(sql) AS
    regexp_replace(
        regexp_replace(strip_sqlcommenter(sql), '''([^'']|'''')*''', '?', 'g'),
        '\\b[0-9]+(\\.[0-9]+)?\\b', '?', 'g');
CREATE MACRO statement_key_lists(system, sql, v) AS
    CASE WHEN lower(trim(system)) IN ({_systems(ORACLE_SYSTEMS)})
         THEN {_collapse(_ORACLE_LIST_ITEM)}
         WHEN lower(trim(system)) IN ({_systems(TSQL_SYSTEMS)})
              AND NOT regexp_matches(sql, '(?i)\\bdeclare\\b')
         THEN {_collapse(_TSQL_LIST_ITEM)}
         ELSE {_collapse(_LIST_ITEM)} END;
CREATE MACRO statement_key(system, sql) AS
    CASE WHEN regexp_matches(
             regexp_replace(strip_sqlcommenter(sql), '''([^'']|'''')*''', '', 'g'),
             '\\?|%s|%\\([A-Za-z0-9_]*\\)s|\\$[0-9]+|(^|[^:]):[A-Za-z0-9_]|@[A-Za-z_]')
         THEN 'placeholders: ' ELSE '' END ||
    statement_key_lists(system, sql, statement_key_values(sql));
"""
DDL += _STATEMENT_KEY_DDL
DDL += """
-- One row per statement shape (statement_key) of a run, with one real text of it.
CREATE TABLE statements (
    run_id INTEGER NOT NULL,
    db_system VARCHAR,
    key VARCHAR NOT NULL,
    text VARCHAR NOT NULL,
    fingerprint VARCHAR NOT NULL,
    normalized VARCHAR NOT NULL,
    method VARCHAR NOT NULL,
    operation VARCHAR,
    tables VARCHAR[]
);
"""
# The view names every span column, listed rather than s.* (in a join, engines differ
# in how they name a star's columns): a migration adding span columns re-creates it,
# or it keeps listing the old ones.
DB_SPANS_VIEW = """
-- Every DB span with its fingerprint, and the ids its sqlcommenter traceparent names.
CREATE VIEW db_spans AS
SELECT {span_columns}, st.fingerprint, st.normalized, st.operation, st.tables,
       nullif(regexp_extract(s.db_statement, 'traceparent=''?00-([0-9a-f]{32})-', 1), '') AS comment_trace_id,
       nullif(regexp_extract(s.db_statement, 'traceparent=''?00-[0-9a-f]{32}-([0-9a-f]{16})-', 1), '') AS comment_span_id
FROM spans s
JOIN statements st
  ON st.run_id = s.run_id
 AND st.db_system IS NOT DISTINCT FROM s.db_system
 AND st.key = statement_key(s.db_system, s.db_statement)
WHERE s.db_statement IS NOT NULL;
""".replace("{span_columns}", ", ".join(f"s.{name}" for name, _ in SPAN_COLUMNS))
DDL += DB_SPANS_VIEW
DDL += """
CREATE SEQUENCE plan_id_seq START 1;
-- One row per plan captured or read, or per statement that could not be explained.
CREATE TABLE plans (
    plan_id INTEGER PRIMARY KEY DEFAULT nextval('plan_id_seq'),
    run_id INTEGER NOT NULL,
    fingerprint VARCHAR,
    -- how the plan is tied to spans: 'fingerprint' (same statement shape) or
    -- 'traceparent' (the exact span, from a logged plan's sqlcommenter comment)
    link VARCHAR NOT NULL,
    trace_id VARCHAR,
    span_id VARCHAR,
    source VARCHAR NOT NULL,
    method VARCHAR,
    captured TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    server_version VARCHAR,
    settings JSON,
    statement VARCHAR,
    explained_sql VARCHAR,
    analyzed BOOLEAN,
    planning_ms DOUBLE,
    execution_ms DOUBLE,
    raw JSON,
    reason VARCHAR,
    reason_code VARCHAR
);
CREATE TABLE plan_nodes (
    plan_id INTEGER NOT NULL,
    node_id INTEGER NOT NULL,
    parent_id INTEGER,
    depth INTEGER NOT NULL,
    node_type VARCHAR NOT NULL,
    operation VARCHAR NOT NULL,
    parent_relationship VARCHAR,
    relation VARCHAR,
    schema VARCHAR,
    alias VARCHAR,
    index_name VARCHAR,
    estimated_rows DOUBLE,
    estimated_rows_examined DOUBLE,
    startup_cost DOUBLE,
    total_cost DOUBLE,
    actual_rows DOUBLE,
    actual_loops DOUBLE,
    actual_startup_time DOUBLE,
    actual_total_time DOUBLE,
    total_rows DOUBLE,
    total_time DOUBLE,
    self_time DOUBLE,
    self_cost DOUBLE,
    filter VARCHAR,
    index_condition VARCHAR,
    join_condition VARCHAR,
    rows_removed_by_filter DOUBLE,
    rows_removed_by_index_recheck DOUBLE,
    sort_key JSON,
    sort_method VARCHAR,
    sort_space_kb DOUBLE,
    sort_space_type VARCHAR,
    hash_batches DOUBLE,
    original_hash_batches DOUBLE,
    spilled BOOLEAN,
    exact_heap_blocks DOUBLE,
    lossy_heap_blocks DOUBLE,
    shared_hit_blocks DOUBLE,
    shared_read_blocks DOUBLE,
    temp_read_blocks DOUBLE,
    temp_written_blocks DOUBLE,
    workers_planned DOUBLE,
    workers_launched DOUBLE,
    extra JSON
);
CREATE TABLE plan_insights (
    plan_id INTEGER NOT NULL,
    rule VARCHAR NOT NULL,
    severity VARCHAR NOT NULL,
    node_id INTEGER,
    relation VARCHAR,
    message VARCHAR NOT NULL,
    suggestion VARCHAR,
    evidence JSON,
    measured BOOLEAN NOT NULL
);
"""

# What the database itself showed during a run (correlate.watch, docs/run-directory.md):
# columns after run_id, file_id, watch are the record fields of correlate.watch.records.
# ``watch`` numbers the watcher sessions a file holds (a watcher restarted into the same
# run directory appends), so (file_id, watch, sample) names one poll.
WATCH_DDL = """
CREATE TABLE db_watch (
    run_id INTEGER NOT NULL,
    file_id INTEGER NOT NULL,
    watch INTEGER NOT NULL,
    format_version BIGINT NOT NULL,
    time_unix_nano BIGINT NOT NULL,
    database VARCHAR NOT NULL,
    server_version VARCHAR,
    url VARCHAR NOT NULL,
    interval_s DOUBLE NOT NULL,
    watcher_pid BIGINT NOT NULL,
    lock_view VARCHAR,
    statement_timeout_ms BIGINT,
    query_text_limit BIGINT NOT NULL
);
-- One row per poll; server_time_unix_nano is NULL when it failed (error says why).
CREATE TABLE db_samples (
    run_id INTEGER NOT NULL,
    file_id INTEGER NOT NULL,
    watch INTEGER NOT NULL,
    sample BIGINT NOT NULL,
    time_unix_nano BIGINT NOT NULL,
    server_time_unix_nano BIGINT,
    query_ns BIGINT,
    sessions BIGINT NOT NULL,
    lock_waits BIGINT NOT NULL,
    error VARCHAR,
    reconnected BOOLEAN NOT NULL
);
CREATE TABLE db_activity (
    run_id INTEGER NOT NULL,
    file_id INTEGER NOT NULL,
    watch INTEGER NOT NULL,
    sample BIGINT NOT NULL,
    time_unix_nano BIGINT NOT NULL,
    server_time_unix_nano BIGINT,
    session_id BIGINT NOT NULL,
    activity VARCHAR NOT NULL,
    state VARCHAR,
    command VARCHAR,
    wait_event_type VARCHAR,
    wait_event VARCHAR,
    "user" VARCHAR,
    database VARCHAR,
    client VARCHAR,
    application VARCHAR,
    backend_type VARCHAR,
    session_start_unix_nano BIGINT,
    xact_start_unix_nano BIGINT,
    query_start_unix_nano BIGINT,
    state_change_unix_nano BIGINT,
    xact_age_ns BIGINT,
    state_age_ns BIGINT,
    query VARCHAR,
    fingerprint VARCHAR
);
CREATE TABLE db_lock_waits (
    run_id INTEGER NOT NULL,
    file_id INTEGER NOT NULL,
    watch INTEGER NOT NULL,
    sample BIGINT NOT NULL,
    time_unix_nano BIGINT NOT NULL,
    server_time_unix_nano BIGINT,
    blocked_id BIGINT NOT NULL,
    blocking_id BIGINT NOT NULL,
    lock_type VARCHAR,
    lock_mode VARCHAR,
    relation VARCHAR,
    wait_started_unix_nano BIGINT,
    blocked_query VARCHAR,
    blocked_fingerprint VARCHAR,
    blocking_query VARCHAR
);
"""
DDL += WATCH_DDL

_KEY_MACROS = _STATEMENT_KEY_DDL.replace("CREATE MACRO", "CREATE OR REPLACE MACRO")
_DB_SPANS_VIEW_AGAIN = DB_SPANS_VIEW.replace("CREATE VIEW", "CREATE OR REPLACE VIEW")
# Statements keyed anew; texts whose keys now agree (list lengths) keep one row.
_REKEY = """
UPDATE statements SET key = statement_key(db_system, text);
DELETE FROM statements WHERE rowid NOT IN (
    SELECT min(rowid) FROM statements GROUP BY run_id, db_system, key);
"""

#: ``MIGRATIONS[v]`` turns a version-``v`` store into version ``v + 1``.
MIGRATIONS: dict[int, str] = {
    # 2: the load generator's results (k6, Locust), and client requests without trace context.
    1: """
    ALTER TABLE client_requests ALTER COLUMN trace_id DROP NOT NULL;
    ALTER TABLE client_requests ALTER COLUMN span_id DROP NOT NULL;
    """
    + LOAD_DDL,
    # 3: what the database showed during a run (correlate watch).
    2: WATCH_DDL,
    # 4: span columns from tag mappings (peer service, route template, mapped_from).
    3: "".join(
        f"ALTER TABLE spans ADD COLUMN {name} {type_};\n" for name, type_ in TAG_SPAN_COLUMNS
    )
    + _KEY_MACROS
    + _DB_SPANS_VIEW_AGAIN,
    # 5: texts with placeholders key apart from their literal variants.
    4: _KEY_MACROS + _REKEY,
    # 6: pool samples read from OpenTelemetry metrics, which may not know every count.
    5: "".join(
        f"ALTER TABLE pool_samples ALTER COLUMN {c} DROP NOT NULL;\n"
        for c in ("waiters", "timeouts_total", "checkouts_total", "leak_suspects_open")
    ),
    # 7: the key reads the dialect's binds (`:1`, `@P0`): lists of them collapse.
    6: _KEY_MACROS + _DB_SPANS_VIEW_AGAIN + _REKEY,
    # 8: only IN lists collapse in the key, not a function's arguments. A text whose new
    # key has no row yet is fingerprinted when its run is next read.
    7: _KEY_MACROS + _REKEY,
}
