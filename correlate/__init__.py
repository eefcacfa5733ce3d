"""correlate: why did the service get slow under load?

Load-test spans, SQL statements with their plans, and connection-pool
telemetry, joined in DuckDB and turned into a verdict.

>>> import correlate
>>> store = correlate.open_store(":memory:")
>>> store.close()
"""

from __future__ import annotations

from correlate.analysis import Finding, Run, open_run
from correlate.analysis.settings import Settings
from correlate.analysis.verdict import Analysis, analyze
from correlate.clickhouse.export import export
from correlate.clickhouse.source import ClickHouseStore, open_source
from correlate.collect import collect, record
from correlate.diff import RunDiff, diff
from correlate.errors import CorrelateError
from correlate.kinds import FindingKind
from correlate.reporting import report
from correlate.sandbox import sql
from correlate.severity import Severity
from correlate.store import Store, open_store
from correlate.version import __version__
from correlate.watch import watch

__all__ = [
    "Analysis",
    "ClickHouseStore",
    "CorrelateError",
    "Finding",
    "FindingKind",
    "Run",
    "RunDiff",
    "Settings",
    "Severity",
    "Store",
    "__version__",
    "analyze",
    "collect",
    "diff",
    "export",
    "open_run",
    "open_source",
    "open_store",
    "record",
    "report",
    "sql",
    "watch",
]
