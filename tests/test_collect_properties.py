"""Properties of the receiver's request checks: any body is answered, valid spans kept intact."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from correlate.collect.signals import BadRequest, decode_json, decode_protobuf, response

SIGNALS = st.sampled_from(["traces", "metrics", "logs"])

#: keys of the OTLP/JSON containers, so generated documents reach the nested checks
OTLP_KEYS = st.sampled_from(
    [
        "resourceSpans", "scopeSpans", "spans", "resourceMetrics", "scopeMetrics", "metrics",
        "resourceLogs", "scopeLogs", "logRecords", "sum", "gauge", "histogram", "dataPoints",
        "traceId", "spanId",
    ]
)  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(OTLP_KEYS | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


# ids: mostly valid, sometimes the wrong length or all zero
trace_ids = st.one_of(
    st.binary(min_size=16, max_size=16), st.just(bytes(16)), st.binary(max_size=20)
)
span_ids = st.one_of(st.binary(min_size=8, max_size=8), st.just(bytes(8)), st.binary(max_size=10))


def _valid(trace_id: bytes, span_id: bytes) -> bool:
    return len(trace_id) == 16 and len(span_id) == 8 and any(trace_id) and any(span_id)


@given(SIGNALS, st.binary(max_size=300))
def test_any_protobuf_body_is_decoded_or_a_bad_request(signal: str, body: bytes) -> None:
    try:
        decoded = decode_protobuf(signal, body)
    except BadRequest:
        return
    assert decoded.items >= 0 and decoded.rejected >= 0
    assert response(signal, decoded, as_json=False) is not None


@settings(max_examples=300)
@given(SIGNALS, json_values)
def test_any_json_body_is_decoded_or_a_bad_request(signal: str, document: Any) -> None:
    try:
        decoded = decode_json(signal, json.dumps(document).encode())
    except BadRequest:
        return
    assert isinstance(document, dict)
    assert (decoded.payload == b"") == (decoded.items == 0)


@settings(max_examples=60)
@given(
    st.lists(
        st.lists(st.tuples(trace_ids, span_ids, st.integers(0, 2**63)), max_size=6), max_size=3
    )
)
def test_valid_spans_are_kept_in_order_and_bad_ones_counted(
    scopes: list[list[tuple[bytes, bytes, int]]],
) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    message = ExportTraceServiceRequest()
    rs = message.resource_spans.add()
    for spans in scopes:
        ss = rs.scope_spans.add()
        for trace_id, span_id, start in spans:
            span = ss.spans.add()
            span.trace_id, span.span_id, span.start_time_unix_nano = trace_id, span_id, start
    everything = [s for spans in scopes for s in spans]
    kept = [s for s in everything if _valid(s[0], s[1])]

    decoded = decode_protobuf("traces", message.SerializeToString())
    assert (decoded.items, decoded.rejected) == (len(kept), len(everything) - len(kept))
    written = ExportTraceServiceRequest.FromString(decoded.payload)
    assert [
        (s.trace_id, s.span_id, s.start_time_unix_nano)
        for r in written.resource_spans
        for sc in r.scope_spans
        for s in sc.spans
    ] == kept

    # the same request as OTLP/JSON: the same spans kept, as hex
    document = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {"traceId": t.hex(), "spanId": s.hex(), "startTimeUnixNano": str(n)}
                            for t, s, n in spans
                        ]
                    }
                    for spans in scopes
                ]
            }
        ]
    }
    as_json = decode_json("traces", json.dumps(document).encode())
    assert (as_json.items, as_json.rejected) == (decoded.items, decoded.rejected)
    if kept:
        line = json.loads(as_json.payload)
        ids = [
            (s["traceId"], s["spanId"], int(s["startTimeUnixNano"]))
            for sc in line["resourceSpans"][0]["scopeSpans"]
            for s in sc["spans"]
        ]
        assert ids == [(t.hex(), s.hex(), n) for t, s, n in kept]
