"""Finding the line a span is on from its id in a file's bytes.

:func:`span_id_lines` must give the line of each id that is a ``spanId``
exactly once, however the file is cut into blocks and however the JSON is
spaced, and must leave out an id that is only a parent's, or that is there
twice: the caller then reads the file the careful way.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlate.ingest import spanlines
from correlate.ingest.spanlines import span_id_lines

_IDS = [f"{n:016x}" for n in (1, 2, 0xABC, 0xABCD, 0xFFFF_FFFF_FFFF_FFFF)]


def _reference(lines: list[str], ids: set[str]) -> dict[str, int]:
    """Each id that is one span's ``spanId`` on exactly one line, the obvious way."""
    seen: dict[str, list[int]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        for span in json.loads(line)["spans"]:
            if span.get("spanId") in ids:
                seen.setdefault(span["spanId"], []).append(number)
    return {i: where[0] for i, where in seen.items() if len(where) == 1}


_span = st.fixed_dictionaries(
    {"spanId": st.sampled_from(_IDS)},
    optional={"parentSpanId": st.sampled_from(_IDS), "name": st.sampled_from([*_IDS, "x"])},
)
_line = st.one_of(
    st.just(""),
    st.builds(
        lambda spans, padding, spaced: json.dumps(
            {"pad": "p" * padding, "spans": spans},
            separators=(", ", ": ") if spaced else (",", ":"),
        ),
        st.lists(_span, max_size=3),
        st.integers(min_value=0, max_value=200),
        st.booleans(),
    ),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(_line, max_size=25),
    block=st.integers(min_value=1, max_value=300),
    wanted=st.sets(st.sampled_from(_IDS), min_size=1),
    compressed=st.booleans(),
)
def test_each_id_found_once_as_a_span_id_gets_its_line_across_any_blocks(
    lines: list[str],
    block: int,
    wanted: set[str],
    compressed: bool,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(spanlines, "BLOCK_BYTES", block)
    data = "".join(line + "\n" for line in lines).encode()
    path = tmp_path_factory.mktemp("ids") / ("spans.jsonl.gz" if compressed else "spans.jsonl")
    path.write_bytes(gzip.compress(data) if compressed else data)
    assert span_id_lines(path, wanted) == _reference(lines, wanted)


def test_a_parent_id_or_a_name_is_not_the_span_and_spacing_does_not_matter(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(
        b'{"name":"00000000000000aa","parentSpanId":"00000000000000aa"}\n'
        b'{"spanId":"00000000000000aa0"}\n'  # a longer id that starts the same
        b'{"spanId" :\t "00000000000000aa"}\n'
    )
    assert span_id_lines(path, {"00000000000000aa"}) == {"00000000000000aa": 3}
    assert span_id_lines(path, set()) == {}
    assert span_id_lines(path, {""}) == {}
