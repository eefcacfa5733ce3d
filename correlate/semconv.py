"""Semantic-convention attribute names, old and new, mapped to span columns.

OpenTelemetry renamed most HTTP and database attributes (e.g. ``db.statement``
became ``db.query.text``); instrumentations emit either, or both. Each span
column lists the names that feed it, newest first: the first one present wins.
Sources: semantic-conventions v1.44 ``docs/non-normative/db-migration.md`` and
``http-migration.md`` (https://github.com/open-telemetry/semantic-conventions).

Older tracers speak older vocabularies, listed after the OpenTelemetry names:
OpenTracing's span tags (``db.type``, ``db.instance``, ``http.url``,
``peer.service``, ``error``; https://github.com/opentracing/specification,
``semantic_conventions.md``), Brave's ``http.path`` and ``sql.query`` (p6spy,
Jaeger's HotROD). Every column a span got from a name other than the first of
its list is recorded in the span's ``mapped_from`` (see
:mod:`correlate.ingest.canonical`), so which vocabulary a run spoke can be
audited.
"""

from __future__ import annotations

#: column -> attribute names, in order of preference
COLUMN_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "http_method": ("http.request.method", "http.method"),
    "http_route": ("http.route",),
    "http_status_code": ("http.response.status_code", "http.status_code"),
    # A URL's path part: url.full and http.url are whole URLs (or, from some
    # tracers, a path with its query string); Brave's http.path is a path.
    "url_path": ("url.path", "url.full", "http.target", "http.url", "http.path"),
    "db_system": ("db.system.name", "db.system", "db.type"),
    "db_statement": ("db.query.text", "db.statement", "sql.query"),
    "db_namespace": ("db.namespace", "db.name", "db.instance"),
    "db_operation": ("db.operation.name", "db.operation"),
    # On a client span the old name was net.peer.*; on a server span, net.host.*.
    "server_address": ("server.address", "net.peer.name", "net.host.name"),
    "server_port": ("server.port", "net.peer.port", "net.host.port"),
    "peer_service": ("service.peer.name", "peer.service"),
}

#: Columns whose value is the path part of what the attribute holds.
URL_COLUMNS = frozenset({"url_path"})

#: ``peer.service`` values that name a database: a span calling one is a database
#: call even without ``db.system`` (HotROD's ``peer.service=mysql``). Lowercase;
#: the SQL dialects' names and ``db.system`` aliases are added to these.
DATABASE_PEERS: tuple[str, ...] = (
    "redis",
    "memcached",
    "mongodb",
    "cassandra",
    "elasticsearch",
    "opensearch",
    "couchbase",
    "couchdb",
    "dynamodb",
    "hbase",
    "neo4j",
    "valkey",
)

#: ``db.system`` values whose "statements" are commands, not SQL (``GET ?``,
#: ``find orders``): fingerprinted by their tokens, never given to a SQL parser, which
#: would read Redis's ``GET ?`` as ``get AS $1``. Lowercase.
NOT_SQL_SYSTEMS = frozenset(
    {
        "redis",
        "valkey",
        "memcached",
        "mongodb",
        "elasticsearch",
        "opensearch",
        "couchdb",
        "couchbase",
        "dynamodb",
        "hbase",
        "neo4j",
        "geode",
        "aerospike",
        "etcd",
    }
)
#: :data:`NOT_SQL_SYSTEMS` as a SQL list of string literals, for ``db_system IN (…)``.
NOT_SQL_SYSTEMS_SQL = ", ".join(f"'{name}'" for name in sorted(NOT_SQL_SYSTEMS))

#: ``db_system`` of a span whose statement came from ``sql.query`` and that names
#: no system: OpenTracing's own ``db.type`` for "some SQL database".
GENERIC_SQL = "sql"

#: An HTTP client span's route template (OpenTelemetry's ``url.template``).
URL_TEMPLATE = "url.template"

#: The attribute whose presence (with any value but ``false``) marks an error
#: when the span's status says nothing (OpenTracing's and Zipkin's ``error``).
ERROR_ATTRIBUTE = "error"

#: columns holding integers; a value that is not one becomes NULL, not an error
INTEGER_COLUMNS = frozenset({"http_status_code", "server_port"})

SERVICE_NAME = "service.name"
