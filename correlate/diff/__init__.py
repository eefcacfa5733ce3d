"""Compare two runs: did the candidate regress against the baseline, and why?

:func:`~correlate.diff.compare.diff` does the comparison, :mod:`correlate.diff.rules`
turns it into a verdict, :mod:`correlate.diff.stats` holds the statistics.
"""

from __future__ import annotations

from correlate.diff.compare import QueryChange, RouteChange, RunDiff, diff

__all__ = ["QueryChange", "RouteChange", "RunDiff", "diff"]
