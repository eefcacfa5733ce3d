"""Plot builders: each returns a matplotlib ``Figure`` made with the object API.

No pyplot, no global figure state, nothing shown: a notebook displays the
returned figure, the HTML report embeds it as SVG (:func:`to_svg`). Labels
that come from traces (routes, span names) are passed through
:func:`_label`, so a ``$`` in a route is text, not mathtext.

>>> import pandas as pd
>>> fig = pool_timeline(pd.DataFrame({"t_s": [0.0, 2.0], "checked_out_max": [1, 10],
...     "pool_capacity": [10, 10], "waiters_max": [0, 4], "pool_ms": [0.5, 900.0],
...     "timeouts": [0, 3]}))
>>> type(fig).__name__, len(fig.axes) >= 2
('Figure', True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from correlate.analysis.evidence import Waterfall

#: Component colours, the same in every figure: pool wait stands out.
COLORS = {
    "pool": "#d1495b",
    "db": "#2e86ab",
    "downstream": "#8e6bbf",
    "app": "#9aa0a6",
    "request": "#404040",
    "client": "#8e6bbf",
    "internal": "#c7ccd1",
    "server": "#404040",
}
#: Database time of the top fingerprints, darkest first, then "other queries".
DB_SHADES = ("#1b4f72", "#2e86ab", "#5dade2", "#a9cce3", "#d6eaf8")
ROUTE_COLORS = ("#2e86ab", "#d1495b", "#edae49", "#00798c", "#8e6bbf", "#66a182", "#404040")
MAX_ROUTES = 5
WIDTH_IN = 10.0


def _figure(height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(WIDTH_IN, height), layout="constrained")


def _label(text: object, width: int = 48) -> str:
    """Trace text for a matplotlib label: cut to ``width``, control characters shown as
    escapes (as in the terminal), and ``$`` taken literally."""
    from correlate.render.escape import terminal

    value = terminal(str(text).replace("\n", " "))
    if len(value) > width:
        value = value[: width - 1] + "…"
    return value.replace("$", r"\$")


def _tidy(ax: Axes) -> None:
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.grid(True, axis="y", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)


def latency_timeline(
    timeline: pd.DataFrame, route_timeline: pd.DataFrame, routes: list[str] | None = None
) -> Figure:
    """Latency per route (p95 solid, p50 dashed), throughput with offered load, and errors,
    on one time axis (seconds from the run's start)."""
    fig = _figure(7.0)
    lat, load, err = fig.subplots(3, 1, sharex=True, height_ratios=[3, 2, 1.2])
    shown = routes if routes is not None else _busiest(route_timeline)
    for i, route in enumerate(shown):
        rows = route_timeline[route_timeline.route == route]
        color = ROUTE_COLORS[i % len(ROUTE_COLORS)]
        lat.plot(rows.t_s, rows.p95_ms, color=color, linewidth=1.8, label=_label(route, 40))
        lat.plot(rows.t_s, rows.p50_ms, color=color, linewidth=1.0, linestyle="--")
    if len(shown):
        lat.set_yscale("log")
        lat.legend(loc="upper left", fontsize=8, frameon=False, title="p95 (solid), p50 (dashed)")
    lat.set_ylabel("latency, ms")
    lat.set_title("Latency per route", loc="left", fontsize=11)
    _tidy(lat)

    load.plot(timeline.t_s, timeline.throughput_rps, color="#202020", label="completed req/s")
    if timeline.offered_rps.notna().any():
        load.plot(
            timeline.t_s,
            timeline.offered_rps,
            color="#202020",
            linestyle=":",
            label="offered req/s",
        )
    load.set_ylabel("requests/s")
    load.set_ylim(bottom=0)
    _tidy(load)
    handles, labels = load.get_legend_handles_labels()
    # the users of the load generator's own requests, else the ones its samples say it ran
    # (Locust's stats history, k6's vus), each holding until the next sample
    running = timeline.users
    if not running.notna().any() and "users_sampled" in timeline:
        running = timeline.users_sampled.ffill()
    if running.notna().any():
        users = load.twinx()
        users.step(timeline.t_s, running, where="post", color="#66a182", label="users (load)")
        users.set_ylabel("users", color="#66a182")
        users.set_ylim(bottom=0)
        users.spines["top"].set_visible(False)
        more_h, more_l = users.get_legend_handles_labels()
        handles, labels = handles + more_h, labels + more_l
    load.legend(handles, labels, loc="upper left", fontsize=8, frameon=False)
    load.set_title("Throughput and offered load", loc="left", fontsize=11)

    width = float(timeline.width_s.iloc[0]) if len(timeline) else 1.0
    err.bar(timeline.t_s, timeline.errors, width=width * 0.9, align="edge", color=COLORS["pool"])
    err.set_ylabel("errors")
    err.set_xlabel("seconds from the start of the run")
    err.set_title("Failed requests per window", loc="left", fontsize=11)
    _tidy(err)
    return fig


def _busiest(route_timeline: pd.DataFrame) -> list[str]:
    if route_timeline.empty:
        return []
    totals = route_timeline.groupby("route").requests.sum().sort_values(ascending=False)
    return [str(r) for r in totals.index[:MAX_ROUTES]]


def attribution(breakdowns: dict[str, pd.DataFrame], max_fingerprints: int = 4) -> Figure:
    """Per route, what a typical (p40–p60) and a slow-tail (p95+) request is made of:
    stacked shares of pool wait, DB time per top fingerprint, downstream and app time,
    each bar labelled with its mean duration."""
    import numpy as np
    import pandas as pd

    from correlate.render.units import ms

    frames = {r: f for r, f in breakdowns.items() if not f.empty}
    db = pd.concat([f[f.component == "db"] for f in frames.values()] or [pd.DataFrame()])
    top = (
        list(
            (db.typical_ms + db.tail_ms)
            .groupby(db.fingerprint)
            .sum()
            .sort_values(ascending=False)
            .index
        )
        if not db.empty
        else []
    )[:max_fingerprints]
    segments = ["pool", *[f"db:{fp}" for fp in top], "db:other", "downstream", "app"]
    bars: list[tuple[str, dict[str, float]]] = []
    for route, frame in frames.items():
        for band, column, count in (
            ("typical", "typical_ms", "typical_requests"),
            ("p95+ tail", "tail_ms", "tail_requests"),
        ):
            parts = dict.fromkeys(segments, 0.0)
            for row in frame.itertuples():
                key = (
                    str(row.component)
                    if row.component != "db"
                    else f"db:{row.fingerprint}"
                    if row.fingerprint in top
                    else "db:other"
                )
                parts[key] += float(getattr(row, column))
            n = int(frame[count].iloc[0])
            bars.append((f"{_label(route, 36)}  {band} ({n})", parts))
    fig = _figure(max(2.0, 0.42 * len(bars) + 1.4))
    ax = fig.subplots()
    y = np.arange(len(bars))[::-1]
    left = np.zeros(len(bars))
    shades = iter(DB_SHADES)
    for key in segments:
        values = np.array([parts[key] for _, parts in bars])
        totals = np.array([sum(parts.values()) or 1.0 for _, parts in bars])
        if not values.any():
            continue
        color = COLORS.get(key) or next(shades, DB_SHADES[-1])
        name = {"pool": "pool wait", "app": "application", "db:other": "other queries"}.get(
            key, key.replace("db:", "query ")
        )
        ax.barh(y, values / totals, left=left, color=color, label=name, height=0.7)
        left += values / totals
    for yi, (_, parts) in zip(y, bars, strict=True):
        ax.text(1.01, yi, ms(sum(parts.values())), va="center", fontsize=8)
    ax.set_yticks(y, [label for label, _ in bars], fontsize=8)
    ax.set_xlim(0, 1.12)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"])
    ax.set_xlabel("share of the request's time (mean duration at the right)")
    ax.legend(
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12 - 1.2 / max(len(bars), 1) / 4),
        ncol=4,
        fontsize=8,
        frameon=False,
    )
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    return fig


