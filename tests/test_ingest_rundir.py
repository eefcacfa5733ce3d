"""Run-directory companion files: pool telemetry, client requests and run.json in the store."""

from __future__ import annotations

import codecs
import gzip
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import correlate
from correlate.errors import CorrelateError, InputError
from correlate.ingest.rundir import (
    FIELDS,
    KINDS,
    column_type,
    companion_files,
    is_run_directory,
    load_companion,
)
from correlate.store import Store

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_traces"
BLACKFRIDAY = SAMPLES / "checkout-blackfriday"
FIXED = SAMPLES / "checkout-fixed"
DATA = Path(__file__).parent / "data" / "rundir"
TINY = DATA / "tiny"


def add_file(store: Store, run_id: int, path: Path, kind: str) -> int:
    """A ``files`` row for ``path``, as the ingest orchestrator would make one."""
    row = store.con.execute(
        "INSERT INTO files (run_id, path, size, sha256, format, records_read, records_added, "
        "duplicates, skipped) VALUES (?, ?, ?, ?, ?, 0, 0, 0, 0) RETURNING file_id",
        [run_id, str(path), path.stat().st_size, f"{kind}:{path}", kind],
    ).fetchone()
    assert row is not None
    return int(row[0])


def load_run_dir(store: Store, run_dir: Path, run: str) -> dict[str, tuple[int, list]]:
    """Load every companion file of ``run_dir`` into run ``run``, one transaction a file."""
    run_id = store.ensure_run(run, source=str(run_dir), labels=None)
    results = {}
    for kind, paths in companion_files(run_dir).items():
        for path in paths:
            store.con.execute("BEGIN")
            file_id = add_file(store, run_id, path, kind)
            results[kind] = load_companion(store, run_id, file_id, kind, path)
            store.con.execute("COMMIT")
    return results


def scalar(store: Store, sql: str, params: list | None = None) -> object:
    row = store.con.execute(sql, params or []).fetchone()
    assert row is not None
    return row[0]


def gz_lines(path: Path) -> int:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


# -- the tables ------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(FIELDS))
def test_table_columns_are_the_documented_fields(store: Store, kind: str) -> None:
    rows = store.con.execute(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_name = ? ORDER BY ordinal_position",
        [kind],
    ).fetchall()
    expected = [("run_id", "INTEGER NOT NULL"), ("file_id", "INTEGER NOT NULL")] + [
        (f.name, column_type(f)) for f in FIELDS[kind]
    ]
    got = [
        (name, type_ + (" NOT NULL" if nullable == "NO" else "")) for name, type_, nullable in rows
    ]
    assert got == expected


def test_run_info_table(store: Store) -> None:
    rows = store.con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'run_info' ORDER BY ordinal_position"
    ).fetchall()
    assert rows == [("run_id", "INTEGER"), ("file_id", "INTEGER"), ("info", "JSON")]


# -- finding the files -------------------------------------------------------------


def test_is_run_directory(tmp_path: Path) -> None:
    assert is_run_directory(BLACKFRIDAY)
    assert is_run_directory(FIXED)
    assert is_run_directory(TINY)
    assert not is_run_directory(SAMPLES)
    assert not is_run_directory(BLACKFRIDAY / "run.json")
    assert not is_run_directory(DATA / "broken-run")
    assert not is_run_directory(tmp_path / "absent")
    (tmp_path / "run.json").write_text('{"format": "something-else"}')
    assert not is_run_directory(tmp_path)
    (tmp_path / "run.json").write_text('["correlate-run"]')
    assert not is_run_directory(tmp_path)


def test_companion_files_of_a_sample() -> None:
    found = companion_files(BLACKFRIDAY)
    assert list(found) == list(KINDS)
    assert {k: [p.relative_to(BLACKFRIDAY).as_posix() for p in v] for k, v in found.items()} == {
        "run_info": ["run.json"],
        "pool_checkouts": ["pool/checkouts.jsonl.gz"],
        "pool_samples": ["pool/samples.jsonl.gz"],
        "pool_leaks": ["pool/leaks.jsonl.gz"],
        "client_requests": ["load/requests.jsonl.gz"],
    }


