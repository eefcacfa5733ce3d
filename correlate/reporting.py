"""``correlate.report()``: the verdict on a run, rendered in the format asked for.

:func:`report` is ``correlate report``'s twin: it analyses a run (ingesting a
run directory first, as :func:`correlate.analyze` does), gathers the evidence
a report shows beyond the verdict (:func:`correlate.analysis.evidence.collect`)
and renders it with the report renderer named by ``format``: ``html`` (one
self-contained page), ``markdown`` or ``md`` (a PR comment), ``json``
(``correlate.report/1``, see docs/report-json.md) or ``text`` (what
``correlate analyze`` prints). The renderers are listed in
:mod:`correlate.render.registry`.

>>> import correlate
>>> with correlate.open_store(":memory:") as store:
...     page = correlate.report("sample_traces/checkout-fixed", store=store, format="md")
>>> page.splitlines()[0]
'### correlate: checkout-fixed'
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from correlate.analysis.detectors import Detector
    from correlate.analysis.settings import SettingsLike
    from correlate.analysis.verdict import Analysis
    from correlate.ingest import Progress
    from correlate.store import Store


def report(
    target: str | os.PathLike[str],
    *,
    store: Store,
    run: str | None = None,
    format: str = "html",
    detectors: tuple[Detector, ...] | None = None,
    settings: SettingsLike | None = None,
    progress: Progress | None = None,
) -> str:
    """The report on a run as ``format`` (``html``, ``markdown``/``md``, ``json`` or ``text``).

    ``target`` is what :func:`correlate.analyze` takes: a run directory or
    trace file (ingested first) or the name of a run in ``store``; ``settings``
    tunes the detectors as there.
    """
    from correlate.analysis.verdict import analyze
    from correlate.render.registry import find_renderer

    find_renderer("report", format)  # an unknown format fails before any work
    analysis = analyze(
        target, store=store, run=run, detectors=detectors, settings=settings, progress=progress
    )
    return render(analysis, store=store, format=format)


def render(analysis: Analysis, *, store: Store, format: str = "html") -> str:
    """``analysis`` (of a run of ``store``) as ``format``, as :func:`report` writes it."""
    from correlate.analysis.evidence import collect
    from correlate.render.registry import find_renderer

    renderer = find_renderer("report", format)
    if renderer.name == "text":
        return str(renderer(analysis))
    return str(renderer(collect(store, analysis)))


__all__ = ["render", "report"]
