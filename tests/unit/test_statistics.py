"""The statistics module against published values and against the same quantity computed
independently in the test by a different method (bisection, chi-square, enumeration)."""

from __future__ import annotations

import itertools
import math

import pytest

from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.observe.statistics import (
    mann_whitney_u,
    two_proportion_z,
    upper_tail,
    wilson_interval,
    z_for,
)


@pytest.mark.parametrize(
    ("confidence", "published"),
    [
        (0.80, 1.2816),
        (0.90, 1.6449),
        (0.95, 1.9600),
        (0.98, 2.3263),
        (0.99, 2.5758),
        (0.999, 3.2905),
    ],
)
def test_z_for_matches_the_normal_table(confidence: float, published: float) -> None:
    assert z_for(confidence) == pytest.approx(published, abs=5e-5)


@pytest.mark.parametrize("confidence", [0, 1, 1.5, -0.1, "0.95", True])
def test_z_for_refuses_a_confidence_outside_zero_one(confidence: object) -> None:
    with pytest.raises(InvalidInput, match="confidence"):
        z_for(confidence)  # type: ignore[arg-type]


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table II,
# method 3 (Wilson score, no continuity correction), 95 %.
@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_newcombes_table(
    successes: int, trials: int, low: float, high: float
) -> None:
    got_low, got_high = wilson_interval(successes, trials)
    assert got_low == pytest.approx(low, abs=5e-5)
    assert got_high == pytest.approx(high, abs=5e-5)


def _score_bound(successes: int, trials: int, z: float, upper: bool) -> float:
    """The Wilson bound by its definition: the p where |p̂ - p| = z·sqrt(p(1-p)/n), by bisection."""
    observed = successes / trials

    def outside(p: float) -> bool:
        return abs(observed - p) > z * math.sqrt(p * (1 - p) / trials)

    lo, hi = (observed, 1.0) if upper else (0.0, observed)
    for _ in range(200):
        mid = (lo + hi) / 2
        # Moving away from p̂, the score test goes from "inside" to "outside".
        if outside(mid) == upper:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


@pytest.mark.parametrize(
    ("successes", "trials", "confidence"),
    [(1000, 10_000, 0.95), (3, 50, 0.99), (47, 48, 0.9), (512, 1000, 0.95), (7, 7000, 0.95)],
)
def test_wilson_interval_is_the_score_tests_acceptance_region(
    successes: int, trials: int, confidence: float
) -> None:
    z = z_for(confidence)
    low, high = wilson_interval(successes, trials, confidence)
    assert low == pytest.approx(_score_bound(successes, trials, z, upper=False), abs=1e-9)
    assert high == pytest.approx(_score_bound(successes, trials, z, upper=True), abs=1e-9)


def test_wilson_interval_edges() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and 0.69 < low < 0.73
    # A wider confidence gives a wider interval.
    narrow, wide = wilson_interval(100, 1000, 0.9), wilson_interval(100, 1000, 0.99)
    assert wide[0] < narrow[0] and wide[1] > narrow[1]


@pytest.mark.parametrize(
    ("successes", "trials", "field"),
    [
        (-1, 10, "successes"),
        (11, 10, "successes"),
        (1, -2, "trials"),
        (1.5, 10, "successes"),
        (True, 3, "successes"),
    ],
)
def test_wilson_interval_refuses_impossible_counts(
    successes: object, trials: object, field: str
) -> None:
    with pytest.raises(InvalidInput, match=f"^{field}"):
        wilson_interval(successes, trials)  # type: ignore[arg-type]


