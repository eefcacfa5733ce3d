"""A run comparison as terminal text, Markdown (a pull-request comment) and JSON.

Run names, routes, statements and finding titles come from traces: the text goes
through :func:`~correlate.render.escape.terminal` into rich ``Text``, the
Markdown through :func:`~correlate.render.escape.markdown`, and the JSON keeps
them exact.
"""

from __future__ import annotations

import json
import math
from io import StringIO
from typing import TYPE_CHECKING

from correlate.diff.rules import NOT_JUDGED
from correlate.render.escape import markdown as _md
from correlate.render.escape import terminal as t
from correlate.render.fit import Column, left_out_note
from correlate.render.fit import table as fitted_table
from correlate.render.json import plain
from correlate.render.units import ms

if TYPE_CHECKING:
    from correlate.diff import QueryChange, RouteChange, RunDiff

JSON_SCHEMA = "correlate.diff/1"
#: Rows shown per table in text and Markdown; the JSON has them all.
MAX_ROWS = 12
#: The most characters a Markdown comparison holds: under GitHub's 65,536 per PR comment.
MAX_COMMENT = 60_000
#: The most characters of one trace text (a route, a statement, a title) in Markdown.
MAX_CELL = 160
#: What a comparison without rules says instead of a verdict on them.
NO_RULES = "no rules given: nothing can fail"


def _verdict(d: RunDiff) -> str:
    if not d.rules:
        return f"{NO_RULES}: {d.candidate} against {d.baseline}"
    blind = sum(f.startswith(NOT_JUDGED) for f in d.failures)
    broken = len(d.failures) - blind
    if d.regressed and not broken:
        return (
            f"NOT JUDGED: {blind} rule(s) could be judged on no route of {d.candidate} against "
            f"{d.baseline}: too few requests (run the smoke load longer)"
        )
    if d.regressed:
        unjudged = f"; {blind} could be judged on no route" if blind else ""
        return (
            f"REGRESSION: {broken} rule(s) broken by {d.candidate} against {d.baseline}{unjudged}"
        )
    if d.unchanged:
        return f"no change: {d.candidate} matches {d.baseline}"
    return f"no regression: {d.candidate} against {d.baseline} breaks none of the rules"


def _change(r: RouteChange, q: str) -> str:
    if q not in r.ratios:
        return "—"
    ratio, low, high = r.ratios[q]
    return f"{ratio - 1:+.0%} [{low - 1:+.0%}, {high - 1:+.0%}]"


def _interesting_queries(d: RunDiff) -> list[QueryChange]:
    changed = [q for q in d.queries if q.status != "same"]
    return sorted(
        changed,
        key=lambda q: -abs((q.candidate_total_ms or 0.0) - (q.baseline_total_ms or 0.0)),
    )


def _per_request(n: float | None) -> str:
    """Calls per request: ``'1.0'``; a rare call keeps two significant digits (``'0.031'``),
    so a statement run by a few requests in a thousand does not read as none.

    >>> _per_request(2.0), _per_request(0.0306), _per_request(0.0)
    ('2.0', '0.031', '0.0')
    """
    n = n or 0.0
    return f"{n:.2g}" if 0 < n < 0.1 else f"{n:.1f}"


def _query_line(q: QueryChange) -> str:
    calls = (
        f"{_per_request(q.baseline_per_request)} → {_per_request(q.candidate_per_request)} "
        "calls/request"
        if q.baseline_per_request is not None and q.candidate_per_request is not None
        else (
            f"new, {_per_request(q.candidate_per_request)} calls/request"
            if q.candidate_per_request is not None
            else f"gone (was {_per_request(q.baseline_per_request)} calls/request)"
        )
    )
    p95 = ""
    if q.baseline_p95_ms is not None and q.candidate_p95_ms is not None:
        p95 = f", p95 {ms(q.baseline_p95_ms)} → {ms(q.candidate_p95_ms)}"
    plan = f"; plan: {'; '.join(q.plan_changes)}" if q.plan_changes else ""
    return f"{q.route} {q.fingerprint}: {calls}{p95}{plan}"


