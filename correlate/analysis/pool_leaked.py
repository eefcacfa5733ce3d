"""Capacity drops from pool metrics: connections in use that no running request holds.

A pool's metrics (``db.client.connection.count{state=used}``, or the older
``db.client.connections.usage``) count the connections taken from it at the
moment they are reported, exactly, leaked ones included. The checkout spans
count, at the same moment, the connections held by requests still running.
The difference is the connections nobody running holds: the leaked ones
(rules: docs/rules.md#pool_leak). A connection once leaked never comes back,
so the count can only grow: a running median of :data:`MEDIAN_SAMPLES` samples drops
the single samples the spans miscount, and the fewest leaked at a sample or any later
one is kept.

Between two samples in which the leaked count rose by ``lost``, ``lost``
requests ended holding their connection: the requests whose hold ended in that
interval are the candidates (counted per group where the spans are:
:func:`correlate.analysis.pool_holders.candidates`). Unlike the drops inferred from waits alone, these
intervals are certain to hold the leak; they are as wide as the export interval
(a second with ``OTEL_METRIC_EXPORT_INTERVAL=1000``), so the attribution weighs
how many of a group's requests each holds against how many connections it lost.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import numpy as np

    from correlate.analysis.run import Run

G = TypeVar("G", bound=Hashable)

#: samples in the running median taken of the leaked count before its steps are read: a
#: connection handed over between a pool's count and a span's end, or a request counted
#: holding after it gave its connection back, miscounts one sample, not the next ones
MEDIAN_SAMPLES = 3


@dataclass(frozen=True)
class Window:
    """Between two pool samples, ``lost`` connections were kept by requests that ended."""

    after_ns: int
    before_ns: int
    capacity_before: int
    lost: int
    #: the candidates: requests whose hold ended in the window, how many per group
    candidates: Mapping[Any, int] = field(default_factory=dict)
    #: a few of the candidates' trace ids, per group
    examples: Mapping[Any, tuple[str, ...]] = field(default_factory=dict, compare=False)

    @property
    def size(self) -> int:
        """How many candidates."""
        return sum(self.candidates.values())


def used_series(run: Run) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(sample times, connections in use, capacity) of the run's one metrics-fed pool.

    None without samples read from OpenTelemetry metrics, or with several pools (which
    requests use which pool is not in the spans).
    """
    import numpy as np

    rows = run.con.execute(
        """
        SELECT time_unix_nano, checked_out, capacity, pid, pool FROM pool_samples
        WHERE run_id = ? AND pool_class LIKE 'otel %' ORDER BY time_unix_nano
        """,
        [run.run_id],
    ).fetchall()
    if not rows or len({(r[3], r[4]) for r in rows}) != 1:
        return None
    times = np.array([r[0] for r in rows], dtype=np.int64)
    used = np.array([r[1] for r in rows], dtype=np.int64)
    capacity = max((int(r[2]) for r in rows if r[2] is not None), default=int(used.max()))
    return times, used, capacity


def leaked_windows(
    np: Any,
    times: np.ndarray,
    used: np.ndarray,
    held: np.ndarray,
    capacity: int,
    slack_ns: int,
) -> list[Window]:
    """The intervals between samples in which connections were lost for good.

    ``held`` is the connections held by running requests at each sample time. A hold's
    end is stamped by the service's clock, the sample by the exporter's: the window
    reaches ``slack_ns`` past its sample. The windows come without their candidates.
    """
    leaked = np.maximum(used - held, 0)
    if len(leaked) >= MEDIAN_SAMPLES:  # one sample's miscount is not a step
        half = MEDIAN_SAMPLES // 2
        padded = np.concatenate([[leaked[0]] * half, leaked, [leaked[-1]] * half])
        windows = np.lib.stride_tricks.sliding_window_view(padded, MEDIAN_SAMPLES)
        leaked = np.median(windows, axis=1).astype(np.int64)
    kept = np.minimum.accumulate(leaked[::-1])[::-1]  # the fewest leaked now or later
    return [
        Window(
            int(times[k - 1]),
            int(times[k]) + slack_ns,
            capacity - int(kept[k - 1]),
            int(kept[k] - kept[k - 1]),
        )
        for k in np.flatnonzero(kept[1:] > kept[:-1]) + 1
    ]


def more_sure(a: Any, b: Any) -> Any:
    """Of two (drops, culprit or None, groups tried), the one naming a culprit more surely."""
    if a is None or (b[1] is not None and (a[1] is None or b[1].p_value < a[1].p_value)):
        return b
    return a


@dataclass(frozen=True)
class Attribution:
    """The group whose requests best account for the connections lost, and how surely."""

    group: Hashable
    followed: int
    lost: int
    share: float
    p_value: float


def attribute(
    totals: Mapping[G, int], windows: list[Window], *, trials: int = 1
) -> tuple[Attribution | None, list[G]]:
    """The group most over-represented among the windows' candidates, and the groups tried.

    ``totals`` counts the requests that held a connection, per group. A window that
    lost ``lost`` connections is followed ``min(lost, m)`` times by a group with ``m``
    candidates in it. Under chance, a group that is a share ``q`` of all holders has
    Binomial(candidates, q) requests in a window; the p-value is the chance of as many
    follows or more over all windows, times the groups tried and ``trials`` (Bonferroni).
    """
    everyone = sum(totals.values())
    if not windows or not everyone:
        return None, []
    tried: list[G] = sorted({g for w in windows for g, n in w.candidates.items() if n}, key=repr)
    lost = sum(w.lost for w in windows)
    best: Attribution | None = None
    for g in tried:
        q = totals.get(g, 0) / everyone
        followed = sum(min(w.lost, w.candidates.get(g, 0)) for w in windows)
        dists = [_capped_binomial(w.size, q, w.lost) for w in windows]
        p = min(1.0, tail(dists, followed) * len(tried) * trials)
        found = Attribution(g, followed, lost, q, p)
        if best is None or (p, -followed) < (best.p_value, -best.followed):
            best = found
    return best, tried


def _capped_binomial(n: int, q: float, cap: int) -> list[float]:
    """P(min(cap, X) = j) for j = 0..cap, X ~ Binomial(n, q)."""
    pmf = [math.comb(n, j) * q**j * (1 - q) ** (n - j) for j in range(min(cap, n) + 1)]
    below = pmf[:cap]
    return [*below, max(0.0, 1.0 - math.fsum(below))] if cap <= n else pmf


def tail(dists: list[list[float]], k: int) -> float:
    """P(the sum of independent counts with these distributions is at least ``k``)."""
    total = [1.0]
    for d in dists:
        nxt = [0.0] * (len(total) + len(d) - 1)
        for i, a in enumerate(total):
            for j, b in enumerate(d):
                nxt[i + j] += a * b
        total = nxt
    return float(min(1.0, max(0.0, math.fsum(total[k:]))))
