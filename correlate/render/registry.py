"""The renderers, one list: what each is called, which file suffixes pick it, what it takes.

Four things are rendered, each by a few renderers:

* ``report``: an :class:`~correlate.analysis.evidence.Evidence` (or a bare
  ``Analysis``) as text, markdown, html or json;
* ``diff``: a :class:`~correlate.diff.RunDiff` as text, markdown or json;
* ``table``: a DataFrame (``correlate sql``, ``correlate runs``) as text,
  markdown, csv or json (JSON Lines);
* ``coverage``: a :class:`~correlate.plans.coverage.PlanCoverage` as text or json.

A format is named by its name or an alias (``md`` for ``markdown``), or
picked by an output file's suffix (pyinstrument's
``guess_renderer_from_outfile``). Renderers return text; ``terminal``
renderers also take ``color`` and ``width``. Each ``render`` imports its
module when called, so listing the renderers costs nothing.

>>> find_renderer("report", "md").name
'markdown'
>>> find_renderer("report", path="out/run.HTML").name
'html'
>>> [r.name for r in renderers("diff")]
['text', 'markdown', 'json']
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from correlate.errors import CorrelateError


@dataclass(frozen=True)
class Renderer:
    """One output format of one subject."""

    subject: str
    name: str
    render: Callable[..., str]
    aliases: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    #: takes ``color`` and ``width`` (output meant for a terminal)
    terminal: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    def __call__(self, value: Any, *, color: bool = False, width: int = 120) -> str:
        if self.terminal:
            return self.render(value, color=color, width=width)
        return self.render(value)


# -- report ------------------------------------------------------------------------


def _report_text(value: Any, *, color: bool = False, width: int = 120) -> str:
    from correlate.analysis.evidence import evidence_of
    from correlate.render.text import render

    return render(evidence_of(value).analysis, color=color, width=width)


def _report_markdown(value: Any) -> str:
    from correlate.render.markdown import render

    return render(value)


def _report_html(value: Any) -> str:
    from correlate.render.html import render

    return render(value)


def _report_json(value: Any) -> str:
    from correlate.render.json import render

    return render(value)


# -- diff --------------------------------------------------------------------------


def _diff_text(value: Any, *, color: bool = False, width: int = 120) -> str:
    from correlate.render.diff import render_text

    return render_text(value, color=color, width=width)


def _diff_markdown(value: Any) -> str:
    from correlate.render.diff import render_markdown

    return render_markdown(value)


def _diff_json(value: Any) -> str:
    from correlate.render.diff import render_json

    return render_json(value)


# -- tables ------------------------------------------------------------------------


def _table_text(value: Any, *, color: bool = False, width: int = 200) -> str:
    from correlate.render.table import render_text

    return render_text(value, width=max(width, 200))


def _table_markdown(value: Any) -> str:
    from correlate.render.table import render_markdown

    return render_markdown(value)


def _table_csv(value: Any) -> str:
    from correlate.render.table import render_csv

    return render_csv(value)


def _table_json(value: Any) -> str:
    from correlate.render.table import render_json

    return render_json(value)


# -- plan coverage -----------------------------------------------------------------


def _coverage_text(value: Any, *, color: bool = False, width: int = 120) -> str:
    from correlate.render.escape import terminal_lines

    return terminal_lines(str(value.summary())) + "\n"


def _coverage_json(value: Any) -> str:
    import json

    from correlate.render.json import plain

    return json.dumps(plain(value.to_dict()), allow_nan=False, ensure_ascii=False) + "\n"


_MD = ("md",)
_MD_SUFFIXES = (".md", ".markdown")
_TEXT_SUFFIXES = (".txt",)

#: Every renderer, by subject; the first of each subject is its default.
RENDERERS: tuple[Renderer, ...] = (
    Renderer("report", "text", _report_text, suffixes=_TEXT_SUFFIXES, terminal=True),
    Renderer("report", "markdown", _report_markdown, _MD, _MD_SUFFIXES),
    Renderer("report", "html", _report_html, (), (".html", ".htm")),
    Renderer("report", "json", _report_json, (), (".json",)),
    Renderer("diff", "text", _diff_text, suffixes=_TEXT_SUFFIXES, terminal=True),
    Renderer("diff", "markdown", _diff_markdown, _MD, _MD_SUFFIXES),
    Renderer("diff", "json", _diff_json, (), (".json",)),
    Renderer("table", "text", _table_text, ("table",), _TEXT_SUFFIXES, terminal=True),
    Renderer("table", "markdown", _table_markdown, _MD, _MD_SUFFIXES),
    Renderer("table", "csv", _table_csv, (), (".csv",)),
    Renderer("table", "json", _table_json, ("jsonl",), (".json", ".jsonl")),
    Renderer("coverage", "text", _coverage_text, suffixes=_TEXT_SUFFIXES, terminal=True),
    Renderer("coverage", "json", _coverage_json, (), (".json",)),
)


def renderers(subject: str) -> tuple[Renderer, ...]:
    """The renderers of ``subject``, its default first."""
    found = tuple(r for r in RENDERERS if r.subject == subject)
    if not found:
        subjects = sorted({r.subject for r in RENDERERS})
        raise CorrelateError(f"nothing renders {subject!r}: subjects are {', '.join(subjects)}")
    return found


def format_names(subject: str) -> list[str]:
    """Every name a format of ``subject`` answers to, aliases included (for ``--format``).

    >>> format_names("report")
    ['text', 'markdown', 'md', 'html', 'json']
    """
    return [name for r in renderers(subject) for name in r.names]


def find_renderer(
    subject: str,
    format: str | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
) -> Renderer:
    """The renderer of ``subject`` named by ``format``, else by ``path``'s suffix, else the default.

    >>> find_renderer("table", path="rows.csv").name, find_renderer("table").name
    ('csv', 'text')
    """
    candidates = renderers(subject)
    if format is not None:
        wanted = format.lower()
        for r in candidates:
            if wanted in r.names:
                return r
        known = ", ".join(n for r in candidates for n in r.names)
        raise CorrelateError(f"unknown {subject} format {format!r}: use one of {known}")
    if path is None:
        return candidates[0]
    suffix = Path(path).suffix.lower()
    for r in candidates:
        if suffix in r.suffixes:
            return r
    suffixes = ", ".join(s for r in candidates for s in r.suffixes)
    raise CorrelateError(
        f"{path}: cannot tell the {subject} format from {suffix or 'no suffix'!r}; "
        f"name the file with one of {suffixes}, or pass --format"
    )


__all__ = ["RENDERERS", "Renderer", "find_renderer", "format_names", "renderers"]
