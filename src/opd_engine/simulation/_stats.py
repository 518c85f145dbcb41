"""Statistics over plain numbers: percentiles, Student's t quantiles, 95% intervals.

Pure functions of floats, without scipy; they know nothing of tokens or results.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Sequence
from typing import Final


def percentile(ordered: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of sorted values, interpolating linearly. O(1)."""
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _central(t: float, df: int) -> float:
    """``P(|T| <= t)`` for Student's t with ``df`` degrees of freedom, ``t >= 0``: the
    finite series of Abramowitz and Stegun 26.7.3 and 26.7.4, exact for integer ``df``.
    O(df)."""
    theta = math.atan(t / math.sqrt(df))
    sin, cos2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2:
        if df == 1:
            return 2 * theta / math.pi
        term = total = math.cos(theta)
        for k in range(3, df - 1, 2):
            term *= cos2 * (k - 1) / k
            total += term
        return 2 / math.pi * (theta + sin * total)
    term = total = 1.0
    for k in range(2, df - 1, 2):
        term *= cos2 * (k - 1) / k
        total += term
    return sin * total


# Past this many degrees of freedom the Cornish-Fisher expansion is exact to 1e-12.
_SERIES_DF: Final = 1000


@functools.lru_cache(maxsize=256)
def t_quantile(p: float, df: int) -> float:
    """Student's t ``p``-quantile (``0.5 < p < 1``) with ``df >= 1`` degrees of freedom,
    without scipy: the exact distribution function inverted by bisection to float
    precision, or for ``df`` over 1000 the Cornish-Fisher expansion around the normal
    quantile. ``t_quantile(0.975, 9)`` is 2.262157. O(df) per call, cached."""
    if df > _SERIES_DF:
        z = statistics.NormalDist().inv_cdf(p)
        g1 = (z**3 + z) / 4
        g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
        g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
        return z + g1 / df + g2 / df**2 + g3 / df**3
    target = 2 * p - 1
    low, high = 0.0, 1.0
    while _central(high, df) < target:
        low, high = high, high * 2
    while True:  # halves the interval until no float lies between its ends (about 60 times)
        middle = (low + high) / 2
        if middle in (low, high):
            return middle
        if _central(middle, df) < target:
            low = middle
        else:
            high = middle


def t975(df: int) -> float:
    """Student's t 0.975 quantile, for a two-sided 95% interval: :func:`t_quantile`.
    O(df) the first time, then O(1)."""
    return t_quantile(0.975, df)


def mean_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95% confidence interval (Student's t) of independent replications, as
    ``(mean, low, high)``; a single value is its own interval. O(n)."""
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, mean, mean
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    half = t975(n - 1) * math.sqrt(variance / n)
    return mean, mean - half, mean + half
