"""Plan files and PostgreSQL auto_explain logs in ``correlate ingest``."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

import correlate
from correlate.errors import InputError
from correlate.ingest.detect import NotTraceFile, detect_format
from correlate.plans.files import detect_plan_input
from correlate.store import Store

from .conftest import DATA

PGLOG = DATA / "pglog"
PLANS = DATA / "plans"
LOGS = {
    "pg-stderr": "postgresql.log",
    "pg-csvlog": "postgresql.csv",
    "pg-jsonlog": "postgresql.json",
}
#: auto_explain's durations in the committed logs, in order (the INSERT ran before
#: the instrumentation was on, so it has no traceparent and no span)
DURATIONS = [0.627, 0.043, 0.026, 0.026, 0.034]


def _log(tmp_path: Path, kind: str, gz: bool) -> Path:
    source = PGLOG / LOGS[kind]
    if not gz:
        return source
    target = tmp_path / (source.name + ".gz")
    target.write_bytes(gzip.compress(source.read_bytes()))
    return target


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("kind", sorted(LOGS))
def test_every_logged_plan_links_to_the_exact_span_it_came_from(
    store: Store, tmp_path: Path, kind: str, gz: bool
) -> None:
    log = _log(tmp_path, kind, gz)
    assert detect_plan_input(log) == kind
    report = store.ingest([PGLOG / "spans.jsonl", log], run="r")
    assert report.plans_added == 5
    assert report.plans_without_span == 0
    assert report.summary().splitlines() == [
        "run 'r': 8 spans added from 1 file(s)",
        "run 'r': 5 plan(s) added from 1 file(s): 4 tied to their span by traceparent, "
        "1 by fingerprint",
    ]
    plans = store.sql(
        "SELECT plan_id, link, trace_id, span_id, fingerprint, execution_ms, method, source, "
        "analyzed FROM plans ORDER BY plan_id"
    )
    assert list(plans["execution_ms"]) == DURATIONS
    assert set(plans["method"]) == {"auto_explain"}
    assert set(plans["source"]) == {str(log.resolve())}
    assert list(plans["link"]) == ["fingerprint"] + ["traceparent"] * 4
    assert plans["analyzed"].all()
    # Each traceparent names the DB CLIENT span itself (SQLAlchemy instrumentation): the
    # span with those ids is a query span whose statement has the plan's shape.
    exact = store.sql(
        """
        SELECT p.plan_id, s.kind, s.db_system, d.fingerprint = p.fingerprint AS same_shape,
               strip_sqlcommenter(p.statement) AS statement
        FROM plans p
        JOIN spans s ON s.trace_id = p.trace_id AND s.span_id = p.span_id
        JOIN db_spans d ON d.trace_id = s.trace_id AND d.span_id = s.span_id
        WHERE p.link = 'traceparent' ORDER BY p.plan_id
        """
    )
    assert len(exact) == 4
    assert set(exact["kind"]) == {"CLIENT"} and set(exact["db_system"]) == {"postgresql"}
    assert exact["same_shape"].all()
    # the statement with a tab, a quote and newlines came through the log intact
    assert "SELECT o.id, o.total, 'it''s\tpaid' AS note\nFROM ax_orders o\nWHERE o.id = $1" in set(
        exact["statement"]
    )
    # every DB span of the run has its own plan
    assert store.sql("SELECT count(*) AS n FROM db_spans")["n"][0] == 4
    files = store.sql("SELECT format, records_read, records_added, skipped FROM files ORDER BY 1")
    assert files.values.tolist() == [["otlp-json", 8, 8, 0], [kind, 5, 5, 0]]
    assert store.sql("SELECT count(*) AS n FROM problems")["n"][0] == 0
    nodes = store.sql("SELECT plan_id, count(*) AS n FROM plan_nodes GROUP BY 1 ORDER BY 1")
    assert list(nodes["n"]) == [2, 1, 1, 1, 2]


def test_a_log_ingested_twice_adds_nothing(store: Store) -> None:
    store.ingest([PGLOG / "postgresql.log"], run="r")
    again = store.ingest([PGLOG / "postgresql.log"], run="r")
    assert again.plans_added == 0 and again.files[0].already_ingested
    assert store.sql("SELECT count(*) AS n FROM plans")["n"][0] == 5


def test_plans_before_their_spans_are_reported(store: Store) -> None:
    report = store.ingest([PGLOG / "postgresql.json"], run="r")
    assert report.plans_without_span == 4
    assert report.summary().splitlines()[1] == (
        "4 plan(s) name a span (traceparent) that run 'r' does not hold; "
        "ingest the spans of the same run"
    )


def _stderr_lines() -> list[str]:
    return (PGLOG / "postgresql.log").read_text().splitlines(keepends=True)


def test_stderr_plan_cut_short_is_counted_with_its_line(store: Store, tmp_path: Path) -> None:
    lines = _stderr_lines()
    # the log ends inside the last plan (line 159 starts it), as while the server writes
    cut = tmp_path / "postgresql.log"
    cut.write_text("".join(lines[:200]))
    report = store.ingest([cut], run="r")
    assert report.plans_added == 4
    assert [str(p) for p in report.problems] == [
        f"{cut}:159: not a plan: invalid JSON (Expecting property name enclosed in double quotes: "
        "line 41 column 26 (char 1304))"
    ]
    assert store.sql("SELECT line, reason FROM problems")["line"].tolist() == [159]


def test_text_format_plans_say_how_to_fix_it(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "postgresql.log"
    log.write_text(
        "2026-11-25 12:29:09.738 UTC [1] postgres@test LOG:  duration: 0.043 ms  plan:\n"
        "\tQuery Text: SELECT 1\n"
        "\tResult  (cost=0.00..0.01 rows=1 width=4)\n"
        "2026-11-25 12:29:09.739 UTC [1] postgres@test LOG:  duration: 0.050 ms  statement: SELECT 1\n"
    )
    # Its one plan cannot be read: the file gave nothing, an error that says how to fix it.
    with pytest.raises(InputError) as caught:
        store.ingest([log], run="r")
    assert str(caught.value) == (
        f"{log}:1: nothing could be read from this file: auto_explain wrote this plan as "
        "text; set auto_explain.log_format = json so correlate can read it"
    )


def test_jsonlog_line_cut_short(store: Store, tmp_path: Path) -> None:
    lines = (PGLOG / "postgresql.json").read_text().splitlines(keepends=True)
    cut = tmp_path / "postgresql.json"
    cut.write_text("".join(lines[:-3]) + lines[-3][:600])
    report = store.ingest([cut], run="r")
    assert [p.line for p in report.problems] == [len(lines) - 2]
    assert "cut short" in report.problems[0].reason
    assert report.plans_added == 3  # the plans before it; the ones after are gone


def test_csvlog_record_cut_short(store: Store, tmp_path: Path) -> None:
    text = (PGLOG / "postgresql.csv").read_text()
    start = text.index("2026-11-25 12:29:09.741")
    cut = tmp_path / "postgresql.csv"
    cut.write_text(text[: start + 900])
    report = store.ingest([cut], run="r")
    assert report.plans_added == 4
    assert len(report.problems) == 1
    line = text[:start].count("\n") + 1
    assert str(report.problems[0]).startswith(f"{cut}:{line}: ")


def test_strict_fails_on_a_broken_plan_and_keeps_nothing(store: Store, tmp_path: Path) -> None:
    cut = tmp_path / "postgresql.log"
    cut.write_text("".join(_stderr_lines()[:200]))
    with pytest.raises(InputError) as info:
        store.ingest([cut], run="r", strict=True)
    assert str(info.value).startswith(f"{cut}:159: not a plan: invalid JSON")
    assert store.sql("SELECT count(*) AS n FROM plans")["n"][0] == 0


# ------------------------------------------------------------------ plan files


def _spans(tmp_path: Path, statements: dict[str, tuple[str, str]]) -> Path:
    """OTLP/JSON with one DB span per ``span_id: (db.system, statement)``."""
    spans = [
        {
            "traceId": "ab" * 16,
            "spanId": span_id,
            "name": "q",
            "kind": 3,
            "startTimeUnixNano": "1000000000",
            "endTimeUnixNano": str(1_000_000_000 + 1_000_000 * (i + 1)),
            "attributes": [
                {"key": "db.system", "value": {"stringValue": system}},
                {"key": "db.statement", "value": {"stringValue": text}},
            ],
        }
        for i, (span_id, (system, text)) in enumerate(statements.items())
    ]
    path = tmp_path / "spans.jsonl"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}) + "\n")
    return path


def test_psql_printed_plan_links_by_the_sql_file_next_to_it(store: Store, tmp_path: Path) -> None:
    _spans(
        tmp_path,
        {
            "1" * 16: ("postgresql", "SELECT relname, relkind FROM pg_class WHERE relname = %(n)s"),
            "2" * 16: ("mysql", "SELECT id, total FROM cx_orders WHERE customer_id = %s"),
        },
    )
    for name in ("pg-psql-analyze.txt", "pg-psql-analyze.sql", "mariadb-explain.txt",
                 "mariadb-explain.sql"):  # fmt: skip
        shutil.copy(PLANS / name, tmp_path / name)
    report = store.ingest([tmp_path], run="r")
    assert report.passed_over == []  # the .sql files belong to their plans
    assert report.summary().splitlines() == [
        "run 'r': 2 spans added from 1 file(s)",
        "run 'r': 2 plan(s) added from 2 file(s): 0 tied to their span by traceparent, "
        "2 by fingerprint",
    ]
    linked = store.sql(
        """
        SELECT d.span_id, p.link, p.method, p.analyzed, p.planning_ms, p.settings->>'work_mem' AS wm
        FROM db_spans d JOIN plans p USING (fingerprint) ORDER BY d.span_id
        """
    )
    assert linked["span_id"].tolist() == ["1" * 16, "2" * 16]
    assert set(linked["link"]) == {"fingerprint"} and set(linked["method"]) == {"file"}
    assert linked["analyzed"].tolist() == [True, False]
    assert linked["planning_ms"][0] > 0 and linked["wm"][0] == "8MB"
    formats = store.sql("SELECT format, records_added FROM files ORDER BY path")
    assert formats.values.tolist() == [
        ["mysql-explain", 1],
        ["pg-explain", 1],
        ["otlp-json", 2],
    ]


def test_a_plan_without_a_statement_is_stored_unlinked(store: Store) -> None:
    report = store.ingest([PLANS / "mariadb-analyze.json"], run="r")
    assert report.plans_added == 1
    assert report.summary().splitlines()[-1] == (
        f"unlinked: 1 plan(s) without a statement ({PLANS / 'mariadb-analyze.json'}); "
        "put the statement in a .sql file of the same name"
    )
    row = store.sql("SELECT fingerprint, link, analyzed, execution_ms FROM plans").iloc[0]
    assert row["fingerprint"] is None and row["link"] == "fingerprint"
    assert row["analyzed"] and row["execution_ms"] > 0


def test_query_text_in_a_plan_file_links_it(store: Store, tmp_path: Path) -> None:
    plan = {
        "Query Text": "SELECT 1 /*traceparent='00-" + "ab" * 16 + "-" + "1" * 16 + "-01'*/",
        "Plan": {"Node Type": "Result"},
    }
    path = tmp_path / "one.json"
    path.write_text(json.dumps(plan))
    report = store.ingest([_spans(tmp_path, {"1" * 16: ("postgresql", "SELECT 1")}), path], run="r")
    assert report.files[1].plans is not None and report.files[1].plans.traceparent == 1
    row = store.sql("SELECT link, trace_id, span_id FROM plans").iloc[0].tolist()
    assert row == ["traceparent", "ab" * 16, "1" * 16]


def test_several_plans_in_one_file_are_each_stored(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "two.json"
    path.write_text(
        json.dumps([{"Plan": {"Node Type": "Result"}}, {"Plan": {"Node Type": "Seq Scan"}}])
    )
    assert store.ingest([path], run="r").plans_added == 2


def test_a_broken_plan_file_is_a_skipped_record(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "q.json"
    path.write_text('[{"Plan": {"Node Type": "Seq Scan", "Relation Name": ')
    with pytest.raises(InputError) as caught:  # its only record: nothing could be read
        store.ingest([path], run="r")
    assert str(caught.value) == (
        f"{path}:1: nothing could be read from this file: "
        "not a plan: invalid JSON (Expecting value: line 1 column 53 (char 52))"
    )
    assert store.sql("SELECT count(*) AS n FROM files")["n"][0] == 0  # nothing kept
    # Beside a good plan, it is a skipped record of a file that was read.
    shutil.copy(PLANS / "postgres" / sorted(p.name for p in (PLANS / "postgres").glob("*.json"))[0],
                tmp_path / "good.json")  # fmt: skip
    report = store.ingest([tmp_path], run="r")
    assert [str(p) for p in report.problems] == [
        f"{path}:1: not a plan: invalid JSON (Expecting value: line 1 column 53 (char 52))"
    ]


def test_real_postgres_plan_files(store: Store) -> None:
    report = store.ingest([PLANS / "postgres"], run="r")
    assert report.plans_added == len(list((PLANS / "postgres").glob("*.json"))) == 5
    assert report.problems == []
    nodes = store.sql("SELECT count(*) AS n FROM plan_nodes")["n"][0]
    assert nodes > 10


# ------------------------------------------------------------------ detection

SPAN_FILES = [
    DATA / "otlp" / "checkout.jsonl",
    DATA / "jaeger" / "checkout.json",
    PGLOG / "spans.jsonl",
    *sorted((DATA / "zipkin").glob("*.json")),
]
PLAN_INPUTS = {
    PGLOG / "postgresql.log": "pg-stderr",
    PGLOG / "postgresql.csv": "pg-csvlog",
    PGLOG / "postgresql.json": "pg-jsonlog",
    PLANS / "pg-psql-analyze.txt": "pg-explain",
    PLANS / "mariadb-explain.txt": "mysql-explain",
    PLANS / "mariadb-analyze.json": "mysql-explain",
    PLANS / "mysql-v1-join.json": "mysql-explain",
    PLANS / "mysql-v2-filter.json": "mysql-explain",
}


@pytest.mark.parametrize("path", SPAN_FILES, ids=lambda p: p.name)
def test_span_files_are_not_taken_for_plans(path: Path) -> None:
    assert detect_plan_input(path) is None
    detect_format(path)


@pytest.mark.parametrize("path", sorted(PLAN_INPUTS), ids=lambda p: p.name)
def test_plan_files_and_logs_are_not_taken_for_spans(path: Path) -> None:
    assert detect_plan_input(path) == PLAN_INPUTS[path]
    with pytest.raises(NotTraceFile):
        detect_format(path)


def test_other_text_is_neither(tmp_path: Path) -> None:
    for text in ("SELECT 1;\n", "# notes\nLOG: one space only\n", "{}", "[]", ""):
        path = tmp_path / "x.txt"
        path.write_text(text)
        assert detect_plan_input(path) is None, text


def test_plans_read_by_the_python_twin_and_the_cli_agree(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from correlate.cli import cli

    db = tmp_path / "s.duckdb"
    result = CliRunner().invoke(
        cli, ["ingest", str(PGLOG / "spans.jsonl"), str(PGLOG / "postgresql.csv"), "--run", "r",
              "--db", str(db)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output == (
        "run 'r': 8 spans added from 1 file(s)\n"
        "run 'r': 5 plan(s) added from 1 file(s): 4 tied to their span by traceparent, "
        "1 by fingerprint\n"
    )
    with correlate.open_store(db, read_only=True) as store:
        assert store.sql("SELECT count(*) AS n FROM plans")["n"][0] == 5


# ------------------------------------------------------------------ live


@pytest.mark.postgres
def test_live_auto_explain_plans_link_to_the_spans_of_a_recorded_run(
    pg_dsn: str, tmp_path: Path, store: Store
) -> None:
    """A run recorded with sqlcommenter; the server's auto_explain messages as its log.

    The session-level auto_explain sends each plan to the client as a NOTICE
    (the server's own configuration is left alone); the messages are written
    as jsonlog and as stderr lines, the framing the server uses for them.
    """
    from opentelemetry.trace import SpanKind
    from sqlalchemy import create_engine, event, text

    from correlate.instrument import record

    messages: list[str] = []
    engine = create_engine(pg_dsn)

    @event.listens_for(engine, "connect")
    def _auto_explain(dbapi_connection: object, _record: object) -> None:
        dbapi_connection.add_notice_handler(  # type: ignore[attr-defined]
            lambda diagnostic: messages.append(diagnostic.message_primary)
        )
        with dbapi_connection.cursor() as cur:  # type: ignore[attr-defined]
            for statement in (
                "LOAD 'auto_explain'",
                "SET auto_explain.log_min_duration = 0",
                "SET auto_explain.log_format = 'json'",
                "SET auto_explain.log_level = 'notice'",
                "SET auto_explain.log_analyze = on",
                "SET client_min_messages = 'notice'",
            ):
                cur.execute(statement)
        dbapi_connection.commit()  # type: ignore[attr-defined]

    run_dir = tmp_path / "run"
    recording = record(engine, run_dir, "live", set_global=False, sqlcommenter=True)
    try:
        tracer = recording.tracer_provider.get_tracer("test")
        for name in ("pg_class", "pg_proc", "pg_type"):
            with (
                tracer.start_as_current_span("GET /relations/{name}", kind=SpanKind.SERVER),
                engine.connect() as conn,
            ):
                conn.execute(
                    text("SELECT relname, relkind FROM pg_class WHERE relname = :n"), {"n": name}
                ).all()
    finally:
        recording.close()
        engine.dispose()
    plans = [m for m in messages if m.startswith("duration: ") and "  plan:\n" in m]
    traced = [m for m in plans if "traceparent=" in m]
    assert len(traced) == 3, messages
    logs = run_dir / "logs"
    logs.mkdir()
    (logs / "postgresql.json").write_text(
        "".join(
            json.dumps({"timestamp": "2026-12-02 10:00:00.000 UTC", "error_severity": "NOTICE",
                        "message": m}) + "\n"
            for m in plans
        )
    )  # fmt: skip
    (logs / "postgresql.log").write_text(
        "".join(
            "2026-12-02 10:00:00.000 UTC [1] postgres@test NOTICE:  "
            + m.replace("\n", "\n\t")
            + "\n"
            for m in plans
        )
    )
    report = store.ingest([run_dir], run="live")
    assert [f.plans.traceparent for f in report.files if f.plans] == [3, 3]
    assert report.plans_without_span == 0
    linked = store.sql(
        """
        SELECT count(*) AS n, count(DISTINCT d.span_id) AS spans
        FROM plans p JOIN db_spans d
          ON d.trace_id = p.trace_id AND d.span_id = p.span_id AND d.fingerprint = p.fingerprint
        WHERE p.link = 'traceparent'
        """
    )
    assert linked.values.tolist() == [[6, 3]]
    coverage = store.plans_coverage("live")
    assert coverage.overall is not None and coverage.overall.share("traceparent") == 1.0


def test_span_and_plan_problems_are_counted_on_their_own_lines(
    store: Store, tmp_path: Path
) -> None:
    spans = tmp_path / "spans.jsonl"
    spans.write_text((PGLOG / "spans.jsonl").read_text() + "{oops\n")
    log = tmp_path / "postgresql.log"
    log.write_text("".join(_stderr_lines()[:200]))
    report = store.ingest([spans, log], run="r")
    assert report.summary().splitlines() == [
        "run 'r': 8 spans added from 1 file(s), 1 record(s) skipped",
        "run 'r': 4 plan(s) added from 1 file(s): 3 tied to their span by traceparent, "
        "1 by fingerprint, 1 skipped",
        "skipped:",
        f"  {spans}:9: not valid JSON (Expecting property name enclosed in double quotes at "
        "column 2)",
        f"  {log}:159: not a plan: invalid JSON (Expecting property name enclosed in double "
        "quotes: line 41 column 26 (char 1304))",
    ]


def test_nothing_to_read_names_the_plan_formats_too(store: Store, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here\n")
    with pytest.raises(InputError) as info:
        store.ingest([tmp_path], run="r")
    assert str(info.value).endswith(
        "plans: pg-explain, mysql-explain, pg-stderr, pg-csvlog, pg-jsonlog"
    )


def test_nan_in_a_logged_plan_is_a_counted_problem(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "postgresql.log"
    log.write_text(
        "2026-11-25 12:29:09.738 UTC [1] u@d LOG:  duration: 1.5 ms  plan:\n"
        '\t{"Plan": {"Node Type": "Result", "Plan Rows": NaN}}\n'
        "2026-11-25 12:29:09.739 UTC [1] u@d LOG:  duration: 1.5 ms  plan:\n"
        '\t{"Plan": {"Node Type": "Result", "Plan Rows": 1e999999}}\n'
    )
    report = store.ingest([log], run="r")
    assert [str(p) for p in report.problems] == [
        f"{log}:1: not a plan: NaN or Infinity in the JSON"
    ]
    # a number past float range is valid JSON: kept verbatim, infinite in the node
    assert report.plans_added == 1
    assert store.sql("SELECT estimated_rows FROM plan_nodes")["estimated_rows"][0] == float("inf")


def test_format_forces_a_log_format(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    # a log whose first lines are not PostgreSQL's (a container runtime's, say)
    log.write_text("starting container\n" * 60 + (PGLOG / "postgresql.log").read_text())
    assert detect_plan_input(log) is None
    assert store.ingest([log], run="r", format="pg-stderr").plans_added == 5


def test_psql_output_with_echo_set_and_timing_lines(store: Store, tmp_path: Path) -> None:
    printed = (PLANS / "pg-psql-analyze.txt").read_text()
    path = tmp_path / "q.txt"
    path.write_text(
        "SET\nEXPLAIN (ANALYZE, FORMAT JSON) SELECT 1;\n" + printed + "Time: 0.512 ms\n"
    )
    assert detect_plan_input(path) == "pg-explain"
    assert store.ingest([path], run="r").plans_added == 1
