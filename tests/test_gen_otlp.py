"""Tests for benchmarks/gen_otlp.py, the synthetic OTLP/JSON span generator."""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gen_otlp.py"


def _load() -> ModuleType:
    # benchmarks/ is not a package; the module must sit in sys.modules for dataclasses
    # and for the worker processes to find its functions by name.
    if "gen_otlp" in sys.modules:
        return sys.modules["gen_otlp"]
    spec = importlib.util.spec_from_file_location("gen_otlp", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_otlp"] = module
    spec.loader.exec_module(module)
    return module


gen = _load()

HEX32 = re.compile(r"[0-9a-f]{32}")
HEX16 = re.compile(r"[0-9a-f]{16}")


@dataclass
class Parsed:
    lines: int = 0
    spans: list[dict[str, Any]] = field(default_factory=list)
    resources: list[dict[str, str]] = field(default_factory=list)
    scopes_per_line: list[list[str]] = field(default_factory=list)


def _attrs(kvs: list[dict[str, Any]]) -> dict[str, Any]:
    return {kv["key"]: next(iter(kv["value"].values())) for kv in kvs}


def _parse(path: Path) -> Parsed:
    out = Parsed()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="ascii") as f:
        for line in f:
            request = json.loads(line)
            out.lines += 1
            for rs in request["resourceSpans"]:
                resource = _attrs(rs["resource"]["attributes"])
                out.resources.append(resource)
                out.scopes_per_line.append([ss["scope"]["name"] for ss in rs["scopeSpans"]])
                for ss in rs["scopeSpans"]:
                    for span in ss["spans"]:
                        span["_service"] = resource["service.name"]
                        span["_scope"] = ss["scope"]
                        out.spans.append(span)
    return out


def _traces(spans: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    traces: dict[str, dict[str, dict[str, Any]]] = {}
    for span in spans:
        traces.setdefault(span["traceId"], {})[span["spanId"]] = span
    return traces


def _check_structure(spans: list[dict[str, Any]]) -> None:
    """Ids, parent links, one server root per trace, children inside their parents."""
    ids = [(s["traceId"], s["spanId"]) for s in spans]
    assert len(ids) == len(set(ids)), "span ids repeat within a trace"
    for trace in _traces(spans).values():
        roots = [s for s in trace.values() if "parentSpanId" not in s]
        assert len(roots) == 1 and roots[0]["kind"] == 2
        db = [s for s in trace.values() if s["kind"] == 3]
        assert len(db) <= gen.MAX_DB_SPANS
        for span in trace.values():
            assert HEX32.fullmatch(span["traceId"]) and HEX16.fullmatch(span["spanId"])
            assert span["flags"] == 256
            start, end = int(span["startTimeUnixNano"]), int(span["endTimeUnixNano"])
            assert start < end
            assert isinstance(span["startTimeUnixNano"], str)
            if "parentSpanId" in span:
                assert HEX16.fullmatch(span["parentSpanId"])
                parent = trace[span["parentSpanId"]]  # KeyError: dangling parent
                assert int(parent["startTimeUnixNano"]) <= start
                assert end <= int(parent["endTimeUnixNano"])
            for event in span.get("events", []):
                assert start <= int(event["timeUnixNano"]) <= end


def _normalise(sql: str) -> str:
    """A rough fingerprint: literals, bind-parameter lists and VALUES rows collapsed."""
    sql = re.sub(r"'[^']*'", "?", sql)
    sql = re.sub(r"%\(\w+\)s", "?", sql)
    sql = re.sub(r"\d+", "N", sql)
    sql = re.sub(r"(\([^()]*\))(, \([^()]*\))+", r"\1", sql)
    return re.sub(r"([?N](::\w+)?)(, [?N](::\w+)?)+", r"\1", sql)


def _statement(span: dict[str, Any]) -> str | None:
    attrs = _attrs(span.get("attributes", []))
    return attrs.get("db.statement") or attrs.get("db.query.text")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, int], Path]]:
    path = tmp_path_factory.mktemp("gen") / "small.jsonl"
    yield gen.generate(path, 2_000, seed=1), path


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, int], Parsed]:
    path = tmp_path_factory.mktemp("gen") / "large.jsonl"
    counts = gen.generate(path, 30_000, seed=3, jobs=1)
    return counts, _parse(path)


