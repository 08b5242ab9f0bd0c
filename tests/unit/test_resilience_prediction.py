"""The arithmetic of resilience predictions and of the checks against a measurement."""

import math

import pytest

from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.localmesh.httpbin import weighted_status
from chaosmesh_py.resilience import prediction
from chaosmesh_py.resilience.measured_probes import NotAsExpected, check_expect, held


def test_tries_multiply_along_a_path():
    assert prediction.attempts_along([]) == 1
    assert prediction.attempts_along([2]) == 3
    assert prediction.attempts_along([2, 2, 2]) == 27  # Istio's default on three hops
    assert prediction.attempts_along([3, 0]) == 4
    with pytest.raises(InvalidInput, match="retries"):
        prediction.attempts_along([-1])


def test_absorbed_errors_and_expected_tries():
    assert prediction.absorbed_error_ratio(0.5, 4) == 0.0625
    mean, deviation = prediction.expected_attempts(0.5, 4)
    assert mean == pytest.approx(1.875)
    # E[X^2] = 1/2 + 4/4 + 9/8 + 16/8 = 4.625
    assert deviation == pytest.approx(math.sqrt(4.625 - 1.875**2))
    assert prediction.expected_attempts(1.0, 3) == (3.0, 0.0)  # always failing: every try
    assert prediction.expected_attempts(0.0, 3) == (1.0, 0.0)
    with pytest.raises(InvalidInput, match="failure_ratio"):
        prediction.absorbed_error_ratio(1.5, 2)


def test_overflow_bounds_of_istios_circuit_breaking_task():
    assert prediction.overflow_bounds(1, 1, 1) == (0.0, 0.0)
    assert prediction.overflow_bounds(2, 1, 1) == (0.0, 0.5)
    assert prediction.overflow_bounds(3, 1, 1) == pytest.approx((1 / 3, 2 / 3))
    assert prediction.overflow_bounds(20, 1, 1) == pytest.approx((0.9, 0.95))


def test_a_ratio_passes_only_inside_its_wilson_interval():
    assert prediction.check_ratio("r", 0.0625, 142, 2000).passed  # 0.071
    assert not prediction.check_ratio("r", 0.0625, 250, 2000).passed  # 0.125
    # The tolerance narrows with the requests behind the measurement.
    assert prediction.check_ratio("r", 0.0625, 8, 100).passed
    assert not prediction.check_ratio("r", 0.0625, 800, 10000).passed


def test_exact_and_bounded_checks_and_the_table():
    rows = [
        prediction.check_exact("tries", 4, 4.0, 50),
        prediction.check_exact("tries", 4, 3.98, 50),
        prediction.check_within(
            "overflow", low=1 / 3, high=2 / 3, measured=0.5, counted=90, why="m+q"
        ),
    ]
    assert [row.passed for row in rows] == [True, False, True]
    text = prediction.table(rows)
    assert "| tries | 4 | 3.98 | 50 | exact | NO |" in text
    assert "| overflow | [0.3333, 0.6667] | 0.5 | 90 | m+q | yes |" in text
    assert rows[2].to_json()["predicted"] == [1 / 3, 2 / 3]


def test_expect_is_checked_and_judged():
    assert check_expect({"a": 4, "b": [0, 1.5]}) == {"a": (4.0, 4.0), "b": (0.0, 1.5)}
    for bad in ({"a": "4"}, {"a": [2, 1]}, {"a": [1]}, {"a": True}, [1]):
        with pytest.raises(InvalidInput, match="expect"):
            check_expect(bad)
    assert held({"a": 4.0}, {"a": 4})["a"] == 4.0
    with pytest.raises(NotAsExpected, match=r"a = 3, expected \[4, 4\]"):
        held({"a": 3.0}, {"a": 4})
    # A cluster's null counter cannot pass for a measured one.
    with pytest.raises(NotAsExpected, match="a is None"):
        held({"a": None}, {"a": 4})


def test_httpbin_weighted_statuses():
    assert weighted_status("503") == 503
    draws = [weighted_status("200:0.5,503:0.5") for _ in range(4000)]
    assert set(draws) == {200, 503}
    assert 0.45 < draws.count(503) / len(draws) < 0.55
    assert {weighted_status("200:0,418:1") for _ in range(50)} == {418}
    for bad in ("200:x", "200:-1,503:1", "200:0,503:0", "abc"):
        with pytest.raises(ValueError):
            weighted_status(bad)
