"""JSON nested deeper than Python's parser recurses is a bad record, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from correlate.cli import cli
from correlate.ingest.registry import INPUT_FORMATS
from correlate.inputs import Head

DEEP = "[" * 100_000 + "]" * 100_000
#: the review's line: an OTLP span whose attribute value is a deeply nested array
OTLP = (
    '{"resourceSpans":[{"resource":{"attributes":[]},"scopeSpans":[{"spans":[{'
    '"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"x",'
    '"kind":2,"startTimeUnixNano":"1","endTimeUnixNano":"2","attributes":[{"key":"deep",'
    '"value":{"arrayValue":{"values":' + DEEP + "}}}]}]}]}]}\n"
)
LINES = {
    "otlp": OTLP,
    "object": '{"a":' + DEEP + "}\n",
    "jsonlog": '{"timestamp":"2026-01-01 00:00:00 UTC","error_severity":"LOG","a":' + DEEP + "}\n",
    "document": '{\n  "metrics": {},\n  "a": ' + DEEP + "\n}\n",
}


@pytest.mark.parametrize("name", sorted(LINES))
def test_every_sniffer_says_not_this_format(name: str) -> None:
    head = Head(LINES[name].encode())
    for fmt in INPUT_FORMATS:
        if fmt.sniff is not None:
            assert fmt.sniff(head) in (True, False), fmt.name


@pytest.mark.parametrize(
    "format_",
    [
        None,
        "otlp-json",
        "jaeger",
        "zipkin",
        "pg-explain",
        "mysql-explain",
        "pg-jsonlog",
        "k6-json",
        "k6-summary",
        "locust-json",
    ],
)
def test_ingest_reports_the_file_and_line(tmp_path: Path, format_: str | None) -> None:
    path = tmp_path / "deep.json"
    path.write_text(OTLP)
    args = ["ingest", str(path), "--run", "deep", "--db", str(tmp_path / "s.duckdb")]
    result = CliRunner().invoke(cli, args + (["--format", format_] if format_ else []))
    assert not isinstance(result.exception, RecursionError), result.output
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("format_", "reason"),
    [
        ("mysql-explain", "1: not a plan: the JSON is nested too deeply to read"),
        ("pg-explain", "1: not a plan: the JSON is nested too deeply to read"),
        ("locust-json", "3: not readable JSON: nested too deeply"),
        ("k6-summary", "3: not readable JSON: nested too deeply"),
    ],
)
def test_whole_documents_name_the_line(tmp_path: Path, format_: str, reason: str) -> None:
    path = tmp_path / "deep.json"
    path.write_text(LINES["document"])
    args = ["ingest", str(path), "--run", "deep", "--db", str(tmp_path / "s.duckdb")]
    result = CliRunner().invoke(cli, [*args, "--format", format_])
    # the file's one record: nothing could be read from it, an error at that line
    line, why = reason.split(": ", 1)
    assert result.exit_code == 1
    assert f"{path}:{line}: nothing could be read from this file: {why}" in result.output
