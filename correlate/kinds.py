"""The kinds of finding the built-in detectors report.

A :class:`FindingKind` is a string, so JSON reports and comparisons with plain
strings are unchanged; code that matches on a kind names the member instead of
repeating the string. Detectors of your own may use kinds of their own (any
string); these are the ones correlate ships, each documented in docs/rules.md.

>>> FindingKind.N_PLUS_ONE == "n_plus_one", str(FindingKind.POOL_LEAK)
(True, 'pool_leak')
"""

from __future__ import annotations

from enum import StrEnum


class FindingKind(StrEnum):
    """What a finding is about; the value is the ``kind`` field of the report JSON."""

    POOL_LEAK = "pool_leak"
    POOL_SATURATION = "pool_saturation"
    POOL_EXHAUSTED = "pool_exhausted"
    N_PLUS_ONE = "n_plus_one"
    N_PLUS_ONE_CALLS = "n_plus_one_calls"
    REDUNDANT_CALLS = "redundant_calls"
    FAN_OUT = "fan_out"
    SLOW_QUERY = "slow_query"
    SLOW_DOWNSTREAM = "slow_downstream"
    LOCK_CONTENTION = "lock_contention"
    SECTION_CONTENTION = "section_contention"
    ERROR_BURST = "error_burst"
    ERROR_RATE = "error_rate"
    DEGRADATION = "degradation"
    THROUGHPUT_KNEE = "throughput_knee"
    UNEXPLAINED_TIME = "unexplained_time"
    OUTSIDE_SERVER = "outside_server"
    NEVER_REACHED = "never_reached"
    DATABASE_STALL = "database_stall"


__all__ = ["FindingKind"]
