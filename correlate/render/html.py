"""The report as one self-contained HTML page: no scripts, fonts or images from elsewhere.

Figures are inline SVG images (``data:`` URIs); a Content-Security-Policy
forbids fetching anything at all. Every string that came from a trace or a
plan (routes, statements, span names, plan conditions) goes through
:func:`e` (:func:`correlate.render.escape.html`), so a route holding
``<script>`` is shown as text.

The verdict comes first — the findings, most urgent first, a sentence each
with their evidence — then the run over time, what requests are made of, the
findings in full, the pool, the queries with their plans, example slow
requests span by span, and what the run could not show.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from correlate.kinds import FindingKind
from correlate.render.escape import html as e
from correlate.render.units import evidence_items, ms, pct
from correlate.render.words import NO_DB_SPANS, NO_FINDINGS, NO_REQUESTS, headline, time_split

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from correlate.analysis.evidence import Evidence, PlanView, Waterfall
    from correlate.analysis.findings import Finding
    from correlate.analysis.verdict import Analysis

MAX_ROUTES = 20
MAX_QUERIES = 15
MAX_STATEMENT = 400
#: Evidence values shown per finding in the verdict.
VERDICT_EVIDENCE = 4

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
:root { --ink: #1d1d1f; --muted: #5f6368; --line: #e3e5e8; --crit: #b3261e; --warn: #9a6700;
        --info: #0b57d0; --pool: #d1495b; --db: #2e86ab; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; color: var(--ink); margin: 0; background: #fff; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h1 .mono, h3 .mono { font-size: 0.92em; }
h2 { font-size: 19px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 20px 0 6px; }
p { margin: 6px 0; }
.muted, .rule { color: var(--muted); }
.rule { font-size: 13px; }
.headline { font-size: 17px; }
code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
                   font-size: 13px; }
pre { background: #f6f8fa; border: 1px solid var(--line); border-radius: 6px; padding: 10px;
      white-space: pre-wrap; word-break: break-word; }
.verdict { border: 1px solid var(--line); border-left: 5px solid var(--crit); border-radius: 6px;
           padding: 10px 16px; background: #fcfcfd; }
.verdict.clean { border-left-color: #1e8e3e; }
.verdict ol { margin: 6px 0; padding-left: 22px; }
.verdict li { margin: 6px 0; }
.badge { display: inline-block; font-size: 11px; font-weight: 700; letter-spacing: .04em;
         padding: 1px 6px; border-radius: 4px; color: #fff; vertical-align: 1px; }
.badge.critical { background: var(--crit); } .badge.warning { background: var(--warn); }
.badge.info { background: var(--info); }
.evidence { color: var(--muted); font-size: 13.5px; }
.finding { border-top: 1px solid var(--line); padding: 8px 0 10px; break-inside: avoid; }
.finding h3 { margin: 6px 0; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; margin: 8px 0; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { font-weight: 600; background: #f6f8fa; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.route, td.sql { word-break: break-word; }
figure { margin: 10px 0 16px; break-inside: avoid; }
figure img { width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 13px; }
ul.plan, ul.plan ul { list-style: none; margin: 0; padding-left: 18px; }
ul.plan { padding-left: 0; font-size: 13.5px; }
ul.plan li { margin: 2px 0; border-left: 1px solid var(--line); padding-left: 8px; }
.node { display: inline-block; padding: 1px 6px; border-radius: 4px; }
.node.flag { background: #fde7e9; outline: 2px solid var(--pool); }
.insight { color: var(--crit); font-size: 13px; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
@media print {
  body { font-size: 11pt; } main { max-width: none; padding: 0; }
  h2 { break-after: avoid; } table, figure, .finding { break-inside: avoid; }
  th { background: none; }
  .badge, .node.flag, .verdict { print-color-adjust: exact; -webkit-print-color-adjust: exact; }
}
"""


