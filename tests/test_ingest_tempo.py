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
from correlate.store import Store, open_store

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
        (
            2,
            "a Tempo search answer (trace summaries, no spans): save each trace's "
            "/api/traces/<id> answer instead",
        )
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
    try:  # protobuf's JSON parsers take padded base64, standard or URL-safe
        url_safe = "+" not in text and "/" not in text
        decoded = base64.b64decode(text, altchars=b"-_" if url_safe else None, validate=True)
    except ValueError:
        decoded = b""
    assert got == (decoded.hex() if len(decoded) == 8 and len(text) != 16 else text)


def _spans(store: Store) -> list[tuple[object, ...]]:
    return _rows(store, "SELECT * EXCLUDE (run_id, file_id) FROM spans")


def _url_safe_ids(document: object) -> object:
    """``document`` with its base64 ids in base64's URL-safe alphabet."""
    if isinstance(document, list):
        return [_url_safe_ids(item) for item in document]
    if not isinstance(document, dict):
        return document
    out = {}
    for key, value in document.items():
        if key in _WIDTHS and value:
            value = base64.urlsafe_b64encode(base64.b64decode(value)).decode()
        out[key] = _url_safe_ids(value)
    return out


def test_a_short_hex_id_is_not_taken_for_unpadded_base64() -> None:
    """Eleven hex digits (an id trimmed of its leading zeros) would also spell eight
    bytes of base64 without its padding."""
    span = {"spanId": "f067aa0ba92", "parentSpanId": "00f067aa0ba902b7"}
    request = to_otlp({"batches": [{"scopeSpans": [{"spans": [span]}]}]})
    assert request is not None
    assert request["resourceSpans"][0]["scopeSpans"][0]["spans"][0] == span


def test_url_safe_base64_ids_are_the_same_ids(tmp_path: Path) -> None:
    answer = json.loads((TEMPO / "api-traces.json").read_text())
    path = tmp_path / "answer.json"
    path.write_text(json.dumps(_url_safe_ids(answer)))
    assert "W47_95gDgQPSabYzgT_HAA==" in path.read_text()  # the guide's trace id, "/" as "_"
    with open_store(":memory:") as respelled, open_store(":memory:") as plain:
        respelled.ingest([path], run="r")
        plain.ingest([TEMPO / "api-traces.json"], run="r")
        assert _spans(respelled) == _spans(plain) != []


def test_answers_appended_on_one_line_are_each_read(store: Store, tmp_path: Path) -> None:
    """``curl …/api/traces/<id> >> traces.json``: Tempo's answer ends without a newline."""
    one = (TEMPO / "api-traces.json").read_text().strip()
    two = json.dumps(json.loads((TEMPO / "api-v2-traces.json").read_text()))
    path = tmp_path / "traces.json"
    path.write_text(one + two)
    assert detect_format(path) == "tempo"
    report = store.ingest([path], run="r")
    assert (report.spans_added, report.problems) == (4, [])


def test_both_answers_one_per_line_are_tempo_not_otlp_json(tmp_path: Path) -> None:
    """A v1 answer first and a v2 one (naming resourceSpans) within the sniffed head."""
    one = (TEMPO / "api-traces.json").read_text().strip()
    two = json.dumps(json.loads((TEMPO / "api-v2-traces.json").read_text()))
    path = tmp_path / "answers.jsonl"
    path.write_text(one + "\n" + two + "\n")
    assert detect_format(path) == "tempo"


def test_a_v2_answer_whose_trace_is_not_its_first_key(store: Store, tmp_path: Path) -> None:
    answer = json.loads((TEMPO / "api-v2-traces.json").read_text())
    path = tmp_path / "answer.json"
    path.write_text(json.dumps({"status": "COMPLETE", "trace": answer["trace"]}, indent=2))
    assert detect_format(path) == "tempo"
    assert store.ingest([path], run="r").spans_added == 2


def test_a_long_resource_before_the_spans_is_still_tempo(tmp_path: Path) -> None:
    """The head sniffed (64 KiB) may end before the first "scopeSpans"."""
    answer = json.loads((TEMPO / "api-traces.json").read_text())
    attributes = answer["batches"][0]["resource"]["attributes"]
    attributes.append({"key": "process.command_args", "value": {"stringValue": "x" * 70_000}})
    path = tmp_path / "answer.json"
    path.write_text(json.dumps(answer))
    assert detect_format(path) == "tempo"


def test_a_search_answer_is_named_for_what_it_is(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "search.json"
    summary = {"traceID": "2f3e0cee77ae5dc9c17ade3689eb2e54", "rootServiceName": "shop"}
    path.write_text(json.dumps({"traces": [summary], "metrics": {}}))
    with pytest.raises(InputError, match="a Tempo search answer .*/api/traces/<id>"):
        store.ingest([path], run="r", format="tempo")


@pytest.mark.parametrize("status", ["PARTIAL", 1])
def test_a_partial_v2_answer_is_read_with_a_note(
    store: Store, tmp_path: Path, status: object
) -> None:
    """Tempo answers "status": "PARTIAL" when a trace outgrew its limit: the spans it gave
    are read, and the line says spans are missing."""
    answer = json.loads((TEMPO / "api-v2-traces.json").read_text())
    answer |= {"status": status, "message": "trace exceeds max size (max bytes: 5000000)"}
    path = tmp_path / "answer.json"
    path.write_text(json.dumps(answer))
    report = store.ingest([path], run="r")
    assert (report.spans_added, report.skipped, report.lenient) == (2, 0, 1)
    assert [(p.line, p.reason) for p in report.problems] == [
        (
            1,
            "Tempo answered part of this trace (status PARTIAL: trace exceeds max size "
            "(max bytes: 5000000)): spans are missing from it",
        )
    ]
    stored = store.con.execute("SELECT count(*) FROM problems").fetchone()
    assert stored == (1,)


def test_a_complete_v2_answer_has_no_note(store: Store, tmp_path: Path) -> None:
    answer = json.loads((TEMPO / "api-v2-traces.json").read_text())
    path = tmp_path / "answer.json"
    path.write_text(json.dumps(answer | {"status": "COMPLETE"}))
    report = store.ingest([path], run="r")
    assert (report.spans_added, report.problems) == (2, [])


def test_an_answer_nested_too_deeply_is_a_problem_not_a_crash(store: Store, tmp_path: Path) -> None:
    good = (TEMPO / "api-traces.json").read_text().strip()
    deep = '{"batches": [{"scopeSpans": [{"spans": [{"attributes": [' + "[" * 50_000
    path = tmp_path / "answers.jsonl"
    path.write_text(good + "\n" + deep + "\n")
    assert detect_format(path) == "tempo"
    report = store.ingest([path], run="r")
    assert report.spans_added == 2
    assert [(p.line, p.reason) for p in report.problems] == [
        (2, "not readable JSON: nested too deeply")
    ]
