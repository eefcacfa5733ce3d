"""OTLP metrics as an input format: ``correlate ingest`` reads the pool instruments of a run.

The points are read by :mod:`correlate.ingest.otlp_metrics`; the pool
instruments among them become ``pool_samples`` rows
(:mod:`correlate.ingest.poolmetrics`). Other metrics are counted in the
file's records but not kept: nothing in the analysis reads them yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from correlate.ingest import otlp_metrics
from correlate.ingest.otlp_metrics import Point, Problem
from correlate.ingest.poolmetrics import pool_samples
from correlate.inputs import TableFormat

if TYPE_CHECKING:
    from correlate.store import Store


def load_metrics(
    store: Store, run_id: int, file_id: int, path: Path
) -> tuple[int, list[tuple[int | None, str]]]:
    """Insert the pool samples of JSON metrics file ``path``; (rows added, problems)."""
    return _insert(store, run_id, file_id, otlp_metrics.read_points(path))


def load_proto_metrics(
    store: Store, run_id: int, file_id: int, path: Path
) -> tuple[int, list[tuple[int | None, str]]]:
    """Insert the pool samples of framed protobuf metrics file ``path``; (rows added, problems)."""
    return _insert(store, run_id, file_id, otlp_metrics.read_proto_points(path))


def _insert(
    store: Store, run_id: int, file_id: int, items: Iterable[Point | Problem]
) -> tuple[int, list[tuple[int | None, str]]]:
    points: list[Point] = []
    problems: list[tuple[int | None, str]] = []
    for item in items:
        if isinstance(item, Problem):
            problems.append((item.line, item.reason))
        else:
            points.append(item)
    rows, notes = pool_samples(points)
    problems.extend((None, note) for note in notes)
    if rows:
        store.con.executemany(
            "INSERT INTO pool_samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[run_id, file_id, *row] for row in rows],
        )
    return len(rows), problems


FORMAT = TableFormat(
    name="otlp-metrics",
    family="metrics",
    help="OTLP metrics as JSON (Collector file exporter, OTLP JSON file exporter, the SDK's "
    "console exporter, correlate collect); pool instruments become pool samples",
    sniff=otlp_metrics.sniff,
    load=load_metrics,
)

PROTO_FORMAT = TableFormat(
    name="otlp-metrics-proto",
    family="metrics",
    help="OTLP metrics as protobuf: the Collector file exporter's framing (format: proto), "
    "varint-delimited, or one raw request; pool instruments become pool samples",
    sniff=otlp_metrics.sniff_proto,
    load=load_proto_metrics,
)