def test_companion_files_per_process_and_missing(tmp_path: Path) -> None:
    (tmp_path / "pool").mkdir()
    for name in ("checkouts-12.jsonl", "checkouts-9.jsonl.gz", "checkouts.jsonl", "other.jsonl"):
        (tmp_path / "pool" / name).write_bytes(b"")
    found = companion_files(tmp_path)
    assert [p.name for p in found["pool_checkouts"]] == [
        "checkouts-12.jsonl",
        "checkouts-9.jsonl.gz",
        "checkouts.jsonl",
    ]
    assert found["run_info"] == found["pool_samples"] == found["client_requests"] == []


def test_same_file_plain_and_gzipped_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "pool").mkdir()
    (tmp_path / "pool" / "leaks.jsonl").write_bytes(b"")
    (tmp_path / "pool" / "leaks.jsonl.gz").write_bytes(gzip.compress(b""))
    with pytest.raises(InputError, match=r"both leaks\.jsonl and leaks\.jsonl\.gz"):
        companion_files(tmp_path)


# -- the committed samples: the data answers the questions asked of it ----------------


@pytest.fixture(scope="module")
def samples() -> Iterator[tuple[Store, dict[str, dict[str, tuple[int, list]]]]]:
    with correlate.open_store(":memory:") as store:
        loaded = {}
        for run, run_dir in (("bf", BLACKFRIDAY), ("fixed", FIXED)):
            loaded[run] = load_run_dir(store, run_dir, run)
            store.ingest([run_dir / "spans"], run=run)
        yield store, loaded


@pytest.mark.parametrize("run, run_dir", [("bf", BLACKFRIDAY), ("fixed", FIXED)])
def test_samples_load_every_line_without_problems(samples, run: str, run_dir: Path) -> None:
    store, loaded = samples
    for kind, paths in companion_files(run_dir).items():
        (path,) = paths
        expected = 1 if kind == "run_info" else gz_lines(path)
        assert loaded[run][kind] == (expected, []), kind
        count = scalar(
            store,
            f"SELECT count(*) FROM {kind} JOIN runs USING (run_id) WHERE runs.name = ?",
            [run],
        )
        assert count == expected


def test_leaks_are_all_the_checkout_route_at_one_app_line(samples) -> None:
    store, _ = samples
    rows = store.sql(
        "SELECT route, location, count(*) AS n FROM pool_leaks GROUP BY ALL ORDER BY n DESC"
    )
    assert len(rows) == 1
    assert rows["route"][0] == "/checkout"
    assert "app.py" in rows["location"][0]
    assert rows["n"][0] == 10
    # Each leak has its checkout line, marked, and never returned before the end.
    outcomes = store.sql(
        """
        SELECT c.outcome, c.leak_suspect FROM pool_leaks l JOIN pool_checkouts c
          ON c.run_id = l.run_id AND c.connect_span_id = l.connect_span_id
        """
    )
    assert len(outcomes) == 10
    assert set(outcomes["outcome"]) == {"open_at_shutdown"}
    assert outcomes["leak_suspect"].all()


def test_checked_out_connections_climb_in_blackfriday(samples) -> None:
    store, _ = samples
    phases = store.con.execute(
        """
        WITH s AS (
            SELECT runs.name AS run, checked_out,
                   (time_unix_nano - min(time_unix_nano) OVER w)
                       / (max(time_unix_nano) OVER w - min(time_unix_nano) OVER w) AS share
            FROM pool_samples JOIN runs USING (run_id)
            WINDOW w AS (PARTITION BY run_id)
        )
        SELECT run, max(checked_out) FILTER (WHERE share < 0.2),
               min(checked_out) FILTER (WHERE share > 0.75)
        FROM s GROUP BY run ORDER BY run
        """
    ).fetchall()
    # Black Friday's floor rises: late in the run even the quietest sample has more
    # connections out than the busiest early one. Not so once fixed.
    (bf_early_max, bf_late_min), (fixed_early_max, fixed_late_min) = (p[1:] for p in phases)
    assert bf_late_min > bf_early_max
    assert fixed_late_min <= fixed_early_max
    # A leak, not saturation: after the load has gone, the connections are still out.
    last = store.con.execute(
        """
        SELECT runs.name, arg_max(checked_out, time_unix_nano), arg_max(leak_suspects_open, time_unix_nano)
        FROM pool_samples JOIN runs USING (run_id) GROUP BY ALL ORDER BY 1
        """
    ).fetchall()
    assert last == [("bf", 10, 10), ("fixed", 0, 0)]