def _route_columns(routes: list[RouteChange]) -> list[Column]:
    """The routes table's columns; the route and its p95 change always stay."""
    from rich.text import Text

    def both(r: RouteChange, q: str) -> str:
        if not (r.baseline_ms and r.candidate_ms):
            return "—"
        return f"{ms(r.baseline_ms.get(q, math.nan))} → {ms(r.candidate_ms.get(q, math.nan))}"

    longest = max((len(t(r.route)) for r in routes), default=5)
    return [
        Column(
            "route", [Text(t(r.route)) for r in routes], 0, flexible=True, floor=min(longest, 24)
        ),
        Column("req", [f"{r.baseline_requests} → {r.candidate_requests}" for r in routes], 3),
        Column("p50", [both(r, "p50") for r in routes], 4),
        Column("p95", [both(r, "p95") for r in routes], 1),
        Column(
            "p95 change",
            [_change(r, "p95") if not r.note else Text("not compared", "dim") for r in routes],
            0,
        ),
        Column(
            "errors",
            [f"{r.baseline_error_rate:.0%} → {r.candidate_error_rate:.0%}" for r in routes],
            2,
        ),
    ]


def render_text(d: RunDiff, *, color: bool = False, width: int = 120) -> str:
    """The comparison for a terminal: verdict and broken rules first, ``width`` wide
    (a long route folds in its column; columns a narrow terminal has no room for are
    left out and named, as in ``correlate analyze``)."""
    from rich.console import Console
    from rich.text import Text

    buffer = StringIO()
    console = Console(
        file=buffer,
        width=width,
        force_terminal=color,
        no_color=not color,
        highlight=False,
        emoji=False,
    )
    style = "bold red" if d.regressed else "bold green"
    console.print(Text(t(f"correlate diff {d.baseline} → {d.candidate}"), "bold"))
    console.print(Text(t(_verdict(d)), style))
    for failure in d.failures:
        console.print(Text(t(f"- {failure}")))
    for note in d.notes:
        console.print(Text(t(f"note: {note}"), "dim"))
    if d.new_findings:
        console.print()
        console.print(Text("New findings", "bold"))
        for f in d.new_findings:
            console.print(Text(t(f"- [{f.severity.upper()}] {f.title}")))
    if d.resolved_findings:
        console.print()
        console.print(Text("Gone since the baseline", "bold"))
        for f in d.resolved_findings:
            console.print(Text(t(f"- [{f.severity.upper()}] {f.title}")))
    console.print()
    table, left_out = fitted_table(
        Text(t(f"Routes ({d.load.get('matched', 'whole run')})")),
        _route_columns(d.routes[:MAX_ROWS]),
        console.width,
    )
    console.print(table)
    if left_out:
        console.print(Text(left_out_note(left_out), "dim"))
    for r in d.routes[:MAX_ROWS]:
        why = r.note or "; ".join(r.skipped.values())
        if why:
            console.print(Text(t(f"{r.route}: {why}"), "dim"))
    level = min((r.alpha for r in d.routes if r.ratios), default=0.05)
    console.print(
        Text(
            f"change: candidate/baseline − 1 [{1 - level:.1%} bootstrap interval, "
            "Bonferroni over the routes compared]",
            "dim",
        )
    )
    queries = _interesting_queries(d)
    console.print()
    if not d.queries:
        console.print("No database spans in either run.")
    elif not queries:
        console.print("Queries: no change in calls per request, no new or vanished queries.")
    else:
        console.print(Text("Queries that changed", "bold"))
        for q in queries[:MAX_ROWS]:
            console.print(Text(t(f"- {_query_line(q)}")))
        if len(queries) > MAX_ROWS:
            console.print(Text(f"… and {len(queries) - MAX_ROWS} more", "dim"))
    return buffer.getvalue()


def _cut(text: object, limit: int) -> str:
    """``text`` of at most ``limit`` characters, cut with "…" (before escaping)."""
    value = "" if text is None else str(text)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _cell(text: object, limit: int = MAX_CELL) -> str:
    return _md(_cut(text, limit))