#: Styles for the notebook fragments, every selector under ``.correlate``.
FRAGMENT_CSS = """
.correlate { max-width: 1000px; }
.correlate .badge { display: inline-block; font-size: 11px; font-weight: 700; padding: 1px 6px;
  border-radius: 4px; color: #fff; }
.correlate .badge.critical { background: #b3261e; }
.correlate .badge.warning { background: #9a6700; }
.correlate .badge.info { background: #0b57d0; }
.correlate .evidence, .correlate .rule, .correlate .muted { color: #5f6368; font-size: 90%; }
.correlate .verdict { border-left: 4px solid #b3261e; padding: 4px 12px; }
.correlate .verdict.clean { border-left-color: #1e8e3e; }
.correlate .verdict li { margin: 4px 0; }
.correlate td.n, .correlate th.n { text-align: right; white-space: nowrap; }
.correlate .mono, .correlate code, .correlate pre { font-family: ui-monospace, Menlo, Consolas,
  monospace; font-size: 90%; }
.correlate pre { white-space: pre-wrap; word-break: break-word; }
"""


def _prose(text: str) -> str:
    """A finding's sentence, escaped.

    Backticks stay backticks, as in the Markdown and terminal reports: the sentence may
    quote trace text (MySQL quotes names with them), and nothing tells its code spans
    from a quoted route's.

    >>> _prose("use `with x:` <now>")
    'use `with x:` &lt;now&gt;'
    """
    return e(text)


def render(report: Evidence | Analysis) -> str:
    """The report as a complete HTML document (text)."""
    from correlate.analysis.evidence import evidence_of
    from correlate.version import __version__

    data = evidence_of(report)
    a = data.analysis
    body = [
        f"<h1>correlate report: <span class='mono'>{e(a.run)}</span></h1>",
        _summary(a),
        _verdict(a.findings),
    ]
    if a.summary.get("requests"):
        body.append(_over_time(data))
        body.append(_attribution(a))
    body.append(_findings(a.findings))
    if a.summary.get("requests"):
        body.append(_pool(a))
        body.append(_queries(a))
        body.append(_plans(data.plans))
        body.append(_examples(data.examples))
    body.append(_gaps(a.gaps))
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">\n"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        f"<title>correlate report: {e(a.run)}</title>\n<style>{CSS}</style>\n</head>\n"
        "<body>\n<main>\n"
        + "\n".join(part for part in body if part)
        + f"\n<footer>correlate {e(__version__)} · report of run {e(a.run)}</footer>\n"
        "</main>\n</body>\n</html>\n"
    )


def fragment(analysis: Analysis) -> str:
    """The verdict, routes and queries as an HTML fragment (a notebook's view of a result)."""
    parts = [
        f"<div class='correlate'><style>{_scoped_css()}</style>",
        f"<h3>correlate: {e(analysis.run)}</h3>",
        _summary(analysis),
        _verdict(analysis.findings, heading=False),
    ]
    if analysis.summary.get("requests"):
        parts.append(_routes_table(analysis.routes))
        parts.append(_queries_table(analysis.queries))
    return "\n".join(parts) + "</div>"


def finding_fragment(finding: Finding) -> str:
    """One finding as an HTML fragment."""
    return f"<div class='correlate'><style>{_scoped_css()}</style>{_finding(finding)}</div>"


def _scoped_css() -> str:
    return FRAGMENT_CSS


# -- sections ----------------------------------------------------------------------


def _summary(a: Analysis) -> str:
    lines = [f"<p class='headline'>{e(headline(a.summary))}</p>"]
    split = time_split(a.summary)
    if split:
        lines.append(f"<p>{e(split)}</p>")
    return "\n".join(lines)


def _verdict(findings: list[Finding], *, heading: bool = True) -> str:
    title = "<h2>Verdict</h2>" if heading else ""
    if not findings:
        return f"{title}<div class='verdict clean'><p>{e(NO_FINDINGS)}</p></div>"
    counts = {s: sum(f.severity == s for f in findings) for s in ("critical", "warning", "info")}
    tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    items = []
    for f in findings:
        evidence = "; ".join(_evidence(f)[:VERDICT_EVIDENCE])
        where = f" <span class='mono'>{e(f.fingerprint)}</span>" if f.fingerprint else ""
        items.append(
            f"<li>{_badge(f.severity)} <strong>{e(f.title)}</strong>{where}. "
            f"{_prose(_first_sentence(f.suggestion))}"
            + (f"<br><span class='evidence'>Evidence: {e(evidence)}</span>" if evidence else "")
            + "</li>"
        )
    below = "; each is explained in full below" if heading else ""
    return (
        f"{title}<div class='verdict'><p><strong>Findings ({e(tally)})</strong>, most urgent "
        f"first{below}.</p><ol>{''.join(items)}</ol></div>"
    )


