"""The terminal verdict: findings first, most urgent first, then the per-route tables.

Everything that came from a trace (routes, statements, exception names) goes
into rich ``Text`` objects, never into markup, so a route called
``[bold]/x`` prints as written, and through :func:`~correlate.render.escape.terminal`,
so no control character or escape sequence in it reaches the terminal.
"""

from __future__ import annotations

from io import StringIO
from typing import TYPE_CHECKING, Any

from correlate.render.escape import terminal as t
from correlate.render.fit import Column, left_out_note
from correlate.render.fit import table as fitted_table
from correlate.render.units import evidence_items, ms, pct
from correlate.render.words import NO_DB_SPANS, NO_FINDINGS, NO_REQUESTS, entries, pool_wait

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

    from correlate.analysis.findings import Finding
    from correlate.analysis.verdict import Analysis

STYLES = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
#: Fewest requests in a route's typical band and in its tail for the contrast to be shown.
MIN_TAIL = 3
#: Evidence keys shown under a finding, in this order, when present.
SHOWN_EVIDENCE = 6


def render(analysis: Analysis, *, color: bool = False, width: int = 120) -> str:
    """The analysis as terminal text (ANSI colours when ``color``)."""
    from rich.console import Console

    buffer = StringIO()
    console = Console(
        file=buffer,
        width=width,
        force_terminal=color,
        no_color=not color,
        highlight=False,
        emoji=False,
    )
    _header(console, analysis)
    _findings(console, analysis.findings)
    if analysis.summary.get("requests"):
        _routes(console, analysis.routes)
        _tails(console, analysis)
        _queries(console, analysis.queries)
        _client(console, analysis.client)
    _gaps(console, analysis.gaps)
    return buffer.getvalue()


def _header(console: Console, a: Analysis) -> None:
    from rich.text import Text

    s = a.summary
    console.print(Text.assemble(("correlate analyze ", "bold"), (t(a.run), "bold")))
    if not s.get("requests"):
        console.print(Text(NO_REQUESTS))
        return
    share = s["time_share"]
    rate = f" ({s['throughput_rps']:.1f}/s)" if s["seconds"] >= 1 else ""
    served, latency = entries(s)
    console.print(
        f"{served} over {_span(s['seconds'])}{rate}, {latency}errors {pct(s['error_rate'])}",
        markup=False,
    )
    console.print(
        f"Where the time went: {pool_wait(s)}, database {pct(share['db'])}, "
        f"downstream {pct(share['downstream'])}, application {pct(share['app'])}"
    )


def _span(seconds: float) -> str:
    """A run's length: ``'61 s'``, ``'4.2 s'``, ``'10.0 ms'``."""
    if seconds >= 10:
        return f"{seconds:.0f} s"
    if seconds >= 1:
        return f"{seconds:.1f} s"
    return ms(seconds * 1000)


def _findings(console: Console, findings: list[Finding]) -> None:
    from rich.text import Text

    console.print()
    if not findings:
        console.print(Text(NO_FINDINGS, "green"))
        return
    counts = {s: sum(f.severity == s for f in findings) for s in STYLES}
    line = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    console.print(Text(f"Findings ({line})", "bold"))
    for i, f in enumerate(findings, 1):
        console.print()
        console.print(
            Text.assemble(
                (f"{i}. ", "bold"),
                (f"[{f.severity.upper()}] ", STYLES[f.severity]),
                (t(f.title), "bold"),
            )
        )
        console.print(Text(t(f.explanation)), style=None)
        console.print(Text.assemble(("Fix: ", "bold"), t(f.suggestion)))
        shown = _evidence_lines(f)
        if shown:
            console.print(Text.assemble(("Evidence: ", "bold"), t("; ".join(shown))))
        if f.fingerprint:
            console.print(Text.assemble(("Fingerprint: ", "bold"), t(f.fingerprint)))
        if f.trace_ids:
            console.print(Text.assemble(("Traces: ", "bold"), t(", ".join(f.trace_ids))))
        console.print(Text(t(f"Rule: {f.threshold} — {f.source}"), "dim"))


def _evidence_lines(f: Finding) -> list[str]:
    return [f"{name} {shown}" for name, shown in evidence_items(f.evidence)[:SHOWN_EVIDENCE]]


def _routes(console: Console, routes: pd.DataFrame) -> None:
    from rich.text import Text

    rows = list(routes.itertuples())

    longest = int(routes.route.astype(str).str.len().max()) if len(routes) else 5
    columns = [
        Column("route", [Text(t(r.route)) for r in rows], 0, flexible=True, floor=min(longest, 24)),
        Column("req", [f"{r.requests:,}" for r in rows], 1),
        Column("req/s", [f"{r.throughput_rps:.1f}" for r in rows], 6),
        Column("err", [pct(r.error_rate) for r in rows], 3),
        Column("p50", [ms(r.p50_ms) for r in rows], 2),
        Column("p95", [ms(r.p95_ms) for r in rows], 2),
        Column("max", [ms(r.max_ms) for r in rows], 5),
        Column("pool", [ms(r.pool_ms) for r in rows], 4),
        Column("db", [ms(r.db_ms) for r in rows], 4),
        Column("calls", [f"{r.db_calls:.1f}" for r in rows], 6),
        Column("app", [ms(r.app_ms) for r in rows], 5),
    ]
    table, left_out = fitted_table("Routes", columns, console.width)
    console.print()
    console.print(table)
    said = [part for part in ("pool", "db", "app") if part not in left_out]
    notes = []
    if said:
        notes.append(f"{', '.join(said)}: mean per request")
    if "calls" not in left_out:
        notes.append("calls: DB calls per request")
    if left_out:
        notes.append(left_out_note(left_out))
    console.print(Text("; ".join(notes), "dim"))


