"""A fail-fast pool that leaks, read from its own errors when it also refused under load.

psycopg2's pool refuses at once when its connections are out. Under a few concurrent
users it refuses now and then even without a leak: a request has taken a connection but
not yet run its first query, which is all a pool without checkout spans shows of a hold.
So connections come back after the first failure, and that alone leaves the pool's
verdict open. Once a leak has taken the last connection, though, the pool refuses for
good: every checkout after the last one given fails, with nobody holding one.
"""

from __future__ import annotations

import pytest

from correlate.kinds import FindingKind

from .builders import RunBuilder
from .test_leak import analysed
from .test_pool_errors import PSYCOPG2, PSYCOPG3, _request

STEP_MS = 50.0


def _served(b: RunBuilder, t: float, status: int = 200) -> None:
    """A request that takes a connection at ``t``, works 20 ms, then runs its query."""
    trace = b.new_id("t")
    r = _request(b, trace, t, t + 30, "POST" if status == 409 else "GET", status)
    b.query(trace, r, t + 20, t + 25, "SELECT * FROM orders WHERE id = 1")


def _refused(b: RunBuilder, t: float) -> None:
    _request(b, b.new_id("t"), t, t + 2, "GET", 500, said=PSYCOPG2, raised_at=t + 1)


def _drained_run(*, leak: bool) -> RunBuilder:
    """A pool of three, a request every 50 ms. In the first two seconds a few are refused
    while the holders have not queried yet; with ``leak``, requests 10, 20 and 30 answer
    409 and keep their connection, and every request after them is refused for 13 s.
    Without, the refusals stay scattered to the end and the last seconds fail as the
    load's last burst comes."""
    b = RunBuilder()
    for i in range(300):
        t = i * STEP_MS
        if leak:
            if i in (5, 12, 17, 24) or i > 30:
                _refused(b, t)
            else:
                _served(b, t, 409 if i in (10, 20, 30) else 200)
        elif i % 3 == 0 or i >= 285:
            _refused(b, t)
        else:
            _served(b, t)
    return b


def test_a_pool_that_refused_for_good_after_its_last_connection_is_a_leak() -> None:
    found, (inf, _) = analysed(_drained_run(leak=True))
    assert inf is not None and inf.verdict == "leak", inf and inf.reason
    assert inf.emptied_tail == 269 and inf.waits == 273
    assert inf.emptied_from == 1  # the holders never overlap: each gives its hold back
    (finding,) = [f for f in found if f.kind == FindingKind.POOL_LEAK]
    assert "the pool refused all 269 later checkouts (of 273 that failed)" in (finding.explanation)
    assert finding.evidence["checkout_spans"]["failed_after_the_last_connection"] == 269


def test_refusals_to_the_end_beside_connections_given_are_not_a_drained_pool() -> None:
    found, (inf, _) = analysed(_drained_run(leak=False))
    assert FindingKind.POOL_LEAK not in {f.kind for f in found}
    assert inf is not None and inf.verdict != "leak"
    assert inf.emptied_tail == 0


@pytest.mark.clickhouse
def test_clickhouse_reads_the_drained_pool_alike(chdb: object) -> None:
    from correlate.analysis import open_run
    from correlate.analysis.detectors.pool import PoolSettings
    from correlate.analysis.pool_inference import infer
    from correlate.analysis.run import Run
    from tests.test_clickhouse_engine import copied

    store = _drained_run(leak=True).build()
    with open_run(store, "r") as run:
        local = infer(run, PoolSettings())
    there, _ = copied(store, chdb, "r")
    assert local is not None and local.emptied_tail == 269
    assert infer(Run(there, "r"), PoolSettings()) == local  # type: ignore[arg-type]


def test_requests_past_their_last_query_are_not_counted_as_holding() -> None:
    # a pool of two: each request queries in its first 5 ms, gives the connection back,
    # and works 35 ms more; one request in 15 ms, so three overlap though one holds at a
    # time. Two requests leak theirs; every later checkout blocks a second and fails.
    b = RunBuilder()
    for i in range(41):
        t, trace, leaks = i * 15.0, b.new_id("t"), i in (20, 40)
        r = _request(b, trace, t, t + 40, "POST" if leaks else "GET", 409 if leaks else 200)
        b.query(trace, r, t + 1, t + 5, "SELECT * FROM orders WHERE id = 1")
    for i in range(150):  # then one every 100 ms for 15 s, all failing
        t, trace = 700 + i * 100.0, b.new_id("t")
        _request(b, trace, t, t + 1002, "GET", 500, said=PSYCOPG3, raised_at=t + 1001)
    _, (inf, _) = analysed(b)
    assert inf is not None and inf.verdict == "leak", inf and inf.reason
    assert inf.emptied_from == 1, (
        inf.reason
    )  # not 3: the requests' tails overlap, their holds do not