def test_timeouts_in_blackfriday_only(samples) -> None:
    store, _ = samples
    timeouts = dict(
        store.con.execute(
            """
            SELECT runs.name, count(*) FILTER (WHERE outcome = 'timeout')
            FROM pool_checkouts JOIN runs USING (run_id) GROUP BY ALL
            """
        ).fetchall()
    )
    assert timeouts["bf"] > 0
    assert timeouts["fixed"] == 0
    errors = store.sql(
        "SELECT DISTINCT acquired_unix_nano, error FROM pool_checkouts WHERE outcome = 'timeout'"
    )
    assert errors["acquired_unix_nano"].isna().all()
    assert errors["error"].str.contains("QueuePool limit").all()


def test_run_info_totals_agree_with_the_pool_tables(samples) -> None:
    store, _ = samples
    rows = store.con.execute(
        """
        SELECT i.info ->> '$.format',
               CAST(i.info -> '$.pool_totals.timeouts' AS BIGINT),
               (SELECT count(*) FROM pool_checkouts c
                WHERE c.run_id = i.run_id AND c.outcome = 'timeout'),
               CAST(i.info -> '$.pool_totals.leak_suspects' AS BIGINT),
               (SELECT count(*) FROM pool_leaks l WHERE l.run_id = i.run_id)
        FROM run_info i ORDER BY i.run_id
        """
    ).fetchall()
    assert len(rows) == 2
    for fmt, timeouts, timeout_rows, leaks, leak_rows in rows:
        assert fmt == "correlate-run"
        assert (timeouts, leaks) == (timeout_rows, leak_rows)


def test_every_client_request_joins_its_server_span(samples) -> None:
    store, _ = samples
    rows = store.sql(
        """
        SELECT r.name AS run, count(*) AS requests, count(s.span_id) AS joined,
               count(*) FILTER (WHERE s.http_route = c.name) AS same_route,
               count(*) FILTER (WHERE s.http_status_code = c.status_code) AS same_status,
               min(c.duration_ns - s.duration_ns) AS min_outside_server_ns
        FROM client_requests c
        JOIN runs r USING (run_id)
        LEFT JOIN spans s ON s.run_id = c.run_id AND s.trace_id = c.trace_id
             AND s.parent_id = c.span_id AND s.kind = 'SERVER'
        GROUP BY ALL ORDER BY run
        """
    )
    assert list(rows["run"]) == ["bf", "fixed"]
    for _, row in rows.iterrows():
        assert row["requests"] > 1000
        assert row["joined"] == row["same_route"] == row["same_status"] == row["requests"]
        # Same host, same clock: the client's view contains the server's.
        assert row["min_outside_server_ns"] >= 0


def test_pool_wait_per_route_per_window(samples) -> None:
    store, _ = samples
    waits = store.sql(
        """
        SELECT route, (start_unix_nano - min(start_unix_nano) OVER ()) // 10_000_000_000 AS w,
               wait_ns
        FROM pool_checkouts JOIN runs USING (run_id) WHERE runs.name = 'bf'
        """
    )
    per = waits.groupby(["route", "w"])["wait_ns"].sum()
    # Once the leaked connections fill the pool every database route waits, not just /checkout.
    for route in ("/checkout", "/products/<int:product_id>", "/orders/recent"):
        assert per[route].max() > 10 * per[route].iloc[0] and per[route].max() > 5e9


# -- hand-written fixtures ---------------------------------------------------------


