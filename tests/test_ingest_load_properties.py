"""Property tests for the load-generator readers: hostile lines never crash, never vanish."""

from __future__ import annotations

import csv
import gzip
import io
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import correlate
from correlate.errors import CorrelateError
from correlate.ingest import k6, locust

from . import strategies
from .conftest import DATA

PROPS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LOAD = DATA / "load"

hostile_text = strategies.hostile_text(30).map(lambda t: t.replace("\n", " "))
any_json = strategies.any_json(6)

# -- k6 NDJSON -------------------------------------------------------------------------

_K6_LINES = (LOAD / "k6.json").read_text().splitlines()
GOOD_K6 = next(line for line in _K6_LINES if '"http_req_duration","type":"Point"' in line)
_POINT = json.loads(GOOD_K6)


def _damaged_point(where: str, key: str, value: object) -> str:
    point = json.loads(GOOD_K6)
    target = (
        point if where == "top" else point["data"] if where == "data" else point["data"]["tags"]
    )
    target[key] = value
    return json.dumps(point)


damaged_k6 = st.builds(
    _damaged_point,
    st.sampled_from(["top", "data", "tags"]),
    st.sampled_from(["type", "metric", "time", "value", "tags", "method", "status", "url", "name"]),
    any_json | hostile_text,
)
hostile_k6_line = (
    st.just(GOOD_K6)
    | st.sampled_from(_K6_LINES[:12])
    | damaged_k6
    | any_json.map(json.dumps)
    | hostile_text
    | st.builds(lambda n: GOOD_K6[:n], st.integers(1, len(GOOD_K6) - 1))
).map(lambda t: t.encode("utf-8")) | st.binary(max_size=20).map(lambda b: b.replace(b"\n", b""))


def _is_record(line: bytes) -> bool:
    try:
        return bool(line.decode("utf-8").strip())
    except UnicodeDecodeError:
        return True


@PROPS
@given(lines=st.lists(hostile_k6_line, max_size=12), compress=st.booleans(), newline=st.booleans())
def test_k6_json_hostile_lines_are_rows_problems_or_passed_by(
    lines: list[bytes], compress: bool, newline: bool
) -> None:
    data = b"\n".join(lines) + (b"\n" if newline else b"")
    numbered = list(enumerate(data.split(b"\n"), start=1))
    records = {i for i, line in numbered if _is_record(line)}
    last = max(records, default=0)
    intact = {i for i, line in numbered if line == GOOD_K6.encode() and (newline or i != last)}
    with tempfile.TemporaryDirectory() as tmp, correlate.open_store(":memory:") as store:
        path = Path(tmp) / ("k6.json.gz" if compress else "k6.json")
        path.write_bytes(gzip.compress(data) if compress else data)
        store.con.execute("BEGIN")
        try:
            added, problems = k6.load_json(store, 1, 1, path)
        except CorrelateError:
            store.con.execute("ROLLBACK")
            return
        store.con.execute("COMMIT")  # the caller's transaction survived whatever the lines held
        problem_lines = [line for line, _ in problems]
        assert len(set(problem_lines)) == len(problem_lines)
        assert set(problem_lines) <= records
        assert not intact & set(problem_lines)
        assert len(intact) <= added <= len(records) - len(problems)
        (n,) = store.con.execute(
            "SELECT (SELECT count(*) FROM client_requests) + (SELECT count(*) FROM load_samples)"
        ).fetchone() or (0,)
        assert n == added
        assert all(reason for _, reason in problems)


# -- CSV (k6 and Locust) ---------------------------------------------------------------

_K6_CSV = (LOAD / "k6.csv").read_text().splitlines()
_HISTORY = (LOAD / "locust_stats_history.csv").read_text().splitlines()


def _csv_line(fields: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue()


def _damaged(good: str) -> st.SearchStrategy[str]:
    fields = next(csv.reader([good]))
    return st.builds(
        lambda i, value, cut: _csv_line(
            [value if j == i else f for j, f in enumerate(fields)][: cut or None]
        ),
        st.integers(0, len(fields) - 1),
        hostile_text | st.sampled_from(['"', '""', "N/A", "1e400", "-1", "\r", '"a\nb"']),
        st.sampled_from([0, 0, 0, 1, len(fields) - 1]),
    )


def _hostile_csv(good: list[str]) -> st.SearchStrategy[bytes]:
    return (
        st.sampled_from(good)
        | st.sampled_from(good).flatmap(_damaged)
        | hostile_text
        | st.sampled_from(good).flatmap(lambda g: st.builds(lambda n: g[:n], st.integers(1, 20)))
    ).map(lambda t: t.encode("utf-8")) | st.binary(max_size=20).map(lambda b: b.replace(b"\n", b""))


@PROPS
@given(
    which=st.sampled_from(["k6", "locust"]),
    data=st.data(),
    newline=st.booleans(),
)
def test_csv_hostile_records_never_crash_or_vanish(
    which: str, data: st.DataObject, newline: bool
) -> None:
    source = _K6_CSV if which == "k6" else _HISTORY
    header, good = source[0], source[1:8]
    lines = data.draw(st.lists(_hostile_csv(good), max_size=10))
    body = b"\n".join([header.encode(), *lines]) + (b"\n" if newline else b"")
    loader = k6.load_csv if which == "k6" else locust.load_history
    with tempfile.TemporaryDirectory() as tmp, correlate.open_store(":memory:") as store:
        path = Path(tmp) / "results.csv"
        path.write_bytes(body)
        store.con.execute("BEGIN")
        try:
            added, problems = loader(store, 1, 1, path)
        except CorrelateError:
            store.con.execute("ROLLBACK")
            return
        store.con.execute("COMMIT")
        physical = body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
        problem_lines = [line for line, _ in problems]
        assert all(line is not None and 2 <= line <= physical for line in problem_lines)
        # A record is a row (or, for k6, a point passed by) or a problem: never both, never more.
        assert added + len(problems) <= len(lines)
        assert all(reason for _, reason in problems)
        intact = [line for line in lines[:-1] if line.decode("utf-8", "replace") in good]
        if which == "locust" and not any(b'"' in line for line in lines):
            # Every history record is a row: nothing intact may go missing (an open quote
            # would take the lines after it into one field, and that one is a problem).
            assert added >= len(intact)
