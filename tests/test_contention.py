"""Lock contention: requests queueing on one locking statement, told apart from its look-alikes."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlate.analysis import open_run
from correlate.analysis.detectors import lock_contention, pool_exhaustion, slow_query
from correlate.analysis.detectors.contention import LockContentionSettings
from correlate.analysis.findings import Finding
from correlate.kinds import FindingKind

from .builders import RunBuilder

HOT = "UPDATE products SET stock = stock - 1 WHERE id = 1"


def findings(b: RunBuilder, detector: Callable[..., list[Finding]], **kw: object) -> list[Finding]:
    store = b.build()
    with open_run(store, "r") as run:
        return detector(run, **kw)


def _http(b: RunBuilder, trace: str, parent: str, start: float, end: float) -> None:
    b.span(trace, start, end, parent=parent, kind="CLIENT", name="POST")
    b.spans[-1].update(http_method="POST", url_path="/fraud-check", server_address="fraud")


def checkouts(
    b: RunBuilder,
    *,
    bursts: int = 20,
    size: int = 3,
    gap: float = 400,
    lock: bool = True,
    call_ms: float = 60,
    update_ms: float = 1,
    stagger: float = 2,
    sql: str = HOT,
    app_ms: float = 0,
) -> None:
    """Requests arriving in bursts; each runs ``sql``, makes an HTTP call, inserts, commits.

    With ``lock`` the statement waits until the previous holder committed (a row
    lock); without, it runs beside the others (different rows).
    """
    free_at = 0.0
    for burst in range(bursts):
        for i in range(size):
            trace = b.new_id("t")
            t = burst * gap + i * stagger
            begin = t + 1
            granted = max(begin, free_at) if lock else begin
            u_end = granted + update_ms
            c_end = u_end + call_ms
            i_end = c_end + 1
            free_at = i_end + 0.2  # COMMIT
            r = b.request(trace, t, free_at + 0.5 + app_ms, "/checkout")
            b.query(trace, r, begin, u_end, sql)
            if call_ms:
                _http(b, trace, r, u_end, c_end)
            b.query(trace, r, c_end, i_end, "INSERT INTO orders (customer_id) VALUES (5)")


def test_a_hot_row_held_across_an_http_call_is_found_with_what_holds_it() -> None:
    b = RunBuilder()
    checkouts(b)
    (f,) = findings(b, lock_contention)
    assert f.kind == FindingKind.LOCK_CONTENTION and f.route == "/checkout"
    assert "UPDATE" in f.evidence["statement"] and "products" in f.title
    # the first of each burst has nobody ahead; the two behind it queue
    assert f.evidence["contended"] == f.evidence["queued"] == 40
    by_ahead = f.evidence["median_ms_by_ahead"]
    assert list(by_ahead) == ["0", "1", "2"]
    assert by_ahead["0"] < by_ahead["1"] < by_ahead["2"]
    # one more hold (62.2 ms) ahead, less the 2 ms it arrived later
    assert by_ahead["2"] - by_ahead["1"] == pytest.approx(62.2 - 2, abs=0.1)
    top = f.evidence["held_doing"][0]
    assert top["doing"] == "HTTP call POST /fraud-check" and top["median_ms"] == pytest.approx(60)
    assert "an HTTP call POST /fraud-check inside the transaction" in f.explanation
    assert "POST /fraud-check" in f.title and "POST /fraud-check" in f.suggestion
    # lost: 62 + 124 ms of every 3 requests' ~372 ms, half their time
    assert f.evidence["share_of_time_outside_pool_wait"] == pytest.approx(0.5, abs=0.05)
    assert f.severity == "critical"
    weaker = LockContentionSettings(critical_share=0.6)
    assert findings(b, lock_contention, settings=weaker)[0].severity == "warning"


def test_queueing_on_select_for_update_without_a_call_names_other_statements() -> None:
    b = RunBuilder()
    checkouts(b, call_ms=0, sql="SELECT * FROM accounts WHERE id = 1 FOR UPDATE", update_ms=5)
    b2 = RunBuilder()
    checkouts(b2, call_ms=0, sql="SELECT * FROM accounts WHERE id = 1", update_ms=5)
    (f,) = findings(b, lock_contention)
    assert f.evidence["held_doing"][0]["category"] == "db"
    assert "HTTP" not in f.title
    # the same timings on a plain SELECT: not a locking statement, nothing to say
    assert findings(b2, lock_contention) == []


def test_parallel_fast_updates_of_different_rows_are_quiet() -> None:
    b = RunBuilder()
    checkouts(b, lock=False, call_ms=0)
    assert findings(b, lock_contention) == []


def test_a_lock_held_across_a_call_without_queueing_is_info() -> None:
    b = RunBuilder()
    checkouts(b, lock=False)  # different rows: nobody waits, but each holds across the call
    (f,) = findings(b, lock_contention)
    assert f.severity == "info" and f.impact_ms == 0
    assert "HTTP call POST /fraud-check" in f.title


def test_a_job_queue_claim_that_skips_locked_rows_is_never_said_to_wait() -> None:
    b = RunBuilder()
    claim = "SELECT id FROM jobs WHERE state = 'new' LIMIT 1 FOR UPDATE SKIP LOCKED"
    checkouts(b, lock=False, sql=claim)  # each claims its own job, then makes its call
    assert findings(b, lock_contention) == []


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("SELECT pg_advisory_xact_lock(42)", "the advisory lock pg_advisory_xact_lock()"),
        ("SELECT GET_LOCK('stock', 10)", "the advisory lock get_lock()"),
    ],
)
def test_an_advisory_lock_is_named_as_one(sql: str, named: str) -> None:
    b = RunBuilder()
    checkouts(b, sql=sql)
    (f,) = findings(b, lock_contention)
    assert f.title.startswith(f"Lock contention in /checkout: {named} queues")
    assert "SELECT" not in f.title


@pytest.mark.parametrize(
    ("call_after_commit", "sql", "held"),
    [
        (True, HOT, False),  # the recommended shape: the call once the lock is gone
        (False, HOT, True),
        # a session-level advisory lock outlives COMMIT: still held across the call
        (True, "SELECT pg_advisory_lock(42)", True),
    ],
)
def test_a_traced_commit_ends_the_hold(call_after_commit: bool, sql: str, held: bool) -> None:
    b = RunBuilder()
    for i in range(20):
        trace, t = b.new_id("t"), i * 400.0
        r = b.request(trace, t, t + 120, "/checkout")
        b.query(trace, r, t + 1, t + 2, "BEGIN")
        b.query(trace, r, t + 2, t + 3, sql)
        b.query(trace, r, t + 3, t + 4, "INSERT INTO orders (customer_id) VALUES (5)")
        commit_at = t + 4 if call_after_commit else t + 100
        b.query(trace, r, commit_at, commit_at + 1, "COMMIT")
        _http(b, trace, r, t + 5, t + 100)
        b.query(trace, r, t + 101, t + 110, "SELECT * FROM orders WHERE id = 5")
    found = findings(b, lock_contention)
    assert [f.title.startswith("Lock held across a call in /checkout") for f in found] == (
        [True] if held else []
    )


def test_a_slow_update_is_a_slow_query_not_contention() -> None:
    b = RunBuilder()
    # one request at a time, each UPDATE slow by itself (a bad plan)
    checkouts(b, size=1, update_ms=80, call_ms=0)
    # and slow UPDATEs running side by side: slow, but not waiting for each other
    b2 = RunBuilder()
    checkouts(b2, lock=False, update_ms=80, call_ms=0, stagger=10)
    assert findings(b, lock_contention) == []
    assert findings(b2, lock_contention) == []
    assert [f.kind for f in findings(b, slow_query)] == [FindingKind.SLOW_QUERY]


def test_pool_saturation_is_not_lock_contention() -> None:
    """Requests wait for a connection, longer the more of them there are, then run a fast UPDATE."""
    b = RunBuilder()
    for burst in range(20):
        for i in range(4):
            trace = b.new_id("t")
            t = burst * 500 + i
            wait = i * 30.0  # the i-th in the burst waits for i connections to come back
            r = b.request(trace, t, t + wait + 5, "/checkout")
            b.connect(trace, r, t, t + wait)
            b.query(trace, r, t + wait + 1, t + wait + 2, HOT)
            b.query(trace, r, t + wait + 2, t + wait + 3, "INSERT INTO orders VALUES (1)")
    assert findings(b, lock_contention) == []
    assert {f.kind for f in findings(b, pool_exhaustion)} & {
        FindingKind.POOL_SATURATION,
        FindingKind.POOL_EXHAUSTED,
        FindingKind.POOL_LEAK,
    }


def test_brief_queueing_in_long_requests_is_quiet() -> None:
    """Like the fixed demo: the UPDATE just before COMMIT, so waits are a few ms of 2 s."""
    b = RunBuilder()
    checkouts(b, call_ms=5, app_ms=2000)
    assert findings(b, lock_contention) == []
    (f,) = findings(b, lock_contention, settings=LockContentionSettings(min_share=0))
    assert f.severity == "info" and f.evidence["share_of_time_outside_pool_wait"] < 0.01


def test_too_few_contended_executions_are_quiet() -> None:
    b = RunBuilder()
    checkouts(b, bursts=4)  # 8 contended, below the 10 needed
    # only the note that the lock is held across the call
    assert [f.severity for f in findings(b, lock_contention)] == ["info"]
    (f,) = findings(b, lock_contention, settings=LockContentionSettings(min_contended=5))
    assert f.severity == "critical" and f.evidence["contended"] == 8


@st.composite
def span_trees(draw: st.DrawFn) -> RunBuilder:
    b = RunBuilder()
    sqls = [HOT, "SELECT * FROM a WHERE id = 1 FOR UPDATE", "DELETE FROM a", "SELECT 1", None]
    for t in range(draw(st.integers(1, 6))):
        trace = f"t{t}"
        begin = draw(st.floats(0, 200))
        ids = [b.request(trace, begin, begin + draw(st.floats(0, 100)), "/a")]
        for _ in range(draw(st.integers(0, 12))):
            start = begin + draw(st.floats(-10, 110))
            sql = draw(st.sampled_from(sqls))
            ids.append(
                b.span(
                    trace,
                    start,
                    start + draw(st.floats(-5, 80)),
                    parent=draw(st.sampled_from(ids) | st.none()),
                    kind=draw(st.sampled_from(["CLIENT", "INTERNAL", "SERVER"])),
                    db="postgresql" if sql else None,
                    sql=sql,
                )
            )
            if not sql and draw(st.booleans()):
                b.spans[-1]["attributes"] = json.dumps({"url.full": "http://x/a"})
                b.spans[-1].update(http_method="POST", url_path=draw(st.sampled_from(["/a", ""])))
    return b


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(span_trees())
def test_random_span_trees_never_crash_it(b: RunBuilder) -> None:
    loose = LockContentionSettings(min_contended=1, min_uncontended=1, min_requests=1)
    for f in findings(b, lock_contention, settings=loose):
        assert f.kind == FindingKind.LOCK_CONTENTION
        assert f.severity in ("info", "warning", "critical")
        assert f.impact_ms >= 0
        assert f.evidence.get("queued", 0) <= f.evidence["contended"] <= f.evidence["executions"]
        share = f.evidence.get("share_of_time_outside_pool_wait", 0)
        assert share >= 0


@pytest.mark.parametrize(
    ("sql", "locking"),
    [
        (HOT, True),
        ("update products set stock = stock - 1 where id = $1", True),
        ("DELETE FROM carts WHERE id = 3", True),
        ("SELECT * FROM accounts WHERE id = 1 FOR UPDATE", True),
        ("SELECT * FROM accounts WHERE id = 1 FOR NO KEY UPDATE SKIP LOCKED", False),
        ("SELECT * FROM accounts WHERE id = 1 FOR KEY SHARE", True),
        ("SELECT * FROM accounts WHERE id = 1 LOCK IN SHARE MODE", True),
        ("LOCK TABLE accounts IN EXCLUSIVE MODE", True),
        ("SELECT pg_advisory_xact_lock(42)", True),
        ("SELECT GET_LOCK('stock', 10)", True),
        ("INSERT INTO c (k, n) VALUES (1, 1) ON CONFLICT (k) DO UPDATE SET n = c.n + 1", True),
        ("INSERT INTO c (k, n) VALUES (1, 1) ON DUPLICATE KEY UPDATE n = n + 1", True),
        ("SELECT lock FROM settings WHERE id = 1", False),
        ("SELECT * FROM block WHERE updated_at > now()", False),
        ("INSERT INTO orders (customer_id) VALUES (5)", False),
        ("SELECT * FROM accounts WHERE id = 1", False),
        ("WITH d AS (SELECT 1) UPDATE accounts SET n = n + 1 WHERE id = 1", True),
        ("WITH d AS (SELECT id FROM q) DELETE FROM q WHERE id IN (SELECT id FROM d)", True),
        ("WITH d AS (SELECT 1) SELECT * FROM d", False),
        ("SELECT id FROM jobs WHERE state = 'new' LIMIT 1 FOR UPDATE SKIP LOCKED", False),
        ("SELECT * FROM accounts WHERE id = 1 FOR UPDATE NOWAIT", False),
    ],
)
def test_which_statements_hold_their_lock_until_the_transaction_ends(
    sql: str, locking: bool
) -> None:
    import duckdb

    from correlate.analysis.detectors.lock_queue import LOCKING_PATTERN, NEVER_WAITS_PATTERN

    ((found,),) = duckdb.execute(
        "SELECT regexp_matches($sql, $pattern, 'i') AND NOT regexp_matches($sql, $never, 'i')",
        {"sql": sql, "pattern": LOCKING_PATTERN, "never": NEVER_WAITS_PATTERN},
    ).fetchall()
    assert found is locking


Execution = tuple[int, str, int, int, int]  # request, span id, start, end, hold end


def swept(
    executions: list[Execution], tolerance_ns: int
) -> dict[str, tuple[int, bool, bool, int | None]]:
    """span id → (ahead, queued, free, after_let_go), as the detector's SQL sweep finds them,
    in DuckDB."""
    import duckdb
    import pyarrow as pa

    from correlate.analysis.detectors.lock_queue import sweep_stages
    from correlate.analysis.requests import staged

    r, span, s0, s1, hold = (list(c) for c in zip(*executions, strict=True))
    table = pa.table(
        {"fingerprint": ["fp"] * len(r), "th": r, "rh": r, "span_id": span,
         "trace_id": [f"t{x}" for x in r], "route": ["/r"] * len(r),
         "start_ns": s0, "end_ns": s1, "hold_end_ns": hold}
    )  # fmt: skip
    con = duckdb.connect()
    con.register("executions", table)
    staged(con, "swept", sweep_stages("SELECT * FROM executions"), {"tolerance": tolerance_ns})
    rows = con.execute("SELECT span_id, ahead, queued, free, after_let_go FROM swept").fetchall()
    con.close()
    return {
        span: (int(ahead), bool(queued), bool(free), after)
        for span, ahead, queued, free, after in rows
    }


def test_a_pile_up_of_executions_is_swept_without_pairing_them_all() -> None:
    """20,000 executions at one instant (a millisecond clock, a burst): the sweep counts
    who is ahead without looking at every open hold (it took 25 s when it did, 19 s as a
    self-join of every execution with those ahead of it)."""
    import time

    n = 20_000
    pile = [(i, f"s{i:05d}", 0, 1_000_000, 2_000_000) for i in range(n)]
    began = time.perf_counter()
    found = swept(pile, 1_000_000)
    assert time.perf_counter() - began < 5.0
    assert [found[f"s{i:05d}"][0] for i in range(n)] == list(range(n))
    # each of those ahead lets go by the time the next ends (within the tolerance)
    assert all(queued for ahead, queued, *_ in found.values() if ahead)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 20), st.integers(0, 5), st.integers(0, 8)),
        min_size=1,
        max_size=30,
    )
)
def test_the_sweep_counts_ahead_and_queued_as_their_definition_says(
    rows: list[tuple[int, int, int, int]],
) -> None:
    """Brute force over every pair, with requests that run the statement more than once."""
    ms_ = 1_000_000
    execs = [
        (r, f"s{i:03d}", a * ms_, (a + d) * ms_, (a + d + h) * ms_)
        for i, (r, a, d, h) in enumerate(rows)
    ]
    found = swept(execs, ms_)
    for r, span, s0, s1, _hold in execs:
        ahead = [o for o in execs if o[0] != r and (o[2], o[1]) < (s0, span) and o[4] > s0]
        assert found[span][0] == len(ahead)
        let_go = any(o[4] <= s1 + ms_ for o in ahead)
        inside = any(o[0] != r and o[3] < s1 - ms_ and o[4] > s1 + ms_ for o in execs)
        assert found[span][1] == bool(ahead and let_go and not inside)
        # free: no other request let go while it ran
        let_go_meanwhile = any(o[0] != r and s0 < o[4] <= s1 + ms_ for o in execs)
        assert found[span][2] is not let_go_meanwhile
        # after_let_go: from the last hold to end before it did, whoever's, to its end
        last = max((o[4] for o in execs if o[4] < s1), default=None)
        assert found[span][3] == (None if last is None else s1 - last)


#: Who of the sessions waiting for the row, (arrival, session), gets it when it is let go.
Grant = Callable[[list[tuple[float, int]], random.Random], tuple[float, int]]


def _first_come(waiting: list[tuple[float, int]], rng: random.Random) -> tuple[float, int]:
    return min(waiting)


def _last_come(waiting: list[tuple[float, int]], rng: random.Random) -> tuple[float, int]:
    return max(waiting)


def _any(waiting: list[tuple[float, int]], rng: random.Random) -> tuple[float, int]:
    return rng.choice(sorted(waiting))


def sessions_on_one_row(
    b: RunBuilder,
    grant: Grant,
    *,
    sessions: int = 4,
    rounds: int = 8,
    lock: bool = True,
    update_ms: float = 1,
    call_ms: float = 80,
    stagger: float = 0.3,
    late: float = 0,
    quick: frozenset[tuple[int, int]] = frozenset(),
) -> None:
    """Sessions that loop without a pause: each runs ``HOT``, makes an HTTP call, inserts,
    commits, and starts its next request at once. With ``lock`` they share one row, and
    when its holder commits, ``grant`` picks who of the waiting (arrival, session) gets it
    next; without, each updates its own row and runs at once. The first session's first
    UPDATE reaches the row ``late`` ms after its span starts (its thread paused between);
    the UPDATEs of ``quick`` (session, round) take 1 ms (their row was gone)."""
    rng = random.Random(7)
    arrivals = {s: 1 + stagger * s for s in range(sessions)}
    arrivals[0] += late
    left = dict.fromkeys(arrivals, rounds)
    free_at = 0.0
    while arrivals:
        waiting = [(t, s) for s, t in arrivals.items() if t <= free_at]
        if lock and waiting:
            begin, s = grant(waiting, rng)
        else:  # the row is free (or not shared): the next to arrive
            begin, s = min((t, s) for s, t in arrivals.items())
        del arrivals[s]
        granted = max(begin, free_at) if lock else begin
        u_end = granted + (1 if (s, rounds - left[s]) in quick else update_ms)
        c_end = u_end + call_ms
        i_end = c_end + 1
        committed = i_end + 0.2  # COMMIT, not traced
        if lock:
            free_at = committed
        sent = begin - late if (s, left[s]) == (0, rounds) else begin
        trace = b.new_id("t")
        r = b.request(trace, sent - 1, committed + 0.5, "/buy")
        b.query(trace, r, sent, u_end, HOT)
        _http(b, trace, r, u_end, c_end)
        b.query(trace, r, c_end, i_end, "INSERT INTO orders (customer_id) VALUES (5)")
        left[s] -= 1
        if left[s]:
            arrivals[s] = committed + 1.5  # the next request, straight away


@pytest.mark.parametrize("grant", [_first_come, _last_come, _any])
def test_a_queue_that_never_drains_is_found_whatever_the_grant_order(grant: Grant) -> None:
    """Four sessions on one row, as in tests/test_contention_live.py: nearly every
    execution waits for at least one whole hold, so its fastest tenth is no measure of
    the statement's own time (the UPDATE takes 1 ms, as the one that waited for nobody shows)."""
    b = RunBuilder()
    sessions_on_one_row(b, grant)
    (f,) = findings(b, lock_contention)
    assert f.title.startswith("Lock contention in /buy: the UPDATE on products queues")
    assert f.severity == "critical"
    assert f.evidence["executions"] == 32 and f.evidence["contended"] == f.evidence["queued"] == 31
    assert f.evidence["uncontended_median_ms"] == pytest.approx(1)
    assert f.evidence["contended_median_ms"] >= 80


