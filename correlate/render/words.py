"""Sentences every renderer shares, so the empty cases read the same in each format."""

from __future__ import annotations

from typing import Any

from correlate.render.units import ms, pct

NO_REQUESTS = "No requests in this run: no SERVER or CONSUMER spans to attribute."
NO_DB_SPANS = "No database spans in this run."
NO_FINDINGS = "No findings: nothing in this run crossed a detector's threshold."


def headline(summary: dict[str, Any]) -> str:
    """One sentence on the run: requests, routes, duration, throughput, latency, errors.

    >>> headline({"requests": 0})
    'No requests in this run: no SERVER or CONSUMER spans to attribute.'
    """
    s = summary
    if not s.get("requests"):
        return NO_REQUESTS
    routes = s["routes"]
    return (
        f"{s['requests']:,} requests on {routes} route{'s' if routes != 1 else ''} "
        f"over {s['seconds']:.0f} s ({s['throughput_rps']:.1f}/s), p50 {ms(s['p50_ms'])}, "
        f"p95 {ms(s['p95_ms'])}, errors {pct(s['error_rate'])}."
    )


def time_split(summary: dict[str, Any]) -> str:
    """Where the time went, as one sentence (empty when there were no requests)."""
    if not summary.get("requests"):
        return ""
    share = summary["time_share"]
    return (
        f"Where the time went: pool wait {pct(share['pool'])}, database {pct(share['db'])}, "
        f"downstream {pct(share['downstream'])}, application {pct(share['app'])}."
    )


def notes(summary: dict[str, Any], queries_empty: bool) -> list[str]:
    """The explicit sentences for what a run lacks entirely."""
    out = []
    if not summary.get("requests"):
        out.append(NO_REQUESTS)
    if queries_empty:
        out.append(NO_DB_SPANS)
    return out