def render_markdown(d: RunDiff) -> str:
    """The comparison as a pull-request comment: a few KB, never over :data:`MAX_COMMENT`.

    Each trace text (route, statement, title, run name) is cut to :data:`MAX_CELL`
    characters; what still does not fit is left out with a line that says so.
    """
    icon = "🔴" if d.regressed else "🟢"
    lines = [f"### {icon} correlate: {_md(_cut(_verdict(d), 3 * MAX_CELL))}", ""]
    for failure in d.failures[:MAX_ROWS]:
        lines.append(f"- {_cell(failure, 2 * MAX_CELL)}")
    if len(d.failures) > MAX_ROWS:
        lines.append(f"- … and {len(d.failures) - MAX_ROWS} more")
    if not d.rules:
        lines.append(f"> {NO_RULES}")
    for note in d.notes:
        lines.append(f"> {_cell(note, 2 * MAX_CELL)}")
    if d.new_findings:
        lines += ["", "**New findings**", ""]
        lines += [f"- **{f.severity}** {_cell(f.title)}" for f in d.new_findings[:MAX_ROWS]]
    # errors get a column when a route failed on either side
    errors = any(r.baseline_errors or r.candidate_errors for r in d.routes)
    lines += [
        "",
        "| route | requests | p50 | p95 | p95 change |" + (" errors |" if errors else ""),
        "| --- | ---: | ---: | ---: | ---: |" + (" ---: |" if errors else ""),
    ]
    for r in d.routes[:MAX_ROWS]:
        p50 = (
            f"{ms(r.baseline_ms['p50'])} → {ms(r.candidate_ms['p50'])}"
            if r.baseline_ms and r.candidate_ms
            else "—"
        )
        p95 = (
            f"{ms(r.baseline_ms['p95'])} → {ms(r.candidate_ms['p95'])}"
            if r.baseline_ms and r.candidate_ms
            else "—"
        )
        lines.append(
            f"| {_cell(r.route)} | {r.baseline_requests} → {r.candidate_requests} | {p50} "
            f"| {p95} | {_cell(r.note) if r.note else _change(r, 'p95')} |"
            + (f" {_error_rates(r)} |" if errors else "")
        )
    queries = _interesting_queries(d)
    if queries:
        lines += ["", "**Queries that changed**", ""]
        lines += [f"- {_cell(_query_line(q), 2 * MAX_CELL)}" for q in queries[:6]]
    footer = [
        "",
        f"_baseline {_cell(d.baseline)}, candidate {_cell(d.candidate)}; rules: "
        + _cut(", ".join(_md(str(r)) for r in d.rules), 2 * MAX_CELL)
        + "_",
    ]
    return _capped(lines, footer)


def _error_rates(r: RouteChange) -> str:
    """``'0% → 100% (20 of 20)'``: each side's error rate, the candidate's count."""
    if not r.baseline_requests or not r.candidate_requests:
        return "—"
    return (
        f"{r.baseline_error_rate:.0%} → {r.candidate_error_rate:.0%} "
        f"({r.candidate_errors} of {r.candidate_requests})"
    )


def _capped(lines: list[str], footer: list[str]) -> str:
    """``lines`` then ``footer``, leaving out the lines that would go over MAX_COMMENT."""
    room = MAX_COMMENT - sum(len(f) + 1 for f in footer) - 200
    kept: list[str] = []
    for line in lines:
        if len(line) + 1 > room:
            left = len(lines) - len(kept)
            kept += [
                "",
                f"_… {left} more line(s) left out to fit a pull-request comment; "
                "the whole comparison: `correlate diff … --format json`_",
            ]
            break
        kept.append(line)
        room -= len(line) + 1
    return "\n".join(kept + footer) + "\n"


def render_json(d: RunDiff) -> str:
    """The comparison as JSON (schema ``correlate.diff/1``)."""
    from dataclasses import asdict

    doc = {
        "schema": JSON_SCHEMA,
        "baseline": d.baseline,
        "candidate": d.candidate,
        "regressed": d.regressed,
        "unchanged": d.unchanged,
        "failures": d.failures,
        "rules": [str(r) for r in d.rules],
        "notes": d.notes,
        "load": d.load,
        "routes": [asdict(r) for r in d.routes],
        "queries": [{**asdict(q), "status": q.status} for q in d.queries],
        "new_findings": [f.to_dict() for f in d.new_findings],
        "resolved_findings": [f.to_dict() for f in d.resolved_findings],
    }
    return json.dumps(_rounded(plain(doc)), indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def _rounded(value: object) -> object:
    """Floats to 9 significant digits: a finding's evidence summed by DuckDB in another
    order in another invocation differs in its last bits. (Rounding only makes a change
    rare; the comparison's own sums are exact, in whole nanoseconds.)"""
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value