def pool_timeline(timeline: pd.DataFrame) -> Figure:
    """Connections checked out (against capacity) and waiters, then pool wait per request
    and timeouts, on the run's time axis."""
    fig = _figure(4.6)
    conns, wait = fig.subplots(2, 1, sharex=True)
    conns.step(
        timeline.t_s,
        timeline.checked_out_max,
        where="post",
        color=COLORS["db"],
        label="checked out (max)",
    )
    if "pool_capacity" in timeline and timeline.pool_capacity.notna().any():
        conns.step(
            timeline.t_s,
            timeline.pool_capacity,
            where="post",
            color="#202020",
            linestyle=":",
            label="capacity",
        )
    conns.step(
        timeline.t_s,
        timeline.waiters_max,
        where="post",
        color=COLORS["pool"],
        label="waiting for one (max)",
    )
    conns.set_ylabel("connections")
    conns.set_ylim(bottom=0)
    conns.legend(loc="upper left", fontsize=8, frameon=False)
    _tidy(conns)
    wait.plot(timeline.t_s, timeline.pool_ms, color=COLORS["pool"], label="pool wait per request")
    wait.set_ylabel("pool wait, ms")
    wait.set_ylim(bottom=0)
    wait.set_xlabel("seconds from the start of the run")
    _tidy(wait)
    handles, labels = wait.get_legend_handles_labels()
    if "timeouts" in timeline and timeline.timeouts.fillna(0).any():
        timeouts = wait.twinx()
        width = float(timeline.width_s.iloc[0]) if "width_s" in timeline else 1.0
        timeouts.bar(
            timeline.t_s,
            timeline.timeouts.fillna(0),
            width=width * 0.8,
            align="edge",
            color="#202020",
            alpha=0.35,
            label="timeouts",
        )
        timeouts.set_ylabel("timeouts")
        timeouts.spines["top"].set_visible(False)
        more_h, more_l = timeouts.get_legend_handles_labels()
        handles, labels = handles + more_h, labels + more_l
    wait.legend(handles, labels, loc="upper left", fontsize=8, frameon=False)
    return fig


def waterfall(example: Waterfall) -> Figure:
    """One request's spans as bars on its own time axis, indented by depth, coloured by
    what they are (pool wait, database, request, other)."""
    spans = example.spans
    fig = _figure(max(1.6, 0.24 * len(spans) + 1.0))
    ax = fig.subplots()
    y = list(range(len(spans)))[::-1]
    colors = [COLORS.get(str(c), COLORS["internal"]) for c in spans.category]
    ax.barh(
        y,
        spans.duration_ms,
        left=spans.start_ms,
        color=colors,
        height=0.72,
        edgecolor=["#000000" if e else "none" for e in spans.error],
    )
    labels = ["  " * int(d) + _label(n, 56) for d, n in zip(spans.depth, spans.name, strict=True)]
    ax.set_yticks(y, labels, fontsize=7.5, fontfamily="monospace")
    ax.set_xlim(0, max(float(example.duration_ms), 1e-3) * 1.02)
    ax.set_xlabel("milliseconds from the start of the request")
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.grid(True, axis="x", color="#eeeeee")
    ax.set_axisbelow(True)
    return fig


def to_svg(fig: Figure) -> str:
    """The figure as SVG text: fonts as text (small, selectable), no date, stable ids."""
    from io import StringIO

    import matplotlib

    buffer = StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "correlate"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()