def _badge(severity: str) -> str:
    return f"<span class='badge {e(severity)}'>{e(severity.upper())}</span>"


def _first_sentence(text: str) -> str:
    import re

    return re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]


def _evidence(f: Finding) -> list[str]:
    """The finding's scalar evidence as ``name value`` pairs, units read from the key."""
    return [f"{name} {shown}" for name, shown in evidence_items(f.evidence)]


def _findings(findings: list[Finding]) -> str:
    if not findings:
        return ""
    return "<h2>Findings in full</h2>\n" + "\n".join(_finding(f) for f in findings)


def _finding(f: Finding) -> str:
    rows = [
        f"<div class='finding'><h3>{_badge(f.severity)} {e(f.title)}</h3>",
        f"<p>{_prose(f.explanation)}</p>",
        f"<p><strong>Fix:</strong> {_prose(f.suggestion)}</p>",
    ]
    evidence = _evidence(f)
    if evidence:
        rows.append(f"<p class='evidence'><strong>Evidence:</strong> {e('; '.join(evidence))}</p>")
    statement = f.evidence.get("statement")
    if statement:
        rows.append(f"<pre>{e(_cut(str(statement), MAX_STATEMENT))}</pre>")
    if f.fingerprint:
        rows.append(f"<p class='evidence'>Fingerprint <code>{e(f.fingerprint)}</code></p>")
    if f.trace_ids:
        ids = ", ".join(f"<code>{e(t)}</code>" for t in f.trace_ids)
        rows.append(f"<p class='evidence'>Example traces: {ids}</p>")
    rows.append(f"<p class='rule'>Rule: {e(f.threshold)} — {e(f.source)}</p></div>")
    return "\n".join(rows)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _figure(fig: Figure, alt: str, caption: str) -> str:
    from correlate.render.figures import to_svg

    svg = to_svg(fig)
    data = base64.b64encode(svg.encode()).decode("ascii")
    return (
        f"<figure><img alt='{e(alt)}' src='data:image/svg+xml;base64,{data}'>"
        f"<figcaption>{e(caption)}</figcaption></figure>"
    )


def _over_time(data: Evidence) -> str:
    from correlate.render.figures import latency_timeline

    a = data.analysis
    if a.timeline.empty:
        return ""
    fig = latency_timeline(a.timeline, data.route_timeline)
    width = float(a.timeline.width_s.iloc[0])
    return "<h2>Over the run</h2>" + _figure(
        fig,
        "Latency per route, throughput with offered load, and errors over the run",
        f"Windows of {width:g} s. Latency on a log scale; the five busiest routes.",
    )


def _attribution(a: Analysis) -> str:
    from correlate.render.figures import attribution

    parts = ["<h2>Where the time goes</h2>", _routes_table(a.routes)]
    if any(not f.empty for f in a.breakdowns.values()):
        parts.append(
            _figure(
                attribution(a.breakdowns),
                "What typical and slow-tail requests of each route are made of",
                "Typical requests are a route's p40–p60, the tail its p95 and slower; "
                "database time is split by query fingerprint.",
            )
        )
    return "\n".join(parts)


def _routes_table(routes: pd.DataFrame) -> str:
    head = (
        "<table><thead><tr><th>route</th><th class='n'>requests</th><th class='n'>req/s</th>"
        "<th class='n'>errors</th><th class='n'>p50</th><th class='n'>p95</th>"
        "<th class='n'>p99</th><th class='n'>pool wait</th><th class='n'>db</th>"
        "<th class='n'>db calls</th><th class='n'>app</th></tr></thead><tbody>"
    )
    rows = [
        f"<tr><td class='route mono'>{e(r.route)}</td><td class='n'>{r.requests:,}</td>"
        f"<td class='n'>{r.throughput_rps:.1f}</td><td class='n'>{pct(r.error_rate)}</td>"
        f"<td class='n'>{ms(r.p50_ms)}</td><td class='n'>{ms(r.p95_ms)}</td>"
        f"<td class='n'>{ms(r.p99_ms)}</td><td class='n'>{ms(r.pool_ms)}</td>"
        f"<td class='n'>{ms(r.db_ms)}</td><td class='n'>{r.db_calls:.1f}</td>"
        f"<td class='n'>{ms(r.app_ms)}</td></tr>"
        for r in routes.head(MAX_ROUTES).itertuples()
    ]
    return (
        head
        + "".join(rows)
        + "</tbody></table>"
        + _more(len(routes) - MAX_ROUTES, "route")
        + "<p class='rule'>pool wait, db, app: mean per request; db calls: per request.</p>"
    )


