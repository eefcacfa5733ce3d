"""Load-generator results: k6 NDJSON, CSV and summaries; Locust's CSV set and --json.

The fixtures in tests/data/load are real outputs (see its README); the
expected numbers below are read off those files.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path

import pytest

from correlate.errors import InputError
from correlate.ingest.loadgen import LOAD_FORMATS, detect_load_format
from correlate.store import Store

from .conftest import DATA
from .sample_facts import locust_csv

LOAD = DATA / "load"


def rows(store: Store, sql: str, params: list | None = None) -> list[tuple]:
    return store.con.execute(sql, params or []).fetchall()


def rfc3339_ns(text: str) -> int:
    """Nanoseconds of k6's ``2026-12-02T12:13:51.245962687Z``, independently of the reader."""
    whole, _, frac = text.rstrip("Z").partition(".")
    seconds = int(datetime.fromisoformat(whole + "+00:00").timestamp())
    return seconds * 1_000_000_000 + int(frac.ljust(9, "0"))


def k6_points(path: Path, metric: str) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
        lines = [json.loads(line) for line in f if line.strip()]
    return [p for p in lines if p["type"] == "Point" and p["metric"] == metric]


# -- detection -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("k6.json", "k6-json"),
        ("k6_short.json.gz", "k6-json"),
        ("k6.csv", "k6-csv"),
        ("k6_rfc3339.csv", "k6-csv"),
        ("k6_summary_export.json", "k6-summary"),
        ("k6_handle_summary.json", "k6-summary"),
        ("locust_stats_history.csv", "locust-history"),
        ("locust_stats.csv", "locust-stats"),
        ("locust_failures.csv", "locust-failures"),
        ("locust_exceptions.csv", "locust-exceptions"),
        ("locust.json", "locust-json"),
    ],
)
def test_detected_from_content_not_name(tmp_path: Path, name: str, kind: str) -> None:
    assert detect_load_format(LOAD / name) == kind
    renamed = tmp_path / "results.txt"
    renamed.write_bytes((LOAD / name).read_bytes())
    assert detect_load_format(renamed) == kind


def test_other_files_are_not_load_results() -> None:
    assert detect_load_format(DATA / "otlp" / "checkout.jsonl") is None
    assert detect_load_format(LOAD / "script.js") is None
    assert detect_load_format(LOAD / "README.md") is None


# -- k6 --------------------------------------------------------------------------------


def test_k6_json_requests_and_vus(store: Store) -> None:
    report = store.ingest([LOAD / "k6.json"], run="k6")
    assert report.load_rows == {"k6-json": 37} and report.skipped == 0
    assert report.spans_added == 0
    points = k6_points(LOAD / "k6.json", "http_req_duration")
    assert len(points) == 34
    assert rows(
        store,
        "SELECT count(*), count(trace_id), count(span_id), sum(user), sum(response_bytes) "
        "FROM client_requests",
    ) == [(34, 34, 0, 0, 0)]
    assert rows(
        store,
        "SELECT name, path, method, status_code, ok, count(*) FROM client_requests "
        "GROUP BY ALL ORDER BY name",
    ) == [
        ("/fail", "/fail", "GET", 500, False, 6),
        ("/orders/{id}", "/orders/{id}", "GET", 200, True, 28),
    ]
    first = points[0]["data"]
    duration_ns = round(first["value"] * 1e6)
    assert rows(
        store,
        "SELECT start_unix_nano, duration_ns FROM client_requests WHERE trace_id = ?",
        [first["metadata"]["trace_id"]],
    ) == [(rfc3339_ns(first["time"]) - duration_ns, duration_ns)]
    vus = k6_points(LOAD / "k6.json", "vus")
    assert rows(store, "SELECT tool, time_unix_nano, users, name FROM load_samples ORDER BY 2") == [
        ("k6", rfc3339_ns(p["data"]["time"]), 2, None) for p in vus
    ]


