"""Grafana Tempo's trace JSON (``/api/traces``, ``/api/v2/traces``): base64 ids, enum names."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from correlate.errors import InputError
from correlate.ingest.detect import detect_format
from correlate.ingest.tempo import to_otlp
from correlate.store import Store

from .conftest import DATA

TEMPO = DATA / "tempo"
COLUMNS = "SELECT trace_id, span_id, parent_id, kind, status_code, name, service FROM spans"


def _rows(store: Store, sql: str) -> list[tuple[object, ...]]:
    return sorted(tuple(r) for r in store.con.execute(sql).fetchall())


def test_api_traces_ids_are_decoded_and_enum_names_read(store: Store) -> None:
    assert detect_format(TEMPO / "api-traces.json") == "tempo"
    report = store.ingest([TEMPO / "api-traces.json"], run="r")
    assert (report.spans_added, report.skipped) == (2, 0)
    trace = "5b8efff798038103d269b633813fc700"  # the trace id Tempo's guide shows
    assert _rows(store, COLUMNS) == [
        (trace, "0000000000000001", "eee19b7ec3c1b100", "CLIENT", "UNSET", "sql.conn.query", "checkout"),
        (trace, "eee19b7ec3c1b100", None, "SERVER", "ERROR", "POST /checkout", "checkout"),
    ]  # fmt: skip
    # nothing kept as a tracer's own id: these are the ids, only encoded
    attributes = store.con.execute("SELECT attributes::VARCHAR FROM spans").fetchall()
    assert all("correlate.original" not in text for (text,) in attributes)


def test_api_v2_traces_pretty_printed_with_a_link(store: Store) -> None:
    assert detect_format(TEMPO / "api-v2-traces.json") == "tempo"
    store.ingest([TEMPO / "api-v2-traces.json"], run="r")
    trace = "00000000000000000000000000000001"
    assert _rows(store, COLUMNS) == [
        (trace, "0000000000000010", None, "SERVER", "UNSET", "GET /orders", "checkout"),
        (trace, "0000000000000011", "0000000000000010", "CLIENT", "OK", "SELECT shop", "checkout"),
    ]  # fmt: skip
    [(links,)] = store.con.execute(
        "SELECT links FROM spans WHERE span_id = '0000000000000011'"
    ).fetchall()
    assert [(link["trace_id"], link["span_id"]) for link in links] == [
        ("00000000000000000000000000000002", "0000000000000020")
    ]


def test_several_answers_one_per_line_and_a_foreign_line_reported(
    store: Store, tmp_path: Path
) -> None:
    one = (TEMPO / "api-traces.json").read_text().strip()
    two = json.dumps(json.loads((TEMPO / "api-v2-traces.json").read_text()))
    path = tmp_path / "answers.jsonl"
    path.write_text("\n".join([one, '{"traces": []}', two]) + "\n")
    report = store.ingest([path], run="r", format="tempo")
    assert report.spans_added == 4
    assert [(p.line, p.reason) for p in report.problems] == [
        (2, 'not Tempo trace JSON (no "batches" list or "trace.resourceSpans")')
    ]


def test_plain_otlp_json_is_not_taken_for_tempo(store: Store, tmp_path: Path) -> None:
    assert detect_format(DATA / "otlp" / "checkout.jsonl") == "otlp-json"
    with pytest.raises(InputError, match="nothing could be read.*not Tempo trace JSON"):
        store.ingest([DATA / "otlp" / "checkout.jsonl"], run="r", format="tempo")


_WIDTHS = {"traceId": 16, "spanId": 8, "parentSpanId": 8}


@given(
    ids=st.fixed_dictionaries(
        {key: st.binary(min_size=w, max_size=w) for key, w in _WIDTHS.items()}
    ),
    encoding=st.sampled_from(["base64", "hex", "HEX"]),
)
def test_ids_of_either_encoding_come_out_as_lowercase_hex(
    ids: dict[str, bytes], encoding: str
) -> None:
    def encoded(raw: bytes) -> str:
        if encoding == "base64":
            return base64.b64encode(raw).decode()
        return raw.hex().upper() if encoding == "HEX" else raw.hex()

    span = {key: encoded(raw) for key, raw in ids.items()}
    request = to_otlp({"batches": [{"scopeSpans": [{"spans": [span]}]}]})
    assert request is not None
    [got] = request["resourceSpans"][0]["scopeSpans"][0]["spans"]
    expected = {key: raw.hex() for key, raw in ids.items()}
    if encoding == "HEX":  # left for the OTLP reader, which lowercases hex ids
        assert {k: v.lower() for k, v in got.items()} == expected
    else:
        assert got == expected


@given(st.text(max_size=30))
def test_an_id_that_is_neither_is_left_for_the_otlp_reader(text: str) -> None:
    span = {"spanId": text}
    request = to_otlp({"trace": {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}})
    assert request is not None
    got = request["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"]
    try:
        decoded = base64.b64decode(text, validate=True)
    except ValueError:
        decoded = b""
    assert got == (decoded.hex() if len(decoded) == 8 and len(text) != 16 else text)