def _more(rest: int, noun: str) -> str:
    if rest <= 0:
        return ""
    return f"<p class='muted'>… and {rest:,} more {noun}{'s' if rest != 1 else ''}.</p>"


def _pool(a: Analysis) -> str:
    from correlate.render.figures import pool_timeline

    kinds = {f.kind for f in a.findings}
    t = a.timeline
    has_samples = "checked_out_max" in t and t.checked_out_max.notna().any()
    if not (kinds & {FindingKind.POOL_LEAK, FindingKind.POOL_SATURATION}) or not has_samples:
        return ""
    return "<h2>Connection pool</h2>" + _figure(
        pool_timeline(t),
        "Connections checked out and waiting, pool wait per request and timeouts over the run",
        "From the pool's own samples (correlate.instrument): the most connections checked "
        "out and waiting in each window, the mean wait of the requests that ended in it.",
    )


def _queries(a: Analysis) -> str:
    if a.queries.empty:
        return f"<h2>Queries</h2><p>{e(NO_DB_SPANS)}</p>"
    return "<h2>Queries</h2>" + _queries_table(a.queries)


def _queries_table(queries: pd.DataFrame) -> str:
    import pandas as pd

    if queries.empty:
        return f"<p>{e(NO_DB_SPANS)}</p>"
    total = float(queries.total_ms.sum()) or 1.0
    rows = []
    for q in queries.head(MAX_QUERIES).itertuples():
        has_plan = not pd.isna(q.plan_id)
        insights = list(q.insights) if has_plan else []
        plan = (
            "<br>".join(e(i) for i in insights[:3])
            if insights
            else ("no issue found" if has_plan else "<span class='muted'>none linked</span>")
        )
        rows.append(
            f"<tr><td class='mono'>{e(q.fingerprint)}</td>"
            f"<td class='sql mono'>{e(_cut(str(q.normalized or ''), 160))}</td>"
            f"<td class='n'>{q.calls:,}</td><td class='n'>{q.calls_per_request:.1f}</td>"
            f"<td class='n'>{ms(q.total_ms)}</td><td class='n'>{pct(q.total_ms / total)}</td>"
            f"<td class='n'>{ms(q.p95_ms)}</td><td>{plan}</td></tr>"
        )
    return (
        "<table><thead><tr><th>fingerprint</th><th>statement</th><th class='n'>calls</th>"
        "<th class='n'>per request</th><th class='n'>total</th><th class='n'>share</th>"
        "<th class='n'>p95</th><th>plan insights</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        + _more(len(queries) - MAX_QUERIES, "query fingerprint")
        + "<p class='rule'>share: of all database time in the run.</p>"
    )


def _short_source(source: str) -> str:
    """A plan file's path as its last two parts (``plans/q1.json``); other sources as they are."""
    parts = source.replace("\\", "/").split("/")
    return "/".join(parts[-2:]) if len(parts) > 2 else source


def _plans(plans: list[PlanView]) -> str:
    if not plans:
        return ""
    out = ["<h2>Plans of the flagged queries</h2>"]
    for p in plans:
        kind = "EXPLAIN ANALYZE" if p.analyzed else "EXPLAIN (estimates)"
        out.append(
            f"<h3>Query <code>{e(p.fingerprint)}</code> <span class='muted'>"
            f"<span title='{e(p.source)}'>{e(_short_source(p.source))}</span>, {e(kind)}"
            "</span></h3>"
        )
        if p.normalized:
            out.append(f"<pre>{e(_cut(p.normalized, 2000))}</pre>")
        # insights tied to a node are shown on it, in the tree
        for i in p.insights[p.insights.node_id.isna()].itertuples():
            suggestion = f" — {e(i.suggestion)}" if isinstance(i.suggestion, str) else ""
            out.append(
                f"<p class='insight'>{_badge(str(i.severity))} {e(i.message)}{suggestion}</p>"
            )
        out.append(plan_tree(p))
    return "\n".join(out)


