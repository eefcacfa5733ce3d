"""Detectors: small functions from an analysed run to findings, in one ordered tuple.

Each takes a :class:`~correlate.analysis.run.Run` and returns a list of
:class:`~correlate.analysis.findings.Finding`. Edit :data:`DETECTORS` (or pass
your own tuple to ``Run.findings`` / ``correlate.analyze``) to add, drop or
reorder them.

A detector's thresholds are a frozen settings dataclass taken as a keyword
parameter whose default is the defaults (``settings: NPlusOneSettings =
DEFAULTS``); :meth:`Run.findings <correlate.analysis.run.Run.findings>` passes it
the section resolved from the project file, ``settings=`` and ``--set``
(:mod:`correlate.analysis.settings`). The section is named after the detector,
so ``n_plus_one.min_calls`` tunes :func:`n_plus_one`. Values reach SQL as bound
parameters, never as text. docs/rules.md describes every rule.

>>> from correlate.analysis.settings import Settings
>>> [key for key in Settings().keys() if key.startswith("n_plus_one.")]
['n_plus_one.min_calls', 'n_plus_one.min_union_ms', 'n_plus_one.critical_calls', 'n_plus_one.min_time_share', 'n_plus_one.projection_factor', 'n_plus_one.projected_busy', 'n_plus_one.min_request_share']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from correlate.analysis.detectors.client import OutsideServerSettings, outside_server
from correlate.analysis.detectors.contention import LockContentionSettings, lock_contention
from correlate.analysis.detectors.errors import ErrorBurstSettings, error_bursts
from correlate.analysis.detectors.fan_out import FanOutSettings, fan_out
from correlate.analysis.detectors.load import (
    DegradationSettings,
    ThroughputKneeSettings,
    degradation,
    throughput_knee,
)
from correlate.analysis.detectors.n_plus_one import NPlusOneSettings, n_plus_one
from correlate.analysis.detectors.pool import PoolSettings, pool_exhaustion
from correlate.analysis.detectors.redundant import RedundantCallsSettings, redundant_calls
from correlate.analysis.detectors.section_contention import (
    SectionContentionSettings,
    section_contention,
)
from correlate.analysis.detectors.slow_downstream import SlowDownstreamSettings, slow_downstream
from correlate.analysis.detectors.slow_query import SlowQuerySettings, slow_query
from correlate.analysis.detectors.stall import StallSettings, database_stall
from correlate.analysis.detectors.unexplained import UnexplainedTimeSettings, unexplained_time

if TYPE_CHECKING:
    from correlate.analysis.findings import Finding

#: ``detector(run, **settings) -> findings``; settings parameters are optional.
Detector = Callable[..., list["Finding"]]

DETECTORS: tuple[Detector, ...] = (
    pool_exhaustion,
    n_plus_one,
    redundant_calls,
    fan_out,
    slow_query,
    slow_downstream,
    lock_contention,
    section_contention,
    error_bursts,
    degradation,
    throughput_knee,
    unexplained_time,
    outside_server,
    database_stall,
)

__all__ = [
    "DETECTORS",
    "DegradationSettings",
    "Detector",
    "ErrorBurstSettings",
    "FanOutSettings",
    "LockContentionSettings",
    "NPlusOneSettings",
    "OutsideServerSettings",
    "PoolSettings",
    "RedundantCallsSettings",
    "SectionContentionSettings",
    "SlowDownstreamSettings",
    "SlowQuerySettings",
    "StallSettings",
    "ThroughputKneeSettings",
    "UnexplainedTimeSettings",
    "database_stall",
    "degradation",
    "error_bursts",
    "fan_out",
    "lock_contention",
    "n_plus_one",
    "outside_server",
    "pool_exhaustion",
    "redundant_calls",
    "section_contention",
    "slow_downstream",
    "slow_query",
    "throughput_knee",
    "unexplained_time",
]
