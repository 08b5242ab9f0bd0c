"""Chaos Toolkit probes for resilience policies (``chaosmesh_py.resilience.probes``): the policy
report's predictions, and what the data plane measured."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from chaosmesh_py.engine.access import needs, nothing
from chaosmesh_py.engine.activity import boundary
from chaosmesh_py.resilience import measured_probes

# Per probe: what refuses its arguments before it measures anything (no request, no API call).
_ARGUMENT_CHECKS: dict[str, Callable[[Mapping[str, Any]], object]] = {}


def check_arguments(
    probe: str, arguments: Mapping[str, Any], configuration: Mapping[str, Any] | None
) -> None:
    """Raise InvalidInput if ``probe`` would refuse ``arguments`` (bound, defaults applied)."""
    check = _ARGUMENT_CHECKS.get(probe)
    if check is not None:
        check(arguments)


__all__: list[str] = []

# ------------------------------------------------------------ policy report (predictions)

__all__ += []  # this section's Chaos Toolkit functions, by name


# ------------------------------------------------------------ measured on the data plane
# Real requests, counted answers, and on the local mesh the destination's Envoy counters
# (chaosmesh_py.resilience.measure says which numbers a cluster has and where).


@needs(nothing)  # HTTP, and the local mesh's published info when there is one
def measure_retries(
    url: str,
    service: str,
    requests: int = 100,
    concurrency: int = 1,
    headers: dict = None,
    timeout_s: float = 10.0,
    expect: dict = None,
    secrets: dict = None,
) -> dict:
    """Send `requests` GETs to `url` (`concurrency` at a time) and report what the retry policy
    of the route to `service` did: requests, errors, error_ratio with its 95 % Wilson interval
    (error_ratio_interval), statuses, answered_on_attempt (which try answered, as the upstream
    saw it; the local httpbin tells it), and on the local mesh upstream_attempts,
    attempts_per_request and retries from Envoy's counters of `service` (null on a cluster).
    Check it with e.g. {"type": "range", "range": [3.99, 4.01], "target":
    "attempts_per_request"} in a steady state, or in the method with `expect`
    ({"attempts_per_request": 4}, {"latency_max_s": [0, 1.5]}: a number or a [low, high] per
    result field), which fails the probe, and so the run, when a field is outside it. Latency:
    latency_p50_s, latency_p99_s, latency_max_s.
    """
    with boundary():
        return measured_probes.held(
            measured_probes.retries(
                url,
                service=service,
                requests=requests,
                concurrency=concurrency,
                headers=headers or {},
                timeout_s=timeout_s,
                secrets=secrets,
            ),
            expect,
        )


@needs(nothing)
def measure_overflow(
    url: str,
    service: str,
    concurrency: int = 3,
    waves: int = 30,
    headers: dict = None,
    timeout_s: float = 10.0,
    expect: dict = None,
    secrets: dict = None,
) -> dict:
    """Send `waves` waves of `concurrency` simultaneous GETs to `url` and report how many a
    circuit breaker refused: overloaded_answers (503 with x-envoy-overloaded, flag UO),
    overflow_ratio, statuses, and on the local mesh Envoy's pending_overflows and
    connection_overflows for `service`. Istio's circuit-breaking task (maxConnections 1,
    http1MaxPendingRequests 1) at concurrency 3 refuses between 1/3 and 2/3.
    """
    with boundary():
        return measured_probes.held(
            measured_probes.overflow(
                url,
                service=service,
                concurrency=concurrency,
                waves=waves,
                headers=headers or {},
                timeout_s=timeout_s,
                secrets=secrets,
            ),
            expect,
        )


@needs(nothing)
def measure_ejection(
    url: str,
    service: str,
    requests: int = 200,
    pace_s: float = 0.02,
    headers: dict = None,
    timeout_s: float = 10.0,
    expect: dict = None,
    secrets: dict = None,
) -> dict:
    """Send `requests` GETs to `url` one at a time, one per `pace_s`, while an endpoint of
    `service` fails, and report when outlier detection stopped the errors:
    errors_before_ejection (with consecutive5xxErrors n and no retry of the error: n),
    time_to_ejection_s (first error to last), errors_after_ejection and
    error_ratio_after_ejection (the baseline again: 0), and on the local mesh Envoy's
    ejections. Keep requests x pace_s under baseEjectionTime, or the endpoint comes back.
    """
    with boundary():
        return measured_probes.held(
            measured_probes.ejection(
                url,
                service=service,
                requests=requests,
                pace_s=pace_s,
                headers=headers or {},
                timeout_s=timeout_s,
                secrets=secrets,
            ),
            expect,
        )


for _probe in ("measure_retries", "measure_overflow", "measure_ejection"):
    _ARGUMENT_CHECKS[_probe] = measured_probes.check_common

__all__ += ["measure_ejection", "measure_overflow", "measure_retries"]
