"""Semantic-convention attribute names, old and new, mapped to span columns.

OpenTelemetry renamed most HTTP and database attributes (e.g. ``db.statement``
became ``db.query.text``); instrumentations emit either, or both. Each span
column lists the names that feed it, newest first: the first one present wins.
Sources: semantic-conventions v1.44 ``docs/non-normative/db-migration.md`` and
``http-migration.md`` (https://github.com/open-telemetry/semantic-conventions).
"""

from __future__ import annotations

#: column -> attribute names, in order of preference
COLUMN_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "http_method": ("http.request.method", "http.method"),
    "http_route": ("http.route",),
    "http_status_code": ("http.response.status_code", "http.status_code"),
    "url_path": ("url.path", "http.target"),
    "db_system": ("db.system.name", "db.system"),
    "db_statement": ("db.query.text", "db.statement"),
    "db_namespace": ("db.namespace", "db.name"),
    "db_operation": ("db.operation.name", "db.operation"),
    # On a client span the old name was net.peer.*; on a server span, net.host.*.
    "server_address": ("server.address", "net.peer.name", "net.host.name"),
    "server_port": ("server.port", "net.peer.port", "net.host.port"),
}

#: columns holding integers; a value that is not one becomes NULL, not an error
INTEGER_COLUMNS = frozenset({"http_status_code", "server_port"})

SERVICE_NAME = "service.name"
