"""Latency against load: degradation at steady load, and the throughput knee.

The load is what the load generator offered: users with a request in flight
per window (``client_requests``), or else the users it said it ran, the most
in each window (``load_samples``: k6 VUs, Locust's user count), or else the
stages recorded in run.json. Without any, neither detector can tell load
from latency and both stay silent.

*Degradation* (correlate's rule, in the spirit of Sentry's endpoint
regression on p95; docs/rules.md#degradation): over the longest stretch where
the load is within ``plateau`` of its peak, the median latency of its last
third is at least ``ratio`` × that of its first third and ``min_ms`` more.
Latency that keeps rising while load does not is a resource running out — a
leak, a growing table, a queue.

*Knee* (Grafana k6 Performance Insights' "throughput limit";
docs/rules.md#throughput_knee): completed requests per unit of load fall
below ``efficiency`` of their early level, sustained, while the median
latency is at least ``latency_ratio`` × its early level. The finding names the
part of the request that grew the most by then, and the one that started
growing first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from correlate.analysis.findings import Finding, ms
from correlate.analysis.settings import setting, share
from correlate.kinds import FindingKind
from correlate.severity import Severity

if TYPE_CHECKING:
    import pandas as pd

    from correlate.analysis.run import Run


@dataclass(frozen=True)
class DegradationSettings:
    """Thresholds of :func:`degradation` (keys ``degradation.*``)."""

    section: ClassVar[str] = "degradation"
    plateau: float = share(0.9, "load at least this share of its peak counts as steady")
    min_plateau_windows: int = setting(6, "timeline windows of steady load", low=3)
    ratio: float = setting(2.0, "last third's median latency over the first third's", low=1.0)
    min_ms: float = setting(50.0, "and at least this much slower", unit="ms")


@dataclass(frozen=True)
class ThroughputKneeSettings:
    """Thresholds of :func:`throughput_knee` (keys ``throughput_knee.*``)."""

    section: ClassVar[str] = "throughput_knee"
    efficiency: float = share(
        0.7, "requests/s per unit of load, as a share of its early level, below which it bends"
    )
    latency_ratio: float = setting(2.0, "median latency over its early level, at least", low=1.0)
    baseline_windows: int = setting(3, "windows at the start that set the early levels", low=1)
    growth_ms: float = setting(
        10.0, "a part starts growing when above its early mean by this (and by itself)", unit="ms"
    )


DEGRADATION = DegradationSettings()
THROUGHPUT_KNEE = ThroughputKneeSettings()

PARTS = (
    ("pool_ms", "pool wait"),
    ("db_ms", "database time"),
    ("downstream_ms", "downstream calls"),
    ("app_ms", "application time"),
)


def offered_load(run: Run, timeline: pd.DataFrame) -> pd.Series | None:
    """Users offered per window, from the load generator's requests or samples, or run.json."""
    if timeline.users.notna().any():
        return timeline.users.fillna(0).astype(float)
    if "users_sampled" in timeline and timeline.users_sampled.notna().any():
        # A sample holds until the next one: windows between samples keep their users.
        return timeline.users_sampled.ffill().fillna(0).astype(float)
    stages = (run.info.get("load") or run.info.get("load_profile") or {}).get("stages")
    if not stages:
        return None
    started = run.info.get("started_unix_nano")
    offset = (run.span[0] - started) / 1e9 if started else 0.0
    mid = timeline.t_s + timeline.width_s / 2 + offset
    return mid.map(lambda t: _users_at(stages, float(t)))


def _users_at(stages: list[dict[str, Any]], t: float) -> float:
    before_t, before_users = 0.0, 0.0
    for stage in stages:
        until, users = float(stage["until_s"]), float(stage["users"])
        if t <= until:
            rate = float(stage.get("spawn_rate") or 0) or float("inf")
            step = rate * (t - before_t)
            if users >= before_users:
                return min(users, before_users + step)
            return max(users, before_users - step)
        before_t, before_users = until, users
    return 0.0


def _parts_growth(early: pd.DataFrame, late: pd.DataFrame) -> list[tuple[str, float, float]]:
    growth = [
        (label, float(early[col].mean()), float(late[col].mean()))
        for col, label in PARTS
        if early[col].notna().any() and late[col].notna().any()
    ]
    return sorted(growth, key=lambda g: g[1] - g[2])


