"""Shared by the ClickHouse tests: a run exported to chDB, and rows made comparable.

A view row and a store row of the same span differ in two known ways (see
correlate.clickhouse.views): attribute values are strings in ClickHouse, and an
empty ``mapped_from`` is ``[]`` there, NULL in the store. :func:`comparable`
applies exactly those two and nothing else.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import correlate
from correlate.clickhouse.connection import Connection
from correlate.clickhouse.export import export
from correlate.clickhouse.otel_schema import OtelTables
from correlate.clickhouse.views import create_canonical_views
from correlate.store import Store

ROOT = Path(__file__).parent.parent


def exporter_string(value: Any) -> str:
    """A JSON value as the exporter stores it (``pcommon.Value.AsString()``)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return json.dumps(value)
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _object(text: str | None) -> dict[str, str]:
    return {k: exporter_string(v) for k, v in json.loads(text or "{}").items()}


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    """A span row (store or view) with JSON parsed and values as the exporter's strings."""
    out = dict(row)
    out["attributes"] = _object(row["attributes"])
    out["resource"] = _object(row["resource"])
    out["events"] = [
        (e["time_ns"], e["name"], _object(e["attributes"])) for e in row["events"] or []
    ]
    out["links"] = [
        (e["trace_id"], e["span_id"], _object(e["attributes"])) for e in row["links"] or []
    ]
    out["mapped_from"] = row["mapped_from"] or []
    out["file_id"] = 0
    return out


def ingested(path: Path, run: str = "r") -> Store:
    store = correlate.open_store(":memory:")
    store.ingest([path], run)
    return store


def export_to(store: Store, conn: Connection, database: str, run: str = "r") -> Connection:
    """Export ``run`` into ``database`` and create the views in ``database + '_work'``."""
    target = conn.using(OtelTables(database=database))
    export(run, store=store, to=target)
    create_canonical_views(target, None, f"{database}_work")
    return target


def key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["trace_id"], row["span_id"], row["kind"], row["start_ns"], row["name"])


def local_spans(store: Store) -> list[dict[str, Any]]:
    rows = store.con.sql("SELECT * FROM spans").to_arrow_table().to_pylist()
    return sorted((comparable(r) for r in rows), key=key)


def view_spans(conn: Connection, work_db: str, where: str = "") -> list[dict[str, Any]]:
    rows = conn.query_arrow(f"SELECT * FROM `{work_db}`.spans {where}").to_pylist()
    return sorted((comparable(r) for r in rows), key=key)