def test_counts_match_the_file(small: tuple[dict[str, int], Path]) -> None:
    counts, path = small
    parsed = _parse(path)
    assert counts["spans"] == len(parsed.spans) == 2_000
    assert counts["lines"] == parsed.lines
    assert counts["bytes"] == counts["json_bytes"] == path.stat().st_size
    assert counts["requests"] == len(_traces(parsed.spans))


def test_lines_are_compact_otlp_requests(small: tuple[dict[str, int], Path]) -> None:
    _, path = small
    for line in path.read_text("ascii").splitlines():
        assert line.startswith('{"resourceSpans":[')
        assert line == json.dumps(json.loads(line), separators=(",", ":"))


def test_trace_structure(small: tuple[dict[str, int], Path]) -> None:
    _check_structure(_parse(small[1]).spans)


def test_same_seed_same_bytes(tmp_path: Path, small: tuple[dict[str, int], Path]) -> None:
    again = tmp_path / "again.jsonl"
    gen.generate(again, 2_000, seed=1)
    assert again.read_bytes() == small[1].read_bytes()
    other = tmp_path / "other.jsonl"
    gen.generate(other, 2_000, seed=2)
    assert other.read_bytes() != small[1].read_bytes()


def test_parallel_segments_give_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gen, "_SEGMENT_SPANS", 700)
    serial, parallel = tmp_path / "serial.jsonl", tmp_path / "parallel.jsonl"
    counts = gen.generate(serial, 2_500, jobs=1)
    assert gen.generate(parallel, 2_500, jobs=2) == counts
    assert serial.read_bytes() == parallel.read_bytes()
    assert not list(tmp_path.glob("*.part*"))
    spans = _parse(parallel).spans
    assert len(spans) == 2_500
    _check_structure(spans)


def test_gzip_holds_the_same_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gen, "_SEGMENT_SPANS", 700)  # several gzip members, one stream
    plain, packed = tmp_path / "s.jsonl", tmp_path / "s.jsonl.gz"
    counts = gen.generate(packed, 2_000, jobs=1)
    gen.generate(plain, 2_000, jobs=1)
    assert gzip.decompress(packed.read_bytes()) == plain.read_bytes()
    assert counts["bytes"] == packed.stat().st_size < counts["json_bytes"]


