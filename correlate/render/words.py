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
    >>> headline({"requests": 3, "routes": 1, "seconds": 2.0, "throughput_rps": 1.5,
    ...           "p50_ms": 10.0, "p95_ms": 20.0, "error_rate": 0.0})
    '3 requests on 1 route over 2 s (1.5/s), p50 10.0 ms, p95 20.0 ms, errors 0%.'
    """
    s = summary
    if not s.get("requests"):
        return NO_REQUESTS
    served, latency = entries(s)
    return (
        f"{served} over {s['seconds']:.0f} s ({s['throughput_rps']:.1f}/s), "
        f"{latency}errors {pct(s['error_rate'])}."
    )


def entries(summary: dict[str, Any]) -> tuple[str, str]:
    """What the run served, and its latency (``"p50 …, p95 …, "``, or empty when given
    with each kind): web requests and a worker's messages apart.

    A message's processing time is no web request's latency, so when a run has both, each
    kind has its own count, routes and percentiles (``summary["by_kind"]``).

    >>> entries({"requests": 5, "routes": 2, "p50_ms": 4.0, "p95_ms": 9.0, "by_kind": {
    ...     "web": {"count": 3, "routes": 1, "p50_ms": 8.0, "p95_ms": 9.0},
    ...     "messages": {"count": 2, "routes": 1, "p50_ms": 2.0, "p95_ms": 3.0}}})[0]
    '3 requests on 1 route (p50 8.00 ms, p95 9.00 ms) and 2 messages on 1 route (p50 2.00 ms, p95 3.00 ms)'
    """
    s = summary
    kinds = s.get("by_kind") or {}
    web, messages = kinds.get("web"), kinds.get("messages")
    if web and messages:
        served = " and ".join(
            f"{_counted(k['count'], noun)} on {_counted(k['routes'], 'route')} "
            f"(p50 {ms(k['p50_ms'])}, p95 {ms(k['p95_ms'])})"
            for k, noun in ((web, "request"), (messages, "message"))
        )
        return served, ""
    noun = "message" if messages else "request"
    return (
        f"{_counted(s['requests'], noun)} on {_counted(s['routes'], 'route')}",
        f"p50 {ms(s['p50_ms'])}, p95 {ms(s['p95_ms'])}, ",
    )


def _counted(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def pool_wait(summary: dict[str, Any]) -> str:
    """The pool wait's share, or that no span or checkout recorded it: with only statement
    spans (asyncpg, psycopg) a wait for a connection is the application's time, and
    "pool wait 0%" would read as measured; where the pool's errors are all there is
    (analysis.pool_errors), only the failed checkouts' waits are counted."""
    if not summary.get("connect_spans") and not summary.get("pool_checkouts"):
        if summary.get("pool_errors"):
            # a pool that makes no checkout span shows only the checkouts that failed
            return f"pool wait {pct(summary['time_share']['pool'])} (failed checkouts only)"
        return "pool wait not recorded"
    return f"pool wait {pct(summary['time_share']['pool'])}"


def time_split(summary: dict[str, Any]) -> str:
    """Where the time went, as one sentence (empty when there were no requests)."""
    if not summary.get("requests"):
        return ""
    share = summary["time_share"]
    return (
        f"Where the time went: {pool_wait(summary)}, database {pct(share['db'])}, "
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