def plan_tree(plan: PlanView) -> str:
    """A plan's nodes as a nested list, the nodes an insight points at highlighted."""
    import pandas as pd

    flagged = plan.flagged_nodes
    messages: dict[int, list[str]] = {}
    for i in plan.insights.itertuples():
        if not pd.isna(i.node_id):
            fix = f" — {i.suggestion}" if isinstance(i.suggestion, str) else ""
            messages.setdefault(int(i.node_id), []).append(f"{i.message}{fix}")
    children: dict[int | None, list[Any]] = {}
    for node in plan.nodes.itertuples():
        parent = None if pd.isna(node.parent_id) else int(node.parent_id)
        children.setdefault(parent, []).append(node)

    def item(node: Any) -> str:
        nid = int(node.node_id)
        where = node.relation if isinstance(node.relation, str) else None
        label = f"{node.node_type} on {where}" if where else str(node.node_type)
        if isinstance(node.index_name, str):
            label += f" using {node.index_name}"
        facts = []
        if not pd.isna(node.estimated_rows):
            facts.append(f"est. {node.estimated_rows:,.0f} rows")
        if not pd.isna(node.actual_rows):
            loops = "" if pd.isna(node.actual_loops) else f" × {node.actual_loops:,.0f} loops"
            facts.append(f"actual {node.actual_rows:,.0f} rows{loops}")
        if not pd.isna(node.total_time):
            facts.append(f"{ms(float(node.total_time))}")
        conditions = [
            f"{name}: {value}"
            for name, value in (
                ("filter", node.filter),
                ("index cond", node.index_condition),
                ("join", node.join_condition),
            )
            if isinstance(value, str)
        ]
        if not pd.isna(node.rows_removed_by_filter):
            conditions.append(f"removed by filter: {node.rows_removed_by_filter:,.0f}")
        css = "node flag" if nid in flagged else "node"
        text = f"<span class='{css}'><strong>{e(label)}</strong>"
        if facts:
            text += f" <span class='muted'>({e(', '.join(facts))})</span>"
        text += "</span>"
        if conditions:
            text += f"<br><span class='mono muted'>{e('; '.join(conditions))}</span>"
        for message in messages.get(nid, []):
            text += f"<br><span class='insight'>⚠ {e(message)}</span>"
        kids = children.get(nid, [])
        if kids:
            text += "<ul>" + "".join(item(k) for k in kids) + "</ul>"
        return f"<li>{text}</li>"

    roots = children.get(None, [])
    return "<ul class='plan'>" + "".join(item(r) for r in roots) + "</ul>"


def _examples(examples: list[Waterfall]) -> str:
    from correlate.render.figures import waterfall

    if not examples:
        return ""
    out = ["<h2>Example slow requests</h2>"]
    for w in examples:
        more = f" {w.more:,} more spans of the trace are not shown." if w.more else ""
        out.append(
            f"<h3><span class='mono'>{e(w.route)}</span> — {e(ms(w.duration_ms))}</h3>"
            f"<p class='muted'>Trace <code>{e(w.trace_id)}</code>, {e(w.why)}.{e(more)}</p>"
        )
        out.append(
            _figure(
                waterfall(w),
                f"Spans of trace {w.trace_id}",
                "Red: waiting for a pooled connection; blue: database; dark: the request; "
                "outlined: spans that ended in an error.",
            )
        )
    return "\n".join(out)


def _gaps(gaps: list[str]) -> str:
    if not gaps:
        return ""
    items = "".join(f"<li>{e(g)}</li>" for g in gaps)
    return f"<h2>What this run could not show</h2><ul>{items}</ul>"


__all__ = ["NO_REQUESTS", "e", "fragment", "plan_tree", "render"]
