"""Attribution and diagnosis: requests split into causes, aggregates, a timeline, findings.

>>> from correlate.analysis import open_run, Finding
"""

from __future__ import annotations

from correlate.analysis.findings import Finding
from correlate.analysis.run import Run, open_run

__all__ = ["Finding", "Run", "open_run"]
