"""The statistics of a run comparison: a bootstrap interval for a ratio of quantiles.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a, b = rng.exponential(10, 400), rng.exponential(20, 400)
>>> r = quantile_ratio(a, b, 0.95)
>>> 1.2 < r.low < r.ratio < r.high < 2.6
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

#: Resamples per side: enough for the tails of a Bonferroni-narrowed interval
#: (10 routes: the 0.25th and 99.75th percentiles, 5 resamples beyond each).
RESAMPLES = 2000
#: Larger samples are subsampled (without replacement) to this many first: the
#: interval of a p95 hardly narrows past it, and the bootstrap stays fast.
MAX_SAMPLE = 20_000
CHUNK = 100


@dataclass(frozen=True)
class Ratio:
    """candidate / baseline for one quantile, with a bootstrap interval."""

    ratio: float
    low: float
    high: float

    def excludes_one(self) -> bool:
        return self.low > 1.0 or self.high < 1.0


def _quantiles(
    values: npt.NDArray[np.float64], q: float, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    import numpy as np

    out = []
    for start in range(0, RESAMPLES, CHUNK):
        size = min(CHUNK, RESAMPLES - start)
        picks = rng.integers(0, len(values), size=(size, len(values)))
        out.append(np.quantile(values[picks], q, axis=1))
    return np.concatenate(out)


def quantile_ratio(
    baseline: npt.ArrayLike,
    candidate: npt.ArrayLike,
    q: float,
    *,
    seed: int = 0,
    alpha: float = 0.05,
) -> Ratio:
    """The ratio of candidate's to baseline's ``q`` quantile, with a percentile-bootstrap
    ``1 - alpha`` interval (each side resampled independently; a fixed seed keeps runs
    repeatable). Pass ``alpha / k`` when ``k`` routes are compared at once (Bonferroni)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    a = np.asarray(baseline, dtype=float)
    b = np.asarray(candidate, dtype=float)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("both samples need values")
    if len(a) > MAX_SAMPLE:
        a = rng.choice(a, MAX_SAMPLE, replace=False)
    if len(b) > MAX_SAMPLE:
        b = rng.choice(b, MAX_SAMPLE, replace=False)
    floor = 1e-3  # a quantile of 0 ms would make the ratio infinite
    point = max(float(np.quantile(b, q)), floor) / max(float(np.quantile(a, q)), floor)
    ratios = np.maximum(_quantiles(b, q, rng), floor) / np.maximum(_quantiles(a, q, rng), floor)
    low, high = np.percentile(ratios, [50 * alpha, 100 - 50 * alpha])
    return Ratio(point, float(low), float(high))


def _log_comb(n: int, k: int) -> float:
    import math

    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def proportion_rise(
    baseline_failed: int, baseline_n: int, candidate_failed: int, candidate_n: int
) -> float:
    """One-sided p-value that the candidate's failure rate is higher: Fisher's exact test.

    Exact at any sample size, so a smoke run's 20 requests a side are judged: all of them
    failing where none did is far beyond chance, one failing is not.

    >>> proportion_rise(0, 20, 20, 20) < 1e-10
    True
    >>> round(proportion_rise(0, 20, 1, 20), 2)
    0.5
    >>> proportion_rise(5, 100, 5, 100) > 0.5
    True
    """
    import math

    if baseline_n == 0 or candidate_n == 0:
        return 1.0
    # with the failures of both runs fixed, how many land in the candidate is
    # hypergeometric; the p-value is the chance of as many as seen, or more
    n, failed = baseline_n + candidate_n, baseline_failed + candidate_failed
    whole = _log_comb(n, candidate_n)
    top = min(failed, candidate_n)
    terms = [
        _log_comb(failed, x) + _log_comb(n - failed, candidate_n - x) - whole
        for x in range(candidate_failed, top + 1)
        if candidate_n - x <= n - failed
    ]
    if not terms:
        return 0.0
    peak = max(terms)
    return min(1.0, math.exp(peak) * sum(math.exp(t - peak) for t in terms))


def smallest_rise_p(baseline_n: int, candidate_n: int) -> float:
    """The smallest p-value :func:`proportion_rise` can give at these sizes (no baseline
    request failed, every candidate request did): at or above the error level, a rise in
    errors cannot be told from chance however large.

    >>> smallest_rise_p(3, 3)
    0.05
    """
    import math

    if baseline_n == 0 or candidate_n == 0:
        return 1.0
    return round(math.exp(-_log_comb(baseline_n + candidate_n, candidate_n)), 12)
