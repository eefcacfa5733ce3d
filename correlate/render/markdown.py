"""The report as Markdown for a pull-request comment: verdict, top findings, routes.

Kept to a few kilobytes: findings and routes are cut to the most important,
with a count of the rest. Every string that holds trace text goes through
:func:`~correlate.render.escape.markdown`, so a route holding ``<img>``,
``[x](y)``, ``|``, a line break or ``@team`` shows as written: no link, image,
HTML, mention or broken table row.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from correlate.render.escape import markdown as escape
from correlate.render.units import evidence_items, ms, pct
from correlate.render.words import NO_DB_SPANS, NO_FINDINGS, headline, time_split

if TYPE_CHECKING:
    from correlate.analysis.evidence import Evidence
    from correlate.analysis.verdict import Analysis

MAX_FINDINGS = 5
MAX_ROUTES = 8
MAX_GAPS = 3
#: Longest fix sentence shown under a finding, in characters.
MAX_FIX = 160

#: Evidence values shown per finding.
MAX_EVIDENCE = 3


def render(report: Evidence | Analysis) -> str:
    """The report as GitHub-flavoured Markdown."""
    from correlate.analysis.evidence import evidence_of

    a = evidence_of(report).analysis
    lines = [f"### correlate: {escape(a.run)}", "", headline(a.summary)]
    split = time_split(a.summary)
    if split:
        lines.append(split)
    lines.append("")
    lines.extend(_findings(a))
    if a.summary.get("requests"):
        lines.extend(_routes(a))
        if a.queries.empty:
            lines.extend([NO_DB_SPANS, ""])
    lines.extend(_gaps(a.gaps))
    return "\n".join(lines).rstrip("\n") + "\n"


def _findings(a: Analysis) -> list[str]:
    if not a.findings:
        return [NO_FINDINGS, ""]
    counts = {s: sum(f.severity == s for f in a.findings) for s in ("critical", "warning", "info")}
    shown = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    out = [f"**Findings** ({shown})", ""]
    for i, f in enumerate(a.findings[:MAX_FINDINGS], 1):
        impact = f" — {ms(f.impact_ms)} of request time" if f.impact_ms else ""
        out.append(f"{i}. **{f.severity.upper()}** {escape(f.title)}{impact}")
        out.append(f"   Fix: {escape(_first_sentence(f.suggestion))}")
        shown = "; ".join(f"{n} {v}" for n, v in evidence_items(f.evidence)[:MAX_EVIDENCE])
        if shown:
            out.append(f"   Evidence: {escape(shown)}")
    rest = len(a.findings) - MAX_FINDINGS
    if rest > 0:
        out.append(f"\n… and {rest} more finding{'s' if rest != 1 else ''} in the full report.")
    out.append("")
    return out


def _first_sentence(text: str) -> str:
    head = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]
    return head if len(head) <= MAX_FIX else head[: MAX_FIX - 1].rstrip() + "…"


def _routes(a: Analysis) -> list[str]:
    out = [
        "| route | req | err | p50 | p95 | pool | db | app |",
        "| --- | --: | --: | --: | --: | --: | --: | --: |",
    ]
    for r in a.routes.head(MAX_ROUTES).itertuples():
        out.append(
            f"| {escape(r.route)} | {r.requests:,} | {pct(r.error_rate)} | {ms(r.p50_ms)} "
            f"| {ms(r.p95_ms)} | {ms(r.pool_ms)} | {ms(r.db_ms)} | {ms(r.app_ms)} |"
        )
    rest = len(a.routes) - MAX_ROUTES
    if rest > 0:
        out.append(f"\n… and {rest} more route{'s' if rest != 1 else ''}.")
    out.extend(["", "_pool, db, app: mean per request_", ""])
    return out


def _gaps(gaps: list[str]) -> list[str]:
    if not gaps:
        return []
    out = ["**What this run could not show**", ""]
    out.extend(f"- {escape(_first_sentence(g))}" for g in gaps[:MAX_GAPS])
    if len(gaps) > MAX_GAPS:
        out.append(f"- … and {len(gaps) - MAX_GAPS} more")
    return out