@settings(max_examples=25, deadline=None)
@given(spans=st.integers(1, 400), batch=st.integers(1, 600), seed=st.integers(0, 2**32))
def test_any_span_count_is_hit_exactly(spans: int, batch: int, seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.jsonl"
        counts = gen.generate(path, spans, seed=seed, batch=batch)
        parsed = _parse(path)
        sizes = [_line_size(line) for line in path.read_text("ascii").splitlines()]
    assert counts["spans"] == len(parsed.spans) == sum(sizes) == spans
    assert max(sizes) <= batch
    _check_structure(parsed.spans)


def _line_size(line: str) -> int:
    (resource_spans,) = json.loads(line)["resourceSpans"]  # one process per batch
    return sum(len(ss["spans"]) for ss in resource_spans["scopeSpans"])


def test_lines_are_batches_of_one_process(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    gen.generate(path, 6_000, batch=50)
    sizes = [_line_size(line) for line in path.read_text("ascii").splitlines()]
    assert max(sizes) == 50
    assert Counter(sizes).most_common(1)[0][0] == 50


def test_about_two_hundred_statement_shapes(large: tuple[dict[str, int], Parsed]) -> None:
    texts = {t for t in map(_statement, large[1].spans) if t}
    shapes = {_normalise(t) for t in texts}
    assert 180 <= len(shapes) <= len(gen.SHAPES) + 5
    assert len(texts) > len(shapes) + 500, "literals and list lengths should vary"
    assert 180 <= len(gen.SHAPES) <= 230


def test_db_spans_look_like_the_sqlalchemy_instrumentation(
    large: tuple[dict[str, int], Parsed],
) -> None:
    db = [s for s in large[1].spans if s["kind"] == 3]
    assert all(
        s["_scope"] == {"name": "opentelemetry.instrumentation.sqlalchemy", "version": "0.66b1"}
        for s in db
    )
    connects = [s for s in db if s["name"] == "connect"]
    queries = [_attrs(s["attributes"]) | {"name": s["name"]} for s in db if s["name"] != "connect"]
    assert connects and queries
    for attrs in queries:
        text = attrs.get("db.statement") or attrs["db.query.text"]
        operation = attrs.get("db.operation") or attrs["db.operation.name"]
        assert attrs["name"] == operation == f"{text.split()[0]} shop"
    old = [a for a in queries if "db.statement" in a]
    new = [a for a in queries if "db.query.text" in a]
    assert old and new
    assert all(a["db.system"] == "postgresql" and "db.user" in a for a in old)
    assert any(a.get("net.peer.port") == "5432" for a in old)
    assert all(a["db.system.name"] == "postgresql" and a["db.namespace"] == "shop" for a in new)
    assert all("db.statement" not in a and "server.address" in a for a in new)
    assert any("%(" in a["db.statement"] for a in old)


def test_traces_have_one_to_forty_db_spans(large: tuple[dict[str, int], Parsed]) -> None:
    for trace in _traces(large[1].spans).values():
        assert 1 <= sum(s["kind"] == 3 for s in trace.values()) <= 40
    assert any(
        s["kind"] == 1 and s["_scope"]["name"].endswith(("services", "repository", "checkout"))
        for s in large[1].spans
    )


def test_server_spans_and_errors(large: tuple[dict[str, int], Parsed]) -> None:
    counts, parsed = large
    servers = [s for s in parsed.spans if s["kind"] == 2]
    assert len(servers) == counts["requests"]
    for span in servers:
        attrs = _attrs(span["attributes"])
        for key in (
            "http.request.method",
            "http.route",
            "url.path",
            "url.scheme",
            "server.address",
            "server.port",
            "user_agent.original",
        ):
            assert key in attrs
        assert span["name"] == f"{attrs['http.request.method']} {attrs['http.route']}"
        code = attrs["http.response.status_code"]
        assert isinstance(code, str) and code.isdigit()
        assert (span["status"].get("code") == 2) == (int(code) >= 500)
    failed = [s for s in servers if s["status"]]
    assert len(failed) == counts["errors"]
    assert 0.003 < len(failed) / len(servers) < 0.03
    for span in failed:
        (event,) = span["events"]
        attrs = _attrs(event["attributes"])
        assert event["name"] == "exception"
        assert attrs["exception.type"].startswith("sqlalchemy.exc.")
        assert attrs["exception.stacktrace"].startswith("Traceback (most recent call last):")
        assert attrs["exception.message"]


def test_resources_and_scopes(large: tuple[dict[str, int], Parsed]) -> None:
    parsed = large[1]
    services = {r["service.name"] for r in parsed.resources}
    assert services == {"shop-api", "catalog-api", "checkout-api"}
    for resource in parsed.resources:
        assert resource["telemetry.sdk.language"] == "python"
        assert {
            "service.version",
            "service.instance.id",
            "telemetry.sdk.name",
            "telemetry.sdk.version",
        } <= resource.keys()
    assert sum(len(set(names)) >= 2 for names in parsed.scopes_per_line) > 0.9 * parsed.lines


def test_start_times_advance(large: tuple[dict[str, int], Parsed]) -> None:
    roots = sorted(int(s["startTimeUnixNano"]) for s in large[1].spans if "parentSpanId" not in s)
    run_s = (roots[-1] - roots[0]) / 1e9
    assert 0.9 * large[0]["run_seconds"] <= run_s <= large[0]["run_seconds"]
    assert len(set(roots)) == len(roots)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cli.jsonl"
    assert gen.main(["--spans", "300", "--out", str(path), "--seed", "5", "--batch", "64"]) == 0
    assert "300 spans" in capsys.readouterr().out
    assert len(_parse(path).spans) == 300


def test_rejects_nonsense(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="spans"):
        gen.generate(tmp_path / "x.jsonl", 0)