def degradation(run: Run, settings: DegradationSettings = DEGRADATION) -> list[Finding]:
    s = settings
    timeline = run.timeline()
    load = offered_load(run, timeline)
    if load is None or load.max() <= 0:
        return []
    on = (load >= s.plateau * load.max()) & (timeline.requests > 0)
    best: list[int] = []
    current: list[int] = []
    for i, flag in enumerate(on):
        current = [*current, i] if flag else []
        if len(current) > len(best):
            best = current
    if len(best) < s.min_plateau_windows:
        return []
    plateau = timeline.iloc[best]
    third = len(plateau) // 3
    first, last = plateau.iloc[:third], plateau.iloc[-third:]
    p_first, p_last = float(first.p50_ms.median()), float(last.p50_ms.median())
    if not (p_last >= s.ratio * p_first and p_last - p_first >= s.min_ms):
        return []
    growth = _parts_growth(first, last)
    label, before, after = growth[0]
    t0, t1 = float(plateau.t_s.iloc[0]), float(plateau.t_s.iloc[-1] + plateau.width_s.iloc[-1])
    users = float(load.iloc[best].median())
    return [
        Finding(
            kind=FindingKind.DEGRADATION,
            severity=Severity.WARNING,
            title=f"Latency rose {p_last / p_first:.0f}× at steady load; {label} grew most",
            impact_ms=float((last.p50_ms - p_first).clip(lower=0).mul(last.requests).sum()),
            evidence={
                "from_s": t0,
                "to_s": t1,
                "load": users,
                "p50_first_third_ms": p_first,
                "p50_last_third_ms": p_last,
                "parts_ms_first_to_last": {g[0]: [g[1], g[2]] for g in growth},
                "throughput_first_rps": float(first.throughput_rps.mean()),
                "throughput_last_rps": float(last.throughput_rps.mean()),
                "grew_most": label,
            },
            explanation=(
                f"From {t0:.0f} s to {t1:.0f} s the load held at about {users:.0f} users, yet "
                f"the median request went from {ms(p_first)} to {ms(p_last)}. {label.capitalize()} "
                f"grew the most, from {ms(before)} to {ms(after)} per request; throughput went "
                f"from {first.throughput_rps.mean():.1f} to {last.throughput_rps.mean():.1f} "
                "requests/s. Something is running out over time rather than under load."
            ),
            suggestion=(
                "Pool wait grew the most: the connection-pool finding says whether connections "
                "leak or the pool is too small for the load."
                if label == "pool wait"
                else f"Look at what accumulates over the run in {label}: caches, table growth, "
                "locks, memory."
            ),
            threshold=(
                f"load within {s.plateau:.0%} of peak for ≥ {s.min_plateau_windows} windows; "
                f"last third's median ≥ {s.ratio:.0f}× the first's and ≥ {s.min_ms:.0f} ms more"
            ),
            source="correlate; compare Sentry's endpoint regression on p95 "
            "(docs/rules.md#degradation)",
        )
    ]


def throughput_knee(run: Run, settings: ThroughputKneeSettings = THROUGHPUT_KNEE) -> list[Finding]:
    s = settings
    timeline = run.timeline()
    load = offered_load(run, timeline)
    if load is None or load.max() <= 0:
        return []
    t = timeline.assign(load=load)
    t = t[(t.requests > 0) & (t.load > 0)].reset_index(drop=True)
    if len(t) < s.baseline_windows + 3:
        return []
    base = t.head(s.baseline_windows)
    base_eff = float(base.throughput_rps.sum() / base.load.sum())
    base_p50 = float(base.p50_ms.median())
    eff = t.throughput_rps / t.load
    sustained = eff.rolling(3).median().shift(-2)
    knee = None
    for i in range(s.baseline_windows, len(t) - 2):
        if sustained[i] < s.efficiency * base_eff and t.p50_ms[i] >= s.latency_ratio * base_p50:
            knee = i
            break
    if knee is None:
        return []
    at = t.iloc[[knee]]
    growth = _parts_growth(base, at)
    label, before, after = growth[0]
    starts = []
    for col, name in PARTS:
        mean = float(base[col].mean())
        grown = t[col] >= mean + max(s.growth_ms, mean)
        over = t.index[grown & (t.index >= s.baseline_windows)]
        if len(over):
            starts.append((int(over[0]), name))
    first = min(starts)[1] if starts else label
    t_knee = float(at.t_s.iloc[0])
    peak = float(t.throughput_rps[:knee].max())
    first_text = f" {first.capitalize()} was the first part to grow." if first != label else ""
    return [
        Finding(
            kind=FindingKind.THROUGHPUT_KNEE,
            severity=Severity.WARNING,
            title=f"Throughput knee at {t_knee:.0f} s: {label} grows, throughput stops following load",
            impact_ms=0.0,
            evidence={
                "at_s": t_knee,
                "load": float(at.load.iloc[0]),
                "throughput_rps": float(at.throughput_rps.iloc[0]),
                "peak_throughput_rps_before": peak,
                "efficiency_baseline": base_eff,
                "efficiency_at_knee": float(sustained[knee]),
                "p50_baseline_ms": base_p50,
                "p50_at_knee_ms": float(at.p50_ms.iloc[0]),
                "parts_ms_baseline_to_knee": {g[0]: [g[1], g[2]] for g in growth},
                "first_to_grow": first,
                "grew_most": label,
            },
            explanation=(
                f"Up to about {t_knee:.0f} s throughput followed the load ({base_eff:.2f} "
                f"requests/s per user at the start); there, with {at.load.iloc[0]:.0f} users, it "
                f"fell to {sustained[knee]:.2f} per user while the median request went from "
                f"{ms(base_p50)} to {ms(float(at.p50_ms.iloc[0]))}. {label.capitalize()} grew the "
                f"most: {ms(before)} → {ms(after)} per request.{first_text}"
            ),
            suggestion=(
                "The service's capacity ends here: relieve the part that grows first before "
                "adding load (more instances will not help a shared pool or database)."
            ),
            threshold=(
                f"requests/s per unit of load < {s.efficiency:.0%} of its early level "
                f"(median of 3 windows) with median latency ≥ {s.latency_ratio:.0f}× early"
            ),
            source="Grafana k6 Performance Insights, throughput limit "
            "(docs/rules.md#throughput_knee)",
        )
    ]