def _chi_square_2x2(x1: int, n1: int, x2: int, n2: int) -> float:
    """Pearson's chi-square on the 2x2 table (no continuity correction): equal to the pooled z²."""
    table = [[x1, n1 - x1], [x2, n2 - x2]]
    total = n1 + n2
    column = [x1 + x2, total - x1 - x2]
    row = [n1, n2]
    return sum(
        (table[i][j] - row[i] * column[j] / total) ** 2 / (row[i] * column[j] / total)
        for i in range(2)
        for j in range(2)
    )


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"),
    [(30, 100, 20, 100), (5, 1000, 25, 1000), (120, 400, 90, 410), (1, 50, 0, 50)],
)
def test_two_proportion_z_agrees_with_the_chi_square_test(
    x1: int, n1: int, x2: int, n2: int
) -> None:
    z, p = two_proportion_z(x1, n1, x2, n2)
    assert z * z == pytest.approx(_chi_square_2x2(x1, n1, x2, n2), rel=1e-9)
    assert (z > 0) == (x1 / n1 > x2 / n2)
    assert p == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)), rel=1e-9, abs=1e-15)


def test_two_proportion_z_known_value() -> None:
    # 30/100 against 20/100: pooled 0.25, se = sqrt(0.25·0.75·0.02) = 0.0612372, z = 1.63299.
    z, p = two_proportion_z(30, 100, 20, 100)
    assert z == pytest.approx(1.63299, abs=1e-5)
    assert p == pytest.approx(0.05124, abs=1e-5)
    # The other direction: no evidence that 20/100 exceeds 30/100.
    z, p = two_proportion_z(20, 100, 30, 100)
    assert z == pytest.approx(-1.63299, abs=1e-5) and p == pytest.approx(0.94876, abs=1e-5)


def test_two_proportion_z_with_nothing_to_tell_apart() -> None:
    assert two_proportion_z(0, 500, 0, 700) == (0.0, 0.5)
    assert two_proportion_z(9, 9, 4, 4) == (0.0, 0.5)
    with pytest.raises(InvalidInput, match=r"^n2"):
        two_proportion_z(1, 10, 0, 0)


def test_upper_tail_is_accurate_far_out() -> None:
    # 1 - cdf(8) would round to 0; the tail is ~6.2e-16.
    assert upper_tail(8.0) == pytest.approx(6.22096e-16, rel=1e-4)
    assert upper_tail(-8.0) == pytest.approx(1.0)
    assert upper_tail(0.0) == 0.5


def _u_by_pairs(a: list[float], b: list[float]) -> float:
    return sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b)


def _z_by_enumeration(a: list[float], b: list[float]) -> float:
    """U's exact null mean and variance from every way of choosing which values are a's."""
    pooled = [*a, *b]
    us = []
    for chosen in itertools.combinations(range(len(pooled)), len(a)):
        first = [pooled[i] for i in chosen]
        rest = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        us.append(_u_by_pairs(first, rest))
    mean = sum(us) / len(us)
    variance = sum((u - mean) ** 2 for u in us) / len(us)
    return (_u_by_pairs(a, b) - mean) / math.sqrt(variance)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([12.0, 15.0, 19.0, 22.0, 30.0], [10.0, 11.0, 14.0, 16.0, 18.0]),
        ([3.0, 3.0, 5.0, 7.0], [3.0, 4.0, 4.0, 5.0, 1.0]),  # ties across and within samples
        ([1.0, 2.0], [5.0, 6.0, 7.0, 8.0, 9.0]),
    ],
)
def test_mann_whitney_u_matches_enumeration(a: list[float], b: list[float]) -> None:
    z, p = mann_whitney_u(a, b)
    assert z == pytest.approx(_z_by_enumeration(a, b), rel=1e-9)
    assert p == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)), rel=1e-9)


def test_mann_whitney_u_flags_a_slower_sample() -> None:
    baseline = [float(20 + i % 7) for i in range(60)]
    slower = [value + 6.0 for value in baseline]
    assert mann_whitney_u(slower, baseline)[1] < 0.001
    assert mann_whitney_u(baseline, slower)[1] > 0.999
    assert mann_whitney_u([5.0] * 10, [5.0] * 12) == (0.0, 0.5)
    with pytest.raises(InvalidInput, match=r"^b"):
        mann_whitney_u([1.0], [])
