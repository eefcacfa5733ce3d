"""Detectors: small functions from an analysed run to findings, in one ordered tuple.

Each takes a :class:`~correlate.analysis.run.Run` and returns a list of
:class:`~correlate.analysis.findings.Finding`. Edit :data:`DETECTORS` (or pass
your own tuple to ``Run.findings``) to add, drop or reorder them. Each module
states its thresholds as constants, with the rule it follows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from correlate.analysis.detectors.client import outside_server
from correlate.analysis.detectors.errors import error_bursts
from correlate.analysis.detectors.load import degradation, throughput_knee
from correlate.analysis.detectors.n_plus_one import n_plus_one
from correlate.analysis.detectors.pool import pool_exhaustion
from correlate.analysis.detectors.slow_query import slow_query
from correlate.analysis.detectors.unexplained import unexplained_time

if TYPE_CHECKING:
    from correlate.analysis.findings import Finding
    from correlate.analysis.run import Run

Detector = Callable[["Run"], list["Finding"]]

DETECTORS: tuple[Detector, ...] = (
    pool_exhaustion,
    n_plus_one,
    slow_query,
    error_bursts,
    degradation,
    throughput_knee,
    unexplained_time,
    outside_server,
)

__all__ = ["DETECTORS", "Detector"]
