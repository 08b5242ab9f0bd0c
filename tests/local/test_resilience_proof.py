"""Proof on the data plane: the local mesh's real Envoy does what the policies predict.

Each test sets a policy straight through the API (the VirtualService or DestinationRule a team
would have), sends counted requests through the ``sleep`` workload's sidecar, and checks the
measurement against ``chaosmesh_py.resilience.prediction`` with the tolerance it derives.
"""

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.engine.envoy_admin import EnvoyAdmin
from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.resilience import prediction
from chaosmesh_py.resilience.measure import Load, measure
from chaosmesh_py.resilience.probes import check_arguments, measure_retries
from tests.local.conftest import httpbin_route, through_sidecar
from tests.local.test_semantics import httpbin_policy

HTTPBIN = "httpbin.bookinfo.svc.cluster.local"
CIRCUIT_BREAKER = {  # Istio's circuit-breaking task
    "tcp": {"maxConnections": 1},
    "http": {"http1MaxPendingRequests": 1, "maxRequestsPerConnection": 1},
}


def measured(mesh, path, **load):
    url, headers = through_sidecar(mesh, "httpbin", path)
    with EnvoyAdmin(mesh.info()["envoy_admin_socket"]) as admin:
        return measure(admin, HTTPBIN, Load(url, headers, **load))


def test_every_try_of_an_always_failing_upstream_is_counted_as_predicted(mesh):
    for retries, retry_on, predicted in (
        (None, None, 1),  # Istio's default policy: 2 retries, but not on a 503
        (3, "5xx", 4),
        (2, "503", 3),
        (0, None, 1),  # retries off
    ):
        route = {} if retries is None else {"retries": {"attempts": retries}}
        if retry_on:
            route["retries"]["retryOn"] = retry_on
        mesh.reset()
        httpbin_route(mesh, **route)
        seen = measured(mesh, "/status/503", requests=50, concurrency=2)
        assert seen.errors == 50
        assert seen.attempts_per_request == predicted, (route, seen.to_json())
        assert seen.counters["retries"] == 50 * (predicted - 1)
        # The upstream saw the last try's number on every request.
        assert seen.answered_on_attempt == {str(predicted): 50}


def test_half_the_upstream_failing_under_three_retries_reaches_users_as_predicted(mesh):
    httpbin_route(mesh, retries={"attempts": 3, "retryOn": "5xx"})
    requests = 2000
    seen = measured(mesh, "/status/200:0.5,503:0.5", requests=requests, concurrency=4)
    error_ratio = prediction.check_ratio(
        "user error ratio", prediction.absorbed_error_ratio(0.5, 4), seen.errors, seen.requests
    )
    assert error_ratio.passed, error_ratio
    mean, deviation = prediction.expected_attempts(0.5, 4)
    attempts = prediction.check_exact(
        "tries per request",
        mean,
        seen.attempts_per_request,
        seen.requests,
        prediction.mean_tolerance(deviation, seen.requests),
    )
    assert attempts.passed, attempts
    # Each success came on try k with chance 0.5**k: the first try answers about half.
    first = seen.answered_on_attempt.get("1", 0)
    assert prediction.check_ratio("answered on try 1", 0.5, first, requests).passed


def test_a_tightened_circuit_breaker_overflows_as_the_limits_predict(mesh):
    httpbin_policy(mesh, connectionPool=CIRCUIT_BREAKER)
    for concurrency in (1, 3):
        seen = measured(
            mesh, "/delay/0.1", requests=30 * concurrency, concurrency=concurrency, waves=True
        )
        low, high = prediction.overflow_bounds(concurrency, 1, 1)
        check = prediction.check_within(
            f"overflow ratio c={concurrency}",
            low=low,
            high=high,
            measured=seen.overloaded / seen.requests,
            counted=seen.requests,
            why="m=1, q=1",
        )
        assert check.passed, (check, seen.to_json())
        # Every refused request is a 503 saying so, and Envoy counted each one.
        assert all(a.status == 503 for a in seen.answers if a.overloaded)
        assert seen.overloaded == seen.overflows, seen.to_json()
        assert seen.errors == seen.overloaded


def test_the_measurement_probes_report_what_envoy_counted(mesh):
    httpbin_route(mesh, retries={"attempts": 2, "retryOn": "5xx"})
    url, headers = through_sidecar(mesh, "httpbin", "/status/503")
    seen = measure_retries(url, "httpbin", requests=20, concurrency=2, headers=headers)
    assert seen["attempts_per_request"] == 3.0 and seen["retries"] == 40
    assert seen["error_ratio"] == 1.0 and seen["counters"] == "local mesh Envoy"
    assert seen["answered_on_attempt"] == {"3": 20}
    with pytest.raises(ActivityFailed, match="service: no service 'nobody'"):
        measure_retries(url, "nobody", requests=1)


def test_the_measurement_probes_refuse_bad_arguments_before_any_request(mesh):
    for arguments, message in (
        ({"url": "ftp://x", "service": "httpbin"}, "url: must be an http:// URL"),
        ({"url": "http://127.0.0.1:1/", "service": ""}, "service: must be a non-empty string"),
        ({"url": "http://127.0.0.1:1/", "service": "h", "requests": 0}, "requests: must be"),
        ({"url": "http://127.0.0.1:1/", "service": "h", "concurrency": 1000}, "concurrency"),
        ({"url": "http://127.0.0.1:1/", "service": "h", "headers": {"a": 1}}, "headers: must"),
    ):
        with pytest.raises(InvalidInput, match=message):
            check_arguments("measure_retries", arguments, None)
