"""The input-format registry: help and ``--format`` come from it, every format is sniffed
from a fixture, detection order is what it says, and the I/O layer has no cycle."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from correlate.cli import cli
from correlate.cli import ingest as ingest_command
from correlate.ingest.detect import NotTraceFile, detect
from correlate.ingest.registry import (
    INPUT_FORMATS,
    SNIFF_ORDER,
    format_named,
    format_names,
    sniff,
    sniff_order,
)
from correlate.inputs import FAMILIES, Head

DATA = Path(__file__).parent / "data"

#: One fixture in tests/data per registered format: detection must name that format.
FIXTURES: dict[str, Path] = {
    "otlp-json": DATA / "otlp" / "checkout.jsonl",
    "otlp-proto": DATA / "otlp" / "one_span.binpb",
    "jaeger": DATA / "jaeger" / "checkout.json",
    "zipkin": DATA / "zipkin" / "checkout.json",
    "tempo": DATA / "tempo" / "api-traces.json",
    "otlp-metrics": DATA / "metrics" / "hikaricp-new-semconv.jsonl",
    "otlp-metrics-proto": DATA / "metrics" / "hikaricp-new-semconv.binpb",
    "pg-explain": DATA / "plans" / "pg-psql-analyze.txt",
    "mysql-explain": DATA / "plans" / "mysql-v1-join.json",
    "pg-stderr": DATA / "pglog" / "postgresql.log",
    "pg-csvlog": DATA / "pglog" / "postgresql.csv",
    "pg-jsonlog": DATA / "pglog" / "postgresql.json",
    "k6-json": DATA / "load" / "k6.json",
    "k6-csv": DATA / "load" / "k6.csv",
    "k6-summary": DATA / "load" / "k6_summary_export.json",
    "locust-history": DATA / "load" / "locust_stats_history.csv",
    "locust-stats": DATA / "load" / "locust_stats.csv",
    "locust-failures": DATA / "load" / "locust_failures.csv",
    "locust-exceptions": DATA / "load" / "locust_exceptions.csv",
    "locust-json": DATA / "load" / "locust.json",
    "watch-activity": DATA / "watch" / "activity.jsonl",
}


def test_every_registered_format_has_a_fixture_here_and_no_fixture_is_stale() -> None:
    assert sorted(FIXTURES) == sorted(format_names())


def test_names_are_unique_and_families_known() -> None:
    names = format_names()
    assert len(names) == len(set(names))
    assert {f.family for f in INPUT_FORMATS} == set(FAMILIES) == set(SNIFF_ORDER)


@pytest.mark.parametrize("fmt", INPUT_FORMATS, ids=lambda f: f.name)
def test_each_format_has_a_help_line_and_sniffs_its_fixture(fmt: object) -> None:
    assert fmt is format_named(fmt.name)  # type: ignore[attr-defined]
    help_ = fmt.help  # type: ignore[attr-defined]
    assert help_.strip() and "\n" not in help_
    path = FIXTURES[fmt.name]  # type: ignore[attr-defined]
    assert detect(path) is fmt
    # and the format's own sniffer says yes, not only the first of the order
    assert fmt.sniff(Head.of(path))  # type: ignore[attr-defined]


def test_cli_format_choices_are_exactly_the_registry() -> None:
    option = next(p for p in ingest_command.params if p.name == "format_")
    assert list(option.type.choices) == format_names()  # type: ignore[attr-defined]


def test_ingest_help_lists_exactly_the_registered_formats_with_their_help() -> None:
    result = CliRunner().invoke(cli, ["ingest", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    sections = re.split(r"^Formats: ", result.output, flags=re.M)[1:]
    assert [s.split(":", 1)[0] for s in sections] == list(FAMILIES.values())
    listed = []
    for section in sections:
        body = section.split("\n\n", 1)[0].splitlines()[1:]
        listed.extend(tuple(re.split(r"\s{2,}", line.strip(), maxsplit=1)) for line in body)
    assert listed == [(f.name, f.help) for f in INPUT_FORMATS]
    assert "Compression (any format, detected from content):" in result.output


def test_unknown_format_names_every_choice() -> None:
    with pytest.raises(Exception, match="unknown format 'csv'; choose one of: otlp-json, "):
        format_named("csv")
    result = CliRunner().invoke(cli, ["ingest", "x", "--run", "r", "--format", "csv"])
    assert result.exit_code == 2
    assert "'csv' is not one of 'otlp-json', 'otlp-proto'" in result.output


def test_detection_order_is_plans_database_spans_metrics_load_in_registry_order() -> None:
    assert SNIFF_ORDER == ("plans", "database", "spans", "metrics", "load")
    assert [f.name for f in sniff_order()] == [
        "pg-explain",
        "mysql-explain",
        "pg-stderr",
        "pg-csvlog",
        "pg-jsonlog",
        "watch-activity",
        "otlp-json",
        "otlp-proto",
        "jaeger",
        "zipkin",
        "tempo",
        "otlp-metrics",
        "otlp-metrics-proto",
        "k6-json",
        "k6-csv",
        "k6-summary",
        "locust-history",
        "locust-stats",
        "locust-failures",
        "locust-exceptions",
        "locust-json",
    ]


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_each_fixture_is_claimed_by_its_format_alone(name: str) -> None:
    head = Head.of(FIXTURES[name])
    claims = [f.name for f in INPUT_FORMATS if f.sniff is not None and f.sniff(head)]
    assert claims == [name]


def test_where_two_sniffers_say_yes_the_order_decides() -> None:
    # One short line with a "data" key: Jaeger's empty search result, and a k6 point.
    head = Head(
        b'{"type":"Point","data":{"time":"2026-01-01T00:00:00Z","value":1},"metric":"vus"}\n'
    )
    claims = [f.name for f in INPUT_FORMATS if f.sniff is not None and f.sniff(head)]
    assert claims == ["jaeger", "k6-json"]
    found = sniff(head)
    assert found is not None and found.name == "jaeger"
    found = sniff(head, ("load",))
    assert found is not None and found.name == "k6-json"


def test_nothing_claims_plain_text_and_the_refusal_lists_every_family(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("just some notes\n")
    with pytest.raises(NotTraceFile) as refused:
        detect(path)
    message = str(refused.value)
    for name in format_names():
        assert name in message
    for title in FAMILIES.values():
        assert f"({title})" in message


@pytest.mark.parametrize(
    ("module", "must_not_load"),
    [
        ("correlate.fileio", ("correlate.ingest", "correlate.plans")),
        ("correlate.inputs", ("correlate.ingest", "correlate.plans")),
        ("correlate.plans.files", ("correlate.ingest",)),
        ("correlate.plans.pglog", ("correlate.ingest",)),
    ],
)
def test_io_and_plan_readers_import_without_ingest(module: str, must_not_load: tuple[str]) -> None:
    code = (
        f"import sys, {module}; "
        f"print(sorted(m for m in sys.modules if m.startswith({must_not_load!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_ingest_package_only_re_exports() -> None:
    source = (Path(__file__).parents[1] / "correlate" / "ingest" / "__init__.py").read_text()
    assert not re.search(r"^\s*(def|class) ", source, re.M)


def test_the_readme_names_every_registered_format_and_codec() -> None:
    from correlate.fileio import CODECS

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    missing = [name for name in format_names() if f"`{name}`" not in readme]
    assert missing == []
    section = readme.split("## What `correlate ingest` reads", 1)[1].split("\n## ", 1)[0]
    assert all(codec.name in section for codec in CODECS)