def _tails(console: Console, a: Analysis) -> None:
    from rich.text import Text

    lines = []
    for route, frame in a.breakdowns.items():
        if (
            frame.empty
            or frame.tail_requests.iloc[0] < MIN_TAIL
            or frame.typical_requests.iloc[0] < MIN_TAIL
        ):
            continue  # a "tail" of one request says nothing
        top = frame.iloc[0]
        label = t(_component(top, a.queries))
        lines.append(
            Text.assemble(
                (t(route), "bold"),
                f": p95+ tail ({int(top.tail_requests)} requests) is {label} "
                f"{ms(top.tail_ms)} against {ms(top.typical_ms)} in a typical request",
            )
        )
    if lines:
        console.print()
        console.print(Text("What the slow requests are made of", "bold"))
        for line in lines:
            console.print(line)


def _component(row: Any, queries: pd.DataFrame) -> str:
    names = {"pool": "pool wait", "app": "application time", "downstream": "downstream calls"}
    if row.component != "db":
        return names[str(row.component)]
    match = queries[queries.fingerprint == row.fingerprint]
    table = ""
    tables = match.tables.iloc[0] if not match.empty else None
    listed = isinstance(tables, (list, tuple)) or type(tables).__name__ == "ndarray"
    if listed and len(tables):  # type: ignore[arg-type]
        table = f" on {tables[0]}"  # type: ignore[index]
    return f"query {row.fingerprint}{table}"


def _queries(console: Console, queries: pd.DataFrame) -> None:
    from rich.text import Text

    if queries.empty:
        console.print()
        console.print(Text(NO_DB_SPANS))
        return
    rows = list(queries.head(10).itertuples())
    plans = [_plan_reading(q) for q in rows]
    statement = [
        Text(t(short_statement(str(q.normalized or ""))), no_wrap=True, overflow="ellipsis")
        for q in rows
    ]
    columns = [
        Column("fingerprint", [Text(t(q.fingerprint)) for q in rows], 0, justify="left"),
        Column("statement", statement, 0, flexible=True, floor=16, ceiling=40),
        Column("calls", [f"{q.calls:,}" for q in rows], 1),
        Column("per req", [f"{q.calls_per_request:.1f}" for q in rows], 3),
        Column("total", [ms(q.total_ms) for q in rows], 2),
        Column("p50", [ms(q.p50_ms) for q in rows], 4),
        Column("p95", [ms(q.p95_ms) for q in rows], 4),
        Column("plan", [state for state, _ in plans], 5, justify="left"),
    ]
    table, left_out = fitted_table("Queries", columns, console.width)
    console.print()
    console.print(table)
    notes = (
        [] if "plan" in left_out else ["plan: flagged (its reading follows), ok, or none linked"]
    )
    if left_out:
        notes.append(left_out_note(left_out))
    if notes:
        console.print(Text("; ".join(notes), "dim"))
    # what a flagged plan says needs a line of its own: a table cell would cut it
    for q, (_, reading) in zip(rows, plans, strict=True):
        if reading:
            console.print(Text.assemble((t(q.fingerprint), "bold"), " plan: ", t(reading)))


def _plan_reading(q: Any) -> tuple[str, str]:
    """The plan column's word for a query's plan, and its first insight when it has one."""
    import pandas as pd

    if pd.isna(q.plan_id):
        return "none", ""
    insights = list(q.insights)
    return ("flagged", str(insights[0])) if insights else ("ok", "")


def short_statement(text: str) -> str:
    """A statement as a table cell shows it: a SELECT's column list as "…".

    The list comes first and is often a hundred characters of one table's columns;
    what tells two queries apart is what follows FROM.
    """
    upper = text.upper()
    at = upper.find(" FROM ")
    if upper.startswith("SELECT ") and at > len("SELECT "):
        return f"SELECT … FROM {text[at + len(' FROM ') :]}"
    return text


def _client(console: Console, client: pd.DataFrame) -> None:
    from rich.text import Text

    if client.empty:
        return
    total = int(client.client_requests.sum())
    reached = int(client.reached_server.sum())
    console.print()
    console.print(Text("The load generator's view", "bold"))
    if client.match.iloc[0] != "traceparent":
        console.print(
            f"{total:,} client requests; no trace context joins them to server spans, so "
            "routes are compared by their medians only."
        )
        return
    weights = client.reached_server.clip(lower=1)
    outside = float((client.outside_p50_ms.fillna(0) * weights).sum() / weights.sum())
    console.print(
        f"{total:,} client requests, {reached:,} joined to their server span by traceparent "
        f"({int(client.never_reached.sum()):,} never reached the server"
        + (
            f", {untraced:,} carried no trace context); "
            if (untraced := int(client.without_trace_context.sum()))
            else "); "
        )
        + f"{int(client.client_failures.sum()):,} failed on the client side. Time outside the "
        f"server's span: about {ms(outside)} per request (median per route, weighted; "
        "network, accept queue, client)."
    )


def _gaps(console: Console, gaps: list[str]) -> None:
    from rich.text import Text

    if not gaps:
        return
    console.print()
    console.print(Text("What this run could not show", "bold"))
    for gap in gaps:
        console.print(Text(f"- {t(gap)}"))
