"""An HTTP client span's route template, from the server span it called.

At read time a client span's ``http_target_template`` is its own URL's path
with the ids folded (:mod:`correlate.routes`). The callee knows better: its
SERVER span, the client span's child in the same trace, names the route it
matched (``http.route``, or a span name such as ``get /prices/{sku}``), given its
leading slash when the framework left it off (:func:`~correlate.routes.route_of`). The
callee may sit in another file of the run, so this runs once the whole run is
in the store, and again after each ingest into it (it is idempotent).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from correlate.routes import route_sql

if TYPE_CHECKING:
    from correlate.store import Store

__all__ = ["CALLEE_MAPPING", "link_callee_routes"]

#: The ``mapped_from`` entry of a client span whose template came from its callee.
CALLEE_MAPPING = "http_target_template<-callee"


def link_callee_routes(store: Store, run_id: int) -> int:
    """Give each HTTP client span of the run its callee's route template; return how many."""
    with store.atomic() as con:
        row = con.execute(
            f"""
            UPDATE spans AS c
            SET http_target_template = s.http_target_template,
                mapped_from = list_append(
                    list_filter(coalesce(c.mapped_from, []),
                                lambda m: NOT starts_with(m, 'http_target_template<-')),
                    $mapping)
            FROM (
                SELECT trace_id, parent_id,
                       any_value({route_sql("http_target_template", "scope_name")})
                           AS http_target_template
                FROM spans
                WHERE run_id = $run AND kind = 'SERVER' AND parent_id IS NOT NULL
                  AND http_target_template IS NOT NULL
                  -- a folded path is no better than the caller's own
                  AND NOT list_contains(coalesce(mapped_from, []),
                                        'http_target_template<-url_path')
                GROUP BY trace_id, parent_id
            ) s
            WHERE c.run_id = $run AND c.kind = 'CLIENT' AND c.http_target_template IS NOT NULL
              AND s.trace_id = c.trace_id AND s.parent_id = c.span_id
              AND c.http_target_template IS DISTINCT FROM s.http_target_template
            """,
            {"run": run_id, "mapping": CALLEE_MAPPING},
        ).fetchone()
    return int(row[0]) if row else 0