def test_tiny_run_directory(store: Store) -> None:
    results = load_run_dir(store, TINY, "tiny")
    assert results == {
        "run_info": (1, []),
        "pool_checkouts": (3, []),
        "pool_samples": (2, []),
        "pool_leaks": (0, []),
        "client_requests": (2, []),
    }
    timeout = store.sql("SELECT * FROM pool_checkouts WHERE outcome = 'timeout'").iloc[0]
    assert timeout["wait_ns"] == 2_500_000_000
    assert timeout["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    null_pool = store.sql("SELECT * FROM pool_samples WHERE pool_class = 'NullPool'").iloc[0]
    assert null_pool[["size", "capacity", "checked_in"]].isna().all()
    assert scalar(store, "SELECT info ->> '$.service' FROM run_info") == "tiny"


def test_a_path_read_json_would_glob_gives_the_same_rows(store: Store, tmp_path: Path) -> None:
    # "[" sends the file down the line-by-line path: both paths must agree.
    odd = tmp_path / "run[1]" / "checkouts.jsonl"
    odd.parent.mkdir()
    shutil.copy(TINY / "pool" / "checkouts.jsonl", odd)
    assert load_companion(store, 1, 1, "pool_checkouts", TINY / "pool" / "checkouts.jsonl") == (
        3,
        [],
    )
    assert load_companion(store, 1, 2, "pool_checkouts", odd) == (3, [])
    differ = scalar(
        store,
        """
        SELECT count(*) FROM (
            (SELECT * EXCLUDE (file_id) FROM pool_checkouts WHERE file_id = 1
             EXCEPT ALL SELECT * EXCLUDE (file_id) FROM pool_checkouts WHERE file_id = 2)
            UNION ALL
            (SELECT * EXCLUDE (file_id) FROM pool_checkouts WHERE file_id = 2
             EXCEPT ALL SELECT * EXCLUDE (file_id) FROM pool_checkouts WHERE file_id = 1))
        """,
    )
    assert differ == 0


def test_malformed_lines_are_reported_and_good_lines_kept(store: Store) -> None:
    store.con.execute("BEGIN")
    added, problems = load_companion(
        store, 1, 1, "pool_checkouts", DATA / "malformed" / "checkouts.jsonl"
    )
    # The caller's transaction survived the fast path's failure.
    store.con.execute("COMMIT")
    assert added == 3
    assert problems == [
        (2, "not valid JSON (Expecting value at column 17)"),
        (4, "not a JSON object but a JSON array; each line must be one checkout record"),
        (6, 'trace_id is not 32 lowercase hex digits: "0AF7651916CD43DD8448EB211C80319C"'),
        (7, "start_unix_nano is not an integer: 4.5"),
        (8, "pool is missing (null)"),
        (9, 'wait_ns is not an integer: "60"'),
        (10, "a JSON object with a key given twice"),
        (
            11,
            'span_id is not 16 lowercase hex digits: "abc"; leak_suspect is not true or false: "no"',
        ),
        (12, "wait_ns is out of range for BIGINT: 99999999999999999999"),
        (13, "not a JSON object but a JSON null; each line must be one checkout record"),
    ]
    rows = store.con.execute("SELECT start_unix_nano, wait_ns FROM pool_checkouts").fetchall()
    assert rows == [(1, 10), (2, 20), (10, 100)]


def test_gzip_gives_the_same_rows(store: Store, tmp_path: Path) -> None:
    plain = DATA / "malformed" / "checkouts.jsonl"
    packed = tmp_path / "checkouts.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert load_companion(store, 1, 1, "pool_checkouts", packed) == load_companion(
        store, 1, 2, "pool_checkouts", plain
    )
    clean = tmp_path / "samples.jsonl.gz"
    clean.write_bytes(gzip.compress((TINY / "pool" / "samples.jsonl").read_bytes()))
    assert load_companion(store, 1, 3, "pool_samples", clean) == (2, [])


