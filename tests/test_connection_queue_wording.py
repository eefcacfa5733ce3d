"""An inferred queue for a connection is told in words that hold in any analysis.

A slow query on a queued route says what the queue is (a pool of about N, read from
timing) rather than pointing at a finding that the caller may not have asked for.
"""

from __future__ import annotations

from correlate.analysis import open_run
from correlate.analysis.detectors import slow_query
from correlate.kinds import FindingKind

from .test_connection_queue import _queued_run


def test_slow_query_alone_says_what_the_queue_is_without_pointing_elsewhere() -> None:
    with open_run(_queued_run(pool=2).build(), "r") as run:
        found = run.findings((slow_query,))
    (slow,) = found
    assert slow.evidence["inferred_queue_ms"] > 100
    assert "unexplained-time finding" not in slow.explanation
    assert "a pool of about 2" in slow.explanation
    assert "read from the spans' timing" in slow.explanation


def test_slow_query_beside_unexplained_time_names_the_same_pool() -> None:
    with open_run(_queued_run(pool=3, every=8).build(), "r") as run:
        found = run.findings()
    (slow,) = [f for f in found if f.kind == FindingKind.SLOW_QUERY]
    (queue,) = [f for f in found if f.kind == FindingKind.UNEXPLAINED_TIME]
    assert queue.evidence["holders_ceiling"] == 3
    assert "a pool of about 3" in queue.explanation
    assert "a pool of about 3" in slow.explanation