def test_the_first_to_start_may_be_the_last_to_reach_the_row() -> None:
    """The UPDATE that starts first has nobody ahead by its span, yet it waited for the
    three that reached the row before it: only the one granted at once shows its own time."""
    b = RunBuilder()
    sessions_on_one_row(b, _first_come, late=3)
    (f,) = findings(b, lock_contention)
    assert f.severity == "critical" and f.evidence["median_ms_by_ahead"]["0"] > 3 * 80
    assert f.evidence["uncontended_median_ms"] == pytest.approx(1)


def test_updates_of_different_rows_that_never_stop_overlapping_are_not_a_queue() -> None:
    """Slow UPDATEs, spread over the time one takes so that all but the first start
    beside another: their fastest tenth is their own time, and nothing grows."""
    b = RunBuilder()
    sessions_on_one_row(b, _first_come, lock=False, update_ms=60, call_ms=0, stagger=15)
    assert findings(b, lock_contention) == []


def test_slow_updates_of_different_rows_with_two_quick_ones_are_not_a_queue() -> None:
    """As above, but two UPDATEs find no row and take 1 ms: nobody else lets go while
    they run, yet not for having waited for nobody. The others end at any time after
    the last one to let go, not just after it, as a lock passed on would: nothing queues."""
    b = RunBuilder()
    quick = frozenset({(1, 3), (2, 5)})
    sessions_on_one_row(
        b, _first_come, lock=False, update_ms=60, call_ms=0, stagger=15, quick=quick
    )
    assert findings(b, lock_contention) == []
