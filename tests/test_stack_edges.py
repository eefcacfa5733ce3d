"""The language of a run's services, read past the first spans, and hostile values."""

from __future__ import annotations

from correlate.analysis import open_run, stack

from .builders import RunBuilder
from .test_stack import _language, _one_request, _said


def test_a_second_service_after_many_spans_of_the_first_still_disagrees() -> None:
    b = RunBuilder()
    for k in range(1_200):
        b.request(f"w{k}", k, k + 1, service="web")
    _said(b, "python")
    b.spans += _said(_one_request("api"), "nodejs").spans
    assert _language(b, "api") == "nodejs"
    assert _language(b) is None  # the services differ: no one language for the run


def test_a_hostile_language_value_picks_no_ones_advice() -> None:
    b = _said(_one_request(), "<b>python</b>" + "x" * 10_000)
    with open_run(b.build(), "r") as run:
        lang = stack.language(run)
    assert stack.profiler(lang) == "a sampling profiler"
    assert "<b>" not in stack.give_back(None, lang) + stack.pool_telemetry(lang)
