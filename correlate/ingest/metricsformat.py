"""OTLP metrics as an input format: ``correlate ingest`` reads the pool instruments of a run.

The points are read by :mod:`correlate.ingest.otlp_metrics`; the pool
instruments among them become ``pool_samples`` rows
(:mod:`correlate.ingest.poolmetrics`). Other metrics are counted in the
file's records but not kept: nothing in the analysis reads them yet.
"""

from __future__ import annotations

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
    """Insert the pool samples of metrics file ``path``; (rows added, problems)."""
    points: list[Point] = []
    problems: list[tuple[int | None, str]] = []
    for item in otlp_metrics.read_points(path):
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
