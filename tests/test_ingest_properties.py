"""Property tests for OTLP ingest: hostile input, nothing lost, exact round trips."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import correlate
from correlate.errors import CorrelateError

from . import strategies

HEX = "0123456789abcdef"
PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

hostile_text = strategies.hostile_text(40)
any_json = strategies.any_json(8)

any_value = st.one_of(
    st.builds(lambda v: {"stringValue": v}, hostile_text),
    st.builds(lambda v: {"intValue": str(v)}, st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    st.builds(lambda v: {"doubleValue": v}, st.floats(allow_nan=False, allow_infinity=False)),
    st.builds(lambda v: {"boolValue": v}, st.booleans()),
    st.builds(
        lambda v: {"arrayValue": {"values": [{"stringValue": x} for x in v]}},
        st.lists(hostile_text, max_size=3),
    ),
    any_json,  # hostile: not an AnyValue at all
)


def hex_id(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=HEX, min_size=n, max_size=n).filter(lambda s: set(s) != {"0"})


good_span = st.fixed_dictionaries(
    {
        "traceId": hex_id(32),
        "spanId": hex_id(16),
        "name": hostile_text,
        "kind": st.integers(min_value=0, max_value=5),
        "startTimeUnixNano": st.integers(min_value=0, max_value=2**62),
        "duration": st.integers(min_value=0, max_value=10**12),
        "attributes": st.dictionaries(
            hostile_text.filter(bool),
            st.one_of(hostile_text, st.integers(-(2**62), 2**62), st.booleans()),
            max_size=4,
        ),
    }
)

# A span whose every field may be missing, mistyped or hostile.
wild_span = st.dictionaries(
    st.sampled_from(
        ["traceId", "spanId", "parentSpanId", "name", "kind", "startTimeUnixNano", "endTimeUnixNano",
         "attributes", "events", "status", "links"]
    ),
    st.one_of(
        any_json,
        hex_id(32),
        hex_id(16),
        st.lists(st.fixed_dictionaries({"key": hostile_text, "value": any_value}), max_size=3),
    ),
)  # fmt: skip


def _otlp_line(spans: list[dict]) -> str:
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})


def _ingest(lines: list[str]) -> tuple[correlate.Store, object]:
    """Ingest into a fresh store: each example must see only its own spans."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spans.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        store = correlate.open_store(":memory:")
        try:
            report = store.ingest([path], run="r", format="otlp-json")
        except BaseException:
            store.close()
            raise
    return store, report


@PROPS
@given(st.lists(st.lists(wild_span, max_size=4), min_size=1, max_size=4))
def test_wild_spans_are_added_or_counted_never_lost(batches: list[list[dict]]) -> None:
    lines = [_otlp_line(spans) for spans in batches]
    try:
        store, report = _ingest(lines)
    except CorrelateError:
        return  # a clean refusal is fine; a crash of any other kind is not
    with store:
        files = report.files  # type: ignore[attr-defined]
        total = sum(len(spans) for spans in batches)
        spans_skipped = sum(f.spans_skipped for f in files)
        lines_skipped = report.skipped - spans_skipped  # type: ignore[attr-defined]
        assert report.spans_read == total or lines_skipped > 0  # type: ignore[attr-defined]
        assert report.spans_added + spans_skipped + report.duplicates == report.spans_read  # type: ignore[attr-defined]
        assert store.sql("SELECT count(*) AS n FROM spans")["n"][0] == report.spans_added  # type: ignore[attr-defined]
        # every skipped record and every part read leniently is a problems row
        assert store.sql("SELECT count(*) AS n FROM problems")["n"][0] == (
            report.skipped + report.lenient  # type: ignore[attr-defined]
        )


@PROPS
@given(st.lists(st.one_of(hostile_text, any_json.map(json.dumps)), min_size=1, max_size=6))
def test_arbitrary_lines_never_crash(lines: list[str]) -> None:
    lines = [line.replace("\n", " ").replace("\r", " ") for line in lines]
    try:
        store, report = _ingest(lines)
    except CorrelateError:
        return
    with store:
        assert report.skipped >= 0  # type: ignore[attr-defined]


@PROPS
@given(st.lists(good_span, min_size=1, max_size=8, unique_by=lambda s: s["spanId"]))
def test_good_spans_round_trip_unchanged(spans: list[dict]) -> None:
    encoded = []
    for s in spans:
        encoded.append(
            {
                "traceId": s["traceId"].upper(),
                "spanId": s["spanId"],
                "name": s["name"],
                "kind": s["kind"],
                "startTimeUnixNano": str(s["startTimeUnixNano"]),
                "endTimeUnixNano": str(s["startTimeUnixNano"] + s["duration"]),
                "attributes": [
                    {"key": k, "value": {"stringValue": v} if isinstance(v, str)
                     else {"boolValue": v} if isinstance(v, bool) else {"intValue": str(v)}}
                    for k, v in s["attributes"].items()
                ],
            }
        )  # fmt: skip
    store, report = _ingest([_otlp_line(encoded)])
    with store:
        assert report.skipped == 0  # type: ignore[attr-defined]
        got = store.sql(
            "SELECT trace_id, span_id, name, kind, start_ns, duration_ns, attributes FROM spans ORDER BY span_id"
        )
        kinds = ["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"]
        for s, row in zip(sorted(spans, key=lambda s: s["spanId"]), got.itertuples(), strict=True):
            assert row.trace_id == s["traceId"]
            assert row.span_id == s["spanId"]
            assert row.name == s["name"]
            assert row.kind == kinds[s["kind"]]
            assert row.start_ns == s["startTimeUnixNano"]
            assert row.duration_ns == s["duration"]
            assert json.loads(row.attributes) == s["attributes"]
