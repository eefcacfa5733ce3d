"""Section contention: a lock in the application's code, told apart from code that merely overlaps."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import correlate
from correlate.analysis import open_run
from correlate.analysis.detectors import lock_contention, section_contention
from correlate.analysis.detectors.section_contention import SectionContentionSettings
from correlate.analysis.detectors.section_queue import sections
from correlate.analysis.findings import Finding
from correlate.kinds import FindingKind

from .builders import RunBuilder
from .strategies import span_trees


def findings(
    b: RunBuilder, detector: Callable[..., list[Finding]] = section_contention, **kw: object
) -> list[Finding]:
    store = b.build()
    with open_run(store, "r") as run:
        return detector(run, **kw)


def requests(
    b: RunBuilder,
    *,
    bursts: int = 20,
    size: int = 3,
    gap: float = 300,
    stagger: float = 2,
    work_ms: float = 20,
    lock: bool = True,
    covers_wait: bool = True,
    call_ms: float = 0,
    query_ms: float = 0,
) -> None:
    """Requests in bursts; each does 1 ms of its own, enters the section ``reserve``
    (``work_ms`` of work), then 1 ms more. With ``lock`` one request at a time is
    inside; ``covers_wait`` says whether the span starts before acquiring."""
    free_at = 0.0
    for burst in range(bursts):
        for i in range(size):
            trace = b.new_id("t")
            t = burst * gap + i * stagger
            want = t + 1
            granted = max(want, free_at) if lock else want
            done = free_at = granted + work_ms
            r = b.request(trace, t, done + 1, "/reserve")
            sid = b.span(trace, want if covers_wait else granted, done, parent=r, name="reserve")
            if call_ms:
                b.span(trace, done - call_ms, done, parent=sid, kind="CLIENT", name="POST")
                b.spans[-1].update(http_method="POST", url_path="/hold", server_address="stock")
            if query_ms:
                b.query(trace, sid, granted, granted + query_ms, "SELECT n FROM stock WHERE id = 1")


def interleave(
    b: RunBuilder, arrivals: list[float], cpu_ms: float, *, sleep_ms: float = 0, slice_ms: float = 5
) -> None:
    """Threads arriving at ``arrivals``, each doing ``cpu_ms`` of CPU work and then sleeping
    ``sleep_ms`` in the section ``render``; one thread runs at a time and the running one
    hands over to the next ready one every ``slice_ms`` (an interpreter lock's switch
    interval), so sections overlap in wall time one slice at a time."""
    order = sorted(range(len(arrivals)), key=lambda k: arrivals[k])
    left = [cpu_ms] * len(arrivals)
    ends: dict[int, float] = {}
    ready: list[int] = []
    now = arrivals[order[0]]
    while len(ends) < len(arrivals):
        while order and arrivals[order[0]] <= now:
            ready.append(order.pop(0))
        if not ready:
            now = arrivals[order[0]]
            continue
        k = ready.pop(0)
        step = min(slice_ms, left[k])
        now += step
        left[k] -= step
        while order and arrivals[order[0]] <= now:
            ready.append(order.pop(0))
        if left[k] > 0:
            ready.append(k)
        else:
            ends[k] = now + sleep_ms
    for k, start in enumerate(arrivals):
        trace = b.new_id("t")
        r = b.request(trace, start - 1, ends[k] + 1, "/render")
        b.span(trace, start, ends[k], parent=r, name="render")


def gil_like(b: RunBuilder, *, bursts: int = 20, size: int = 3, cpu_ms: float = 20) -> None:
    """Bursts of ``size`` threads arriving 2 ms apart, interleaving ``cpu_ms`` of CPU work."""
    interleave(b, [burst * 300 + i * 2.0 for burst in range(bursts) for i in range(size)], cpu_ms)


def poisson(seed: int, n: int, mean_gap_ms: float) -> list[float]:
    rnd = random.Random(seed)
    return list(itertools.accumulate(rnd.expovariate(1 / mean_gap_ms) for _ in range(n)))


def test_a_mutex_section_whose_spans_cover_the_wait_is_found() -> None:
    b = RunBuilder()
    requests(b)
    (f,) = findings(b)
    assert f.kind == FindingKind.SECTION_CONTENTION and f.route == "/reserve"
    assert f.evidence["section"] == "reserve" and f.evidence["span_covers_wait"] is True
    # the first of each burst is alone; the two behind it queue
    assert f.evidence["contended"] == f.evidence["queued"] == 40
    assert f.evidence["uncontended_median_ms"] == pytest.approx(20)
    by_ahead = f.evidence["median_ms_by_ahead"]
    assert by_ahead["0"] < by_ahead["1"] < by_ahead["2"]
    assert by_ahead["2"] - by_ahead["1"] == pytest.approx(20 - 2, abs=0.1)
    # waits of 18 and 36 ms in every three requests of about 22, 40 and 58 ms
    assert f.evidence["lost_ms"] == pytest.approx(20 * (18 + 36), abs=1)
    assert f.severity == "critical"
    assert f.evidence["inside"] == {} and "the application's own code" in f.explanation
    # none of it is a database lock
    assert findings(b, lock_contention) == []


def test_what_the_section_calls_while_holding_the_lock_is_named() -> None:
    b = RunBuilder()
    requests(b, call_ms=15)
    (f,) = findings(b)
    assert f.evidence["inside"] == {"downstream": {"calls": 60, "total_ms": pytest.approx(900)}}
    assert "outbound calls (60 calls" in f.explanation


def test_a_mutex_section_whose_spans_cover_only_the_critical_part_is_found() -> None:
    b = RunBuilder()
    requests(b, covers_wait=False)
    (f,) = findings(b)
    assert f.evidence["span_covers_wait"] is False
    assert f.evidence["handoffs"] == f.evidence["queued"] == 40
    # the time before the section grows: 1 ms alone, 19 and 37 ms behind one and two
    assert f.evidence["uncontended_before_median_ms"] == pytest.approx(1)
    assert f.evidence["lost_ms"] == pytest.approx(20 * (18 + 36), abs=1)
    assert "passed from one request to the next" in f.explanation


def test_a_mutex_around_a_query_is_the_sections_own_lock() -> None:
    b = RunBuilder()
    requests(b, query_ms=5)
    (f,) = findings(b)
    assert f.evidence["inside"]["db"]["calls"] == 60
    assert "Its waits were not spent in them" in f.explanation


def test_a_section_around_a_row_lock_is_left_to_lock_contention() -> None:
    """The wait is inside the section, but in its UPDATE: the database's lock, reported
    once, by lock_contention."""
    b, free = RunBuilder(), 0.0
    for burst in range(20):
        for i in range(3):
            trace = b.new_id("t")
            t = burst * 400 + i * 2
            granted = max(t + 1, free)
            free = granted + 31.2
            r = b.request(trace, t, free + 0.5, "/checkout")
            section = b.span(trace, t + 1, free, parent=r, name="place order")
            b.query(
                trace, section, t + 1, granted + 1, "UPDATE products SET n = n - 1 WHERE id = 1"
            )
            b.query(trace, section, granted + 31, free, "INSERT INTO orders VALUES (5)")
    assert findings(b) == []
    assert [f.kind for f in findings(b, lock_contention)] == [FindingKind.LOCK_CONTENTION]


def test_parallel_sections_are_quiet() -> None:
    b = RunBuilder()
    requests(b, lock=False)
    assert findings(b) == []
    b = RunBuilder()
    requests(b, lock=False, covers_wait=False)
    assert findings(b) == []


@pytest.mark.parametrize("size", [2, 3, 5])
def test_cpu_work_interleaving_under_an_interpreter_lock_is_quiet(size: int) -> None:
    b = RunBuilder()
    gil_like(b, size=size)
    assert findings(b) == []


def test_the_interleaving_simulation_does_slow_the_threads_down() -> None:
    """The negative above is not vacuous: the work does take longer with more threads."""
    b = RunBuilder()
    gil_like(b, size=3)
    durations = [(s["end_ns"] - s["start_ns"]) / 1e6 for s in b.spans if s["name"] == "render"]
    assert max(durations) >= 2.5 * 20


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(20, 120),
    cpu_ms=st.floats(6, 40),
    sleep_ms=st.sampled_from([0.0, 3.0, 20.0]),
    load=st.floats(0.3, 1.2),
)
def test_interleaving_threads_never_look_like_a_lock(
    seed: int, n: int, cpu_ms: float, sleep_ms: float, load: float
) -> None:
    """CPU work longer than the switch interval, arriving at random up to past saturation."""
    b = RunBuilder()
    interleave(b, poisson(seed, n, cpu_ms / load), cpu_ms, sleep_ms=sleep_ms)
    assert findings(b) == []


def test_a_mutex_under_random_arrivals_is_found_with_its_true_wait() -> None:
    """Thirty runs of a mutex at 50-85 % utilisation, arrivals at random: the wait the
    detector measures is the wait the simulation imposed."""
    found = 0
    for seed in range(30):
        rnd = random.Random(seed)
        hold, utilisation, covers = rnd.uniform(3, 40), rnd.uniform(0.5, 0.85), seed % 2 == 0
        b, free, true_wait = RunBuilder(), 0.0, 0.0
        for t in poisson(seed, 80, hold / utilisation):
            trace = b.new_id("t")
            granted = max(t + 1, free)
            true_wait += granted - (t + 1)
            free = granted + hold
            r = b.request(trace, t, free + 1, "/x")
            b.span(trace, t + 1 if covers else granted, free, parent=r, name="sec")
        for f in findings(b):
            found += 1
            assert f.evidence["span_covers_wait"] is covers
            assert f.evidence["lost_ms"] == pytest.approx(true_wait, rel=0.15)
    assert found >= 28


def test_a_slow_section_with_nobody_else_in_it_is_quiet() -> None:
    b = RunBuilder()
    requests(b, size=1, work_ms=150, gap=200)
    assert findings(b) == []


def test_too_few_contended_executions_are_quiet() -> None:
    b = RunBuilder()
    requests(b, bursts=4)  # 8 contended, below the 10 needed
    assert findings(b) == []
    (f,) = findings(b, settings=SectionContentionSettings(min_contended=5))
    assert f.evidence["contended"] == 8


def test_brief_waits_in_long_requests_are_info_or_quiet() -> None:
    b = RunBuilder()
    requests(b, work_ms=3, stagger=1)
    for s in b.spans:  # every request spends 2 s more of its own after the section
        if s["kind"] == "SERVER":
            s["end_ns"] += 2_000_000_000
            s["duration_ns"] += 2_000_000_000
    assert findings(b) == []
    (f,) = findings(b, settings=SectionContentionSettings(min_share=0))
    assert f.severity == "info"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(span_trees())
def test_random_span_trees_never_crash_it(b: RunBuilder) -> None:
    loose = SectionContentionSettings(
        min_contended=1, min_uncontended=1, min_wait_ms=0, growth_ratio=1, min_share=0
    )
    for f in findings(b, settings=loose):
        assert f.kind == FindingKind.SECTION_CONTENTION
        assert f.severity in ("info", "warning", "critical")
        assert f.impact_ms >= 0
        assert f.evidence["queued"] <= f.evidence["contended"] <= f.evidence["executions"]
        assert f.evidence["share_of_time_outside_pool_wait"] >= 0


PRODUCER = Path(__file__).parent / "helpers" / "section_producer.py"


def _produce(tmp_path: Path, mode: str) -> Path:
    out = tmp_path / f"{mode}.jsonl"
    subprocess.run([sys.executable, str(PRODUCER), str(out), mode], check=True, timeout=120)
    return out


@pytest.mark.parametrize(("mode", "covers_wait"), [("wait", True), ("critical", False)])
def test_real_otel_spans_of_threads_sharing_a_lock(
    tmp_path: Path, mode: str, covers_wait: bool
) -> None:
    """Six threads serving requests through a ``threading.Lock`` held for a 10 ms I/O,
    the section's INTERNAL span taken before the lock (``wait``) or inside it."""
    with correlate.open_store(":memory:") as store:
        analysis = correlate.analyze(_produce(tmp_path, mode), store=store)
    (f,) = [f for f in analysis.findings if f.kind == FindingKind.SECTION_CONTENTION]
    assert f.route == "/reserve" and f.evidence["section"] == "reserve stock"
    assert f.evidence["service"] == "inventory" and f.evidence["executions"] == 120
    assert f.evidence["span_covers_wait"] is covers_wait
    assert f.evidence["queued"] >= 0.8 * f.evidence["contended"] >= 8
    # the lock is held for a 10 ms sleep, so that is the section's own time
    assert 9 < f.evidence["uncontended_median_ms"] < 20
    assert f.evidence["lost_ms"] > 100


