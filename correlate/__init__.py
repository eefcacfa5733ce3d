"""correlate: why did the service get slow under load?

Load-test spans, SQL statements with their plans, and connection-pool
telemetry, joined in DuckDB and turned into a verdict.

>>> import correlate
>>> store = correlate.open_store(":memory:")
>>> store.close()
"""

from __future__ import annotations

from correlate.analysis import Finding, Run, open_run
from correlate.analysis.verdict import Analysis, analyze
from correlate.diff import RunDiff, diff
from correlate.errors import CorrelateError
from correlate.reporting import report
from correlate.sandbox import sql
from correlate.store import Store, open_store

__version__ = "0.1.0"

__all__ = [
    "Analysis",
    "CorrelateError",
    "Finding",
    "Run",
    "RunDiff",
    "Store",
    "__version__",
    "analyze",
    "diff",
    "open_run",
    "open_store",
    "report",
    "sql",
]
