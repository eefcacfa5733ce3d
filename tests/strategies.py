"""Hypothesis strategies for hostile input, shared by the readers' property tests."""

from __future__ import annotations

import json
from collections.abc import Sequence

from hypothesis import strategies as st

from .builders import RunBuilder

#: Text a trace may carry to break a parser or a report: markup, NUL, line
#: separators, accents, empty strings, id-like runs of digits.
HOSTILE_SAMPLES = (
    "</script>",
    "\x00",
    "\u2028",
    "é",
    "",
    " ",
    "true",
    "false",
    "0" * 16,
    "ff" * 20,
)


def hostile_text(max_size: int = 12) -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=max_size), st.sampled_from(HOSTILE_SAMPLES))


def any_json(max_leaves: int = 6) -> st.SearchStrategy[object]:
    """Any JSON value, including integers past 64 bits and non-finite floats."""
    return st.recursive(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(min_value=-(2**80), max_value=2**80),
            st.floats(allow_nan=True, allow_infinity=True),
            hostile_text(),
        ),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(hostile_text(), inner, max_size=3)
        ),
        max_leaves=max_leaves,
    )


def id_like(samples: Sequence[str]) -> st.SearchStrategy[object]:
    """Hex of any length and case, valid ``samples``, or any JSON at all."""
    return st.one_of(
        st.text("0123456789abcdefABCDEF", min_size=1, max_size=34),
        st.sampled_from(list(samples)),
        any_json(),
    )


#: Microsecond times: out of range, as strings, or not times at all.
MICROS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=0, max_value=2**50).map(str),
    any_json(),
)


@st.composite
def span_trees(draw: st.DrawFn) -> RunBuilder:
    """A few traces of random spans under requests: any kind, parent or none, times out of
    order and ends before starts, database calls, and HTTP calls with or without a URL, a
    route template and a callee's SERVER span below them."""
    b = RunBuilder()
    for t in range(draw(st.integers(1, 3))):
        trace = f"t{t}"
        ids = [b.request(trace, 0, draw(st.floats(0, 100)), draw(st.sampled_from(["/a", "/b"])))]
        for _ in range(draw(st.integers(0, 30))):
            start = draw(st.floats(-10, 110))
            kind = draw(st.sampled_from(["CLIENT", "INTERNAL", "PRODUCER", "SERVER"]))
            sql = draw(st.none() | st.sampled_from(["SELECT 1", "SELECT * FROM a WHERE x = 5"]))
            template = None if sql else draw(st.none() | st.sampled_from(["/a/{id}", "/b"]))
            ids.append(
                b.span(
                    trace,
                    start,
                    start + draw(st.floats(-5, 50)),
                    parent=draw(st.sampled_from(ids) | st.none()),
                    kind=kind,
                    db="postgresql" if sql else None,
                    sql=sql,
                    template=template,
                    service=draw(st.sampled_from(["svc", "callee"])),
                )
            )
            if kind == "CLIENT" and not sql and draw(st.booleans()):
                b.spans[-1]["attributes"] = json.dumps(
                    {"url.full": draw(st.sampled_from(["http://x/a/1", "http://x/a/2", "::"]))}
                )
    return b