def test_real_otel_spans_of_threads_interleaving_without_a_lock(tmp_path: Path) -> None:
    """The control: the same threads doing 10 ms of Python CPU work (taking turns under
    the interpreter lock) and a 10 ms sleep in the section, with no lock of their own."""
    with correlate.open_store(":memory:") as store:
        analysis = correlate.analyze(_produce(tmp_path, "free"), store=store)
        with open_run(store) as run:
            (section,) = sections(run, tolerance_ms=1, handoff_ms=2, spacing=0.8,
                                  min_uncontended=5, min_executions=10)  # fmt: skip
    assert [f for f in analysis.findings if f.kind == FindingKind.SECTION_CONTENTION] == []
    # not for want of concurrency: most executions overlapped another request's
    assert section.contended > 0.3 * section.executions
    assert section.queued < 0.5 * section.contended


Execution = tuple[int, str, int, int, int]  # request, span id, request start, start, end


def swept(executions: list[Execution]) -> dict[str, tuple[int, bool, bool]]:
    """span id → (ahead, handoff, queued), as the detector's SQL sweep finds them in
    DuckDB, with a 1 ms tolerance and hand-off, spacing 2, 5 uncontended."""
    import duckdb
    import pyarrow as pa

    from correlate.analysis.detectors.section_queue import sweep_stages
    from correlate.analysis.requests import staged

    r, span, r0, s0, s1 = (list(c) for c in zip(*executions, strict=True))
    n = len(r)
    table = pa.table(
        {"service": ["svc"] * n, "name": ["reserve"] * n, "th": r, "rh": r, "span_id": span,
         "trace_id": [f"t{x}" for x in r], "route": ["/r"] * n, "request_start_ns": r0,
         "start_ns": s0, "end_ns": s1}
    )  # fmt: skip
    con = duckdb.connect()
    con.register("executions", table)
    params = {"tolerance": 1_000_000, "handoff": 1_000_000, "spacing": 2.0, "min_uncontended": 5}
    staged(con, "swept", sweep_stages("SELECT * FROM executions"), params)
    rows = con.execute("SELECT span_id, ahead, handoff, queued FROM swept").fetchall()
    con.close()
    return {str(s): (int(a), bool(h), bool(q)) for s, a, h, q in rows}