def test_k6_csv_is_the_same_run_in_whole_seconds(store: Store) -> None:
    store.ingest([LOAD / "k6.json"], run="json")
    report = store.ingest([LOAD / "k6.csv"], run="csv")
    assert report.load_rows == {"k6-csv": 37} and report.skipped == 0
    by_run = """
        SELECT c.trace_id, c.duration_ns, c.status_code, c.ok, c.name,
               c.start_unix_nano + c.duration_ns AS t
        FROM client_requests c JOIN runs USING (run_id) WHERE runs.name = ? ORDER BY trace_id
    """
    from_json, from_csv = rows(store, by_run, ["json"]), rows(store, by_run, ["csv"])
    assert [r[:5] for r in from_json] == [r[:5] for r in from_csv]
    # CSV's default timestamps are whole seconds: the end time is the JSON one, truncated.
    assert all(c[5] == j[5] // 10**9 * 10**9 for j, c in zip(from_json, from_csv, strict=True))


def test_k6_rfc3339_csv_and_gzipped_json_agree_to_the_nanosecond(store: Store) -> None:
    report = store.ingest([LOAD / "k6_rfc3339.csv", LOAD / "k6_short.json.gz"], run="short")
    assert report.load_rows == {"k6-csv": 13, "k6-json": 13} and report.skipped == 0
    by_format = rows(
        store,
        """
        SELECT f.format, list(c.start_unix_nano ORDER BY c.trace_id),
               list(c.duration_ns ORDER BY c.trace_id)
        FROM client_requests c JOIN files f USING (file_id) GROUP BY 1 ORDER BY 1
        """,
    )
    assert len(by_format) == 2 and len(by_format[0][1]) == 12
    assert by_format[0][1:] == by_format[1][1:]


@pytest.mark.parametrize("name", ["k6_summary_export.json", "k6_handle_summary.json"])
def test_k6_summary_thresholds_say_passed_in_both_formats(store: Store, name: str) -> None:
    # The run's p(95)<2000 held and rate<0.01 did not (a quarter of iterations call /fail).
    # --summary-export writes {"p(95)<2000": false} for that, handleSummary {"ok": true}.
    report = store.ingest([LOAD / name], run="k6")
    assert report.skipped == 0 and report.load_rows == {"k6-summary": 73}
    assert rows(store, "SELECT metric, threshold, passed FROM load_thresholds ORDER BY 1") == [
        ("http_req_duration", "p(95)<2000", True),
        ("http_req_failed", "rate<0.01", False),
    ]
    assert rows(
        store,
        "SELECT stat, value FROM load_summary WHERE metric = 'http_req_failed' ORDER BY stat",
    ) == [("fails", 28.0), ("passes", 6.0), ("rate", pytest.approx(6 / 34))] or rows(
        store,
        "SELECT stat, value FROM load_summary WHERE metric = 'http_req_failed' ORDER BY stat",
    ) == [("fails", 28.0), ("passes", 6.0), ("value", pytest.approx(6 / 34))]
    assert rows(
        store, "SELECT value FROM load_summary WHERE metric = 'http_reqs' AND stat = 'count'"
    ) == [(34.0,)]


def test_both_summary_formats_give_the_same_statistics(store: Store) -> None:
    store.ingest([LOAD / "k6_summary_export.json"], run="export")
    store.ingest([LOAD / "k6_handle_summary.json"], run="handle")
    stats = """
        SELECT metric, replace(stat, 'value', 'rate') AS stat, value
        FROM load_summary JOIN runs USING (run_id)
        WHERE runs.name = ? AND NOT (metric = 'http_req_failed' AND stat IN ('value', 'rate'))
        ORDER BY 1, 2
    """
    assert rows(store, stats, ["export"]) == rows(store, stats, ["handle"])


# -- Locust ----------------------------------------------------------------------------


def test_locust_csv_set_and_json(store: Store) -> None:
    paths = [*sorted(LOAD.glob("locust*.csv")), LOAD / "locust.json"]
    report = store.ingest(paths, run="locust")
    assert report.skipped == 0
    counted = json.loads((LOAD / "locust.json").read_text())
    seconds = sum(len(e["num_reqs_per_sec"]) for e in counted)
    assert report.load_rows == {
        "locust-exceptions": 1,
        "locust-failures": 1,
        "locust-stats": 60,
        "locust-history": 10,
        "locust-json": 18 + seconds,
    }
    # --json's requests and failures per second, per endpoint
    per_second = rows(
        store,
        "SELECT name, time_unix_nano // 1000000000, requests_per_s, failures_per_s "
        "FROM load_samples JOIN files USING (file_id) WHERE format = 'locust-json' ORDER BY 1, 2",
    )
    assert per_second == sorted(
        (e["name"], int(t), float(n), float(e["num_fail_per_sec"].get(t, 0)))
        for e in counted
        for t, n in e["num_reqs_per_sec"].items()
    )
    history = (LOAD / "locust_stats_history.csv").read_text().splitlines()[1:]
    expected = [
        (
            int(f[0]) * 10**9,
            int(f[1]),
            None if f[3] == "Aggregated" else f[2],
            None if f[3] == "Aggregated" else f[3],
        )
        for f in (line.split(",") for line in history)
    ]
    assert (
        rows(
            store,
            "SELECT time_unix_nano, users, method, name FROM load_samples WHERE file_id = "
            "(SELECT file_id FROM files WHERE format = 'locust-history') ORDER BY rowid",
        )
        == expected
    )
    assert rows(
        store,
        "SELECT method, name, stat, value FROM load_summary JOIN files USING (file_id) "
        "WHERE format = 'locust-stats' AND metric = 'requests' AND stat IN ('count', 'failures') "
        "ORDER BY name NULLS FIRST, stat",
    ) == [
        (None, None, "count", 40.0),
        (None, None, "failures", 6.0),
        ("GET", "/fail", "count", 6.0),
        ("GET", "/fail", "failures", 6.0),
        ("GET", "/orders/{id}", "count", 34.0),
        ("GET", "/orders/{id}", "failures", 0.0),
    ]
    assert rows(
        store,
        "SELECT value FROM load_summary WHERE name = '/orders/{id}' AND stat = 'p(99.9)' "
        "AND metric = 'response_time_ms'",
    ) == [(27.0,)]
    failures = rows(
        store,
        "SELECT method, name, error, occurrences, first_seen_unix_nano, traceback IS NULL "
        "FROM load_failures WHERE name IS NOT NULL",
    )
    assert failures == [
        (
            "GET",
            "/fail",
            "HTTPError('500 Server Error: Internal Server Error for url: /fail')",
            6,
            rfc3339_ns("2026-12-02T12:13:55Z"),
            True,
        )
    ]
    ((message, count, traceback, nodes),) = rows(
        store, "SELECT error, occurrences, traceback, nodes FROM load_failures WHERE name IS NULL"
    )
    assert (message, count, nodes) == ("planted in the locustfile", 4, "local")
    assert traceback.count("\n") == 8 and 'raise RuntimeError("planted' in traceback
    # --json counts the whole run's requests (the CSVs stop at the last stats tick).
    assert rows(
        store,
        "SELECT name, value FROM load_summary JOIN files USING (file_id) "
        "WHERE format = 'locust-json' AND stat = 'count' ORDER BY 1",
    ) == sorted((e["name"], float(e["num_requests"])) for e in counted)


def test_sample_run_directory_reads_its_locust_csvs(store: Store) -> None:
    sample = Path(__file__).resolve().parents[1] / "sample_traces" / "checkout-blackfriday"
    store.ingest([sample], run="bf")
    history = [
        r for r in locust_csv("checkout-blackfriday", "stats_history") if r["Name"] == "Aggregated"
    ]
    failures = locust_csv("checkout-blackfriday", "failures")
    assert rows(
        store,
        "SELECT count(*), max(users), min(time_unix_nano) FROM load_samples WHERE name IS NULL",
    ) == [
        (
            len(history),
            max(int(r["User Count"]) for r in history),
            min(int(r["Timestamp"]) for r in history) * 10**9,
        )
    ]
    assert max(int(r["User Count"]) for r in history) == 20  # the demo's peak
    assert rows(store, "SELECT sum(occurrences) FROM load_failures") == [
        (sum(int(r["Occurrences"]) for r in failures),)
    ]


# -- dirty input -----------------------------------------------------------------------

GOOD_POINT = (LOAD / "k6.json").read_text().splitlines()[3]


def write(path: Path, *lines: str, end: str = "\n") -> Path:
    path.write_text("\n".join(lines) + end, encoding="utf-8")
    return path


def test_k6_json_bad_lines_are_problems_with_their_line(store: Store, tmp_path: Path) -> None:
    point = json.loads(GOOD_POINT)

    def changed(**data: object) -> str:
        return json.dumps({**point, "data": {**point["data"], **data}})

    path = write(
        tmp_path / "k6.json",
        GOOD_POINT,
        "{not json",
        "[1, 2]",
        '{"type": "Sample", "metric": "x"}',
        changed(time="yesterday"),
        changed(value=-1),
        changed(value="fast"),
        changed(tags={"status": "200"}),
        GOOD_POINT[:40],
        end="",
    )
    report = store.ingest([path], run="dirty")
    assert report.load_rows == {"k6-json": 1}
    assert [(p.line, p.reason) for p in report.problems] == [
        (2, "not valid JSON (Expecting property name enclosed in double quotes at column 2)"),
        (
            3,
            "not a JSON object but a JSON array; each line of k6 --out json is one Metric or Point object",
        ),
        (4, "not a k6 Metric or Point line (type: Sample)"),
        (5, "time is not a Unix time or RFC 3339 time: yesterday"),
        (6, "http_req_duration is negative: -1"),
        (7, "value is not a number: fast"),
        (8, "an http_req_duration point without its method tag"),
        (9, "last line is cut short (no final newline; was the file still being written?)"),
    ]
    assert str(report.problems[0]) == f"{path}:2: " + report.problems[0].reason
    assert rows(store, "SELECT count(*) FROM problems") == [(8,)]
    with pytest.raises(InputError, match=r"k6.json:2: not valid JSON .*--strict"):
        store.ingest([path], run="strict", strict=True)
    assert rows(
        store,
        "SELECT count(*) FROM client_requests c JOIN runs USING (run_id) WHERE runs.name = 'strict'",
    ) == [(0,)]


def test_k6_csv_bad_records(store: Store, tmp_path: Path) -> None:
    lines = (LOAD / "k6.csv").read_text().splitlines()
    header, good = lines[0], lines[2]
    fields = good.split(",")
    path = tmp_path / "k6.csv"
    path.write_bytes(
        "\n".join(
            [
                header,
                good,
                ",".join(fields[:5]),
                ",".join([fields[0], "soon", *fields[2:]]),
                ",".join([fields[0], fields[1], "nan", *fields[3:]]),
            ]
        ).encode()
        + b"\n"
        + good.replace("GET", "G\xe9T").encode("latin-1")
        + b"\n"
        + good[:30].encode()
    )
    report = store.ingest([path], run="dirty")
    assert report.load_rows == {"k6-csv": 1}
    assert [(p.line, p.reason) for p in report.problems] == [
        (3, "5 fields where the header has 19"),
        (4, "time is not a Unix time or RFC 3339 time: soon"),
        (5, "value is not a number: nan"),
        (6, "not UTF-8 text (byte 0xe9)"),
        (7, "last line is cut short (no final newline; was the file still being written?)"),
    ]


def test_locust_bad_records(store: Store, tmp_path: Path) -> None:
    lines = (LOAD / "locust_stats_history.csv").read_text().splitlines()
    path = write(
        tmp_path / "history.csv",
        lines[0],
        lines[1],
        ",".join([lines[2].split(",")[0], "three", *lines[2].split(",")[2:]]),
        "x" + lines[3],
        lines[4],
    )
    report = store.ingest([path], run="dirty")
    assert report.load_rows == {"locust-history": 2}
    assert [(p.line, p.reason) for p in report.problems] == [
        (3, "User Count is not a count: three"),
        (4, "Timestamp is not Unix seconds: x1796213636"),
    ]


def test_broken_summary_documents(store: Store, tmp_path: Path) -> None:
    text = (LOAD / "k6_summary_export.json").read_text()
    cut = write(tmp_path / "cut.json", text[: len(text) // 2], end="")
    with pytest.raises(InputError) as caught:  # the one document: nothing could be read
        store.ingest([cut], run="cut")
    assert caught.value.reason == (
        "nothing could be read from this file: "
        "last line is cut short (no final newline; was the file still being written?)"
    )
    doc = json.loads(text)
    doc["metrics"]["http_req_duration"]["thresholds"] = {"p(95)<2000": "maybe"}
    doc["metrics"]["vus"]["max"] = "two"
    odd = write(tmp_path / "odd.json", json.dumps(doc))
    report = store.ingest([odd], run="odd")
    assert sorted(p.reason for p in report.problems) == [
        "metric 'http_req_duration': threshold 'p(95)<2000' has no verdict: 'maybe'",
        "metric 'vus': max is not a number: 'two'",
    ]
    assert report.load_rows == {"k6-summary": 73 - 2}  # the threshold and the stat that were bad


def test_every_load_format_has_help() -> None:
    assert all(f.help and f.family == "load" for f in LOAD_FORMATS)


def test_cli_ingest_of_k6_results(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from correlate.cli import cli

    db = tmp_path / "s.duckdb"
    args = ["ingest", str(LOAD / "k6.json"), str(LOAD / "k6_summary_export.json")]
    result = CliRunner().invoke(cli, [*args, "--run", "k6", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert result.output == (
        "run 'k6': 0 spans added from 0 file(s)\nload generator (rows): k6-json 37, k6-summary 73\n"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1796213631", 1796213631 * 10**9),  # unix (k6's default)
        ("1796213631245", 1796213631245 * 10**6),  # unix_milli
        ("1796213631245962", 1796213631245962 * 10**3),  # unix_micro
        ("1796213631245962687", 1796213631245962687),  # unix_nano
        ("2026-12-02T12:13:51Z", 1796213631 * 10**9),  # rfc3339
        ("2026-12-02T12:13:51.245962687Z", 1796213631245962687),  # rfc3339_nano
        ("2026-12-02T13:13:51.5+01:00", 1796213631_500_000_000),  # an offset
        ("2026-12-02", None),
        ("1e9", None),
        ("99999999999999999999", None),
        ("9999-12-31T23:59:59Z", None),  # past what nanoseconds in a BIGINT can hold
    ],
)
def test_k6_csv_time_formats(store: Store, text: str, expected: int | None) -> None:
    from correlate.ingest.loadrows import define_time_macros

    define_time_macros(store.con)
    assert rows(store, "SELECT correlate_epoch_ns(?)", [text]) == [(expected,)]


def test_format_forces_a_load_format_detection_cannot_see(store: Store, tmp_path: Path) -> None:
    # a banner line before the NDJSON hides what the file is
    odd = tmp_path / "k6-out.txt"
    odd.write_text("k6 v1.1.0 run started\n" + (LOAD / "k6.json").read_text())
    with pytest.raises(InputError, match=r"k6-json, k6-csv, .* \(load-generator results\)"):
        store.ingest([odd], run="auto")
    report = store.ingest([odd], run="forced", format="k6-json")
    requests = len(k6_points(LOAD / "k6.json", "http_req_duration"))
    assert rows(
        store,
        "SELECT count(*) FROM client_requests c JOIN runs USING (run_id) WHERE runs.name = 'forced'",
    ) == [(requests,)]
    assert [(p.line, p.reason[:20]) for p in report.problems][:1] == [(1, "not valid JSON (Expe")]


def test_locust_json_with_broken_per_second_counts(store: Store, tmp_path: Path) -> None:
    doc = json.loads((LOAD / "locust.json").read_text())
    doc[0]["num_reqs_per_sec"] = {"soon": 3}
    broken = tmp_path / "locust.json"
    broken.write_text(json.dumps(doc))
    report = store.ingest([broken], run="r")
    (problem,) = report.problems
    assert "num_reqs_per_sec has 'soon': 3, not epoch seconds: a count" in problem.reason
    names = rows(store, "SELECT DISTINCT name FROM load_samples ORDER BY 1")
    assert names == [(doc[1]["name"],)]  # the other endpoint's seconds are kept
