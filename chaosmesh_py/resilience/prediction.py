"""What a resilience policy should do, in numbers, and the check of a measurement against it.

Pure arithmetic (no I/O). Each prediction says where it comes from:

- attempts: a hop makes ``1 + retries`` tries when every try fails with something its
  ``retryOn`` covers, and hops multiply along a path when each caller's failure is the next
  one's upstream failure (``attempts_along``);
- absorbed errors: with independent upstream failures of probability ``p`` and ``n`` tries
  that all retry them, a user sees an error with probability ``p ** n`` (0.5 ** 4 = 6.25 %);
- overflow: a wave of ``c`` requests arriving together at a cluster with ``maxConnections`` m
  and ``http1MaxPendingRequests`` q (HTTP/1.1: one request per connection at a time): at most
  ``m + q`` are admitted, and as few as ``q`` when every connection is still being opened (the
  request waiting for a new connection counts as pending), so between ``c - m - q`` and
  ``c - q`` of them get a 503 with flag UO. Istio's circuit-breaking task (m = q = 1) is the
  case c = 3: a third to two thirds, which is the spread the task's own fortio runs show.

The tolerance of a ratio is derived from the number of requests, not guessed: a prediction
passes when it lies inside the Wilson interval of what was measured at the stated confidence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.observe.statistics import wilson_interval, z_for


def attempts_along(retries_per_hop: Sequence[int]) -> int:
    """Tries that reach the last hop per user request when every hop fails and retries."""
    attempts = 1
    for retries in retries_per_hop:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidInput("retries", f"must be whole numbers ≥ 0, got {retries!r}")
        attempts *= 1 + retries
    return attempts


def absorbed_error_ratio(failure_ratio: float, attempts: int) -> float:
    """The user error ratio when each of ``attempts`` tries fails independently."""
    if not 0.0 <= failure_ratio <= 1.0:
        raise InvalidInput("failure_ratio", f"must be in [0, 1], got {failure_ratio}")
    if attempts < 1:
        raise InvalidInput("attempts", f"must be at least 1, got {attempts}")
    return float(failure_ratio**attempts)


def expected_attempts(failure_ratio: float, attempts: int) -> tuple[float, float]:
    """(mean, standard deviation) of the tries one user request makes when each try fails
    independently with ``failure_ratio`` and the hop allows ``attempts`` tries: try k+1 happens
    only if the first k failed (a geometric distribution cut at ``attempts``)."""
    absorbed_error_ratio(failure_ratio, attempts)  # the same checks
    chances = [failure_ratio ** (k - 1) * (1.0 - failure_ratio) for k in range(1, attempts)]
    chances.append(failure_ratio ** (attempts - 1))  # the last try happens, whatever it answers
    mean = sum(k * chance for k, chance in enumerate(chances, 1))
    square = sum(k * k * chance for k, chance in enumerate(chances, 1))
    return mean, math.sqrt(max(0.0, square - mean * mean))


def mean_tolerance(standard_deviation: float, requests: int, confidence: float = 0.999) -> float:
    """How far a mean of ``requests`` draws may lie from the expected one at ``confidence``."""
    return z_for(confidence) * standard_deviation / math.sqrt(max(1, requests))


def overflow_bounds(
    concurrency: int, max_connections: int, max_pending: int
) -> tuple[float, float]:
    """(low, high) share of a wave of ``concurrency`` simultaneous requests that overflows."""
    if concurrency < 1 or max_connections < 1 or max_pending < 1:
        raise InvalidInput("concurrency", "concurrency and both limits must be at least 1")
    low = max(0, concurrency - max_connections - max_pending) / concurrency
    high = max(0, concurrency - max_pending) / concurrency
    return low, high


def requests_for(ratio: float, half_width: float, confidence: float = 0.95) -> int:
    """Requests needed for a measured ratio near ``ratio`` to be known within ``half_width``."""
    z = z_for(confidence)
    return math.ceil(z * z * ratio * (1.0 - ratio) / (half_width * half_width))


@dataclass(frozen=True)
class Check:
    """One row of a predicted-vs-measured table."""

    quantity: str
    predicted: tuple[float, float]  # low == high: one value
    measured: float
    counted: int  # requests behind the measurement
    tolerance: str  # how "equal" was decided, in words
    passed: bool

    def to_json(self) -> dict[str, object]:
        low, high = self.predicted
        return {
            "quantity": self.quantity,
            "predicted": low if low == high else [low, high],
            "measured": self.measured,
            "requests": self.counted,
            "tolerance": self.tolerance,
            "passed": self.passed,
        }


def check_exact(
    quantity: str, predicted: float, measured: float, counted: int, tolerance: float = 0.0
) -> Check:
    """Passes when ``measured`` is ``predicted`` within ``tolerance`` (absolute)."""
    return Check(
        quantity,
        (predicted, predicted),
        measured,
        counted,
        f"± {tolerance:g}" if tolerance else "exact",
        abs(measured - predicted) <= tolerance + 1e-9,
    )


def check_ratio(
    quantity: str, predicted: float, hits: int, trials: int, confidence: float = 0.999
) -> Check:
    """Passes when ``predicted`` is inside the Wilson interval of ``hits``/``trials``."""
    low, high = wilson_interval(hits, trials, confidence)
    return Check(
        quantity,
        (predicted, predicted),
        hits / trials if trials else 0.0,
        trials,
        f"Wilson {confidence:.1%} [{low:.4f}, {high:.4f}]",
        low <= predicted <= high,
    )


def check_within(
    quantity: str, *, low: float, high: float, measured: float, counted: int, why: str
) -> Check:
    """Passes when ``measured`` is in [low, high]; ``why`` says where the bounds come from."""
    return Check(
        quantity, (low, high), measured, counted, why, low - 1e-9 <= measured <= high + 1e-9
    )


def table(checks: Iterable[Check]) -> str:
    """The checks as a Markdown table (docs, bench output)."""
    rows = [
        "| quantity | predicted | measured | requests | tolerance | pass |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for check in checks:
        low, high = check.predicted
        predicted = f"{low:.4g}" if low == high else f"[{low:.4g}, {high:.4g}]"
        rows.append(
            f"| {check.quantity} | {predicted} | {check.measured:.4g} | {check.counted} "
            f"| {check.tolerance} | {'yes' if check.passed else 'NO'} |"
        )
    return "\n".join(rows)