def test_a_pile_up_of_executions_is_swept_without_pairing_them_all() -> None:
    """20,000 executions at one instant (a millisecond clock, a burst): the sweep counts
    who is ahead without looking at every open one (it took 20 s when it did)."""
    import time

    n = 20_000
    pile = [(i, f"s{i:05d}", 0, 0, 10_000_000) for i in range(n)]
    began = time.perf_counter()
    found = swept(pile)
    assert time.perf_counter() - began < 5.0
    assert [found[f"s{i:05d}"][0] for i in range(n)] == list(range(n))
    # side by side, ending together: none of them queued
    assert not any(queued for _, _, queued in found.values())


def test_zero_length_executions_at_one_instant_are_swept_quickly() -> None:
    """20,000 sections and their requests of no measurable length at one instant (a
    millisecond clock): no hand-off, found without comparing every pair (54 s when it did)."""
    import time

    n = 20_000
    at = 5_000_000
    pile = [(i, f"s{i:05d}", at, at, at) for i in range(n)]
    began = time.perf_counter()
    found = swept(pile)
    assert time.perf_counter() - began < 5.0
    assert not any(ahead or handoff for ahead, handoff, _ in found.values())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# an end beside another only across a bucket edge of the pairing (found by search)
@example(
    [(0, 1, 18, 3), (3, 3, 9, 2), (1, 2, 5, 6), (0, 0, 2, 4), (1, 3, 10, 3), (2, 0, 12, 0),
     (3, 2, 13, 3), (2, 0, 5, 3), (3, 3, 16, 1), (2, 1, 11, 1), (1, 1, 6, 3)]
)  # fmt: skip
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 20), st.integers(0, 6)),
        min_size=1,
        max_size=30,
    )
)
def test_the_sweep_marks_ahead_handoff_and_queued_as_their_definition_says(
    rows: list[tuple[int, int, int, int]],
) -> None:
    """Brute force over every pair, with requests that run the section more than once and
    sections that start before, at or after their request's start."""
    import statistics

    ms_ = 1_000_000
    execs = [
        (r, f"s{i:03d}", max(0, a - before) * ms_, a * ms_, (a + d) * ms_)
        for i, (r, before, a, d) in enumerate(rows)
    ]
    found = swept(execs)
    ahead = {
        e[1]: sum(1 for o in execs if o[0] != e[0] and (o[3], o[1]) < (e[3], e[1]) and o[4] > e[3])
        for e in execs
    }
    handoff = {
        e[1]: not ahead[e[1]]
        and any(o[0] != e[0] and e[3] - ms_ <= o[4] <= e[3] + ms_ and o[4] > e[2] for o in execs)
        for e in execs
    }
    free = [e for e in execs if not ahead[e[1]] and not handoff[e[1]]]
    durations = sorted((e[4] - e[3]) / 1e6 for e in execs)
    baseline = (
        statistics.median((e[4] - e[3]) / 1e6 for e in free)
        if len(free) >= 5
        else durations[len(execs) // 10]
    )
    gap = max(int(2.0 * baseline * 1e6), ms_)
    for r, span, _r0, s0, s1 in execs:
        beside = any(
            o[0] != r and s1 - gap < o[4] < s1 + gap and o[3] < s1 and o[4] > s0 for o in execs
        )
        queued = handoff[span] or (ahead[span] > 0 and not beside)
        assert found[span] == (ahead[span], handoff[span], queued)


def test_the_asgi_instrumentations_message_spans_are_no_section() -> None:
    # FastAPI's `GET /orders http send` spans, one after another on one event loop, made a
    # "critical" lock out of sending the response: whatever their timing, they are the
    # server's transport, never a section of the application's
    b, control = RunBuilder(), RunBuilder()
    requests(b)
    requests(control)
    for span in b.spans:
        if span["name"] == "reserve":
            span["name"] = "GET /reserve http send"
    assert findings(b) == []
    assert findings(control), "the same spans as an application's section are contended"


ASGI_PRODUCER = Path(__file__).parent / "helpers" / "asgi_producer.py"


def _asgi_sections(tmp_path: Path, *renamed: str) -> list[str]:
    out = tmp_path / "asgi.jsonl"
    args = [str(ASGI_PRODUCER), str(out), "24", "10", *renamed]
    subprocess.run([sys.executable, *args], check=True, timeout=120)
    with correlate.open_store(":memory:") as store:
        store.ingest([out], run="r")
        with open_run(store, "r") as run:
            found = sections(
                run, tolerance_ms=1, handoff_ms=1, spacing=0.8, min_uncontended=5,
                min_executions=10,
            )  # fmt: skip
            return sorted(s.name for s in found)


def test_the_asgi_instrumentations_spans_are_known_by_their_event_type_not_their_name(
    tmp_path: Path,
) -> None:
    # opentelemetry-instrumentation-asgi marks each protocol message's span with
    # asgi.event.type; the application's own `mailer http send` (an asyncio lock held
    # around a mail sent over HTTP) merely ends like the instrumentation's span names
    assert _asgi_sections(tmp_path) == ["mailer http send"]


def test_renamed_asgi_message_spans_are_still_no_section(tmp_path: Path) -> None:
    assert _asgi_sections(tmp_path, "renamed") == ["mailer http send"]


def test_asgi_message_spans_of_older_instrumentation_are_known_by_their_type() -> None:
    # before asgi.event.type, opentelemetry-instrumentation-asgi set the message as "type"
    b = RunBuilder()
    requests(b)
    for span in b.spans:
        if span["name"] == "reserve":
            span["name"] = "GET /reserve http send"
            span["attributes"] = '{"type": "http.response.body"}'
    assert findings(b) == []


def test_an_applications_span_with_an_attribute_named_type_is_a_section() -> None:
    # "type" is a common attribute name: only on a span named as the ASGI instrumentation
    # names its message spans does it mark one
    b = RunBuilder()
    requests(b)
    for span in b.spans:
        if span["name"] == "reserve":
            span["attributes"] = '{"type": "http.response.start"}'
    assert findings(b)
