"""The small statistics the probes need, written out so the core package carries no scipy/numpy.

- ``z_for``: the two-sided normal quantile for a confidence level (1.96 for 95 %).
- ``wilson_interval``: the Wilson score interval for a proportion. Chosen over the textbook
  "p ± z·sqrt(p(1-p)/n)" (Wald) because Wald collapses to a zero-width interval at 0 or n
  successes and undercovers for the small shares a canary or a mirror receives (Newcombe 1998;
  Brown, Cai & DasGupta 2001).
- ``two_proportion_z``: the pooled two-proportion z-test, one-sided (is p1 greater than p2?),
  e.g. "is the canary's error ratio greater than the baseline's?".
- ``mann_whitney_u``: the Mann-Whitney U test by its normal approximation with the tie
  correction, one-sided (do values of ``a`` tend to be larger than those of ``b``?), e.g.
  latencies of the canary against the baseline.

The normal distribution itself is the standard library's ``statistics.NormalDist`` (exact to
double precision; Python's own, not a dependency).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

from chaosmesh_py.errors import InvalidInput

_STANDARD_NORMAL = NormalDist()


def z_for(confidence: float) -> float:
    """The z such that a standard normal falls within ±z with probability ``confidence``."""
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
        raise InvalidInput("confidence", f"must be a number, got {confidence!r}", "e.g. 0.95")
    if not 0.0 < confidence < 1.0:
        raise InvalidInput(
            "confidence", f"must be strictly between 0 and 1, got {confidence}", "e.g. 0.95"
        )
    return _STANDARD_NORMAL.inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval (low, high) for ``successes`` out of ``trials``, both in [0, 1].

    With no trials nothing is known and the interval is the whole of [0, 1]; callers that must
    refuse to conclude from too few trials decide their own minimum (the interval's width says
    how little is known).
    """
    _check_counts("successes", successes, "trials", trials)
    z = z_for(confidence)
    if trials == 0:
        return (0.0, 1.0)
    n = float(trials)
    p = successes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denominator
    half_width = (z / denominator) * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    # At 0 or n successes the bound is exactly 0 or 1; rounding must not push it past.
    low = 0.0 if successes == 0 else max(0.0, centre - half_width)
    high = 1.0 if successes == trials else min(1.0, centre + half_width)
    return (low, high)


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """(z, one-sided p-value) for "proportion 1 is greater than proportion 2" (pooled variance).

    ``x1`` of ``n1`` against ``x2`` of ``n2``. A small p-value is evidence that p1 > p2; z is
    negative when the observed p1 is below p2. When both samples are all successes or all
    failures the data cannot tell the proportions apart: z = 0, p = 0.5.
    """
    _check_counts("x1", x1, "n1", n1)
    _check_counts("x2", x2, "n2", n2)
    if n1 == 0 or n2 == 0:
        empty = "n1" if n1 == 0 else "n2"
        raise InvalidInput(empty, "must be at least 1: a proportion needs trials", "")
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
    if variance <= 0.0:
        return (0.0, 0.5)
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    return (z, upper_tail(z))


def mann_whitney_u(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(z, one-sided p-value) for "values of ``a`` tend to be larger than values of ``b``".

    U counts the pairs (x from a, y from b) with x > y, ties counting one half. Its normal
    approximation (mean n1·n2/2, variance corrected for ties) is good from about 10 values per
    side; below that the p-value is only indicative. All values tied: z = 0, p = 0.5.
    """
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        raise InvalidInput("a" if n1 == 0 else "b", "needs at least one value", "")
    ranks = _midranks([*a, *b])
    rank_sum_a = sum(ranks[:n1])
    u = rank_sum_a - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    tie_term = sum(t**3 - t for t in _tie_sizes([*a, *b]))
    variance = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1)))
    if variance <= 0.0:
        return (0.0, 0.5)
    z = (u - n1 * n2 / 2.0) / math.sqrt(variance)
    return (z, upper_tail(z))


def upper_tail(z: float) -> float:
    """P(Z > z) for a standard normal Z: the one-sided p-value of a z statistic."""
    return 1.0 - _STANDARD_NORMAL.cdf(z) if z < 0 else _STANDARD_NORMAL.cdf(-z)


def _check_counts(count_name: str, count: int, total_name: str, total: int) -> None:
    for name, value in ((count_name, count), (total_name, total)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInput(name, f"must be a whole number ≥ 0, got {value!r}", "")
    if count > total:
        raise InvalidInput(count_name, f"{count} is more than {total_name} = {total}", "")


def _midranks(values: list[float]) -> list[float]:
    """Ranks 1..n in the order of ``values``, tied values sharing the mean of their ranks."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        shared = (start + end) / 2.0 + 1.0
        for position in range(start, end + 1):
            ranks[order[position]] = shared
        start = end + 1
    return ranks


def _tie_sizes(values: list[float]) -> list[int]:
    counts: dict[float, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return [size for size in counts.values() if size > 1]