@pytest.mark.parametrize(
    "content",
    [b"", gzip.compress(b"", mtime=0), b"\n\n  \n", gzip.compress(b"\n", mtime=0)],
    ids=["empty", "empty-gz", "blank-lines", "newline-gz"],
)
def test_empty_files_add_nothing(store: Store, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "leaks.jsonl"
    path.write_bytes(content)
    assert load_companion(store, 1, 1, "pool_leaks", path) == (0, [])
    assert scalar(store, "SELECT count(*) FROM pool_leaks") == 0


def test_cut_short_and_not_utf8_lines(store: Store, tmp_path: Path) -> None:
    good = (TINY / "load" / "requests.jsonl").read_bytes().splitlines()
    path = tmp_path / "requests.jsonl"
    path.write_bytes(good[0] + b"\n" + b'{"trace_id": "\xff"}\n' + good[1][:40])
    added, problems = load_companion(store, 1, 1, "client_requests", path)
    assert added == 1
    assert problems == [
        (2, "not UTF-8 text (byte 0xff at column 15)"),
        (3, "last line is cut short (no final newline; was the file still being written?)"),
    ]


def test_broken_run_json_is_a_problem_with_its_line(store: Store, tmp_path: Path) -> None:
    assert load_companion(store, 1, 1, "run_info", DATA / "broken-run" / "run.json") == (
        0,
        [
            (
                3,
                "run.json is not valid JSON (Expecting property name enclosed in double quotes "
                "at line 3 column 18)",
            )
        ],
    )
    listed = tmp_path / "run.json"
    listed.write_text("[1, 2]\n")
    assert load_companion(store, 1, 2, "run_info", listed) == (
        0,
        [(1, "run.json is a JSON array, not an object")],
    )
    assert scalar(store, "SELECT count(*) FROM run_info") == 0


def test_unknown_kind(store: Store) -> None:
    with pytest.raises(InputError, match="unknown companion kind 'pool_stats'"):
        load_companion(store, 1, 1, "pool_stats", TINY / "pool" / "samples.jsonl")


def test_damaged_gzip_keeps_its_complete_lines_and_names_the_cut(
    store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "samples.jsonl.gz"
    path.write_bytes(gzip.compress((TINY / "pool" / "samples.jsonl").read_bytes() * 50)[:-40])
    added, problems = load_companion(store, 1, 1, "pool_samples", path)
    assert added > 0
    assert "cut short" in problems[-1][1]


# -- hostile input ---------------------------------------------------------------------

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_GOOD_SAMPLE = json.loads((TINY / "pool" / "samples.jsonl").read_text().splitlines()[0])

hostile_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\n"),
    max_size=30,
) | st.sampled_from(["'; DROP TABLE pool_samples; --", "\x00", "\u2028", "\r", "[", "null"])
hostile_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=6,
)
# A good record with one field replaced, dropped, or added; or anything at all.
damaged_record = st.builds(
    lambda name, value, drop: json.dumps(
        {k: v for k, v in {**_GOOD_SAMPLE, name: value}.items() if k != drop}
    ),
    st.sampled_from([*_GOOD_SAMPLE, "extra"]),
    hostile_json,
    st.sampled_from([None, *_GOOD_SAMPLE]),
)
hostile_line = (
    st.just(json.dumps(_GOOD_SAMPLE)) | damaged_record | hostile_json.map(json.dumps) | hostile_text
).map(lambda text: text.encode("utf-8")) | st.binary(max_size=20).map(
    lambda raw: raw.replace(b"\n", b"")
)


def _counts_as_a_record(line: bytes) -> bool:
    """As the line reader sees it: text that is not all whitespace, or not text at all."""
    try:
        return bool(line.decode("utf-8").strip())
    except UnicodeDecodeError:
        return True


@PROPS
@given(lines=st.lists(hostile_line, max_size=12), compress=st.booleans(), newline=st.booleans())
def test_hostile_lines_are_rows_or_problems(
    lines: list[bytes], compress: bool, newline: bool
) -> None:
    data = b"\n".join(lines) + (b"\n" if newline else b"")
    numbered = list(enumerate(data.split(b"\n"), start=1))
    # A byte-order mark opening the file marks its encoding: it is no record of its own.
    numbered[:1] = [(1, line.removeprefix(codecs.BOM_UTF8)) for _, line in numbered[:1]]
    records = {i for i, line in numbered if _counts_as_a_record(line)}
    intact = {i for i, line in numbered if line == json.dumps(_GOOD_SAMPLE).encode()}
    with tempfile.TemporaryDirectory() as tmp, correlate.open_store(":memory:") as store:
        path = Path(tmp) / ("samples.jsonl.gz" if compress else "samples.jsonl")
        path.write_bytes(gzip.compress(data) if compress else data)
        store.con.execute("BEGIN")
        try:
            added, problems = load_companion(store, 1, 1, "pool_samples", path)
        except CorrelateError:
            store.con.execute("ROLLBACK")
            return
        # Whatever the lines held, the caller's transaction is still good.
        store.con.execute("COMMIT")
        lines_with_problems = [line for line, _ in problems]
        assert added + len(problems) == len(records)
        assert len(set(lines_with_problems)) == len(lines_with_problems)
        assert set(lines_with_problems) <= records
        assert not intact & set(lines_with_problems)
        assert scalar(store, "SELECT count(*) FROM pool_samples") == added
        assert all(reason for _, reason in problems)
